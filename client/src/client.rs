//! [`Client`]: one blocking method per API route.

use std::fmt;
use std::io::{self, Read, Write};
use std::time::Duration;

use kinko_core::keys::Recipient;
use kinko_core::vault::{ApiToken, FileId, Role, ShareId, TokenId, UserId};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;
use ureq::http::{self, HeaderName, HeaderValue, Method, Request, Response};
use ureq::{Body, SendBody};
use zeroize::Zeroizing;

use crate::api::{
    AuditReport, CreatedShare, CreatedShareWire, Download, DownloadAuth, FileInfo, IssuedToken,
    IssuedTokenWire, LinkInfo, Me, Progress, Retention, RotationReport, ShareInfo, ShareOptions,
    SweepReport, Ticket, TicketWire, TokenInfo, UploadOptions, UserInfo, valid_ticket,
};
use crate::encode::{component, password_header};
use crate::error::{
    ClientError, Credential, ErrorAnswer, from_answer, from_transport_io, from_ureq, with_host,
};
use crate::link::{BaseUrl, Link};

/// Header carrying the link secret.
pub const LINK_SECRET_HEADER: &str = "kinko-link-secret";
/// Header carrying a share's password, percent-encoded UTF-8.
pub const PASSWORD_HEADER: &str = "kinko-password";
/// Header carrying a download ticket (request and answer).
pub const TICKET_HEADER: &str = "kinko-ticket";
/// Answer header marking a download as a recipient-bound envelope (`1`).
pub const RECIPIENT_BOUND_HEADER: &str = "kinko-recipient-bound";
/// Header naming the keys a download will be opened with (`age1…`, comma-separated).
pub const RECIPIENT_HEADER: &str = "kinko-recipient";

/// Largest JSON answer read (a long file or share list still fits many times over).
const MAX_JSON: u64 = 64 * 1024 * 1024;
/// Largest error body read.
const MAX_ERROR_BODY: u64 = 64 * 1024;
/// Bytes moved per read while streaming.
const COPY_BUFFER: usize = 64 * 1024;
/// How often [`Client::link_download_resuming`] resumes a broken download.
pub const RESUME_ATTEMPTS: u32 = 3;
/// Time allowed to set up a connection (DNS, TCP, TLS). Nothing else has a deadline: an
/// upload or download takes as long as it takes, and the server has its own idle timeouts.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// A blocking client of one Kinko server (docs/API.md).
///
/// Employee and admin calls go to the server's [`BaseUrl`] with the API token (if any) in
/// `Authorization: Bearer`. Link calls (`link_*`) go to the link's own server and never
/// carry the API token. Secrets travel only in headers, never in a URL.
///
/// Credentials are never sent over plain `http://` to a host other than this machine: such a
/// call fails with [`ClientError::PlainHttp`] before it connects, unless
/// [`Client::allow_plain_http`] says otherwise ([`check_transport`]).
///
/// Uploads and downloads stream: nothing holds a whole file in memory. Calls can be made from
/// several threads at once; connections are pooled.
pub struct Client {
    base: BaseUrl,
    token: Option<ApiToken>,
    allow_plain_http: bool,
    agent: ureq::Agent,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            // ApiToken's Debug prints only its id.
            .field("token", &self.token)
            .field("allow_plain_http", &self.allow_plain_http)
            .finish_non_exhaustive()
    }
}

/// Which credentials a request carries.
enum Auth<'a> {
    /// Nothing (health checks).
    None,
    /// The client's API token, if it has one.
    Token,
    /// A link route: the link secret, and whatever else the caller adds.
    Link(&'a Link),
}

