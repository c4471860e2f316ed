//! The hash chain over a recording's chunks and its signed manifest.
//!
//! The manifest states what a finalized recording is: its chunks with their plaintext sizes and
//! SHA-256, a hash chain over them (`H_-1` = 32 zero bytes, `H_n = SHA-256(H_{n-1} ‖ sha_n)` over
//! the present chunks in ascending order), the SHA-256 of the whole media, the chunks that never
//! arrived, and the consents given. It is signed with Ed25519 as a JWS compact serialization
//! (RFC 7515, `alg` `EdDSA` per RFC 8037) so anyone holding the public key can check it offline.

use std::fmt;

use base64::{
    Engine,
    engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD},
};
use chrono::{DateTime, Utc};
use ed25519_dalek::{
    Signature, SigningKey, VerifyingKey,
    pkcs8::{
        DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey,
        spki::der::pem::LineEnding,
    },
};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::{ConfigError, ManifestError};
use crate::{
    error::{Result, StorageError},
    seal::{MAX_CHUNK_BYTES, MAX_CHUNKS, SEGMENT_BYTES},
};

/// The chain value before the first chunk: 32 zero bytes.
pub const CHAIN_SEED: [u8; 32] = [0; 32];
/// The manifest format version this crate writes and reads.
pub const MANIFEST_VERSION: u32 = 1;
/// The JWS `typ` header of a signed manifest.
pub const JWS_TYPE: &str = "wakili-manifest+json";
/// The JWS `alg` of a signed manifest (Ed25519, RFC 8037).
pub const JWS_ALG: &str = "EdDSA";
/// How the media is encrypted at rest, as named in the manifest.
pub const ENCRYPTION_ALGORITHM: &str = "AES-256-GCM/STREAM-BE32";

/// The running hash chain over a recording's chunk hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chain {
    head: [u8; 32],
}

impl Chain {
    /// A chain over no chunks yet (head = [`CHAIN_SEED`]).
    pub fn new() -> Self {
        Self { head: CHAIN_SEED }
    }

    /// Extends the chain with the next chunk's plaintext SHA-256 and returns the new head
    /// `H_n = SHA-256(H_{n-1} ‖ sha256)`.
    pub fn push(&mut self, sha256: &[u8; 32]) -> [u8; 32] {
        let mut hash = Sha256::new();
        hash.update(self.head);
        hash.update(sha256);
        self.head = hash.finalize().into();
        self.head
    }

    /// The current head (the last `H_n`, or the seed).
    pub fn head(&self) -> [u8; 32] {
        self.head
    }
}

impl Default for Chain {
    fn default() -> Self {
        Self::new()
    }
}

/// How a recording ended, as the manifest states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ManifestStatus {
    /// Every expected chunk arrived.
    Completed,
    /// Finalized with chunks missing (listed in [`Manifest::missing`]) or after its uploader
    /// vanished.
    Incomplete,
}

/// One present chunk in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestChunk {
    /// Sequence number (0-based).
    pub seq: u32,
    /// Plaintext bytes.
    pub size: u64,
    /// SHA-256 of the plaintext, lowercase hex.
    pub sha256: String,
    /// The chain value `H_n` after this chunk, lowercase hex.
    pub chain: String,
}

/// A recording consent decision, as the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsentEntry {
    /// Who decided.
    pub user_id: String,
    /// Their participant id in the call.
    pub participant_id: String,
    /// The version of the notice they were shown.
    pub notice_version: String,
    /// The answer.
    pub granted: bool,
    /// When.
    pub decided_at: DateTime<Utc>,
}

/// How the stored media is encrypted (informative: the manifest describes the plaintext).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EncryptionInfo {
    /// [`ENCRYPTION_ALGORITHM`].
    pub algorithm: String,
    /// Plaintext bytes per sealed segment.
    pub segment_bytes: u32,
}

impl Default for EncryptionInfo {
    fn default() -> Self {
        Self {
            algorithm: ENCRYPTION_ALGORITHM.to_owned(),
            segment_bytes: SEGMENT_BYTES as u32,
        }
    }
}

