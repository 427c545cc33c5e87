//! The sidecar client: [`KinkoClient`] over `kinko-client`, and share [`Link`]s.

use std::cell::Cell;
use std::fmt;
use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use kinko_client::{self as kc, ClientError};
use kinko_core::keys::Recipient as CoreRecipient;
use kinko_core::vault::{ApiToken, FileId, ShareId};
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::envelope::{FileInfo, OpenWith, open_stream};
use crate::output::{AtomicOutput, check_target};
use crate::progress::{CancelToken, MeteredWriter, ProgressListener, Watch, Watched};
use crate::{KinkoError, Recipient, Secret};

/// A share link, `BASE/s/<share id>#<secret>`.
///
/// The secret stays on the Rust side: printing a link shows its server and share id only,
/// and it is sent to the server in a header, never in a URL. [`Link::expose_secret`] gives
/// the whole link, to hand to the partner.
#[derive(uniffi::Object)]
#[uniffi::export(Debug)]
pub struct Link {
    inner: kc::Link,
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // kinko_client's Link prints `LinkSecret(..)` for the secret.
        self.inner.fmt(f)
    }
}

#[uniffi::export]
impl Link {
    /// Parses a share link, e.g. `https://files.example.com/s/<32 hex>#<64 hex>`. The text is
    /// zeroized on the Rust side once parsed.
    ///
    /// # Errors
    ///
    /// [`KinkoError::InvalidLink`], saying which part is wrong (never the secret).
    #[uniffi::constructor]
    pub fn parse(text: String) -> Result<Arc<Link>, KinkoError> {
        let text = Zeroizing::new(text);
        let inner = kc::Link::parse(&text).map_err(|e| KinkoError::InvalidLink {
            reason: e.to_string(),
        })?;
        Ok(Arc::new(Link { inner }))
    }

    /// The server the link points to, e.g. `https://files.example.com`.
    pub fn base_url(&self) -> String {
        self.inner.base_url().to_string()
    }

    /// The share id (32 hex digits).
    pub fn share_id(&self) -> String {
        self.inner.share_id().to_string()
    }

    /// The partner page, without the secret: `BASE/s/<share id>`.
    pub fn page_url(&self) -> String {
        self.inner.page_url()
    }

    /// The whole link, secret included, to hand to the partner. The string is handed to the
    /// app: the Rust side keeps no copy.
    pub fn expose_secret(&self) -> String {
        self.inner.expose_secret().expose_secret().to_owned()
    }
}

/// The role of a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum Role {
    /// Manages users, tokens, retention, freezes and keys.
    Admin,
    /// Uploads files, shares and revokes their own.
    Member,
    /// Reads and verifies the audit log.
    Auditor,
}

/// Who the client's token belongs to.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Me {
    /// The user's id.
    pub user_id: String,
    /// The user's name.
    pub name: String,
    /// The user's role.
    pub role: Role,
    /// The id of the token (never its secret).
    pub token_id: String,
}

/// A file stored on the server.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ServerFile {
    /// The file's id (32 hex digits).
    pub id: String,
    /// The name partners see.
    pub name: String,
    /// The content type given at upload.
    pub content_type: Option<String>,
    /// Plaintext size in bytes.
    pub size: u64,
    /// Upload time, seconds since the Unix epoch.
    pub created: u64,
    /// When retention deletes the file, seconds since the Unix epoch.
    pub retain_until: Option<u64>,
}

impl From<kc::FileInfo> for ServerFile {
    fn from(f: kc::FileInfo) -> Self {
        ServerFile {
            id: f.id.to_string(),
            name: f.name,
            content_type: f.content_type,
            size: f.size,
            created: f.created,
            retain_until: f.retain_until,
        }
    }
}

/// How to upload a file.
#[derive(Debug, Clone, Default, uniffi::Record)]
pub struct UploadOptions {
    /// The name partners see. Default: the file's name.
    #[uniffi(default = None)]
    pub name: Option<String>,
    /// The content type to store. Default: none.
    #[uniffi(default = None)]
    pub content_type: Option<String>,
    /// Seconds to keep the file. Default: the server's retention policy.
    #[uniffi(default = None)]
    pub retention_seconds: Option<u64>,
}

