//! The signed form of a manifest: a JWS compact serialization (RFC 7515) with `alg` `EdDSA`
//! (RFC 8037), made and decoded through `jsonwebtoken`, and the Ed25519 keys it is signed with.

use std::fmt;

use base64::{
    Engine,
    engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD},
};
use ed25519_dalek::{
    Signature, SigningKey, VerifyingKey,
    pkcs8::{
        DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey,
        spki::der::pem::LineEnding,
    },
};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::{JWS_TYPE, MANIFEST_VERSION, Manifest, malformed};
use crate::error::{ConfigError, ManifestError, Result, StorageError};

/// The public id of an Ed25519 key: the first 16 hex digits of the SHA-256 of its 32 bytes.
pub fn key_id_of(key: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..8])
}

/// The service's Ed25519 manifest signing key.
pub struct ManifestSigner {
    key: SigningKey,
}

impl ManifestSigner {
    /// A fresh random signing key (from the OS RNG).
    pub fn generate() -> Self {
        Self {
            key: SigningKey::generate(&mut rand_core::OsRng),
        }
    }

    /// Reads a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`) Ed25519 key.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self> {
        SigningKey::from_pkcs8_pem(pem.trim())
            .map(|key| Self { key })
            .map_err(|e| StorageError::Config(ConfigError::InvalidSigningKey(e.to_string())))
    }

    /// Reads the key file text: a PKCS#8 PEM, or the base64 of a 32-byte Ed25519 seed (what
    /// the server generates on first start).
    pub fn from_key_text(text: &str) -> Result<Self> {
        let text = text.trim();
        if text.starts_with("-----BEGIN") {
            return Self::from_pkcs8_pem(text);
        }
        let seed: [u8; 32] = STANDARD
            .decode(text)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| {
                StorageError::Config(ConfigError::InvalidSigningKey(
                    "expected a PKCS#8 PEM or the base64 of a 32-byte seed".into(),
                ))
            })?;
        Ok(Self {
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// The key as PKCS#8 PEM, for the key file.
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>> {
        self.key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| StorageError::Config(ConfigError::InvalidSigningKey(e.to_string())))
    }

    /// [`key_id_of`] the public key; written as the JWS `kid`.
    pub fn key_id(&self) -> String {
        key_id_of(&self.key.verifying_key())
    }

    /// The public key, for verification.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// The public key as SPKI PEM (`-----BEGIN PUBLIC KEY-----`), to publish.
    pub fn public_key_pem(&self) -> Result<String> {
        self.key
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| StorageError::Manifest(ManifestError::InvalidPublicKey(e.to_string())))
    }

    /// The public key's raw 32 bytes in standard base64, to publish.
    pub fn public_key_base64(&self) -> String {
        STANDARD.encode(self.key.verifying_key().as_bytes())
    }

    /// Signs `manifest` as a JWS compact serialization through `jsonwebtoken`: protected
    /// header `alg` `EdDSA`, `typ` `wakili-manifest+json` and `kid` [`Self::key_id`], payload
    /// the manifest's JSON, both base64url without padding, Ed25519 over `header.payload`.
    pub fn sign(&self, manifest: &Manifest) -> Result<String> {
        // jsonwebtoken takes Ed25519 keys as PKCS#8 only (it has no raw-seed form); the DER is
        // made per signature so no second copy of the key outlives the call.
        let der = self
            .key
            .to_pkcs8_der()
            .map_err(|e| ConfigError::InvalidSigningKey(e.to_string()))?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some(JWS_TYPE.to_owned());
        header.kid = Some(self.key_id());
        jsonwebtoken::encode(&header, manifest, &EncodingKey::from_ed_der(der.as_bytes())).map_err(
            |e| match e.kind() {
                ErrorKind::InvalidEddsaKey | ErrorKind::InvalidKeyFormat => {
                    StorageError::Config(ConfigError::InvalidSigningKey(e.to_string()))
                }
                _ => malformed(e.to_string()),
            },
        )
    }
}

impl fmt::Debug for ManifestSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManifestSigner")
            .field("key_id", &self.key_id())
            .finish_non_exhaustive()
    }
}

