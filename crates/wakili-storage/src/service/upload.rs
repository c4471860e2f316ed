//! Uploads: creating a recording and storing its chunks, sealed as they arrive into memory or a
//! spool file.

use std::{path::PathBuf, sync::Arc};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use object_store::PutPayload;
use serde_json::json;
use tokio::{io::AsyncWriteExt, sync::OwnedSemaphorePermit};
use wakili_core::recording::{RecordingKind, RecordingStatus};
use wakili_db::models::{Chunk, ChunkState, Recording};

use super::RecordingStore;
use crate::{RecordingCipher, RequestError, StateError, StorageError, providers::Payload};

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

impl RecordingStore {
    /// Creates recording `id` (the id signaling announced) of `consultation_id`, uploaded by
    /// `user`: a fresh data key, wrapped by the current master key. Returns the existing one
    /// when called again; refused ([`StateError::ServerRecording`]) when the server records
    /// under that id.
    pub async fn create(
        &self,
        id: &str,
        consultation_id: &str,
        user: &str,
    ) -> Result<(Recording, bool), StorageError> {
        let (recording, created) = self
            .create_row(
                id,
                consultation_id,
                user,
                RecordingKind::Upload,
                None,
                None,
                json!({ "recordingId": id }),
                "recording.created",
            )
            .await?;
        if recording.kind.is_server() {
            return Err(StateError::ServerRecording.into());
        }
        Ok((recording, created))
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
        if recording.is_session() {
            return Err(StateError::WrongKind(
                "a session stores no chunks of its own: its tracks do",
            )
            .into());
        }
        if recording.status != RecordingStatus::Uploading {
            return Err(StateError::NotAccepting(recording.status).into());
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
        let held = inner.stores.records.claim_chunk(&claim, now).await?;
        if held.sha256 != sha256 || held.state == ChunkState::Terminator {
            return Err(StateError::ChunkConflict { seq }.into());
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
                if matches!(e, StorageError::Request(RequestError::HashMismatch { .. })) {
                    inner
                        .stores
                        .records
                        .release_chunk(&recording.id, seq, &sha256)
                        .await?;
                }
                return Err(e);
            }
        };
        if digest.sha256_hex() != sha256 {
            inner
                .stores
                .records
                .release_chunk(&recording.id, seq, &sha256)
                .await?;
            return Err(RequestError::HashMismatch {
                expected: sha256,
                actual: digest.sha256_hex(),
            }
            .into());
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
            .stores
            .records
            .chunk_stored(&stored, &holders, inner.clock.now())
            .await?
        {
            // Finalization began while this chunk was in flight: not acknowledged.
            return Err(StateError::NotAccepting(RecordingStatus::Finalizing).into());
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
            let part = part.map_err(|e| RequestError::Body(e.to_string()))?;
            if sealer.size() + part.len() as u64 > max {
                return Err(RequestError::BodyTooLarge { max }.into());
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
        Err(StorageError::Request(RequestError::BadHash))
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
