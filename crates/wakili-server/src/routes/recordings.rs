//! Recordings: chunked upload, completion with a signed manifest, listing, signed downloads with
//! Range, legal hold, crypto-shredding and storage usage.

use axum::{Json as JsonResponse, extract::State, http::StatusCode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wakili_core::{
    ParticipantRole,
    recording::{RecordingKind, RecordingRefusal, RecordingStatus, RecordingUse, TrackKind},
};
use wakili_db::models::{ChunkState, Recording};
use wakili_storage::{StateError, StorageError};

use crate::{
    ApiError, AppState,
    auth::{Admin, Auth},
    error::ErrorBody,
    extract::{Json, Path},
    routes::consultations::visible,
};

pub use super::{recording_download::*, recording_upload::*};

/// The header carrying a chunk body's SHA-256 (64 hex digits).
pub const SHA256_HEADER: &str = "x-content-sha256";

/// A recording as the API shows it: the seed's `ConsultationRecording` fields plus status,
/// hash, chunk count and the providers holding it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordingView {
    /// Recording id (as announced by signaling's `recording:state`).
    pub id: String,
    /// Its consultation.
    pub consultation_id: String,
    /// Who uploads it.
    pub started_by: String,
    /// `uploading`, `finalizing`, `completed`, `incomplete` or `deleted`.
    pub status: RecordingStatus,
    /// Finalized after its uploader vanished, with chunks missing.
    pub incomplete: bool,
    /// Container, e.g. `webm`.
    pub format: Option<String>,
    /// Codecs.
    pub codec: Option<String>,
    /// e.g. `1280x720`.
    pub resolution: Option<String>,
    /// Length the uploader reported.
    pub duration_seconds: Option<f64>,
    /// Plaintext bytes (final) or bytes stored so far (uploading).
    pub file_size_bytes: u64,
    /// Chunks in the manifest (final) or stored so far (uploading).
    pub chunk_count: u64,
    /// SHA-256 of the whole media, hex (final).
    pub sha256: Option<String>,
    /// Providers holding its chunks.
    pub providers: Vec<String>,
    /// Deletion is refused while set.
    pub legal_hold: bool,
    /// Why it is held.
    pub legal_hold_reason: Option<String>,
    /// When recording began.
    pub started_at: DateTime<Utc>,
    /// When it was finalized.
    pub completed_at: Option<DateTime<Utc>>,
    /// When it was crypto-shredded.
    pub deleted_at: Option<DateTime<Utc>>,
    /// Row creation.
    pub created_at: DateTime<Utc>,
    /// `upload` (from the lawyer's browser), `session` (recorded by the server: its media are
    /// its `tracks`) or `track` (one participant track of a session).
    pub kind: RecordingKind,
    /// A track's session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// A track's participant, kind, codec and offset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub track: Option<TrackView>,
    /// A session's tracks, oldest first; each downloads under its own id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracks: Option<Vec<TrackView>>,
}

/// One participant track of a session recording.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrackView {
    /// The track's recording id: its media downloads under it (`/recordings/{id}/download-url`).
    pub id: String,
    /// The participant (connection) that sent it.
    pub participant_id: String,
    /// Their user id.
    pub user_id: String,
    /// Their part in the consultation.
    pub role: ParticipantRole,
    /// `audio` or `video`.
    pub kind: TrackKind,
    /// Which of their tracks: `audio`, `video`, `screen`, …
    #[schema(pattern = "^[a-z0-9-]{1,32}$", min_length = 1, max_length = 32)]
    pub label: String,
    /// Its codec, e.g. `vp8` or `opus`.
    #[schema(pattern = "^[a-z0-9.-]{1,32}$", min_length = 1, max_length = 32)]
    pub codec: String,
    /// Wall-clock time of its first media.
    pub started_at: DateTime<Utc>,
    /// Milliseconds from the session's start to its first media.
    #[schema(minimum = 0)]
    pub start_offset_ms: i64,
    /// `uploading` while recorded, then `completed` or `incomplete`.
    pub status: RecordingStatus,
    /// Bytes of its media (final), or stored so far.
    pub size_bytes: u64,
    /// Its length in seconds, once finished.
    pub duration_seconds: Option<f64>,
}

