//! Server recording wired in: the SFU's recorder (wakili-recorder) storing through the
//! recording store, and told by signaling what each room decides.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use sha2::Digest;
use wakili_core::room::ServerRecording;
use wakili_recorder::{Recorder, RecorderConfig, StoreError, TrackIdentity, TrackNote, TrackStore};
use wakili_settings::Settings;
use wakili_storage::{RecordingStore, StorageError};

/// The recorder from `[sfu]` (`record`, chunk length, queue bounds, the spool under the data
/// directory) taking packets from `sfu` and storing through `recordings`, as [`prepare`]
/// builds it; `None` when there is no SFU or `sfu.record` is off. Public for the
/// benchmark that records through an SFU of its own (`wakili-bench sfu`).
///
/// [`prepare`]: crate::prepare
pub fn start(
    settings: &Settings,
    sfu: Option<&wakili_sfu::SfuHandle>,
    recordings: &RecordingStore,
) -> Result<Option<Arc<Recorder>>, std::io::Error> {
    let (Some(sfu), true) = (sfu, settings.sfu.record) else {
        tracing::info!("server recording is off: the lawyer's browser records");
        return Ok(None);
    };
    let s = &settings.sfu;
    let config = RecorderConfig {
        chunk_interval: s.record_chunk,
        memory_bytes: s.record_memory_mib << 20,
        spool_bytes: s.record_spool_mib << 20,
        ..RecorderConfig::new(settings.data_dir.join("recorder-spool"))
    };
    let store = Arc::new(Tracks(recordings.clone()));
    Ok(Some(Arc::new(Recorder::new(sfu.clone(), store, config)?)))
}

/// Signaling's view of the recorder.
pub(crate) struct Signal(pub(crate) Arc<Recorder>);

#[async_trait]
impl wakili_signal::ServerRecorder for Signal {
    async fn apply(&self, consultation: &str, plan: Option<ServerRecording>) {
        self.0.apply(consultation, plan).await;
    }

    async fn records(&self, consultation: &str) -> bool {
        self.0.records(consultation).await
    }
}

/// The recording store as the recorder uses it.
struct Tracks(RecordingStore);

fn store_error(e: StorageError) -> StoreError {
    StoreError {
        // A track still finalizing (its completion is retried in the background) holds up its
        // session for now.
        transient: matches!(
            e,
            StorageError::Provider(_)
                | StorageError::Db(_)
                | StorageError::State(wakili_storage::StateError::TrackPending(_))
        ),
        message: e.to_string(),
    }
}

impl Tracks {
    async fn recording(&self, id: &str) -> Result<wakili_db::models::Recording, StoreError> {
        self.0.recording(id).await.map_err(store_error)
    }
}

#[async_trait]
impl TrackStore for Tracks {
    async fn open_session(
        &self,
        recording_id: &str,
        consultation_id: &str,
        by: &str,
    ) -> Result<(), StoreError> {
        self.0
            .create_session(recording_id, consultation_id, by)
            .await
            .map(|_| ())
            .map_err(store_error)
    }

    async fn open_track(
        &self,
        recording_id: &str,
        track: &TrackIdentity,
    ) -> Result<String, StoreError> {
        let session = self.recording(recording_id).await?;
        let meta = wakili_core::recording::TrackMeta {
            participant_id: track.participant_id.clone(),
            user_id: track.user_id.clone(),
            role: track.role,
            kind: match track.kind {
                wakili_recorder::TrackKind::Audio => wakili_core::recording::TrackKind::Audio,
                wakili_recorder::TrackKind::Video => wakili_core::recording::TrackKind::Video,
            },
            label: track.label.clone(),
            codec: track.codec.to_owned(),
            started_at: DateTime::<Utc>::from(track.started_at),
            start_offset_ms: track.start_offset_ms,
        };
        let created = self
            .0
            .create_track(&session, meta)
            .await
            .map_err(store_error)?;
        Ok(created.id)
    }

    async fn put_chunk(&self, track_id: &str, seq: u32, bytes: Vec<u8>) -> Result<(), StoreError> {
        let track = self.recording(track_id).await?;
        let sha256 = hex::encode(sha2::Sha256::digest(&bytes));
        let len = bytes.len() as u64;
        let body =
            futures_util::stream::iter([Ok::<_, std::convert::Infallible>(Bytes::from(bytes))]);
        self.0
            .put_chunk(&track, seq, &sha256, Some(len), body)
            .await
            .map(|_| ())
            .map_err(store_error)
    }

    async fn note(
        &self,
        track_id: &str,
        note: TrackNote,
        detail: serde_json::Value,
    ) -> Result<(), StoreError> {
        let track = self.recording(track_id).await?;
        let note = match note {
            TrackNote::Paused => wakili_storage::TrackNote::Paused,
            TrackNote::Resumed => wakili_storage::TrackNote::Resumed,
            TrackNote::Overflow => wakili_storage::TrackNote::Overflow,
            TrackNote::Stopped => wakili_storage::TrackNote::Stopped,
        };
        self.0
            .note_track(&track, note, detail)
            .await
            .map_err(store_error)
    }

    async fn finish_track(
        &self,
        track_id: &str,
        chunks: u32,
        duration_seconds: Option<f64>,
    ) -> Result<(), StoreError> {
        let track = self.recording(track_id).await?;
        self.0
            .finish_track(&track, chunks, duration_seconds, None)
            .await
            .map(|_| ())
            .map_err(store_error)
    }

    async fn finish_session(&self, recording_id: &str, by: &str) -> Result<(), StoreError> {
        let session = self.recording(recording_id).await?;
        if session.status.is_final() {
            return Ok(());
        }
        self.0
            .finalize_session(&session, by)
            .await
            .map(|_| ())
            .map_err(store_error)
    }

    async fn keep_alive(&self, ids: &[String]) -> Result<(), StoreError> {
        self.0.keep_alive(ids).await.map_err(store_error)
    }
}
