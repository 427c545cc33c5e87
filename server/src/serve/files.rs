//! Employee endpoints: upload, list, read and delete files; create, list and revoke shares.

use std::io::{Seek, SeekFrom};

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kinko_core::envelope::OpenError;
use kinko_core::keys::Recipient;
use kinko_core::vault::{
    FileId, FileInfo, Metadata, PlainRead, SealingError, ShareId, ShareOptions, ShareRecord,
    Timestamp, TokenId, VaultError,
};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

use super::app::{AppState, Caller};
use super::error::ApiError;
use super::stream::{self, RangeReq};

/// Parses a path id, or answers `400 invalid`.
pub(crate) fn parse_id<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, ApiError> {
    text.parse()
        .map_err(|_| ApiError::invalid(format!("malformed {what} id: expected 32 hex digits")))
}

pub(crate) fn file_json(f: &FileInfo) -> Value {
    json!({
        "id": f.id.to_string(),
        "name": f.meta.name,
        "content_type": f.meta.content_type,
        "size": f.size,
        "created": f.created.0,
        "retain_until": f.retain_until.0,
    })
}

/// The state of a share at `now`, as `kinko shares` shows it: `frozen` for a share that would
/// be active but for a freeze of the deployment.
fn share_state(s: &ShareRecord, now: Timestamp, frozen: bool) -> &'static str {
    if s.revoked.is_some() {
        "revoked"
    } else if now >= s.expires {
        "expired"
    } else if s.locked() {
        "locked"
    } else if s.max_downloads.is_some_and(|m| s.downloads >= m) {
        "exhausted"
    } else if frozen {
        "frozen"
    } else {
        "active"
    }
}

fn share_json(s: &ShareRecord, now: Timestamp, frozen: bool) -> Value {
    json!({
        "id": s.id.to_string(),
        "file": s.file.to_string(),
        "created": s.created.0,
        "expires": s.expires.0,
        "max_downloads": s.max_downloads,
        "downloads": s.downloads,
        "password": s.password.is_some(),
        "recipients": s.recipients.len(),
        "locked": s.locked(),
        "revoked": s.revoked.map(|t| t.0),
        "state": share_state(s, now, frozen),
    })
}

/// A share listing, and whether the deployment is frozen (every share refused meanwhile).
fn shares_json(shares: &[ShareRecord], now: Timestamp, frozen: bool) -> Json<Value> {
    Json(json!({
        "shares": shares.iter().map(|s| share_json(s, now, frozen)).collect::<Vec<_>>(),
        "frozen": frozen,
    }))
}

/// `GET /api/v1/me`
pub(crate) async fn me(
    State(state): State<AppState>,
    Caller(ctx): Caller,
) -> Result<Json<Value>, ApiError> {
    let user = ctx.principal.user;
    let rec = state
        .vault(move |v| v.meta().user(&user))
        .await?
        .map_err(|e| ApiError::from(kinko_core::vault::VaultError::from(e)))?
        .ok_or_else(ApiError::unauthenticated)?;
    Ok(Json(json!({
        "user": rec.id.to_string(),
        "name": rec.name,
        "role": rec.role.as_str(),
        "token": ctx.principal.token.map(|t| t.to_string()),
    })))
}

/// The upload's query parameters but `name`, which [`upload_name`] decodes.
#[derive(Debug, Deserialize)]
pub(crate) struct UploadQuery {
    retention: Option<u64>,
}