/// The signed statement of what a finalized recording contains.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// [`MANIFEST_VERSION`].
    pub version: u32,
    /// The recording.
    pub recording_id: String,
    /// Its consultation.
    pub consultation_id: String,
    /// Completed or incomplete.
    pub status: ManifestStatus,
    /// Container format, e.g. `webm`.
    pub format: String,
    /// Codecs, e.g. `vp8,opus`.
    pub codec: String,
    /// Video resolution such as `1280x720`, if known.
    pub resolution: Option<String>,
    /// Duration in seconds, if known.
    pub duration_seconds: Option<f64>,
    /// When recording started.
    pub started_at: DateTime<Utc>,
    /// When the manifest was written.
    pub finalized_at: DateTime<Utc>,
    /// The present chunks in ascending sequence order.
    pub chunks: Vec<ManifestChunk>,
    /// Sequence numbers below the chunk count that never arrived, ascending.
    pub missing: Vec<u32>,
    /// The last chain value, lowercase hex ([`CHAIN_SEED`] when there are no chunks).
    pub chain_head: String,
    /// Sum of the chunk sizes: the length of the media.
    pub total_bytes: u64,
    /// SHA-256 of the media (present chunks concatenated in order), lowercase hex.
    pub sha256: String,
    /// The consent decisions taken for this recording.
    pub consents: Vec<ConsentEntry>,
    /// How the media is encrypted at rest.
    pub encryption: EncryptionInfo,
}

/// A present chunk as the manifest builder takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkEntry {
    /// Sequence number.
    pub seq: u32,
    /// Plaintext bytes.
    pub size: u64,
    /// SHA-256 of the plaintext.
    pub sha256: [u8; 32],
}

/// Everything in a manifest that is not computed from the chunks.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestDraft {
    /// The recording.
    pub recording_id: String,
    /// Its consultation.
    pub consultation_id: String,
    /// The status the service decided; [`Manifest::build`] turns `Completed` into
    /// `Incomplete` when chunks are missing.
    pub status: ManifestStatus,
    /// Container format.
    pub format: String,
    /// Codecs.
    pub codec: String,
    /// Video resolution, if known.
    pub resolution: Option<String>,
    /// Duration in seconds, if known.
    pub duration_seconds: Option<f64>,
    /// When recording started.
    pub started_at: DateTime<Utc>,
    /// When the manifest is written (passed in: this crate reads no clock).
    pub finalized_at: DateTime<Utc>,
    /// Consent decisions.
    pub consents: Vec<ConsentEntry>,
}

impl Manifest {
    /// Builds the manifest of a recording from its present `chunks` (any order), the chunk
    /// count the uploader announced (`expected_count`), and the SHA-256 of the media that the
    /// caller computed while streaming the chunks in order.
    ///
    /// The chunk count is `expected_count`, or one past the highest present chunk if that is
    /// larger (a chunk that arrived is evidence and always listed). `missing` lists the gaps
    /// below it.
    pub fn build(
        draft: ManifestDraft,
        mut chunks: Vec<ChunkEntry>,
        expected_count: u32,
        whole_sha256: [u8; 32],
    ) -> Result<Self> {
        chunks.sort_unstable_by_key(|c| c.seq);
        if chunks.windows(2).any(|w| w[0].seq == w[1].seq) {
            return Err(ManifestError::InvalidChunks("duplicate sequence number".into()).into());
        }
        if expected_count > MAX_CHUNKS {
            return Err(ManifestError::InvalidChunks(format!(
                "expected count {expected_count} exceeds {MAX_CHUNKS}"
            ))
            .into());
        }
        for c in &chunks {
            validate_chunk(c.seq, c.size)?;
        }
        let count = chunks
            .last()
            .map_or(expected_count, |c| expected_count.max(c.seq + 1));
        let mut present = chunks.iter().map(|c| c.seq).peekable();
        let missing = (0..count)
            .filter(|seq| {
                if present.peek() == Some(seq) {
                    present.next();
                    false
                } else {
                    true
                }
            })
            .collect::<Vec<_>>();

        let mut chain = Chain::new();
        let manifest_chunks = chunks
            .iter()
            .map(|c| ManifestChunk {
                seq: c.seq,
                size: c.size,
                sha256: hex::encode(c.sha256),
                chain: hex::encode(chain.push(&c.sha256)),
            })
            .collect();
        let status = if missing.is_empty() {
            draft.status
        } else {
            ManifestStatus::Incomplete
        };
        Ok(Self {
            version: MANIFEST_VERSION,
            recording_id: draft.recording_id,
            consultation_id: draft.consultation_id,
            status,
            format: draft.format,
            codec: draft.codec,
            resolution: draft.resolution,
            duration_seconds: draft.duration_seconds,
            started_at: draft.started_at,
            finalized_at: draft.finalized_at,
            chunks: manifest_chunks,
            missing,
            chain_head: hex::encode(chain.head()),
            total_bytes: chunks.iter().map(|c| c.size).sum(),
            sha256: hex::encode(whole_sha256),
            consents: draft.consents,
            encryption: EncryptionInfo::default(),
        })
    }

