//! The seam between the vault and the envelope format ([`crate::envelope`]).
//!
//! The vault stores each file as an envelope split in two: the header (stanzas wrapping the
//! DEK, encrypted metadata, header MAC) in the metadata store — it *is* the file's wrapped
//! DEK — and the payload as a blob. Every use the vault makes of the envelope goes through
//! the functions here: seal a new file to the KEK, read which KEK a header is wrapped under,
//! re-wrap a header to a new KEK (rotation) or to recipients (bound download), and open a
//! payload.

use std::io::{Read, Seek, Write};
use std::sync::Arc;

use crate::envelope::kdf;
use crate::envelope::rng::DerivedRandom;
use crate::envelope::{
    self, Header, Keyring, Metadata, OpenError, OpenedHeader, Opener, Recipients, RewrapError,
    SealError, SealOptions, Sealer, SymmetricKey,
};
use crate::keys::Recipient;

use super::kek::{KekId, KeyRing, MasterKey};
use super::store::BlobRead;
use super::types::ShareId;

/// A sealing or opening failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealingError {
    /// Sealing failed (I/O while streaming, invalid recipient).
    #[error(transparent)]
    Seal(#[from] SealError),
    /// Opening failed: no loaded KEK opens the header, the header MAC failed, or the header
    /// is malformed.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The header has no stanza under a master key.
    #[error("the file header is not wrapped under any master key")]
    NoKekStanza,
}

impl From<RewrapError> for SealingError {
    fn from(e: RewrapError) -> Self {
        match e {
            RewrapError::Open(e) => SealingError::Open(e),
            RewrapError::Seal(e) => SealingError::Seal(e),
        }
    }
}

fn symmetric(k: &MasterKey) -> SymmetricKey {
    SymmetricKey::from_bytes(*k.expose_secret())
}

fn keyring(ring: &KeyRing) -> Keyring {
    ring.all()
        .fold(Keyring::new(), |kr, k| kr.symmetric(symmetric(k)))
}

/// Seals `input` to `kek`, streaming the payload into `payload`; returns the header bytes
/// and the plaintext size.
pub(crate) fn seal(
    kek: &MasterKey,
    meta: &Metadata,
    input: &mut dyn Read,
    payload: &mut dyn Write,
) -> Result<(Vec<u8>, u64), SealingError> {
    let recipients = Recipients::new().symmetric(&symmetric(kek));
    let mut meta = meta.clone();
    meta.size = None; // filled in by the detached sealer
    let opts = SealOptions {
        metadata: meta,
        ..SealOptions::default()
    };
    let mut sealer = Sealer::detached(payload, &recipients, opts)?;
    sealer.copy_from(input).map_err(SealError::Io)?;
    let size = sealer.bytes_written();
    let (header, _) = sealer.finish_detached()?;
    Ok((header.to_bytes(), size))
}

/// The id of the (first) master key the header's DEK is wrapped under.
pub(crate) fn kek_of(header: &[u8]) -> Result<KekId, SealingError> {
    Header::from_bytes(header)?
        .stanzas()
        .iter()
        .find_map(|s| s.key_id())
        .map(|id| KekId(id.0))
        .ok_or(SealingError::NoKekStanza)
}

/// Re-wraps the DEK under `new` (KEK rotation): drops the stanzas of every key in the ring,
/// adds one for `new`. The payload is untouched.
pub(crate) fn rewrap(
    header: &[u8],
    ring: &KeyRing,
    new: &MasterKey,
) -> Result<Vec<u8>, SealingError> {
    let h = Header::from_bytes(header)?;
    let dek = h.unwrap_key(&keyring(ring))?;
    let ring_ids: Vec<[u8; 16]> = ring.all().map(|k| k.id().0).collect();
    let keep = |s: &envelope::Stanza| s.key_id().is_none_or(|id| !ring_ids.contains(&id.0));
    Ok(
        h.rewrap(&dek, keep, &Recipients::new().symmetric(&symmetric(new)))?
            .to_bytes(),
    )
}

