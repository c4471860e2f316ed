//! The caller's own identity.

use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use wakili_core::Role;

use crate::auth::Auth;

/// Who the token says the caller is.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Me {
    /// User id (`sub`).
    pub id: String,
    /// Role.
    pub role: Role,
    /// Display name.
    pub name: String,
}

/// The authenticated caller.
#[utoipa::path(get, path = "/api/v1/me", tag = "users", security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller", body = Me),
        (status = 401, description = "Missing, invalid or expired token", body = crate::error::ErrorBody),
    ))]
pub async fn me(auth: Auth) -> Json<Me> {
    Json(Me {
        id: auth.caller.user_id.into_string(),
        role: auth.caller.role,
        name: auth.name,
    })
}
