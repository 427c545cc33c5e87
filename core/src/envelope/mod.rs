//! The Kinko envelope, format v1: per-file streaming encryption.
//!
//! The format is specified byte for byte in `docs/FORMAT.md`. In short: `header || payload`;
//! a random data key (DEK) per file, wrapped in *stanzas* for each X25519 recipient,
//! passphrase or symmetric key that may open it; a payload cut into chunks sealed with
//! AES-256-GCM or ChaCha20-Poly1305 under a key derived from the DEK; a BLAKE3 MAC over the
//! header keyed from the DEK; encrypted metadata (name, content type, size, modification time).
//!
//! # Which type do I use?
//!
//! - To encrypt: describe who may open the file with [`Recipients`], then either call
//!   [`seal`] to copy a `Read` into a `Write`, or make a [`Sealer`] (a `Write`) and call
//!   [`Sealer::finish`] at the end. [`Sealer::detached`] writes the payload only and hands
//!   the header back at the end (the vault stores the two apart).
//! - To decrypt: collect what you hold in a [`Keyring`] and make an [`Opener`] (a `Read`, and
//!   a `Seek` over seekable input for random access), or call [`open`].
//! - To look at an envelope without keys: [`Header::read`].
//! - To add or remove recipients without touching the payload: [`Header::rewrap`].
//!
//! ```
//! use kinko_core::envelope::{self, Keyring, Recipients, SealOptions};
//! use kinko_core::keys::Identity;
//!
//! let alice = Identity::generate();
//! let recipients = Recipients::new().x25519(alice.to_public());
//! let mut sealed = Vec::new();
//! envelope::seal(&b"quarterly report"[..], &mut sealed, &recipients, SealOptions::default())?;
//!
//! let keyring = Keyring::new().identity(alice);
//! let mut opened = Vec::new();
//! envelope::open(&sealed[..], &mut opened, &keyring)?;
//! assert_eq!(opened, b"quarterly report");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub(crate) mod cipher;
mod error;
pub(crate) mod kdf;
mod key;
mod metadata;
mod open;
mod read;
pub(crate) mod rng;
mod seal;
mod stanza;
mod write;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod vectors;

use std::fmt;

pub use cipher::TAG_BYTES;
pub use error::{OpenError, SealError};
pub use key::{DataKey, KEY_BYTES, KEY_ID_BYTES, KeyId, SymmetricKey};
pub use metadata::{MAX_METADATA_FIELD, Metadata};
pub use open::{OpenedHeader, Opener, open};
pub use seal::{SealOptions, Sealer, seal};
pub use stanza::{Argon2Params, Keyring, Recipients, RewrapError};

/// The magic bytes every envelope starts with (PNG-style: a high byte, then CR LF, SUB, LF
/// to catch text-mode mangling).
pub const MAGIC: [u8; 8] = *b"\x89KNK\r\n\x1a\n";
/// The format version this build reads and writes.
pub const VERSION: u8 = 1;
/// Length of the fixed part of the header: magic, version, suite, chunk size exponent,
/// flags, payload nonce.
pub const FIXED_HEADER_BYTES: usize = 28;
/// Length of the random payload nonce.
pub const PAYLOAD_NONCE_BYTES: usize = 16;
/// Length of the header MAC.
pub const MAC_BYTES: usize = 32;
/// Smallest chunk size exponent (4 KiB chunks).
pub const MIN_CHUNK_EXPONENT: u8 = 12;
/// Largest chunk size exponent (4 MiB chunks): bounds an opener's memory.
pub const MAX_CHUNK_EXPONENT: u8 = 22;
/// Default chunk size exponent (64 KiB chunks).
pub const DEFAULT_CHUNK_EXPONENT: u8 = 16;
/// Default chunk size: 64 KiB of plaintext per chunk.
pub const DEFAULT_CHUNK_SIZE: usize = 1 << DEFAULT_CHUNK_EXPONENT;
/// Most stanzas one header may hold.
pub const MAX_STANZAS: usize = 1024;
/// Longest stanza body.
pub const MAX_STANZA_BODY: usize = 1024;
/// Smallest metadata field: a 12-byte nonce and a 16-byte tag.
pub const MIN_METADATA_BYTES: usize = 12 + TAG_BYTES;
/// Largest metadata field.
pub const MAX_METADATA_BYTES: usize = 65536;

