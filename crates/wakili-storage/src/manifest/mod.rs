//! The hash chain over a recording's chunks and its signed manifest.
//!
//! The manifest states what a finalized recording is: its chunks with their plaintext sizes and
//! SHA-256, a hash chain over them (`H_-1` = 32 zero bytes, `H_n = SHA-256(H_{n-1} ‖ sha_n)` over
//! the present chunks in ascending order), the SHA-256 of the whole media, the chunks that never
//! arrived, and the consents given. It is signed with Ed25519 as a JWS compact serialization
//! (RFC 7515, `alg` `EdDSA` per RFC 8037) so anyone holding the public key can check it offline;
//! signing and verifying live in `jws`.

mod jws;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
pub use wakili_core::audit_chain::Head;

pub use jws::{ManifestSigner, key_id_of, parse_verifying_key, verify_manifest};

use crate::{
    error::{ManifestError, Result, StorageError},
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
/// The `format` of a session's manifest: no media of its own, one WebM file per listed track.
pub const SESSION_FORMAT: &str = "webm-tracks";
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
    /// The head of the consultation's audit hash chain when the manifest was signed: an
    /// exported audit log verifies against it (`wakili verify-recording --audit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_head: Option<Head>,
    /// A session's tracks ([`SESSION_FORMAT`]): each one's participant, place in the session's
    /// time and chunks, as its own manifest signed them. Empty (and absent) otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tracks: Vec<ManifestTrack>,
    /// For a session: the one playable file its download serves, and that it is a derivative
    /// (the track files above are the evidence).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub derivative: Option<Derivative>,
}

/// A file made from a session's tracks for people to watch, not evidence: how it is made, so
/// anyone can make it again from the verified track files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Derivative {
    /// Container of the file.
    pub format: String,
    /// How it is made from the tracks.
    pub method: String,
    /// Always `false`: the evidence is the tracks.
    pub evidence: bool,
}

impl Derivative {
    /// The combined file of a session: its tracks remuxed into one WebM.
    pub fn combined() -> Self {
        Self {
            format: "webm".into(),
            method: "remux of the tracks above into one WebM, each at its startOffsetMs, \
                     without transcoding (wakili-mux merge_live); served by the session's \
                     download link"
                .into(),
            evidence: false,
        }
    }
}

/// One track of a session, as the session's manifest lists it: who sent it, when it starts in
/// the session, and the chunks of its media file with their hash chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestTrack {
    /// The track's own recording id (its file downloads under it).
    pub recording_id: String,
    /// The participant (connection) that sent it.
    pub participant_id: String,
    /// Their user id.
    pub user_id: String,
    /// Their part in the consultation (`lawyer`, `client`, …).
    pub role: wakili_core::ParticipantRole,
    /// `audio` or `video`.
    pub kind: wakili_core::recording::TrackKind,
    /// Which of their tracks (`audio`, `video`, `screen`, …).
    pub label: String,
    /// Its codec, e.g. `vp8` or `opus`.
    pub codec: String,
    /// Wall-clock time of its first media.
    pub started_at: DateTime<Utc>,
    /// Milliseconds from the session's start to its first media.
    pub start_offset_ms: i64,
    /// Completed, or incomplete (finalized without the recorder finishing it, or with gaps).
    pub status: ManifestStatus,
    /// Its present chunks in ascending order.
    pub chunks: Vec<ManifestChunk>,
    /// Chunks that never arrived.
    pub missing: Vec<u32>,
    /// Its chain head, lowercase hex.
    pub chain_head: String,
    /// Bytes of its media file.
    pub total_bytes: u64,
    /// SHA-256 of its media file, lowercase hex.
    pub sha256: String,
    /// Its length in seconds, as the recorder reported it.
    pub duration_seconds: Option<f64>,
}

impl ManifestTrack {
    /// The track's entry: its metadata beside what its own signed manifest says of its media.
    pub fn of(meta: &wakili_core::recording::TrackMeta, own: &Manifest) -> Self {
        Self {
            recording_id: own.recording_id.clone(),
            participant_id: meta.participant_id.clone(),
            user_id: meta.user_id.clone(),
            role: meta.role,
            kind: meta.kind,
            label: meta.label.clone(),
            codec: meta.codec.clone(),
            started_at: meta.started_at,
            start_offset_ms: meta.start_offset_ms,
            status: own.status,
            chunks: own.chunks.clone(),
            missing: own.missing.clone(),
            chain_head: own.chain_head.clone(),
            total_bytes: own.total_bytes,
            sha256: own.sha256.clone(),
            duration_seconds: own.duration_seconds,
        }
    }

    /// The chunks with their hashes decoded, checked like [`Manifest::chunk_entries`].
    pub fn chunk_entries(&self) -> Result<Vec<ChunkEntry>> {
        entries_of(&self.chunks, self.total_bytes)
    }
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
    /// The head of the consultation's audit hash chain, if it has one.
    pub audit_head: Option<Head>,
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
            audit_head: draft.audit_head,
            encryption: EncryptionInfo::default(),
            tracks: Vec::new(),
            derivative: None,
        })
    }

    /// The chunks with their hashes decoded, checked to be strictly ascending and within
    /// limits, and their sizes to add up to [`Manifest::total_bytes`].
    pub fn chunk_entries(&self) -> Result<Vec<ChunkEntry>> {
        entries_of(&self.chunks, self.total_bytes)
    }
}

/// `chunks` decoded, checked to be strictly ascending and within limits, their sizes adding up
/// to `total_bytes`.
fn entries_of(chunks: &[ManifestChunk], total_bytes: u64) -> Result<Vec<ChunkEntry>> {
    let mut entries = Vec::with_capacity(chunks.len());
    let mut total: u64 = 0;
    for c in chunks {
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
    if total != total_bytes {
        return Err(malformed("chunk sizes do not add up to totalBytes"));
    }
    Ok(entries)
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

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use chrono::TimeZone;

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
            audit_head: Some(Head {
                seq: 7,
                hash: "ab".repeat(32),
            }),
        }
    }

    pub(crate) fn sha(bytes: &[u8]) -> [u8; 32] {
        Sha256::digest(bytes).into()
    }

    pub(crate) fn entry(seq: u32, bytes: &[u8]) -> ChunkEntry {
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
}
