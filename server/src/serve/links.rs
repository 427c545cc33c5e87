//! Partner endpoints: a share's details, its download ticket, and its bytes.
//!
//! The link secret arrives only in the `Kinko-Link-Secret` header (or the browser form's
//! body); the router refuses link routes with a query string. Every decision is
//! [`kinko_core::vault::Vault::access`]'s, audited there.

use std::io::{Seek, SeekFrom};

use axum::Form;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header, request::Parts};
use axum::response::{IntoResponse, Response};
use kinko_core::envelope::OpenError;
use kinko_core::keys::Recipient;
use kinko_core::vault::store::BlobRead;
use kinko_core::vault::{
    AccessError, AccessKind, Decided, Download, DownloadTicket, Grant, LinkSecret, SealingError,
    ShareId, Vault, VaultError,
};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::json;

use super::app::{AppState, ClientAddr};
use super::error::ApiError;
use super::files::{Positioned, plaintext_response, position, ranged_response};
use super::stream::{self, RangeReq};
use super::workers;

/// Header carrying the link secret.
pub(crate) const SECRET_HEADER: &str = "kinko-link-secret";
/// Header carrying the share password (percent-encoded UTF-8).
pub(crate) const PASSWORD_HEADER: &str = "kinko-password";
/// Header carrying (or returning) a download ticket.
pub(crate) const TICKET_HEADER: &str = "kinko-ticket";
/// Header naming the keys a download will be opened with (`age1…`, comma-separated).
pub(crate) const RECIPIENT_HEADER: &str = "kinko-recipient";
/// Answer header marking a download as a recipient-bound envelope (`1`).
pub(crate) const RECIPIENT_BOUND_HEADER: &str = "kinko-recipient-bound";

