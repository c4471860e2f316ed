//! `/api/v1/notifications`: answers to call notifications, and the delivery log for admins.

use axum::{Json as JsonResponse, extract::State, http::StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use wakili_core::consultation::Access;
use wakili_db::{DeliveryFilter, DeliveryStatus, OutboxNotification};

use crate::{
    ApiError, AppState,
    auth::{Admin, Auth},
    error::ErrorBody,
    extract::{Json, Query},
    routes::consultations::visible,
};

/// What the callee did with the call notification's buttons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallAction {
    /// Will join.
    Accept,
    /// Will not.
    Decline,
}

/// Body of `POST /api/v1/notifications/call-response`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CallResponse {
    /// The consultation that rang.
    pub consultation_id: String,
    /// `accept` or `decline`.
    pub action: CallAction,
}

/// Answer a call notification (its ACCEPT / DECLINE buttons): the caller hears `call:accepted`
/// or `call:declined` over signaling, and the callee's other devices stop ringing.
#[utoipa::path(post, path = "/api/v1/notifications/call-response", tag = "notifications", security(("bearer" = [])),
    request_body = CallResponse,
    responses(
        (status = 204, description = "Passed on"),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "Not a party to the consultation", body = ErrorBody),
        (status = 404, description = "No such consultation, or not the caller's", body = ErrorBody),
        (status = 409, description = "The consultation is over", body = ErrorBody),
    ))]
pub async fn call_response(
    State(state): State<AppState>,
    auth: Auth,
    Json(body): Json<CallResponse>,
) -> Result<StatusCode, ApiError> {
    let (consultation, access) = visible(&state, &auth, &body.consultation_id).await?;
    if !matches!(access, Access::Lawyer | Access::Client) {
        return Err(ApiError::forbidden(
            "only the consultation's lawyer or client can answer its calls",
        ));
    }
    if consultation.status.is_closed() {
        return Err(ApiError::conflict(format!(
            "the consultation is {}",
            consultation.status
        )));
    }
    let accepted = body.action == CallAction::Accept;
    let user = auth.caller.user_id.as_str();
    state
        .signaling
        .call_response(&consultation.id, user, &auth.name, accepted)
        .await;
    let reason = if accepted { "accepted" } else { "declined" };
    if let Err(e) = state
        .push
        .call_answered(&consultation.id, user, reason)
        .await
    {
        tracing::warn!(error = %e, "ringing not stopped on the other devices");
    }
    tracing::info!(consultation_id = %consultation.id, action = reason, "call answered");
    Ok(StatusCode::NO_CONTENT)
}

/// Filters of the delivery log.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// Only this status (`pending`, `sent`, `failed`, `expired`).
    #[param(value_type = Option<String>, pattern = "^(pending|sent|failed|expired)$")]
    pub status: Option<DeliveryStatus>,
    /// Only about this consultation.
    #[param(min_length = 1, max_length = 128)]
    pub consultation_id: Option<String>,
    /// Only to this user.
    #[param(min_length = 1, max_length = 128)]
    pub user_id: Option<String>,
    /// `nextCursor` of the previous page.
    #[param(min_length = 1, max_length = 128)]
    pub cursor: Option<String>,
    /// Page size, 1–500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

/// One page of the delivery log, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryPage {
    /// The deliveries.
    pub items: Vec<OutboxNotification>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

fn short(field: &str, value: Option<String>) -> Result<Option<String>, ApiError> {
    match value {
        Some(v) if v.is_empty() || v.chars().count() > 128 => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            format!("{field}: 1 to 128 characters"),
        )),
        other => Ok(other),
    }
}

/// The push delivery log (admins): every notification, to which user, and what became of it.
#[utoipa::path(get, path = "/api/v1/notifications/deliveries", tag = "notifications", security(("bearer" = [])),
    params(DeliveryQuery),
    responses(
        (status = 200, description = "A page", body = DeliveryPage),
        (status = 400, description = "Unknown or mistyped parameter", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 422, description = "Bad limit or filter", body = ErrorBody),
    ))]
pub async fn deliveries(
    State(state): State<AppState>,
    _: Admin,
    Query(query): Query<DeliveryQuery>,
) -> Result<JsonResponse<DeliveryPage>, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "limit: between 1 and 500",
        ));
    }
    let filter = DeliveryFilter {
        status: query.status,
        consultation_id: short("consultationId", query.consultation_id)?,
        user_id: short("userId", query.user_id)?,
        before: short("cursor", query.cursor)?,
        limit: limit + 1,
    };
    let mut items = state.db.deliveries(&filter).await?;
    let next_cursor = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(|n| n.id.clone())
    } else {
        None
    };
    Ok(JsonResponse(DeliveryPage { items, next_cursor }))
}
