//! `/api/v1/consultations`: booking, listing, editing and the lifecycle.

use axum::{
    Json as JsonResponse,
    body::Bytes,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use wakili_core::{
    ConsultationId,
    consultation::{
        Access, Action, ConsultationPatch, ConsultationRequest, ConsultationStatus, check_reason,
        may_book,
    },
    page::{Cursor, limit},
};
use wakili_db::{
    lifecycle::{self, Transition, TransitionError},
    models::{AuditEvent, ConsultationFilter, ConsultationInsert, VideoConsultation},
};

use crate::{
    ApiError, AppState,
    auth::Auth,
    error::ErrorBody,
    extract::{DeferredJson, Path, Query, from_object},
};

/// The consultation as `access` may see it: the lawyer's notes are for those who may edit it,
/// never for the client or a guest.
fn view(mut consultation: VideoConsultation, access: Access) -> VideoConsultation {
    if !access.allows(Action::Edit) {
        consultation.notes = None;
    }
    consultation
}

/// Optional body of a cancellation.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelConsultation {
    /// Why, shown to the other party (up to 1,000 characters, no control characters but tab
    /// and newline).
    #[schema(
        max_length = 1000,
        pattern = "^[^\\u0000-\\u0008\\u000B-\\u001F\\u007F-\\u009F]*$"
    )]
    pub reason: Option<String>,
}

/// Filters for listing.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this status.
    pub status: Option<ConsultationStatus>,
    /// Scheduled at or after (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Scheduled before (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    /// `nextCursor` of the previous page (opaque; only cursors this server issued work).
    pub cursor: Option<String>,
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
}

/// One page of consultations, in schedule order.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsultationPage {
    /// The consultations.
    pub items: Vec<VideoConsultation>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

fn hidden() -> ApiError {
    ApiError::not_found("no such consultation")
}

/// Loads a consultation the caller may see; anything else is indistinguishable from absent.
pub(crate) async fn visible(
    state: &AppState,
    auth: &Auth,
    id: &str,
) -> Result<(VideoConsultation, Access), ApiError> {
    let id = ConsultationId::parse(id).map_err(|_| hidden())?;
    tracing::Span::current().record("consultation_id", id.as_str());
    let consultation = state
        .db
        .consultation(id.as_str())
        .await?
        .ok_or_else(hidden)?;
    let mut access = Access::of(
        &auth.caller,
        &consultation.lawyer_id,
        &consultation.client_id,
    );
    if access == Access::None {
        let invited = state
            .db
            .invitation(&consultation.id, auth.caller.user_id.as_str())
            .await?;
        access = access.or_guest(invited);
    }
    if access.can_view() {
        Ok((consultation, access))
    } else {
        Err(hidden())
    }
}

/// 404 unless the caller sees the consultation, 403 unless they may edit it: checked before the
/// body is looked at. [`change`] checks again on the row it changes.
async fn may_edit(state: &AppState, auth: &Auth, id: &str) -> Result<(), ApiError> {
    let (_, access) = visible(state, auth, id).await?;
    if access.allows(Action::Edit) {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "only the consultation's lawyer or an admin can edit it",
        ))
    }
}

/// Applies `action` (and `change`) to a consultation the caller may change, stamping the
/// lifecycle times, and saves it with an audit entry. A concurrent change is retried on the fresh
/// row, so the state machine always judges the current state.
/// [`change`] with nothing to edit and no detail: starting or ending the call.
async fn plain(
    state: &AppState,
    auth: &Auth,
    id: &str,
    action: Action,
) -> Result<VideoConsultation, ApiError> {
    change(state, auth, id, action, |_| {}, serde_json::json!({})).await
}