impl Client {
    /// A client for the server at `base_url` (`https://host[:port][/prefix]`), calling with
    /// `token` (no token: only link calls and `health` work).
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidUrl`] if `base_url` is not a server address.
    pub fn new(base_url: &str, token: Option<ApiToken>) -> Result<Client, ClientError> {
        Ok(Client::with_base(BaseUrl::parse(base_url)?, token))
    }

    /// A client for an already parsed address.
    pub fn with_base(base: BaseUrl, token: Option<ApiToken>) -> Client {
        Client::build(base, token, ureq::tls::TlsConfig::default())
    }

    /// A client that verifies the server's TLS certificate against only the root
    /// certificates in `pem` (one or more `-----BEGIN CERTIFICATE-----` blocks) instead of
    /// the built-in web roots: for a server whose certificate comes from a private CA.
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidArgument`] if `pem` holds no certificate or a malformed one.
    pub fn with_root_certificates(
        base: BaseUrl,
        token: Option<ApiToken>,
        pem: &[u8],
    ) -> Result<Client, ClientError> {
        let mut certs = Vec::new();
        for item in ureq::tls::parse_pem(pem) {
            match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => certs.push(c),
                Ok(_) => {}
                Err(_) => {
                    return Err(ClientError::InvalidArgument {
                        message: "the root certificates are not valid PEM".into(),
                    });
                }
            }
        }
        if certs.is_empty() {
            return Err(ClientError::InvalidArgument {
                message: "no certificate found in the root certificates' PEM".into(),
            });
        }
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
            .build();
        Ok(Client::build(base, token, tls))
    }

    fn build(base: BaseUrl, token: Option<ApiToken>, tls: ureq::tls::TlsConfig) -> Client {
        let config = ureq::Agent::config_builder()
            // Error answers are read and mapped here, with their JSON body.
            .http_status_as_error(false)
            // A redirect is answered as an error rather than followed: the API never
            // redirects, and following would send the body (and maybe a link secret) elsewhere.
            .max_redirects(0)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .user_agent(concat!("kinko-client/", env!("CARGO_PKG_VERSION")))
            .tls_config(tls)
            .build();
        Client {
            base,
            token,
            allow_plain_http: false,
            agent: config.new_agent(),
        }
    }

    /// Allows (`true`) or refuses (`false`, the default) sending the API token or a link's
    /// secret over plain `http://` to a host that is not this machine.
    ///
    /// Over plain HTTP anyone on the network path can read the credential, and with it take
    /// the user's access or the share's downloads, and read the file itself. Allow it only
    /// on a network you trust, or for tests; `http://` to `localhost`, 127.0.0.0/8 and `::1`
    /// needs no permission.
    #[must_use]
    pub fn allow_plain_http(mut self, allow: bool) -> Client {
        self.allow_plain_http = allow;
        self
    }

    /// A client for the server a link points to, without a token.
    pub fn for_link(link: &Link) -> Client {
        Client::with_base(link.base_url().clone(), None)
    }

    /// The server's address.
    pub fn base_url(&self) -> &BaseUrl {
        &self.base
    }

    /// The id of the token calls are made with, if any.
    pub fn token_id(&self) -> Option<TokenId> {
        self.token.as_ref().map(ApiToken::id)
    }

    // ---------------------------------------------------------------------------------------
    // Health

    /// `GET /healthz`: whether the server answers and its vault works.
    ///
    /// # Errors
    ///
    /// Network errors, or the server's error answer.
    pub fn health(&self) -> Result<(), ClientError> {
        let req = self.request(Method::GET, "/healthz", Auth::None)?;
        let resp = self.send(req, SendBody::none())?;
        read_body(resp, MAX_ERROR_BODY).map(drop)
    }

    // ---------------------------------------------------------------------------------------
    // Employees: files and shares

    /// `GET /api/v1/me`: who the token belongs to.
    ///
    /// # Errors
    ///
    /// [`ClientError::Unauthenticated`] for a missing or refused token; network errors.
    pub fn me(&self) -> Result<Me, ClientError> {
        self.get_json("/api/v1/me")
    }

    /// `POST /api/v1/files`: uploads `reader`'s bytes as a file named `name`. The body is
    /// streamed as it is read (chunked, or with `Content-Length` when `options.size` is set);
    /// `progress` is called as bytes go out.
    ///
    /// # Errors
    ///
    /// [`ClientError::Io`] if `reader` fails, or yields a different number of bytes than
    /// `options.size`; [`ClientError::InvalidArgument`] for a content type that cannot be a
    /// header; the server's refusals ([`ClientError::Invalid`] for a bad name or retention,
    /// [`ClientError::TooLarge`]); network errors (a connection lost in the middle of the
    /// upload stores nothing).
    pub fn upload(
        &self,
        name: &str,
        reader: impl Read,
        options: &UploadOptions,
        mut progress: impl FnMut(Progress),
    ) -> Result<FileInfo, ClientError> {
        let mut path = format!("/api/v1/files?name={}", component(name));
        if let Some(r) = options.retention {
            path.push_str(&format!("&retention={r}"));
        }
        let mut req = self.request(Method::POST, &path, Auth::Token)?;
        let headers = req.headers_mut().expect("the builder has no error yet");
        if let Some(ct) = &options.content_type {
            let value = HeaderValue::from_str(ct).map_err(|_| ClientError::InvalidArgument {
                message: "the content type is not a valid header value".into(),
            })?;
            headers.insert(http::header::CONTENT_TYPE, value);
        }
        if let Some(size) = options.size {
            headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(size));
        }
        // The server can refuse (a bad token, a bad name) before the body is sent.
        headers.insert(
            http::header::EXPECT,
            HeaderValue::from_static("100-continue"),
        );

        let mut source = Source {
            inner: reader,
            done: 0,
            total: options.size,
            progress: &mut progress,
            error: None,
        };
        source.report();
        let result = self.send(req, SendBody::from_reader(&mut source));
        if let Some(err) = source.error.take() {
            return Err(ClientError::Io(err));
        }
        json(result?)
    }

    /// `GET /api/v1/files`: the caller's files, newest first.
    ///
    /// # Errors
    ///
    /// The server's error answer; network errors.
    pub fn files(&self) -> Result<Vec<FileInfo>, ClientError> {
        #[derive(serde::Deserialize)]
        struct Files {
            files: Vec<FileInfo>,
        }
        Ok(self.get_json::<Files>("/api/v1/files")?.files)
    }

    /// `GET /api/v1/files/{file}`: one file (owner or admin).
    ///
    /// # Errors
    ///
    /// [`ClientError::NotFound`]; network errors.
    pub fn file(&self, file: &FileId) -> Result<FileInfo, ClientError> {
        self.get_json(&format!("/api/v1/files/{file}"))
    }

    /// `GET /api/v1/files/{file}/content`: streams the plaintext into `writer` (owner or
    /// admin).
    ///
    /// # Errors
    ///
    /// [`ClientError::Io`] if `writer` fails; [`ClientError::NotFound`]; network errors
    /// (including an answer cut short).
    pub fn download_file(
        &self,
        file: &FileId,
        writer: impl Write,
        progress: impl FnMut(Progress),
    ) -> Result<Download, ClientError> {
        let req = self.request(
            Method::GET,
            &format!("/api/v1/files/{file}/content"),
            Auth::Token,
        )?;
        let resp = self.send(req, SendBody::none())?;
        stream_download(resp, writer, progress)
    }

    /// `DELETE /api/v1/files/{file}`: crypto-shreds the file and its shares.
    ///
    /// # Errors
    ///
    /// [`ClientError::NotFound`]; network errors.
    pub fn delete_file(&self, file: &FileId) -> Result<(), ClientError> {
        self.call_empty(Method::DELETE, &format!("/api/v1/files/{file}"))
    }

    /// `POST /api/v1/files/{file}/shares`: creates a share and returns its link (shown once).
    ///
    /// # Errors
    ///
    /// [`ClientError::Invalid`] for values outside the deployment's policy;
    /// [`ClientError::NotFound`]; network errors.
    pub fn create_share(
        &self,
        file: &FileId,
        options: &ShareOptions,
    ) -> Result<CreatedShare, ClientError> {
        #[derive(Serialize)]
        struct Body<'a> {
            expires_in: u64,
            #[serde(skip_serializing_if = "Option::is_none")]
            max_downloads: Option<u32>,
            #[serde(skip_serializing_if = "Option::is_none")]
            password: Option<&'a str>,
            #[serde(skip_serializing_if = "Vec::is_empty")]
            recipients: Vec<String>,
        }
        let body = Body {
            expires_in: options.expires_in,
            max_downloads: options.max_downloads,
            password: options.password.as_ref().map(|p| p.expose_secret()),
            recipients: options.recipients.iter().map(|r| r.to_string()).collect(),
        };
        let body = to_json(&body);
        let req = self.request(
            Method::POST,
            &format!("/api/v1/files/{file}/shares"),
            Auth::Token,
        )?;
        let resp = self.send(json_request(req), &body[..])?;
        let status = resp.status().as_u16();
        let wire: CreatedShareWire = json(resp)?;
        wire.into_share()
            .map_err(|detail| ClientError::UnexpectedResponse { status, detail })
    }

    /// `GET /api/v1/files/{file}/shares`: the shares of one file (owner or admin).
    ///
    /// # Errors
    ///
    /// [`ClientError::NotFound`]; network errors.
    pub fn file_shares(&self, file: &FileId) -> Result<Vec<ShareInfo>, ClientError> {
        Ok(self
            .get_json::<Shares>(&format!("/api/v1/files/{file}/shares"))?
            .shares)
    }

    /// `POST /api/v1/files/{file}/revoke`: revokes every share of the file; returns how many.
    ///
    /// # Errors
    ///
    /// [`ClientError::NotFound`]; network errors.
    pub fn revoke_file_shares(&self, file: &FileId) -> Result<u64, ClientError> {
        #[derive(serde::Deserialize)]
        struct Revoked {
            revoked: u64,
        }
        let r: Revoked = self.post_json(&format!("/api/v1/files/{file}/revoke"), None)?;
        Ok(r.revoked)
    }

    /// `GET /api/v1/shares`: the caller's shares.
    ///
    /// # Errors
    ///
    /// The server's error answer; network errors.
    pub fn shares(&self) -> Result<Vec<ShareInfo>, ClientError> {
        Ok(self.get_json::<Shares>("/api/v1/shares")?.shares)
    }

    /// `DELETE /api/v1/shares/{share}`: revokes one share, immediately.
    ///
    /// # Errors
    ///
    /// [`ClientError::NotFound`]; network errors.
    pub fn revoke_share(&self, share: &ShareId) -> Result<(), ClientError> {
        self.call_empty(Method::DELETE, &format!("/api/v1/shares/{share}"))
    }

    /// `DELETE /api/v1/tokens/{token}`: revokes an API token (admin, or the token's user).
    ///
    /// # Errors
    ///
    /// [`ClientError::NotFound`], [`ClientError::Forbidden`]; network errors.
    pub fn revoke_token(&self, token: &TokenId) -> Result<(), ClientError> {
        self.call_empty(Method::DELETE, &format!("/api/v1/tokens/{token}"))
    }

    // ---------------------------------------------------------------------------------------
    // Admin

    /// `GET /api/v1/admin/users`.
    ///
    /// # Errors
    ///
    /// [`ClientError::Forbidden`] unless admin; network errors.
    pub fn users(&self) -> Result<Vec<UserInfo>, ClientError> {
        #[derive(serde::Deserialize)]
        struct Users {
            users: Vec<UserInfo>,
        }
        Ok(self.get_json::<Users>("/api/v1/admin/users")?.users)
    }

    /// `POST /api/v1/admin/users`: creates a user.
    ///
    /// # Errors
    ///
    /// [`ClientError::Exists`] if the name is taken; [`ClientError::Invalid`];
    /// [`ClientError::Forbidden`]; network errors.
    pub fn create_user(&self, name: &str, role: Role) -> Result<UserInfo, ClientError> {
        let body = serde_json::json!({"name": name, "role": role.as_str()});
        self.post_json("/api/v1/admin/users", Some(&body))
    }

    /// `GET /api/v1/admin/users/{user}/tokens`: the user's tokens, oldest first (ids and
    /// labels, never the tokens).
    ///
    /// # Errors
    ///
    /// [`ClientError::NotFound`], [`ClientError::Forbidden`]; network errors.
    pub fn tokens(&self, user: &UserId) -> Result<Vec<TokenInfo>, ClientError> {
        #[derive(serde::Deserialize)]
        struct Tokens {
            tokens: Vec<TokenInfo>,
        }
        Ok(self
            .get_json::<Tokens>(&format!("/api/v1/admin/users/{user}/tokens"))?
            .tokens)
    }

    /// `POST /api/v1/admin/users/{user}/tokens`: issues an API token (shown once). `ttl` in
    /// seconds; `None`: the server's default (90 days).
    ///
    /// # Errors
    ///
    /// [`ClientError::NotFound`], [`ClientError::Invalid`], [`ClientError::Forbidden`];
    /// network errors.
    pub fn issue_token(
        &self,
        user: &UserId,
        label: &str,
        ttl: Option<u64>,
    ) -> Result<IssuedToken, ClientError> {
        let mut body = serde_json::json!({ "label": label });
        if let Some(ttl) = ttl {
            body["ttl"] = ttl.into();
        }
        let req = self.request(
            Method::POST,
            &format!("/api/v1/admin/users/{user}/tokens"),
            Auth::Token,
        )?;
        let resp = self.send(json_request(req), &to_json(&body)[..])?;
        let status = resp.status().as_u16();
        let wire: IssuedTokenWire = json(resp)?;
        wire.into_token()
            .map_err(|detail| ClientError::UnexpectedResponse { status, detail })
    }

    /// `POST /api/v1/admin/users/{user}/disable`: deletes the user's tokens and revokes every
    /// share the user created.
    ///
    /// # Errors
    ///
    /// [`ClientError::NotFound`], [`ClientError::Forbidden`]; network errors.
    pub fn disable_user(&self, user: &UserId) -> Result<(), ClientError> {
        self.call_empty(Method::POST, &format!("/api/v1/admin/users/{user}/disable"))
    }

    /// `POST /api/v1/admin/users/{user}/enable` (old tokens and shares stay dead).
    ///
    /// # Errors
    ///
    /// [`ClientError::NotFound`], [`ClientError::Forbidden`]; network errors.
    pub fn enable_user(&self, user: &UserId) -> Result<(), ClientError> {
        self.call_empty(Method::POST, &format!("/api/v1/admin/users/{user}/enable"))
    }

    /// `GET /api/v1/admin/freeze`: whether every share is frozen.
    ///
    /// # Errors
    ///
    /// [`ClientError::Forbidden`]; network errors.
    pub fn frozen(&self) -> Result<bool, ClientError> {
        #[derive(serde::Deserialize)]
        struct Frozen {
            frozen: bool,
        }
        Ok(self.get_json::<Frozen>("/api/v1/admin/freeze")?.frozen)
    }

    /// `POST /api/v1/admin/freeze`: refuses every share of the deployment until lifted.
    ///
    /// # Errors
    ///
    /// [`ClientError::Forbidden`]; network errors.
    pub fn freeze(&self) -> Result<(), ClientError> {
        self.call_empty(Method::POST, "/api/v1/admin/freeze")
    }

    /// `DELETE /api/v1/admin/freeze`: lifts the freeze.
    ///
    /// # Errors
    ///
    /// [`ClientError::Forbidden`]; network errors.
    pub fn unfreeze(&self) -> Result<(), ClientError> {
        self.call_empty(Method::DELETE, "/api/v1/admin/freeze")
    }

    /// `POST /api/v1/admin/sweep`: runs the expiry sweeper now.
    ///
    /// # Errors
    ///
    /// [`ClientError::Forbidden`]; network errors.
    pub fn sweep(&self) -> Result<SweepReport, ClientError> {
        self.post_json("/api/v1/admin/sweep", None)
    }

    /// `POST /api/v1/admin/kek/rotate`: re-wraps every file key under the primary KEK.
    ///
    /// # Errors
    ///
    /// [`ClientError::Forbidden`]; network errors.
    pub fn rotate_kek(&self) -> Result<RotationReport, ClientError> {
        self.post_json("/api/v1/admin/kek/rotate", None)
    }

    /// `GET /api/v1/admin/retention`.
    ///
    /// # Errors
    ///
    /// [`ClientError::Forbidden`]; network errors.
    pub fn retention(&self) -> Result<Retention, ClientError> {
        self.get_json("/api/v1/admin/retention")
    }

    /// `PUT /api/v1/admin/retention`: sets the policy; returns it as the server now has it
    /// (or as sent, if the server answers without a body).
    ///
    /// # Errors
    ///
    /// [`ClientError::Invalid`] (e.g. a default above the maximum), [`ClientError::Forbidden`];
    /// network errors.
    pub fn set_retention(&self, retention: Retention) -> Result<Retention, ClientError> {
        let req = self.request(Method::PUT, "/api/v1/admin/retention", Auth::Token)?;
        let resp = self.send(json_request(req), &to_json(&retention)[..])?;
        let status = resp.status().as_u16();
        let body = read_body(resp, MAX_JSON)?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(retention);
        }
        parse_json(status, &body)
    }

    /// `GET /api/v1/admin/audit/verify` (admin, auditor).
    ///
    /// # Errors
    ///
    /// [`ClientError::AuditBroken`] naming the first broken record;
    /// [`ClientError::Forbidden`]; network errors.
    pub fn verify_audit(&self) -> Result<AuditReport, ClientError> {
        self.get_json("/api/v1/admin/audit/verify")
    }

    /// `GET /api/v1/admin/audit/export` (admin, auditor): streams the NDJSON export into
    /// `writer`; returns the bytes written.
    ///
    /// # Errors
    ///
    /// [`ClientError::Io`] if `writer` fails; [`ClientError::Forbidden`]; network errors.
    pub fn export_audit(
        &self,
        writer: impl Write,
        progress: impl FnMut(Progress),
    ) -> Result<u64, ClientError> {
        let req = self.request(Method::GET, "/api/v1/admin/audit/export", Auth::Token)?;
        let resp = self.send(req, SendBody::none())?;
        Ok(stream_download(resp, writer, progress)?.bytes)
    }

    /// `GET /api/v1/admin/audit/key` (admin, auditor): the hex Ed25519 public key that signs
    /// audit checkpoints.
    ///
    /// # Errors
    ///
    /// [`ClientError::Forbidden`]; network errors.
    pub fn audit_key(&self) -> Result<String, ClientError> {
        #[derive(serde::Deserialize)]
        struct Key {
            public_key: String,
        }
        Ok(self.get_json::<Key>("/api/v1/admin/audit/key")?.public_key)
    }

    // ---------------------------------------------------------------------------------------
    // Partners: links. These go to the link's server, never with the API token.

    /// `POST /api/v1/links/{share}`: what the link leads to. Not counted; no password needed.
    ///
    /// # Errors
    ///
    /// [`ClientError::LinkInvalid`], [`ClientError::RateLimited`]; network errors.
    pub fn link_info(&self, link: &Link) -> Result<LinkInfo, ClientError> {
        let req = self.request(
            Method::POST,
            &format!("/api/v1/links/{}", link.share_id()),
            Auth::Link(link),
        )?;
        json(self.send(req, &[][..])?)
    }

    /// `POST /api/v1/links/{share}/ticket`: checks the password (if the share has one) and
    /// counts one download; the ticket fetches that download's bytes.
    ///
    /// # Errors
    ///
    /// [`ClientError::PasswordRequired`], [`ClientError::WrongPassword`],
    /// [`ClientError::LinkInvalid`], [`ClientError::RateLimited`]; network errors.
    pub fn link_ticket(
        &self,
        link: &Link,
        password: Option<&SecretString>,
    ) -> Result<Ticket, ClientError> {
        self.link_ticket_for(link, password, &[])
    }

    /// [`Client::link_ticket`] for a download that will be opened with one of `keys` (the
    /// public halves of the caller's identities): a share bound to none of them refuses it
    /// with [`ClientError::NotRecipient`] and counts nothing, where a plain ticket would have
    /// used up a download that the caller cannot open. A share that is not recipient-bound
    /// ignores the keys. No keys: exactly [`Client::link_ticket`].
    ///
    /// # Errors
    ///
    /// As [`Client::link_ticket`], and [`ClientError::NotRecipient`].
    pub fn link_ticket_for(
        &self,
        link: &Link,
        password: Option<&SecretString>,
        keys: &[Recipient],
    ) -> Result<Ticket, ClientError> {
        let mut req = self.request(
            Method::POST,
            &format!("/api/v1/links/{}/ticket", link.share_id()),
            Auth::Link(link),
        )?;
        if let Some(pw) = password {
            add_secret_header(&mut req, PASSWORD_HEADER, &password_header(pw))?;
        }
        if !keys.is_empty() {
            let names: Vec<String> = keys.iter().map(Recipient::to_string).collect();
            req = req.header(RECIPIENT_HEADER, names.join(","));
        }
        let resp = self.send(req, &[][..])?;
        let status = resp.status().as_u16();
        let wire: TicketWire = json(resp)?;
        wire.into_ticket()
            .map_err(|detail| ClientError::UnexpectedResponse { status, detail })
    }

    /// `GET /api/v1/links/{share}/content`: streams the download into `writer`.
    ///
    /// For a recipient-bound share the bytes are a Kinko envelope sealed to the share's
    /// recipients ([`Download::recipient_bound`]); otherwise they are the plaintext.
    ///
    /// # Errors
    ///
    /// [`ClientError::Io`] if `writer` fails; [`ClientError::PasswordRequired`],
    /// [`ClientError::WrongPassword`], [`ClientError::LinkInvalid`] (also for an expired
    /// ticket's share), [`ClientError::RateLimited`]; network errors (including an answer cut
    /// short).
    pub fn link_download(
        &self,
        link: &Link,
        auth: DownloadAuth<'_>,
        writer: impl Write,
        progress: impl FnMut(Progress),
    ) -> Result<Download, ClientError> {
        let mut req = self.request(
            Method::GET,
            &format!("/api/v1/links/{}/content", link.share_id()),
            Auth::Link(link),
        )?;
        match auth {
            DownloadAuth::LinkOnly => {}
            DownloadAuth::Ticket(t) => {
                add_secret_header(&mut req, TICKET_HEADER, t.expose_secret())?
            }
            DownloadAuth::Password(pw) => {
                add_secret_header(&mut req, PASSWORD_HEADER, &password_header(pw))?
            }
        }
        let resp = self.send(req, SendBody::none())?;
        stream_download(resp, writer, progress)
    }

    /// [`Client::link_download`] with a ticket, resuming when the connection breaks: the
    /// rest is asked for with `Range` (the ticket makes it free, not a second download) and
    /// appended, up to [`RESUME_ATTEMPTS`] times. A recipient-bound envelope resumes the same
    /// way: the server gives every request for a share the same envelope bytes. The rest must
    /// come as the `206` range that starts where the break was, or the download fails.
    ///
    /// # Errors
    ///
    /// As [`Client::link_download`]; after the last attempt, the last network error.
    pub fn link_download_resuming(
        &self,
        link: &Link,
        ticket: &Ticket,
        mut writer: impl Write,
        mut progress: impl FnMut(Progress),
    ) -> Result<Download, ClientError> {
        let path = format!("/api/v1/links/{}/content", link.share_id());
        let get = |from: u64| -> Result<Response<Body>, ClientError> {
            let mut req = self.request(Method::GET, &path, Auth::Link(link))?;
            add_secret_header(&mut req, TICKET_HEADER, ticket.expose_secret())?;
            if from > 0 {
                req = req.header(http::header::RANGE, format!("bytes={from}-"));
            }
            self.send(req, SendBody::none())
        };
        let resp = get(0)?;
        let (mut download, total) = download_head(&resp);
        progress(Progress { done: 0, total });
        let mut done = 0;
        let mut body = resp;
        let mut attempts = 0;
        loop {
            match copy_body(body, &mut writer, &mut done, total, &mut progress) {
                Ok(()) => break,
                Err(ClientError::Network { .. }) if attempts < RESUME_ATTEMPTS => {
                    // What arrived before the break was written: continue after it.
                    attempts += 1;
                    std::thread::sleep(Duration::from_millis(200 * u64::from(attempts)));
                    let resp = get(done)?;
                    if !continues_at(&resp, done) {
                        return Err(ClientError::UnexpectedResponse {
                            status: resp.status().as_u16(),
                            detail: format!(
                                "the server did not resume the download at byte {done}"
                            ),
                        });
                    }
                    body = resp;
                }
                Err(e) => return Err(e),
            }
        }
        writer.flush().map_err(ClientError::Io)?;
        download.bytes = done;
        Ok(download)
    }

    // ---------------------------------------------------------------------------------------
    // Plumbing

    /// A request for `path` on the right server, with the right credentials; refused
    /// ([`check_transport`]) if they would travel over plain HTTP to another machine.
    fn request(
        &self,
        method: Method,
        path: &str,
        auth: Auth<'_>,
    ) -> Result<http::request::Builder, ClientError> {
        let (url, builder) = match auth {
            Auth::None => (self.base.join(path), Request::builder()),
            Auth::Token => {
                let mut b = Request::builder();
                if let Some(token) = &self.token {
                    check_transport(&self.base, Credential::ApiToken, self.allow_plain_http)?;
                    let bearer = token.expose_secret();
                    let value = Zeroizing::new(format!("Bearer {}", bearer.expose_secret()));
                    b = b.header(http::header::AUTHORIZATION, secret_value(&value)?);
                }
                (self.base.join(path), b)
            }
            Auth::Link(link) => {
                check_transport(
                    link.base_url(),
                    Credential::LinkSecret,
                    self.allow_plain_http,
                )?;
                let hex = link.secret().expose_secret();
                let b = Request::builder()
                    .header(LINK_SECRET_HEADER, secret_value(hex.expose_secret())?);
                (link.base_url().join(path), b)
            }
        };
        Ok(builder.method(method).uri(url))
    }

    /// Sends the request; an answer that is not a 2xx becomes its [`ClientError`].
    fn send(
        &self,
        req: http::request::Builder,
        body: impl ureq::AsSendBody,
    ) -> Result<Response<Body>, ClientError> {
        let req = req.body(body).map_err(|e| ClientError::InvalidArgument {
            message: format!(
                "cannot build the request: {}",
                e.to_string().replace('\n', " ")
            ),
        })?;
        let host = req.uri().host().unwrap_or_default().to_owned();
        let resp = self
            .agent
            .run(req)
            .map_err(|e| with_host(from_ureq(e), &host))?;
        if resp.status().is_success() {
            Ok(resp)
        } else {
            Err(error_of(resp))
        }
    }

    fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let req = self.request(Method::GET, path, Auth::Token)?;
        json(self.send(req, SendBody::none())?)
    }

    fn post_json<T: DeserializeOwned>(
        &self,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<T, ClientError> {
        let req = self.request(Method::POST, path, Auth::Token)?;
        let resp = match body {
            Some(b) => self.send(json_request(req), &to_json(b)[..])?,
            None => self.send(req, &[][..])?,
        };
        json(resp)
    }

    /// A call whose answer has no body worth reading (`204`).
    fn call_empty(&self, method: Method, path: &str) -> Result<(), ClientError> {
        let req = self.request(method.clone(), path, Auth::Token)?;
        let resp = if method == Method::POST {
            self.send(req, &[][..])?
        } else {
            self.send(req, SendBody::none())?
        };
        // Read whatever there is so the connection can be reused.
        read_body(resp, MAX_ERROR_BODY).map(drop)
    }
}