/// The upload's file name: the one `name` parameter of `query`, decoded as a form value (`+`
/// is a space, `%XX` a byte) into UTF-8, strictly. `Query` decodes lossily (invalid UTF-8
/// becomes U+FFFD), which would store `%FF%FEa.pdf` as `\u{FFFD}\u{FFFD}a.pdf`, a name nobody
/// chose, without a word.
fn upload_name(query: Option<&str>) -> Result<String, ApiError> {
    let decode = |text: &str| -> Vec<u8> {
        percent_encoding::percent_decode_str(&text.replace('+', " ")).collect()
    };
    let mut name = None;
    for pair in query.unwrap_or_default().split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if decode(key) != b"name" {
            continue;
        }
        if name.is_some() {
            return Err(ApiError::invalid(
                "the file name is given more than once: send one ?name=FILE_NAME",
            ));
        }
        name = Some(String::from_utf8(decode(value)).map_err(|_| {
            ApiError::invalid(
                "the file name is not valid UTF-8: percent-encode its UTF-8 bytes \
                 (%C3%A9 for é); nothing was stored",
            )
        })?);
    }
    let name = name
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::invalid("the file name is required: ?name=FILE_NAME"))?;
    if name.len() > kinko_core::envelope::MAX_METADATA_FIELD {
        return Err(ApiError::invalid("the file name is longer than 4096 bytes"));
    }
    Ok(name)
}

/// `POST /api/v1/files?name=…[&retention=…]` with the file as the streamed body.
pub(crate) async fn upload(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    Query(q): Query<UploadQuery>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    // Checked before a byte of the body is read: a refused upload stores nothing.
    let name = upload_name(query.as_deref())?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .chars()
        .take(256)
        .collect::<String>();
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > state.limits.max_upload_bytes
    {
        return Err(ApiError::too_large(state.limits.max_upload_bytes));
    }
    // Held until the upload is stored or refused. Taken before a byte of the body is read,
    // so a refused upload costs nothing but its answer.
    let _upload = state
        .uploads
        .try_acquire()
        .map_err(|_| ApiError::unavailable("too many uploads at once; retry shortly"))?;
    let meta = Metadata {
        name,
        content_type,
        ..Default::default()
    };
    let vault = state.vault.clone();
    let upload_ctx = ctx.clone();
    let id = stream::feed_upload(
        body,
        state.limits.max_upload_bytes,
        state.limits.idle_timeout,
        &state.metrics,
        move |reader| vault.upload(&upload_ctx, &meta, q.retention, reader),
    )
    .await??;
    let info = state.vault(move |v| v.file_info(&ctx, &id)).await??;
    Ok((StatusCode::CREATED, Json(file_json(&info))).into_response())
}

/// `GET /api/v1/files`
pub(crate) async fn list(
    State(state): State<AppState>,
    Caller(ctx): Caller,
) -> Result<Json<Value>, ApiError> {
    let files = state.vault(move |v| v.my_files(&ctx)).await??;
    Ok(Json(
        json!({"files": files.iter().map(file_json).collect::<Vec<_>>()}),
    ))
}

/// `GET /api/v1/files/{file}`
pub(crate) async fn info(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    Path(file): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id: FileId = parse_id(&file, "file")?;
    let info = state.vault(move |v| v.file_info(&ctx, &id)).await??;
    Ok(Json(file_json(&info)))
}

/// A plaintext positioned for one response: the file's name and type, and its bytes, already
/// read when the range is small.
#[derive(Debug)]
pub(crate) struct Positioned {
    name: String,
    content_type: String,
    size: u64,
    range: RangeReq,
    body: stream::Source,
}

/// Seeks `reader` to the start of the requested range and bounds it at the range's end, so no
/// chunk outside the range is read. A range of at most [`stream::INLINE_MAX`] bytes is read and
/// authenticated here, so its answer goes out whole. Blocking: call it in the vault task that
/// opened the reader.
pub(crate) fn position(
    mut reader: Box<dyn PlainRead>,
    size: u64,
    range_header: Option<&str>,
) -> Result<Positioned, VaultError> {
    let range = stream::parse_range(range_header, size);
    let io = |e| VaultError::Sealing(SealingError::Open(OpenError::Io(e)));
    let len = match range {
        RangeReq::Part { start, end } => {
            reader.seek(SeekFrom::Start(start)).map_err(io)?;
            reader.set_end(Some(end + 1));
            end - start + 1
        }
        RangeReq::Full => {
            reader.set_end(Some(size));
            size
        }
        RangeReq::Unsatisfiable => 0,
    };
    let meta = reader.metadata();
    let (name, content_type) = (meta.name.clone(), meta.content_type.clone());
    Ok(Positioned {
        name,
        content_type,
        size,
        range,
        body: stream::Source::read(reader, len).map_err(io)?,
    })
}

