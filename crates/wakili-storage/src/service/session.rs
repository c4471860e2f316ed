//! Server-side recording: a session (the parent the SFU's recorder opens under the id signaling
//! announced) and one track recording per participant track. Each track is an ordinary recording
//! (its own data key, chunks through [`RecordingStore::put_chunk`], its own manifest, downloads
//! with Range); the session holds no media and signs a manifest listing its tracks.

use base64::{Engine, engine::general_purpose::STANDARD};
use serde_json::json;
use sha2::{Digest, Sha256};
use wakili_core::recording::{RecordingKind, RecordingStatus, TrackMeta};
use wakili_db::models::{FinalizedRecording, NewRecording, Recording};

use super::{CompleteRequest, Completion, RecordingStore, audit};
use crate::{
    Derivative, Manifest, ManifestDraft, ManifestStatus, ManifestTrack, RequestError,
    SESSION_FORMAT, StateError, StorageError,
    seal::{DataKey, random_nonce_prefix},
    verify_manifest,
};

/// Who finalizes what nobody finished: the audit log's actor for the sweep.
const SYSTEM: &str = "system";

/// What happened to a track while it was recorded, for the audit log
/// (`recording.track_paused`, `…_resumed`, `…_gap`, `…_overflow`, `…_stopped`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackNote {
    /// Its sender muted it or stopped sending.
    Paused,
    /// Media flows again.
    Resumed,
    /// Media was lost (packets that never came); kept as a gap in the file.
    Gap,
    /// The recorder could not keep up and dropped media.
    Overflow,
    /// The recorder finished the track (it calls [`RecordingStore::finish_track`] next).
    Stopped,
}

impl TrackNote {
    /// Its audit action.
    pub fn action(self) -> &'static str {
        match self {
            Self::Paused => "recording.track_paused",
            Self::Resumed => "recording.track_resumed",
            Self::Gap => "recording.track_gap",
            Self::Overflow => "recording.track_overflow",
            Self::Stopped => "recording.track_stopped",
        }
    }
}

impl RecordingStore {
    /// Creates session recording `id` (the id signaling announced) of `consultation_id`, started
    /// by `by`: the parent of the tracks the server records. Returns the existing session (and
    /// `false`) when called again; refused when `id` names another kind of recording.
    pub async fn create_session(
        &self,
        id: &str,
        consultation_id: &str,
        by: &str,
    ) -> Result<(Recording, bool), StorageError> {
        let (session, created) = self
            .create_row(
                id,
                consultation_id,
                by,
                RecordingKind::Session,
                None,
                None,
                json!({ "recordingId": id, "server": true }),
                "recording.created",
            )
            .await?;
        if !session.is_session() {
            return Err(StateError::WrongKind(
                "this recording id names a recording uploaded by a browser, not a session",
            )
            .into());
        }
        Ok((session, created))
    }

    /// Creates a track of `session` (which must still be recording) with a fresh id and its own
    /// data key; `meta` says whose track it is and where it starts in the session's time.
    pub async fn create_track(
        &self,
        session: &Recording,
        meta: TrackMeta,
    ) -> Result<Recording, StorageError> {
        if !session.is_session() {
            return Err(StateError::WrongKind("tracks belong to a session recording").into());
        }
        meta.validate()
            .map_err(|e| RequestError::InvalidTrack(e.to_string()))?;
        let current = self.recording(&session.id).await?;
        if current.status != RecordingStatus::Uploading {
            return Err(StateError::NotAccepting(current.status).into());
        }
        let id = wakili_core::new_id();
        let detail = json!({
            "recordingId": session.id,
            "trackId": id,
            "participantId": meta.participant_id,
            "userId": meta.user_id,
            "role": meta.role,
            "kind": meta.kind,
            "label": meta.label,
            "codec": meta.codec,
            "startOffsetMs": meta.start_offset_ms,
        });
        let (track, _) = self
            .create_row(
                &id,
                &session.consultation_id,
                &session.started_by,
                RecordingKind::Track,
                Some(session.id.clone()),
                Some(meta),
                detail,
                "recording.track_started",
            )
            .await?;
        self.keep_alive(std::slice::from_ref(&session.id)).await?;
        Ok(track)
    }

