//! The objects of the API (docs/API.md), as this client returns them.
//!
//! Times are seconds since the Unix epoch (UTC); durations are seconds. Ids are parsed into
//! `kinko-core`'s id types. Objects that hold a secret (a new share's link, a new API token, a
//! download ticket) keep it in a zeroized type whose `Debug` hides it.

use std::fmt;
use std::str::FromStr;

use kinko_core::vault::{ApiToken, FileId, Role, ShareId, TokenId, UserId};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};
use zeroize::Zeroize;

use crate::link::Link;

/// Parses an id or role from its string form; the error never repeats the input.
fn from_str<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
{
    let text = String::deserialize(d)?;
    text.parse()
        .map_err(|_| serde::de::Error::custom("malformed id or role"))
}

/// `GET /api/v1/me`: who the token belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Me {
    /// The user.
    #[serde(deserialize_with = "from_str")]
    pub user: UserId,
    /// The user's name.
    pub name: String,
    /// The user's role.
    #[serde(deserialize_with = "from_str")]
    pub role: Role,
    /// The id of the token used.
    #[serde(deserialize_with = "from_str")]
    pub token: TokenId,
}

/// A stored file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct FileInfo {
    /// The file's id.
    #[serde(deserialize_with = "from_str")]
    pub id: FileId,
    /// The name the partner sees.
    pub name: String,
    /// The content type given at upload.
    #[serde(default)]
    pub content_type: Option<String>,
    /// Plaintext size in bytes.
    pub size: u64,
    /// Upload time.
    pub created: u64,
    /// When retention deletes the file.
    #[serde(default)]
    pub retain_until: Option<u64>,
}

/// What to create a share with (`POST /api/v1/files/{file}/shares`).
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct ShareOptions {
    /// Seconds until the share expires (required by the API; at most the deployment's
    /// maximum share lifetime).
    pub expires_in: u64,
    /// Download limit (≥ 1); `None`: unlimited until expiry.
    pub max_downloads: Option<u32>,
    /// A password the partner must give (1–1024 bytes).
    pub password: Option<SecretString>,
    /// X25519 recipients: when given, downloads come still encrypted to these keys.
    pub recipients: Vec<kinko_core::keys::Recipient>,
}

impl ShareOptions {
    /// A share that expires after `expires_in` seconds, with no other restriction.
    pub fn new(expires_in: u64) -> ShareOptions {
        ShareOptions {
            expires_in,
            ..ShareOptions::default()
        }
    }
}

/// A share just created: its link (with the secret) is shown once.
#[derive(Debug)]
#[non_exhaustive]
pub struct CreatedShare {
    /// The share's id.
    pub id: ShareId,
    /// The shared file.
    pub file: FileId,
    /// The link to hand out (`Debug` hides its secret).
    pub link: Link,
    /// When the share expires.
    pub expires: u64,
    /// Whether the deployment is frozen: the link is refused until an admin unfreezes.
    pub frozen: bool,
}

/// The wire form of [`CreatedShare`]; `link` is wiped once parsed.
#[derive(Deserialize)]
pub(crate) struct CreatedShareWire {
    #[serde(deserialize_with = "from_str")]
    id: ShareId,
    #[serde(deserialize_with = "from_str")]
    file: FileId,
    link: String,
    expires: u64,
    /// Absent from servers older than the field.
    #[serde(default)]
    frozen: bool,
}

impl CreatedShareWire {
    pub(crate) fn into_share(mut self) -> Result<CreatedShare, String> {
        let parsed = Link::parse(&self.link);
        self.link.zeroize();
        let link = parsed.map_err(|e| format!("the link in the answer is malformed: {e}"))?;
        Ok(CreatedShare {
            id: self.id,
            file: self.file,
            link,
            expires: self.expires,
            frozen: self.frozen,
        })
    }
}

/// A share's state, evaluated at the server's current time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ShareState {
    /// Usable.
    Active,
    /// Past its expiry.
    Expired,
    /// Revoked by its owner or an admin.
    Revoked,
    /// Its download limit is reached.
    Exhausted,
    /// Locked by too many wrong passwords.
    Locked,
    /// It would be active, but the deployment is frozen (refused until an admin unfreezes).
    Frozen,
    /// A state this client does not know (a newer server).
    #[serde(other)]
    Unknown,
}