/// The response for a positioned plaintext: 200, 206 or 416, named after the file's metadata.
pub(crate) fn plaintext_response(
    state: &AppState,
    p: Positioned,
    extra: &[(&'static str, String)],
) -> Response {
    let content_type = HeaderValue::from_str(&p.content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let metrics = state.metrics.clone();
    let body = p.body;
    ranged_response(p.range, p.size, content_type, &p.name, extra, |len| {
        body.into_body(len, metrics)
    })
}

/// The response for `range` of a `size`-byte resource: 200, 206 (with `Content-Range`) or 416,
/// an attachment named `name`, with `body(len)` streaming the range's `len` bytes. `extra`
/// headers go on every answer, a 416 included: a counted download's ticket must reach the
/// client even when its first range missed.
pub(crate) fn ranged_response(
    range: RangeReq,
    size: u64,
    content_type: HeaderValue,
    name: &str,
    extra: &[(&'static str, String)],
    body: impl FnOnce(u64) -> Body,
) -> Response {
    let add_extra = |h: &mut HeaderMap| {
        for (k, v) in extra {
            if let Ok(v) = HeaderValue::from_str(v) {
                h.insert(*k, v);
            }
        }
    };
    let (status, start, len) = match range {
        RangeReq::Full => (StatusCode::OK, 0, size),
        RangeReq::Part { start, end } => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        RangeReq::Unsatisfiable => {
            let mut resp = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                format!("the range lies outside the file ({size} bytes)"),
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                resp.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            add_extra(resp.headers_mut());
            return resp;
        }
    };
    let disposition = HeaderValue::from_str(&stream::content_disposition(name)).ok();
    let mut resp = Response::new(body(len));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_TYPE, content_type);
    if let Some(v) = disposition {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{size}", start + len - 1))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    add_extra(h);
    resp
}

/// `GET /api/v1/files/{file}/content`: one vault task opens and positions the file.
///
/// `HEAD` answers a `GET`'s headers from the file's record without opening it, and records no
/// `file.read`: the audit log says who read a file's content, and a HEAD reads none. What it
/// tells (name, type, size) is what `GET /api/v1/files/{file}` tells, which is not audited
/// either. It ignores `Range`, as RFC 9110 (14.2) has it: range handling is defined for GET
/// only.
pub(crate) async fn content(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    Path(file): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id: FileId = parse_id(&file, "file")?;
    if method == Method::HEAD {
        let info = state.vault(move |v| v.file_info(&ctx, &id)).await??;
        let content_type = HeaderValue::from_str(&info.meta.content_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream"));
        return Ok(ranged_response(
            RangeReq::Full,
            info.size,
            content_type,
            &info.meta.name,
            &[],
            |_| Body::empty(),
        ));
    }
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let positioned = state
        .vault(move |v| -> Result<Positioned, VaultError> {
            let reader = v.open_file(&ctx, &id)?;
            let size = reader.plaintext_len().map_err(SealingError::from)?;
            position(reader, size, range.as_deref())
        })
        .await??;
    Ok(plaintext_response(&state, positioned, &[]))
}

/// `DELETE /api/v1/files/{file}`
pub(crate) async fn delete(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    Path(file): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id: FileId = parse_id(&file, "file")?;
    state.vault(move |v| v.delete_file(&ctx, &id)).await??;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewShareBody {
    expires_in: u64,
    max_downloads: Option<u32>,
    password: Option<SecretString>,
    #[serde(default)]
    recipients: Vec<String>,
}

impl std::fmt::Debug for NewShareBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewShareBody")
            .field("expires_in", &self.expires_in)
            .field("max_downloads", &self.max_downloads)
            .field("password", &self.password.as_ref().map(|_| ".."))
            .field("recipients", &self.recipients.len())
            .finish()
    }
}

/// `POST /api/v1/files/{file}/shares`
pub(crate) async fn create_share(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    Path(file): Path<String>,
    body: Result<Json<NewShareBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let id: FileId = parse_id(&file, "file")?;
    let body = super::admin::json_body(&state, body)?;
    if body.expires_in == 0 {
        return Err(ApiError::invalid("expires_in must be at least 1 second"));
    }
    if body.max_downloads == Some(0) {
        return Err(ApiError::invalid("max_downloads must be at least 1"));
    }
    if let Some(p) = &body.password {
        let n = p.expose_secret().len();
        if n == 0 || n > 1024 {
            return Err(ApiError::invalid("a share password is 1 to 1024 bytes"));
        }
    }
    let mut recipients = Vec::with_capacity(body.recipients.len());
    for (i, r) in body.recipients.iter().enumerate() {
        let r: Recipient = r.trim().parse().map_err(|_| {
            ApiError::invalid(format!(
                "recipient {} is not an age X25519 recipient (age1…)",
                i + 1
            ))
        })?;
        recipients.push(*r.as_bytes());
    }
    if recipients.len() > 64 {
        return Err(ApiError::invalid("at most 64 recipients"));
    }
    let opts = ShareOptions {
        expires_in: body.expires_in,
        max_downloads: body.max_downloads,
        password: body.password,
        recipients,
    };
    let (new, frozen) = state
        .vault(move |v| Ok::<_, VaultError>((v.create_share(&ctx, &id, opts)?, v.frozen()?)))
        .await??;
    let link = format!(
        "{}/s/{}#{}",
        state.public_url,
        new.id,
        new.secret.expose_secret().expose_secret()
    );
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": new.id.to_string(),
            "file": id.to_string(),
            "link": link,
            "expires": new.expires.0,
            "frozen": frozen,
        })),
    )
        .into_response())
}

