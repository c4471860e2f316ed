//! `/api/v1/webhooks`: the platform's webhook endpoints and the delivery log (admins only).

use axum::{Json as JsonResponse, extract::State, http::StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use wakili_core::model::webhook::{
    WebhookDelivery, WebhookDeliveryFilter, WebhookDeliveryStatus, WebhookEndpoint,
};
use wakili_webhooks::{EndpointChange, EndpointRequest};

use crate::{
    ApiError, AppState,
    auth::Admin,
    error::ErrorBody,
    extract::{Json, Path, Query},
};

/// Body of `POST /api/v1/webhooks/endpoints`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NewEndpointBody {
    /// Where events are POSTed (`https://…`). Hosts resolving to loopback, private or
    /// special-purpose addresses are refused unless the settings open them.
    #[schema(pattern = "^https?://[^\\s]{1,2040}$")]
    pub url: String,
    /// Event names (`recording.ready`), groups (`recording.*`) or `*`; absent or empty: all.
    #[serde(default)]
    #[schema(max_items = 64)]
    pub events: Vec<String>,
    /// What it is for.
    #[serde(default)]
    #[schema(max_length = 500, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")]
    pub description: String,
    /// The signing secret: `whsec_` and the base64 of 24 to 64 random bytes
    /// (`echo whsec_$(openssl rand -base64 32)`). Kept by the server, never shown again.
    #[schema(pattern = "^whsec_[A-Za-z0-9+/]{32,88}={0,2}$")]
    pub secret: String,
}

/// Body of `PATCH /api/v1/webhooks/endpoints/{id}`; absent fields stay.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EndpointPatchBody {
    /// New URL (checked like a new endpoint's).
    #[schema(pattern = "^https?://[^\\s]{1,2040}$")]
    pub url: Option<String>,
    /// New events.
    #[schema(max_items = 64)]
    pub events: Option<Vec<String>>,
    /// New description.
    #[schema(max_length = 500, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")]
    pub description: Option<String>,
    /// `true` enables it (its failure count starts again at 0), `false` disables it.
    pub enabled: Option<bool>,
    /// Why it is disabled (with `enabled: false`).
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    pub reason: Option<String>,
}

/// Body of `POST /api/v1/webhooks/endpoints/{id}/rotate-secret`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RotateBody {
    /// The new secret (`whsec_…`). The old one keeps signing beside it for
    /// `webhooks.rotation_overlap` (24 h by default), so receivers can switch in their time.
    #[schema(pattern = "^whsec_[A-Za-z0-9+/]{32,88}={0,2}$")]
    pub secret: String,
}

/// The endpoints.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointList {
    /// Oldest first.
    pub items: Vec<WebhookEndpoint>,
}

/// Filters of the webhook delivery log.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct WebhookDeliveryQuery {
    /// Only to this endpoint.
    #[param(min_length = 1, max_length = 128)]
    pub endpoint_id: Option<String>,
    /// Only this status (`pending`, `delivered`, `failed`, `expired`).
    #[param(value_type = Option<String>, pattern = "^(pending|delivered|failed|expired)$")]
    pub status: Option<WebhookDeliveryStatus>,
    /// Only about this consultation.
    #[param(min_length = 1, max_length = 128)]
    pub consultation_id: Option<String>,
    /// `nextCursor` of the previous page.
    #[param(min_length = 1, max_length = 256)]
    pub cursor: Option<String>,
    /// Page size, 1–500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

/// One page of the webhook delivery log, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookDeliveryPage {
    /// The deliveries.
    pub items: Vec<WebhookDelivery>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

fn invalid(message: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
        message,
    )
}

/// A query parameter or reason of 1 to `max` characters (`printable`: no control characters).
fn bounded(
    field: &str,
    value: Option<String>,
    max: usize,
    printable: bool,
) -> Result<Option<String>, ApiError> {
    match value {
        Some(v)
            if v.is_empty()
                || v.chars().count() > max
                || (printable && v.chars().any(char::is_control)) =>
        {
            Err(invalid(&format!(
                "{field}: 1 to {max} printable characters"
            )))
        }
        other => Ok(other),
    }
}

fn event_count(events: &[String]) -> Result<(), ApiError> {
    if events.len() > 64 {
        return Err(invalid("events: at most 64"));
    }
    Ok(())
}

/// Add a webhook endpoint. Its URL must resolve to public addresses (unless the settings open
/// loopback or private networks), its events must exist, and its secret is the admin's choice:
/// the server stores it and never shows it.
#[utoipa::path(post, path = "/api/v1/webhooks/endpoints", operation_id = "createWebhookEndpoint", tag = "webhooks", security(("bearer" = [])),
    request_body = NewEndpointBody,
    responses(
        (status = 201, description = "Created", body = WebhookEndpoint),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 422, description = "Bad URL, address refused, unknown event or bad secret", body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    Admin(auth): Admin,
    Json(body): Json<NewEndpointBody>,
) -> Result<(StatusCode, JsonResponse<WebhookEndpoint>), ApiError> {
    event_count(&body.events)?;
    let endpoint = state
        .webhooks
        .create(EndpointRequest {
            url: body.url,
            events: body.events,
            description: body.description,
            secret: body.secret,
        })
        .await?;
    tracing::info!(endpoint = %endpoint.id, by = %auth.caller.user_id, "webhook endpoint created");
    Ok((StatusCode::CREATED, JsonResponse(endpoint)))
}

