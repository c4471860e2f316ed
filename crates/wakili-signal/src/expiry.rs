//! A connection lives as long as its token, sans-IO: when to warn (`auth:expiring`), when to
//! close (`session:closed {reason: "token_expired"}`), and whether an `auth:refresh` token may
//! take over. Time is passed in.
//!
//! A token is valid while `now ≤ exp + leeway` in whole seconds, exactly as the API's verifier
//! reads it, so a socket never outlives a token the API would refuse.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use wakili_auth::Verifier;
use wakili_core::Caller;

use crate::protocol::Refusal;

/// The error code of events sent after the token expired.
pub const TOKEN_EXPIRED: &str = "token_expired";

/// What is due next on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Tell the client its token expires soon (`auth:expiring`).
    Warn,
    /// The token has expired: close the connection.
    Expire,
}

/// One connection's token lifetime.
#[derive(Debug, Clone)]
pub struct TokenLife {
    expires_at: DateTime<Utc>,
    leeway: i64,
    warning: chrono::Duration,
    warned: bool,
}

/// `auth:expiring`, sent `signaling.expiry_warning` before the token expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Expiring {
    /// The token's `exp`.
    pub expires_at: DateTime<Utc>,
    /// Seconds until the connection is closed unless refreshed (leeway included).
    pub closes_in_seconds: i64,
}

impl TokenLife {
    /// A token that expires at `expires_at`, tolerated `leeway` longer; warned `warning` before
    /// `expires_at` (never, when zero).
    pub fn new(expires_at: DateTime<Utc>, leeway: Duration, warning: Duration) -> Self {
        Self {
            expires_at,
            leeway: i64::try_from(leeway.as_secs()).unwrap_or(i64::MAX),
            warning: chrono::Duration::from_std(warning).unwrap_or(chrono::Duration::zero()),
            warned: warning.is_zero(),
        }
    }

    /// The token's `exp`.
    pub fn expires_at(&self) -> DateTime<Utc> {
        self.expires_at
    }

    /// Whether the token is no longer valid at `now` (the verifier's rule).
    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        now.timestamp() > self.expires_at.timestamp().saturating_add(self.leeway)
    }

    /// The first instant at which [`TokenLife::expired`] holds.
    fn closes_at(&self) -> DateTime<Utc> {
        let last_valid = self.expires_at.timestamp().saturating_add(self.leeway);
        DateTime::from_timestamp(last_valid.saturating_add(1), 0)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// What is due next, and how long from `now` until it is (zero: now).
    pub fn next(&self, now: DateTime<Utc>) -> (Due, Duration) {
        let until = |at: DateTime<Utc>| (at - now).to_std().unwrap_or(Duration::ZERO);
        if self.warned || self.expired(now) {
            (Due::Expire, until(self.closes_at()))
        } else {
            (Due::Warn, until(self.expires_at - self.warning))
        }
    }

    /// The warning was sent; returns what it says.
    pub fn warn(&mut self, now: DateTime<Utc>) -> Expiring {
        self.warned = true;
        Expiring {
            expires_at: self.expires_at,
            closes_in_seconds: (self.closes_at() - now).num_seconds().max(0),
        }
    }

    /// A refreshed token takes over at `now`: a new expiry, and a new warning before it (none
    /// when the new token is already within the warning period, so that a client given short
    /// tokens is not asked again at once, over and over).
    pub fn renew(&mut self, expires_at: DateTime<Utc>, now: DateTime<Utc>) {
        self.expires_at = expires_at;
        self.warned = self.warning.is_zero() || now >= expires_at - self.warning;
    }
}