    /// Writes what happened to `track` (`detail` is added to the audit entry: e.g. the gap's
    /// length) to the audit log.
    pub async fn note_track(
        &self,
        track: &Recording,
        action: TrackNote,
        detail: serde_json::Value,
    ) -> Result<(), StorageError> {
        let mut entry = json!({
            "recordingId": track.parent_id,
            "trackId": track.id,
        });
        if let (Some(entry), serde_json::Value::Object(extra)) = (entry.as_object_mut(), detail) {
            for (key, value) in extra {
                entry.entry(key).or_insert(value);
            }
        }
        let inner = &self.inner;
        inner
            .stores
            .audit
            .append_audit(
                audit(
                    &track.consultation_id,
                    &track.started_by,
                    action.action(),
                    entry,
                ),
                inner.clock.now(),
            )
            .await?;
        if action != TrackNote::Stopped {
            self.keep_alive(std::slice::from_ref(&track.id)).await?;
        }
        Ok(())
    }

    /// Completes `track` with its `chunk_count` chunks (`0..chunk_count`, every one stored):
    /// [`RecordingStore::complete`] with format `webm` and the track's codec.
    pub async fn finish_track(
        &self,
        track: &Recording,
        chunk_count: u32,
        duration_seconds: Option<f64>,
        resolution: Option<String>,
    ) -> Result<Completion, StorageError> {
        if !track.is_track() {
            return Err(StateError::WrongKind("only a session's track is finished").into());
        }
        let request = CompleteRequest {
            chunk_count,
            duration_seconds,
            format: Some("webm".into()),
            codec: track.track.as_ref().map(|m| m.codec.clone()),
            resolution,
        };
        let by = track.started_by.clone();
        self.complete(track, request, &by).await
    }

    /// Marks activity on the recordings `ids` (a session and its tracks) that are still
    /// recording, so a long pause is not taken for an abandoned recording.
    pub async fn keep_alive(&self, ids: &[String]) -> Result<(), StorageError> {
        self.inner
            .stores
            .records
            .touch_recordings(ids, self.inner.clock.now())
            .await?;
        Ok(())
    }

    /// A session's tracks, oldest first.
    pub async fn tracks(&self, session_id: &str) -> Result<Vec<Recording>, StorageError> {
        Ok(self.inner.stores.records.tracks(session_id).await?)
    }

    /// Finalizes `session`: its tracks still recording are finalized as incomplete first (with
    /// what was stored), then the session's manifest is signed, listing every track with its
    /// participant, offset and chunks. It is `completed` when every track completed, else
    /// `incomplete`. Finalizing a finalized session returns it.
    pub async fn finalize_session(
        &self,
        session: &Recording,
        by: &str,
    ) -> Result<Recording, StorageError> {
        self.finalize_session_as(session, ManifestStatus::Completed, by)
            .await
    }

