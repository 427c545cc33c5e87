//! [`KinkoError`]: every failure that crosses the boundary, one variant per cause.

use std::io;

use kinko_core::envelope::{OpenError, SealError};
use kinko_core::keys::KeyError;

/// Why a Kinko call failed.
///
/// One variant per cause, with the same distinctions as the core library: apps can tell a
/// file sealed to someone else ([`KinkoError::NoIdentityMatches`]) from a modified header
/// ([`KinkoError::HeaderAuthFailed`]), a damaged chunk ([`KinkoError::ChunkAuthFailed`]), a
/// cut-off download ([`KinkoError::Truncated`]) or a cancelled operation
/// ([`KinkoError::Cancelled`]). Like the core, a variant says *where* a check failed, never
/// *why* a tag did not verify, and no variant carries key material, passphrases, passwords,
/// tokens or link secrets.
///
/// In Python each variant is a subclass of `KinkoError` (`KinkoError.ChunkAuthFailed`, with
/// its fields as attributes); in Kotlin a subclass of `KinkoException`; in Swift a case of
/// `KinkoError`.
#[derive(Debug, thiserror::Error, uniffi::Error)]
#[non_exhaustive]
pub enum KinkoError {
    /// A key or key file is not valid; `reason` says which check failed (never the key).
    #[error("{reason}")]
    InvalidKey {
        /// Which check failed, e.g. "invalid recipient: bad Bech32 checksum".
        reason: String,
    },
    /// Sealing needs at least one recipient or a passphrase: nobody could open the file.
    #[error("no recipients: nobody could open this envelope")]
    NoRecipients,
    /// An argument is out of range or the operation cannot be done as asked (a bad chunk
    /// size, too many recipients, a metadata field too long, the output is the input...).
    #[error("{reason}")]
    InvalidArgument {
        /// What is wrong.
        reason: String,
    },

    /// The input does not start with the Kinko magic bytes.
    #[error("not a Kinko envelope")]
    NotAnEnvelope,
    /// The envelope was written by a format version this build does not read.
    #[error("unsupported envelope version {version}")]
    UnsupportedVersion {
        /// The version byte of the envelope.
        version: u8,
    },
    /// The payload suite byte names no suite this build knows.
    #[error("unsupported payload suite {suite:#04x}")]
    UnsupportedSuite {
        /// The suite byte of the envelope.
        suite: u8,
    },
    /// A header field is out of range or inconsistent.
    #[error("malformed header: {reason}")]
    MalformedHeader {
        /// Which field, e.g. "stanza count".
        reason: String,
    },
    /// The input ended inside the header.
    #[error("the header is truncated")]
    TruncatedHeader,
    /// A passphrase stanza asks for more Argon2id work than any opener allows.
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
    /// None of the given identities or the passphrase opens this envelope: it was sealed to
    /// someone else (or the passphrase is wrong).
    #[error("no identity or passphrase matches any stanza of this envelope")]
    NoIdentityMatches,
    /// The key was unwrapped but the header MAC does not verify: a header byte was changed.
    #[error("header authentication failed: the header was modified")]
    HeaderAuthFailed,
    /// Payload chunk `chunk` (0-based) did not authenticate at its position: the file is
    /// damaged or was modified. No plaintext of that chunk was released.
    #[error("payload chunk {chunk} failed authentication")]
    ChunkAuthFailed {
        /// The 0-based chunk index.
        chunk: u64,
    },
    /// The payload ended before its final chunk (a cut-off file or download).
    #[error("the payload is truncated")]
    Truncated,
    /// Bytes follow the final chunk.
    #[error("trailing data after the final chunk")]
    TrailingData,
    /// The number of plaintext bytes differs from the size recorded in the metadata (when
    /// sealing: the input file changed while it was read).
    #[error("{actual} bytes, but the metadata says {declared}")]
    SizeMismatch {
        /// The size recorded in (or declared for) the metadata.
        declared: u64,
        /// The number of bytes actually sealed or opened.
        actual: u64,
    },