/// Every webhook endpoint, from the settings and the API.
#[utoipa::path(get, path = "/api/v1/webhooks/endpoints", operation_id = "listWebhookEndpoints", tag = "webhooks", security(("bearer" = [])),
    responses(
        (status = 200, description = "The endpoints", body = EndpointList),
        (status = 403, description = "Not an admin", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    _: Admin,
) -> Result<JsonResponse<EndpointList>, ApiError> {
    Ok(JsonResponse(EndpointList {
        items: state.webhooks.endpoints().await?,
    }))
}

/// One webhook endpoint: where it points, its events, whether it is enabled and why not, its
/// failures in a row.
#[utoipa::path(get, path = "/api/v1/webhooks/endpoints/{id}", operation_id = "getWebhookEndpoint", tag = "webhooks", security(("bearer" = [])),
    params(("id" = String, Path, description = "Endpoint id", min_length = 1, max_length = 128)),
    responses(
        (status = 200, description = "The endpoint", body = WebhookEndpoint),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such endpoint", body = ErrorBody),
    ))]
pub async fn get(
    State(state): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<JsonResponse<WebhookEndpoint>, ApiError> {
    Ok(JsonResponse(state.webhooks.endpoint(&id).await?))
}

/// Change a webhook endpoint, or disable / re-enable it (audited).
#[utoipa::path(patch, path = "/api/v1/webhooks/endpoints/{id}", operation_id = "updateWebhookEndpoint", tag = "webhooks", security(("bearer" = [])),
    params(("id" = String, Path, description = "Endpoint id", min_length = 1, max_length = 128)),
    request_body = EndpointPatchBody,
    responses(
        (status = 200, description = "Changed", body = WebhookEndpoint),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such endpoint", body = ErrorBody),
        (status = 422, description = "Bad URL, address refused or unknown event", body = ErrorBody),
    ))]
pub async fn update(
    State(state): State<AppState>,
    Admin(auth): Admin,
    Path(id): Path<String>,
    Json(body): Json<EndpointPatchBody>,
) -> Result<JsonResponse<WebhookEndpoint>, ApiError> {
    if let Some(events) = &body.events {
        event_count(events)?;
    }
    let reason = bounded("reason", body.reason, 500, true)?;
    let change = EndpointChange {
        url: body.url,
        events: body.events,
        description: body.description,
        enabled: body.enabled,
        reason,
    };
    let by = auth.caller.user_id.to_string();
    Ok(JsonResponse(state.webhooks.update(&id, change, &by).await?))
}

/// Rotate a webhook endpoint's secret (audited). Both secrets sign while they overlap: each
/// message carries two signatures, so the receiver verifies with either.
#[utoipa::path(post, path = "/api/v1/webhooks/endpoints/{id}/rotate-secret", operation_id = "rotateWebhookSecret", tag = "webhooks", security(("bearer" = [])),
    params(("id" = String, Path, description = "Endpoint id", min_length = 1, max_length = 128)),
    request_body = RotateBody,
    responses(
        (status = 200, description = "Rotated", body = WebhookEndpoint),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such endpoint", body = ErrorBody),
        (status = 422, description = "Bad secret", body = ErrorBody),
    ))]
pub async fn rotate(
    State(state): State<AppState>,
    Admin(auth): Admin,
    Path(id): Path<String>,
    Json(body): Json<RotateBody>,
) -> Result<JsonResponse<WebhookEndpoint>, ApiError> {
    let by = auth.caller.user_id.to_string();
    Ok(JsonResponse(
        state.webhooks.rotate(&id, &body.secret, &by).await?,
    ))
}

/// The webhook delivery log: every event to every endpoint, its attempts, the receiver's last
/// answer.
#[utoipa::path(get, path = "/api/v1/webhooks/deliveries", operation_id = "listWebhookDeliveries", tag = "webhooks", security(("bearer" = [])),
    params(WebhookDeliveryQuery),
    responses(
        (status = 200, description = "A page", body = WebhookDeliveryPage),
        (status = 400, description = "Unknown or mistyped parameter", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 422, description = "Bad limit or filter", body = ErrorBody),
    ))]
pub async fn deliveries(
    State(state): State<AppState>,
    _: Admin,
    Query(query): Query<WebhookDeliveryQuery>,
) -> Result<JsonResponse<WebhookDeliveryPage>, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(invalid("limit: between 1 and 500"));
    }
    let filter = WebhookDeliveryFilter {
        endpoint_id: bounded("endpointId", query.endpoint_id, 128, false)?,
        status: query.status,
        consultation_id: bounded("consultationId", query.consultation_id, 128, false)?,
        before: bounded("cursor", query.cursor, 256, false)?,
        limit: limit + 1,
    };
    let mut items = state.webhooks.deliveries(&filter).await?;
    let next_cursor = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(|d| d.id.clone())
    } else {
        None
    };
    Ok(JsonResponse(WebhookDeliveryPage { items, next_cursor }))
}

/// Send a delivery again, now, with the same event id (receivers dedupe by it). Audited.
#[utoipa::path(post, path = "/api/v1/webhooks/deliveries/{id}/redeliver", operation_id = "redeliverWebhook", tag = "webhooks", security(("bearer" = [])),
    params(("id" = String, Path, description = "Delivery id", min_length = 1, max_length = 256)),
    responses(
        (status = 202, description = "Queued", body = WebhookDelivery),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such delivery", body = ErrorBody),
    ))]
pub async fn redeliver(
    State(state): State<AppState>,
    Admin(auth): Admin,
    Path(id): Path<String>,
) -> Result<(StatusCode, JsonResponse<WebhookDelivery>), ApiError> {
    let by = auth.caller.user_id.to_string();
    let delivery = state.webhooks.redeliver(&id, &by).await?;
    Ok((StatusCode::ACCEPTED, JsonResponse(delivery)))
}
