use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use wakili_core::{Role, UserId};

use crate::AuthError;

/// Longest display name accepted from a token.
pub const MAX_NAME_CHARS: usize = 200;

/// The verified identity a token carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// `sub`: the platform's user id.
    pub user_id: UserId,
    /// `role`.
    pub role: Role,
    /// `name`, or the user id when the token has none.
    pub name: String,
    /// `exp`.
    pub expires_at: DateTime<Utc>,
}

/// A token to mint.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// `sub`.
    pub user_id: UserId,
    /// `role`.
    pub role: Role,
    /// `name`.
    pub name: String,
    /// Lifetime from `now`.
    pub ttl: Duration,
}

/// The JWT payload as it travels.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Wire {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<serde_json::Value>,
}

fn string<'v>(
    claim: &'static str,
    value: Option<&'v serde_json::Value>,
) -> Result<Option<&'v str>, AuthError> {
    match value {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(AuthError::InvalidClaim {
            claim,
            reason: "must be a string".into(),
        }),
    }
}

fn seconds(
    claim: &'static str,
    value: Option<&serde_json::Value>,
) -> Result<Option<i64>, AuthError> {
    match value {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
            .map(Some)
            .ok_or(AuthError::InvalidClaim {
                claim,
                reason: "must be a NumericDate".into(),
            }),
        Some(_) => Err(AuthError::InvalidClaim {
            claim,
            reason: "must be a NumericDate".into(),
        }),
    }
}

/// What [`Wire::check`] is checked against.
pub(crate) struct Expect<'a> {
    pub now: DateTime<Utc>,
    pub leeway: i64,
    pub issuer: Option<&'a str>,
    pub audience: Option<&'a str>,
}

impl Wire {
    /// Applies the time, issuer and audience rules and decodes the identity.
    pub(crate) fn check(self, expect: &Expect<'_>) -> Result<Claims, AuthError> {
        let now = expect.now.timestamp();
        let exp = seconds("exp", self.exp.as_ref())?.ok_or(AuthError::MissingClaim("exp"))?;
        if now > exp.saturating_add(expect.leeway) {
            return Err(AuthError::Expired);
        }
        if let Some(nbf) = seconds("nbf", self.nbf.as_ref())?
            && now < nbf.saturating_sub(expect.leeway)
        {
            return Err(AuthError::NotYetValid);
        }
        if let Some(issuer) = expect.issuer
            && string("iss", self.iss.as_ref())? != Some(issuer)
        {
            return Err(AuthError::WrongIssuer);
        }
        if let Some(audience) = expect.audience {
            let ok = match &self.aud {
                Some(serde_json::Value::String(a)) => a == audience,
                Some(serde_json::Value::Array(list)) => list.iter().any(|a| a == audience),
                _ => false,
            };
            if !ok {
                return Err(AuthError::WrongAudience);
            }
        }
        let sub = string("sub", self.sub.as_ref())?.ok_or(AuthError::MissingClaim("sub"))?;
        let user_id = UserId::parse(sub).map_err(|e| AuthError::InvalidClaim {
            claim: "sub",
            reason: e.to_string(),
        })?;
        let role = string("role", self.role.as_ref())?
            .ok_or(AuthError::MissingClaim("role"))?
            .parse::<Role>()
            .map_err(|e| AuthError::InvalidClaim {
                claim: "role",
                reason: e.to_string(),
            })?;
        let name = match string("name", self.name.as_ref())?.map(str::trim) {
            None | Some("") => user_id.to_string(),
            Some(name)
                if name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) =>
            {
                return Err(AuthError::InvalidClaim {
                    claim: "name",
                    reason: format!("must be at most {MAX_NAME_CHARS} printable characters"),
                });
            }
            Some(name) => name.to_owned(),
        };
        let expires_at = DateTime::from_timestamp(exp, 0).ok_or(AuthError::InvalidClaim {
            claim: "exp",
            reason: "out of range".into(),
        })?;
        Ok(Claims {
            user_id,
            role,
            name,
            expires_at,
        })
    }
}