    /// The chunks with their hashes decoded, checked to be strictly ascending and within
    /// limits, and their sizes to add up to [`Manifest::total_bytes`].
    pub fn chunk_entries(&self) -> Result<Vec<ChunkEntry>> {
        let mut entries = Vec::with_capacity(self.chunks.len());
        let mut total: u64 = 0;
        for c in &self.chunks {
            if entries
                .last()
                .is_some_and(|prev: &ChunkEntry| prev.seq >= c.seq)
            {
                return Err(malformed("chunks are not in ascending order"));
            }
            validate_chunk(c.seq, c.size).map_err(|e| malformed(e.to_string()))?;
            entries.push(ChunkEntry {
                seq: c.seq,
                size: c.size,
                sha256: decode_hash(&c.sha256)?,
            });
            total += c.size;
        }
        if total != self.total_bytes {
            return Err(malformed("chunk sizes do not add up to totalBytes"));
        }
        Ok(entries)
    }
}

fn validate_chunk(seq: u32, size: u64) -> Result<()> {
    if seq >= MAX_CHUNKS {
        return Err(
            ManifestError::InvalidChunks(format!("chunk {seq} exceeds the chunk limit")).into(),
        );
    }
    if size == 0 || size > MAX_CHUNK_BYTES {
        return Err(ManifestError::InvalidChunks(format!("chunk {seq} has size {size}")).into());
    }
    Ok(())
}

/// Decodes a 32-byte lowercase or uppercase hex hash from a manifest.
pub(crate) fn decode_hash(text: &str) -> Result<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out)
        .map_err(|_| malformed(format!("{text:?} is not a 32-byte hex hash")))?;
    Ok(out)
}

fn malformed(msg: impl Into<String>) -> StorageError {
    StorageError::Manifest(ManifestError::MalformedManifest(msg.into()))
}