/// `(chunk count, bytes)` of `recording`: as finalized, or stored so far.
fn stored(recording: &Recording, chunks: &[wakili_db::models::Chunk]) -> (u64, u64) {
    if recording.status.is_final() {
        (
            u64::try_from(recording.chunk_count).unwrap_or(0),
            u64::try_from(recording.file_size_bytes).unwrap_or(0),
        )
    } else {
        chunks
            .iter()
            .filter(|c| c.state == ChunkState::Stored)
            .fold((0, 0), |(n, b), c| (n + 1, b + c.size))
    }
}

async fn track_view(state: &AppState, track: Recording) -> Result<Option<TrackView>, ApiError> {
    let Some(meta) = track.track.clone() else {
        return Ok(None);
    };
    let chunks = state.recordings.chunks(&track.id).await?;
    let (_, bytes) = stored(&track, &chunks);
    Ok(Some(TrackView {
        id: track.id,
        participant_id: meta.participant_id,
        user_id: meta.user_id,
        role: meta.role,
        kind: meta.kind,
        label: meta.label,
        codec: meta.codec,
        started_at: meta.started_at,
        start_offset_ms: meta.start_offset_ms,
        status: track.status,
        size_bytes: bytes,
        duration_seconds: track.duration_seconds,
    }))
}

pub(super) async fn view(
    state: &AppState,
    recording: Recording,
) -> Result<RecordingView, ApiError> {
    let tracks = if recording.is_session() {
        let mut views = Vec::new();
        let mut bytes = 0;
        for track in state.recordings.tracks(&recording.id).await? {
            if let Some(v) = track_view(state, track).await? {
                bytes += v.size_bytes;
                views.push(v);
            }
        }
        Some((views, bytes))
    } else {
        None
    };
    let track = if recording.is_track() {
        track_view(state, recording.clone()).await?
    } else {
        None
    };
    let chunks = state.recordings.chunks(&recording.id).await?;
    let mut providers: Vec<String> = Vec::new();
    for name in chunks.iter().flat_map(|c| c.providers.iter()) {
        if !providers.contains(name) {
            providers.push(name.clone());
        }
    }
    let (count, bytes) = match &tracks {
        // A session's bytes are its tracks'.
        Some((_, bytes)) if !recording.status.is_final() => (0, *bytes),
        _ => stored(&recording, &chunks),
    };
    Ok(RecordingView {
        incomplete: recording.status == RecordingStatus::Incomplete,
        id: recording.id,
        consultation_id: recording.consultation_id,
        started_by: recording.started_by,
        status: recording.status,
        format: recording.format,
        codec: recording.codec,
        resolution: recording.resolution,
        duration_seconds: recording.duration_seconds,
        file_size_bytes: bytes,
        chunk_count: count,
        sha256: recording.sha256,
        providers,
        legal_hold: recording.legal_hold,
        legal_hold_reason: recording.legal_hold_reason,
        started_at: recording.started_at,
        completed_at: recording.completed_at,
        deleted_at: recording.deleted_at,
        created_at: recording.created_at,
        kind: recording.kind,
        session_id: recording.parent_id,
        track,
        tracks: tracks.map(|(views, _)| views),
    })
}

/// Loads a recording for `purpose`, refused by [`RecordingUse::check`]: a recording of a
/// consultation the caller may not see is indistinguishable from none.
pub(super) async fn load(
    state: &AppState,
    auth: &Auth,
    id: &str,
    purpose: RecordingUse,
) -> Result<Recording, ApiError> {
    let hidden = || ApiError::not_found("no such recording");
    if id.is_empty() || id.len() > 64 {
        return Err(hidden());
    }
    let recording = match state.recordings.recording(id).await {
        Ok(r) => r,
        Err(StorageError::State(StateError::NotFound)) => return Err(hidden()),
        Err(e) => return Err(e.into()),
    };
    let (_, access) = visible(state, auth, &recording.consultation_id)
        .await
        .map_err(|_| hidden())?;
    let is_uploader = recording.started_by == auth.caller.user_id.as_str();
    purpose.check(access, is_uploader).map_err(refused)?;
    purpose.fits(recording.kind).map_err(refused)?;
    Ok(recording)
}

/// The API's answer to a refused [`RecordingUse`].
pub(super) fn refused(refusal: RecordingRefusal) -> ApiError {
    match refusal {
        RecordingRefusal::Hidden => ApiError::not_found("no such recording"),
        RecordingRefusal::Forbidden(why) => ApiError::forbidden(why),
        RecordingRefusal::ServerRecording(why) => {
            ApiError::new(StatusCode::CONFLICT, "server_recording", why)
        }
    }
}

