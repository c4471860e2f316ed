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
use wakili_core::recording::{Completeness, RecordingStatus};
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

/// The clock, injectable for tests.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

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
    now: Clock,
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

/// What the uploader reports on completion.
#[derive(Debug, Clone, Default)]
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
        now: Clock,
    ) -> Result<Self, StorageError> {
        std::fs::create_dir_all(&config.spool_dir)
            .map_err(|e| StorageError::Spool(format!("{}: {e}", config.spool_dir.display())))?;
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
                now,
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
            now: (inner.now)(),
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
        let now = (inner.now)();
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
        let provider = inner
            .providers
            .put_first(&claim.object_key, &sealed.payload())
            .await?;
        drop(sealed);
        let stored = Chunk {
            size: digest.size,
            object_size: crate::ciphertext_len(digest.size),
            ..claim
        };
        if !inner
            .db
            .chunk_stored(&stored, &provider, (inner.now)())
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
    /// completed recording.
    pub async fn complete(
        &self,
        recording: &Recording,
        request: CompleteRequest,
        by: &str,
    ) -> Result<Recording, StorageError> {
        let inner = &self.inner;
        match recording.status {
            RecordingStatus::Completed
                if recording.chunk_count == i64::from(request.chunk_count) =>
            {
                return Ok(recording.clone());
            }
            RecordingStatus::Uploading => {
                if !inner
                    .db
                    .begin_finalizing(&recording.id, (inner.now)())
                    .await?
                {
                    return Err(StorageError::NotAccepting(RecordingStatus::Finalizing));
                }
            }
            // A completion that stopped half way (crash, provider outage) may be retried.
            RecordingStatus::Finalizing => {}
            other => return Err(StorageError::NotAccepting(other)),
        }
        let chunks = inner.db.chunks(&recording.id).await?;
        let present: Vec<u32> = chunks
            .iter()
            .filter(|c| c.state == ChunkState::Stored)
            .map(|c| c.seq)
            .collect();
        let check = Completeness::of(request.chunk_count, &present);
        if !check.is_complete() {
            inner
                .db
                .reopen_recording(&recording.id, (inner.now)())
                .await?;
            return Err(StorageError::Missing {
                missing: check.missing,
                unexpected: check.unexpected,
            });
        }
        self.finalize(recording, ManifestStatus::Completed, request, by)
            .await
    }

    /// Finalizes recordings whose uploader vanished, with what arrived, flagged incomplete.
    /// Returns how many were finalized.
    pub async fn sweep_abandoned(&self) -> Result<usize, StorageError> {
        let inner = &self.inner;
        let now = (inner.now)();
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
            let plaintext = self.read_chunk(&cipher, chunk).await?;
            let sha: [u8; 32] = Sha256::digest(&plaintext).into();
            if hex::encode(sha) != chunk.sha256 {
                return Err(StorageError::Integrity(format!(
                    "chunk {} does not match the hash it was stored with",
                    chunk.seq
                )));
            }
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
        let now = (inner.now)();
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
        let now = (inner.now)();
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
            let provider = inner
                .providers
                .put_first(&row.object_key, &Payload::Memory(PutPayload::from(sealed)))
                .await?;
            inner
                .db
                .add_copy(&recording.id, end, &provider, (inner.now)())
                .await?;
        }
        Ok(())
    }

    /// Reads and decrypts one whole chunk, forgetting copies that turn out to be gone.
    async fn read_chunk(
        &self,
        cipher: &RecordingCipher,
        chunk: &Chunk,
    ) -> Result<Vec<u8>, StorageError> {
        let (bytes, gone) = self
            .inner
            .providers
            .read(&chunk.object_key, None, &chunk.providers)
            .await?;
        self.forget_gone(chunk, &gone).await;
        cipher.open_chunk(chunk.seq, &bytes)
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
                let read = store
                    .inner
                    .providers
                    .read(&chunk.object_key, Some(span.clone()), &chunk.providers)
                    .await;
                let bytes = match read {
                    Ok((bytes, gone)) => {
                        store.forget_gone(chunk, &gone).await;
                        bytes
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                for segment in &plan[i..=j] {
                    let from = (segment.object_range.start - span.start) as usize;
                    let to = (segment.object_range.end - span.start) as usize;
                    let Some(sealed) = bytes.get(from..to) else {
                        let _ = tx
                            .send(Err(StorageError::Integrity(format!(
                                "chunk {seq} is shorter than recorded"
                            ))))
                            .await;
                        return;
                    };
                    let mut buf = sealed.to_vec();
                    if let Err(e) = cipher.open_segment(seq, segment.segment, &mut buf) {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                    let piece = Bytes::from(buf).slice(segment.skip..segment.skip + segment.take);
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
        let now = (inner.now)();
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
        let now = (self.inner.now)().timestamp();
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
                (self.inner.now)(),
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
            .set_legal_hold(&recording.id, hold, reason, audit, (self.inner.now)())
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
            .shred_recording(&recording.id, (inner.now)(), audit)
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

    /// Deletes a shredded recording's objects from every provider; what fails stays for the
    /// next attempt (it is unreadable ciphertext meanwhile).
    async fn purge(&self, id: &str) {
        let inner = &self.inner;
        let Ok(chunks) = inner.db.chunks(id).await else {
            return;
        };
        let mut clean = true;
        for chunk in &chunks {
            for provider in inner.providers.names() {
                if let Err(e) = inner.providers.delete(&provider, &chunk.object_key).await {
                    tracing::warn!(recording_id = id, provider, error = %e, "deleting a shredded object failed");
                    clean = false;
                }
            }
        }
        if clean && let Err(e) = inner.db.forget_chunks(id).await {
            tracing::warn!(recording_id = id, error = %e, "forgetting shredded chunks failed");
        }
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
                        .add_copy(&chunk.recording_id, chunk.seq, target, (inner.now)())
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

    /// Runs replication and the abandoned-upload sweep until `shutdown` resolves.
    pub async fn run_background(self, shutdown: impl std::future::Future<Output = ()> + Send) {
        let interval = self.inner.config.replication_interval;
        let sweep_every = (self.inner.config.abandon_after / 4).max(Duration::from_secs(1));
        let work = async {
            let mut last_sweep = Instant::now();
            loop {
                match self.replicate_once().await {
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "replication pass failed"),
                }
                if last_sweep.elapsed() >= sweep_every {
                    last_sweep = Instant::now();
                    if let Err(e) = self.sweep_abandoned().await {
                        tracing::warn!(error = %e, "abandoned-upload sweep failed");
                    }
                }
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
    fn payload(&self) -> Payload<'_> {
        match self {
            Self::Memory { bytes, .. } => Payload::Memory(bytes.clone()),
            Self::Spool(spool) => Payload::File(&spool.path),
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
