//! [`ClientError`]: every way a call to the sidecar can fail, and how HTTP answers map to it.
//!
//! The server answers errors as `{"error": {"code": "...", "message": "..."}}` with a stable
//! machine code (docs/API.md). Each code is one variant here. Failures before an answer
//! (connection refused, DNS, TLS, a broken connection) are [`ClientError::Network`]; a
//! failure of the caller's own reader or writer is [`ClientError::Io`]; an answer this client
//! does not understand is [`ClientError::UnexpectedResponse`].
//!
//! No variant holds a token, link secret, password or ticket. Server messages are kept (they
//! say which value was refused and why) and are cut to a bounded length.

use std::fmt;
use std::io;

use serde::Deserialize;

use crate::link::UrlError;

/// Longest server message kept in an error, in bytes.
const MAX_MESSAGE: usize = 512;

/// What went wrong on the way to the server, before any answer arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NetworkErrorKind {
    /// Nothing listens at the address (the server is not running, or a wrong port).
    ConnectionRefused,
    /// The host name does not resolve.
    Dns,
    /// The TLS handshake failed (certificate not trusted, expired, wrong host name…).
    Tls,
    /// The connection or an answer took longer than the configured timeout.
    TimedOut,
    /// The connection broke in the middle of a request or an answer (including an answer cut
    /// short of its announced length).
    ConnectionLost,
    /// The server broke the HTTP protocol.
    Protocol,
    /// Anything else (no route to host, a proxy failure…).
    Other,
}

impl fmt::Display for NetworkErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NetworkErrorKind::ConnectionRefused => "connection refused",
            NetworkErrorKind::Dns => "host name not found",
            NetworkErrorKind::Tls => "TLS failed",
            NetworkErrorKind::TimedOut => "timed out",
            NetworkErrorKind::ConnectionLost => "connection lost",
            NetworkErrorKind::Protocol => "HTTP protocol error",
            NetworkErrorKind::Other => "network error",
        })
    }
}

/// A secret that authenticates a request: what [`ClientError::PlainHttp`] refused to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Credential {
    /// The client's API token (`Authorization: Bearer`).
    ApiToken,
    /// A link's secret (and the share's password or download ticket with it).
    LinkSecret,
}

impl fmt::Display for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Credential::ApiToken => "the API token",
            Credential::LinkSecret => "the link's secret",
        })
    }
}