    /// Reading or writing a local file failed.
    #[error("I/O error: {detail}")]
    Io {
        /// The path and the operating system's message.
        detail: String,
    },
    /// The operation was cancelled (a [`CancelToken`](crate::CancelToken) was cancelled, or
    /// the progress listener returned false). Nothing was written to the output path.
    #[error("cancelled")]
    Cancelled,
    /// The progress listener threw an exception; the operation was stopped.
    #[error("the progress listener failed: {detail}")]
    CallbackFailed {
        /// The exception, as the foreign language prints it.
        detail: String,
    },

    /// The text is not a share link (`BASE/s/<share id>#<secret>`); `reason` says which part
    /// is wrong, never the secret.
    #[error("not a valid share link: {reason}")]
    InvalidLink {
        /// Which part is wrong.
        reason: String,
    },
    /// The server refused the link: it is unknown, wrong, expired, revoked, used up, locked,
    /// frozen, or its file was deleted (the server gives one answer for all).
    #[error("the link is not valid (wrong, expired, revoked or used up)")]
    LinkInvalid,
    /// The share has a password and none was given.
    #[error("this share needs a password")]
    PasswordRequired,
    /// The share's password is wrong (wrong passwords lock the share after a few attempts).
    #[error("wrong password")]
    WrongPassword,
    /// The share is bound to other keys than the identities given; no download was counted.
    #[error("this share is bound to other keys than yours")]
    NotRecipient,
    /// The server does not accept the API token (missing, wrong, expired, revoked, or its
    /// user is disabled).
    #[error("the server does not accept the API token: {detail}")]
    Unauthenticated {
        /// The server's message.
        detail: String,
    },
    /// The token's role does not allow this.
    #[error("not allowed: {detail}")]
    Forbidden {
        /// The server's message.
        detail: String,
    },
    /// No such file or share, or not the caller's.
    #[error("not found: {detail}")]
    NotFound {
        /// The server's message.
        detail: String,
    },
    /// The server refused a value (outside its policy, malformed...).
    #[error("refused by the server: {detail}")]
    InvalidRequest {
        /// The server's message, naming the value.
        detail: String,
    },
    /// The upload is larger than the server accepts.
    #[error("too large: {detail}")]
    TooLarge {
        /// The server's message.
        detail: String,
    },
    /// Too many attempts from this address; retry later.
    #[error("too many attempts; retry later")]
    RateLimited {
        /// Seconds to wait, when the server said.
        retry_after_seconds: Option<u64>,
    },
    /// No answer from the server: the connection could not be made or broke (a download cut
    /// short is one).
    #[error("{}", network_text(*kind, detail))]
    Network {
        /// What kind of failure.
        kind: crate::client::NetworkKind,
        /// The transport's description (never a credential).
        detail: String,
    },
    /// Any other failure on the server's side, or an answer this library does not
    /// understand: `code` is the API's error code (`internal`, `unavailable`...; empty for
    /// an unexpected answer).
    #[error("server error (HTTP {status} {code}): {detail}")]
    Server {
        /// The HTTP status.
        status: u16,
        /// The API's error code, or empty.
        code: String,
        /// What the server said or what was unexpected.
        detail: String,
    },
    /// The call would have sent `credential` (the API token, or a link's secret) over plain
    /// `http://` to `host`, which is not this machine: anyone on the network could read it.
    /// Nothing was sent. Use the server's `https://` address, or, on a trusted network only,
    /// make the client with `allow_plain_http` set.
    #[error(
        "refusing to send {credential} to {host} over plain http://: anyone on the network \
         could read it; use the server's https:// address, or allow_plain_http when making \
         the KinkoClient if the network is trusted"
    )]
    PlainHttpRefused {
        /// The host (and port), e.g. `files.example.com:8080`.
        host: String,
        /// What would have been sent: "the API token" or "the link's secret".
        credential: String,
    },
}

impl KinkoError {
    pub(crate) fn invalid_argument(reason: impl Into<String>) -> Self {
        KinkoError::InvalidArgument {
            reason: reason.into(),
        }
    }

