//! `/api/v1/webrtc/config` and `/api/v1/mobile/config`: what clients need to set up media.

use std::collections::BTreeMap;

use axum::{
    Json as JsonResponse,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};
use wakili_core::webrtc::WebrtcConfig;

use crate::{
    ApiError, AppState,
    auth::{Admin, Auth},
    error::ErrorBody,
    extract::Query,
    routes::consultations::visible,
};

/// Query of `GET /webrtc/config`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ConfigQuery {
    /// The consultation about to be joined.
    pub consultation_id: String,
}

/// ICE servers with fresh TURN credentials, profiles, audio, simulcast, screen share and codecs for
/// one consultation (its participants and admins).
#[utoipa::path(get, path = "/api/v1/webrtc/config", tag = "webrtc", security(("bearer" = [])),
    params(ConfigQuery),
    responses(
        (status = 200, description = "Pass iceServers/iceTransportPolicy to RTCPeerConnection", body = WebrtcConfig),
        (status = 400, description = "Missing or unknown parameter", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 404, description = "No such consultation, or not the caller's", body = ErrorBody),
        (status = 409, description = "The consultation is over", body = ErrorBody),
    ))]
pub async fn config(
    State(state): State<AppState>,
    auth: Auth,
    Query(query): Query<ConfigQuery>,
) -> Result<Response, ApiError> {
    let (consultation, _) = visible(&state, &auth, &query.consultation_id).await?;
    if consultation.status.is_closed() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "consultation_closed",
            format!("the consultation is {}", consultation.status),
        ));
    }
    let (servers, expires_at) = state.ice.servers(&auth.caller.user_id, state.now())?;
    let config = state.settings.media.config(
        consultation.quality_profile.as_deref(),
        Some(consultation.media_mode),
        servers,
        state.settings.ice.transport_policy,
        expires_at,
    );
    // Credentials inside: never cached by intermediaries.
    Ok(([(header::CACHE_CONTROL, "no-store")], JsonResponse(config)).into_response())
}

/// Push notification settings for apps.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PushInfo {
    /// Whether the server sends push notifications.
    pub enabled: bool,
    /// `fcm`.
    pub provider: &'static str,
}

/// What a mobile app needs at start-up.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MobileConfig {
    /// Everything but the clock; its hash is the `ETag`.
    #[serde(flatten)]
    pub startup: MobileStartup,
    /// The server's clock, to correct the app's.
    pub server_time: DateTime<Utc>,
}

/// The cacheable part of [`MobileConfig`].
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MobileStartup {
    /// Changes whenever anything but `serverTime` and the credentials' window changes.
    pub version: String,
    /// Oldest supported app version per platform; older apps must ask the user to update.
    pub min_versions: BTreeMap<String, String>,
    /// Feature flags.
    pub features: BTreeMap<String, bool>,
    /// Push settings.
    pub push: PushInfo,
    /// WebRTC configuration with the server's default profile and this user's credentials.
    pub webrtc: WebrtcConfig,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether an `If-None-Match` header matches `etag` (weak comparison, RFC 9110 §13.1.2).
fn matches(headers: &HeaderMap, etag: &str) -> bool {
    let strip = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == "*" || strip(t) == strip(etag))
}

/// The app start-up configuration. Send the last `ETag` in `If-None-Match`: 304 when nothing
/// changed (the TURN credentials inside stay valid for at least half their TTL after a 200).
#[utoipa::path(get, path = "/api/v1/mobile/config", tag = "webrtc", security(("bearer" = [])),
    params(("if-none-match" = Option<String>, Header, description = "ETag of the cached copy")),
    responses(
        (status = 200, description = "The configuration", body = MobileConfig,
            headers(("etag" = String, description = "Version of this response"))),
        (status = 304, description = "The cached copy is current"),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
    ))]
pub async fn mobile(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let now = state.now();
    let settings = &state.settings;
    let (servers, expires_at) = state.ice.servers(&auth.caller.user_id, now)?;
    let webrtc = settings.media.config(
        None,
        None,
        servers,
        settings.ice.transport_policy,
        expires_at,
    );
    let shared = serde_json::json!({
        "minVersions": settings.mobile.min_versions,
        "features": settings.mobile.features,
        "media": settings.media,
        "transport": settings.ice.transport_policy,
    });
    let version = hex(&Sha256::digest(shared.to_string().as_bytes())[..8]);
    let startup = MobileStartup {
        version,
        min_versions: settings.mobile.min_versions.clone(),
        features: settings.mobile.features.clone(),
        push: PushInfo {
            enabled: state.push.enabled(),
            provider: "fcm",
        },
        webrtc,
    };
    // The ETag covers everything but the clock (the Date header carries that on a 304).
    let stable = serde_json::to_vec(&startup).map_err(ApiError::internal)?;
    let etag = format!("\"{}\"", hex(&Sha256::digest(&stable)[..16]));
    let etag_value = HeaderValue::from_str(&etag).map_err(ApiError::internal)?;
    let cache = (
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    if matches(&headers, &etag) {
        return Ok((
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag_value), cache],
        )
            .into_response());
    }
    let config = MobileConfig {
        startup,
        server_time: now,
    };
    Ok(([(header::ETAG, etag_value), cache], JsonResponse(config)).into_response())
}

/// The embedded relay's counters (admins).
#[utoipa::path(get, path = "/api/v1/turn/stats", tag = "webrtc", security(("bearer" = [])),
    responses(
        (status = 200, description = "Counters since start", body = wakili_turn::StatsSnapshot),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "The embedded relay is off", body = ErrorBody),
    ))]
pub async fn turn_stats(
    State(state): State<AppState>,
    _: Admin,
) -> Result<JsonResponse<wakili_turn::StatsSnapshot>, ApiError> {
    let turn = state.turn.lock().await;
    let running = turn
        .as_ref()
        .ok_or_else(|| ApiError::not_found("the embedded STUN/TURN server is off"))?;
    Ok(JsonResponse(running.stats()))
}
