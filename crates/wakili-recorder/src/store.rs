//! What the recorder needs of storage, and nothing more.

use std::time::SystemTime;

use async_trait::async_trait;
use wakili_core::ParticipantRole;

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrackKind {
    /// Audio.
    Audio,
    /// Video (camera or screen).
    Video,
}

/// Who and what a track file records, for its track recording and the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackIdentity {
    /// The participant (as signaling knows them) when the file began.
    pub participant_id: String,
    /// Their user id.
    pub user_id: String,
    /// Their role in the consultation.
    pub role: ParticipantRole,
    /// Audio or video.
    pub kind: TrackKind,
    /// `audio`, `video`, `screen` (the second video), `video-3`…
    pub label: String,
    /// `vp8` or `opus`.
    pub codec: &'static str,
    /// Wall-clock time of the file's timecode 0.
    pub started_at: SystemTime,
    /// Milliseconds from the session's start to the file's timecode 0 (negative if the
    /// track's first frame was captured before the session's start).
    pub start_offset_ms: i64,
}

/// Something about a track for the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackNote {
    /// Not recorded for now (consent pending, the participant left).
    Paused,
    /// Recorded again.
    Resumed,
    /// A chunk was dropped: memory and spool were full.
    Overflow,
    /// The file is finished.
    Stopped,
}

/// A storage failure.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct StoreError {
    /// Worth retrying (a provider or the database is unavailable).
    pub transient: bool,
    /// What happened.
    pub message: String,
}

/// Where recordings go: the session recording (the id signaling announced), one track
/// recording per file, chunks sealed and stored one by one.
#[async_trait]
pub trait TrackStore: Send + Sync + 'static {
    /// Creates the session recording `recording_id` of `consultation_id`, started by user
    /// `by`; succeeds again when it exists.
    async fn open_session(
        &self,
        recording_id: &str,
        consultation_id: &str,
        by: &str,
    ) -> Result<(), StoreError>;

    /// Creates a track recording of session `recording_id`; returns its id.
    async fn open_track(
        &self,
        recording_id: &str,
        track: &TrackIdentity,
    ) -> Result<String, StoreError>;

    /// Seals and stores chunk `seq` of track `track_id`; returns once it is durable.
    async fn put_chunk(&self, track_id: &str, seq: u32, bytes: Vec<u8>) -> Result<(), StoreError>;

    /// Writes `note` about track `track_id` to the audit log.
    async fn note(
        &self,
        track_id: &str,
        note: TrackNote,
        detail: serde_json::Value,
    ) -> Result<(), StoreError>;

    /// Completes track `track_id` with its `chunks` chunks and length.
    async fn finish_track(
        &self,
        track_id: &str,
        chunks: u32,
        duration_seconds: Option<f64>,
    ) -> Result<(), StoreError>;

    /// Signs the session's manifest, once its tracks are finished.
    async fn finish_session(&self, recording_id: &str, by: &str) -> Result<(), StoreError>;

    /// Tells storage these recordings are still being written.
    async fn keep_alive(&self, ids: &[String]) -> Result<(), StoreError>;
}
