//! Recordings: chunked upload, completion with a signed manifest, listing, signed downloads with
//! Range, legal hold, crypto-shredding and storage usage.

use axum::{
    Json as JsonResponse,
    body::Body,
    extract::{RawQuery, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wakili_core::{Role, consultation::Access, recording::RecordingStatus};
use wakili_db::models::{ChunkState, Recording};
use wakili_storage::{
    CompleteRequest, Completion, RequestError, StateError, StorageError, parse_range,
};

use crate::{
    ApiError, AppState,
    auth::{Admin, Auth},
    error::ErrorBody,
    extract::{DeferredJson, Json, Path},
    routes::consultations::visible,
};

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
}

async fn view(state: &AppState, recording: Recording) -> Result<RecordingView, ApiError> {
    let chunks = state.recordings.chunks(&recording.id).await?;
    let mut providers: Vec<String> = Vec::new();
    for name in chunks.iter().flat_map(|c| c.providers.iter()) {
        if !providers.contains(name) {
            providers.push(name.clone());
        }
    }
    let stored = chunks.iter().filter(|c| c.state == ChunkState::Stored);
    let (count, bytes) = if recording.status.is_final() {
        (
            u64::try_from(recording.chunk_count).unwrap_or(0),
            u64::try_from(recording.file_size_bytes).unwrap_or(0),
        )
    } else {
        stored.fold((0, 0), |(n, b), c| (n + 1, b + c.size))
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
    })
}

/// Loads a recording and its consultation's access for the caller; a recording of a consultation
/// the caller may not see is indistinguishable from none.
async fn load(state: &AppState, auth: &Auth, id: &str) -> Result<(Recording, Access), ApiError> {
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
    Ok((recording, access))
}

fn uploader_only(recording: &Recording, auth: &Auth) -> Result<(), ApiError> {
    if recording.started_by == auth.caller.user_id.as_str() {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "only the lawyer who started the recording uploads it",
        ))
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
        (status = 409, description = "Recording is not active with everyone's consent", body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<(StatusCode, JsonResponse<RecordingCreated>), ApiError> {
    let (consultation, access) = visible(&state, &auth, &id).await?;
    if access != Access::Lawyer {
        return Err(ApiError::forbidden(
            "only the consultation's lawyer records it",
        ));
    }
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
    if recording.started_by != auth.caller.user_id.as_str() {
        return Err(ApiError::forbidden("another user uploads this recording"));
    }
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

/// A chunk durably stored.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChunkStored {
    /// Its position.
    pub seq: u32,
    /// Plaintext bytes.
    pub size: u64,
    /// SHA-256 of the body, hex.
    pub sha256: String,
}

/// Upload chunk `seq` (raw bytes; `X-Content-SHA256` = the body's SHA-256 in hex). Answered only
/// once the encrypted chunk is durable on a provider. Idempotent for the same bytes.
#[utoipa::path(put, path = "/api/v1/recordings/{id}/chunks/{seq}", tag = "recordings", security(("bearer" = [])),
    params(("id" = String, Path, description = "Recording id"), ("seq" = u32, Path, description = "Chunk number from 0"),
        ("x-content-sha256" = String, Header, description = "SHA-256 of the body, 64 hex digits")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses(
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 201, description = "Stored", body = ChunkStored),
        (status = 200, description = "This exact chunk was already stored", body = ChunkStored),
        (status = 400, description = "Missing hash, or the body does not match it", body = ErrorBody),
        (status = 403, description = "Not the uploader", body = ErrorBody),
        (status = 404, description = "No such recording", body = ErrorBody),
        (status = 409, description = "Another body was stored at this position, or the recording is finalized", body = ErrorBody),
        (status = 413, description = "Larger than maxChunkBytes", body = ErrorBody),
        (status = 503, description = "No provider can store it now; retry", body = ErrorBody),
    ))]
