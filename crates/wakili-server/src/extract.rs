//! Extractors whose rejections are [`ApiError`]s, so malformed input always gets the JSON error
//! shape with a useful message and never a 500.

use axum::{
    extract::{
        FromRequest, FromRequestParts, Request,
        rejection::{JsonRejection, PathRejection, QueryRejection},
    },
    http::{StatusCode, request::Parts},
};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::ApiError;

/// A JSON body: a JSON object. Malformed JSON, not an object, wrong types, unknown fields → 400;
/// too large → 413; not JSON → 415.
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<Value>::from_request(req, state).await {
            Ok(axum::Json(value)) => from_object(value).map(Self),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

/// Reads a body that must be a JSON object. serde would also read a struct from an array of its
/// fields in order (`["c1", …]`), which no client means and the OpenAPI document does not allow.
pub fn from_object<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    let invalid = |message: String| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!("request body does not match the schema: {message}"),
        )
    };
    if !value.is_object() {
        return Err(invalid("expected a JSON object".into()));
    }
    // The path names the field at fault (`mediaMode: unknown variant …`), as axum's reader does.
    serde_path_to_error::deserialize(value).map_err(|e| match e.path().to_string().as_str() {
        "." => invalid(e.inner().to_string()),
        path => invalid(format!("{path}: {}", e.inner())),
    })
}

/// A JSON body that is read with the request but judged later: the handler first checks who the
/// caller is and what they may do, then calls [`DeferredJson::parse`]. So a caller without the right
/// gets 403 whatever they sent, and only an entitled caller learns what was wrong with the body
/// (400, 413, 415).
pub struct DeferredJson<T>(Result<T, ApiError>);

impl<T> DeferredJson<T> {
    /// The parsed body, or the error its rejection maps to.
    pub fn parse(self) -> Result<T, ApiError> {
        self.0
    }
}

impl<S, T> FromRequest<S> for DeferredJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = std::convert::Infallible;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            Json::<T>::from_request(req, state)
                .await
                .map(|Json(value)| value),
        ))
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::JsonDataError(e) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!(
                "request body does not match the schema: {}",
                source_text(&e)
            ),
        ),
        JsonRejection::JsonSyntaxError(e) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("request body is not valid JSON: {}", source_text(&e)),
        ),
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with Content-Type: application/json",
        ),
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "request body is larger than this server accepts (max_body_bytes)",
            )
        }
        other => ApiError::new(other.status(), "bad_request", other.body_text()),
    }
}

/// serde's message (with line and column) without axum's prefix.
fn source_text(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        text = inner.to_string();
        source = inner.source();
    }
    text
}

/// Path parameters; a rejection is 400 with the reason.
pub struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Self(value))
            .map_err(|e: PathRejection| ApiError::bad_request(e.body_text()))
    }
}

/// Query parameters; unknown or mistyped parameters are 400 with the reason.
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Self(value))
            .map_err(|e: QueryRejection| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_query",
                    format!("invalid query string: {}", source_text(&e)),
                )
            })
    }
}