impl ShareState {
    /// The API's name for the state.
    pub fn as_str(self) -> &'static str {
        match self {
            ShareState::Active => "active",
            ShareState::Expired => "expired",
            ShareState::Revoked => "revoked",
            ShareState::Exhausted => "exhausted",
            ShareState::Locked => "locked",
            ShareState::Frozen => "frozen",
            ShareState::Unknown => "unknown",
        }
    }
}

impl fmt::Display for ShareState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A share as listed (the link secret is never shown again).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct ShareInfo {
    /// The share's id.
    #[serde(deserialize_with = "from_str")]
    pub id: ShareId,
    /// The shared file.
    #[serde(deserialize_with = "from_str")]
    pub file: FileId,
    /// Creation time.
    pub created: u64,
    /// Expiry time.
    pub expires: u64,
    /// Download limit, if any.
    #[serde(default)]
    pub max_downloads: Option<u32>,
    /// Downloads counted so far.
    pub downloads: u32,
    /// Whether a password is set.
    pub password: bool,
    /// How many recipient keys downloads are bound to (0: plaintext downloads).
    pub recipients: u32,
    /// Whether wrong passwords locked it.
    pub locked: bool,
    /// When it was revoked, if it was.
    #[serde(default)]
    pub revoked: Option<u64>,
    /// Its state now.
    pub state: ShareState,
}

/// A user, as an admin sees it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct UserInfo {
    /// The user's id.
    #[serde(deserialize_with = "from_str")]
    pub id: UserId,
    /// The user's name.
    pub name: String,
    /// The user's role.
    #[serde(deserialize_with = "from_str")]
    pub role: Role,
    /// Whether the user is disabled.
    pub disabled: bool,
    /// Creation time.
    pub created: u64,
}

/// An API token as an admin lists it: never the token itself.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct TokenInfo {
    /// The token's id (the part of the token before its secret).
    #[serde(deserialize_with = "from_str")]
    pub id: TokenId,
    /// The label it was issued with.
    pub label: String,
    /// Issue time.
    pub created: u64,
    /// Expiry time.
    pub expires: u64,
    /// Whether it has expired (at the server's current time).
    pub expired: bool,
}

/// A new API token, shown once.
#[derive(Debug)]
#[non_exhaustive]
pub struct IssuedToken {
    /// The token (`Debug` prints only its id; the string is behind `expose_secret`).
    pub token: ApiToken,
    /// The token's id.
    pub id: TokenId,
    /// When it expires.
    pub expires: u64,
}

#[derive(Deserialize)]
pub(crate) struct IssuedTokenWire {
    token: String,
    #[serde(deserialize_with = "from_str")]
    id: TokenId,
    expires: u64,
}

impl IssuedTokenWire {
    pub(crate) fn into_token(mut self) -> Result<IssuedToken, String> {
        let parsed = ApiToken::parse(&self.token);
        self.token.zeroize();
        let token = parsed.ok_or("the token in the answer is malformed")?;
        if token.id() != self.id {
            return Err("the token in the answer does not match its id".into());
        }
        Ok(IssuedToken {
            token,
            id: self.id,
            expires: self.expires,
        })
    }
}

/// What an expiry sweep did (`POST /api/v1/admin/sweep`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct SweepReport {
    /// Expired index entries read.
    pub visited: u64,
    /// Expired shares deleted.
    pub shares_removed: u64,
    /// Files past retention, crypto-shredded.
    pub files_removed: u64,
}

/// What a KEK rotation did (`POST /api/v1/admin/kek/rotate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct RotationReport {
    /// File keys re-wrapped under the primary KEK.
    pub rewrapped: u64,
    /// File keys already under it.
    pub already_current: u64,
}

/// The deployment's retention policy, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct Retention {
    /// Retention of a file uploaded without one.
    pub default: u64,
    /// The longest retention an uploader may ask for.
    pub max: u64,
}

/// The result of verifying the audit chain.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct AuditReport {
    /// Records checked.
    pub records: u64,
    /// Checkpoints whose signature and head verified.
    pub checkpoints: u64,
    /// The highest sequence number covered by a verified checkpoint (0 if none).
    pub signed_through: u64,
    /// The last record's hash (hex).
    pub head: String,
}