/// The AEAD that seals payload chunks and metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Suite {
    /// AES-256-GCM (suite byte `01`): the default where the CPU has AES instructions.
    Aes256Gcm,
    /// ChaCha20-Poly1305 (suite byte `02`): the default elsewhere, constant-time in software.
    ChaCha20Poly1305,
}

impl Suite {
    /// The suite byte in the header.
    pub fn to_byte(self) -> u8 {
        match self {
            Suite::Aes256Gcm => 0x01,
            Suite::ChaCha20Poly1305 => 0x02,
        }
    }

    /// The suite for a header byte, if known.
    pub fn from_byte(byte: u8) -> Option<Suite> {
        match byte {
            0x01 => Some(Suite::Aes256Gcm),
            0x02 => Some(Suite::ChaCha20Poly1305),
            _ => None,
        }
    }

    /// AES-256-GCM where the CPU accelerates AES and carry-less multiplication (fast and
    /// constant time), ChaCha20-Poly1305 elsewhere (software AES is slow or leaks timing).
    pub fn preferred() -> Suite {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("aes")
                && std::arch::is_x86_feature_detected!("pclmulqdq")
            {
                return Suite::Aes256Gcm;
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            if std::arch::is_aarch64_feature_detected!("aes") {
                return Suite::Aes256Gcm;
            }
        }
        Suite::ChaCha20Poly1305
    }
}

impl Default for Suite {
    fn default() -> Self {
        Suite::preferred()
    }
}

impl fmt::Display for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Suite::Aes256Gcm => "AES-256-GCM",
            Suite::ChaCha20Poly1305 => "ChaCha20-Poly1305",
        })
    }
}

/// The kind of a stanza.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StanzaKind {
    /// `01`: the DEK wrapped to an X25519 recipient.
    X25519,
    /// `02`: the DEK wrapped under an Argon2id passphrase key.
    Passphrase,
    /// `03`: the DEK wrapped under a symmetric key with a key id.
    Symmetric,
    /// A kind this build does not know; carried, covered by the MAC, never unwrapped.
    Unknown(u8),
}

impl StanzaKind {
    pub(crate) const X25519_BYTE: u8 = 0x01;
    pub(crate) const PASSPHRASE_BYTE: u8 = 0x02;
    pub(crate) const SYMMETRIC_BYTE: u8 = 0x03;

    fn from_byte(byte: u8) -> StanzaKind {
        match byte {
            Self::X25519_BYTE => StanzaKind::X25519,
            Self::PASSPHRASE_BYTE => StanzaKind::Passphrase,
            Self::SYMMETRIC_BYTE => StanzaKind::Symmetric,
            other => StanzaKind::Unknown(other),
        }
    }
}

impl fmt::Display for StanzaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StanzaKind::X25519 => f.write_str("x25519"),
            StanzaKind::Passphrase => f.write_str("passphrase"),
            StanzaKind::Symmetric => f.write_str("symmetric-key"),
            StanzaKind::Unknown(b) => write!(f, "unknown({b:#04x})"),
        }
    }
}

/// One stanza of a header: a kind byte and a body that wraps the DEK. Public data.
#[derive(Clone, PartialEq, Eq)]
pub struct Stanza {
    kind: u8,
    body: Vec<u8>,
}

impl Stanza {
    /// The kind of this stanza.
    pub fn kind(&self) -> StanzaKind {
        StanzaKind::from_byte(self.kind)
    }

    /// The raw kind byte.
    pub fn kind_byte(&self) -> u8 {
        self.kind
    }

