//! Service-account credentials and the OAuth2 JWT-bearer grant (RFC 7523) that turns them into
//! FCM access tokens, cached and refreshed before they expire.

use std::{
    path::Path,
    sync::{Arc, RwLock},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

use crate::PushError;

/// The OAuth2 scope FCM's send endpoint needs.
pub const FCM_SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// `grant_type` of the JWT-bearer grant.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Google's token endpoint, when the key file names none.
pub const GOOGLE_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
/// Lifetime asked for in the assertion (Google's maximum).
const ASSERTION_TTL: u64 = 3600;

/// A Google service-account key (the JSON file Firebase hands out).
#[derive(Clone, Deserialize)]
pub struct ServiceAccount {
    /// Must be `service_account`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The Firebase project.
    #[serde(default)]
    pub project_id: Option<String>,
    /// Id of the key, sent as the assertion's `kid`.
    #[serde(default)]
    pub private_key_id: Option<String>,
    /// RSA private key, PEM.
    pub private_key: String,
    /// The account, the assertion's issuer.
    pub client_email: String,
    /// The token endpoint.
    #[serde(default)]
    pub token_uri: Option<String>,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("project_id", &self.project_id)
            .field("client_email", &self.client_email)
            .field("private_key", &"********")
            .finish_non_exhaustive()
    }
}

impl ServiceAccount {
    /// Reads a key from its JSON text.
    pub fn from_json(text: &str) -> Result<Self, PushError> {
        let account: Self = serde_json::from_str(text).map_err(|e| {
            // serde's message names the field, never the value.
            PushError::Credentials(format!("not a service-account key: {e}"))
        })?;
        if account.kind != "service_account" {
            return Err(PushError::Credentials(format!(
                "type is {:?}, expected \"service_account\"",
                account.kind
            )));
        }
        EncodingKey::from_rsa_pem(account.private_key.as_bytes())
            .map_err(|e| PushError::Credentials(format!("private_key: {e}")))?;
        Ok(account)
    }

    /// Reads a key file.
    pub fn from_file(path: &Path) -> Result<Self, PushError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| PushError::Credentials(format!("reading {}: {e}", path.display())))?;
        Self::from_json(&text)
    }
}

/// The claims of the grant's assertion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssertionClaims {
    /// The service account.
    pub iss: String,
    /// What the token is for.
    pub scope: String,
    /// The token endpoint.
    pub aud: String,
    /// Issued (Unix seconds).
    pub iat: u64,
    /// Expires (Unix seconds).
    pub exp: u64,
}

/// The signed assertion for `account` at `unix_now`, addressed to `token_url` (sans-IO).
pub fn assertion(
    account: &ServiceAccount,
    key: &EncodingKey,
    token_url: &str,
    unix_now: u64,
) -> Result<String, PushError> {
    let mut header = Header::new(Algorithm::RS256);
    header.kid.clone_from(&account.private_key_id);
    let claims = AssertionClaims {
        iss: account.client_email.clone(),
        scope: FCM_SCOPE.into(),
        aud: token_url.into(),
        iat: unix_now,
        exp: unix_now + ASSERTION_TTL,
    };
    jsonwebtoken::encode(&header, &claims, key)
        .map_err(|e| PushError::Credentials(format!("signing the assertion: {e}")))
}

/// When to replace a token that lives `lifetime` from when it was obtained: five minutes before
/// it expires, or halfway for short-lived tokens (sans-IO).
pub fn refresh_after(lifetime: Duration) -> Duration {
    lifetime.saturating_sub(Duration::from_secs(300).min(lifetime / 2))
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Clone)]
struct Cached {
    value: Arc<str>,
    refresh_at: Instant,
    expires_at: Instant,
}