// ---------------------------------------------------------------------------------------------
// Signing

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
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use chrono::TimeZone;
    use ed25519_dalek::Signer;

    use super::*;

    pub(crate) fn draft() -> ManifestDraft {
        ManifestDraft {
            recording_id: "rec-1".into(),
            consultation_id: "con-1".into(),
            status: ManifestStatus::Completed,
            format: "webm".into(),
            codec: "vp8,opus".into(),
            resolution: Some("1280x720".into()),
            duration_seconds: Some(61.5),
            started_at: Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap(),
            finalized_at: Utc.with_ymd_and_hms(2026, 11, 2, 9, 1, 2).unwrap(),
            consents: vec![ConsentEntry {
                user_id: "u-1".into(),
                participant_id: "p-1".into(),
                notice_version: "2026-11".into(),
                granted: true,
                decided_at: Utc.with_ymd_and_hms(2026, 11, 2, 8, 59, 0).unwrap(),
            }],
        }
    }

    fn sha(bytes: &[u8]) -> [u8; 32] {
        Sha256::digest(bytes).into()
    }

    fn entry(seq: u32, bytes: &[u8]) -> ChunkEntry {
        ChunkEntry {
            seq,
            size: bytes.len() as u64,
            sha256: sha(bytes),
        }
    }

    #[test]
    fn chain_matches_a_hand_computation() {
        let (a, b, c) = (sha(b"a"), sha(b"bb"), sha(b"ccc"));
        let h0 = sha(&[[0u8; 32], a].concat());
        let h1 = sha(&[h0, b].concat());
        let h2 = sha(&[h1, c].concat());
        let m = Manifest::build(
            draft(),
            vec![entry(2, b"ccc"), entry(0, b"a"), entry(1, b"bb")],
            3,
            sha(b"abbccc"),
        )
        .unwrap();
        let chains: Vec<_> = m.chunks.iter().map(|c| c.chain.clone()).collect();
        assert_eq!(chains, [hex::encode(h0), hex::encode(h1), hex::encode(h2)]);
        assert_eq!(m.chain_head, hex::encode(h2));
        assert_eq!(m.chunks[1].sha256, hex::encode(b));
        assert_eq!(m.total_bytes, 6);
        assert_eq!(m.sha256, hex::encode(sha(b"abbccc")));
        assert_eq!(m.status, ManifestStatus::Completed);
        assert!(m.missing.is_empty());
        assert_eq!(m.chunk_entries().unwrap()[2], entry(2, b"ccc"));
    }

    #[test]
    fn missing_chunks_are_listed_and_make_it_incomplete() {
        let m = Manifest::build(draft(), vec![entry(1, b"x"), entry(4, b"y")], 7, [0; 32]).unwrap();
        assert_eq!(m.missing, [0, 2, 3, 5, 6]);
        assert_eq!(m.status, ManifestStatus::Incomplete);
        // A chunk beyond the announced count is kept and widens the count.
        let m = Manifest::build(draft(), vec![entry(0, b"x"), entry(3, b"y")], 2, [0; 32]).unwrap();
        assert_eq!(m.missing, [1, 2]);
        let empty = Manifest::build(draft(), vec![], 0, sha(b"")).unwrap();
        assert_eq!(empty.chain_head, "0".repeat(64));
        assert_eq!(empty.status, ManifestStatus::Completed);
        let lost = Manifest::build(draft(), vec![], 2, sha(b"")).unwrap();
        assert_eq!(lost.missing, [0, 1]);
        assert!(
            Manifest::build(draft(), vec![entry(1, b"x"), entry(1, b"y")], 2, [0; 32]).is_err()
        );
        assert!(Manifest::build(draft(), vec![entry(0, b"")], 1, [0; 32]).is_err());
    }

    #[test]
    fn manifest_json_uses_camel_case_names() {
        let m = Manifest::build(draft(), vec![entry(0, b"a")], 1, sha(b"a")).unwrap();
        let json: serde_json::Value = serde_json::to_value(&m).unwrap();
        for key in [
            "version",
            "recordingId",
            "consultationId",
            "status",
            "format",
            "codec",
            "resolution",
            "durationSeconds",
            "startedAt",
            "finalizedAt",
            "chunks",
            "missing",
            "chainHead",
            "totalBytes",
            "sha256",
            "consents",
            "encryption",
        ] {
            assert!(json.get(key).is_some(), "{key}");
        }
        assert_eq!(json["status"], "completed");
        assert_eq!(json["encryption"]["algorithm"], "AES-256-GCM/STREAM-BE32");
        assert_eq!(json["encryption"]["segmentBytes"], 65536);
        assert_eq!(json["consents"][0]["noticeVersion"], "2026-11");
        assert_eq!(json["chunks"][0]["chain"].as_str().unwrap().len(), 64);
    }

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

    #[test]
    fn any_change_to_a_signed_manifest_fails() {
        let signer = ManifestSigner::generate();
        let key = signer.verifying_key();
        let jws = signer
            .sign(&Manifest::build(draft(), vec![entry(0, b"a")], 1, [1; 32]).unwrap())
            .unwrap();
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        for i in 0..jws.len() {
            if jws.as_bytes()[i] == b'.' {
                continue;
            }
            let mut bad = jws.clone().into_bytes();
            let at = alphabet.iter().position(|&c| c == bad[i]).unwrap();
            bad[i] = alphabet[(at + 1) % alphabet.len()];
            let bad = String::from_utf8(bad).unwrap();
            assert!(
                matches!(
                    verify_manifest(&bad, &key),
                    Err(StorageError::Manifest(ManifestError::BadSignature))
                ),
                "char {i}"
            );
        }
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
            ManifestSigner::from_pkcs8_pem(include_str!("../testdata/manifest-signing-key.pem"))
                .unwrap();
        let key = signer.verifying_key();
        let jws = include_str!("../testdata/manifest-hand-rolled.jws").trim();
        let expected = Manifest::build(
            draft(),
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
                    verify_manifest(&bad, &key),
                    Err(StorageError::Manifest(ManifestError::BadSignature))
                ),
                "char {i}"
            );
        }
        assert!(matches!(
            verify_manifest(jws, &ManifestSigner::generate().verifying_key()),
            Err(StorageError::Manifest(ManifestError::BadSignature))
        ));
    }
}
