//! `/api/v1/consultations/{id}/participants`: who may take part, and the guests (an interpreter,
//! a second lawyer, an observer) the lawyer invites, re-roles and removes.

use axum::{Json as JsonResponse, extract::State, http::StatusCode, response::IntoResponse};
use wakili_core::{
    consultation::Access,
    guest::{GuestRequest, InviteContext, InviteRefusal, party},
};
use wakili_db::{
    DbError,
    models::{GuestChange, Participant},
};

use crate::{
    ApiError, AppState,
    auth::Auth,
    error::ErrorBody,
    extract::{DeferredJson, Path},
    routes::consultations::visible,
};

/// 403 unless `access` may invite.
fn may_invite(access: Access) -> Result<(), ApiError> {
    if access.may_invite() {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "only the consultation's lawyer or an admin invites and removes guests",
        ))
    }
}

impl From<InviteRefusal> for ApiError {
    fn from(e: InviteRefusal) -> Self {
        match e {
            InviteRefusal::Invalid(e) => e.into(),
            InviteRefusal::Party(..) => Self::new(StatusCode::CONFLICT, "party", e.to_string()),
            InviteRefusal::Closed(_) => {
                Self::new(StatusCode::CONFLICT, "consultation_closed", e.to_string())
            }
            InviteRefusal::Full => {
                Self::new(StatusCode::CONFLICT, "too_many_guests", e.to_string())
            }
            InviteRefusal::ObserverNeedsSfu => {
                Self::new(StatusCode::CONFLICT, "observer_needs_sfu", e.to_string())
            }
        }
    }
}

/// Everyone entitled to take part: the lawyer, the client and the guests, in the order they were
/// added (anyone who may see the consultation).
#[utoipa::path(get, path = "/api/v1/consultations/{id}/participants", operation_id = "listParticipants", tag = "consultations", security(("bearer" = [])),
    params(("id" = String, Path, description = "Consultation id")),
    responses(
        (status = 200, description = "The participants", body = Vec<Participant>),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 404, description = "No such consultation, or not the caller's", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<JsonResponse<Vec<Participant>>, ApiError> {
    let (consultation, _) = visible(&state, &auth, &id).await?;
    Ok(JsonResponse(state.db.participants(&consultation.id).await?))
}

/// Invite a guest (an interpreter, a second lawyer, or an observer who only listens), or give a
/// guest another role (the lawyer, admins). At most 6 guests; an observer needs a consultation
/// booked `sfu` or `auto`. A guest in the call when their role changes is taken out of it and
/// rejoins with the new role.
#[utoipa::path(put, path = "/api/v1/consultations/{id}/participants/{userId}", operation_id = "putGuest", tag = "consultations", security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "Consultation id"),
        ("userId" = String, Path, description = "The guest's user id", pattern = "^[A-Za-z0-9._@:|-]{1,128}$"),
    ),
    request_body = GuestRequest,
    responses(
        (status = 201, description = "Invited", body = Participant),
        (status = 200, description = "Role changed, or already invited with this role", body = Participant),
        (status = 400, description = "Malformed body, or a role other than interpreter, counsel or observer", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "Not the lawyer or an admin", body = ErrorBody),
        (status = 404, description = "No such consultation, or not the caller's", body = ErrorBody),
        (status = 409, description = "The user is the lawyer or the client, the consultation is over, it has 6 guests, or an observer in a p2p consultation", body = ErrorBody),
        (status = 422, description = "Invalid user id", body = ErrorBody),
    ))]
pub async fn put(
    State(state): State<AppState>,
    auth: Auth,
    Path((id, user_id)): Path<(String, String)>,
    body: DeferredJson<GuestRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let (consultation, access) = visible(&state, &auth, &id).await?;
    may_invite(access)?;
    let request = body.parse()?;
    let participants = state.db.participants(&consultation.id).await?;
    let other_guests = participants
        .iter()
        .filter(|p| p.role.guest().is_some() && p.user_id != user_id)
        .count();
    let context = InviteContext {
        lawyer_id: &consultation.lawyer_id,
        client_id: &consultation.client_id,
        status: consultation.status,
        media_mode: consultation.media_mode,
        other_guests,
    };
    let user = context.check(&user_id, request.role)?;
    let by = auth.caller.user_id.as_str();
    let change = state
        .db
        .put_guest(
            &consultation.id,
            user.as_str(),
            request.role,
            by,
            state.now(),
        )
        .await
        .map_err(|e| match e {
            DbError::NotAGuest(_) => ApiError::new(StatusCode::CONFLICT, "party", e.to_string()),
            e => e.into(),
        })?;
    if change == GuestChange::RoleChanged {
        state
            .signaling
            .dismissed(&consultation.id, user.as_str(), "role_changed")
            .await;
    }
    let guest = state
        .db
        .participants(&consultation.id)
        .await?
        .into_iter()
        .find(|p| p.user_id == user.as_str())
        .ok_or_else(|| ApiError::internal("the guest just written is missing"))?;
    let status = match change {
        GuestChange::Invited => StatusCode::CREATED,
        GuestChange::RoleChanged | GuestChange::Unchanged => StatusCode::OK,
    };
    Ok((status, JsonResponse(guest)))
}

/// Withdraw a guest's invitation (the lawyer, admins): they leave the call if they are in it
/// and can no longer join or see the consultation.
#[utoipa::path(delete, path = "/api/v1/consultations/{id}/participants/{userId}", operation_id = "removeGuest", tag = "consultations", security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "Consultation id"),
        ("userId" = String, Path, description = "The guest's user id", pattern = "^[A-Za-z0-9._@:|-]{1,128}$"),
    ),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "Not the lawyer or an admin", body = ErrorBody),
        (status = 404, description = "No such consultation or guest", body = ErrorBody),
        (status = 409, description = "The user is the lawyer or the client", body = ErrorBody),
    ))]
pub async fn remove(
    State(state): State<AppState>,
    auth: Auth,
    Path((id, user_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (consultation, access) = visible(&state, &auth, &id).await?;
    may_invite(access)?;
    if let Some(party) = party(&consultation.lawyer_id, &consultation.client_id, &user_id) {
        return Err(InviteRefusal::Party(user_id, party).into());
    }
    let by = auth.caller.user_id.as_str();
    if !state
        .db
        .remove_guest(&consultation.id, &user_id, by, state.now())
        .await?
    {
        return Err(ApiError::not_found("no such guest"));
    }
    state
        .signaling
        .dismissed(&consultation.id, &user_id, "removed")
        .await;
    Ok(StatusCode::NO_CONTENT)
}