    /// [`Self::finalize_session`], `Incomplete` whatever the tracks say when the session was
    /// abandoned.
    pub(super) async fn finalize_session_as(
        &self,
        session: &Recording,
        status: ManifestStatus,
        by: &str,
    ) -> Result<Recording, StorageError> {
        let inner = &self.inner;
        if !session.is_session() {
            return Err(StateError::WrongKind("only a session is finalized this way").into());
        }
        let current = self.recording(&session.id).await?;
        match current.status {
            s if s.is_final() => return Ok(current),
            RecordingStatus::Deleted => return Err(StateError::Shredded.into()),
            RecordingStatus::Uploading => {
                // Stops new tracks; a session already `finalizing` was claimed by the sweep.
                inner
                    .stores
                    .records
                    .abandon_recording(&session.id, inner.clock.now())
                    .await?;
            }
            _ => {}
        }
        let mut listed = Vec::new();
        for track in self.tracks(&session.id).await? {
            let track = self.settle_track(track).await?;
            let Some(meta) = &track.track else {
                return Err(StorageError::Integrity(format!(
                    "track {} has no metadata",
                    track.id
                )));
            };
            let Some(jws) = &track.manifest else {
                tracing::warn!(track_id = %track.id, status = %track.status, "a track without a manifest is left out of its session's manifest");
                continue;
            };
            let own = verify_manifest(jws, &inner.signer.verifying_key())?;
            listed.push(ManifestTrack::of(meta, &own));
        }
        let status = if listed.iter().all(|t| t.status == ManifestStatus::Completed) {
            status
        } else {
            ManifestStatus::Incomplete
        };
        let audit_head = inner
            .stores
            .audit
            .audit_head(&session.consultation_id)
            .await?;
        let consents = self
            .consents_of(&session.consultation_id, &session.id)
            .await?;
        let now = inner.clock.now();
        let draft = ManifestDraft {
            recording_id: session.id.clone(),
            consultation_id: session.consultation_id.clone(),
            status,
            format: SESSION_FORMAT.into(),
            codec: String::new(),
            resolution: None,
            duration_seconds: None,
            started_at: session.started_at,
            finalized_at: now,
            consents,
            audit_head,
        };
        let mut manifest = Manifest::build(draft, Vec::new(), 0, Sha256::digest([]).into())?;
        manifest.tracks = listed;
        manifest.derivative = Some(Derivative::combined());
        let jws = inner.signer.sign(&manifest)?;
        let final_status = match manifest.status {
            ManifestStatus::Completed => RecordingStatus::Completed,
            ManifestStatus::Incomplete => RecordingStatus::Incomplete,
        };
        let total: u64 = manifest.tracks.iter().map(|t| t.total_bytes).sum();
        let done = FinalizedRecording {
            id: session.id.clone(),
            status: final_status,
            format: Some(SESSION_FORMAT.into()),
            codec: None,
            resolution: None,
            duration_seconds: None,
            file_size_bytes: total,
            chunk_count: 0,
            sha256: manifest.sha256.clone(),
            manifest: jws,
            now,
        };
        let audit = audit(
            &session.consultation_id,
            by,
            match final_status {
                RecordingStatus::Completed => "recording.completed",
                _ => "recording.incomplete",
            },
            json!({
                "recordingId": session.id,
                "kind": "session",
                "server": true,
                "tracks": manifest.tracks.iter().map(|t| json!({
                    "trackId": t.recording_id,
                    "status": t.status,
                    "bytes": t.total_bytes,
                })).collect::<Vec<_>>(),
                "bytes": total,
            }),
        );
        Ok(inner
            .stores
            .records
            .finalize_recording(&done, audit)
            .await?)
    }

    /// Brings a track of a session being finalized to a final state: one still recording is
    /// finalized as incomplete with what was stored; one another task is finalizing is waited
    /// for by failing now ([`StateError::TrackPending`]).
    async fn settle_track(&self, track: Recording) -> Result<Recording, StorageError> {
        let inner = &self.inner;
        match track.status {
            RecordingStatus::Uploading => {
                if inner
                    .stores
                    .records
                    .abandon_recording(&track.id, inner.clock.now())
                    .await?
                {
                    let done = self
                        .finalize(
                            &track,
                            ManifestStatus::Incomplete,
                            CompleteRequest::default(),
                            SYSTEM,
                        )
                        .await?;
                    tracing::warn!(track_id = %track.id, "session finalized before its track: the track is incomplete");
                    Ok(done)
                } else {
                    // Someone else moved it on meanwhile: look again.
                    let now = self.recording(&track.id).await?;
                    if now.status.is_final() || now.status == RecordingStatus::Deleted {
                        Ok(now)
                    } else {
                        Err(StateError::TrackPending(track.id).into())
                    }
                }
            }
            RecordingStatus::Finalizing => Err(StateError::TrackPending(track.id).into()),
            _ => Ok(track),
        }
    }

    /// Inserts a recording row of `kind` with a fresh data key, and its audit entry.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn create_row(
        &self,
        id: &str,
        consultation_id: &str,
        by: &str,
        kind: RecordingKind,
        parent_id: Option<String>,
        track: Option<TrackMeta>,
        detail: serde_json::Value,
        action: &'static str,
    ) -> Result<(Recording, bool), StorageError> {
        let inner = &self.inner;
        let wrapped = inner.keyring.wrap(&DataKey::generate(), id)?;
        let new = NewRecording {
            id: id.to_owned(),
            consultation_id: consultation_id.to_owned(),
            started_by: by.to_owned(),
            wrapped_key: STANDARD.encode(&wrapped.bytes),
            key_id: wrapped.key_id,
            nonce_prefix: STANDARD.encode(random_nonce_prefix()),
            kind,
            parent_id,
            track,
            now: inner.clock.now(),
        };
        let audit = audit(consultation_id, by, action, detail);
        Ok(inner.stores.records.create_recording(&new, audit).await?)
    }
}