/// Everything that can make a client call fail.
///
/// The first group mirrors the API's error codes (docs/API.md, "Errors"); `message` is the
/// server's sentence for people. Then come the failures that are not answers from the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// `401 unauthenticated`: no token, or a token that is unknown, wrong, expired or whose
    /// user is disabled (the server gives one answer for all).
    #[error("the server does not accept the API token: {message}")]
    Unauthenticated {
        /// The server's message.
        message: String,
    },
    /// `403 forbidden`: the caller's role does not allow this.
    #[error("not allowed: {message}")]
    Forbidden {
        /// The server's message.
        message: String,
    },
    /// `404 not_found`: no such object, or not the caller's.
    #[error("not found: {message}")]
    NotFound {
        /// The server's message.
        message: String,
    },
    /// `404 link_invalid`: the link is unknown, wrong, expired, revoked, used up, locked,
    /// frozen, its owner disabled or its file deleted (one answer for all).
    #[error("the link is not valid (wrong, expired, revoked or used up)")]
    LinkInvalid,
    /// `401 password_required`: the link is right and the share has a password; none was sent.
    #[error("this share needs a password")]
    PasswordRequired,
    /// `403 wrong_password`: the password is wrong (counts toward the share's lock).
    #[error("wrong password")]
    WrongPassword,
    /// `403 not_recipient`: the share is bound to other keys than those the download named
    /// (see [`Client::link_ticket_for`](crate::Client::link_ticket_for)); nothing was counted.
    #[error("this share is bound to other keys than yours")]
    NotRecipient,
    /// `429 rate_limited`: too many attempts from this address.
    #[error("too many attempts; retry {}", retry_text(*retry_after))]
    RateLimited {
        /// Seconds to wait, from `Retry-After`, when the server said.
        retry_after: Option<u64>,
    },
    /// `413 too_large`: the body exceeds the server's limit.
    #[error("too large: {message}")]
    TooLarge {
        /// The server's message.
        message: String,
    },
    /// `400 invalid`: malformed input, a bad id, or a value outside policy.
    #[error("refused: {message}")]
    Invalid {
        /// The server's message, naming the value.
        message: String,
    },
    /// `400 secret_in_url`: a link route was called with a query string (never by this
    /// client).
    #[error("the server refused a link request with a query string")]
    SecretInUrl,
    /// `409 exists`: the name is taken.
    #[error("already exists: {message}")]
    Exists {
        /// The server's message.
        message: String,
    },
    /// `408 timeout`: the server stopped waiting for the request body.
    #[error("the server timed out waiting for the request body")]
    Timeout,
    /// `416 range_not_satisfiable`: the range lies outside the file.
    #[error("the requested range lies outside the file")]
    RangeNotSatisfiable,
    /// `409 audit_broken`: audit verification found a broken record.
    #[error("the audit log is broken: {message}")]
    AuditBroken {
        /// The server's message, naming the first broken record.
        message: String,
    },
    /// `500 internal`: the server failed; nothing was changed.
    #[error("the server failed: {message}{}", request_id_text(request_id.as_deref()))]
    Internal {
        /// The server's message.
        message: String,
        /// The `X-Request-Id` of the answer, for the server's logs.
        request_id: Option<String>,
    },
    /// `503 unavailable`: the server is shutting down or over its concurrency limit (also a
    /// proxy's 502/503/504 without a Kinko error body).
    #[error("the server is unavailable; retry {}", retry_text(*retry_after))]
    Unavailable {
        /// Seconds to wait, from `Retry-After`, when the server said.
        retry_after: Option<u64>,
    },
    /// No answer: the connection could not be made or broke.
    #[error("{kind}{}", if detail.is_empty() { String::new() } else { format!(": {detail}") })]
    Network {
        /// What kind of failure.
        kind: NetworkErrorKind,
        /// The transport's description (never a header value); empty when `kind` says it all.
        detail: String,
    },
    /// The caller's reader (an upload's source) or writer (a download's destination) failed.
    #[error("{0}")]
    Io(#[source] io::Error),
    /// An answer this client does not understand: an unknown error code, a body that is not
    /// the documented JSON, a redirect, or a status the API does not use.
    #[error("unexpected answer from the server (HTTP {status}): {detail}")]
    UnexpectedResponse {
        /// The HTTP status.
        status: u16,
        /// What was unexpected.
        detail: String,
    },
    /// A value given to the client cannot be sent (e.g. a content type with a line break).
    #[error("{message}")]
    InvalidArgument {
        /// What cannot be sent (never the value itself).
        message: String,
    },
    /// The call would send `credential` over plain `http://` to a host that is not this
    /// machine, where anyone on the network path could read it (and the file). Nothing was
    /// sent. Plain HTTP is allowed to `localhost`, 127.0.0.0/8 and `::1`; to another host
    /// only once the client was told to with
    /// [`Client::allow_plain_http`](crate::Client::allow_plain_http).
    #[error(
        "refusing to send {credential} to {host} over plain http://: anyone on the network \
         could read it; use the server's https:// address, or allow plain HTTP explicitly \
         if the network is trusted"
    )]
    PlainHttp {
        /// The host (and port) that was refused, e.g. `files.example.com:8080`.
        host: String,
        /// What the call would have sent.
        credential: Credential,
    },
    /// The server address given to the client is not valid.
    #[error(transparent)]
    InvalidUrl(#[from] UrlError),
}

fn retry_text(after: Option<u64>) -> String {
    match after {
        Some(s) => format!("in {s} s"),
        None => "later".into(),
    }
}