/// How to share a file.
#[derive(Debug, Clone, uniffi::Record)]
pub struct ShareOptions {
    /// Seconds until the share expires (at most the server's maximum share lifetime).
    pub expires_in_seconds: u64,
    /// Download limit (at least 1); `None`: unlimited until expiry.
    #[uniffi(default = None)]
    pub max_downloads: Option<u32>,
    /// A password the partner must give.
    #[uniffi(default = None)]
    pub password: Option<Arc<Secret>>,
    /// X25519 recipients: downloads then come still encrypted to these keys, so a forwarded
    /// file opens for nobody else ([`KinkoClient::open_recipient_bound`]).
    #[uniffi(default)]
    pub recipients: Vec<Arc<Recipient>>,
}

/// A share just created. Its link, with the secret, is only shown now.
#[derive(Debug, Clone, uniffi::Record)]
pub struct CreatedShare {
    /// The share's id.
    pub id: String,
    /// The shared file's id.
    pub file_id: String,
    /// The link to hand to the partner ([`Link::expose_secret`]).
    pub link: Arc<Link>,
    /// When the share expires, seconds since the Unix epoch.
    pub expires: u64,
    /// Whether the deployment is frozen: the link is refused until an admin unfreezes.
    pub frozen: bool,
}

/// A share's state, evaluated at the server's current time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum ShareState {
    /// Usable.
    Active,
    /// Past its expiry.
    Expired,
    /// Revoked.
    Revoked,
    /// Its download limit is reached.
    Exhausted,
    /// Locked by too many wrong passwords.
    Locked,
    /// It would be active, but the deployment is frozen (refused until an admin unfreezes).
    Frozen,
    /// A state this library does not know (a newer server).
    Unknown,
}

/// A share as listed (its secret is never shown again).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ShareInfo {
    /// The share's id.
    pub id: String,
    /// The shared file's id.
    pub file_id: String,
    /// Creation time.
    pub created: u64,
    /// Expiry time.
    pub expires: u64,
    /// Download limit, if any.
    pub max_downloads: Option<u32>,
    /// Downloads so far.
    pub downloads: u32,
    /// Whether it has a password.
    pub password: bool,
    /// Number of recipients it is bound to (0: a plain link).
    pub recipients: u32,
    /// Whether wrong passwords locked it.
    pub locked: bool,
    /// When it was revoked, if it was.
    pub revoked: Option<u64>,
    /// Its state now.
    pub state: ShareState,
}

impl From<kc::ShareInfo> for ShareInfo {
    fn from(s: kc::ShareInfo) -> Self {
        ShareInfo {
            id: s.id.to_string(),
            file_id: s.file.to_string(),
            created: s.created,
            expires: s.expires,
            max_downloads: s.max_downloads,
            downloads: s.downloads,
            password: s.password,
            recipients: s.recipients,
            locked: s.locked,
            revoked: s.revoked,
            state: match s.state {
                kc::ShareState::Active => ShareState::Active,
                kc::ShareState::Expired => ShareState::Expired,
                kc::ShareState::Revoked => ShareState::Revoked,
                kc::ShareState::Exhausted => ShareState::Exhausted,
                kc::ShareState::Locked => ShareState::Locked,
                kc::ShareState::Frozen => ShareState::Frozen,
                _ => ShareState::Unknown,
            },
        }
    }
}

/// What a link leads to (asking does not count as a download).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct LinkInfo {
    /// The file name the sender chose.
    pub name: String,
    /// The content type.
    pub content_type: Option<String>,
    /// Plaintext size in bytes.
    pub size: u64,
    /// When the share expires.
    pub expires: u64,
    /// Whether a password is needed.
    pub password_required: bool,
    /// Whether downloads come encrypted to the partner's key
    /// ([`KinkoClient::open_recipient_bound`]).
    pub recipient_bound: bool,
    /// Downloads left, if the share has a limit.
    pub downloads_left: Option<u64>,
}

/// A finished download.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Downloaded {
    /// Bytes written to the output.
    pub bytes: u64,
    /// Whether the bytes are a Kinko envelope sealed to the share's recipients (open it with
    /// [`open_file`](crate::open_file)).
    pub recipient_bound: bool,
    /// The file name the server gave (not sanitized: check it before using it as a path).
    pub file_name: Option<String>,
    /// The content type the server gave.
    pub content_type: Option<String>,
}