/// Where to send a recording's chunks.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordingCreated {
    /// The recording id.
    pub recording_id: String,
    /// Largest chunk accepted, in bytes.
    pub max_chunk_bytes: u64,
    /// `PUT` each chunk here, `{seq}` from 0, with its SHA-256 in `X-Content-SHA256`.
    pub chunk_url_template: String,
    /// `POST` here when every chunk is uploaded.
    pub complete_url: String,
    /// The recording as stored.
    pub recording: RecordingView,
}

/// Start storing the consultation's active recording (the lawyer, once every participant
/// consented over signaling).
#[utoipa::path(post, path = "/api/v1/consultations/{id}/recordings", operation_id = "startRecording", tag = "recordings", security(("bearer" = [])),
    params(("id" = String, Path, description = "Consultation id")),
    responses(
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 201, description = "Created", body = RecordingCreated),
        (status = 200, description = "Already created for this recording", body = RecordingCreated),
        (status = 403, description = "Not the consultation's lawyer", body = ErrorBody),
        (status = 404, description = "No such consultation, or not the caller's", body = ErrorBody),
        (status = 409, description = "Recording is not active with everyone's consent, or the server records it (`server_recording`)", body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<(StatusCode, JsonResponse<RecordingCreated>), ApiError> {
    let (consultation, access) = visible(&state, &auth, &id).await?;
    RecordingUse::Start.check(access, false).map_err(refused)?;
    let signaled = state
        .signaling
        .recording(&consultation.id)
        .await
        .map_err(|e| ApiError::unavailable(format!("signaling state is unavailable: {e}")))?;
    let Some(recording_id) = signaled.recording_id.filter(|_| signaled.active) else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "recording_not_active",
            "recording is not active: start it over signaling (recording:start) and wait until every participant has consented",
        ));
    };
    let (recording, created) = state
        .recordings
        .create(
            &recording_id,
            &consultation.id,
            auth.caller.user_id.as_str(),
        )
        .await?;
    RecordingUse::Upload
        .check(access, recording.started_by == auth.caller.user_id.as_str())
        .map_err(refused)?;
    let body = RecordingCreated {
        recording_id: recording.id.clone(),
        max_chunk_bytes: state.recordings.max_chunk_bytes(),
        chunk_url_template: format!("/api/v1/recordings/{}/chunks/{{seq}}", recording.id),
        complete_url: format!("/api/v1/recordings/{}/complete", recording.id),
        recording: view(&state, recording).await?,
    };
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, JsonResponse(body)))
}

/// A consultation's recordings (its lawyer and client, admins; not guests): uploads and
/// server-made sessions, each session with its tracks.
#[utoipa::path(get, path = "/api/v1/consultations/{id}/recordings", operation_id = "listRecordings", tag = "recordings", security(("bearer" = [])),
    params(("id" = String, Path, description = "Consultation id")),
    responses(
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 200, description = "Recordings, oldest first", body = Vec<RecordingView>),
        (status = 403, description = "A guest: recordings are for the parties", body = ErrorBody),
        (status = 404, description = "No such consultation, or not the caller's", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<JsonResponse<Vec<RecordingView>>, ApiError> {
    let (consultation, access) = visible(&state, &auth, &id).await?;
    RecordingUse::Read.check(access, false).map_err(refused)?;
    let recordings = state.db.recordings_of(&consultation.id).await?;
    let mut out = Vec::with_capacity(recordings.len());
    for recording in recordings {
        out.push(view(&state, recording).await?);
    }
    Ok(JsonResponse(out))
}

/// One recording (its consultation's participants, admins).
#[utoipa::path(get, path = "/api/v1/recordings/{id}", operation_id = "getRecording", tag = "recordings", security(("bearer" = [])),
    params(("id" = String, Path, description = "Recording id")),
    responses(
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 200, description = "The recording", body = RecordingView),
        (status = 404, description = "No such recording, or not the caller's", body = ErrorBody),
    ))]
