//! The one error shape of the API: `{"error": {"code": "…", "message": "…"}}`.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;
use wakili_core::CoreError;
use wakili_db::DbError;

/// An API error: an HTTP status, a stable machine-readable code and a message for people.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code clients branch on.
    pub code: &'static str,
    /// What went wrong and, where possible, how to fix it.
    pub message: String,
    /// Machine-readable specifics (e.g. the missing chunks), merged into `error`.
    pub details: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The JSON body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// Code and message of an error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable code: `bad_request`, `invalid_body`, `unauthorized`, `forbidden`, `not_found`,
    /// `conflict`, `invalid_transition`, `validation_failed`, `payload_too_large`, …
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    /// Specifics some errors carry, e.g. `missing` chunk numbers.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Map<String, serde_json::Value>>,
}

impl ApiError {
    /// An error with any status and code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: None,
        }
    }

    /// The same error with specifics merged into its body (`details` must be a JSON object).
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        if let serde_json::Value::Object(map) = details {
            self.details = Some(map);
        }
        self
    }

    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 401: no valid credentials.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403: authenticated, not allowed.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404: nothing there (or nothing the caller may know of).
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 409: conflicts with the current state.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 500: our fault. The detail goes to the log, never to the client.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the request id in the x-request-id header helps the operators",
        )
    }

    /// 503: a dependency is down.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
                details: self.details,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        if e.is_unavailable() {
            tracing::error!(error = %e, "database unreachable");
            Self::unavailable("the database is unreachable; retry shortly")
        } else {
            Self::internal(e)
        }
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::Invalid { .. } => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                e.to_string(),
            ),
            CoreError::Transition { .. } => {
                Self::new(StatusCode::CONFLICT, "invalid_transition", e.to_string())
            }
        }
    }
}