async fn change(
    state: &AppState,
    auth: &Auth,
    id: &str,
    action: Action,
    change: impl Fn(&mut VideoConsultation),
    detail: serde_json::Value,
) -> Result<VideoConsultation, ApiError> {
    let id = ConsultationId::parse(id).map_err(|_| hidden())?;
    tracing::Span::current().record("consultation_id", id.as_str());
    let actor = auth.caller.user_id.to_string();
    let transition = Transition {
        action,
        actor: &actor,
        detail,
        attempts: 3,
    };
    let guard = |c: &VideoConsultation| {
        let access = Access::of(&auth.caller, &c.lawyer_id, &c.client_id);
        if !access.can_view() {
            return Err(hidden());
        }
        if !access.allows(action) {
            return Err(ApiError::forbidden(format!(
                "only the consultation's lawyer or an admin can {action} it"
            )));
        }
        Ok(access)
    };
    match lifecycle::transition(
        &*state.db,
        id.as_str(),
        transition,
        &state.clock,
        guard,
        change,
    )
    .await
    {
        Ok((saved, access)) => {
            tracing::info!(consultation_id = %saved.id, action = %action, status = %saved.status, "consultation changed");
            Ok(view(saved, access))
        }
        Err(TransitionError::NotFound) => Err(hidden()),
        Err(TransitionError::Refused(e)) => Err(e),
        Err(TransitionError::Invalid(e)) => Err(e.into()),
        Err(TransitionError::Db(e)) => Err(e.into()),
        Err(TransitionError::Busy) => Err(ApiError::conflict(
            "the consultation is being changed by someone else; retry",
        )),
    }
}

/// Book a consultation (lawyers for themselves, admins for any lawyer).
#[utoipa::path(post, path = "/api/v1/consultations", operation_id = "bookConsultation", tag = "consultations", security(("bearer" = [])),
    request_body = ConsultationRequest,
    responses(
        (status = 201, description = "Booked", body = VideoConsultation,
            headers(("location" = String, description = "URL of the new consultation"))),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "Clients cannot book", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "A field breaks a rule", body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    body: DeferredJson<ConsultationRequest>,
) -> Result<impl IntoResponse, ApiError> {
    if !may_book(auth.caller.role) {
        return Err(ApiError::forbidden(
            "only lawyers and admins can book consultations",
        ));
    }
    let body = body.parse()?;
    let now = state.now();
    let mut booking = body.validate(&auth.caller, now)?;
    booking.media_mode.get_or_insert(state.settings.media.mode);
    if let Some(client) = state.db.user(booking.client_id.as_str()).await?
        && client.role != wakili_core::Role::Client
    {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            format!(
                "clientId: user {} is a {}, not a client",
                client.id, client.role
            ),
        ));
    }
    let created = state
        .db
        .create_consultation(ConsultationInsert {
            booking,
            created_by: auth.caller.user_id.to_string(),
            now,
        })
        .await?;
    tracing::Span::current().record("consultation_id", created.id.as_str());
    tracing::info!(consultation_id = %created.id, "consultation booked");
    if let Err(e) = state.push.consultation_booked(&created).await {
        tracing::error!(error = %e, consultation_id = %created.id, "reminders not stored");
    }
    let location = format!("/api/v1/consultations/{}", created.id);
    let access = Access::of(&auth.caller, &created.lawyer_id, &created.client_id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        JsonResponse(view(created, access)),
    ))
}

/// List one's own consultations (admins: all), in schedule order, a page at a time.
#[utoipa::path(get, path = "/api/v1/consultations", operation_id = "listConsultations", tag = "consultations", security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "A page", body = ConsultationPage),
        (status = 400, description = "Unknown or mistyped parameter", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 422, description = "Bad cursor, limit or range", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
    Query(query): Query<ListQuery>,
) -> Result<JsonResponse<ConsultationPage>, ApiError> {
    if let (Some(from), Some(to)) = (query.from, query.to)
        && from >= to
    {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "from: must be before to",
        ));
    }
    let filter = ConsultationFilter {
        participant: (!auth.caller.is_admin()).then(|| auth.caller.user_id.to_string()),
        status: query.status,
        from: query.from,
        to: query.to,
        after: query.cursor.as_deref().map(Cursor::decode).transpose()?,
        limit: limit(query.limit)?,
    };
    let page = state.db.list_consultations(&filter).await?;
    Ok(JsonResponse(ConsultationPage {
        items: page
            .items
            .into_iter()
            .map(|c| {
                let access = Access::of(&auth.caller, &c.lawyer_id, &c.client_id);
                view(c, access)
            })
            .collect(),
        next_cursor: page.next.map(|c| c.encode()),
    }))
}