/// Decrypts the metadata (name, content type, size, modification time).
pub(crate) fn metadata(header: &[u8], ring: &KeyRing) -> Result<Metadata, SealingError> {
    let h = Header::from_bytes(header)?;
    let dek = h.unwrap_key(&keyring(ring))?;
    Ok(h.metadata(&dek)?)
}

/// A readable, seekable plaintext stream (an envelope opener over a blob).
pub trait PlainRead: Read + Seek + Send + std::fmt::Debug {
    /// Makes reads stop at plaintext offset `end` (`None`: the end of the file), so that
    /// chunks past it are never read nor decrypted. To serve a byte range: seek to its start,
    /// set its end ([`Opener::set_end`]).
    fn set_end(&mut self, end: Option<u64>);
    /// The plaintext length, from the payload's length.
    ///
    /// # Errors
    /// The payload's length is not one an envelope payload can have.
    fn plaintext_len(&self) -> Result<u64, OpenError>;
    /// The file's decrypted metadata (name, content type), already read with the header.
    fn metadata(&self) -> &Metadata;
}

impl<R: Read + Seek + Send> PlainRead for Opener<R> {
    fn set_end(&mut self, end: Option<u64>) {
        Opener::set_end(self, end);
    }
    fn plaintext_len(&self) -> Result<u64, OpenError> {
        Opener::plaintext_len(self)
    }
    fn metadata(&self) -> &Metadata {
        Opener::metadata(self)
    }
}

/// Opens a stored header: unwraps the DEK, verifies the MAC, decrypts the metadata and
/// derives the payload key (see [`open_with`]).
pub(crate) fn open_header(header: &[u8], ring: &KeyRing) -> Result<OpenedHeader, SealingError> {
    let h = Header::from_bytes(header)?;
    let dek = h.unwrap_key(&keyring(ring))?;
    Ok(OpenedHeader::new(h, &dek)?)
}

/// Opens the payload of an opened header for reading plaintext; seeking decrypts only the
/// chunks a range covers.
pub(crate) fn open_with(
    opened: Arc<OpenedHeader>,
    payload: Box<dyn BlobRead>,
) -> Result<Box<dyn PlainRead>, SealingError> {
    Ok(Box::new(Opener::from_opened_seekable(opened, payload)?))
}

/// A header that opens only for `recipients` (X25519 public keys): no KEK stanza is kept, so
/// the bound copy is useless to anyone else, the server included. The payload is unchanged.
///
/// The same `share` and `recipients` always give the same bytes: the new stanzas' ephemeral
/// secrets come from a stream keyed by the file's DEK ([`kdf::BOUND_HEADER_STREAM`] over the
/// share id and the recipients) instead of fresh randomness. A download that breaks can then
/// resume with a `Range` and still get one consistent envelope. Keyed by the DEK, the stream
/// tells nothing to anyone who cannot already open the file, and it is gone when the DEK is
/// destroyed; two shares, or two recipient lists, get unrelated ephemeral secrets.
pub(crate) fn bind(
    header: &[u8],
    ring: &KeyRing,
    share: &ShareId,
    recipients: &[[u8; 32]],
) -> Result<Vec<u8>, SealingError> {
    let h = Header::from_bytes(header)?;
    let dek = h.unwrap_key(&keyring(ring))?;
    let add = recipients.iter().fold(Recipients::new(), |r, k| {
        r.x25519(Recipient::from_bytes(*k))
    });
    let mut input = share.0.to_vec();
    recipients.iter().for_each(|k| input.extend_from_slice(k));
    let mut stream = DerivedRandom::new(kdf::BOUND_HEADER_STREAM, dek.expose_secret(), &input);
    Ok(h.rewrap_with(&dek, |_| false, &add, &mut stream)?
        .to_bytes())
}