    /// The body bytes.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The key id of a symmetric-key stanza.
    pub fn key_id(&self) -> Option<KeyId> {
        (self.kind() == StanzaKind::Symmetric).then(|| {
            KeyId(
                self.body[..KEY_ID_BYTES]
                    .try_into()
                    .expect("parsed symmetric stanzas have 80-byte bodies"),
            )
        })
    }

    /// The Argon2 parameters of a passphrase stanza.
    pub fn argon2_params(&self) -> Option<Argon2Params> {
        (self.kind() == StanzaKind::Passphrase).then(|| stanza::passphrase_params(&self.body))
    }
}

impl fmt::Debug for Stanza {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Stanza");
        s.field("kind", &self.kind());
        if let Some(id) = self.key_id() {
            s.field("key_id", &id);
        }
        if let Some(p) = self.argon2_params() {
            s.field("argon2", &p);
        }
        s.field("body_len", &self.body.len()).finish()
    }
}

/// An envelope header: everything before the payload. Public data; opening anything in it
/// needs a [`DataKey`].
///
/// Obtained from [`Header::read`] (parsing, no keys needed), from [`Sealer::finish_detached`],
/// or from [`Header::rewrap`].
#[derive(Clone, PartialEq, Eq)]
pub struct Header {
    suite: Suite,
    chunk_exponent: u8,
    payload_nonce: [u8; PAYLOAD_NONCE_BYTES],
    stanzas: Vec<Stanza>,
    /// metadata nonce || metadata ciphertext
    metadata: Vec<u8>,
    /// The whole encoded header, MAC included.
    bytes: Vec<u8>,
}

impl Header {
    /// The payload suite.
    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// Plaintext bytes per payload chunk.
    pub fn chunk_size(&self) -> usize {
        1 << self.chunk_exponent
    }

    /// The stanzas, in header order.
    pub fn stanzas(&self) -> &[Stanza] {
        &self.stanzas
    }

    /// Length of the encrypted metadata field (nonce, ciphertext and tag).
    pub fn metadata_len(&self) -> usize {
        self.metadata.len()
    }

    /// The encoded header, MAC included: exactly the bytes that precede the payload.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The encoded header as an owned buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.bytes.clone()
    }

    /// Length of the encoded header in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Always false: a header has at least its fixed part. (Present for API symmetry.)
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The plaintext length a payload of `payload_len` bytes holds, if that length is one a
    /// well-formed payload can have.
    pub fn plaintext_len(&self, payload_len: u64) -> Option<u64> {
        let enc = (self.chunk_size() + TAG_BYTES) as u64;
        let chunks = payload_len.div_ceil(enc).max(1);
        let last = payload_len.checked_sub((chunks - 1) * enc)?;
        if last < TAG_BYTES as u64 || (chunks > 1 && last == TAG_BYTES as u64) {
            return None;
        }
        Some(payload_len - chunks * TAG_BYTES as u64)
    }

    /// The payload length for `plaintext_len` bytes of plaintext, or `None` if it does not
    /// fit in a `u64`. Checked because the size it is given comes from metadata that anyone
    /// holding the DEK could have written: a size near `u64::MAX` must not wrap around to a
    /// small length that a short payload could match.
    pub fn payload_len(&self, plaintext_len: u64) -> Option<u64> {
        let chunks = plaintext_len.div_ceil(self.chunk_size() as u64).max(1);
        chunks
            .checked_mul(TAG_BYTES as u64)?
            .checked_add(plaintext_len)
    }
}

impl fmt::Debug for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Header")
            .field("suite", &self.suite)
            .field("chunk_size", &self.chunk_size())
            .field("stanzas", &self.stanzas)
            .field("metadata_len", &self.metadata.len())
            .field("len", &self.bytes.len())
            .finish()
    }
}
mod pipeline;

pub use pipeline::{THREADS_ENV, set_default_threads};
