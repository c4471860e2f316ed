//! Uploading a recording: chunks, each durable before it is acknowledged, then completion with
//! a signed manifest.

use axum::{
    Json as JsonResponse,
    body::Body,
    extract::State,
    http::{HeaderMap, StatusCode, header},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wakili_core::recording::RecordingUse;
use wakili_storage::{CompleteRequest, Completion, RequestError, StorageError};

use crate::{
    ApiError, AppState,
    auth::Auth,
    error::ErrorBody,
    extract::{DeferredJson, Path},
};

use super::recordings::{RecordingView, SHA256_HEADER, load, view};

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
        (status = 409, description = "Another body was stored at this position, the recording is finalized, or the server records it (`server_recording`)", body = ErrorBody),
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
    let recording = load(&state, &auth, &id, RecordingUse::Upload).await?;
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
        (status = 409, description = "Not uploading, or the server records it (`server_recording`)", body = ErrorBody),
    ))]
pub async fn complete(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    body: DeferredJson<CompleteBody>,
) -> Result<(StatusCode, JsonResponse<RecordingView>), ApiError> {
    let recording = load(&state, &auth, &id, RecordingUse::Upload).await?;
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
