//! Bearer-token authentication for HTTP handlers.

use axum::{extract::FromRequestParts, http::request::Parts};
use chrono::Duration;
use wakili_auth::AuthError;
use wakili_core::Caller;
use wakili_db::models::UserClaims;

use crate::{ApiError, AppState};

/// How long a user's claims are trusted to be stored before they are written again.
const USER_REFRESH: Duration = Duration::minutes(5);
/// Bound on the remembered users; the map is cleared when it grows past this.
const USERS_SEEN_MAX: usize = 100_000;

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Auth {
    /// Who is calling.
    pub caller: Caller,
    /// Their display name.
    pub name: String,
}

/// Claims last written for a user, and when.
#[derive(Debug, Clone)]
pub(crate) struct SeenUser {
    role: wakili_core::Role,
    name: String,
    at: chrono::DateTime<chrono::Utc>,
}

/// The `Authorization: Bearer <token>` value, if any.
pub fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn refused(e: &AuthError) -> ApiError {
    let message = match e {
        AuthError::Expired => "token expired",
        AuthError::NotYetValid => "token not valid yet",
        _ => "invalid token",
    };
    ApiError::unauthorized(message)
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts).ok_or_else(|| {
            ApiError::unauthorized("send Authorization: Bearer <token> (a JWT from the platform)")
        })?;
        let now = state.now();
        let claims = state.verifier.verify(token, now).map_err(|e| {
            tracing::info!(reason = %e, "token refused");
            refused(&e)
        })?;
        tracing::Span::current().record("user_id", claims.user_id.as_str());
        let auth = Auth {
            caller: Caller {
                user_id: claims.user_id,
                role: claims.role,
            },
            name: claims.name,
        };
        remember_user(state, &auth, now).await?;
        Ok(auth)
    }
}

/// An authenticated admin. As an extractor it runs before the query and body extractors that
/// follow it, so anyone else gets 403 whatever they sent.
#[derive(Debug, Clone)]
pub struct Admin(pub Auth);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let auth = Auth::from_request_parts(parts, state).await?;
        if auth.caller.is_admin() {
            Ok(Self(auth))
        } else {
            Err(ApiError::forbidden("only admins may do this"))
        }
    }
}

/// Upserts the user from claims unless the same claims were stored moments ago.
async fn remember_user(
    state: &AppState,
    auth: &Auth,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), ApiError> {
    let id = auth.caller.user_id.as_str();
    let fresh = {
        let seen = state.users_seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.get(id).is_some_and(|s| {
            s.role == auth.caller.role && s.name == auth.name && now - s.at < USER_REFRESH
        })
    };
    if fresh {
        return Ok(());
    }
    state
        .db
        .upsert_user(
            &UserClaims {
                id: id.to_owned(),
                role: auth.caller.role,
                name: auth.name.clone(),
            },
            now,
        )
        .await?;
    let mut seen = state.users_seen.lock().unwrap_or_else(|p| p.into_inner());
    if seen.len() >= USERS_SEEN_MAX {
        seen.clear();
    }
    seen.insert(
        id.to_owned(),
        SeenUser {
            role: auth.caller.role,
            name: auth.name.clone(),
            at: now,
        },
    );
    Ok(())
}
