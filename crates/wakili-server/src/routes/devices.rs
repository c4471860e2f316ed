//! `/api/v1/devices`: the caller's phones and browsers that receive push notifications.

use axum::{Json as JsonResponse, extract::State, http::StatusCode, response::IntoResponse};
use serde::Deserialize;
use utoipa::ToSchema;
use wakili_core::model::push::{Platform, check_token};
use wakili_db::{DeviceRegistration, NewDevice};

use crate::{
    ApiError, AppState,
    auth::Auth,
    error::ErrorBody,
    extract::{Json, Path},
};

/// Body of `POST /api/v1/devices`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RegisterDevice {
    /// The FCM registration token: 1–4096 visible ASCII characters, without `/`, `?` or `#`.
    #[schema(pattern = "^[!\"$-.0->@-~]{1,4096}$")]
    pub token: String,
    /// `ios`, `android` or `web`.
    #[schema(value_type = String, pattern = "^(ios|android|web)$", example = "android")]
    pub platform: Platform,
    /// The app's version: 1–64 printable ASCII characters, not starting with a space.
    #[schema(pattern = "^[!-~][ -~]{0,63}$", example = "2.4.1")]
    pub app_version: String,
    /// Preferred locale, BCP 47 (`sw-KE`), up to 35 letters, digits, `-` and `_`; empty or
    /// `null` for none.
    #[schema(pattern = "^[A-Za-z0-9_-]{0,35}$", example = "sw-KE")]
    pub locale: Option<String>,
}

impl RegisterDevice {
    fn validate(self, user_id: &str, id: String) -> Result<NewDevice, ApiError> {
        // Exactly the rules the OpenAPI schema states.
        Ok(NewDevice::new(
            id,
            user_id,
            self.token,
            self.platform,
            &self.app_version,
            self.locale.as_deref(),
        )?)
    }
}

/// Register this device for push notifications, or refresh its registration (by token; a token
/// registered by another user moves to the caller).
#[utoipa::path(post, path = "/api/v1/devices", tag = "devices", security(("bearer" = [])),
    request_body = RegisterDevice,
    responses(
        (status = 201, description = "Registered", body = DeviceRegistration),
        (status = 200, description = "Registration refreshed", body = DeviceRegistration),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 422, description = "A field breaks a rule", body = ErrorBody),
    ))]
pub async fn register(
    State(state): State<AppState>,
    auth: Auth,
    Json(body): Json<RegisterDevice>,
) -> Result<impl IntoResponse, ApiError> {
    let id = wakili_core::new_id();
    let new = body.validate(auth.caller.user_id.as_str(), id.clone())?;
    let device = state.db.upsert_device(&new, state.now()).await?;
    let status = if device.id == id {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    tracing::info!(device_id = %device.id, platform = %device.platform, "device registered");
    Ok((status, JsonResponse(device)))
}

/// The caller's devices, oldest first.
#[utoipa::path(get, path = "/api/v1/devices", operation_id = "listDevices", tag = "devices", security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's devices", body = Vec<DeviceRegistration>),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<JsonResponse<Vec<DeviceRegistration>>, ApiError> {
    Ok(JsonResponse(
        state.db.devices_of(auth.caller.user_id.as_str()).await?,
    ))
}

/// Unregister one of the caller's devices (sign-out).
#[utoipa::path(delete, path = "/api/v1/devices/{token}", operation_id = "deleteDevice", tag = "devices", security(("bearer" = [])),
    params(("token" = String, Path, description = "The device's FCM token", pattern = "^[!\"$-.0->@-~]{1,4096}$")),
    responses(
        (status = 204, description = "Unregistered"),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 404, description = "The caller has no such device", body = ErrorBody),
        (status = 422, description = "Not a token", body = ErrorBody),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    auth: Auth,
    Path(token): Path<String>,
) -> Result<StatusCode, ApiError> {
    check_token(&token)?;
    if state
        .db
        .delete_device(auth.caller.user_id.as_str(), &token)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("you have no device with this token"))
    }
}

/// The app is alive on this device: updates `lastSeenAt` (a device silent for
/// `push.deactivate_after` stops receiving notifications until it is seen again).
#[utoipa::path(post, path = "/api/v1/devices/{token}/heartbeat", tag = "devices", security(("bearer" = [])),
    params(("token" = String, Path, description = "The device's FCM token", pattern = "^[!\"$-.0->@-~]{1,4096}$")),
    responses(
        (status = 200, description = "Seen", body = DeviceRegistration),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 404, description = "The caller has no such device", body = ErrorBody),
        (status = 422, description = "Not a token", body = ErrorBody),
    ))]
pub async fn heartbeat(
    State(state): State<AppState>,
    auth: Auth,
    Path(token): Path<String>,
) -> Result<JsonResponse<DeviceRegistration>, ApiError> {
    check_token(&token)?;
    state
        .db
        .touch_device(auth.caller.user_id.as_str(), &token, state.now())
        .await?
        .map(JsonResponse)
        .ok_or_else(|| ApiError::not_found("you have no device with this token"))
}
