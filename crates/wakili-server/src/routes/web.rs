//! The reference web client: the call page at `/c/{consultationId}`, its files under `/web/`,
//! and, in development only, a login page and the endpoint it mints tokens with.
//!
//! The pages and scripts are built from the repository's `web/` folder (TypeScript on the SDK,
//! bundled by esbuild) by this crate's `build.rs` and compiled into the binary: running the server
//! needs no files beside it.

use std::time::Duration;

use axum::{
    Json as JsonResponse, Router,
    extract::{Path, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wakili_auth::{Minter, TokenRequest};
use wakili_core::{Role, UserId};

use crate::{ApiError, AppState, extract::Json};

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

/// Everything under `/web/`.
const ASSETS: &[Asset] = &[
    Asset {
        name: "call.js",
        content_type: "text/javascript; charset=utf-8",
        body: built!("call.js"),
    },
    Asset {
        name: "login.js",
        content_type: "text/javascript; charset=utf-8",
        body: built!("login.js"),
    },
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        body: built!("style.css"),
    },
];

const CALL_PAGE: &str = built!("call.html");
const LOGIN_PAGE: &str = built!("login.html");

/// Pages may load only their own scripts and styles, talk only to this server, and play local
/// and remote media.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
media-src 'self' blob: mediastream:; connect-src 'self' ws: wss:; base-uri 'none'; form-action 'self'; \
frame-ancestors 'none'";

/// The page routes (not part of the API, so not in OpenAPI).
pub fn pages(settings: &wakili_settings::WebSettings) -> Router<AppState> {
    if !settings.enabled {
        return Router::new();
    }
    let config = serde_json::json!({
        "qualityReportSeconds": settings.quality_report_seconds,
        "recordingChunkSeconds": settings.recording_chunk_seconds,
        // The call page renews expiring tokens from the development endpoint when it exists.
        "devLogin": settings.dev_login,
    })
    .to_string();
    // The configuration goes into an attribute: escape what could end it.
    let config = config.replace('&', "&amp;").replace('\'', "&#39;");
    let call_page = Bytes::from(CALL_PAGE.replace("{{CONFIG}}", &config));
    let mut router = Router::new()
        .route("/c/{id}", get(move |id| call(id, call_page.clone())))
        .route("/web/{file}", get(asset));
    if settings.dev_login {
        router = router.route(
            "/login",
            get(|| async { page(Bytes::from_static(LOGIN_PAGE.as_bytes())) }),
        );
    }
    router
}

async fn call(Path(id): Path<String>, body: Bytes) -> Response {
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return ApiError::not_found("no such consultation page").into_response();
    }
    page(body)
}

fn page(body: Bytes) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::HeaderName::from_static("permissions-policy"),
                HeaderValue::from_static(
                    "camera=(self), microphone=(self), display-capture=(self)",
                ),
            ),
        ],
        body,
    )
        .into_response()
}

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.name == file) {
        Some(asset) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(asset.content_type),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
                (
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ),
            ],
            asset.body,
        )
            .into_response(),
        None => ApiError::not_found("no such file").into_response(),
    }
}

/// Who the development login page signs in as.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DevTokenRequest {
    /// User id: 1–128 letters, digits, `-`, `_`, `.`, `@`, `:`, `|`.
    #[schema(pattern = "^[A-Za-z0-9._@:|-]{1,128}$")]
    pub user_id: String,
    /// `client`, `lawyer` or `admin`.
    #[schema(pattern = "^(client|lawyer|admin)$")]
    pub role: String,
    /// Display name, 1 to 100 characters (default: the user id).
    #[schema(min_length = 1, max_length = 100)]
    pub name: Option<String>,
}

/// A freshly minted token.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DevToken {
    /// The bearer token (HS256, valid for `ttlSeconds`).
    pub token: String,
    /// Its lifetime.
    pub ttl_seconds: u64,
}

/// Lifetime of development tokens.
const DEV_TOKEN_TTL: Duration = Duration::from_secs(8 * 3600);

/// Development only (`wakili serve --dev`): mints a token for any user and role. 404 otherwise.
#[utoipa::path(post, path = "/api/v1/dev/token", tag = "dev",
    request_body = DevTokenRequest,
    responses(
        (status = 200, description = "A token", body = DevToken),
        (status = 404, description = "Development login is off (the default)", body = crate::error::ErrorBody),
        (status = 422, description = "Bad user id, role or name", body = crate::error::ErrorBody),
    ))]
pub async fn dev_token(
    State(state): State<AppState>,
    Json(request): Json<DevTokenRequest>,
) -> Result<JsonResponse<DevToken>, ApiError> {
    let settings = &state.settings;
    if !settings.web.dev_login {
        return Err(ApiError::not_found(
            "development login is off (start the server with --dev)",
        ));
    }
    let user_id = UserId::parse(request.user_id).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            format!("userId: {e}"),
        )
    })?;
    let role: Role = request.role.parse().map_err(|_| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "role: one of client, lawyer, admin",
        )
    })?;
    let name = request.name.unwrap_or_else(|| user_id.to_string());
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "name: 1 to 100 characters",
        ));
    }
    let secret = settings
        .hs256_secret()
        .map_err(|e| ApiError::internal(format!("cannot read the HS256 secret: {e}")))?;
    let token = Minter::hs256(&secret)
        .map_err(|e| ApiError::internal(format!("cannot mint: {e}")))?
        .with_issuer_audience(settings.auth.issuer.clone(), settings.auth.audience.clone())
        .mint(
            &TokenRequest {
                user_id,
                role,
                name,
                ttl: DEV_TOKEN_TTL,
            },
            state.now(),
        )
        .map_err(|e| ApiError::internal(format!("cannot mint: {e}")))?;
    Ok(JsonResponse(DevToken {
        token,
        ttl_seconds: DEV_TOKEN_TTL.as_secs(),
    }))
}