    /// An I/O error on `path`, `what` being the operation ("read", "write"...).
    pub(crate) fn io(what: &str, path: &str, err: &io::Error) -> Self {
        KinkoError::Io {
            detail: format!("could not {what} {path}: {err}"),
        }
    }
}

impl From<KeyError> for KinkoError {
    fn from(err: KeyError) -> Self {
        match err {
            KeyError::Io(e) => KinkoError::Io {
                detail: format!("could not read keys: {e}"),
            },
            // KeyError messages name the failed check and never the key text.
            other => KinkoError::InvalidKey {
                reason: other.to_string(),
            },
        }
    }
}

impl From<OpenError> for KinkoError {
    fn from(err: OpenError) -> Self {
        match err {
            OpenError::NotAnEnvelope => KinkoError::NotAnEnvelope,
            OpenError::UnsupportedVersion(version) => KinkoError::UnsupportedVersion { version },
            OpenError::UnsupportedSuite(suite) => KinkoError::UnsupportedSuite { suite },
            OpenError::MalformedHeader(reason) => KinkoError::MalformedHeader {
                reason: reason.to_owned(),
            },
            OpenError::TruncatedHeader => KinkoError::TruncatedHeader,
            OpenError::Argon2ParamsOutOfBounds {
                m_cost,
                t_cost,
                p_cost,
            } => KinkoError::Argon2ParamsOutOfBounds {
                m_cost,
                t_cost,
                p_cost,
            },
            OpenError::NoMatchingStanza => KinkoError::NoIdentityMatches,
            OpenError::HeaderAuthFailed => KinkoError::HeaderAuthFailed,
            OpenError::ChunkAuthFailed { index } => KinkoError::ChunkAuthFailed { chunk: index },
            OpenError::Truncated => KinkoError::Truncated,
            OpenError::TrailingData => KinkoError::TrailingData,
            OpenError::SizeMismatch { declared, actual } => {
                KinkoError::SizeMismatch { declared, actual }
            }
            OpenError::Io(e) => KinkoError::Io {
                detail: e.to_string(),
            },
            // `OpenError` is non-exhaustive: a future variant still crosses as a message.
            other => KinkoError::MalformedHeader {
                reason: other.to_string(),
            },
        }
    }
}

impl From<SealError> for KinkoError {
    fn from(err: SealError) -> Self {
        match err {
            SealError::NoRecipients => KinkoError::NoRecipients,
            SealError::InvalidRecipient(_) => KinkoError::InvalidKey {
                reason: err.to_string(),
            },
            SealError::SizeMismatch { declared, actual } => {
                KinkoError::SizeMismatch { declared, actual }
            }
            SealError::Io(e) => KinkoError::Io {
                detail: e.to_string(),
            },
            // Too many stanzas or passphrases, a bad chunk size, Argon2 parameters or
            // metadata out of bounds: the caller's arguments.
            other => KinkoError::InvalidArgument {
                reason: other.to_string(),
            },
        }
    }
}

impl From<uniffi::UnexpectedUniFFICallbackError> for KinkoError {
    fn from(err: uniffi::UnexpectedUniFFICallbackError) -> Self {
        KinkoError::CallbackFailed { detail: err.reason }
    }
}

#[uniffi::export]
impl KinkoError {
    /// What went wrong, as a sentence to show a person. The exception's own text (Python's
    /// `str()`, Kotlin's `message`) shows only the variant's fields, which is nothing at all
    /// for `NoIdentityMatches`, `Cancelled`, `LinkInvalid`...; this is the whole sentence.
    /// Never contains a secret.
    pub fn message(&self) -> String {
        self.to_string()
    }
}

/// [`KinkoError::Network`]'s sentence; a host name that does not resolve says what to check.
fn network_text(kind: crate::client::NetworkKind, detail: &str) -> String {
    match kind {
        crate::client::NetworkKind::Dns => format!(
            "cannot find the host {detail}: check the server URL or the link, and the network \
             connection"
        ),
        _ => format!("network error ({kind:?}): {detail}"),
    }
}
