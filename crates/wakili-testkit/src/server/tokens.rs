//! Access tokens the test servers accept: HS256 with [`SECRET`], as the platform would issue.

use std::time::Duration;

use chrono::{DateTime, Utc};
use wakili_auth::{Minter, TokenRequest};
use wakili_core::{Role, UserId};

/// The HS256 secret every test server verifies tokens with (unless a test changes it).
pub const SECRET: &str = "test-secret-test-secret-test-secret-0123456789";

/// A token for `sub` (named "`sub` name") with `role`, issued at `now` and valid for `ttl`:
/// for a server whose clock is not the real one, or a token that is already expired.
///
/// # Panics
/// When `sub` is not a valid user id.
#[must_use]
pub fn token_at(sub: &str, role: Role, now: DateTime<Utc>, ttl: Duration) -> String {
    Minter::hs256(SECRET.as_bytes())
        .expect("SECRET is long enough for HS256")
        .mint(
            &TokenRequest {
                user_id: UserId::parse(sub).expect("a valid user id"),
                role,
                name: format!("{sub} name"),
                ttl,
            },
            now,
        )
        .expect("minting an HS256 token")
}

/// A token for `sub` with `role`, issued now and valid for an hour.
///
/// # Panics
/// When `sub` is not a valid user id.
#[must_use]
pub fn token(sub: &str, role: Role) -> String {
    token_at(sub, role, Utc::now(), Duration::from_secs(3600))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wakili_auth::{Algorithm, Verifier, VerifierConfig, VerifyKey};

    fn verifier() -> Verifier {
        Verifier::new(VerifierConfig {
            algorithm: Algorithm::Hs256,
            key: VerifyKey::Secret(SECRET.as_bytes().to_vec()),
            issuer: None,
            audience: None,
            leeway: Duration::ZERO,
        })
        .expect("verifier")
    }

    #[test]
    fn a_token_names_its_user_and_role_and_lasts_its_ttl() {
        let now = Utc::now();
        let claims = verifier()
            .verify(&token("lawyer-1", Role::Lawyer), now)
            .expect("valid");
        assert_eq!(claims.user_id.as_str(), "lawyer-1");
        assert_eq!(claims.role, Role::Lawyer);
        assert_eq!(claims.name, "lawyer-1 name");
        let issued = now - chrono::Duration::hours(2);
        let expired = token_at("client-1", Role::Client, issued, Duration::from_secs(3600));
        assert!(verifier().verify(&expired, now).is_err());
        assert!(verifier().verify(&expired, issued).is_ok());
    }
}
