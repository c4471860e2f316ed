use std::{fmt, str::FromStr, time::Duration};

use chrono::{DateTime, Utc};
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};

use crate::{
    AuthError, Claims, MIN_SECRET_BYTES, TokenRequest,
    claims::{Expect, Wire},
};

/// The one signature algorithm a deployment accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Algorithm {
    /// HMAC-SHA256 with a shared secret.
    #[serde(rename = "HS256")]
    Hs256,
    /// RSASSA-PKCS1-v1_5 SHA-256 with the platform's RSA public key.
    #[serde(rename = "RS256")]
    Rs256,
    /// Ed25519 with the platform's public key.
    #[serde(rename = "EdDSA")]
    EdDsa,
}

impl Algorithm {
    fn jwt(self) -> jsonwebtoken::Algorithm {
        match self {
            Self::Hs256 => jsonwebtoken::Algorithm::HS256,
            Self::Rs256 => jsonwebtoken::Algorithm::RS256,
            Self::EdDsa => jsonwebtoken::Algorithm::EdDSA,
        }
    }

    /// The name as JWT headers spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hs256 => "HS256",
            Self::Rs256 => "RS256",
            Self::EdDsa => "EdDSA",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = AuthError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "HS256" => Ok(Self::Hs256),
            "RS256" => Ok(Self::Rs256),
            "EdDSA" => Ok(Self::EdDsa),
            _ => Err(AuthError::Key(format!(
                "unknown algorithm {s:?}; expected HS256, RS256 or EdDSA"
            ))),
        }
    }
}

/// Key material for verification.
#[derive(Clone)]
pub enum VerifyKey {
    /// The HS256 shared secret.
    Secret(Vec<u8>),
    /// A PEM public key (RS256: RSA; EdDSA: Ed25519).
    PublicPem(Vec<u8>),
}

impl fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Secret(_) => f.write_str("Secret(********)"),
            Self::PublicPem(_) => f.write_str("PublicPem(..)"),
        }
    }
}

/// How tokens are verified.
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// The only algorithm accepted.
    pub algorithm: Algorithm,
    /// The key for that algorithm.
    pub key: VerifyKey,
    /// Required `iss`, when set.
    pub issuer: Option<String>,
    /// Required `aud` member, when set.
    pub audience: Option<String>,
    /// Tolerated clock skew for `exp` and `nbf`.
    pub leeway: Duration,
}

/// Verifies bearer tokens.
pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
    issuer: Option<String>,
    audience: Option<String>,
    leeway: i64,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("algorithms", &self.validation.algorithms)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway", &self.leeway)
            .finish_non_exhaustive()
    }
}

fn key_error(e: jsonwebtoken::errors::Error) -> AuthError {
    AuthError::Key(e.to_string())
}

impl Verifier {
    /// Builds a verifier, refusing keys that do not fit the algorithm.
    pub fn new(config: VerifierConfig) -> Result<Self, AuthError> {
        let key = match (config.algorithm, &config.key) {
            (Algorithm::Hs256, VerifyKey::Secret(secret)) => {
                if secret.len() < MIN_SECRET_BYTES {
                    return Err(AuthError::Key(format!(
                        "the HS256 secret must be at least {MIN_SECRET_BYTES} bytes"
                    )));
                }
                DecodingKey::from_secret(secret)
            }
            (Algorithm::Rs256, VerifyKey::PublicPem(pem)) => {
                DecodingKey::from_rsa_pem(pem).map_err(key_error)?
            }
            (Algorithm::EdDsa, VerifyKey::PublicPem(pem)) => {
                DecodingKey::from_ed_pem(pem).map_err(key_error)?
            }
            (Algorithm::Hs256, VerifyKey::PublicPem(_)) => {
                return Err(AuthError::Key(
                    "HS256 needs a shared secret, not a public key".into(),
                ));
            }
            (alg, VerifyKey::Secret(_)) => {
                return Err(AuthError::Key(format!(
                    "{alg} needs a PEM public key, not a secret"
                )));
            }
        };
        // Signature and algorithm only: time, issuer and audience are checked in `Wire::check`
        // against the caller's `now`.
        let mut validation = Validation::new(config.algorithm.jwt());
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        Ok(Self {
            key,
            validation,
            issuer: config.issuer,
            audience: config.audience,
            leeway: i64::try_from(config.leeway.as_secs()).unwrap_or(i64::MAX),
        })
    }

    /// The tolerated clock skew: a token is valid until `exp` plus this (whole seconds).
    pub fn leeway(&self) -> Duration {
        Duration::from_secs(u64::try_from(self.leeway).unwrap_or(u64::MAX))
    }

    /// Verifies `token` at time `now`.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Claims, AuthError> {
        let data = jsonwebtoken::decode::<Wire>(token.trim(), &self.key, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::InvalidSignature => AuthError::BadSignature,
                _ => AuthError::Malformed,
            })?;
        data.claims.check(&Expect {
            now,
            leeway: self.leeway,
            issuer: self.issuer.as_deref(),
            audience: self.audience.as_deref(),
        })
    }
}

/// Signs tokens (development, tests, load tests).
pub struct Minter {
    key: EncodingKey,
    algorithm: Algorithm,
    issuer: Option<String>,
    audience: Option<String>,
}

impl fmt::Debug for Minter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Minter")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl Minter {
    /// An HS256 minter.
    pub fn hs256(secret: &[u8]) -> Result<Self, AuthError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(AuthError::Key(format!(
                "the HS256 secret must be at least {MIN_SECRET_BYTES} bytes"
            )));
        }
        Ok(Self {
            key: EncodingKey::from_secret(secret),
            algorithm: Algorithm::Hs256,
            issuer: None,
            audience: None,
        })
    }

    /// An RS256 or EdDSA minter from a PEM private key.
    pub fn from_private_pem(algorithm: Algorithm, pem: &[u8]) -> Result<Self, AuthError> {
        let key = match algorithm {
            Algorithm::Rs256 => EncodingKey::from_rsa_pem(pem).map_err(key_error)?,
            Algorithm::EdDsa => EncodingKey::from_ed_pem(pem).map_err(key_error)?,
            Algorithm::Hs256 => {
                return Err(AuthError::Key(
                    "HS256 signs with a secret, not a PEM key".into(),
                ));
            }
        };
        Ok(Self {
            key,
            algorithm,
            issuer: None,
            audience: None,
        })
    }

    /// Adds `iss` and `aud` to every token, to satisfy a verifier that checks them.
    pub fn with_issuer_audience(
        mut self,
        issuer: Option<String>,
        audience: Option<String>,
    ) -> Self {
        self.issuer = issuer;
        self.audience = audience;
        self
    }

    /// Signs a token valid from `now` for `request.ttl`.
    pub fn mint(&self, request: &TokenRequest, now: DateTime<Utc>) -> Result<String, AuthError> {
        let iat = now.timestamp();
        let ttl = i64::try_from(request.ttl.as_secs()).unwrap_or(i64::MAX);
        let json = |v: &str| Some(serde_json::Value::String(v.to_owned()));
        let wire = Wire {
            sub: json(request.user_id.as_str()),
            role: json(request.role.as_str()),
            name: json(&request.name),
            exp: Some(iat.saturating_add(ttl).into()),
            nbf: Some(iat.into()),
            iat: Some(iat.into()),
            iss: self.issuer.as_deref().and_then(json),
            aud: self.audience.as_deref().and_then(json),
        };
        jsonwebtoken::encode(&Header::new(self.algorithm.jwt()), &wire, &self.key)
            .map_err(key_error)
    }
}
