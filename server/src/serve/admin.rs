//! Admin (and auditor) endpoints: users, tokens, freeze, sweep, KEK rotation, retention and
//! the audit log. Every permission check is the vault's.

use std::io::Write;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use kinko_core::vault::{Retention, Role, UserId, UserRecord, VaultError};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::app::{AppState, Caller};
use super::error::ApiError;
use super::files::parse_id;
use super::stream::PIPE_DEPTH;

const DAY: u64 = 86_400;

/// The body, or the answer for one axum refused (too large for `state`'s limit, malformed).
pub(crate) fn json_body<T>(
    state: &AppState,
    b: Result<Json<T>, JsonRejection>,
) -> Result<T, ApiError> {
    b.map(|Json(t)| t).map_err(|e| {
        ApiError::rejected_body(e.status(), e.body_text(), state.limits.max_json_bytes)
    })
}

fn user_json(u: &UserRecord) -> Value {
    json!({
        "id": u.id.to_string(),
        "name": u.name,
        "role": u.role.as_str(),
        "disabled": u.disabled,
        "created": u.created.0,
    })
}

/// `GET /api/v1/admin/users`
pub(crate) async fn users(
    State(state): State<AppState>,
    Caller(ctx): Caller,
) -> Result<Json<Value>, ApiError> {
    let users = state.vault(move |v| v.users(&ctx)).await??;
    Ok(Json(
        json!({"users": users.iter().map(user_json).collect::<Vec<_>>()}),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewUser {
    name: String,
    role: String,
}

/// `POST /api/v1/admin/users`
pub(crate) async fn create_user(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    body: Result<Json<NewUser>, JsonRejection>,
) -> Result<Response, ApiError> {
    let body = json_body(&state, body)?;
    let role: Role = body
        .role
        .parse()
        .map_err(|_| ApiError::invalid("role must be admin, member or auditor"))?;
    let rec = state
        .vault(move |v| -> Result<Option<UserRecord>, VaultError> {
            let id = v.create_user(&ctx, &body.name, role)?;
            Ok(v.meta().user(&id)?)
        })
        .await??
        .ok_or_else(ApiError::internal)?;
    Ok((StatusCode::CREATED, Json(user_json(&rec))).into_response())
}

/// The longest an API token may work: a token opens the account from anywhere, so one that
/// outlives its purpose (a machine gone, a script retired) must end on its own.
const MAX_TOKEN_TTL: u64 = 366 * DAY;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewToken {
    #[serde(default)]
    label: String,
    ttl: Option<u64>,
}

/// `POST /api/v1/admin/users/{user}/tokens`
pub(crate) async fn issue_token(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    Path(user): Path<String>,
    body: Result<Json<NewToken>, JsonRejection>,
) -> Result<Response, ApiError> {
    let user: UserId = parse_id(&user, "user")?;
    let body = json_body(&state, body)?;
    if body.label.len() > 256 {
        return Err(ApiError::invalid("a token label is at most 256 bytes"));
    }
    let ttl = body.ttl.unwrap_or(90 * DAY);
    if ttl == 0 || ttl > MAX_TOKEN_TTL {
        return Err(ApiError::invalid(
            "ttl must be 1 second to 366 days; issue a new token before the old one ends",
        ));
    }
    let now = ctx.now;
    let token = state
        .vault(move |v| v.issue_token(&ctx, &user, &body.label, ttl))
        .await??;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "token": token.expose_secret().expose_secret(),
            "id": token.id().to_string(),
            "expires": now.plus(ttl).0,
        })),
    )
        .into_response())
}

/// `GET /api/v1/admin/users/{user}/tokens`: ids, labels and times, never a token.
pub(crate) async fn tokens(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    Path(user): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let user: UserId = parse_id(&user, "user")?;
    let now = ctx.now;
    let tokens = state.vault(move |v| v.tokens(&ctx, &user)).await??;
    Ok(Json(json!({
        "tokens": tokens
            .iter()
            .map(|t| json!({
                "id": t.id.to_string(),
                "label": t.label,
                "created": t.created.0,
                "expires": t.expires.0,
                "expired": t.expires <= now,
            }))
            .collect::<Vec<_>>(),
    })))
}