/// Whether `credential` may be sent to `server`: always over `https://`; over plain `http://`
/// only to this machine ([`BaseUrl::is_loopback`]) or with `allow_plain_http`. Every call of
/// a [`Client`] that carries a credential is checked this way before it connects; a caller
/// can check the same before it asks the user for a secret.
///
/// # Errors
///
/// [`ClientError::PlainHttp`], naming the host.
pub fn check_transport(
    server: &BaseUrl,
    credential: Credential,
    allow_plain_http: bool,
) -> Result<(), ClientError> {
    if server.is_https() || server.is_loopback() || allow_plain_http {
        return Ok(());
    }
    Err(ClientError::PlainHttp {
        host: server.authority().to_owned(),
        credential,
    })
}

#[derive(serde::Deserialize)]
struct Shares {
    shares: Vec<ShareInfo>,
}

/// A header value holding a secret: marked sensitive, so `http`'s `Debug` hides it.
fn secret_value(text: &str) -> Result<HeaderValue, ClientError> {
    let mut v = HeaderValue::from_str(text).map_err(|_| ClientError::InvalidArgument {
        message: "a credential contains characters a header cannot hold".into(),
    })?;
    v.set_sensitive(true);
    Ok(v)
}

fn add_secret_header(
    req: &mut http::request::Builder,
    name: &'static str,
    value: &str,
) -> Result<(), ClientError> {
    let value = secret_value(value)?;
    req.headers_mut()
        .expect("the builder has no error yet")
        .insert(HeaderName::from_static(name), value);
    Ok(())
}