/// Checks a signed manifest against `key` and returns the manifest.
///
/// The Ed25519 signature is checked first (strictly: no malleable signatures, no weak keys),
/// over the exact text received; then `jsonwebtoken` decodes it with the algorithm pinned to
/// `EdDSA` and no claims required (a manifest has no `exp`), the header must say `typ`
/// `wakili-manifest+json` and carry no `crit`, and the payload must be a version 1 manifest.
/// The `kid` is not trusted for anything: the caller chose the key.
pub fn verify_manifest(jws: &str, key: &VerifyingKey) -> Result<Manifest> {
    let jws = jws.trim();
    let mut parts = jws.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("not a JWS compact serialization"));
    };
    // Before jsonwebtoken: it parses the header before checking the signature, and its Ed25519
    // check is the lenient one (it accepts small-order keys and signature points).
    let signed = &jws[..header_b64.len() + 1 + payload_b64.len()];
    let signature: [u8; 64] = URL_SAFE_NO_PAD
        .decode(signature_b64)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or(StorageError::Manifest(ManifestError::BadSignature))?;
    key.verify_strict(signed.as_bytes(), &Signature::from_bytes(&signature))
        .map_err(|_| ManifestError::BadSignature)?;

    let decoded = jsonwebtoken::decode::<Manifest>(
        jws,
        &DecodingKey::from_ed_der(key.as_bytes()),
        &manifest_validation(),
    )
    .map_err(|e| match e.kind() {
        ErrorKind::InvalidSignature => StorageError::Manifest(ManifestError::BadSignature),
        ErrorKind::InvalidAlgorithm => malformed("unsupported alg"),
        _ => malformed(e.to_string()),
    })?;
    let header = decoded.header;
    if header.typ.as_deref() != Some(JWS_TYPE) {
        return Err(malformed(format!("unexpected typ {:?}", header.typ)));
    }
    if header.crit.is_some() {
        return Err(malformed("critical header parameters are not supported"));
    }
    let manifest = decoded.claims;
    if manifest.version != MANIFEST_VERSION {
        return Err(malformed(format!(
            "unsupported version {}",
            manifest.version
        )));
    }
    Ok(manifest)
}

/// What `jsonwebtoken` checks of a manifest: `alg` `EdDSA` only; none of the JWT claims (a
/// manifest is evidence with no expiry, audience or issuer).
fn manifest_validation() -> Validation {
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation
}