/// What a link leads to (`POST /api/v1/links/{share}`); nothing is counted.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct LinkInfo {
    /// The file name the sender chose.
    pub name: String,
    /// The content type.
    #[serde(default)]
    pub content_type: Option<String>,
    /// Plaintext size in bytes.
    pub size: u64,
    /// When the share expires.
    pub expires: u64,
    /// Whether a password is needed.
    pub password_required: bool,
    /// Whether the download comes encrypted to the partner's key.
    pub recipient_bound: bool,
    /// Downloads left, if the share has a limit.
    #[serde(default)]
    pub downloads_left: Option<u64>,
}

/// A download ticket: lets one counted download be fetched (in as many ranges as needed)
/// until it expires. A bearer secret: `Debug` hides it.
pub struct Ticket {
    value: SecretString,
    /// When the ticket expires; `None` for a ticket that came in a download's `Kinko-Ticket`
    /// answer header, which carries no expiry.
    pub expires: Option<u64>,
    /// Downloads left after this one, if the share has a limit.
    pub downloads_left: Option<u64>,
}

impl Ticket {
    /// A ticket from its parts (e.g. one kept by an app between ranges).
    pub fn new(value: SecretString, expires: Option<u64>, downloads_left: Option<u64>) -> Ticket {
        Ticket {
            value,
            expires,
            downloads_left,
        }
    }

    /// The ticket value, for the `Kinko-Ticket` header.
    pub fn expose_secret(&self) -> &str {
        self.value.expose_secret()
    }
}

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticket")
            .field("value", &"..")
            .field("expires", &self.expires)
            .field("downloads_left", &self.downloads_left)
            .finish()
    }
}

#[derive(Deserialize)]
pub(crate) struct TicketWire {
    ticket: String,
    expires: u64,
    #[serde(default)]
    downloads_left: Option<u64>,
}

impl TicketWire {
    pub(crate) fn into_ticket(self) -> Result<Ticket, String> {
        if !valid_ticket(&self.ticket) {
            let mut t = self.ticket;
            t.zeroize();
            return Err("the ticket in the answer is malformed".into());
        }
        Ok(Ticket {
            value: SecretString::from(self.ticket),
            expires: Some(self.expires),
            downloads_left: self.downloads_left,
        })
    }
}

/// A ticket is hex (docs/API.md); anything else could not go in a header anyway.
pub(crate) fn valid_ticket(t: &str) -> bool {
    !t.is_empty() && t.len() <= 1024 && t.bytes().all(|b| b.is_ascii_hexdigit())
}

/// How a link download proves it may fetch the bytes.
#[derive(Debug, Clone, Copy)]
pub enum DownloadAuth<'a> {
    /// Nothing beyond the link (a share without a password; counts one download).
    LinkOnly,
    /// A ticket from [`Client::link_ticket`](crate::Client::link_ticket) (not counted again).
    Ticket(&'a Ticket),
    /// The share's password (counts one download; the answer carries a ticket).
    Password(&'a SecretString),
}

/// A finished download.
#[derive(Debug)]
#[non_exhaustive]
pub struct Download {
    /// Bytes written.
    pub bytes: u64,
    /// Whether the bytes are a Kinko envelope sealed to the share's recipients
    /// (`Kinko-Recipient-Bound: 1`): open it with `kinko open -i KEY` or
    /// `kinko_core::envelope`.
    pub recipient_bound: bool,
    /// The `Content-Type` of the answer.
    pub content_type: Option<String>,
    /// The file name from `Content-Disposition`, if it had a usable one. Not sanitized:
    /// check it before using it as a path.
    pub file_name: Option<String>,
    /// The ticket the server issued for this download, if it issued one (a download made with
    /// a password).
    pub ticket: Option<Ticket>,
}

/// Transfer progress, reported as bytes move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes transferred so far.
    pub done: u64,
    /// Total bytes, when known (the upload's declared size, or the answer's `Content-Length`).
    pub total: Option<u64>,
}

/// Options of an upload (`POST /api/v1/files`).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct UploadOptions {
    /// The content type to store with the file.
    pub content_type: Option<String>,
    /// Seconds to keep the file; `None`: the deployment's default.
    pub retention: Option<u64>,
    /// The exact size of the body, when known: it is sent as `Content-Length` (else the body
    /// is sent chunked). The reader must then yield exactly this many bytes.
    pub size: Option<u64>,
}