pub async fn put_chunk(
    State(state): State<AppState>,
    auth: Auth,
    Path((id, seq)): Path<(String, u32)>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, JsonResponse<ChunkStored>), ApiError> {
    let (recording, _) = load(&state, &auth, &id).await?;
    uploader_only(&recording, &auth)?;
    let sha = headers
        .get(SHA256_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or(RequestError::BadHash)
        .map_err(StorageError::from)?;
    let max = state.recordings.max_chunk_bytes();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(StorageError::from(RequestError::BodyTooLarge { max }).into());
    }
    if declared == Some(0) {
        return Err(ApiError::bad_request("a chunk cannot be empty"));
    }
    let receipt = state
        .recordings
        .put_chunk(&recording, seq, sha, declared, body.into_data_stream())
        .await?;
    let status = if receipt.duplicate {
        StatusCode::OK
    } else {
        state.monitoring.recording_chunk(receipt.size);
        StatusCode::CREATED
    };
    Ok((
        status,
        JsonResponse(ChunkStored {
            seq: receipt.seq,
            size: receipt.size,
            sha256: receipt.sha256,
        }),
    ))
}

/// What the uploader reports when done.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CompleteBody {
    /// Chunks uploaded, numbered `0..chunkCount`.
    pub chunk_count: u32,
    /// Length in seconds.
    pub duration_seconds: Option<f64>,
    /// Container: `webm` or `mp4` (letters and digits, up to 16).
    pub format: Option<String>,
    /// Codecs, e.g. `vp8,opus` (up to 64 characters).
    pub codec: Option<String>,
    /// e.g. `1280x720`.
    pub resolution: Option<String>,
}

impl CompleteBody {
    fn validate(self) -> Result<CompleteRequest, ApiError> {
        let invalid =
            |m: &str| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", m);
        if self.chunk_count == 0 || self.chunk_count > wakili_storage::seal::MAX_CHUNKS {
            return Err(invalid("chunkCount: between 1 and 1048575"));
        }
        if self
            .duration_seconds
            .is_some_and(|d| !d.is_finite() || !(0.0..=7.0 * 86_400.0).contains(&d))
        {
            return Err(invalid(
                "durationSeconds: a number of seconds between 0 and 604800",
            ));
        }
        if self.format.as_ref().is_some_and(|f| {
            f.is_empty() || f.len() > 16 || !f.bytes().all(|b| b.is_ascii_alphanumeric())
        }) {
            return Err(invalid(
                "format: letters and digits, up to 16 (e.g. webm, mp4)",
            ));
        }
        let printable =
            |s: &String, max: usize| s.len() <= max && s.chars().all(|c| !c.is_control());
        if self.codec.as_ref().is_some_and(|c| !printable(c, 64)) {
            return Err(invalid("codec: up to 64 printable characters"));
        }
        if self.resolution.as_ref().is_some_and(|r| {
            let mut parts = r.split('x');
            !(r.len() <= 11
                && parts.next().is_some_and(|w| w.parse::<u16>().is_ok())
                && parts.next().is_some_and(|h| h.parse::<u16>().is_ok())
                && parts.next().is_none())
        }) {
            return Err(invalid("resolution: WIDTHxHEIGHT, e.g. 1280x720"));
        }
        Ok(CompleteRequest {
            chunk_count: self.chunk_count,
            duration_seconds: self.duration_seconds,
            format: self.format.map(|f| f.to_ascii_lowercase()),
            codec: self.codec,
            resolution: self.resolution,
        })
    }
}

/// Finish an upload: every chunk must be there (missing ones are listed); the signed manifest
/// is written.
#[utoipa::path(post, path = "/api/v1/recordings/{id}/complete", tag = "recordings", security(("bearer" = [])),
    params(("id" = String, Path, description = "Recording id")),
    request_body = CompleteBody,
    responses(
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 200, description = "Completed", body = RecordingView),
        (status = 202, description = "Every chunk is there but finalizing failed for now (a provider outage): the recording stays `finalizing` and the server retries until it is `completed`", body = RecordingView),
        (status = 400, description = "Chunks missing (listed in error.missing)", body = ErrorBody),
        (status = 403, description = "Not the uploader", body = ErrorBody),
        (status = 404, description = "No such recording", body = ErrorBody),
        (status = 409, description = "Not uploading", body = ErrorBody),
    ))]