/// Reads an Ed25519 public key from SPKI PEM (`-----BEGIN PUBLIC KEY-----`) or from the base64
/// (standard or URL-safe, padded or not) of its 32 raw bytes.
pub fn parse_verifying_key(text: &str) -> Result<VerifyingKey> {
    let text = text.trim();
    if text.starts_with("-----BEGIN") {
        return VerifyingKey::from_public_key_pem(text)
            .map_err(|e| StorageError::Manifest(ManifestError::InvalidPublicKey(e.to_string())));
    }
    let bytes = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
        .ok_or_else(|| {
            StorageError::Manifest(ManifestError::InvalidPublicKey(
                "neither PEM nor base64".into(),
            ))
        })?;
    let bytes: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
        StorageError::Manifest(ManifestError::InvalidPublicKey(format!(
            "{} bytes, expected 32",
            b.len()
        )))
    })?;
    VerifyingKey::from_bytes(&bytes)
        .map_err(|e| StorageError::Manifest(ManifestError::InvalidPublicKey(e.to_string())))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use ed25519_dalek::Signer;

    use super::*;
    use crate::manifest::tests::{draft, entry, sha};

    #[test]
    fn signed_manifests_verify_and_round_trip() {
        let signer = ManifestSigner::generate();
        let m = Manifest::build(draft(), vec![entry(0, b"a"), entry(2, b"c")], 3, [9; 32]).unwrap();
        let jws = signer.sign(&m).unwrap();
        assert_eq!(jws.split('.').count(), 3);
        assert!(!jws.contains('='));
        assert_eq!(verify_manifest(&jws, &signer.verifying_key()).unwrap(), m);

        let header: serde_json::Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(jws.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            header,
            serde_json::json!({"alg": "EdDSA", "kid": signer.key_id(), "typ": "wakili-manifest+json"})
        );
    }

    /// Changing any one character of `jws` (but the dots) makes it fail with `BadSignature`.
    fn every_changed_character_breaks(jws: &str, key: &VerifyingKey) {
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        for i in 0..jws.len() {
            if jws.as_bytes()[i] == b'.' {
                continue;
            }
            let mut bad = jws.as_bytes().to_vec();
            let at = alphabet.iter().position(|&c| c == bad[i]).unwrap();
            bad[i] = alphabet[(at + 1) % alphabet.len()];
            let bad = String::from_utf8(bad).unwrap();
            assert!(
                matches!(
                    verify_manifest(&bad, key),
                    Err(StorageError::Manifest(ManifestError::BadSignature))
                ),
                "char {i}"
            );
        }
    }

    #[test]
    fn any_change_to_a_signed_manifest_fails() {
        let signer = ManifestSigner::generate();
        let key = signer.verifying_key();
        let jws = signer
            .sign(&Manifest::build(draft(), vec![entry(0, b"a")], 1, [1; 32]).unwrap())
            .unwrap();
        every_changed_character_breaks(&jws, &key);
        assert!(matches!(
            verify_manifest(&jws, &ManifestSigner::generate().verifying_key()),
            Err(StorageError::Manifest(ManifestError::BadSignature))
        ));
        assert!(matches!(
            verify_manifest("a.b", &key),
            Err(StorageError::Manifest(ManifestError::MalformedManifest(_)))
        ));
        assert!(matches!(
            verify_manifest(&format!("{jws}.x"), &key),
            Err(StorageError::Manifest(ManifestError::MalformedManifest(_)))
        ));
    }

    #[test]
    fn validly_signed_but_foreign_headers_are_refused() {
        let signer = ManifestSigner::generate();
        let payload = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&Manifest::build(draft(), vec![], 0, [0; 32]).unwrap()).unwrap(),
        );
        for header in [
            r#"{"alg":"none","typ":"wakili-manifest+json"}"#,
            r#"{"alg":"EdDSA","typ":"JWT"}"#,
            r#"{"alg":"EdDSA"}"#,
            r#"{"alg":"EdDSA","typ":"wakili-manifest+json","crit":["exp"]}"#,
        ] {
            let signed = format!("{}.{payload}", URL_SAFE_NO_PAD.encode(header));
            let sig = URL_SAFE_NO_PAD.encode(signer.key.sign(signed.as_bytes()).to_bytes());
            assert!(
                matches!(
                    verify_manifest(&format!("{signed}.{sig}"), &signer.verifying_key()),
                    Err(StorageError::Manifest(ManifestError::MalformedManifest(_)))
                ),
                "{header}"
            );
        }
    }

    #[test]
    fn keys_round_trip_through_their_text_forms() {
        let signer = ManifestSigner::generate();
        let pem = signer.to_pkcs8_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let again = ManifestSigner::from_pkcs8_pem(&pem).unwrap();
        assert_eq!(again.key_id(), signer.key_id());
        assert_eq!(signer.key_id().len(), 16);
        assert!(!format!("{signer:?}").contains(pem.as_str()));

        let public_pem = signer.public_key_pem().unwrap();
        assert!(public_pem.starts_with("-----BEGIN PUBLIC KEY-----"));
        assert_eq!(
            parse_verifying_key(&public_pem).unwrap(),
            signer.verifying_key()
        );
        let b64 = signer.public_key_base64();
        assert_eq!(
            parse_verifying_key(&format!(" {b64}\n")).unwrap(),
            signer.verifying_key()
        );
        let url = URL_SAFE_NO_PAD.encode(signer.verifying_key().as_bytes());
        assert_eq!(parse_verifying_key(&url).unwrap(), signer.verifying_key());
        assert!(parse_verifying_key("AAAA").is_err());
        assert!(parse_verifying_key("not a key!").is_err());
        assert!(
            ManifestSigner::from_pkcs8_pem(
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"
            )
            .is_err()
        );
    }

    /// A manifest signed by the hand-rolled JWS code this crate used before it signed through
    /// `jsonwebtoken` (commit 6ff0f18), with the key in `testdata/manifest-signing-key.pem`:
    /// manifests already stored keep verifying, and a changed byte still breaks them.
    #[test]
    fn manifests_signed_by_the_hand_rolled_signer_still_verify() {
        let signer =
            ManifestSigner::from_pkcs8_pem(include_str!("../../testdata/manifest-signing-key.pem"))
                .unwrap();
        let key = signer.verifying_key();
        let jws = include_str!("../../testdata/manifest-hand-rolled.jws").trim();
        // Signed before manifests carried the audit chain's head.
        let before_the_audit_chain = crate::manifest::ManifestDraft {
            audit_head: None,
            ..draft()
        };
        let expected = Manifest::build(
            before_the_audit_chain,
            vec![entry(0, b"a"), entry(2, b"ccc")],
            4,
            sha(b"accc"),
        )
        .unwrap();
        assert_eq!(verify_manifest(jws, &key).unwrap(), expected);
        let header: serde_json::Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(jws.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            header,
            serde_json::json!({"alg": "EdDSA", "kid": signer.key_id(), "typ": "wakili-manifest+json"})
        );
        every_changed_character_breaks(jws, &key);
        assert!(matches!(
            verify_manifest(jws, &ManifestSigner::generate().verifying_key()),
            Err(StorageError::Manifest(ManifestError::BadSignature))
        ));
    }
}
