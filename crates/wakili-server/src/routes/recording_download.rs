//! Reading a recording: its signed manifest, the public signing key, short-lived download links
//! and the media itself (with Range).

use axum::{
    Json as JsonResponse,
    body::Body,
    extract::{RawQuery, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use wakili_core::{Caller, Role, UserId, consultation::Access, recording::RecordingUse};
use wakili_db::models::ChunkState;
use wakili_storage::{StateError, StorageError, parse_range};

use crate::{ApiError, AppState, auth::Auth, error::ErrorBody, extract::Path};

use super::recordings::load;

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
    let recording = load(&state, &auth, &id, RecordingUse::Read).await?;
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
    let recording = load(&state, &auth, &id, RecordingUse::Download).await?;
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
        (status = 200, description = "The media; for a session recording, the one file remuxed from its tracks without transcoding (a derivative: the tracks are the evidence), without Range", content_type = "video/webm"),
        (status = 206, description = "The requested range"),
        (status = 403, description = "Expired, tampered, or the user is no longer entitled", body = ErrorBody),
        (status = 404, description = "No such recording", body = ErrorBody),
        (status = 409, description = "Not finalized, or shredded", body = ErrorBody),
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
        let access = match (UserId::parse(user.as_str()), role.parse::<Role>()) {
            (Ok(user_id), Ok(role)) => Access::of(
                &Caller { user_id, role },
                &consultation.lawyer_id,
                &consultation.client_id,
            ),
            _ => Access::None,
        };
        if RecordingUse::Download.check(access, false).is_err() {
            return Err(ApiError::forbidden(
                "this link's user may no longer see the recording",
            ));
        }
    }
    if recording.is_session() {
        return combined_file(&state, &recording, &grant).await;
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

/// A session's one playable file: its tracks remuxed as they are read (no Range: its length is
/// known only at the end).
async fn combined_file(
    state: &AppState,
    session: &wakili_db::models::Recording,
    grant: &wakili_storage::DownloadGrant,
) -> Result<Response, ApiError> {
    let body = crate::combined::combined(&state.recordings, session).await?;
    state
        .recordings
        .audit_download(session, grant, None)
        .await?;
    let stream = futures_util::stream::unfold(body, |mut rx| async move {
        rx.recv().await.map(|piece| (piece, rx))
    });
    let mut response = Response::new(Body::from_stream(stream));
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/webm"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("none"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("inline; filename=\"combined.webm\""),
    );
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
