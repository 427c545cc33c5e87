//! Kinko client: a blocking client of the Kinko sidecar's HTTP API (docs/API.md).
//!
//! - [`Client`]: one method per route. Employees and admins call with an API token
//!   ([`kinko_core::vault::ApiToken`]); partners need only a [`Link`].
//! - [`Link`]: a parsed share link (`https://host/s/<share id>#<secret>`). Its secret is
//!   zeroized, hidden from `Debug`, and sent only in the `Kinko-Link-Secret` header.
//! - [`ClientError`]: one variant per API error code, plus network, I/O and unexpected
//!   answers.
//!
//! Credentials never cross the network in clear: a call that would send the API token or a
//! link's secret over plain `http://` to a host other than this machine fails with
//! [`ClientError::PlainHttp`] before anything is sent, unless the client was built with
//! [`Client::allow_plain_http`] (for a trusted network or a test setup). `http://` to
//! `localhost`, 127.0.0.0/8 and `::1` is always allowed (e.g. `kinko serve --dev`).
//!
//! Uploads and downloads stream through `Read` and `Write`; nothing holds a whole file.
//!
//! A partner fetching a share:
//!
//! ```no_run
//! use kinko_client::{Client, DownloadAuth, Link};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let link = Link::parse("https://files.example.com/s/00112233445566778899aabbccddeeff#\
//!     0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")?;
//! let client = Client::for_link(&link);
//! let info = client.link_info(&link)?;
//! let ticket = client.link_ticket(&link, None)?;
//! // `info.name` is the sender's choice: never use it as a path without sanitizing it.
//! println!("{} ({} bytes)", info.name, info.size);
//! let mut out = std::fs::File::create("download.bin")?;
//! let download = client.link_download(&link, DownloadAuth::Ticket(&ticket), &mut out, |_| {})?;
//! if download.recipient_bound {
//!     // `out` holds a Kinko envelope: open it with the recipient's identity.
//! }
//! # Ok(()) }
//! ```
//!
//! An employee sharing a file:
//!
//! ```no_run
//! use kinko_client::{Client, ShareOptions, UploadOptions};
//! use kinko_core::vault::ApiToken;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let token = ApiToken::parse(&std::env::var("KINKO_TOKEN")?).ok_or("bad token")?;
//! let client = Client::new("https://files.example.com", Some(token))?;
//! let file = std::fs::File::open("plan.pdf")?;
//! let mut options = UploadOptions::default();
//! options.size = Some(file.metadata()?.len());
//! let info = client.upload("plan.pdf", file, &options, |_| {})?;
//! let mut share = ShareOptions::new(7 * 24 * 3600);
//! share.max_downloads = Some(3);
//! let created = client.create_share(&info.id, &share)?;
//! // Hand this out once; the server keeps only a hash of the secret.
//! let link = created.link.expose_secret();
//! # drop(link); Ok(()) }
//! ```

mod api;
mod client;
mod encode;
mod error;
mod link;

pub use api::{
    AuditReport, CreatedShare, Download, DownloadAuth, FileInfo, IssuedToken, LinkInfo, Me,
    Progress, Retention, RotationReport, ShareInfo, ShareOptions, ShareState, SweepReport, Ticket,
    TokenInfo, UploadOptions, UserInfo,
};
pub use client::{
    Client, LINK_SECRET_HEADER, PASSWORD_HEADER, RECIPIENT_BOUND_HEADER, RECIPIENT_HEADER,
    RESUME_ATTEMPTS, TICKET_HEADER, check_transport,
};
pub use encode::password_header;
pub use error::{ClientError, Credential, NetworkErrorKind};
pub use link::{BaseUrl, Link, UrlError};
