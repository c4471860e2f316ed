use std::time::Duration;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use wakili_core::{Role, UserId};

use crate::*;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

fn now() -> DateTime<Utc> {
    "2026-11-25T12:00:00Z".parse().unwrap()
}

fn request(ttl: u64) -> TokenRequest {
    TokenRequest {
        user_id: UserId::parse("u1").unwrap(),
        role: Role::Lawyer,
        name: "Amina W.".into(),
        ttl: Duration::from_secs(ttl),
    }
}

fn hs_verifier(leeway: u64) -> Verifier {
    Verifier::new(VerifierConfig {
        algorithm: Algorithm::Hs256,
        key: VerifyKey::Secret(SECRET.to_vec()),
        issuer: None,
        audience: None,
        leeway: Duration::from_secs(leeway),
    })
    .unwrap()
}

fn raw_hs256(payload: serde_json::Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &payload,
        &jsonwebtoken::EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

#[test]
fn hs256_round_trip() {
    let token = Minter::hs256(SECRET)
        .unwrap()
        .mint(&request(3600), now())
        .unwrap();
    let claims = hs_verifier(0).verify(&token, now()).unwrap();
    assert_eq!(claims.user_id.as_str(), "u1");
    assert_eq!(claims.role, Role::Lawyer);
    assert_eq!(claims.name, "Amina W.");
    assert_eq!(claims.expires_at.timestamp(), now().timestamp() + 3600);
}

#[test]
fn expiry_honours_the_leeway() {
    let token = Minter::hs256(SECRET)
        .unwrap()
        .mint(&request(60), now())
        .unwrap();
    let later = now() + chrono::Duration::seconds(90);
    assert_eq!(
        hs_verifier(0).verify(&token, later),
        Err(AuthError::Expired)
    );
    assert!(
        hs_verifier(60).verify(&token, later).is_ok(),
        "within 60 s of skew"
    );
}

#[test]
fn not_before_honours_the_leeway() {
    let token = Minter::hs256(SECRET)
        .unwrap()
        .mint(&request(600), now())
        .unwrap();
    let earlier = now() - chrono::Duration::seconds(30);
    assert_eq!(
        hs_verifier(0).verify(&token, earlier),
        Err(AuthError::NotYetValid)
    );
    assert!(hs_verifier(30).verify(&token, earlier).is_ok());
}

#[test]
fn a_token_signed_with_another_secret_is_refused() {
    let other = Minter::hs256(b"another-secret-another-secret-!!").unwrap();
    let token = other.mint(&request(600), now()).unwrap();
    assert_eq!(
        hs_verifier(0).verify(&token, now()),
        Err(AuthError::BadSignature)
    );
}

#[test]
fn exp_is_required_and_claims_are_typed() {
    let exp = now().timestamp() + 60;
    let v = hs_verifier(0);
    let no_exp = raw_hs256(serde_json::json!({"sub": "u1", "role": "client"}));
    assert_eq!(
        v.verify(&no_exp, now()),
        Err(AuthError::MissingClaim("exp"))
    );
    let no_role = raw_hs256(serde_json::json!({"sub": "u1", "exp": exp}));
    assert_eq!(
        v.verify(&no_role, now()),
        Err(AuthError::MissingClaim("role"))
    );
    let bad_role = raw_hs256(serde_json::json!({"sub": "u1", "role": "root", "exp": exp}));
    assert!(matches!(
        v.verify(&bad_role, now()),
        Err(AuthError::InvalidClaim { claim: "role", .. })
    ));
    let bad_exp = raw_hs256(serde_json::json!({"sub": "u1", "role": "client", "exp": "soon"}));
    assert!(matches!(
        v.verify(&bad_exp, now()),
        Err(AuthError::InvalidClaim { claim: "exp", .. })
    ));
    let nameless = raw_hs256(serde_json::json!({"sub": "u1", "role": "client", "exp": exp}));
    assert_eq!(v.verify(&nameless, now()).unwrap().name, "u1");
}

#[test]
fn alg_none_and_garbage_are_malformed() {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let exp = now().timestamp() + 60;
    let payload = URL_SAFE_NO_PAD.encode(format!(r#"{{"sub":"u1","role":"admin","exp":{exp}}}"#));
    let v = hs_verifier(0);
    assert_eq!(
        v.verify(&format!("{header}.{payload}."), now()),
        Err(AuthError::Malformed)
    );
    assert_eq!(v.verify("not-a-token", now()), Err(AuthError::Malformed));
    assert_eq!(v.verify("", now()), Err(AuthError::Malformed));
}

fn rsa_keys() -> (Vec<u8>, Vec<u8>) {
    use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
    let private = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap();
    let public = private.to_public_key();
    (
        private
            .to_pkcs8_pem(LineEnding::LF)
            .unwrap()
            .as_bytes()
            .to_vec(),
        public
            .to_public_key_pem(LineEnding::LF)
            .unwrap()
            .into_bytes(),
    )
}

fn ed_keys() -> (Vec<u8>, Vec<u8>) {
    use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey, spki::der::pem::LineEnding};
    let signing = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
    (
        signing
            .to_pkcs8_pem(LineEnding::LF)
            .unwrap()
            .as_bytes()
            .to_vec(),
        signing
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap()
            .into_bytes(),
    )
}

fn pem_verifier(algorithm: Algorithm, public: &[u8]) -> Verifier {
    Verifier::new(VerifierConfig {
        algorithm,
        key: VerifyKey::PublicPem(public.to_vec()),
        issuer: Some("https://platform.example".into()),
        audience: Some("wakili".into()),
        leeway: Duration::ZERO,
    })
    .unwrap()
}

#[test]
fn rs256_round_trip_and_no_algorithm_confusion() {
    let (private, public) = rsa_keys();
    let verifier = pem_verifier(Algorithm::Rs256, &public);
    let minter = Minter::from_private_pem(Algorithm::Rs256, &private)
        .unwrap()
        .with_issuer_audience(
            Some("https://platform.example".into()),
            Some("wakili".into()),
        );
    let token = minter.mint(&request(600), now()).unwrap();
    assert_eq!(verifier.verify(&token, now()).unwrap().role, Role::Lawyer);

    // The classic attack: HS256 keyed with the RSA public key the attacker can read.
    let forged = Minter::hs256(&public)
        .unwrap()
        .mint(&request(600), now())
        .unwrap();
    assert_eq!(verifier.verify(&forged, now()), Err(AuthError::Malformed));
}

#[test]
fn eddsa_round_trip_with_issuer_and_audience() {
    let (private, public) = ed_keys();
    let verifier = pem_verifier(Algorithm::EdDsa, &public);
    let minter = Minter::from_private_pem(Algorithm::EdDsa, &private).unwrap();
    let bare = minter.mint(&request(600), now()).unwrap();
    assert_eq!(verifier.verify(&bare, now()), Err(AuthError::WrongIssuer));
    let wrong_aud = Minter::from_private_pem(Algorithm::EdDsa, &private)
        .unwrap()
        .with_issuer_audience(
            Some("https://platform.example".into()),
            Some("other".into()),
        )
        .mint(&request(600), now())
        .unwrap();
    assert_eq!(
        verifier.verify(&wrong_aud, now()),
        Err(AuthError::WrongAudience)
    );
    let good = minter
        .with_issuer_audience(
            Some("https://platform.example".into()),
            Some("wakili".into()),
        )
        .mint(&request(600), now())
        .unwrap();
    assert_eq!(
        verifier.verify(&good, now()).unwrap().user_id.as_str(),
        "u1"
    );
}

#[test]
fn keys_must_fit_the_algorithm() {
    assert!(Minter::hs256(b"short").is_err());
    let short = VerifierConfig {
        algorithm: Algorithm::Hs256,
        key: VerifyKey::Secret(b"short".to_vec()),
        issuer: None,
        audience: None,
        leeway: Duration::ZERO,
    };
    assert!(Verifier::new(short.clone()).is_err());
    let mismatched = VerifierConfig {
        algorithm: Algorithm::Rs256,
        key: VerifyKey::Secret(SECRET.to_vec()),
        ..short
    };
    assert!(Verifier::new(mismatched).is_err());
    assert!("none".parse::<Algorithm>().is_err());
    assert_eq!("EdDSA".parse::<Algorithm>(), Ok(Algorithm::EdDsa));
}
