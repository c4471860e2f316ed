//! Ephemeral TURN credentials, per the TURN REST API (draft-uberti-behave-turn-rest), as coturn's
//! `use-auth-secret` understands them: username `<expiry-unix>:<userId>`, credential
//! `base64(HMAC-SHA1(secret, username))`. An external coturn fleet configured with the same secret
//! accepts exactly what the embedded server accepts.

use std::time::Duration;

use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

use crate::{CoreError, UserId};

/// Credentials handed to one participant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnCredential {
    /// `<expiry-unix>:<userId>`.
    pub username: String,
    /// `base64(HMAC-SHA1(secret, username))`.
    pub credential: String,
    /// When the TURN server stops accepting them.
    pub expires_at: DateTime<Utc>,
}

/// A username the TURN server accepted, with the password it must check MESSAGE-INTEGRITY against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedUser {
    /// The user id part of the username.
    pub user_id: String,
    /// The expiry part of the username.
    pub expires_at: DateTime<Utc>,
    /// The password a client holding genuine credentials uses.
    pub password: String,
}

/// Why a TURN username is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TurnAuthError {
    /// Not `<expiry-unix>:<userId>`.
    #[error("username is not <expiry>:<user>")]
    Malformed,
    /// The expiry has passed (beyond the tolerated skew).
    #[error("credentials expired")]
    Expired,
}