fn request_id_text(id: Option<&str>) -> String {
    id.map(|id| format!(" (request id {id})"))
        .unwrap_or_default()
}

impl ClientError {
    /// The API error code this error came from (`"not_found"`, …), if it came from one.
    pub fn code(&self) -> Option<&'static str> {
        Some(match self {
            ClientError::Unauthenticated { .. } => "unauthenticated",
            ClientError::Forbidden { .. } => "forbidden",
            ClientError::NotFound { .. } => "not_found",
            ClientError::LinkInvalid => "link_invalid",
            ClientError::PasswordRequired => "password_required",
            ClientError::WrongPassword => "wrong_password",
            ClientError::NotRecipient => "not_recipient",
            ClientError::RateLimited { .. } => "rate_limited",
            ClientError::TooLarge { .. } => "too_large",
            ClientError::Invalid { .. } => "invalid",
            ClientError::SecretInUrl => "secret_in_url",
            ClientError::Exists { .. } => "exists",
            ClientError::Timeout => "timeout",
            ClientError::RangeNotSatisfiable => "range_not_satisfiable",
            ClientError::AuditBroken { .. } => "audit_broken",
            ClientError::Internal { .. } => "internal",
            ClientError::Unavailable { .. } => "unavailable",
            ClientError::Network { .. }
            | ClientError::Io(_)
            | ClientError::UnexpectedResponse { .. }
            | ClientError::InvalidArgument { .. }
            | ClientError::PlainHttp { .. }
            | ClientError::InvalidUrl(_) => return None,
        })
    }
}

/// The documented error body.
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
    #[serde(default)]
    message: String,
}

/// The parts of an error answer that matter.
#[derive(Debug, Clone, Default)]
pub(crate) struct ErrorAnswer<'a> {
    /// The HTTP status.
    pub(crate) status: u16,
    /// `Retry-After`, as sent.
    pub(crate) retry_after: Option<&'a str>,
    /// `X-Request-Id`, as sent.
    pub(crate) request_id: Option<&'a str>,
    /// The body (at most a bounded prefix of it).
    pub(crate) body: &'a [u8],
}

/// Maps an error answer (status ≥ 400, or anything else unexpected) to a [`ClientError`].
///
/// The JSON error code decides. Without a Kinko error body (a proxy's page, an empty body),
/// the status decides where it is unambiguous; otherwise the answer is unexpected.
pub(crate) fn from_answer(answer: &ErrorAnswer<'_>) -> ClientError {
    let retry_after = answer.retry_after.and_then(parse_retry_after);
    let request_id = answer
        .request_id
        .filter(|id| id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned);
    let status = answer.status;
    let Ok(ErrorBody {
        error: ErrorDetail { code, message },
    }) = serde_json::from_slice::<ErrorBody>(answer.body)
    else {
        return from_status(status, retry_after, request_id);
    };
    let message = bounded(message);
    match code.as_str() {
        "unauthenticated" => ClientError::Unauthenticated { message },
        "forbidden" => ClientError::Forbidden { message },
        "not_found" => ClientError::NotFound { message },
        "link_invalid" => ClientError::LinkInvalid,
        "password_required" => ClientError::PasswordRequired,
        "wrong_password" => ClientError::WrongPassword,
        "not_recipient" => ClientError::NotRecipient,
        "rate_limited" => ClientError::RateLimited { retry_after },
        "too_large" => ClientError::TooLarge { message },
        "invalid" => ClientError::Invalid { message },
        "secret_in_url" => ClientError::SecretInUrl,
        "exists" => ClientError::Exists { message },
        "timeout" => ClientError::Timeout,
        "range_not_satisfiable" => ClientError::RangeNotSatisfiable,
        "audit_broken" => ClientError::AuditBroken { message },
        "internal" => ClientError::Internal {
            message,
            request_id,
        },
        "unavailable" => ClientError::Unavailable { retry_after },
        _ => ClientError::UnexpectedResponse {
            status,
            detail: format!(
                "unknown error code {:?}: {message}",
                bounded(code.chars().take(64).collect())
            ),
        },
    }
}

