//! The recording store as the server uses it: create, upload chunks, complete, read, delete.
//!
//! Every acknowledged chunk is durable (a provider holds its ciphertext and the database row
//! says so) before the call returns. Bodies are sealed as they arrive into memory (bounded across
//! all uploads) or a spool file, so a provider failing mid-write is retried on the next one
//! without asking the client again.
//!
//! [`RecordingStore`] is one type; its methods are split by what they do: `upload` (create,
//! chunks), `finalize` (completion and the signed manifest), `download` (media and signed
//! links) and `maintenance` (hold, delete, replication, key re-wrapping, background passes).

mod download;
mod finalize;
mod maintenance;
mod session;
mod upload;

use std::{path::PathBuf, sync::Arc, time::Duration};

use base64::{Engine, engine::general_purpose::STANDARD};
use bytes::Bytes;
use tokio::sync::Semaphore;
use wakili_core::Clock;
use wakili_db::{
    AuditStore, ConsentStore, Db,
    models::{Chunk, NewAuditEvent, Recording},
};

pub use download::Media;
pub use finalize::{CompleteRequest, Completion, finalize_backoff};
pub use maintenance::Usage;
pub use session::TrackNote;
pub use upload::ChunkReceipt;

use crate::{
    ConsentEntry, CryptoError, Keyring, ManifestSigner, RecordingCipher, StateError, StorageError,
    WrappedKey, providers::Providers, seal::NONCE_PREFIX_BYTES,
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

/// The recording store. Cheap to clone.
#[derive(Clone)]
pub struct RecordingStore {
    inner: Arc<Inner>,
}

/// The stores the recording store uses, and nothing more.
#[derive(Clone)]
pub struct Stores {
    /// Recordings, chunks, copies, deletes and keys.
    pub records: Arc<dyn wakili_db::RecordingStore>,
    /// The audit log (downloads, holds, deletions).
    pub audit: Arc<dyn AuditStore>,
    /// Consent decisions, listed in the manifest.
    pub consents: Arc<dyn ConsentStore>,
}

impl Stores {
    /// The recording store's part of the whole repository.
    pub fn of(db: &Db) -> Self {
        Self {
            records: db.clone(),
            audit: db.clone(),
            consents: db.clone(),
        }
    }
}

struct Inner {
    stores: Stores,
    providers: Providers,
    keyring: Keyring,
    signer: ManifestSigner,
    url_secret: Vec<u8>,
    config: StorageConfig,
    clock: Clock,
    /// Bytes of `config.upload_memory_bytes` not reserved by a chunk in flight.
    upload_memory: Arc<Semaphore>,
}

impl RecordingStore {
    /// Assembles the store.
    pub fn new(
        stores: Stores,
        providers: Providers,
        keyring: Keyring,
        signer: ManifestSigner,
        url_secret: Vec<u8>,
        config: StorageConfig,
        clock: Clock,
    ) -> Result<Self, StorageError> {
        std::fs::create_dir_all(&config.spool_dir)
            .map_err(|e| StorageError::Spool(format!("{}: {e}", config.spool_dir.display())))?;
        let removed = maintenance::clean_spool(&config.spool_dir, config.spool_max_age);
        if removed > 0 {
            tracing::info!(removed, dir = %config.spool_dir.display(), "removed spool files left by an earlier run");
        }
        Ok(Self {
            inner: Arc::new(Inner {
                stores,
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

    /// A recording by id.
    pub async fn recording(&self, id: &str) -> Result<Recording, StorageError> {
        self.inner
            .stores
            .records
            .recording(id)
            .await?
            .ok_or(StorageError::State(StateError::NotFound))
    }

    /// A recording's chunk rows with their holders.
    pub async fn chunks(&self, id: &str) -> Result<Vec<Chunk>, StorageError> {
        Ok(self.inner.stores.records.chunks(id).await?)
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
                Err(
                    e @ (StorageError::Crypto(CryptoError::Tampered { .. })
                    | StorageError::Integrity(_)),
                ) => {
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
        self.drop_copy(chunk, provider, "flagging a corrupt copy failed")
            .await;
    }

    async fn forget_gone(&self, chunk: &Chunk, gone: &[String]) {
        for provider in gone {
            tracing::warn!(recording_id = %chunk.recording_id, seq = chunk.seq, provider, "copy missing: the replicator will restore it");
            self.drop_copy(chunk, provider, "forgetting a missing copy failed")
                .await;
        }
    }

    /// Removes `provider`'s copy of `chunk` from the records; logs `failed` when that fails.
    async fn drop_copy(&self, chunk: &Chunk, provider: &str, failed: &str) {
        if let Err(e) = self
            .inner
            .stores
            .records
            .drop_copy(&chunk.recording_id, chunk.seq, provider)
            .await
        {
            tracing::error!(error = %e, "{failed}");
        }
    }

    /// The consent decisions taken for recording `recording_id` (a session's id: its tracks
    /// share the session's consents), as the manifest lists them.
    async fn consents_of(
        &self,
        consultation_id: &str,
        recording_id: &str,
    ) -> Result<Vec<ConsentEntry>, StorageError> {
        Ok(self
            .inner
            .stores
            .consents
            .consents(consultation_id)
            .await?
            .into_iter()
            .filter(|c| c.recording_id == recording_id)
            .map(|c| ConsentEntry {
                user_id: c.user_id,
                participant_id: c.participant_id,
                notice_version: c.notice_version,
                granted: c.granted,
                decided_at: c.decided_at,
            })
            .collect())
    }

    fn cipher(&self, recording: &Recording) -> Result<RecordingCipher, StorageError> {
        let (Some(wrapped), Some(key_id)) = (&recording.wrapped_key, &recording.key_id) else {
            return Err(StateError::Shredded.into());
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

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
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