pub async fn get(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<JsonResponse<RecordingView>, ApiError> {
    let recording = load(&state, &auth, &id, RecordingUse::Read).await?;
    Ok(JsonResponse(view(&state, recording).await?))
}

/// Crypto-shred a recording (admins): its data key is destroyed first, then its objects.
#[utoipa::path(delete, path = "/api/v1/recordings/{id}", operation_id = "deleteRecording", tag = "recordings", security(("bearer" = [])),
    params(("id" = String, Path, description = "Recording id")),
    responses(
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 204, description = "Deleted: nothing of it can be decrypted any more"),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such recording", body = ErrorBody),
        (status = 409, description = "Under legal hold", body = ErrorBody),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    Admin(auth): Admin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let recording = load(&state, &auth, &id, RecordingUse::Manage).await?;
    state
        .recordings
        .delete(&recording, auth.caller.user_id.as_str())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Legal hold on or off.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LegalHoldBody {
    /// Whether deletion is refused.
    pub hold: bool,
    /// Why (case reference), up to 500 characters.
    pub reason: Option<String>,
}

/// Place or lift a legal hold (admins).
#[utoipa::path(put, path = "/api/v1/recordings/{id}/legal-hold", tag = "recordings", security(("bearer" = [])),
    params(("id" = String, Path, description = "Recording id")),
    request_body = LegalHoldBody,
    responses(
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 200, description = "Updated", body = RecordingView),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such recording", body = ErrorBody),
    ))]
pub async fn legal_hold(
    State(state): State<AppState>,
    Admin(auth): Admin,
    Path(id): Path<String>,
    Json(body): Json<LegalHoldBody>,
) -> Result<JsonResponse<RecordingView>, ApiError> {
    if body
        .reason
        .as_ref()
        .is_some_and(|r| r.chars().count() > 500)
    {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "reason: up to 500 characters",
        ));
    }
    let recording = load(&state, &auth, &id, RecordingUse::Manage).await?;
    let updated = state
        .recordings
        .legal_hold(
            &recording,
            body.hold,
            body.reason,
            auth.caller.user_id.as_str(),
        )
        .await?;
    Ok(JsonResponse(view(&state, updated).await?))
}

/// One provider's health and holdings.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderUsageView {
    /// Name.
    pub name: String,
    /// `s3`, `r2` or `local`.
    pub kind: String,
    /// Taking writes without recent failures.
    pub healthy: bool,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// Seconds before it is tried again, when cooling down.
    pub cooldown_seconds: Option<u64>,
    /// Its last error.
    pub last_error: Option<String>,
    /// Recent p99 latency of its writes in milliseconds (once enough are known); a write
    /// slower than this is hedged to the next provider.
    pub put_p99_ms: Option<u64>,
    /// Recordings with objects there.
    pub recordings: u64,
    /// Objects held.
    pub objects: u64,
    /// Ciphertext bytes held.
    pub bytes: u64,
}

/// Storage usage.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageUsage {
    /// Providers in order of preference.
    pub providers: Vec<ProviderUsageView>,
    /// Objects still to copy to a wanted provider.
    pub replication_backlog: u64,
    /// Copies kept of each chunk.
    pub replicas: usize,
    /// Object deletes of shredded recordings still to be done (retried in the background).
    pub pending_deletes: u64,
    /// Recordings whose data key is still wrapped by a retired master key; at 0 the retired
    /// keys can be removed from `storage.retired_master_key_files`.
    pub keys_under_retired_master_keys: u64,
}

/// Recordings and bytes per provider, replication backlog, provider health (admins).
#[utoipa::path(get, path = "/api/v1/storage/usage", tag = "recordings", security(("bearer" = [])),
    responses(
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 200, description = "Usage", body = StorageUsage),
        (status = 403, description = "Not an admin", body = ErrorBody),
    ))]
pub async fn usage(
    State(state): State<AppState>,
    _: Admin,
) -> Result<JsonResponse<StorageUsage>, ApiError> {
    let usage = state.recordings.usage().await?;
    Ok(JsonResponse(StorageUsage {
        providers: usage
            .providers
            .into_iter()
            .map(|(status, held)| ProviderUsageView {
                kind: serde_json::to_value(status.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                name: status.name,
                healthy: status.healthy,
                consecutive_failures: status.consecutive_failures,
                cooldown_seconds: status.cooldown_left.map(|d| d.as_secs().max(1)),
                last_error: status.last_error,
                put_p99_ms: status
                    .put_p99
                    .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                recordings: held.recordings,
                objects: held.objects,
                bytes: held.bytes,
            })
            .collect(),
        replication_backlog: usage.replication_backlog,
        replicas: usage.replicas,
        pending_deletes: usage.pending_deletes,
        keys_under_retired_master_keys: usage.keys_under_retired_master_keys,
    }))
}
