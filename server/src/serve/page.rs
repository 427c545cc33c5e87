//! The partner page and the small public endpoints (`/healthz`, `/metrics`, `/openapi.json`).
//!
//! The page is the same static document for every share: it holds nothing about the share.
//! Its first-party script reads the secret from the URL fragment (which browsers never send),
//! asks the API for the details, and downloads through a form POST so the browser streams the
//! file to disk. The Content-Security-Policy allows nothing but this origin's script and style.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};

use super::app::{AppState, client_ip};
use super::error::ApiError;

/// The partner page's Content-Security-Policy.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; form-action 'self'; img-src 'self'; base-uri 'none'; \
    frame-ancestors 'none'";

const PAGE: &str = include_str!("../../assets/partner.html");
const SCRIPT: &str = include_str!("../../assets/partner.js");
const STYLE: &str = include_str!("../../assets/partner.css");
const OPENAPI: &str = include_str!("../../../docs/openapi.json");

fn with_type(body: &'static str, content_type: &'static str) -> Response {
    let mut r = body.into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// `GET /s/{share}`
pub(crate) async fn partner_page() -> Response {
    let mut r = with_type(PAGE, "text/html; charset=utf-8");
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    r
}

/// `GET /assets/partner.js`
pub(crate) async fn partner_js() -> Response {
    with_type(SCRIPT, "text/javascript; charset=utf-8")
}

/// `GET /assets/partner.css`
pub(crate) async fn partner_css() -> Response {
    with_type(STYLE, "text/css; charset=utf-8")
}

/// `GET /openapi.json`
pub(crate) async fn openapi() -> Response {
    with_type(OPENAPI, "application/json")
}

/// `GET /healthz`: `ok` while the vault answers.
pub(crate) async fn healthz(State(state): State<AppState>) -> Result<Response, ApiError> {
    state.vault(|v| v.frozen()).await??;
    Ok((StatusCode::OK, "ok\n").into_response())
}

/// `GET /metrics`, for the networks in `metrics_from` only: the counters tell how much is
/// shared, with whom and how often refused, which is nobody else's business.
pub(crate) async fn metrics(State(state): State<AppState>, parts: Parts) -> Response {
    if !state.metrics_from.contains(client_ip(&parts)) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "metrics are served only to the networks in metrics_from",
        )
        .into_response();
    }
    let mut r = state.metrics.render().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}
