//! Downloads: the decrypted media (or a range of it), signed download links and their audit.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde_json::json;
use tokio::sync::mpsc;
use wakili_core::recording::RecordingStatus;
use wakili_db::models::{Chunk, ChunkState, Recording};

use super::{RecordingStore, audit};
use crate::{
    Layout, StateError, StorageError,
    url::{self, DownloadGrant},
};

/// The decrypted media (or a range of it), streamed.
pub struct Media {
    /// Length of the whole media.
    pub total: u64,
    /// The bytes served: `start..=end`.
    pub range: (u64, u64),
    /// The plaintext, produced as it is read and decrypted.
    pub body: mpsc::Receiver<Result<Bytes, StorageError>>,
}

impl RecordingStore {
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
        finalized(recording)?;
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
            .stores
            .audit
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
            .stores
            .audit
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
}

/// Whether `recording` can be downloaded: finalized, not shredded, not a session (whose tracks
/// are downloaded).
fn readable(recording: &Recording) -> Result<(), StorageError> {
    if recording.is_session() {
        return Err(StorageError::State(StateError::NoMedia));
    }
    finalized(recording)
}

/// Whether `recording` is finalized and not shredded (a session's link serves the file
/// combined from its tracks).
fn finalized(recording: &Recording) -> Result<(), StorageError> {
    match recording.status {
        RecordingStatus::Deleted => Err(StorageError::State(StateError::Shredded)),
        status if status.is_final() => Ok(()),
        status => Err(StorageError::State(StateError::NotReady(status))),
    }
}