/// Checks an `auth:refresh` token: valid at `now` like a connect token, and for the same user
/// and role as the connection. Returns its expiry.
pub fn check_refresh(
    verifier: &Verifier,
    token: &str,
    now: DateTime<Utc>,
    caller: &Caller,
) -> Result<DateTime<Utc>, Refusal> {
    let claims = verifier
        .verify(token, now)
        .map_err(|e| Refusal::new("unauthorized", format!("auth:refresh: {e}")))?;
    if claims.user_id != caller.user_id || claims.role != caller.role {
        return Err(Refusal::new(
            "forbidden",
            "auth:refresh: the token is for another user or role than this connection",
        ));
    }
    Ok(claims.expires_at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    #[test]
    fn a_connection_is_warned_then_closed_after_the_leeway() {
        let mut life = TokenLife::new(at(100), Duration::from_secs(5), Duration::from_secs(60));
        assert_eq!(life.next(at(0)), (Due::Warn, Duration::from_secs(40)));
        assert_eq!(life.next(at(50)), (Due::Warn, Duration::ZERO));
        let warning = life.warn(at(50));
        assert_eq!(warning.expires_at, at(100));
        assert_eq!(warning.closes_in_seconds, 56);
        // Valid through exp + leeway (as the API's verifier reads it), closed one second later.
        assert_eq!(life.next(at(50)), (Due::Expire, Duration::from_secs(56)));
        assert!(!life.expired(at(105)));
        assert!(life.expired(at(106)));
        assert_eq!(life.next(at(200)), (Due::Expire, Duration::ZERO));
    }

    #[test]
    fn an_expired_token_is_closed_without_a_warning_first() {
        let life = TokenLife::new(at(100), Duration::ZERO, Duration::from_secs(60));
        assert_eq!(life.next(at(101)), (Due::Expire, Duration::ZERO));
    }

    #[test]
    fn a_refresh_moves_both_deadlines() {
        let mut life = TokenLife::new(at(100), Duration::ZERO, Duration::from_secs(10));
        life.warn(at(95));
        life.renew(at(1000), at(95));
        assert!(!life.expired(at(500)));
        assert_eq!(life.next(at(500)), (Due::Warn, Duration::from_secs(490)));
        // A new token that is itself about to expire is not warned about again.
        life.renew(at(1005), at(1000));
        assert_eq!(life.next(at(1000)), (Due::Expire, Duration::from_secs(6)));
    }

    #[test]
    fn a_refresh_token_must_be_valid_and_for_the_same_user_and_role() {
        use wakili_auth::{Algorithm, Minter, TokenRequest, VerifierConfig, VerifyKey};
        use wakili_core::{Role, UserId};
        let secret = b"refresh-test-secret-refresh-test-secret-0123";
        let verifier = Verifier::new(VerifierConfig {
            algorithm: Algorithm::Hs256,
            key: VerifyKey::Secret(secret.to_vec()),
            issuer: None,
            audience: None,
            leeway: Duration::ZERO,
        })
        .unwrap();
        let mint = |user: &str, role, issued: i64| {
            let request = TokenRequest {
                user_id: UserId::parse(user).unwrap(),
                role,
                name: "N".into(),
                ttl: Duration::from_secs(600),
            };
            Minter::hs256(secret)
                .unwrap()
                .mint(&request, at(issued))
                .unwrap()
        };
        let caller = Caller {
            user_id: UserId::parse("u1").unwrap(),
            role: Role::Client,
        };
        let ok = check_refresh(&verifier, &mint("u1", Role::Client, 0), at(10), &caller);
        assert_eq!(ok.unwrap(), at(600));
        let code = |token: &str| {
            check_refresh(&verifier, token, at(10), &caller)
                .unwrap_err()
                .code
        };
        assert_eq!(code(&mint("u2", Role::Client, 0)), "forbidden");
        assert_eq!(code(&mint("u1", Role::Lawyer, 0)), "forbidden");
        assert_eq!(code(&mint("u1", Role::Client, -1000)), "unauthorized");
        assert_eq!(code("garbage"), "unauthorized");
    }

    #[test]
    fn without_a_warning_only_the_expiry_is_due() {
        let life = TokenLife::new(at(100), Duration::ZERO, Duration::ZERO);
        assert_eq!(life.next(at(0)), (Due::Expire, Duration::from_secs(101)));
    }
}
