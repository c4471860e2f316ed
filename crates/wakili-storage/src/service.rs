//! The recording store as the server uses it: create, upload chunks, complete, read, delete.
//!
//! Every acknowledged chunk is durable (a provider holds its ciphertext and the database row
//! says so) before the call returns. Bodies are sealed as they arrive into memory (bounded across
//! all uploads) or a spool file, so a provider failing mid-write is retried on the next one
//! without asking the client again.

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use base64::{Engine, engine::general_purpose::STANDARD};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt};
use object_store::PutPayload;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::{
    io::AsyncWriteExt,
    sync::{OwnedSemaphorePermit, Semaphore, mpsc},
};
use wakili_core::{
    Clock,
    recording::{Completeness, RecordingStatus},
};
use wakili_db::{
    Db,
    models::{Chunk, ChunkState, FinalizedRecording, NewAuditEvent, NewRecording, Recording},
};

use crate::{
    ChunkEntry, ConsentEntry, Keyring, Layout, Manifest, ManifestDraft, ManifestSigner,
    ManifestStatus, RecordingCipher, StorageError, WrappedKey,
    placement::copy_targets,
    providers::{Payload, ProviderStatus, Providers},
    seal::{DataKey, NONCE_PREFIX_BYTES, random_nonce_prefix},
    url::{self, DownloadGrant},
};

/// What the service needs.
pub struct StorageConfig {
    /// Largest chunk accepted.
    pub max_chunk_bytes: u64,
    /// An upload silent this long is finalized as incomplete.
    pub abandon_after: Duration,
    /// Lifetime of download URLs.
    pub download_url_ttl: Duration,
    /// Pause between replication passes with nothing to do.
    pub replication_interval: Duration,
    /// Where request bodies are spooled while providers take them.
    pub spool_dir: PathBuf,
    /// Memory shared by uploads in flight for sealed chunks waiting for a provider; chunks that
    /// do not fit are spooled.
    pub upload_memory_bytes: u64,
    /// Providers that must hold a chunk before it is acknowledged.
    pub ack_copies: usize,
    /// No upload lives longer than this (the HTTP request timeout): older spool files were left
    /// by a crash and are removed.
    pub spool_max_age: Duration,
}

/// How long a finalization attempt may run before another node may start one.
const FINALIZE_LEASE: Duration = Duration::from_secs(120);

/// Pause before finalization attempt `attempts + 1` after `attempts` failed: 1 s, doubling,
/// at most 5 minutes.
pub fn finalize_backoff(attempts: u32) -> Duration {
    let doubling = attempts.saturating_sub(1).min(16);
    Duration::from_secs(1u64 << doubling).min(Duration::from_secs(300))
}

/// How `complete` ended.
#[derive(Debug)]
pub enum Completion {
    /// Finalized: the manifest is signed.
    Done(Recording),
    /// Every chunk is there, but finalizing failed for now (a provider or database outage):
    /// the recording stays `finalizing` and the server retries in the background.
    Retrying(Recording),
}

/// The recording store. Cheap to clone.
#[derive(Clone)]
pub struct RecordingStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    providers: Providers,
    keyring: Keyring,
    signer: ManifestSigner,
    url_secret: Vec<u8>,
    config: StorageConfig,
    clock: Clock,
    /// Bytes of `config.upload_memory_bytes` not reserved by a chunk in flight.
    upload_memory: Arc<Semaphore>,
}

/// A chunk the store acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkReceipt {
    /// Its position.
    pub seq: u32,
    /// Plaintext bytes.
    pub size: u64,
    /// SHA-256 of the plaintext, hex.
    pub sha256: String,
    /// Whether this exact chunk had been stored before (a retry).
    pub duplicate: bool,
}

/// What the uploader reports on completion (kept while finalization is retried).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompleteRequest {
    /// Chunks uploaded (`0..chunk_count`).
    pub chunk_count: u32,
    /// Length in seconds.
    pub duration_seconds: Option<f64>,
    /// Container, e.g. `webm`.
    pub format: Option<String>,
    /// Codecs.
    pub codec: Option<String>,
    /// Resolution.
    pub resolution: Option<String>,
}

/// The decrypted media (or a range of it), streamed.
pub struct Media {
    /// Length of the whole media.
    pub total: u64,
    /// The bytes served: `start..=end`.
    pub range: (u64, u64),
    /// The plaintext, produced as it is read and decrypted.
    pub body: mpsc::Receiver<Result<Bytes, StorageError>>,
}

/// Provider health and holdings.
#[derive(Debug, Clone)]
pub struct Usage {
    /// Every provider in order, with what it holds.
    pub providers: Vec<(ProviderStatus, wakili_db::models::ProviderUsage)>,
    /// Chunks not yet on every wanted provider.
    pub replication_backlog: u64,
    /// Copies kept of each chunk.
    pub replicas: usize,
    /// Object deletes of shredded recordings still to be done (retried in the background).
    pub pending_deletes: u64,
    /// Recordings whose data key is still wrapped by a retired master key (re-wrapped in the
    /// background; at 0 the retired keys can be removed).
    pub keys_under_retired_master_keys: u64,
}