/// A client of one Kinko server (`kinko serve`, docs/API.md): blocking, thread-safe.
///
/// Employees call with an API token (upload, share, list, revoke); partners need no token,
/// only a [`Link`] (link calls go to the link's own server and never carry the token).
/// Uploads and downloads stream from and to files by path: memory stays flat, a download is
/// written to a temporary file renamed over the output on success, and the
/// [`ProgressListener`] and [`CancelToken`] work as for [`seal_file`](crate::seal_file).
///
/// The API token and link secrets are never sent over plain `http://` to a host other than
/// this machine (`localhost`, 127.0.0.0/8, `::1`): such a call raises
/// [`KinkoError::PlainHttpRefused`] before it connects, unless the client was made with
/// `allow_plain_http` set (for a trusted network or a test setup).
#[derive(Debug, uniffi::Object)]
pub struct KinkoClient {
    inner: kc::Client,
}

#[uniffi::export]
impl KinkoClient {
    /// A client for the server at `base_url` (`https://host[:port][/prefix]`), calling with
    /// the API token `token` (`kinko_…`). Without a token only link calls work.
    /// `allow_plain_http` lets calls send the token or a link's secret over plain `http://`
    /// to another machine, where anyone on the network could read them: only for a trusted
    /// network.
    ///
    /// # Errors
    ///
    /// [`KinkoError::InvalidArgument`] for a malformed URL or token.
    #[uniffi::constructor(default(token = None, allow_plain_http = false))]
    pub fn new(
        base_url: String,
        token: Option<Arc<Secret>>,
        allow_plain_http: bool,
    ) -> Result<Arc<Self>, KinkoError> {
        let token = token
            .map(|t| {
                ApiToken::parse(t.expose()).ok_or_else(|| {
                    KinkoError::invalid_argument("the API token is malformed (expected kinko_…)")
                })
            })
            .transpose()?;
        let inner = kc::Client::new(&base_url, token)
            .map_err(client_error)?
            .allow_plain_http(allow_plain_http);
        Ok(Arc::new(KinkoClient { inner }))
    }

    /// A client without a token for the server `link` points to. `allow_plain_http`: as for
    /// [`KinkoClient::new`], for a link to `http://` on another machine.
    #[uniffi::constructor(default(allow_plain_http = false))]
    pub fn for_link(link: Arc<Link>, allow_plain_http: bool) -> Arc<Self> {
        Arc::new(KinkoClient {
            inner: kc::Client::for_link(&link.inner).allow_plain_http(allow_plain_http),
        })
    }

    /// The server's address.
    pub fn base_url(&self) -> String {
        self.inner.base_url().to_string()
    }

    /// Checks that the server answers and its vault works.
    ///
    /// # Errors
    ///
    /// [`KinkoError::Network`], [`KinkoError::Server`].
    pub fn health(&self) -> Result<(), KinkoError> {
        self.inner.health().map_err(client_error)
    }

    /// Who the token belongs to.
    ///
    /// # Errors
    ///
    /// [`KinkoError::Unauthenticated`] for a missing, wrong, expired or revoked token; network
    /// errors.
    pub fn me(&self) -> Result<Me, KinkoError> {
        let me = self.inner.me().map_err(client_error)?;
        Ok(Me {
            user_id: me.user.to_string(),
            name: me.name,
            role: match me.role {
                kinko_core::vault::Role::Admin => Role::Admin,
                kinko_core::vault::Role::Member => Role::Member,
                kinko_core::vault::Role::Auditor => Role::Auditor,
            },
            token_id: me.token.to_string(),
        })
    }