/// Access tokens for FCM: fetched with the JWT-bearer grant, shared by every request, renewed
/// by one caller shortly before they expire.
pub struct TokenSource {
    account: ServiceAccount,
    key: EncodingKey,
    token_url: String,
    http: reqwest::Client,
    cached: RwLock<Option<Cached>>,
    renewing: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("account", &self.account)
            .field("token_url", &self.token_url)
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    /// A token source for `account`, asking `token_url` (else the key's `token_uri`, else
    /// Google's).
    pub fn new(
        account: ServiceAccount,
        token_url: Option<String>,
        timeout: Duration,
    ) -> Result<Self, PushError> {
        let key = EncodingKey::from_rsa_pem(account.private_key.as_bytes())
            .map_err(|e| PushError::Credentials(format!("private_key: {e}")))?;
        let token_url = token_url
            .or_else(|| account.token_uri.clone())
            .unwrap_or_else(|| GOOGLE_TOKEN_URL.into());
        let http = reqwest::Client::builder().timeout(timeout).build()?;
        Ok(Self {
            account,
            key,
            token_url,
            http,
            cached: RwLock::new(None),
            renewing: tokio::sync::Mutex::new(()),
        })
    }

    /// The service account.
    pub fn account(&self) -> &ServiceAccount {
        &self.account
    }

    fn current(&self, now: Instant, fresh: bool) -> Option<Arc<str>> {
        let cached = self.cached.read().unwrap_or_else(|p| p.into_inner());
        cached
            .as_ref()
            .filter(|c| now < if fresh { c.refresh_at } else { c.expires_at })
            .map(|c| Arc::clone(&c.value))
    }

    /// A valid access token: the cached one, or a new one.
    pub async fn token(&self) -> Result<Arc<str>, PushError> {
        if let Some(token) = self.current(Instant::now(), true) {
            return Ok(token);
        }
        let _one = self.renewing.lock().await;
        if let Some(token) = self.current(Instant::now(), true) {
            return Ok(token);
        }
        match self.fetch().await {
            Ok(token) => Ok(token),
            Err(e) => match self.current(Instant::now(), false) {
                // Still valid for a while: keep using it, renew on the next call.
                Some(token) => {
                    tracing::warn!(error = %e, "could not renew the FCM access token; using the current one");
                    Ok(token)
                }
                None => Err(e),
            },
        }
    }

    /// Forgets `stale` (FCM refused it), so the next [`TokenSource::token`] fetches anew.
    pub fn invalidate(&self, stale: &str) {
        let mut cached = self.cached.write().unwrap_or_else(|p| p.into_inner());
        if cached.as_ref().is_some_and(|c| &*c.value == stale) {
            *cached = None;
        }
    }

    async fn fetch(&self) -> Result<Arc<str>, PushError> {
        let unix_now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let assertion = assertion(&self.account, &self.key, &self.token_url, unix_now)?;
        // The assertion is base64url with dots: nothing to escape.
        let body = format!(
            "grant_type={}&assertion={assertion}",
            JWT_BEARER.replace(':', "%3A")
        );
        let obtained = Instant::now();
        let response = self
            .http
            .post(&self.token_url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body)
            .send()
            .await?;
        let status = response.status();
        let bytes = response.bytes().await?;
        if !status.is_success() {
            let detail = String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned();
            return Err(PushError::Token(format!("{status}: {detail}")));
        }
        let parsed: TokenResponse = serde_json::from_slice(&bytes)
            .map_err(|e| PushError::Token(format!("unexpected answer: {e}")))?;
        let lifetime = Duration::from_secs(parsed.expires_in.unwrap_or(3600).max(1));
        let value: Arc<str> = parsed.access_token.into();
        *self.cached.write().unwrap_or_else(|p| p.into_inner()) = Some(Cached {
            value: Arc::clone(&value),
            refresh_at: obtained + refresh_after(lifetime),
            expires_at: obtained + lifetime,
        });
        tracing::debug!(lifetime_s = lifetime.as_secs(), "FCM access token obtained");
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_renewed_before_they_expire() {
        assert_eq!(
            refresh_after(Duration::from_secs(3600)),
            Duration::from_secs(3300)
        );
        assert_eq!(
            refresh_after(Duration::from_secs(4)),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn a_key_that_is_not_a_service_account_is_refused_without_echoing_it() {
        let e = ServiceAccount::from_json(
            r#"{"type":"authorized_user","private_key":"SECRET-PEM","client_email":"a@b"}"#,
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(e.contains("service_account"), "{e}");
        assert!(!e.contains("SECRET-PEM"), "{e}");
        let e = ServiceAccount::from_json(
            r#"{"type":"service_account","private_key":"SECRET-PEM","client_email":"a@b"}"#,
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(e.contains("private_key"), "{e}");
        assert!(!e.contains("SECRET-PEM"), "{e}");
    }
}
