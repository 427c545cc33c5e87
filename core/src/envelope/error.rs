//! What can go wrong sealing and opening, with who is at fault.

use std::io;

/// Why an envelope could not be opened.
///
/// Variants say *where* a check failed (the header MAC, chunk N, the end of the stream),
/// never *why* a tag did not verify.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The input is empty, or one of its first bytes differs from the Kinko magic (a
    /// non-empty prefix of the magic is a [`OpenError::TruncatedHeader`]).
    #[error("not a Kinko envelope (bad magic bytes)")]
    NotAnEnvelope,
    /// The envelope was written by a newer or unknown format version.
    #[error("unsupported envelope version {0} (this build reads version 1)")]
    UnsupportedVersion(u8),
    /// The payload suite byte names no suite this build knows.
    #[error("unsupported payload suite {0:#04x}")]
    UnsupportedSuite(u8),
    /// A header field is out of range or inconsistent.
    #[error("malformed header: {0}")]
    MalformedHeader(&'static str),
    /// The input ended inside the header.
    #[error("the header is truncated")]
    TruncatedHeader,
    /// A passphrase stanza asks for more Argon2 work than this build allows.
    #[error(
        "passphrase stanza asks for Argon2 parameters out of bounds \
         (m_cost={m_cost} KiB, t_cost={t_cost}, p_cost={p_cost})"
    )]
    Argon2ParamsOutOfBounds {
        /// Memory cost in KiB.
        m_cost: u32,
        /// Number of passes.
        t_cost: u32,
        /// Degree of parallelism.
        p_cost: u32,
    },
    /// None of the given identities, passphrase or keys unwraps any stanza.
    #[error("no identity, passphrase or key matches any stanza of this envelope")]
    NoMatchingStanza,
    /// The DEK was unwrapped but the header MAC does not verify: a header byte was changed.
    #[error("header authentication failed: the header was modified")]
    HeaderAuthFailed,
    /// Payload chunk `index` did not authenticate at its position.
    #[error("payload chunk {index} failed authentication: the file is damaged or was modified")]
    ChunkAuthFailed {
        /// The 0-based chunk index.
        index: u64,
    },
    /// The payload ended before its final chunk (or, for a random-access opener, is shorter
    /// than the recorded size needs, or has a length no payload can have).
    #[error("the payload is truncated")]
    Truncated,
    /// Bytes follow the final chunk.
    #[error("trailing data after the final chunk")]
    TrailingData,
    /// The payload's plaintext length differs from the size recorded in the metadata.
    #[error("the payload holds {actual} bytes but the metadata says {declared}")]
    SizeMismatch {
        /// Size in the metadata.
        declared: u64,
        /// Plaintext length of the payload.
        actual: u64,
    },
    /// Reading the envelope failed.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

impl OpenError {
    /// Recovers the envelope error carried inside an `io::Error` returned by
    /// [`Opener`](super::Opener)'s `Read` implementation, if there is one.
    pub fn from_io(err: &io::Error) -> Option<&OpenError> {
        err.get_ref().and_then(|e| e.downcast_ref::<OpenError>())
    }

    /// Wraps this error in an `io::Error`, for `Read` implementations. An `Io` error is
    /// returned as is.
    pub fn into_io(self) -> io::Error {
        match self {
            OpenError::Io(e) => e,
            other => {
                let kind = match other {
                    OpenError::Truncated | OpenError::TruncatedHeader => {
                        io::ErrorKind::UnexpectedEof
                    }
                    _ => io::ErrorKind::InvalidData,
                };
                io::Error::new(kind, other)
            }
        }
    }
}

/// Why an envelope could not be sealed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// No recipient, passphrase or key was given: nobody could open the envelope.
    #[error("no recipients: nobody could open this envelope")]
    NoRecipients,
    /// More stanzas than the format allows.
    #[error("too many recipients ({0}; at most 1024)")]
    TooManyStanzas(usize),
    /// More than one passphrase.
    #[error("at most one passphrase per envelope")]
    TooManyPassphrases,
    /// An X25519 recipient key is a low-order point: the shared secret would be all zero.
    #[error("recipient key {0} is invalid (low-order point)")]
    InvalidRecipient(String),
    /// The chunk size is not a power of two between 4 KiB and 4 MiB.
    #[error("chunk size {0} is not a power of two between 4 KiB and 4 MiB")]
    InvalidChunkSize(usize),
    /// Argon2 parameters outside the bounds every opener enforces.
    #[error(
        "Argon2 parameters out of bounds (m_cost={m_cost} KiB, t_cost={t_cost}, p_cost={p_cost})"
    )]
    Argon2ParamsOutOfBounds {
        /// Memory cost in KiB.
        m_cost: u32,
        /// Number of passes.
        t_cost: u32,
        /// Degree of parallelism.
        p_cost: u32,
    },
    /// File name or content type longer than 4096 bytes.
    #[error("metadata field too long ({0} bytes; at most 4096)")]
    MetadataTooLong(usize),
    /// The number of bytes sealed differs from the size given in the metadata.
    #[error(
        "sealed {actual} bytes but the metadata says {declared} (did the input change while it was read?)"
    )]
    SizeMismatch {
        /// Size given in the metadata.
        declared: u64,
        /// Bytes actually sealed.
        actual: u64,
    },
    /// Writing the envelope failed.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}