/// One consultation (its lawyer, its client, admins; anyone else gets 404).
#[utoipa::path(get, path = "/api/v1/consultations/{id}", operation_id = "getConsultation", tag = "consultations", security(("bearer" = [])),
    params(("id" = String, Path, description = "Consultation id")),
    responses(
        (status = 200, description = "The consultation", body = VideoConsultation),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 404, description = "No such consultation, or not the caller's", body = ErrorBody),
    ))]
pub async fn get(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<JsonResponse<VideoConsultation>, ApiError> {
    let (consultation, access) = visible(&state, &auth, &id).await?;
    Ok(JsonResponse(view(consultation, access)))
}

/// Edit or reschedule (the lawyer, admins). Time and duration change only while scheduled.
#[utoipa::path(patch, path = "/api/v1/consultations/{id}", tag = "consultations", security(("bearer" = [])),
    params(("id" = String, Path, description = "Consultation id")),
    request_body = ConsultationPatch,
    responses(
        (status = 200, description = "Updated", body = VideoConsultation),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "Not the lawyer or an admin", body = ErrorBody),
        (status = 404, description = "No such consultation, or not the caller's", body = ErrorBody),
        (status = 409, description = "Not allowed in the current state", body = ErrorBody),
        (status = 422, description = "A field breaks a rule", body = ErrorBody),
    ))]
pub async fn update(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    body: DeferredJson<ConsultationPatch>,
) -> Result<JsonResponse<VideoConsultation>, ApiError> {
    may_edit(&state, &auth, &id).await?;
    let valid = body.parse()?.validate(state.now())?;
    let rescheduled = valid.action() == Action::Reschedule;
    let patch = valid.changes();
    let detail = serde_json::json!({
        "scheduledAt": patch.scheduled_at,
        "durationMinutes": patch.duration_minutes,
        "titleChanged": patch.title.is_some(),
        "notesChanged": patch.notes.is_some(),
    });
    let saved = change(
        &state,
        &auth,
        &id,
        valid.action(),
        |c| {
            if let Some(at) = patch.scheduled_at {
                c.scheduled_at = at;
            }
            if let Some(minutes) = patch.duration_minutes {
                c.duration_minutes = minutes;
            }
            if let Some(title) = &patch.title {
                c.title.clone_from(title);
            }
            if let Some(notes) = &patch.notes {
                c.notes.clone_from(notes);
            }
        },
        detail,
    )
    .await?;
    if rescheduled
        && let Err(e) = state
            .push
            .consultation_rescheduled(&saved, auth.caller.user_id.as_str())
            .await
    {
        tracing::error!(error = %e, consultation_id = %saved.id, "reminders not moved");
    }
    Ok(JsonResponse(saved))
}

/// Cancel a scheduled consultation (either party or an admin), with an optional reason.
#[utoipa::path(post, path = "/api/v1/consultations/{id}/cancel", tag = "consultations", security(("bearer" = [])),
    params(("id" = String, Path, description = "Consultation id")),
    request_body(content = Option<CancelConsultation>, description = "Optional reason"),
    responses(
        (status = 200, description = "Cancelled", body = VideoConsultation),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 404, description = "No such consultation, or not the caller's", body = ErrorBody),
        (status = 409, description = "Not scheduled any more", body = ErrorBody),
        (status = 422, description = "Reason too long", body = ErrorBody),
    ))]
pub async fn cancel(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<JsonResponse<VideoConsultation>, ApiError> {
    // No body, or `null`: no reason given; otherwise an object.
    let body: CancelConsultation = if body.iter().all(u8::is_ascii_whitespace) {
        CancelConsultation::default()
    } else {
        match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(serde_json::Value::Null) => CancelConsultation::default(),
            Ok(value) => from_object(value)?,
            Err(e) => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_body",
                    format!("request body does not match the schema: {e}"),
                ));
            }
        }
    };
    let reason = check_reason(body.reason)?;
    let detail = serde_json::json!({ "reason": reason });
    let saved = change(
        &state,
        &auth,
        &id,
        Action::Cancel,
        |c| c.cancellation_reason.clone_from(&reason),
        detail,
    )
    .await?;
    state
        .signaling
        .closed(&saved.id, auth.caller.user_id.as_str())
        .await;
    if let Err(e) = state
        .push
        .consultation_cancelled(&saved, auth.caller.user_id.as_str())
        .await
    {
        tracing::error!(error = %e, consultation_id = %saved.id, "reminders not removed");
    }
    Ok(JsonResponse(saved))
}