fn json_request(req: http::request::Builder) -> http::request::Builder {
    req.header(http::header::CONTENT_TYPE, "application/json")
}

/// Serializes a request body into a buffer wiped on drop (it may hold a password).
fn to_json(value: &impl Serialize) -> Zeroizing<Vec<u8>> {
    let mut buf = Zeroizing::new(Vec::with_capacity(1024));
    serde_json::to_writer(&mut *buf, value).expect("request bodies always serialize");
    buf
}

/// Reads an answer body, at most `limit` bytes, into a buffer wiped on drop (answers can
/// hold a link, a token or a ticket).
fn read_body(resp: Response<Body>, limit: u64) -> Result<Zeroizing<Vec<u8>>, ClientError> {
    let status = resp.status().as_u16();
    let hint = resp.body().content_length().unwrap_or(0).min(limit);
    let mut buf = Zeroizing::new(Vec::with_capacity(
        usize::try_from(hint).unwrap_or(0).max(4096),
    ));
    resp.into_body()
        .into_reader()
        .take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(|e| from_transport_io(&e))?;
    if buf.len() as u64 > limit {
        return Err(ClientError::UnexpectedResponse {
            status,
            detail: format!("the answer is larger than {limit} bytes"),
        });
    }
    Ok(buf)
}

fn json<T: DeserializeOwned>(resp: Response<Body>) -> Result<T, ClientError> {
    let status = resp.status().as_u16();
    let body = read_body(resp, MAX_JSON)?;
    parse_json(status, &body)
}

