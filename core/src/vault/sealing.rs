//! The seam between the vault and the envelope format.
//!
//! The vault stores each file as an envelope split in two: the header (stanzas wrapping the
//! DEK, encrypted metadata, header MAC) in the metadata store and the payload as a blob. Every
//! use the vault makes of the envelope goes through the functions here: seal a new file to the
//! KEK, read which KEK a header is wrapped under, re-wrap a header to a new KEK (rotation) or
//! to recipients (bound download), and open a payload.
//!
//! STAND-IN: until `crate::envelope` lands on main, this module implements the seam with a
//! minimal format of its own — header = `"KNKSTAND" || WrappedSecret(DEK) || metadata`, payload
//! = the plaintext unchanged. It exists only so the vault's storage, policy and crash logic can
//! be built and tested; it gets replaced wholesale by calls into `crate::envelope`.

use std::io::{self, Read, Seek, Write};

use super::codec::{Dec, Enc};
use super::kek::{KekId, KeyRing, MasterKey, UnwrapError, WrappedSecret};
use super::store::BlobRead;
use super::types::random_array;

const MAGIC: &[u8; 8] = b"KNKSTAND";
const AAD: &[u8] = b"kinko stand-in header";

/// What the uploader says about a file; stored encrypted in its header.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FileMeta {
    /// File name.
    pub name: String,
    /// MIME type.
    pub content_type: String,
}

/// A sealing or opening failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealingError {
    /// Reading the input or writing the payload failed.
    #[error("I/O error while sealing or opening: {0}")]
    Io(#[from] io::Error),
    /// The header's DEK could not be unwrapped.
    #[error("cannot unwrap the file key: {0}")]
    Unwrap(#[from] UnwrapError),
    /// The header is malformed.
    #[error("malformed file header")]
    Malformed,
    /// The operation is not available in this build.
    #[error("{0} is not available until the envelope format lands")]
    Unsupported(&'static str),
}

/// A header parsed enough for the vault's needs.
#[derive(Debug)]
struct Parsed {
    wrapped: WrappedSecret,
    meta: FileMeta,
}

fn parse(header: &[u8]) -> Result<Parsed, SealingError> {
    let rest = header
        .strip_prefix(MAGIC.as_slice())
        .ok_or(SealingError::Malformed)?;
    let mut d = Dec::new(rest, 1).map_err(|_| SealingError::Malformed)?;
    let wrapped = WrappedSecret::decode(d.bytes().map_err(|_| SealingError::Malformed)?)
        .map_err(|_| SealingError::Malformed)?;
    let meta = FileMeta {
        name: d.string().map_err(|_| SealingError::Malformed)?,
        content_type: d.string().map_err(|_| SealingError::Malformed)?,
    };
    d.end().map_err(|_| SealingError::Malformed)?;
    Ok(Parsed { wrapped, meta })
}

fn build(wrapped: &WrappedSecret, meta: &FileMeta) -> Vec<u8> {
    let mut e = Enc::with_version(1);
    e.bytes(&wrapped.encode())
        .str(&meta.name)
        .str(&meta.content_type);
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&e.finish());
    out
}

/// Seals `input` to `kek`: writes the payload to `payload` and returns the header bytes and
/// the plaintext size.
pub(crate) fn seal(
    kek: &MasterKey,
    meta: &FileMeta,
    input: &mut dyn Read,
    payload: &mut dyn Write,
) -> Result<(Vec<u8>, u64), SealingError> {
    let dek: [u8; 32] = random_array();
    let wrapped = WrappedSecret::wrap(kek, &dek, AAD);
    let size = io::copy(input, payload)?;
    Ok((build(&wrapped, meta), size))
}

/// The id of the master key the header's DEK is wrapped under.
pub(crate) fn kek_of(header: &[u8]) -> Result<KekId, SealingError> {
    Ok(parse(header)?.wrapped.kek)
}

/// Re-wraps the DEK under `new` (KEK rotation); the payload is untouched.
pub(crate) fn rewrap(
    header: &[u8],
    ring: &KeyRing,
    new: &MasterKey,
) -> Result<Vec<u8>, SealingError> {
    let p = parse(header)?;
    let dek = p.wrapped.unwrap(ring, AAD)?;
    Ok(build(
        &WrappedSecret::wrap(new, secrecy::ExposeSecret::expose_secret(&dek), AAD),
        &p.meta,
    ))
}

/// Decrypts the metadata.
pub(crate) fn metadata(header: &[u8], ring: &KeyRing) -> Result<FileMeta, SealingError> {
    let p = parse(header)?;
    p.wrapped.unwrap(ring, AAD)?;
    Ok(p.meta)
}

/// A readable, seekable plaintext stream.
pub trait PlainRead: Read + Seek + Send + std::fmt::Debug {}
impl<T: Read + Seek + Send + std::fmt::Debug> PlainRead for T {}

/// Opens the payload for reading plaintext.
pub(crate) fn open(
    header: &[u8],
    ring: &KeyRing,
    payload: Box<dyn BlobRead>,
) -> Result<Box<dyn PlainRead>, SealingError> {
    parse(header)?.wrapped.unwrap(ring, AAD)?;
    Ok(Box::new(payload))
}

/// A header that opens only for `recipients` (X25519 public keys); the payload is unchanged.
pub(crate) fn bind(
    _header: &[u8],
    _ring: &KeyRing,
    _recipients: &[[u8; 32]],
) -> Result<Vec<u8>, SealingError> {
    Err(SealingError::Unsupported("a recipient-bound download"))
}