/// `GET /api/v1/files/{file}/shares`
pub(crate) async fn file_shares(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    Path(file): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id: FileId = parse_id(&file, "file")?;
    let now = ctx.now;
    let (shares, frozen) = state
        .vault(move |v| Ok::<_, VaultError>((v.shares_of_file(&ctx, &id)?, v.frozen()?)))
        .await??;
    Ok(shares_json(&shares, now, frozen))
}

/// `POST /api/v1/files/{file}/revoke`
pub(crate) async fn revoke_file(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    Path(file): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id: FileId = parse_id(&file, "file")?;
    let n = state
        .vault(move |v| v.revoke_file_shares(&ctx, &id))
        .await??;
    Ok(Json(json!({"revoked": n})))
}

/// `GET /api/v1/shares`
pub(crate) async fn my_shares(
    State(state): State<AppState>,
    Caller(ctx): Caller,
) -> Result<Json<Value>, ApiError> {
    let now = ctx.now;
    let (mut shares, frozen) = state
        .vault(move |v| Ok::<_, VaultError>((v.my_shares(&ctx)?, v.frozen()?)))
        .await??;
    shares.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
    Ok(shares_json(&shares, now, frozen))
}

/// `DELETE /api/v1/shares/{share}`
pub(crate) async fn revoke_share(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    Path(share): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id: ShareId = parse_id(&share, "share")?;
    state.vault(move |v| v.revoke_share(&ctx, &id)).await??;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/v1/tokens/{token}`
pub(crate) async fn revoke_token(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    Path(token): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id: TokenId = parse_id(&token, "token")?;
    state.vault(move |v| v.revoke_token(&ctx, &id)).await??;
    Ok(StatusCode::NO_CONTENT)
}