fn password(secret: &[u8], username: &str) -> String {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac =
        <Hmac<Sha1> as KeyInit>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    mac.update(username.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

fn too_long() -> CoreError {
    CoreError::Invalid {
        field: "ttl",
        message: "too long".into(),
    }
}

/// The credentials of `user` that expire at `expires_at`.
fn credential_until(secret: &[u8], user: &UserId, expires_at: DateTime<Utc>) -> TurnCredential {
    let username = format!("{}:{}", expires_at.timestamp(), user);
    TurnCredential {
        credential: password(secret, &username),
        username,
        expires_at,
    }
}

/// Mints credentials for `user` valid from `now` for `ttl`.
pub fn mint(
    secret: &[u8],
    user: &UserId,
    now: DateTime<Utc>,
    ttl: Duration,
) -> Result<TurnCredential, CoreError> {
    let ttl = chrono::Duration::from_std(ttl).map_err(|_| too_long())?;
    Ok(credential_until(secret, user, now + ttl))
}

/// Mints credentials whose expiry is aligned to windows of `ttl / 2`, so every request within a
/// window gets the same credentials (cacheable, ETag-stable) and they stay valid for at least
/// `ttl / 2` and at most `ttl`.
pub fn mint_aligned(
    secret: &[u8],
    user: &UserId,
    now: DateTime<Utc>,
    ttl: Duration,
) -> Result<TurnCredential, CoreError> {
    let half = i64::try_from((ttl.as_secs() / 2).max(1)).unwrap_or(i64::MAX);
    let window_end = (now.timestamp().div_euclid(half) + 1).saturating_mul(half);
    let expires_at =
        DateTime::from_timestamp(window_end.saturating_add(half), 0).ok_or_else(too_long)?;
    Ok(credential_until(secret, user, expires_at))
}

/// Checks a username at time `now` (tolerating `leeway` of clock skew) and returns the password
/// to verify the request's MESSAGE-INTEGRITY with. A forged credential fails that check; an
/// expired or malformed username fails here.
pub fn verify(
    secret: &[u8],
    username: &str,
    now: DateTime<Utc>,
    leeway: Duration,
) -> Result<AcceptedUser, TurnAuthError> {
    let (expiry, user_id) = username.split_once(':').ok_or(TurnAuthError::Malformed)?;
    if user_id.is_empty() || !expiry.bytes().all(|b| b.is_ascii_digit()) || expiry.len() > 12 {
        return Err(TurnAuthError::Malformed);
    }
    let expiry: i64 = expiry.parse().map_err(|_| TurnAuthError::Malformed)?;
    let leeway = i64::try_from(leeway.as_secs()).unwrap_or(i64::MAX);
    if now.timestamp() > expiry.saturating_add(leeway) {
        return Err(TurnAuthError::Expired);
    }
    let expires_at = DateTime::from_timestamp(expiry, 0).ok_or(TurnAuthError::Malformed)?;
    Ok(AcceptedUser {
        user_id: user_id.to_owned(),
        expires_at,
        password: password(secret, username),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    const SECRET: &[u8] = b"probe-secret";

    #[test]
    fn matches_the_turn_rest_api_reference() {
        // Computed independently: python3 -c "import hmac,hashlib,base64;
        // print(base64.b64encode(hmac.new(b'probe-secret', b'1764072000:u1', hashlib.sha1).digest()).decode())"
        assert_eq!(
            password(SECRET, "1764072000:u1"),
            "WRRt2Z2not2sK8pnK6o/ut5zZi8="
        );
    }

    #[test]
    fn minted_credentials_verify_until_they_expire() {
        let now = at("2026-11-25T12:00:00Z");
        let user = UserId::parse("u1").unwrap();
        let cred = mint(SECRET, &user, now, Duration::from_secs(3600)).unwrap();
        assert_eq!(cred.username, format!("{}:u1", now.timestamp() + 3600));
        let accepted = verify(SECRET, &cred.username, now, Duration::ZERO).unwrap();
        assert_eq!(accepted.password, cred.credential);
        assert_eq!(accepted.user_id, "u1");
        let late = now + chrono::Duration::seconds(3601);
        assert_eq!(
            verify(SECRET, &cred.username, late, Duration::ZERO),
            Err(TurnAuthError::Expired)
        );
        assert!(
            verify(SECRET, &cred.username, late, Duration::from_secs(5)).is_ok(),
            "skew tolerated"
        );
    }

    #[test]
    fn another_secret_yields_another_password() {
        let now = at("2026-11-25T12:00:00Z");
        let cred = mint(
            SECRET,
            &UserId::parse("u1").unwrap(),
            now,
            Duration::from_secs(60),
        )
        .unwrap();
        let other = verify(b"other-secret", &cred.username, now, Duration::ZERO).unwrap();
        assert_ne!(other.password, cred.credential);
    }

    #[test]
    fn malformed_usernames_are_refused() {
        let now = at("2026-11-25T12:00:00Z");
        for bad in [
            "",
            "u1",
            ":u1",
            "123:",
            "12a:u1",
            "-5:u1",
            "99999999999999:u1",
        ] {
            assert_eq!(
                verify(SECRET, bad, now, Duration::ZERO),
                Err(TurnAuthError::Malformed),
                "{bad:?}"
            );
        }
        // A user id containing ':' is fine: only the first ':' separates the expiry.
        assert!(verify(SECRET, "1999999999:auth0|a:b", now, Duration::ZERO).is_ok());
    }

    #[test]
    fn aligned_credentials_are_stable_within_a_window() {
        let user = UserId::parse("u1").unwrap();
        let ttl = Duration::from_secs(3600);
        let a = mint_aligned(SECRET, &user, at("2026-11-25T12:00:01Z"), ttl).unwrap();
        let b = mint_aligned(SECRET, &user, at("2026-11-25T12:29:59Z"), ttl).unwrap();
        let c = mint_aligned(SECRET, &user, at("2026-11-25T12:30:00Z"), ttl).unwrap();
        assert_eq!(a, b);
        assert_ne!(b, c);
        for (cred, now) in [(&a, "2026-11-25T12:00:01Z"), (&b, "2026-11-25T12:29:59Z")] {
            let left = cred.expires_at - at(now);
            assert!(
                left >= chrono::Duration::minutes(30) && left <= chrono::Duration::minutes(60),
                "{left}"
            );
        }
    }
}