/// Start the call (the lawyer, admins).
#[utoipa::path(post, path = "/api/v1/consultations/{id}/start", tag = "consultations", security(("bearer" = [])),
    params(("id" = String, Path, description = "Consultation id")),
    responses(
        (status = 200, description = "In progress", body = VideoConsultation),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "Not the lawyer or an admin", body = ErrorBody),
        (status = 404, description = "No such consultation, or not the caller's", body = ErrorBody),
        (status = 409, description = "Not scheduled", body = ErrorBody),
    ))]
pub async fn start(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<JsonResponse<VideoConsultation>, ApiError> {
    let saved = plain(&state, &auth, &id, Action::Start).await?;
    Ok(JsonResponse(saved))
}

/// End the call (the lawyer, admins).
#[utoipa::path(post, path = "/api/v1/consultations/{id}/end", tag = "consultations", security(("bearer" = [])),
    params(("id" = String, Path, description = "Consultation id")),
    responses(
        (status = 200, description = "Ended", body = VideoConsultation),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "Not the lawyer or an admin", body = ErrorBody),
        (status = 404, description = "No such consultation, or not the caller's", body = ErrorBody),
        (status = 409, description = "Not in progress", body = ErrorBody),
    ))]
pub async fn end(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<JsonResponse<VideoConsultation>, ApiError> {
    let saved = plain(&state, &auth, &id, Action::End).await?;
    state
        .signaling
        .closed(&saved.id, auth.caller.user_id.as_str())
        .await;
    Ok(JsonResponse(saved))
}

/// The consultation's audit log, oldest first (the lawyer, admins).
#[utoipa::path(get, path = "/api/v1/consultations/{id}/audit", tag = "consultations", security(("bearer" = [])),
    params(("id" = String, Path, description = "Consultation id")),
    responses(
        (status = 200, description = "The log", body = Vec<AuditEvent>),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "Clients and guests cannot read the audit log", body = ErrorBody),
        (status = 404, description = "No such consultation, or not the caller's", body = ErrorBody),
    ))]
pub async fn audit(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<JsonResponse<Vec<AuditEvent>>, ApiError> {
    let (consultation, access) = visible(&state, &auth, &id).await?;
    if !access.allows(Action::Edit) {
        return Err(ApiError::forbidden(
            "only the consultation's lawyer or an admin can read its audit log",
        ));
    }
    let log = state.db.audit_log(&consultation.id).await?;
    Ok(JsonResponse(log))
}

/// Body of `PUT /consultations/{id}/quality-profile`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetQualityProfile {
    /// A profile name from `qualityProfiles` (`low`, `medium`, `high` by default).
    pub profile: String,
}

/// Set the consultation's video quality profile (the lawyer, admins; not once it is over).
#[utoipa::path(put, path = "/api/v1/consultations/{id}/quality-profile", tag = "consultations", security(("bearer" = [])),
    params(("id" = String, Path, description = "Consultation id")),
    request_body = SetQualityProfile,
    responses(
        (status = 200, description = "Profile set", body = VideoConsultation),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "Not the lawyer or an admin", body = ErrorBody),
        (status = 404, description = "No such consultation, or not the caller's", body = ErrorBody),
        (status = 409, description = "The consultation is over", body = ErrorBody),
        (status = 422, description = "Unknown profile", body = ErrorBody),
    ))]
pub async fn set_quality_profile(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    body: DeferredJson<SetQualityProfile>,
) -> Result<JsonResponse<VideoConsultation>, ApiError> {
    may_edit(&state, &auth, &id).await?;
    let body = body.parse()?;
    let profiles = &state.settings.media.profiles;
    if !profiles.contains_key(&body.profile) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            format!(
                "profile: {:?} is not one of {}",
                body.profile,
                profiles.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    let detail = serde_json::json!({ "qualityProfile": body.profile });
    let saved = change(
        &state,
        &auth,
        &id,
        Action::Edit,
        |c| c.quality_profile = Some(body.profile.clone()),
        detail,
    )
    .await?;
    state
        .signaling
        .profile_changed(&saved.id, &body.profile, auth.caller.user_id.as_str())
        .await;
    Ok(JsonResponse(saved))
}