pub async fn complete(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    body: DeferredJson<CompleteBody>,
) -> Result<(StatusCode, JsonResponse<RecordingView>), ApiError> {
    let (recording, _) = load(&state, &auth, &id).await?;
    uploader_only(&recording, &auth)?;
    let request = body.parse()?.validate()?;
    let outcome = state
        .recordings
        .complete(&recording, request, auth.caller.user_id.as_str())
        .await?;
    let (status, recording) = match outcome {
        Completion::Done(done) => (StatusCode::OK, done),
        Completion::Retrying(pending) => (StatusCode::ACCEPTED, pending),
    };
    Ok((status, JsonResponse(view(&state, recording).await?)))
}

/// A consultation's recordings (its participants, admins).
#[utoipa::path(get, path = "/api/v1/consultations/{id}/recordings", operation_id = "listRecordings", tag = "recordings", security(("bearer" = [])),
    params(("id" = String, Path, description = "Consultation id")),
    responses(
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 200, description = "Recordings, oldest first", body = Vec<RecordingView>),
        (status = 404, description = "No such consultation, or not the caller's", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<JsonResponse<Vec<RecordingView>>, ApiError> {
    let (consultation, _) = visible(&state, &auth, &id).await?;
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
    let (recording, _) = load(&state, &auth, &id).await?;
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
    let (recording, _) = load(&state, &auth, &id).await?;
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
    let (recording, _) = load(&state, &auth, &id).await?;
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

/// The signed manifest.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManifestResponse {
    /// The manifest, decoded for reading.
    #[schema(value_type = Object)]
    pub manifest: serde_json::Value,
    /// The signed manifest (JWS compact, EdDSA): what `wakili verify-recording` checks.
    pub jws: String,
    /// Id of the signing key.
    pub key_id: String,
}

/// The signed manifest of a finalized recording (participants, admins).
#[utoipa::path(get, path = "/api/v1/recordings/{id}/manifest", tag = "recordings", security(("bearer" = [])),
    params(("id" = String, Path, description = "Recording id")),
    responses(
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 200, description = "Manifest", body = ManifestResponse),
        (status = 404, description = "No such recording", body = ErrorBody),
        (status = 409, description = "Not finalized yet", body = ErrorBody),
    ))]
pub async fn manifest(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<JsonResponse<ManifestResponse>, ApiError> {
    let (recording, _) = load(&state, &auth, &id).await?;
    let Some(jws) = recording
        .manifest
        .clone()
        .filter(|_| recording.status.is_final())
    else {
        return Err(StorageError::from(StateError::NotReady(recording.status)).into());
    };
    let signer = state.recordings.signer();
    let manifest = wakili_storage::verify_manifest(&jws, &signer.verifying_key())
        .map_err(ApiError::internal)?;
    Ok(JsonResponse(ManifestResponse {
        manifest: serde_json::to_value(&manifest).map_err(ApiError::internal)?,
        jws,
        key_id: signer.key_id(),
    }))
}

/// The manifest signing key.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SigningKey {
    /// Key id (the JWS `kid`).
    pub key_id: String,
    /// Always `Ed25519`.
    pub algorithm: &'static str,
    /// SubjectPublicKeyInfo PEM.
    pub public_key_pem: String,
    /// The raw 32-byte public key, base64.
    pub public_key: String,
}

/// The public key manifests are signed with (no authentication needed).
#[utoipa::path(get, path = "/api/v1/recordings/signing-key", tag = "recordings",
    responses((status = 200, description = "The key", body = SigningKey)))]
pub async fn signing_key(
    State(state): State<AppState>,
) -> Result<JsonResponse<SigningKey>, ApiError> {
    let signer = state.recordings.signer();
    Ok(JsonResponse(SigningKey {
        key_id: signer.key_id(),
        algorithm: "Ed25519",
        public_key_pem: signer.public_key_pem().map_err(ApiError::internal)?,
        public_key: signer.public_key_base64(),
    }))
}

/// A short-lived download link.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DownloadUrl {
    /// Absolute URL; `GET` streams the decrypted media and supports `Range`.
    pub url: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// Issue a signed download URL valid for minutes (participants, admins). Audited.
