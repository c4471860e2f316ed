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
use wakili_storage::{LinkError, ProviderError, RequestError, StateError, StorageError};

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

/// The recording store's errors: the client's mistakes are 4xx with a message; our failures are
/// 503 (providers or database down, retry) or 500.
impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        let message = e.to_string();
        match e {
            StorageError::State(state) => match state {
                StateError::NotFound | StateError::Shredded => Self::not_found("no such recording"),
                StateError::NotAccepting(_) | StateError::NotReady(_) => {
                    Self::new(StatusCode::CONFLICT, "invalid_state", message)
                }
                StateError::ChunkConflict { .. } => {
                    Self::new(StatusCode::CONFLICT, "chunk_conflict", message)
                }
                StateError::LegalHold => Self::new(StatusCode::CONFLICT, "legal_hold", message),
                StateError::ServerRecording => {
                    Self::new(StatusCode::CONFLICT, "server_recording", message)
                }
                StateError::NoMedia => Self::new(StatusCode::CONFLICT, "download_tracks", message),
                StateError::WrongKind(_) | StateError::TrackPending(_) => {
                    Self::new(StatusCode::CONFLICT, "invalid_state", message)
                }
            },
            StorageError::Request(request) => match request {
                RequestError::HashMismatch { .. } => {
                    Self::new(StatusCode::BAD_REQUEST, "sha256_mismatch", message)
                }
                RequestError::BadHash => {
                    Self::new(StatusCode::BAD_REQUEST, "sha256_required", message)
                }
                RequestError::BodyTooLarge { .. } => {
                    Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
                }
                RequestError::Body(_) => Self::bad_request(message),
                RequestError::InvalidTrack(_) => Self::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "validation_failed",
                    message,
                ),
                RequestError::Missing {
                    missing,
                    unexpected,
                } => Self::new(StatusCode::BAD_REQUEST, "chunks_missing", message).with_details(
                    serde_json::json!({ "missing": missing, "unexpected": unexpected }),
                ),
                RequestError::RangeNotSatisfiable { .. } => Self::new(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "range_not_satisfiable",
                    message,
                ),
            },
            StorageError::Link(link) => match link {
                LinkError::UrlExpired => Self::new(StatusCode::FORBIDDEN, "url_expired", message),
                LinkError::UrlSignature | LinkError::UrlMalformed(_) => {
                    Self::new(StatusCode::FORBIDDEN, "url_invalid", message)
                }
            },
            // Only sealing an uploaded chunk meets these: what the client sent is unusable.
            StorageError::Crypto(wakili_storage::CryptoError::EmptyChunk) => {
                Self::bad_request("a chunk cannot be empty")
            }
            StorageError::Crypto(wakili_storage::CryptoError::ChunkOutOfRange(_)) => {
                Self::bad_request(message)
            }
            StorageError::Provider(
                ProviderError::NoProvider(_) | ProviderError::Provider { .. },
            ) => {
                tracing::error!(error = %message, "storage unavailable");
                Self::unavailable("no storage provider can take the data right now; retry shortly")
            }
            StorageError::Db(e) => e.into(),
            other => Self::internal(other),
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

/// Webhook administration: the admin's mistakes (a malformed URL, an address webhooks may not
/// go to, an unknown event, a bad secret) are 422; a missing endpoint or delivery is 404.
impl From<wakili_webhooks::WebhookError> for ApiError {
    fn from(e: wakili_webhooks::WebhookError) -> Self {
        use wakili_webhooks::WebhookError as W;
        match e {
            W::Invalid(m) | W::Unreachable(m) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", m)
            }
            W::Refused(m) => Self::new(StatusCode::UNPROCESSABLE_ENTITY, "address_refused", m),
            W::NotFound(what) => Self::not_found(format!("no such webhook {what}")),
            W::Db(e) => e.into(),
        }
    }
}