fn parse_json<T: DeserializeOwned>(status: u16, body: &[u8]) -> Result<T, ClientError> {
    serde_json::from_slice(body).map_err(|e| ClientError::UnexpectedResponse {
        status,
        // serde_json's message can quote the offending value (a token, a link): only say
        // where and what kind of problem.
        detail: format!(
            "the answer is not the documented JSON ({} error at line {} column {})",
            match e.classify() {
                serde_json::error::Category::Io => "I/O",
                serde_json::error::Category::Syntax => "syntax",
                serde_json::error::Category::Data => "data",
                serde_json::error::Category::Eof => "end of input",
            },
            e.line(),
            e.column()
        ),
    })
}

/// The [`ClientError`] for a non-2xx answer.
fn error_of(resp: Response<Body>) -> ClientError {
    let status = resp.status().as_u16();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let retry_after = header("retry-after");
    let request_id = header("x-request-id");
    let mut body = Vec::new();
    // A broken body only loses the details; the status still says enough.
    let _ = resp
        .into_body()
        .into_reader()
        .take(MAX_ERROR_BODY)
        .read_to_end(&mut body);
    from_answer(&ErrorAnswer {
        status,
        retry_after: retry_after.as_deref(),
        request_id: request_id.as_deref(),
        body: &body,
    })
}