/// The client address as the audit log records it.
fn client(addr: Option<&ClientAddr>) -> std::net::IpAddr {
    addr.map_or(std::net::IpAddr::from([0, 0, 0, 0]), |c| c.0.ip())
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// The link secret of `Kinko-Link-Secret`. A request without the header is refused as
/// incomplete (`400 invalid`), before the share is looked at: that tells a client what it
/// forgot and nothing about the share. A value that cannot be a secret (not ASCII, malformed)
/// is `None`: refused later exactly like a wrong secret.
fn secret_from(h: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let v = h.get(SECRET_HEADER).ok_or_else(|| {
        ApiError::invalid(
            "the link secret is missing: send the text after `#` in the link \
             in the Kinko-Link-Secret header",
        )
    })?;
    Ok(v.to_str().ok())
}

/// The share password of `Kinko-Password`. A value that is not ASCII (UTF-8 sent raw) is
/// refused rather than taken for no password; an empty one, which no share password is, is
/// no password, so that it never counts toward the lock.
fn password_from(h: &HeaderMap) -> Result<Option<SecretString>, ApiError> {
    let bad = || ApiError::invalid("Kinko-Password must be percent-encoded UTF-8");
    let Some(v) = h.get(PASSWORD_HEADER) else {
        return Ok(None);
    };
    let v = v.to_str().map_err(|_| bad())?;
    if v.is_empty() {
        return Ok(None);
    }
    let decoded = percent_encoding::percent_decode_str(v)
        .decode_utf8()
        .map_err(|_| bad())?;
    Ok(Some(SecretString::from(decoded.into_owned())))
}

/// Decides one link request and, when it is granted, runs `then` on the grant, in one vault
/// job: on the link workers, or on the blocking pool when a password makes it an Argon2 job
/// (only when the password can change the answer: otherwise it is dropped unchecked).
/// A decision that must be durable is flushed (by the group commit) before anything is
/// returned. Wrong passwords also count against the address.
async fn decide<T, F>(
    state: &AppState,
    ip: std::net::IpAddr,
    share: &str,
    secret: Option<&str>,
    password: Option<SecretString>,
    kind: AccessKind,
    then: F,
) -> Result<(Grant, T), ApiError>
where
    T: Send + 'static,
    F: FnOnce(&Vault, &Grant) -> Result<T, VaultError> + Send + 'static,
{
    let mono = state.clock.mono_ms();
    if password.is_some() {
        state
            .auth_limiter
            .check(ip, mono)
            .map_err(ApiError::rate_limited)?;
    }
    // A malformed id or secret is refused exactly like a wrong one.
    let Ok(share) = share.parse::<ShareId>() else {
        return Err(ApiError::link_invalid());
    };
    let parse = |text: Option<&str>| {
        text.and_then(LinkSecret::parse)
            .ok_or_else(ApiError::link_invalid)
    };
    let (secret, text) = (parse(secret)?, secret);
    let now = state.clock.now();
    let client = ip.to_string();
    // Argon2 turns are few (one per core). A password that cannot change the answer (a locked,
    // expired, revoked or used-up share, a wrong secret, a view) is not checked, so such a
    // request does not wait for a turn behind real checks: it is decided without it.
    let mut password = password;
    if password.is_some() {
        let (again, k) = (parse(text)?, kind.clone());
        let decides = state
            .workers
            .run(move |v| v.password_decides(&share, &again, &k, now))
            .await??;
        if !decides {
            password = None;
        }
    }
    let slow = password.is_some();
    // From here until it waits for its flush (or needs none), a download's decision holds up
    // the next flush briefly, so that one flush covers it and its neighbours. Not an Argon2
    // job (it takes far longer than a flush would wait), nor a view or a further range (they
    // never need a flush).
    let starts_download = kind.starts_download();
    // Kept until the decision's answer is read; dropped with this future if the client goes
    // away first.
    let (_waiting, requester) = workers::requester();
    let job = move |v: &Vault| {
        // A download whose client went away while it waited here (in the workers' queue, or
        // for an Argon2 turn) is not decided: nobody would receive its ticket, so it counts
        // nothing (nor a wrong password), and no audit record says it was downloaded. The
        // window that remains: a client that goes away after this check, while its decision
        // commits or its answer is on the way, has the download counted and gets no ticket,
        // as with any network failure after the count; a body cut mid-transfer is what the
        // ticket resumes.
        if starts_download && requester.gone() {
            return None;
        }
        let d = v.decide_access(&share, &secret, password.as_ref(), kind, &client, now);
        let prepared = match &d.outcome {
            Ok(grant) => {
                let prepared = then(v, grant);
                // Nothing has been sent: a download that cannot be served is not spent.
                // (The error itself is logged where it becomes the answer.)
                if prepared.is_err()
                    && let Err(e) = v.give_back(grant, &client, now)
                {
                    tracing::error!(error = %e, "the failed download stays counted");
                }
                Some(prepared)
            }
            Err(_) => None,
        };
        Some((d, prepared))
    };
    let must_flush =
        |decided: &Option<(Decided<_>, _)>| decided.as_ref().is_some_and(|(d, _)| d.must_flush);
    let decided = if slow {
        let _argon2 = state
            .argon2
            .acquire()
            .await
            .map_err(|_| ApiError::unavailable("the server is stopping"))?;
        let decided = state.vault(job).await?;
        if must_flush(&decided) {
            state.group_commit.unannounced().flushed().await?;
        }
        decided
    } else {
        let commit = &state.group_commit;
        let announced = if starts_download {
            commit.announce()
        } else {
            commit.unannounced()
        };
        state
            .workers
            .run_durable(announced, move |v| {
                let decided = job(v);
                let flush = must_flush(&decided);
                (decided, flush)
            })
            .await?
    };
    // Skipped only when this request was gone: nobody reads this.
    let (decided, prepared) = decided.ok_or_else(ApiError::internal)?;
    if matches!(decided.outcome, Err(AccessError::WrongPassword)) {
        state.auth_limiter.penalize(ip, mono);
    }
    let grant = decided.outcome?;
    let prepared = prepared
        .ok_or_else(ApiError::internal)?
        .map_err(unservable)?;
    Ok((grant, prepared))
}

/// The answer to a granted link request whose file could not then be served. A file deleted
/// between the decision and its opening is gone ([`VaultError::NotFound`]): that is answered
/// as every other dead link is, and as a request after the delete is, so that a partner
/// cannot tell a deleted file from a wrong, expired or revoked link (nor when it was deleted).
fn unservable(e: VaultError) -> ApiError {
    match e {
        VaultError::NotFound(_) => ApiError::link_invalid(),
        other => other.into(),
    }
}

/// `POST /api/v1/links/{share}`: the details a partner sees before downloading.
pub(crate) async fn info(
    State(state): State<AppState>,
    Path(share): Path<String>,
    parts: Parts,
) -> Result<Response, ApiError> {
    let ip = client(parts.extensions.get::<ClientAddr>());
    let secret = secret_from(&parts.headers)?;
    let (grant, meta) = decide(
        &state,
        ip,
        &share,
        secret,
        None,
        AccessKind::View,
        |v, g| v.grant_meta(g),
    )
    .await?;
    Ok(Json(json!({
        // What the page shows is what the download will be saved as: no reordering.
        "name": stream::partner_name(&meta.name),
        "content_type": meta.content_type,
        "size": grant.size,
        "expires": grant.expires.0,
        "password_required": grant.password_required,
        "recipient_bound": grant.recipient_bound(),
        "downloads_left": grant.downloads_left,
    }))
    .into_response())
}

/// The kind of a download that starts here: one that names the keys it will be opened with
/// in `Kinko-Recipient` is refused, uncounted, by a share bound to none of them.
fn download_kind(h: &HeaderMap) -> Result<AccessKind, ApiError> {
    let Some(v) = h.get(RECIPIENT_HEADER) else {
        return Ok(AccessKind::Download);
    };
    let bad = || ApiError::invalid("Kinko-Recipient must be age1… public keys, comma-separated");
    let keys = v
        .to_str()
        .map_err(|_| bad())?
        .split(',')
        .map(|k| {
            k.trim()
                .parse::<Recipient>()
                .map(|r| *r.as_bytes())
                .map_err(|_| bad())
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(AccessKind::DownloadFor(keys))
}

/// `POST /api/v1/links/{share}/ticket`: checks the password and counts one download, once
/// the file is known to open.
pub(crate) async fn ticket(
    State(state): State<AppState>,
    Path(share): Path<String>,
    parts: Parts,
) -> Result<Response, ApiError> {
    let ip = client(parts.extensions.get::<ClientAddr>());
    let secret = secret_from(&parts.headers)?;
    let (grant, ()) = decide(
        &state,
        ip,
        &share,
        secret,
        password_from(&parts.headers)?,
        download_kind(&parts.headers)?,
        // Opened as the download will be, so that a file the server cannot serve (its blob
        // missing or unreadable) costs no download: `decide` gives the count back.
        |v, g| v.download(g).map(drop),
    )
    .await?;
    let t = grant.ticket.as_ref().ok_or_else(ApiError::internal)?;
    Ok(Json(json!({
        "ticket": t.encode(),
        "expires": t.expires.0,
        "downloads_left": grant.downloads_left,
    }))
    .into_response())
}

/// `GET /api/v1/links/{share}/content`: the bytes, with a ticket (not counted again) or as a
/// counted download of its own.
pub(crate) async fn content(
    State(state): State<AppState>,
    Path(share): Path<String>,
    parts: Parts,
) -> Result<Response, ApiError> {
    // The router answers HEAD with the GET handler; here that would count a download (link
    // checkers and download managers send HEAD first), so it is refused.
    if parts.method == axum::http::Method::HEAD {
        return Ok(ApiError::method_not_allowed(
            Some(HeaderValue::from_static("GET")),
            "a link's content takes GET only: a HEAD would count as a download",
        ));
    }
    let ip = client(parts.extensions.get::<ClientAddr>());
    let secret = secret_from(&parts.headers)?;
    // A ticket that cannot be read is a bad ticket, not none: without one, this request would
    // start (and count) a download of its own.
    let kind = match parts.headers.get(TICKET_HEADER) {
        Some(t) => AccessKind::Resume(
            t.to_str()
                .ok()
                .and_then(DownloadTicket::parse)
                .ok_or_else(ApiError::link_invalid)?,
        ),
        None => download_kind(&parts.headers)?,
    };
    let password = if kind.starts_download() {
        password_from(&parts.headers)?
    } else {
        None
    };
    let range = header_str(&parts.headers, header::RANGE.as_str()).map(str::to_owned);
    let (grant, served) = decide(&state, ip, &share, secret, password, kind, move |v, g| {
        prepare(v, g, range.as_deref())
    })
    .await?;
    Ok(respond(&state, &grant, served))
}

/// The browser's download form.
#[derive(Deserialize)]
pub(crate) struct DownloadForm {
    secret: String,
    ticket: String,
}

impl std::fmt::Debug for DownloadForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DownloadForm(..)")
    }
}

/// `POST /s/{share}/download`: the page's download, with the ticket it fetched first.
pub(crate) async fn form_download(
    State(state): State<AppState>,
    Path(share): Path<String>,
    addr: Option<axum::Extension<ClientAddr>>,
    form: Result<Form<DownloadForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, ApiError> {
    let ip = client(addr.as_ref().map(|a| &a.0));
    let Form(form) = form.map_err(|e| {
        let reason = "expected the download form".to_owned();
        ApiError::rejected_body(e.status(), reason, state.limits.max_json_bytes)
    })?;
    let ticket = DownloadTicket::parse(&form.ticket).ok_or_else(ApiError::link_invalid)?;
    let (grant, served) = decide(
        &state,
        ip,
        &share,
        Some(&form.secret),
        None,
        AccessKind::Resume(ticket),
        |v, g| prepare(v, g, None),
    )
    .await?;
    Ok(respond(&state, &grant, served))
}

/// What a granted download serves, prepared in the vault job that decided it.
enum Served {
    Plain(Positioned),
    Bound(BoundPart),
}

/// The requested range of a recipient-bound envelope (the bound header, then the payload):
/// the header's bytes in the range, then `len` bytes of the payload from where it is
/// positioned. Every request for the share gets the same header, so ranges of it fit together.
struct BoundPart {
    name: String,
    range: RangeReq,
    total: u64,
    prefix: Vec<u8>,
    payload: Box<dyn BlobRead>,
    len: u64,
}

/// Opens a granted download and positions it for the Range: in the plaintext, or (for a
/// bound share) in the envelope made of the re-wrapped header and the payload. Blocking.
fn prepare(v: &Vault, g: &Grant, range: Option<&str>) -> Result<Served, VaultError> {
    match v.download(g)? {
        Download::Plaintext(reader) => Ok(Served::Plain(position(reader, g.size, range)?)),
        Download::Bound {
            header,
            mut payload,
        } => {
            let name = v.grant_meta(g)?.name;
            let io = |e| VaultError::Sealing(SealingError::Open(OpenError::Io(e)));
            let head = header.len() as u64;
            let total = head + payload.seek(SeekFrom::End(0)).map_err(io)?;
            let range = stream::parse_range(range, total);
            // The range as [start, end) of the whole envelope.
            let (start, end) = match range {
                RangeReq::Full => (0, total),
                RangeReq::Part { start, end } => (start, end + 1),
                RangeReq::Unsatisfiable => (0, 0),
            };
            let in_header = |at: u64| usize::try_from(at.min(head)).expect("within the header");
            let prefix = header[in_header(start)..in_header(end)].to_vec();
            payload
                .seek(SeekFrom::Start(start.saturating_sub(head)))
                .map_err(io)?;
            Ok(Served::Bound(BoundPart {
                name,
                range,
                total,
                prefix,
                payload,
                len: end.saturating_sub(start.max(head)),
            }))
        }
    }
}

/// The response of a prepared download: plaintext, or the envelope bound to the share's
/// recipients, each whole or the requested range.
fn respond(state: &AppState, grant: &Grant, served: Served) -> Response {
    let mut extra = Vec::new();
    if let Some(t) = &grant.ticket {
        extra.push((TICKET_HEADER, t.encode()));
    }
    match served {
        Served::Plain(p) => plaintext_response(state, p, &extra),
        Served::Bound(b) => {
            extra.push((RECIPIENT_BOUND_HEADER, "1".to_owned()));
            let metrics = state.metrics.clone();
            ranged_response(
                b.range,
                b.total,
                HeaderValue::from_static("application/vnd.kinko.envelope"),
                &format!("{}.kinko", b.name),
                &extra,
                |_| stream::reader_body(b.prefix, b.payload, Some(b.len), metrics),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::StatusCode;
    use kinko_core::vault::ShareOptions;
    use tower::ServiceExt;

    use super::super::app::router;
    use super::super::app::tests::shared_file;
    use super::*;

    /// Status and body of an answer.
    async fn answer(resp: Response) -> (StatusCode, bytes::Bytes) {
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, body)
    }

    /// A file deleted after a partner's request was granted, before the file is opened, gets
    /// the answer a link to a file deleted before the request gets: `404 link_invalid`, the
    /// same bytes, not the owner's `not_found`. The delete is staged inside the decision's
    /// vault job, between the grant and the opening, for what each link route then does with
    /// the grant: the content and form downloads prepare the file, the ticket opens it, the
    /// details read its metadata. No timing involved.
    #[tokio::test]
    async fn a_file_deleted_after_the_grant_is_a_dead_link() {
        for route in ["content", "ticket", "info"] {
            let dir = tempfile::tempdir().unwrap();
            let opts = ShareOptions {
                expires_in: 3600,
                ..Default::default()
            };
            let (st, share, secret, ctx) = shared_file(dir.path(), b"deleted soon", opts);
            let kind = if route == "info" {
                AccessKind::View
            } else {
                AccessKind::Download
            };
            let raced = decide(
                &st,
                std::net::IpAddr::from([127, 0, 0, 1]),
                &share.to_string(),
                Some(&secret),
                None,
                kind,
                move |v, g| {
                    v.delete_file(&ctx, &g.file)?;
                    match route {
                        "content" => prepare(v, g, None).map(drop),
                        "ticket" => v.download(g).map(drop),
                        _ => v.grant_meta(g).map(drop),
                    }
                },
            )
            .await;
            let Err(raced) = raced else {
                panic!("{route}: a deleted file was served");
            };
            let raced = answer(raced.into_response()).await;

            let after = axum::http::Request::builder()
                .uri(format!("/api/v1/links/{share}/content"))
                .header(SECRET_HEADER, &secret)
                .body(Body::empty())
                .unwrap();
            let after = answer(router(st.clone()).oneshot(after).await.unwrap()).await;
            let code: serde_json::Value = serde_json::from_slice(&after.1).unwrap();
            assert_eq!(code["error"]["code"], "link_invalid");
            assert_eq!(raced, after, "{route}");
        }
    }
}