#[utoipa::path(post, path = "/api/v1/recordings/{id}/download-url", tag = "recordings", security(("bearer" = [])),
    params(("id" = String, Path, description = "Recording id")),
    responses(
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 200, description = "The link", body = DownloadUrl),
        (status = 404, description = "No such recording", body = ErrorBody),
        (status = 409, description = "Not finalized yet", body = ErrorBody),
    ))]
pub async fn download_url(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<JsonResponse<DownloadUrl>, ApiError> {
    let (recording, _) = load(&state, &auth, &id).await?;
    let user = auth.caller.user_id.as_str();
    let bound = state
        .settings
        .storage
        .bind_download_to_user
        .then_some((user, auth.caller.role.as_str()));
    let (path, expires_at) = state
        .recordings
        .download_url(&recording, bound, user)
        .await?;
    Ok(JsonResponse(DownloadUrl {
        url: format!(
            "{}{path}",
            state.settings.public_url().trim_end_matches('/')
        ),
        expires_at,
    }))
}

/// Stream the decrypted media through a signed URL (no bearer token: the signature is the
/// credential). Supports a single `Range`; decrypts only the segments it needs.
#[utoipa::path(get, path = "/api/v1/recordings/{id}/media", tag = "recordings",
    params(("id" = String, Path, description = "Recording id"),
        ("exp" = i64, Query, description = "Expiry (Unix seconds)"),
        ("sig" = String, Query, description = "HMAC signature"),
        ("u" = Option<String>, Query, description = "User the link is bound to"),
        ("r" = Option<String>, Query, description = "Their role")),
    responses(
        (status = 200, description = "The media", content_type = "video/webm"),
        (status = 206, description = "The requested range"),
        (status = 403, description = "Expired, tampered, or the user is no longer entitled", body = ErrorBody),
        (status = 404, description = "No such recording", body = ErrorBody),
        (status = 416, description = "Range not satisfiable"),
    ))]
pub async fn media(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let grant = state
        .recordings
        .verify_download(&id, query.as_deref().unwrap_or(""))?;
    let recording = state.recordings.recording(&id).await?;
    if let Some((user, role)) = &grant.user {
        // A bound link works only while its user is still entitled.
        let consultation = state
            .db
            .consultation(&recording.consultation_id)
            .await?
            .ok_or_else(|| ApiError::not_found("no such recording"))?;
        let entitled = role == Role::Admin.as_str()
            || consultation.lawyer_id == *user
            || consultation.client_id == *user;
        if !entitled {
            return Err(ApiError::forbidden(
                "this link's user may no longer see the recording",
            ));
        }
    }
    let chunks_total = state
        .recordings
        .chunks(&recording.id)
        .await?
        .iter()
        .filter(|c| c.state == ChunkState::Stored)
        .map(|c| c.size)
        .sum::<u64>();
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(value) => match parse_range(value, chunks_total) {
            Ok(range) => range,
            Err(_) => {
                return Ok((
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    [(header::CONTENT_RANGE, format!("bytes */{chunks_total}"))],
                )
                    .into_response());
            }
        },
        None => None,
    };
    let media = state.recordings.media(&recording, range).await?;
    state
        .recordings
        .audit_download(&recording, &grant, range)
        .await?;
    let content_type = match recording.format.as_deref() {
        Some("mp4") => "video/mp4",
        Some("webm") | None => "video/webm",
        Some(_) => "application/octet-stream",
    };
    let (start, end) = media.range;
    let length = if media.total == 0 { 0 } else { end - start + 1 };
    let stream = tokio_stream_from(media.body);
    let mut response = Response::new(Body::from_stream(stream));
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    if let Some(sha) = &recording.sha256
        && let Ok(v) = HeaderValue::from_str(&format!("\"{sha}\""))
    {
        h.insert(header::ETAG, v);
    }
    if range.is_some() {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{}", media.total)) {
            response.headers_mut().insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(response)
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<bytes::Bytes, StorageError>>,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| {
        rx.poll_recv(cx).map(|item| {
            item.map(|r| {
                r.map_err(|e| {
                    tracing::error!(error = %e, "download aborted");
                    std::io::Error::other(e.to_string())
                })
            })
        })
    })
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