/// Streams an answer's body into `writer`, reporting progress.
fn stream_download(
    resp: Response<Body>,
    mut writer: impl Write,
    mut progress: impl FnMut(Progress),
) -> Result<Download, ClientError> {
    let (mut download, total) = download_head(&resp);
    progress(Progress { done: 0, total });
    copy_body(resp, &mut writer, &mut download.bytes, total, &mut progress)?;
    writer.flush().map_err(ClientError::Io)?;
    Ok(download)
}

/// What a download's answer says about it (`bytes` still 0), and its length.
fn download_head(resp: &Response<Body>) -> (Download, Option<u64>) {
    let headers = resp.headers();
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let download = Download {
        bytes: 0,
        recipient_bound: text(RECIPIENT_BOUND_HEADER).is_some_and(|v| v.trim() == "1"),
        content_type: text("content-type").map(str::to_owned),
        file_name: text("content-disposition").and_then(disposition_file_name),
        ticket: text(TICKET_HEADER)
            .filter(|t| valid_ticket(t))
            .map(|t| Ticket::new(SecretString::from(t), None, None)),
    };
    (download, resp.body().content_length())
}

/// Copies an answer's body into `writer`, adding to `done` what was written. A broken
/// connection is a [`ClientError::Network`]; `done` then counts what was written before it.
fn copy_body(
    resp: Response<Body>,
    writer: &mut impl Write,
    done: &mut u64,
    total: Option<u64>,
    progress: &mut impl FnMut(Progress),
) -> Result<(), ClientError> {
    let mut reader = resp.into_body().into_reader();
    let mut buf = Zeroizing::new(vec![0u8; COPY_BUFFER]);
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(from_transport_io(&e)),
        };
        writer.write_all(&buf[..n]).map_err(ClientError::Io)?;
        *done += n as u64;
        progress(Progress { done: *done, total });
    }
}

/// Whether a `206` answer continues a download at `from` (`Content-Range: bytes from-…/…`).
fn continues_at(resp: &Response<Body>, from: u64) -> bool {
    resp.status().as_u16() == 206
        && resp
            .headers()
            .get(http::header::CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("bytes "))
            .and_then(|v| v.split_once('-'))
            .is_some_and(|(start, _)| start.trim().parse() == Ok(from))
}