/// An error status without a Kinko error body (e.g. from a proxy in front of the server).
fn from_status(status: u16, retry_after: Option<u64>, request_id: Option<String>) -> ClientError {
    match status {
        401 => ClientError::Unauthenticated {
            message: "no error details in the answer".into(),
        },
        403 => ClientError::Forbidden {
            message: "no error details in the answer".into(),
        },
        408 => ClientError::Timeout,
        413 => ClientError::TooLarge {
            message: "the request body is larger than the server (or a proxy) accepts".into(),
        },
        416 => ClientError::RangeNotSatisfiable,
        429 => ClientError::RateLimited { retry_after },
        500 => ClientError::Internal {
            message: "no error details in the answer".into(),
            request_id,
        },
        502..=504 => ClientError::Unavailable { retry_after },
        300..=399 => ClientError::UnexpectedResponse {
            status,
            detail: "a redirect; Kinko API calls are never redirected (is the server URL right, \
                     e.g. https rather than http?)"
                .into(),
        },
        _ => ClientError::UnexpectedResponse {
            status,
            detail: "not a Kinko error answer (is this the Kinko server's URL?)".into(),
        },
    }
}

/// `Retry-After` in its delay-seconds form. The HTTP-date form is not used by the sidecar
/// and is ignored.
pub(crate) fn parse_retry_after(value: &str) -> Option<u64> {
    let v = value.trim();
    if v.is_empty() || v.len() > 12 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

/// A server message cut to [`MAX_MESSAGE`] bytes at a character boundary, with control
/// characters replaced (it is printed on terminals).
fn bounded(text: String) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_MESSAGE));
    for c in text.chars() {
        if out.len() + c.len_utf8() > MAX_MESSAGE {
            out.push('…');
            break;
        }
        out.push(if c.is_control() { ' ' } else { c });
    }
    out
}

/// Maps a transport error (no answer, or a broken one) to [`ClientError::Network`].
pub(crate) fn from_ureq(err: ureq::Error) -> ClientError {
    let kind = match &err {
        ureq::Error::Io(e) => return from_transport_io(e),
        ureq::Error::HostNotFound => NetworkErrorKind::Dns,
        ureq::Error::Timeout(_) => NetworkErrorKind::TimedOut,
        ureq::Error::Tls(_) | ureq::Error::Pem(_) | ureq::Error::Rustls(_) => NetworkErrorKind::Tls,
        ureq::Error::Protocol(_) => NetworkErrorKind::Protocol,
        ureq::Error::ConnectionFailed => NetworkErrorKind::ConnectionRefused,
        _ => NetworkErrorKind::Other,
    };
    let detail = match kind {
        NetworkErrorKind::Dns
        | NetworkErrorKind::TimedOut
        | NetworkErrorKind::ConnectionRefused => String::new(),
        _ => bounded(err.to_string()),
    };
    ClientError::Network { kind, detail }
}