/// `POST /api/v1/admin/users/{user}/disable`
pub(crate) async fn disable(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    Path(user): Path<String>,
) -> Result<StatusCode, ApiError> {
    let user: UserId = parse_id(&user, "user")?;
    state.vault(move |v| v.disable_user(&ctx, &user)).await??;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/admin/users/{user}/enable`
pub(crate) async fn enable(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    Path(user): Path<String>,
) -> Result<StatusCode, ApiError> {
    let user: UserId = parse_id(&user, "user")?;
    state.vault(move |v| v.enable_user(&ctx, &user)).await??;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/admin/freeze`
pub(crate) async fn frozen(
    State(state): State<AppState>,
    Caller(ctx): Caller,
) -> Result<Json<Value>, ApiError> {
    if ctx.principal.role != Role::Admin && ctx.principal.role != Role::Auditor {
        return Err(VaultError::Forbidden.into());
    }
    let frozen = state.vault(|v| v.frozen()).await??;
    Ok(Json(json!({"frozen": frozen})))
}

/// `POST /api/v1/admin/freeze`
pub(crate) async fn freeze(
    State(state): State<AppState>,
    Caller(ctx): Caller,
) -> Result<StatusCode, ApiError> {
    state.vault(move |v| v.freeze(&ctx)).await??;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/v1/admin/freeze`
pub(crate) async fn unfreeze(
    State(state): State<AppState>,
    Caller(ctx): Caller,
) -> Result<StatusCode, ApiError> {
    state.vault(move |v| v.unfreeze(&ctx)).await??;
    Ok(StatusCode::NO_CONTENT)
}

/// Runs one sweep and records it in the metrics (used by the endpoint and the timer).
pub(crate) async fn run_sweep(
    state: &AppState,
) -> Result<kinko_core::vault::SweepReport, ApiError> {
    let now = state.clock.now();
    let r = state.vault(move |v| v.sweep(now)).await?;
    match r {
        Ok(r) => {
            let m = &state.metrics;
            m.sweeper_runs.fetch_add(1, Ordering::Relaxed);
            m.sweeper_shares
                .fetch_add(r.shares_removed, Ordering::Relaxed);
            m.sweeper_files
                .fetch_add(r.files_removed, Ordering::Relaxed);
            Ok(r)
        }
        Err(e) => {
            state
                .metrics
                .sweeper_failures
                .fetch_add(1, Ordering::Relaxed);
            Err(e.into())
        }
    }
}

/// `POST /api/v1/admin/sweep`
pub(crate) async fn sweep(
    State(state): State<AppState>,
    Caller(ctx): Caller,
) -> Result<Json<Value>, ApiError> {
    if ctx.principal.role != Role::Admin {
        return Err(VaultError::Forbidden.into());
    }
    let r = run_sweep(&state).await?;
    Ok(Json(json!({
        "visited": r.visited,
        "shares_removed": r.shares_removed,
        "files_removed": r.files_removed,
    })))
}

/// `POST /api/v1/admin/kek/rotate`
pub(crate) async fn rotate_kek(
    State(state): State<AppState>,
    Caller(ctx): Caller,
) -> Result<Json<Value>, ApiError> {
    let r = state.vault(move |v| v.rotate_kek(&ctx)).await??;
    Ok(Json(json!({
        "rewrapped": r.rewrapped,
        "already_current": r.already_current,
        "seed_rewrapped": r.seed_rewrapped,
    })))
}

/// `GET /api/v1/admin/retention`
pub(crate) async fn retention(
    State(state): State<AppState>,
    Caller(ctx): Caller,
) -> Result<Json<Value>, ApiError> {
    if ctx.principal.role != Role::Admin {
        return Err(VaultError::Forbidden.into());
    }
    let r = state.vault(|v| v.retention()).await??;
    Ok(Json(json!({"default": r.default, "max": r.max})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RetentionBody {
    default: u64,
    max: u64,
}

/// `PUT /api/v1/admin/retention`
pub(crate) async fn set_retention(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    body: Result<Json<RetentionBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let b = json_body(&state, body)?;
    let r = Retention {
        default: b.default,
        max: b.max,
    };
    state.vault(move |v| v.set_retention(&ctx, r)).await??;
    Ok(Json(json!({"default": r.default, "max": r.max})))
}

/// `GET /api/v1/admin/audit/verify`
pub(crate) async fn audit_verify(
    State(state): State<AppState>,
    Caller(ctx): Caller,
) -> Result<Json<Value>, ApiError> {
    match state.vault(move |v| v.verify_audit(&ctx)).await? {
        Ok(r) => Ok(Json(json!({
            "records": r.records,
            "checkpoints": r.checkpoints,
            "signed_through": r.signed_through,
            "head": hex::encode(r.head),
        }))),
        Err(VaultError::Invalid(m)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "audit_broken",
            format!("audit verification failed: {m}"),
        )),
        Err(e) => Err(e.into()),
    }
}

/// A `Write` that forwards into a response body channel.
struct ChannelWriter {
    tx: mpsc::Sender<std::io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl Write for ChannelWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= 64 * 1024 {
            self.flush()?;
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            let chunk = Bytes::from(std::mem::take(&mut self.buf));
            self.tx
                .blocking_send(Ok(chunk))
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        }
        Ok(())
    }
}

/// `GET /api/v1/admin/audit/export`: JSON Lines, streamed. `HEAD` answers the headers only,
/// without exporting (an export ends at a checkpoint, which it may sign and store).
pub(crate) async fn audit_export(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    method: Method,
) -> Result<Response, ApiError> {
    // Check the permission before the status line goes out.
    if !kinko_core::vault::users::authorize(
        &ctx.principal,
        kinko_core::vault::Permission::ReadAudit,
    ) {
        return Err(VaultError::Forbidden.into());
    }
    let ndjson = |mut resp: Response| {
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-ndjson"),
        );
        resp
    };
    if method == Method::HEAD {
        return Ok(ndjson(Response::new(Body::empty())));
    }
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(PIPE_DEPTH);
    let vault = state.vault.clone();
    tokio::task::spawn_blocking(move || {
        let mut w = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::new(),
        };
        let r = vault.export_audit(&ctx, &mut w).map_err(|e| e.to_string());
        match r.and_then(|_| w.flush().map_err(|e| e.to_string())) {
            Ok(()) => {}
            // The client went away (`curl … | head`): nothing failed here.
            Err(_) if tx.is_closed() => {
                tracing::info!("audit export stopped: the client closed the connection");
            }
            Err(e) => {
                tracing::error!(error = %e, "audit export failed");
                let _ = tx.blocking_send(Err(std::io::Error::other("audit export failed")));
            }
        }
    });
    Ok(ndjson(Response::new(super::stream::channel_body(rx, None))))
}

/// `GET /api/v1/admin/audit/key`
pub(crate) async fn audit_key(
    State(state): State<AppState>,
    Caller(ctx): Caller,
) -> Result<Json<Value>, ApiError> {
    if !kinko_core::vault::users::authorize(
        &ctx.principal,
        kinko_core::vault::Permission::ReadAudit,
    ) {
        return Err(VaultError::Forbidden.into());
    }
    Ok(Json(
        json!({"public_key": hex::encode(state.vault.audit_public_key().as_bytes())}),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClockBody {
    advance: u64,
}

/// `POST /api/v1/admin/clock` (only on `--test-clock` servers).
pub(crate) async fn clock(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    body: Result<Json<ClockBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    if !state.clock.adjustable() {
        return Err(ApiError::not_found("route"));
    }
    if ctx.principal.role != Role::Admin {
        return Err(VaultError::Forbidden.into());
    }
    let b = json_body(&state, body)?;
    state.clock.advance(b.advance);
    Ok(Json(json!({"now": state.clock.now().0})))
}