/// The file name of `Content-Disposition: attachment; filename*=UTF-8''…` (or a plain
/// `filename="…"`), if there is a non-empty one.
pub(crate) fn disposition_file_name(value: &str) -> Option<String> {
    let mut plain = None;
    for param in value.split(';').map(str::trim) {
        let Some((key, val)) = param.split_once('=') else {
            continue;
        };
        match key.trim().to_ascii_lowercase().as_str() {
            "filename*" => {
                let val = val.trim();
                let (charset, rest) = val.split_once('\'')?;
                let (_lang, encoded) = rest.split_once('\'')?;
                if !charset.eq_ignore_ascii_case("utf-8") {
                    continue;
                }
                let bytes: Vec<u8> = percent_encoding::percent_decode_str(encoded).collect();
                if let Ok(name) = String::from_utf8(bytes)
                    && !name.is_empty()
                {
                    return Some(name);
                }
            }
            "filename" => {
                let v = val.trim().trim_matches('"');
                if !v.is_empty() {
                    plain = Some(v.to_owned());
                }
            }
            _ => {}
        }
    }
    plain
}

/// The upload body: counts bytes for progress, checks the declared size, and keeps its own
/// read error apart from the connection's.
struct Source<'p, R, P> {
    inner: R,
    done: u64,
    total: Option<u64>,
    progress: &'p mut P,
    error: Option<io::Error>,
}

impl<R: Read, P: FnMut(Progress)> Source<'_, R, P> {
    fn report(&mut self) {
        (self.progress)(Progress {
            done: self.done,
            total: self.total,
        });
    }

    /// Records `err` as the upload's failure and hands the transport a stand-in.
    fn fail(&mut self, err: io::Error) -> io::Error {
        let stand_in = io::Error::new(err.kind(), "the upload's source failed");
        self.error = Some(err);
        stand_in
    }
}