/// Maps an I/O error of the connection (not of the caller's reader or writer).
pub(crate) fn from_transport_io(err: &io::Error) -> ClientError {
    // A failed handshake (an untrusted certificate…) reaches us as rustls's error in an
    // io::Error.
    if let Some(inner) = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        return ClientError::Network {
            kind: NetworkErrorKind::Tls,
            detail: bounded(inner.to_string()),
        };
    }
    // The body reader wraps ureq's own errors in io::Error.
    if let Some(inner) = err.get_ref().and_then(|e| e.downcast_ref::<ureq::Error>()) {
        let kind = match inner {
            ureq::Error::Timeout(_) => NetworkErrorKind::TimedOut,
            ureq::Error::Protocol(_) => NetworkErrorKind::Protocol,
            ureq::Error::Tls(_) | ureq::Error::Rustls(_) => NetworkErrorKind::Tls,
            _ => NetworkErrorKind::ConnectionLost,
        };
        return ClientError::Network {
            kind,
            detail: bounded(inner.to_string()),
        };
    }
    if is_name_not_resolved(err) {
        return ClientError::Network {
            kind: NetworkErrorKind::Dns,
            detail: String::new(),
        };
    }
    let kind = match err.kind() {
        io::ErrorKind::ConnectionRefused => NetworkErrorKind::ConnectionRefused,
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => NetworkErrorKind::TimedOut,
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::UnexpectedEof
        | io::ErrorKind::NotConnected => NetworkErrorKind::ConnectionLost,
        io::ErrorKind::InvalidData => NetworkErrorKind::Protocol,
        _ => NetworkErrorKind::Other,
    };
    // "connection refused: Connection refused (os error 111)" says it twice.
    let detail = match kind {
        NetworkErrorKind::Other | NetworkErrorKind::Protocol => bounded(err.to_string()),
        _ => String::new(),
    };
    ClientError::Network { kind, detail }
}

/// Whether `err` is the system resolver failing on the host name (no such name, or no
/// answer from DNS). ureq resolves with std's `ToSocketAddrs` and passes its error on as
/// [`ureq::Error::Io`], and std has no `ErrorKind` for it: on Unix (Linux, macOS, Android,
/// iOS) a failed `getaddrinfo` is an uncategorized error whose text starts with "failed to
/// lookup address information" (std's `cvt_gai`, followed by `gai_strerror`); on Windows it
/// is the raw WSA code.
fn is_name_not_resolved(err: &io::Error) -> bool {
    // WSAHOST_NOT_FOUND, WSATRY_AGAIN, WSANO_RECOVERY, WSANO_DATA.
    if cfg!(windows) && matches!(err.raw_os_error(), Some(11001..=11004)) {
        return true;
    }
    err.raw_os_error().is_none()
        && err
            .to_string()
            .starts_with("failed to lookup address information")
}

