//! The API's error answer: a status, a stable machine code and a sentence (docs/API.md).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kinko_core::vault::{AccessError, StoreError, VaultError};

/// An error answer.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
    pub(crate) retry_after: Option<u64>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid", message)
    }
    pub(crate) fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "authentication failed: send a valid API token as `Authorization: Bearer kinko_…`",
        )
    }
    pub(crate) fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }
    pub(crate) fn link_invalid() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "link_invalid",
            "this link is not valid: it may be wrong, expired, revoked or used up",
        )
    }
    pub(crate) fn rate_limited(retry_after: u64) -> Self {
        ApiError {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many attempts from this address; retry in {retry_after} s"),
            )
        }
    }
    pub(crate) fn too_large(limit: u64) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the body exceeds this server's limit of {limit} bytes"),
        )
    }
    /// A JSON or form body that axum could not take: `413 too_large` past `limit` bytes (the
    /// router's `DefaultBodyLimit`, from `max_json_bytes`), else `400 invalid` with its reason.
    pub(crate) fn rejected_body(status: StatusCode, reason: String, limit: usize) -> Self {
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            Self::too_large(limit as u64)
        } else {
            Self::invalid(reason)
        }
    }
    pub(crate) fn timeout() -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            "the client stopped sending the body",
        )
    }
    pub(crate) fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server failed; nothing was changed",
        )
    }
    pub(crate) fn unavailable(message: &str) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
    /// `405 method_not_allowed`, with the `Allow` header listing the methods the path takes.
    pub(crate) fn method_not_allowed(allow: Option<HeaderValue>, message: &str) -> Response {
        let mut resp = Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            message,
        )
        .into_response();
        if let Some(allow) = allow {
            resp.headers_mut().insert(header::ALLOW, allow);
        }
        resp
    }
}

impl From<VaultError> for ApiError {
    fn from(e: VaultError) -> Self {
        match e {
            VaultError::Unauthenticated => ApiError::unauthenticated(),
            VaultError::Forbidden => ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this needs another role, or it is someone else's",
            ),
            VaultError::NotFound(what) => ApiError::not_found(what),
            VaultError::Invalid(m) => ApiError::invalid(m),
            VaultError::Exists(what) => ApiError::new(
                StatusCode::CONFLICT,
                "exists",
                format!("{what} already exists"),
            ),
            VaultError::Store(StoreError::Conflict) => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                "a concurrent change to the same record came first; nothing was changed, retry",
            ),
            other if other.was_applied() => {
                // Done, but its flush failed: "nothing was changed" would be false, and a
                // blind retry would do it twice.
                tracing::error!(error = %other, "vault change applied but not flushed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the server failed to make the change durable: it was made, but may be \
                     lost if the server crashes; check its state before retrying",
                )
            }
            other => {
                // Store, key and sealing failures: the operator needs the cause (which holds
                // no secret: backend messages and error kinds only); the client does not.
                tracing::error!(error = %other, "vault operation failed");
                ApiError::internal()
            }
        }
    }
}

impl From<AccessError> for ApiError {
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::Denied => ApiError::link_invalid(),
            AccessError::PasswordRequired => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "password_required",
                "this share needs its password",
            ),
            AccessError::WrongPassword => ApiError::new(
                StatusCode::FORBIDDEN,
                "wrong_password",
                "wrong password (the share locks after too many)",
            ),
            AccessError::NotRecipient => ApiError::new(
                StatusCode::FORBIDDEN,
                "not_recipient",
                "this share is bound to other keys than those in Kinko-Recipient; \
                 no download was counted",
            ),
            AccessError::Internal(v) => ApiError::from(v),
            _ => ApiError::internal(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        // The logging middleware counts refusals by code.
        resp.extensions_mut().insert(ErrorCode(self.code));
        resp
    }
}

/// The error code of a response, for metrics.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ErrorCode(pub(crate) &'static str);