impl RecordingStore {
    /// Assembles the store.
    pub fn new(
        db: Db,
        providers: Providers,
        keyring: Keyring,
        signer: ManifestSigner,
        url_secret: Vec<u8>,
        config: StorageConfig,
        clock: Clock,
    ) -> Result<Self, StorageError> {
        std::fs::create_dir_all(&config.spool_dir)
            .map_err(|e| StorageError::Spool(format!("{}: {e}", config.spool_dir.display())))?;
        let removed = clean_spool(&config.spool_dir, config.spool_max_age);
        if removed > 0 {
            tracing::info!(removed, dir = %config.spool_dir.display(), "removed spool files left by an earlier run");
        }
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                providers,
                keyring,
                signer,
                url_secret,
                upload_memory: Arc::new(Semaphore::new(
                    usize::try_from(config.upload_memory_bytes)
                        .unwrap_or(usize::MAX)
                        .min(Semaphore::MAX_PERMITS),
                )),
                config,
                clock,
            }),
        })
    }

    /// The manifest signer (for the public key endpoint).
    pub fn signer(&self) -> &ManifestSigner {
        &self.inner.signer
    }

    /// Largest chunk accepted.
    pub fn max_chunk_bytes(&self) -> u64 {
        self.inner.config.max_chunk_bytes
    }

    /// Creates recording `id` (the id signaling announced) of `consultation_id`, uploaded by
    /// `user`: a fresh data key, wrapped by the current master key. Returns the existing one
    /// when called again.
    pub async fn create(
        &self,
        id: &str,
        consultation_id: &str,
        user: &str,
    ) -> Result<(Recording, bool), StorageError> {
        let inner = &self.inner;
        let wrapped = inner.keyring.wrap(&DataKey::generate(), id)?;
        let new = NewRecording {
            id: id.to_owned(),
            consultation_id: consultation_id.to_owned(),
            started_by: user.to_owned(),
            wrapped_key: STANDARD.encode(&wrapped.bytes),
            key_id: wrapped.key_id,
            nonce_prefix: STANDARD.encode(random_nonce_prefix()),
            now: inner.clock.now(),
        };
        let audit = audit(
            consultation_id,
            user,
            "recording.created",
            json!({ "recordingId": id }),
        );
        Ok(inner.db.create_recording(&new, audit).await?)
    }

    /// A recording by id.
    pub async fn recording(&self, id: &str) -> Result<Recording, StorageError> {
        self.inner
            .db
            .recording(id)
            .await?
            .ok_or(StorageError::NotFound)
    }

    /// A recording's chunk rows with their holders.
    pub async fn chunks(&self, id: &str) -> Result<Vec<Chunk>, StorageError> {
        Ok(self.inner.db.chunks(id).await?)
    }

    /// Stores chunk `seq` of `recording`, whose plaintext the client says hashes to `sha256`
    /// (hex), from `body`, which the client says is `declared_len` bytes long. Returns once the
    /// ciphertext is durable on a provider.
    pub async fn put_chunk<S, E>(
        &self,
        recording: &Recording,
        seq: u32,
        sha256: &str,
        declared_len: Option<u64>,
        body: S,
    ) -> Result<ChunkReceipt, StorageError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        let inner = &self.inner;
        if recording.status != RecordingStatus::Uploading {
            return Err(StorageError::NotAccepting(recording.status));
        }
        crate::seal::position(seq, 0)?;
        let sha256 = parse_sha256(sha256)?;
        let now = inner.clock.now();
        let claim = Chunk {
            recording_id: recording.id.clone(),
            seq,
            sha256: sha256.clone(),
            size: 0,
            object_size: 0,
            state: ChunkState::Pending,
            object_key: chunk_key(&recording.id, seq, &sha256),
            providers: Vec::new(),
        };
        let held = inner.db.claim_chunk(&claim, now).await?;
        if held.sha256 != sha256 || held.state == ChunkState::Terminator {
            return Err(StorageError::ChunkConflict { seq });
        }
        if held.state == ChunkState::Stored {
            return Ok(ChunkReceipt {
                seq,
                size: held.size,
                sha256,
                duplicate: true,
            });
        }

        let cipher = self.cipher(recording)?;
        let (digest, sealed) = match self.seal_body(&cipher, seq, declared_len, body).await {
            Ok(done) => done,
            Err(e) => {
                if matches!(e, StorageError::HashMismatch { .. }) {
                    inner.db.release_chunk(&recording.id, seq, &sha256).await?;
                }
                return Err(e);
            }
        };
        if digest.sha256_hex() != sha256 {
            inner.db.release_chunk(&recording.id, seq, &sha256).await?;
            return Err(StorageError::HashMismatch {
                expected: sha256,
                actual: digest.sha256_hex(),
            });
        }
        let holders = inner
            .providers
            .put_copies(
                &claim.object_key,
                &sealed.payload(),
                inner.config.ack_copies,
            )
            .await?;
        drop(sealed);
        let stored = Chunk {
            size: digest.size,
            object_size: crate::ciphertext_len(digest.size),
            ..claim
        };
        if !inner
            .db
            .chunk_stored(&stored, &holders, inner.clock.now())
            .await?
        {
            // Finalization began while this chunk was in flight: not acknowledged.
            return Err(StorageError::NotAccepting(RecordingStatus::Finalizing));
        }
        Ok(ChunkReceipt {
            seq,
            size: digest.size,
            sha256,
            duplicate: false,
        })
    }

    /// Seals `body` as it arrives into memory, when `declared_len` fits what is left of the
    /// upload memory, or else into a spool file.
    async fn seal_body<S, E>(
        &self,
        cipher: &RecordingCipher,
        seq: u32,
        declared_len: Option<u64>,
        mut body: S,
    ) -> Result<(crate::ChunkDigest, Sealed), StorageError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        let max = self.inner.config.max_chunk_bytes;
        let reserved = declared_len
            .filter(|n| *n <= max)
            .and_then(|n| u32::try_from(crate::ciphertext_len(n)).ok())
            .and_then(|n| {
                Arc::clone(&self.inner.upload_memory)
                    .try_acquire_many_owned(n)
                    .ok()
            });
        let (mut sink, capacity) = match reserved {
            Some(permit) => {
                let capacity = permit.num_permits();
                (Sink::Memory(permit), capacity)
            }
            None => (
                Sink::Spool(Spool::create(&self.inner.config.spool_dir).await?),
                SPOOL_WRITE_BYTES + crate::seal::SEALED_SEGMENT_BYTES,
            ),
        };
        let mut sealer = cipher.chunk_sealer(seq)?;
        let mut sealed = Vec::with_capacity(capacity);
        while let Some(part) = body.next().await {
            let part = part.map_err(|e| StorageError::Body(e.to_string()))?;
            if sealer.size() + part.len() as u64 > max {
                return Err(StorageError::BodyTooLarge { max });
            }
            sealer.push(&part, &mut sealed)?;
            if let Sink::Spool(spool) = &mut sink
                && sealed.len() >= SPOOL_WRITE_BYTES
            {
                spool.write(&sealed).await?;
                sealed.clear();
            }
        }
        let digest = sealer.finish(&mut sealed)?;
        let sealed = match sink {
            Sink::Memory(permit) => Sealed::Memory {
                bytes: PutPayload::from(sealed),
                _permit: permit,
            },
            Sink::Spool(mut spool) => {
                spool.write(&sealed).await?;
                spool.finish().await?;
                Sealed::Spool(spool)
            }
        };
        Ok((digest, sealed))
    }

    /// Completes an upload: every chunk `0..chunk_count` must be there (the missing ones are
    /// listed otherwise); then the manifest is written and signed. Completing again returns the
    /// completed recording. When finalizing fails for now (providers or database down), the
    /// request is kept and the server retries it with backoff: [`Completion::Retrying`].
    pub async fn complete(
        &self,
        recording: &Recording,
        request: CompleteRequest,
        by: &str,
    ) -> Result<Completion, StorageError> {
        let inner = &self.inner;
        let now = inner.clock.now();
        let lease_until = now + chrono_duration(FINALIZE_LEASE);
        let request = match recording.status {
            RecordingStatus::Completed
                if recording.chunk_count == i64::from(request.chunk_count) =>
            {
                return Ok(Completion::Done(recording.clone()));
            }
            RecordingStatus::Uploading => {
                let kept = serde_json::to_string(&request)
                    .map_err(|e| StorageError::Integrity(e.to_string()))?;
                if !inner
                    .db
                    .begin_finalizing(&recording.id, &kept, lease_until, now)
                    .await?
                {
                    return Err(StorageError::NotAccepting(RecordingStatus::Finalizing));
                }
                let chunks = inner.db.chunks(&recording.id).await?;
                let present: Vec<u32> = chunks
                    .iter()
                    .filter(|c| c.state == ChunkState::Stored)
                    .map(|c| c.seq)
                    .collect();
                let check = Completeness::of(request.chunk_count, &present);
                if !check.is_complete() {
                    inner.db.reopen_recording(&recording.id, now).await?;
                    return Err(StorageError::Missing {
                        missing: check.missing,
                        unexpected: check.unexpected,
                    });
                }
                request
            }
            // A completion that failed is retried by the server; the uploader asking again
            // starts the next attempt now unless one is running.
            RecordingStatus::Finalizing => {
                match inner
                    .db
                    .claim_finalization(&recording.id, lease_until, now)
                    .await?
                {
                    Some(kept) => serde_json::from_str(&kept).unwrap_or(request),
                    None => return Ok(Completion::Retrying(recording.clone())),
                }
            }
            other => return Err(StorageError::NotAccepting(other)),
        };
        match self
            .finalize(recording, ManifestStatus::Completed, request, by)
            .await
        {
            Ok(done) => Ok(Completion::Done(done)),
            Err(e) => {
                let retry_at = now + chrono_duration(finalize_backoff(1));
                tracing::warn!(recording_id = %recording.id, error = %e, "finalizing failed; the server retries it");
                inner
                    .db
                    .finalization_failed(&recording.id, retry_at)
                    .await?;
                if transient(&e) {
                    Ok(Completion::Retrying(self.recording(&recording.id).await?))
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Retries finalizations that failed (`complete` kept the request), each after its backoff.
    /// Returns how many succeeded.
    pub async fn retry_finalizations(&self) -> Result<usize, StorageError> {
        let inner = &self.inner;
        let now = inner.clock.now();
        let claimed = inner
            .db
            .claim_finalizations(now + chrono_duration(FINALIZE_LEASE), now, 16)
            .await?;
        let mut done = 0;
        for (id, kept, attempts) in claimed {
            let recording = self.recording(&id).await?;
            let request: CompleteRequest = match serde_json::from_str(&kept) {
                Ok(request) => request,
                Err(e) => {
                    tracing::error!(recording_id = %id, error = %e, "kept completion request is unreadable");
                    continue;
                }
            };
            let by = recording.started_by.clone();
            match self
                .finalize(&recording, ManifestStatus::Completed, request, &by)
                .await
            {
                Ok(_) => {
                    tracing::info!(recording_id = %id, attempts, "finalized on retry");
                    done += 1;
                }
                Err(e) => {
                    let wait = finalize_backoff(attempts);
                    tracing::warn!(recording_id = %id, attempts, error = %e, retry_in = ?wait, "finalizing failed again");
                    inner
                        .db
                        .finalization_failed(&id, inner.clock.now() + chrono_duration(wait))
                        .await?;
                }
            }
        }
        Ok(done)
    }

    /// Finalizes recordings whose uploader vanished, with what arrived, flagged incomplete.
    /// Returns how many were finalized.
    pub async fn sweep_abandoned(&self) -> Result<usize, StorageError> {
        let inner = &self.inner;
        let now = inner.clock.now();
        let before = now
            - chrono::Duration::from_std(inner.config.abandon_after)
                .unwrap_or(chrono::Duration::minutes(10));
        let ids = inner.db.claim_abandoned(before, now, 16).await?;
        let mut done = 0;
        for id in ids {
            let recording = self.recording(&id).await?;
            let result = self
                .finalize(
                    &recording,
                    ManifestStatus::Incomplete,
                    CompleteRequest::default(),
                    "system",
                )
                .await;
            match result {
                Ok(_) => {
                    tracing::warn!(recording_id = %id, "upload abandoned: finalized as incomplete");
                    done += 1;
                }
                Err(e) => {
                    tracing::error!(recording_id = %id, error = %e, "finalizing an abandoned upload failed; will retry")
                }
            }
        }
        Ok(done)
    }

    /// Reads every stored chunk back (checking it decrypts and matches its hash), closes the
    /// encrypted stream with its terminator, and signs the manifest.
    async fn finalize(
        &self,
        recording: &Recording,
        status: ManifestStatus,
        request: CompleteRequest,
        by: &str,
    ) -> Result<Recording, StorageError> {
        let inner = &self.inner;
        let cipher = self.cipher(recording)?;
        let chunks: Vec<Chunk> = inner
            .db
            .chunks(&recording.id)
            .await?
            .into_iter()
            .filter(|c| c.state == ChunkState::Stored)
            .collect();
        let mut whole = Sha256::new();
        let mut entries = Vec::with_capacity(chunks.len());
        for chunk in &chunks {
            let (plaintext, sha) = self
                .read_verified(chunk, None, |bytes| {
                    let plaintext = cipher.open_chunk(chunk.seq, bytes)?;
                    let sha: [u8; 32] = Sha256::digest(&plaintext).into();
                    if hex::encode(sha) != chunk.sha256 {
                        return Err(StorageError::Integrity(format!(
                            "chunk {} does not match the hash it was stored with",
                            chunk.seq
                        )));
                    }
                    Ok((plaintext, sha))
                })
                .await?;
            whole.update(&plaintext);
            entries.push(ChunkEntry {
                seq: chunk.seq,
                size: chunk.size,
                sha256: sha,
            });
        }
        let end = chunks
            .last()
            .map_or(request.chunk_count, |c| request.chunk_count.max(c.seq + 1));
        self.write_terminator(recording, &cipher, end).await?;

        let consents = inner
            .db
            .consents(&recording.consultation_id)
            .await?
            .into_iter()
            .filter(|c| c.recording_id == recording.id)
            .map(|c| ConsentEntry {
                user_id: c.user_id,
                participant_id: c.participant_id,
                notice_version: c.notice_version,
                granted: c.granted,
                decided_at: c.decided_at,
            })
            .collect();
        let now = inner.clock.now();
        let draft = ManifestDraft {
            recording_id: recording.id.clone(),
            consultation_id: recording.consultation_id.clone(),
            status,
            format: request.format.clone().unwrap_or_else(|| "webm".into()),
            codec: request.codec.clone().unwrap_or_default(),
            resolution: request.resolution.clone(),
            duration_seconds: request.duration_seconds,
            started_at: recording.started_at,
            finalized_at: now,
            consents,
        };
        let manifest =
            Manifest::build(draft, entries, request.chunk_count, whole.finalize().into())?;
        let jws = inner.signer.sign(&manifest)?;
        let final_status = match manifest.status {
            ManifestStatus::Completed => RecordingStatus::Completed,
            ManifestStatus::Incomplete => RecordingStatus::Incomplete,
        };
        let done = FinalizedRecording {
            id: recording.id.clone(),
            status: final_status,
            format: Some(manifest.format.clone()),
            codec: Some(manifest.codec.clone()).filter(|c| !c.is_empty()),
            resolution: manifest.resolution.clone(),
            duration_seconds: manifest.duration_seconds,
            file_size_bytes: manifest.total_bytes,
            chunk_count: u32::try_from(manifest.chunks.len()).unwrap_or(u32::MAX),
            sha256: manifest.sha256.clone(),
            manifest: jws,
            now,
        };
        let audit = audit(
            &recording.consultation_id,
            by,
            match final_status {
                RecordingStatus::Completed => "recording.completed",
                _ => "recording.incomplete",
            },
            json!({
                "recordingId": recording.id,
                "chunks": manifest.chunks.len(),
                "bytes": manifest.total_bytes,
                "sha256": manifest.sha256,
                "missing": manifest.missing,
            }),
        );
        Ok(inner.db.finalize_recording(&done, audit).await?)
    }

    async fn write_terminator(
        &self,
        recording: &Recording,
        cipher: &RecordingCipher,
        end: u32,
    ) -> Result<(), StorageError> {
        let inner = &self.inner;
        let sealed = cipher.seal_terminator(end)?;
        let row = Chunk {
            recording_id: recording.id.clone(),
            seq: end,
            sha256: String::new(),
            size: 0,
            object_size: sealed.len() as u64,
            state: ChunkState::Terminator,
            object_key: format!("recordings/{}/end-{end:07}", recording.id),
            providers: Vec::new(),
        };
        let now = inner.clock.now();
        let mut held = inner.db.claim_chunk(&row, now).await?;
        if held.state == ChunkState::Pending {
            // A claim whose body never arrived sits where the stream ends: it was never
            // acknowledged, so the terminator takes its place.
            inner
                .db
                .release_chunk(&recording.id, end, &held.sha256)
                .await?;
            held = inner.db.claim_chunk(&row, now).await?;
        }
        if held.state != ChunkState::Terminator {
            return Err(StorageError::Integrity(format!(
                "position {end} is taken by a chunk"
            )));
        }
        if held.providers.is_empty() {
            let holders = inner
                .providers
                .put_copies(
                    &row.object_key,
                    &Payload::Memory(PutPayload::from(sealed)),
                    inner.config.ack_copies,
                )
                .await?;
            for provider in holders {
                inner
                    .db
                    .add_copy(&recording.id, end, &provider, inner.clock.now())
                    .await?;
            }
        }
        Ok(())
    }

    /// Reads `range` of a chunk's object (all of it with `None`) and opens it with `open`,
    /// forgetting copies that turn out to be gone. A copy that fails authentication (or its
    /// hash) is flagged for repair and the next copy is read, so one corrupt copy does not
    /// stop a download or a completion.
    async fn read_verified<T>(
        &self,
        chunk: &Chunk,
        range: Option<std::ops::Range<u64>>,
        open: impl Fn(&Bytes) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let mut corrupt: Vec<String> = Vec::new();
        loop {
            let read = match self
                .inner
                .providers
                .read(&chunk.object_key, range.clone(), &chunk.providers, &corrupt)
                .await
            {
                Ok(read) => read,
                Err(e) if corrupt.is_empty() => return Err(e),
                Err(e) => {
                    return Err(StorageError::Integrity(format!(
                        "chunk {}: every readable copy is corrupt ({}): {e}",
                        chunk.seq,
                        corrupt.join(", ")
                    )));
                }
            };
            self.forget_gone(chunk, &read.gone).await;
            match open(&read.bytes) {
                Ok(value) => return Ok(value),
                Err(e @ (StorageError::Tampered { .. } | StorageError::Integrity(_))) => {
                    tracing::error!(recording_id = %chunk.recording_id, seq = chunk.seq, provider = %read.provider, error = %e,
                        "corrupt copy: reading another one; the replicator will repair it");
                    self.flag_corrupt(chunk, &read.provider).await;
                    corrupt.push(read.provider);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Forgets a corrupt copy, so the replicator writes a good one over it.
    async fn flag_corrupt(&self, chunk: &Chunk, provider: &str) {
        if let Err(e) = self
            .inner
            .db
            .drop_copy(&chunk.recording_id, chunk.seq, provider)
            .await
        {
            tracing::error!(error = %e, "flagging a corrupt copy failed");
        }
    }

    async fn forget_gone(&self, chunk: &Chunk, gone: &[String]) {
        for provider in gone {
            tracing::warn!(recording_id = %chunk.recording_id, seq = chunk.seq, provider, "copy missing: the replicator will restore it");
            if let Err(e) = self
                .inner
                .db
                .drop_copy(&chunk.recording_id, chunk.seq, provider)
                .await
            {
                tracing::error!(error = %e, "forgetting a missing copy failed");
            }
        }
    }

    /// The decrypted media of a finalized recording, or the inclusive byte `range` of it.
    /// Only the segments the range touches are read and decrypted.
    pub async fn media(
        &self,
        recording: &Recording,
        range: Option<(u64, u64)>,
    ) -> Result<Media, StorageError> {
        readable(recording)?;
        let cipher = self.cipher(recording)?;
        let chunks: Vec<Chunk> = self
            .chunks(&recording.id)
            .await?
            .into_iter()
            .filter(|c| c.state == ChunkState::Stored)
            .collect();
        let layout = Layout::new(chunks.iter().map(|c| (c.seq, c.size)).collect())?;
        let total = layout.total();
        let (start, end) = match range {
            Some(r) => r,
            None if total == 0 => (0, 0),
            None => (0, total - 1),
        };
        let plan = if total == 0 {
            Vec::new()
        } else {
            layout.plan(start, end)
        };
        let (tx, rx) = mpsc::channel(4);
        let store = self.clone();
        tokio::spawn(async move {
            // Consecutive segments of one chunk are fetched with one ranged read.
            let mut i = 0;
            while i < plan.len() {
                let seq = plan[i].seq;
                let mut j = i;
                while j + 1 < plan.len() && plan[j + 1].seq == seq {
                    j += 1;
                }
                let Some(chunk) = chunks.iter().find(|c| c.seq == seq) else {
                    let _ = tx
                        .send(Err(StorageError::Integrity(format!(
                            "chunk {seq} vanished"
                        ))))
                        .await;
                    return;
                };
                let span = plan[i].object_range.start..plan[j].object_range.end;
                let segments = &plan[i..=j];
                let read = store
                    .read_verified(chunk, Some(span.clone()), |bytes| {
                        let mut pieces = Vec::with_capacity(segments.len());
                        for segment in segments {
                            let from = (segment.object_range.start - span.start) as usize;
                            let to = (segment.object_range.end - span.start) as usize;
                            let Some(sealed) = bytes.get(from..to) else {
                                return Err(StorageError::Integrity(format!(
                                    "chunk {seq} is shorter than recorded"
                                )));
                            };
                            let mut buf = sealed.to_vec();
                            cipher.open_segment(seq, segment.segment, &mut buf)?;
                            pieces.push(
                                Bytes::from(buf).slice(segment.skip..segment.skip + segment.take),
                            );
                        }
                        Ok(pieces)
                    })
                    .await;
                let pieces = match read {
                    Ok(pieces) => pieces,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                for piece in pieces {
                    if tx.send(Ok(piece)).await.is_err() {
                        return; // the client went away
                    }
                }
                i = j + 1;
            }
        });
        Ok(Media {
            total,
            range: (start, end),
            body: rx,
        })
    }

    /// A signed download URL path (with query) for `recording`, valid for the configured time,
    /// bound to `user` when given. Audited.
    pub async fn download_url(
        &self,
        recording: &Recording,
        user: Option<(&str, &str)>,
        issued_to: &str,
    ) -> Result<(String, DateTime<Utc>), StorageError> {
        let inner = &self.inner;
        readable(recording)?;
        let now = inner.clock.now();
        let expires = now
            + chrono::Duration::from_std(inner.config.download_url_ttl)
                .unwrap_or(chrono::Duration::minutes(5));
        let grant = DownloadGrant {
            recording_id: recording.id.clone(),
            expires_at_unix: expires.timestamp(),
            user: user.map(|(id, role)| (id.to_owned(), role.to_owned())),
        };
        let query = url::sign(&inner.url_secret, &grant);
        inner
            .db
            .append_audit(
                audit(
                    &recording.consultation_id,
                    issued_to,
                    "recording.download_url_issued",
                    json!({ "recordingId": recording.id, "expiresAt": expires, "boundToUser": user.is_some() }),
                ),
                now,
            )
            .await?;
        Ok((
            format!("/api/v1/recordings/{}/media?{query}", recording.id),
            expires,
        ))
    }

    /// Checks a download URL's query for `recording_id`.
    pub fn verify_download(
        &self,
        recording_id: &str,
        query: &str,
    ) -> Result<DownloadGrant, StorageError> {
        let now = self.inner.clock.now().timestamp();
        url::verify(&self.inner.url_secret, recording_id, query, now)
    }

    /// Records a download in the audit log.
    pub async fn audit_download(
        &self,
        recording: &Recording,
        grant: &DownloadGrant,
        range: Option<(u64, u64)>,
    ) -> Result<(), StorageError> {
        let user = grant.user.as_ref().map_or("link", |(id, _)| id.as_str());
        self.inner
            .db
            .append_audit(
                audit(
                    &recording.consultation_id,
                    user,
                    "recording.downloaded",
                    json!({ "recordingId": recording.id, "range": range.map(|(a, b)| format!("{a}-{b}")) }),
                ),
                self.inner.clock.now(),
            )
            .await?;
        Ok(())
    }

    /// Sets or clears the legal hold.
    pub async fn legal_hold(
        &self,
        recording: &Recording,
        hold: bool,
        reason: Option<String>,
        by: &str,
    ) -> Result<Recording, StorageError> {
        let action = if hold {
            "recording.legal_hold_set"
        } else {
            "recording.legal_hold_cleared"
        };
        let audit = audit(
            &recording.consultation_id,
            by,
            action,
            json!({ "recordingId": recording.id, "reason": reason }),
        );
        self.inner
            .db
            .set_legal_hold(&recording.id, hold, reason, audit, self.inner.clock.now())
            .await?
            .ok_or(StorageError::NotFound)
    }

    /// Crypto-shreds a recording (its wrapped key is destroyed first, so nothing is readable
    /// from that moment), then deletes its objects everywhere. Refused under legal hold.
    pub async fn delete(&self, recording: &Recording, by: &str) -> Result<(), StorageError> {
        let inner = &self.inner;
        if recording.legal_hold {
            return Err(StorageError::LegalHold);
        }
        let audit = audit(
            &recording.consultation_id,
            by,
            "recording.deleted",
            json!({ "recordingId": recording.id, "method": "crypto-shredding" }),
        );
        if !inner
            .db
            .shred_recording(&recording.id, inner.clock.now(), audit)
            .await?
        {
            return match inner.db.recording(&recording.id).await? {
                Some(r) if r.legal_hold => Err(StorageError::LegalHold),
                _ => Err(StorageError::NotFound),
            };
        }
        self.purge(&recording.id).await;
        Ok(())
    }

    /// Queues the deletion of a shredded recording's objects on every provider and tries them
    /// now; what fails stays queued and is retried in the background (it is unreadable
    /// ciphertext meanwhile).
    async fn purge(&self, id: &str) {
        let inner = &self.inner;
        if let Err(e) = inner
            .db
            .queue_object_deletes(id, &inner.providers.names(), inner.clock.now())
            .await
        {
            tracing::warn!(recording_id = id, error = %e, "queueing shredded objects for deletion failed; the background pass will");
            return;
        }
        if let Err(e) = self.process_deletes().await {
            tracing::warn!(recording_id = id, error = %e, "deleting shredded objects failed; will retry");
        }
    }

    /// One pass over the queued object deletes: shredded recordings whose objects were not
    /// queued yet are queued, then each provider deletes its queued objects until one fails
    /// (providers in parallel; one cooling down is skipped). Returns deletes done.
    pub async fn process_deletes(&self) -> Result<usize, StorageError> {
        let inner = &self.inner;
        let names = inner.providers.names();
        for id in inner.db.shredded_with_chunks(16).await? {
            inner
                .db
                .queue_object_deletes(&id, &names, inner.clock.now())
                .await?;
        }
        let queued = inner.db.pending_deletes(512).await?;
        if queued.is_empty() {
            return Ok(0);
        }
        let now = Instant::now();
        let per_provider = names.iter().map(|name| {
            let keys: Vec<&String> = queued
                .iter()
                .filter(|(provider, _)| provider == name)
                .map(|(_, key)| key)
                .collect();
            async move {
                let mut done = 0;
                if keys.is_empty() || !inner.providers.available(name, now) {
                    return Ok::<usize, StorageError>(0);
                }
                for key in keys {
                    match inner.providers.delete(name, key).await {
                        Ok(()) => {
                            inner.db.delete_attempted(name, key, true).await?;
                            done += 1;
                        }
                        Err(e) => {
                            tracing::warn!(provider = %name, key = %key, error = %e, "deleting a shredded object failed; will retry");
                            inner.db.delete_attempted(name, key, false).await?;
                            break;
                        }
                    }
                }
                Ok(done)
            }
        });
        let mut done = 0;
        for outcome in futures_util::future::join_all(per_provider).await {
            done += outcome?;
        }
        // Objects of providers no longer configured can never be deleted from here.
        for (provider, key) in queued.iter().filter(|(p, _)| !names.contains(p)) {
            tracing::warn!(provider = %provider, key = %key, "queued delete for a provider that is no longer configured: dropped");
            inner.db.delete_attempted(provider, key, true).await?;
        }
        Ok(done)
    }

    /// Re-wraps every data key not wrapped by the current master key (after a rotation), so
    /// the retired keys can be removed once [`Usage::keys_under_retired_master_keys`] is 0.
    /// A key whose master key is not configured is left alone (and logged). Returns how many
    /// were re-wrapped.
    pub async fn rewrap_keys(&self) -> Result<usize, StorageError> {
        let inner = &self.inner;
        let current = inner.keyring.current().id().to_owned();
        let mut done = 0;
        loop {
            let batch = inner.db.keys_to_rewrap(&current, 64).await?;
            let mut progressed = false;
            for (id, text, key_id) in batch {
                let Ok(bytes) = STANDARD.decode(&text) else {
                    tracing::error!(recording_id = %id, "stored data key does not decode");
                    continue;
                };
                let wrapped = WrappedKey { key_id, bytes };
                let key = match inner.keyring.unwrap(&wrapped, &id) {
                    Ok(key) => key,
                    Err(e) => {
                        tracing::warn!(recording_id = %id, master_key = %wrapped.key_id, error = %e, "data key cannot be re-wrapped");
                        continue;
                    }
                };
                let rewrapped = inner.keyring.wrap(&key, &id)?;
                if inner
                    .db
                    .rewrap_key(
                        &id,
                        &text,
                        &STANDARD.encode(&rewrapped.bytes),
                        &rewrapped.key_id,
                    )
                    .await?
                {
                    done += 1;
                    progressed = true;
                }
            }
            if !progressed {
                break;
            }
        }
        if done > 0 {
            let left = inner.db.keys_to_rewrap_count(&current).await?;
            tracing::info!(rewrapped = done, left, master_key = %current, "data keys re-wrapped under the current master key");
        }
        Ok(done)
    }

    /// Provider health and holdings, and the replication backlog.
    pub async fn usage(&self) -> Result<Usage, StorageError> {
        let inner = &self.inner;
        let held = inner.db.storage_usage().await?;
        let providers = inner
            .providers
            .status(Instant::now())
            .into_iter()
            .map(|status| {
                let usage = held
                    .iter()
                    .find(|u| u.provider == status.name)
                    .cloned()
                    .unwrap_or(wakili_db::models::ProviderUsage {
                        provider: status.name.clone(),
                        recordings: 0,
                        objects: 0,
                        bytes: 0,
                    });
                (status, usage)
            })
            .collect();
        Ok(Usage {
            providers,
            replication_backlog: inner
                .db
                .replication_backlog(&inner.providers.wanted())
                .await?,
            replicas: inner.providers.replicas(),
            pending_deletes: inner.db.pending_delete_count().await?,
            keys_under_retired_master_keys: inner
                .db
                .keys_to_rewrap_count(inner.keyring.current().id())
                .await?,
        })
    }

    /// One replication pass over everything under-replicated. Returns copies made.
    pub async fn replicate_once(&self) -> Result<usize, StorageError> {
        let inner = &self.inner;
        let wanted = inner.providers.wanted();
        let order = inner.providers.names();
        let mut made = 0;
        let mut offset = 0;
        loop {
            let page = inner.db.under_replicated(&wanted, 64, offset).await?;
            if page.is_empty() {
                return Ok(made);
            }
            offset += page.len() as u64;
            for chunk in page {
                let now = Instant::now();
                let targets = copy_targets(
                    &chunk.providers,
                    &order,
                    inner.providers.replicas(),
                    |name| inner.providers.available(name, now),
                );
                for target in targets {
                    match self.copy(&chunk, &target).await {
                        Ok(()) => made += 1,
                        Err(e) => {
                            tracing::debug!(recording_id = %chunk.recording_id, seq = chunk.seq, target, error = %e, "replication deferred")
                        }
                    }
                }
            }
        }
    }

    async fn copy(&self, chunk: &Chunk, target: &str) -> Result<(), StorageError> {
        let inner = &self.inner;
        let mut last = StorageError::ObjectMissing(chunk.object_key.clone());
        for holder in &chunk.providers {
            match inner.providers.open_from(holder, &chunk.object_key).await {
                Ok(reader) => {
                    inner
                        .providers
                        .put_to(target, &chunk.object_key, reader)
                        .await?;
                    inner
                        .db
                        .add_copy(&chunk.recording_id, chunk.seq, target, inner.clock.now())
                        .await?;
                    return Ok(());
                }
                Err(StorageError::ObjectMissing(key)) => {
                    self.forget_gone(chunk, std::slice::from_ref(holder)).await;
                    last = StorageError::ObjectMissing(key);
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Runs until `shutdown` resolves: replication, finalization retries and queued deletes
    /// every pass; the abandoned-upload sweep, key re-wrapping and spool cleanup at start and
    /// every quarter of `abandon_after`.
    pub async fn run_background(self, shutdown: impl std::future::Future<Output = ()> + Send) {
        let interval = self.inner.config.replication_interval;
        let sweep_every = (self.inner.config.abandon_after / 4).max(Duration::from_secs(1));
        let work = async {
            let mut last_sweep = Instant::now();
            let mut first = true;
            loop {
                if let Err(e) = self.replicate_once().await {
                    tracing::warn!(error = %e, "replication pass failed");
                }
                if let Err(e) = self.retry_finalizations().await {
                    tracing::warn!(error = %e, "finalization retry pass failed");
                }
                if let Err(e) = self.process_deletes().await {
                    tracing::warn!(error = %e, "deleting shredded objects failed");
                }
                if first || last_sweep.elapsed() >= sweep_every {
                    if let Err(e) = self.rewrap_keys().await {
                        tracing::warn!(error = %e, "re-wrapping data keys failed");
                    }
                    let config = &self.inner.config;
                    clean_spool(&config.spool_dir, config.spool_max_age);
                }
                if last_sweep.elapsed() >= sweep_every {
                    last_sweep = Instant::now();
                    if let Err(e) = self.sweep_abandoned().await {
                        tracing::warn!(error = %e, "abandoned-upload sweep failed");
                    }
                }
                first = false;
                tokio::time::sleep(interval).await;
            }
        };
        tokio::select! {
            () = work => {}
            () = shutdown => {}
        }
    }

    fn cipher(&self, recording: &Recording) -> Result<RecordingCipher, StorageError> {
        let (Some(wrapped), Some(key_id)) = (&recording.wrapped_key, &recording.key_id) else {
            return Err(StorageError::Shredded);
        };
        let corrupt = || StorageError::Integrity("stored key material does not decode".into());
        let wrapped = WrappedKey {
            key_id: key_id.clone(),
            bytes: STANDARD.decode(wrapped).map_err(|_| corrupt())?,
        };
        let key = self.inner.keyring.unwrap(&wrapped, &recording.id)?;
        let prefix: [u8; NONCE_PREFIX_BYTES] = STANDARD
            .decode(&recording.nonce_prefix)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(corrupt)?;
        Ok(RecordingCipher::new(&key, prefix, &recording.id))
    }
}

/// Whether a failed finalization is worth retrying as is: providers or the database were
/// unavailable.
fn transient(e: &StorageError) -> bool {
    matches!(
        e,
        StorageError::NoProvider(_)
            | StorageError::Provider { .. }
            | StorageError::ObjectMissing(_)
            | StorageError::Db(_)
    )
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// Removes the spool files in `dir` not modified for `max_age`: no upload lives that long, so
/// they were left by a crash. Returns how many were removed.
fn clean_spool(dir: &std::path::Path, max_age: Duration) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let now = std::time::SystemTime::now();
    let mut removed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "part") {
            continue;
        }
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|at| now.duration_since(at).is_ok_and(|age| age > max_age));
        if stale && std::fs::remove_file(&path).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Whether `recording` can be downloaded: finalized, not shredded.
fn readable(recording: &Recording) -> Result<(), StorageError> {
    match recording.status {
        RecordingStatus::Deleted => Err(StorageError::Shredded),
        status if status.is_final() => Ok(()),
        status => Err(StorageError::NotReady(status)),
    }
}

fn audit(
    consultation_id: &str,
    actor: &str,
    action: &'static str,
    detail: serde_json::Value,
) -> NewAuditEvent {
    NewAuditEvent {
        consultation_id: Some(consultation_id.to_owned()),
        actor_id: Some(actor.to_owned()),
        action,
        detail,
    }
}

/// Object key of a chunk: the hash prefix keeps two bodies for one position from ever sharing
/// an object.
fn chunk_key(recording_id: &str, seq: u32, sha256: &str) -> String {
    format!("recordings/{recording_id}/{seq:07}-{}", &sha256[..16])
}

fn parse_sha256(text: &str) -> Result<String, StorageError> {
    let text = text.trim().to_ascii_lowercase();
    if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(text)
    } else {
        Err(StorageError::BadHash)
    }
}

/// Spool files are written in pieces this large (each write is a trip to the blocking pool).
const SPOOL_WRITE_BYTES: usize = 1024 * 1024;

/// Where a chunk is sealed to while it arrives.
enum Sink {
    /// Memory, reserved from the upload memory for the whole chunk.
    Memory(OwnedSemaphorePermit),
    /// A spool file.
    Spool(Spool),
}

/// A sealed chunk waiting for a provider.
enum Sealed {
    /// In memory; the permit returns its share of the upload memory when dropped.
    Memory {
        bytes: PutPayload,
        _permit: OwnedSemaphorePermit,
    },
    /// In a spool file.
    Spool(Spool),
}

impl Sealed {
    fn payload(&self) -> Payload {
        match self {
            Self::Memory { bytes, .. } => Payload::Memory(bytes.clone()),
            Self::Spool(spool) => Payload::File(spool.path.clone()),
        }
    }
}

/// A spool file, removed when dropped.
struct Spool {
    path: PathBuf,
    file: tokio::fs::File,
}

impl Spool {
    async fn create(dir: &std::path::Path) -> Result<Self, StorageError> {
        let path = dir.join(format!("{}.part", wakili_core::new_id()));
        let file = tokio::fs::File::create(&path)
            .await
            .map_err(|e| StorageError::Spool(format!("{}: {e}", path.display())))?;
        Ok(Self { path, file })
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        self.file
            .write_all(bytes)
            .await
            .map_err(|e| StorageError::Spool(e.to_string()))
    }

    /// Waits until everything written is in the file (not fsynced: the spool only bridges a
    /// provider failing mid-write).
    async fn finish(&mut self) -> Result<(), StorageError> {
        self.file
            .flush()
            .await
            .map_err(|e| StorageError::Spool(e.to_string()))
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn finalization_retries_back_off_from_one_second_to_five_minutes() {
        let waits: Vec<u64> = (1..=12).map(|n| finalize_backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert_eq!(finalize_backoff(0), Duration::from_secs(1));
        assert_eq!(finalize_backoff(u32::MAX), Duration::from_secs(300));
    }

    #[test]
    fn only_stale_spool_files_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let stale = dir.path().join("a.part");
        let fresh = dir.path().join("b.part");
        let other = dir.path().join("notes.txt");
        for path in [&stale, &fresh, &other] {
            std::fs::write(path, b"x").unwrap();
        }
        let old = std::time::SystemTime::now() - Duration::from_secs(600);
        for path in [&stale, &other] {
            std::fs::File::options()
                .write(true)
                .open(path)
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
        assert_eq!(clean_spool(dir.path(), Duration::from_secs(60)), 1);
        assert!(!stale.exists());
        assert!(fresh.exists() && other.exists());
    }
}