/// Names `host` in a [`NetworkErrorKind::Dns`] error, which the transport leaves without
/// detail: "host name not found: files.example.com".
pub(crate) fn with_host(err: ClientError, host: &str) -> ClientError {
    match err {
        ClientError::Network {
            kind: NetworkErrorKind::Dns,
            detail,
        } if detail.is_empty() => ClientError::Network {
            kind: NetworkErrorKind::Dns,
            detail: bounded(host.to_owned()),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> ClientError {
        from_answer(&ErrorAnswer {
            status,
            retry_after: None,
            request_id: None,
            body: body.as_bytes(),
        })
    }

    fn body(code: &str, message: &str) -> String {
        serde_json::json!({"error": {"code": code, "message": message}}).to_string()
    }

    #[test]
    fn every_documented_code_maps_to_its_variant() {
        let cases: &[(u16, &str)] = &[
            (400, "invalid"),
            (400, "secret_in_url"),
            (401, "unauthenticated"),
            (401, "password_required"),
            (403, "wrong_password"),
            (403, "not_recipient"),
            (403, "forbidden"),
            (404, "not_found"),
            (404, "link_invalid"),
            (408, "timeout"),
            (409, "exists"),
            (409, "audit_broken"),
            (413, "too_large"),
            (416, "range_not_satisfiable"),
            (429, "rate_limited"),
            (500, "internal"),
            (503, "unavailable"),
        ];
        for (status, code) in cases {
            let err = answer(*status, &body(code, "the message"));
            assert_eq!(err.code(), Some(*code), "{code}: {err:?}");
        }
    }

    #[test]
    fn messages_and_details_are_kept() {
        let err = answer(400, &body("invalid", "expires_in exceeds the maximum"));
        assert!(
            matches!(&err, ClientError::Invalid { message } if message == "expires_in exceeds the maximum")
        );
        assert_eq!(err.to_string(), "refused: expires_in exceeds the maximum");

        let err = from_answer(&ErrorAnswer {
            status: 429,
            retry_after: Some(" 30 "),
            request_id: None,
            body: body("rate_limited", "slow down").as_bytes(),
        });
        assert!(matches!(
            err,
            ClientError::RateLimited {
                retry_after: Some(30)
            }
        ));

        let err = from_answer(&ErrorAnswer {
            status: 500,
            retry_after: None,
            request_id: Some("abc123"),
            body: body("internal", "Something went wrong").as_bytes(),
        });
        assert!(err.to_string().contains("request id abc123"), "{err}");

        // A message body without "message" still maps by code.
        let err = answer(404, r#"{"error":{"code":"not_found"}}"#);
        assert!(matches!(err, ClientError::NotFound { .. }));
    }

    #[test]
    fn answers_without_a_kinko_body_map_by_status() {
        assert!(matches!(
            answer(502, "<html>Bad Gateway</html>"),
            ClientError::Unavailable { retry_after: None }
        ));
        assert!(matches!(
            answer(401, ""),
            ClientError::Unauthenticated { .. }
        ));
        assert!(matches!(answer(413, "nginx"), ClientError::TooLarge { .. }));
        assert!(matches!(
            answer(404, "Not Found"),
            ClientError::UnexpectedResponse { status: 404, .. }
        ));
        assert!(matches!(
            answer(302, ""),
            ClientError::UnexpectedResponse { status: 302, .. }
        ));
        assert!(matches!(
            answer(418, &body("teapot", "short and stout")),
            ClientError::UnexpectedResponse { status: 418, .. }
        ));
    }

    #[test]
    fn server_messages_are_bounded_and_printable() {
        let long = "x".repeat(10_000);
        let err = answer(400, &body("invalid", &format!("a\u{1b}[31mb\n{long}")));
        let ClientError::Invalid { message } = err else {
            panic!("not invalid")
        };
        assert!(message.len() <= MAX_MESSAGE + '…'.len_utf8());
        assert!(message.starts_with("a [31mb "), "{message}");
        assert!(!message.chars().any(char::is_control));
    }

    #[test]
    fn retry_after_is_delay_seconds_only() {
        assert_eq!(parse_retry_after("120"), Some(120));
        assert_eq!(parse_retry_after(" 5"), Some(5));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after(""), None);
        assert_eq!(parse_retry_after("99999999999999999999"), None);
    }

    #[test]
    fn transport_errors_are_network_errors() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert!(matches!(
            from_ureq(ureq::Error::Io(refused)),
            ClientError::Network {
                kind: NetworkErrorKind::ConnectionRefused,
                ..
            }
        ));
        assert!(matches!(
            from_ureq(ureq::Error::HostNotFound),
            ClientError::Network {
                kind: NetworkErrorKind::Dns,
                ..
            }
        ));
        let handshake = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        assert!(matches!(
            from_ureq(ureq::Error::Io(handshake)),
            ClientError::Network {
                kind: NetworkErrorKind::Tls,
                ..
            }
        ));
        // What std's resolver answers for a name that does not resolve (see
        // `is_name_not_resolved`); the request's host is then named.
        let unresolved =
            io::Error::other("failed to lookup address information: Name or service not known");
        let err = with_host(from_ureq(ureq::Error::Io(unresolved)), "kinko-test.invalid");
        assert!(
            matches!(
                &err,
                ClientError::Network {
                    kind: NetworkErrorKind::Dns,
                    detail,
                } if detail == "kinko-test.invalid"
            ),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "host name not found: kinko-test.invalid");
        assert!(matches!(
            from_transport_io(&io::Error::other("something else")),
            ClientError::Network {
                kind: NetworkErrorKind::Other,
                ..
            }
        ));
        assert!(matches!(
            from_transport_io(&io::Error::from(io::ErrorKind::UnexpectedEof)),
            ClientError::Network {
                kind: NetworkErrorKind::ConnectionLost,
                ..
            }
        ));
    }
}