impl<R: Read, P: FnMut(Progress)> Read for Source<'_, R, P> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.error.is_some() {
            return Err(io::Error::other("the upload's source failed"));
        }
        // With a declared size, never read past it (the check below sees any extra byte).
        let want = match self.total {
            Some(total) => {
                let left = total.saturating_sub(self.done);
                let cap = usize::try_from(left)
                    .unwrap_or(usize::MAX)
                    .saturating_add(1);
                buf.len().min(cap)
            }
            None => buf.len(),
        };
        let n = loop {
            match self.inner.read(&mut buf[..want]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.fail(e)),
            }
        };
        if let Some(total) = self.total {
            if n == 0 && self.done < total {
                return Err(self.fail(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "the input ended after {} of its {total} bytes (did it change while \
                         being uploaded?)",
                        self.done
                    ),
                )));
            }
            if self.done + n as u64 > total {
                return Err(self.fail(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("the input grew past its {total} bytes while being uploaded"),
                )));
            }
        }
        self.done += n as u64;
        if n > 0 {
            self.report();
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::NetworkErrorKind;

    #[test]
    fn content_disposition_names() {
        assert_eq!(
            disposition_file_name("attachment; filename*=UTF-8''Q3%20report%20%C3%A9.pdf")
                .as_deref(),
            Some("Q3 report é.pdf")
        );
        assert_eq!(
            disposition_file_name("attachment; filename=\"plan.pdf\"").as_deref(),
            Some("plan.pdf")
        );
        assert_eq!(
            disposition_file_name(
                "attachment; filename=\"fallback.pdf\"; filename*=utf-8''real.pdf"
            )
            .as_deref(),
            Some("real.pdf")
        );
        assert_eq!(disposition_file_name("attachment"), None);
        assert_eq!(disposition_file_name("attachment; filename*=UTF-8''"), None);
    }

    #[test]
    fn upload_source_enforces_the_declared_size() {
        let mut seen = Vec::new();
        let mut progress = |p: Progress| seen.push(p.done);
        let mut s = Source {
            inner: &b"hello"[..],
            done: 0,
            total: Some(5),
            progress: &mut progress,
            error: None,
        };
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"hello");
        assert!(s.error.is_none());
        assert_eq!(seen.last(), Some(&5));

        let mut nothing = |_: Progress| {};
        let mut short = Source {
            inner: &b"hell"[..],
            done: 0,
            total: Some(5),
            progress: &mut nothing,
            error: None,
        };
        assert!(short.read_to_end(&mut Vec::new()).is_err());
        assert_eq!(
            short.error.as_ref().map(io::Error::kind),
            Some(io::ErrorKind::UnexpectedEof)
        );

        let mut nothing = |_: Progress| {};
        let mut long = Source {
            inner: &b"hello!"[..],
            done: 0,
            total: Some(5),
            progress: &mut nothing,
            error: None,
        };
        assert!(long.read_to_end(&mut Vec::new()).is_err());
        assert_eq!(
            long.error.as_ref().map(io::Error::kind),
            Some(io::ErrorKind::InvalidData)
        );
    }

    #[test]
    fn client_debug_shows_no_token_secret() {
        let token =
            ApiToken::parse(&format!("kinko_{}{}", "ab".repeat(16), "cd".repeat(32))).unwrap();
        let client = Client::new("https://files.example.com", Some(token)).unwrap();
        let debug = format!("{client:?}");
        assert!(debug.contains(&"ab".repeat(16)), "{debug}");
        assert!(!debug.contains("cdcd"), "{debug}");
    }

    #[test]
    fn root_certificates_must_be_pem_certificates() {
        let base = BaseUrl::parse("https://a.example").unwrap();
        for pem in [
            &b""[..],
            b"not pem",
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        ] {
            assert!(matches!(
                Client::with_root_certificates(base.clone(), None, pem),
                Err(ClientError::InvalidArgument { .. })
            ));
        }
    }

    #[test]
    fn secret_headers_are_sensitive() {
        let v = secret_value("0123abcd").unwrap();
        assert!(v.is_sensitive());
        assert!(!format!("{v:?}").contains("0123abcd"));
        assert!(secret_value("bad\nvalue").is_err());
    }

    #[test]
    fn requests_carry_secrets_only_in_headers() {
        const ID: &str = "00112233445566778899aabbccddeeff";
        const SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let token =
            ApiToken::parse(&format!("kinko_{}{}", "ab".repeat(16), "cd".repeat(32))).unwrap();
        let client = Client::new("https://a.example", Some(token)).unwrap();
        let link = Link::parse(&format!("https://b.example/x/s/{ID}#{SECRET}")).unwrap();

        let req = client
            .request(Method::POST, "/api/v1/links/x", Auth::Link(&link))
            .unwrap()
            .body(())
            .unwrap();
        // The link's server, not the client's; no token; the secret only in its header.
        assert_eq!(req.uri().to_string(), "https://b.example/x/api/v1/links/x");
        assert!(req.headers().get(http::header::AUTHORIZATION).is_none());
        assert_eq!(req.headers()[LINK_SECRET_HEADER], SECRET);
        assert!(!req.uri().to_string().contains(SECRET));

        let req = client
            .request(Method::GET, "/api/v1/me", Auth::Token)
            .unwrap()
            .body(())
            .unwrap();
        assert_eq!(req.uri().to_string(), "https://a.example/api/v1/me");
        let auth = req.headers()[http::header::AUTHORIZATION].to_str().unwrap();
        assert!(auth.starts_with("Bearer kinko_abab"), "{auth}");
        assert!(req.headers()[http::header::AUTHORIZATION].is_sensitive());
    }

    fn test_token() -> ApiToken {
        ApiToken::parse(&format!("kinko_{}{}", "ab".repeat(16), "cd".repeat(32))).unwrap()
    }

    const LINK_SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    /// Every call that carries the token or a link's secret fails before connecting when the
    /// server is another host over plain HTTP (`.invalid` never resolves: a call that got as
    /// far as the network would fail with a DNS error instead).
    #[test]
    fn credentials_are_not_sent_over_plain_http_to_another_host() {
        let remote = "http://kinko-test.invalid:8080";
        let refused = |result: Result<(), ClientError>, credential: Credential| {
            let err = result.unwrap_err();
            assert!(
                matches!(&err, ClientError::PlainHttp { host, credential: c }
                    if host == "kinko-test.invalid:8080" && *c == credential),
                "{err:?}"
            );
            let text = err.to_string();
            for words in [
                "kinko-test.invalid:8080",
                "plain http://",
                "https://",
                "allow",
            ] {
                assert!(text.contains(words), "{text}");
            }
            assert!(
                !text.contains("cdcd") && !text.contains(&LINK_SECRET[..16]),
                "{text}"
            );
        };

        let client = Client::new(remote, Some(test_token())).unwrap();
        refused(client.me().map(drop), Credential::ApiToken);
        refused(client.files().map(drop), Credential::ApiToken);
        let upload = client.upload("a", &b"plans"[..], &UploadOptions::default(), |_| {});
        refused(upload.map(drop), Credential::ApiToken);

        let link = Link::parse(&format!(
            "{remote}/s/00112233445566778899aabbccddeeff#{LINK_SECRET}"
        ))
        .unwrap();
        let partner = Client::for_link(&link);
        refused(partner.link_info(&link).map(drop), Credential::LinkSecret);
        refused(
            partner.link_ticket(&link, None).map(drop),
            Credential::LinkSecret,
        );
        let download = partner.link_download(&link, DownloadAuth::LinkOnly, io::sink(), |_| {});
        refused(download.map(drop), Credential::LinkSecret);
        // The link's server decides, whatever the client's own server.
        let client = Client::new("https://files.example.com", None).unwrap();
        refused(client.link_info(&link).map(drop), Credential::LinkSecret);
    }

    /// A host name that does not resolve is a DNS error naming the host, not a generic
    /// network error, through the system resolver (`.invalid` never resolves, RFC 6761, so
    /// no network is needed), with and without a link.
    #[test]
    fn a_host_that_does_not_resolve_is_a_dns_error() {
        let dns = |result: Result<(), ClientError>| {
            let err = result.unwrap_err();
            assert!(
                matches!(&err, ClientError::Network { kind: NetworkErrorKind::Dns, detail }
                    if detail == "kinko-test.invalid"),
                "{err:?}"
            );
            assert_eq!(err.to_string(), "host name not found: kinko-test.invalid");
        };
        let client = Client::new("https://kinko-test.invalid:1", Some(test_token())).unwrap();
        dns(client.health());
        dns(client.files().map(drop));
        let link = Link::parse(&format!(
            "http://kinko-test.invalid:1/s/00112233445566778899aabbccddeeff#{LINK_SECRET}"
        ))
        .unwrap();
        let partner = Client::for_link(&link).allow_plain_http(true);
        dns(partner.link_info(&link).map(drop));
    }

    #[test]
    fn plain_http_goes_to_this_machine_or_when_allowed() {
        let requests = |client: &Client, link: &Link| {
            [
                client.request(Method::GET, "/api/v1/me", Auth::Token),
                client.request(Method::POST, "/api/v1/links/x", Auth::Link(link)),
            ]
            .map(|r| r.map(drop))
        };
        let setup = |base: &str| {
            let client = Client::new(base, Some(test_token())).unwrap();
            let link = Link::parse(&format!(
                "{base}/s/00112233445566778899aabbccddeeff#{LINK_SECRET}"
            ))
            .unwrap();
            (client, link)
        };
        // Which hosts are this machine is `BaseUrl::is_loopback`'s, tested with the link.
        for ok in [
            "https://files.example.com",
            "http://127.0.0.1:8750",
            "http://localhost:8750/prefix",
            "http://[::1]:8750",
        ] {
            let (client, link) = setup(ok);
            for r in requests(&client, &link) {
                assert!(r.is_ok(), "{ok}: {r:?}");
            }
        }
        for remote in ["http://192.0.2.1:9", "http://files.example.com"] {
            let (client, link) = setup(remote);
            for r in requests(&client, &link) {
                assert!(matches!(r, Err(ClientError::PlainHttp { .. })), "{remote}");
            }
            // Nothing secret in a health check, or in a call without a token.
            assert!(client.request(Method::GET, "/healthz", Auth::None).is_ok());
            let anonymous = Client::new(remote, None).unwrap();
            assert!(
                anonymous
                    .request(Method::GET, "/api/v1/me", Auth::Token)
                    .is_ok()
            );
            let client = client.allow_plain_http(true);
            for r in requests(&client, &link) {
                assert!(r.is_ok(), "{remote} allowed: {r:?}");
            }
            let partner = Client::for_link(&link).allow_plain_http(true);
            assert!(
                partner
                    .request(Method::POST, "/x", Auth::Link(&link))
                    .is_ok()
            );
        }
    }
}
