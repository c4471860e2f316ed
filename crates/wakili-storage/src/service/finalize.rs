//! Completion: checking every chunk is there, closing the encrypted stream, signing the
//! manifest; retrying finalizations that failed and finalizing abandoned uploads.

use std::time::Duration;

use object_store::PutPayload;
use serde_json::json;
use sha2::{Digest, Sha256};
use wakili_core::recording::{Completeness, RecordingKind, RecordingStatus};
use wakili_db::models::{Chunk, ChunkState, FinalizedRecording, Recording};

use super::{RecordingStore, audit, chrono_duration};
use crate::{
    ChunkEntry, Manifest, ManifestDraft, ManifestStatus, ProviderError, RecordingCipher,
    RequestError, StateError, StorageError, providers::Payload,
};

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

impl RecordingStore {
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
        if recording.is_session() {
            return Err(StateError::WrongKind(
                "a session has no chunks of its own: it is finalized with its tracks",
            )
            .into());
        }
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
                    .stores
                    .records
                    .begin_finalizing(&recording.id, &kept, lease_until, now)
                    .await?
                {
                    return Err(StateError::NotAccepting(RecordingStatus::Finalizing).into());
                }
                let chunks = inner.stores.records.chunks(&recording.id).await?;
                let present: Vec<u32> = chunks
                    .iter()
                    .filter(|c| c.state == ChunkState::Stored)
                    .map(|c| c.seq)
                    .collect();
                let check = Completeness::of(request.chunk_count, &present);
                if !check.is_complete() {
                    inner
                        .stores
                        .records
                        .reopen_recording(&recording.id, now)
                        .await?;
                    return Err(RequestError::Missing {
                        missing: check.missing,
                        unexpected: check.unexpected,
                    }
                    .into());
                }
                request
            }
            // A completion that failed is retried by the server; the uploader asking again
            // starts the next attempt now unless one is running.
            RecordingStatus::Finalizing => {
                match inner
                    .stores
                    .records
                    .claim_finalization(&recording.id, lease_until, now)
                    .await?
                {
                    Some(kept) => serde_json::from_str(&kept).unwrap_or(request),
                    None => return Ok(Completion::Retrying(recording.clone())),
                }
            }
            other => return Err(StateError::NotAccepting(other).into()),
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
                    .stores
                    .records
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
            .stores
            .records
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
                        .stores
                        .records
                        .finalization_failed(&id, inner.clock.now() + chrono_duration(wait))
                        .await?;
                }
            }
        }
        Ok(done)
    }

    /// Finalizes recordings whose uploader vanished, with what arrived, flagged incomplete; an
    /// abandoned session is finalized with its tracks ([`Self::finalize_session`]), incomplete.
    /// Returns how many were finalized.
    pub async fn sweep_abandoned(&self) -> Result<usize, StorageError> {
        let inner = &self.inner;
        let now = inner.clock.now();
        let before = now
            - chrono::Duration::from_std(inner.config.abandon_after)
                .unwrap_or(chrono::Duration::minutes(10));
        let ids = inner
            .stores
            .records
            .claim_abandoned(before, now, 16)
            .await?;
        // Tracks before the uploads and the sessions, so a session claimed in the same pass
        // finds its silent tracks already finalized.
        let mut claimed = Vec::with_capacity(ids.len());
        for id in ids {
            claimed.push(self.recording(&id).await?);
        }
        claimed.sort_by_key(|r| match r.kind {
            RecordingKind::Track => 0,
            RecordingKind::Upload => 1,
            RecordingKind::Session => 2,
        });
        let mut done = 0;
        for recording in claimed {
            let id = recording.id.clone();
            let result = if recording.is_session() {
                self.finalize_session_as(&recording, ManifestStatus::Incomplete, "system")
                    .await
            } else {
                self.finalize(
                    &recording,
                    ManifestStatus::Incomplete,
                    CompleteRequest::default(),
                    "system",
                )
                .await
            };
            match result {
                Ok(_) => {
                    tracing::warn!(recording_id = %id, kind = %recording.kind, "recording abandoned: finalized as incomplete");
                    done += 1;
                }
                Err(e) => {
                    tracing::error!(recording_id = %id, error = %e, "finalizing an abandoned recording failed; will retry")
                }
            }
        }
        Ok(done)
    }

    /// Reads every stored chunk back (checking it decrypts and matches its hash), closes the
    /// encrypted stream with its terminator, and signs the manifest.
    pub(super) async fn finalize(
        &self,
        recording: &Recording,
        status: ManifestStatus,
        request: CompleteRequest,
        by: &str,
    ) -> Result<Recording, StorageError> {
        let inner = &self.inner;
        let cipher = self.cipher(recording)?;
        let chunks: Vec<Chunk> = inner
            .stores
            .records
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

        let consents = self
            .consents_of(
                &recording.consultation_id,
                recording.parent_id.as_deref().unwrap_or(&recording.id),
            )
            .await?;
        let audit_head = inner
            .stores
            .audit
            .audit_head(&recording.consultation_id)
            .await?;
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
            audit_head,
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
                "kind": recording.kind.as_str(),
                "chunks": manifest.chunks.len(),
                "bytes": manifest.total_bytes,
                "sha256": manifest.sha256,
                "missing": manifest.missing,
            }),
        );
        Ok(inner
            .stores
            .records
            .finalize_recording(&done, audit)
            .await?)
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
        let mut held = inner.stores.records.claim_chunk(&row, now).await?;
        if held.state == ChunkState::Pending {
            // A claim whose body never arrived sits where the stream ends: it was never
            // acknowledged, so the terminator takes its place.
            inner
                .stores
                .records
                .release_chunk(&recording.id, end, &held.sha256)
                .await?;
            held = inner.stores.records.claim_chunk(&row, now).await?;
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
                    .stores
                    .records
                    .add_copy(&recording.id, end, &provider, inner.clock.now())
                    .await?;
            }
        }
        Ok(())
    }
}

/// Whether a failed finalization is worth retrying as is: providers or the database were
/// unavailable.
fn transient(e: &StorageError) -> bool {
    matches!(
        e,
        StorageError::Provider(ProviderError::NoProvider(_))
            | StorageError::Provider(ProviderError::Provider { .. })
            | StorageError::Provider(ProviderError::ObjectMissing(_))
            | StorageError::Db(_)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finalization_retries_back_off_from_one_second_to_five_minutes() {
        let waits: Vec<u64> = (1..=12).map(|n| finalize_backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert_eq!(finalize_backoff(0), Duration::from_secs(1));
        assert_eq!(finalize_backoff(u32::MAX), Duration::from_secs(300));
    }
}