    /// Uploads the file at `path`, streaming; the server encrypts it as it arrives and keeps
    /// nothing of a failed or cancelled upload.
    ///
    /// # Errors
    ///
    /// [`KinkoError::Io`] if the file cannot be read (or changes size while uploaded);
    /// [`KinkoError::Unauthenticated`], [`KinkoError::InvalidRequest`] (a bad name or
    /// retention), [`KinkoError::TooLarge`]; [`KinkoError::Network`];
    /// [`KinkoError::Cancelled`], [`KinkoError::CallbackFailed`].
    #[uniffi::method(default(progress = None, cancel = None, options))]
    pub fn upload(
        &self,
        path: String,
        options: UploadOptions,
        progress: Option<Arc<dyn ProgressListener>>,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<ServerFile, KinkoError> {
        let read_err = |e: &std::io::Error| KinkoError::io("read", &path, e);
        let file = File::open(&path).map_err(|e| read_err(&e))?;
        let meta = file.metadata().map_err(|e| read_err(&e))?;
        let size = meta.is_file().then_some(meta.len());
        let name = match options.name {
            Some(name) => name,
            None => Path::new(&path)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .ok_or_else(|| KinkoError::invalid_argument("the path has no file name"))?,
        };
        let mut upload = kc::UploadOptions::default();
        upload.content_type = options.content_type;
        upload.retention = options.retention_seconds;
        upload.size = size;

        let mut input = Watched::new(
            file,
            Watch {
                listener: progress,
                cancel,
            },
            size,
        );
        input.check(true)?;
        let result = self.inner.upload(&name, &mut input, &upload, |_| {});
        match result {
            Ok(info) => {
                // The server has the file now; a late cancellation cannot undo that.
                Ok(info.into())
            }
            Err(e) => Err(match (input.take_stop(), e) {
                (Some(stop), _) => stop,
                (None, ClientError::Io(e)) => read_err(&e),
                (None, e) => client_error(e),
            }),
        }
    }

    /// The caller's files, newest first.
    ///
    /// # Errors
    ///
    /// [`KinkoError::Unauthenticated`]; network errors.
    pub fn files(&self) -> Result<Vec<ServerFile>, KinkoError> {
        let files = self.inner.files().map_err(client_error)?;
        Ok(files.into_iter().map(ServerFile::from).collect())
    }

    /// Downloads one of the caller's files (owner or admin) to `output`.
    ///
    /// # Errors
    ///
    /// [`KinkoError::NotFound`]; [`KinkoError::Io`]; network errors;
    /// [`KinkoError::Cancelled`], [`KinkoError::CallbackFailed`].
    #[uniffi::method(default(progress = None, cancel = None))]
    pub fn download_file(
        &self,
        file_id: String,
        output: String,
        progress: Option<Arc<dyn ProgressListener>>,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<Downloaded, KinkoError> {
        let file = parse_file_id(&file_id)?;
        let out = AtomicOutput::new(&output)?;
        download(
            out,
            &output,
            Watch {
                listener: progress,
                cancel,
            },
            |w, p| self.inner.download_file(&file, w, p),
        )
        .and_then(|(d, out)| {
            out.commit()?;
            Ok(d)
        })
    }

    /// Crypto-shreds one of the caller's files: its key, shares and blob are deleted.
    ///
    /// # Errors
    ///
    /// [`KinkoError::NotFound`]; network errors.
    pub fn delete_file(&self, file_id: String) -> Result<(), KinkoError> {
        let file = parse_file_id(&file_id)?;
        self.inner.delete_file(&file).map_err(client_error)
    }

    /// Shares a file: a link that expires, optionally with a download limit, a password and
    /// recipients. The link's secret is returned only now.
    ///
    /// # Errors
    ///
    /// [`KinkoError::InvalidRequest`] for values outside the server's policy (an expiry too
    /// far away, an empty password...); [`KinkoError::NotFound`]; network errors.
    pub fn share(
        &self,
        file_id: String,
        options: ShareOptions,
    ) -> Result<CreatedShare, KinkoError> {
        let file = parse_file_id(&file_id)?;
        let mut share = kc::ShareOptions::new(options.expires_in_seconds);
        share.max_downloads = options.max_downloads;
        share.password = options.password.as_ref().map(|p| p.to_secret_string());
        share.recipients = options.recipients.iter().map(|r| r.inner).collect();
        let created = self
            .inner
            .create_share(&file, &share)
            .map_err(client_error)?;
        Ok(CreatedShare {
            id: created.id.to_string(),
            file_id: created.file.to_string(),
            link: Arc::new(Link {
                inner: created.link,
            }),
            expires: created.expires,
            frozen: created.frozen,
        })
    }

    /// The caller's shares.
    ///
    /// # Errors
    ///
    /// [`KinkoError::Unauthenticated`]; network errors.
    pub fn shares(&self) -> Result<Vec<ShareInfo>, KinkoError> {
        let shares = self.inner.shares().map_err(client_error)?;
        Ok(shares.into_iter().map(ShareInfo::from).collect())
    }

    /// The shares of one file (owner or admin).
    ///
    /// # Errors
    ///
    /// [`KinkoError::NotFound`]; network errors.
    pub fn file_shares(&self, file_id: String) -> Result<Vec<ShareInfo>, KinkoError> {
        let file = parse_file_id(&file_id)?;
        let shares = self.inner.file_shares(&file).map_err(client_error)?;
        Ok(shares.into_iter().map(ShareInfo::from).collect())
    }

    /// Revokes one share, immediately: every later request with its link is refused.
    ///
    /// # Errors
    ///
    /// [`KinkoError::NotFound`]; network errors.
    pub fn revoke_share(&self, share_id: String) -> Result<(), KinkoError> {
        let share = share_id
            .trim()
            .parse::<ShareId>()
            .map_err(|_| KinkoError::invalid_argument("a share id is 32 hex digits"))?;
        self.inner.revoke_share(&share).map_err(client_error)
    }

    /// Revokes every share of a file; returns how many were revoked.
    ///
    /// # Errors
    ///
    /// [`KinkoError::NotFound`]; network errors.
    pub fn revoke_file_shares(&self, file_id: String) -> Result<u64, KinkoError> {
        let file = parse_file_id(&file_id)?;
        self.inner.revoke_file_shares(&file).map_err(client_error)
    }

    /// What a link leads to: name, size, expiry, whether a password is needed. Not counted
    /// as a download.
    ///
    /// # Errors
    ///
    /// [`KinkoError::LinkInvalid`] for a wrong, expired, revoked or used-up link;
    /// [`KinkoError::RateLimited`]; network errors.
    pub fn link_info(&self, link: Arc<Link>) -> Result<LinkInfo, KinkoError> {
        let info = self.inner.link_info(&link.inner).map_err(client_error)?;
        Ok(LinkInfo {
            name: info.name,
            content_type: info.content_type,
            size: info.size,
            expires: info.expires,
            password_required: info.password_required,
            recipient_bound: info.recipient_bound,
            downloads_left: info.downloads_left,
        })
    }

    /// Downloads what `link` shares to `output` (counts one download): the file itself, or,
    /// for a recipient-bound share, the envelope sealed to its recipients (see
    /// [`KinkoClient::open_recipient_bound`] to get the plaintext in one step).
    ///
    /// Written to a temporary file beside `output`, renamed over it only once complete: a
    /// refused, broken or cancelled download leaves nothing behind. A download whose
    /// connection breaks resumes where it broke (up to three times, still one download), a
    /// recipient-bound one too.
    ///
    /// # Errors
    ///
    /// [`KinkoError::LinkInvalid`] (wrong, expired, revoked, used up), [`KinkoError::PasswordRequired`],
    /// [`KinkoError::WrongPassword`], [`KinkoError::RateLimited`]; [`KinkoError::Network`]
    /// (including a download cut short and not resumed); [`KinkoError::Io`];
    /// [`KinkoError::InvalidArgument`] if `output` is a directory (checked before anything is
    /// counted); [`KinkoError::Cancelled`], [`KinkoError::CallbackFailed`].
    #[uniffi::method(default(password = None, progress = None, cancel = None))]
    pub fn download_link(
        &self,
        link: Arc<Link>,
        output: String,
        password: Option<Arc<Secret>>,
        progress: Option<Arc<dyn ProgressListener>>,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<Downloaded, KinkoError> {
        let out = AtomicOutput::new(&output)?;
        let (d, out) = self.fetch_link(&link, out, &output, password, &[], progress, cancel)?;
        out.commit()?;
        Ok(d)
    }

    /// Downloads a recipient-bound share and opens it with `keys` into `output`, in one step
    /// (counts one download). The envelope goes to a temporary file beside `output`, deleted
    /// afterwards; the plaintext is written as by [`open_file`](crate::open_file): only once
    /// the whole envelope verified. `progress` counts the downloaded bytes.
    ///
    /// # Errors
    ///
    /// [`KinkoError::InvalidArgument`] if the share is not recipient-bound (checked before
    /// anything is counted); the errors of [`KinkoClient::download_link`]; the envelope errors
    /// of [`open_file`](crate::open_file). [`KinkoError::NotRecipient`] when the share is
    /// bound to other keys than `keys.identities` (checked by the server before anything is
    /// counted).
    #[uniffi::method(default(password = None, progress = None, cancel = None))]
    pub fn open_recipient_bound(
        &self,
        link: Arc<Link>,
        output: String,
        keys: OpenWith,
        password: Option<Arc<Secret>>,
        progress: Option<Arc<dyn ProgressListener>>,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<FileInfo, KinkoError> {
        let dir = check_target(&output)?;
        let info = self.inner.link_info(&link.inner).map_err(client_error)?;
        if !info.recipient_bound {
            return Err(KinkoError::invalid_argument(
                "this share is not recipient-bound: use download_link",
            ));
        }
        let envelope = tempfile::Builder::new()
            .prefix(".kinko-")
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(|e| KinkoError::io("create a file beside", &output, &e))?;
        let envelope_name = envelope.path().to_string_lossy().into_owned();
        // Named to the server, so that a share bound to other keys refuses before counting.
        let public: Vec<CoreRecipient> = keys
            .identities
            .iter()
            .map(|i| i.inner.to_public())
            .collect();
        let (downloaded, envelope) = self.fetch_link(
            &link,
            envelope,
            &envelope_name,
            password,
            &public,
            progress,
            cancel.clone(),
        )?;
        if !downloaded.recipient_bound {
            return Err(KinkoError::Server {
                status: 200,
                code: String::new(),
                detail: "the download is not a recipient-bound envelope".into(),
            });
        }
        let mut file = envelope
            .reopen()
            .map_err(|e| KinkoError::io("read", &envelope_name, &e))?;
        file.seek(SeekFrom::Start(0))
            .map_err(|e| KinkoError::io("read", &envelope_name, &e))?;
        let watch = Watch {
            listener: None,
            cancel,
        };
        let mut input = Watched::new(file, watch, Some(downloaded.bytes));
        let keyring = keys.to_keyring();
        // `envelope` is deleted when dropped, after the plaintext was published or not.
        let opened = open_stream(&mut input, &envelope_name, &output, &keyring);
        drop(envelope);
        opened
    }
}

impl KinkoClient {
    /// Downloads `link` into `out` (a temporary file), counting the download; a download
    /// that names `keys` is refused, uncounted, by a share bound to none of them.
    #[allow(clippy::too_many_arguments)] // the exported methods' arguments, passed through
    fn fetch_link<W: std::io::Write>(
        &self,
        link: &Link,
        out: W,
        out_name: &str,
        password: Option<Arc<Secret>>,
        keys: &[CoreRecipient],
        progress: Option<Arc<dyn ProgressListener>>,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<(Downloaded, W), KinkoError> {
        let password: Option<SecretString> = password.map(|p| p.to_secret_string());
        download(
            out,
            out_name,
            Watch {
                listener: progress,
                cancel,
            },
            // The ticket counts the download (after the cancellation check, so a download
            // cancelled before it starts costs nothing); with it, a broken connection resumes.
            |w, p| {
                let ticket = self
                    .inner
                    .link_ticket_for(&link.inner, password.as_ref(), keys)?;
                self.inner
                    .link_download_resuming(&link.inner, &ticket, w, p)
            },
        )
    }
}

/// Runs a download into `out` through a metering writer; returns what was downloaded and
/// `out` (not yet published).
fn download<W: std::io::Write>(
    out: W,
    out_name: &str,
    watch: Watch,
    run: impl FnOnce(
        &mut MeteredWriter<'_, W>,
        &mut dyn FnMut(kc::Progress),
    ) -> Result<kc::Download, ClientError>,
) -> Result<(Downloaded, W), KinkoError> {
    let total = Cell::new(None);
    let mut writer = MeteredWriter::new(out, watch, &total);
    writer.meter.check(true)?;
    let mut note_total = |p: kc::Progress| total.set(p.total);
    let result = run(&mut writer, &mut note_total);
    let d = match result {
        Ok(d) => d,
        Err(e) => {
            return Err(match (writer.meter.take_stop(), e) {
                (Some(stop), _) => stop,
                (None, ClientError::Io(e)) if writer.failed() => {
                    KinkoError::io("write", out_name, &e)
                }
                (None, e) => client_error(e),
            });
        }
    };
    // A cancellation after the last byte still counts: nothing is published.
    writer.finish()?;
    Ok((
        Downloaded {
            bytes: d.bytes,
            recipient_bound: d.recipient_bound,
            file_name: d.file_name,
            content_type: d.content_type,
        },
        writer.into_inner(),
    ))
}

fn parse_file_id(id: &str) -> Result<FileId, KinkoError> {
    id.trim()
        .parse::<FileId>()
        .map_err(|_| KinkoError::invalid_argument("a file id is 32 hex digits"))
}

/// Maps a `kinko-client` error. Its `Io` variant (the caller's reader or writer failed) is
/// mapped by the callers, who know which file it was.
fn client_error(err: ClientError) -> KinkoError {
    let server = |status: u16, code: &str, detail: String| KinkoError::Server {
        status,
        code: code.to_owned(),
        detail,
    };
    match err {
        ClientError::Unauthenticated { message } => KinkoError::Unauthenticated { detail: message },
        ClientError::Forbidden { message } => KinkoError::Forbidden { detail: message },
        ClientError::NotFound { message } => KinkoError::NotFound { detail: message },
        ClientError::LinkInvalid => KinkoError::LinkInvalid,
        ClientError::PasswordRequired => KinkoError::PasswordRequired,
        ClientError::WrongPassword => KinkoError::WrongPassword,
        ClientError::NotRecipient => KinkoError::NotRecipient,
        ClientError::RateLimited { retry_after } => KinkoError::RateLimited {
            retry_after_seconds: retry_after,
        },
        ClientError::TooLarge { message } => KinkoError::TooLarge { detail: message },
        ClientError::Invalid { message } => KinkoError::InvalidRequest { detail: message },
        ClientError::Network { kind, detail } => KinkoError::Network {
            kind: match kind {
                kc::NetworkErrorKind::ConnectionRefused => NetworkKind::ConnectionRefused,
                kc::NetworkErrorKind::Dns => NetworkKind::Dns,
                kc::NetworkErrorKind::Tls => NetworkKind::Tls,
                kc::NetworkErrorKind::TimedOut => NetworkKind::TimedOut,
                kc::NetworkErrorKind::ConnectionLost => NetworkKind::ConnectionLost,
                kc::NetworkErrorKind::Protocol => NetworkKind::Protocol,
                _ => NetworkKind::Other,
            },
            detail,
        },
        ClientError::Io(e) => KinkoError::Io {
            detail: e.to_string(),
        },
        ClientError::InvalidArgument { message } => KinkoError::InvalidArgument { reason: message },
        ClientError::InvalidUrl(e) => KinkoError::InvalidArgument {
            reason: format!("invalid server URL: {e}"),
        },
        ClientError::PlainHttp { host, credential } => KinkoError::PlainHttpRefused {
            host,
            credential: credential.to_string(),
        },
        ClientError::Internal {
            message,
            request_id,
        } => server(
            500,
            "internal",
            match request_id {
                Some(id) => format!("{message} (request id {id})"),
                None => message,
            },
        ),
        ClientError::UnexpectedResponse { status, detail } => server(status, "", detail),
        // Timeout, Unavailable, Exists, AuditBroken, RangeNotSatisfiable, SecretInUrl and
        // future variants: the client's code and sentence.
        other => {
            let code = other.code().unwrap_or_default();
            let status = match code {
                "timeout" => 408,
                "exists" | "audit_broken" => 409,
                "range_not_satisfiable" => 416,
                "unavailable" => 503,
                _ => 400,
            };
            server(status, code, other.to_string())
        }
    }
}

/// What kind of network failure stopped a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum NetworkKind {
    /// Nothing listens at the address.
    ConnectionRefused,
    /// The host name does not resolve.
    Dns,
    /// The TLS handshake failed.
    Tls,
    /// The connection or an answer took too long.
    TimedOut,
    /// The connection broke mid-way (including a download cut short).
    ConnectionLost,
    /// The server broke the HTTP protocol.
    Protocol,
    /// Anything else.
    Other,
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn links_and_clients_never_show_secrets() {
        let text = format!("https://files.example.com/s/00112233445566778899aabbccddeeff#{SECRET}");
        let link = Link::parse(text.clone()).unwrap();
        assert_eq!(link.expose_secret(), text);
        assert_eq!(link.share_id(), "00112233445566778899aabbccddeeff");
        assert_eq!(link.base_url(), "https://files.example.com");
        let shown = format!("{link:?}");
        assert!(!shown.contains(SECRET), "{shown}");

        let bad = Link::parse(text[..text.len() - 1].to_owned()).unwrap_err();
        let shown = format!("{bad} {bad:?}");
        assert!(matches!(bad, KinkoError::InvalidLink { .. }));
        assert!(!shown.contains(&SECRET[..40]), "{shown}");

        let token_secret = "ab".repeat(32);
        let token = format!("kinko_{}{token_secret}", "0".repeat(32));
        let client = KinkoClient::new(
            "https://files.example.com".into(),
            Some(Secret::new(token.clone())),
            false,
        )
        .unwrap();
        let shown = format!("{client:?}");
        assert!(!shown.contains(&token_secret), "{shown}");

        let options = ShareOptions {
            expires_in_seconds: 60,
            max_downloads: None,
            password: Some(Secret::new("open sesame".into())),
            recipients: Vec::new(),
        };
        let shown = format!("{options:?}");
        assert!(!shown.contains("open sesame"), "{shown}");
    }

    #[test]
    fn malformed_tokens_and_ids_are_invalid_arguments() {
        let err = KinkoClient::new(
            "https://files.example.com".into(),
            Some(Secret::new("kinko_short".into())),
            false,
        )
        .unwrap_err();
        assert!(matches!(err, KinkoError::InvalidArgument { .. }));
        assert!(!err.to_string().contains("kinko_short"));
        assert!(matches!(
            parse_file_id("xyz"),
            Err(KinkoError::InvalidArgument { .. })
        ));
    }

    /// Neither the token nor a link's secret goes over plain HTTP to another machine unless
    /// the client allows it (`.invalid` never resolves: a call that got as far as the network
    /// fails with a DNS error instead).
    #[test]
    fn plain_http_to_another_host_is_refused_unless_allowed() {
        let remote = "http://kinko-test.invalid:8080";
        let token = format!("kinko_{}{}", "0".repeat(32), "ab".repeat(32));
        let link = Link::parse(format!(
            "{remote}/s/00112233445566778899aabbccddeeff#{SECRET}"
        ))
        .unwrap();
        let refused = |err: KinkoError, credential: &str| {
            let shown = format!("{err} {err:?}");
            assert!(
                matches!(&err, KinkoError::PlainHttpRefused { host, credential: c }
                    if host == "kinko-test.invalid:8080" && c == credential),
                "{shown}"
            );
            assert!(shown.contains("allow_plain_http"), "{shown}");
            assert!(
                !shown.contains("abab") && !shown.contains(&SECRET[..16]),
                "{shown}"
            );
        };
        let client =
            KinkoClient::new(remote.into(), Some(Secret::new(token.clone())), false).unwrap();
        refused(client.me().unwrap_err(), "the API token");
        let partner = KinkoClient::for_link(link.clone(), false);
        refused(
            partner.link_info(link.clone()).unwrap_err(),
            "the link's secret",
        );

        // Allowed: the calls go out (and fail on the name).
        let client = KinkoClient::new(remote.into(), Some(Secret::new(token)), true).unwrap();
        let err = client.me().unwrap_err();
        assert!(matches!(err, KinkoError::Network { .. }), "{err:?}");
        let partner = KinkoClient::for_link(link.clone(), true);
        let err = partner.link_info(link).unwrap_err();
        assert!(matches!(err, KinkoError::Network { .. }), "{err:?}");
    }
}
