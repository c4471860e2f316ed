//! The `data` of each webhook event, picked field by field from its audit entry.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{AuditFacts, EventType};

/// `consultation.booked`, `.rescheduled`, `.cancelled`, `.started`, `.ended`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsultationData {
    /// The consultation.
    pub consultation_id: String,
    /// Who made the change (absent when the system did).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor_id: Option<String>,
    /// The lawyer (`booked`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lawyer_id: Option<String>,
    /// The client (`booked`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// When it is (`booked`; `rescheduled` when the time moved).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduled_at: Option<DateTime<Utc>>,
    /// How long it is booked for (`booked`; `rescheduled` when the length changed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_minutes: Option<u32>,
    /// `p2p`, `sfu` or `auto` (`booked`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_mode: Option<String>,
    /// The status before (`started`, `ended`, `cancelled`, `rescheduled`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The status after.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

/// `participant.waiting`, `.admitted`, `.joined`, `.left`, `.reconnecting`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantData {
    /// The consultation.
    pub consultation_id: String,
    /// The participant's seat in the call (a new one per join).
    pub participant_id: String,
    /// Who it is.
    pub user_id: String,
    /// As what: `lawyer`, `client`, `interpreter`, `observer`, …
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// `recording.started`, `.stopped`, `.deleted`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordingData {
    /// The consultation.
    pub consultation_id: String,
    /// The recording.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recording_id: Option<String>,
    /// Who started, stopped or deleted it (absent when the system did).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor_id: Option<String>,
    /// Whether the server records it (not the lawyer's browser).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<bool>,
}

/// `recording.ready` and `recording.incomplete`: the recording is closed and its manifest
/// signed.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordingFinishedData {
    /// The consultation.
    pub consultation_id: String,
    /// The recording.
    pub recording_id: String,
    /// `upload` (the lawyer's browser recorded it) or `session` (the server did, one track
    /// per participant track).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Bytes of media stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// SHA-256 of the media (`upload`), lowercase hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Chunks that never arrived (`incomplete`, `upload`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<u64>,
    /// The tracks (`session`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tracks: Vec<TrackSummary>,
    /// Where to read it through the API (paths under the server's public URL; a bearer token
    /// is needed).
    pub links: RecordingLinks,
}

/// One track of a server recording, as `recording.ready` lists it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrackSummary {
    /// The track's own recording id.
    pub track_id: String,
    /// `completed` or `incomplete`.
    pub status: String,
    /// Bytes stored.
    pub bytes: u64,
}

/// API paths of a finished recording.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordingLinks {
    /// `GET`: the recording.
    pub recording: String,
    /// `GET`: its signed manifest (JWS).
    pub manifest: String,
    /// `POST`: a short-lived signed download URL.
    pub download_url: String,
}

/// `consent.given` and `consent.refused`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsentData {
    /// The consultation.
    pub consultation_id: String,
    /// The recording asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recording_id: Option<String>,
    /// The participant's seat.
    pub participant_id: String,
    /// Who decided.
    pub user_id: String,
    /// As what.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// `device.pruned`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DevicePrunedData {
    /// Whose device.
    pub user_id: String,
    /// `android`, `ios` or `web`.
    pub platform: String,
    /// `unregistered` (FCM no longer knows the token), `invalid` or `silent` (no heartbeat
    /// for too long).
    pub reason: String,
}

/// `quality.degraded`: a participant's quality score stayed poor.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QualityDegradedData {
    /// The consultation.
    pub consultation_id: String,
    /// The participant's seat.
    pub participant_id: String,
    /// Who it is.
    pub user_id: String,
    /// The last score (1–5, MOS-like).
    pub score: f64,
    /// How long it has been poor, in seconds.
    pub poor_for_seconds: u64,
}

fn text(detail: &Value, key: &str) -> Option<String> {
    detail.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn number(detail: &Value, key: &str) -> Option<u64> {
    detail.get(key).and_then(Value::as_u64)
}

/// The `data` of `event`, reported by `entry`.
pub(super) fn build(event: EventType, entry: &AuditFacts<'_>) -> Value {
    use EventType as E;
    let d = entry.detail;
    let consultation_id = entry.consultation_id.unwrap_or_default().to_owned();
    let value = match event {
        E::ConsultationBooked
        | E::ConsultationRescheduled
        | E::ConsultationCancelled
        | E::ConsultationStarted
        | E::ConsultationEnded => serde_json::to_value(ConsultationData {
            consultation_id,
            actor_id: entry.actor_id.map(str::to_owned),
            lawyer_id: text(d, "lawyerId"),
            client_id: text(d, "clientId"),
            scheduled_at: d
                .get("scheduledAt")
                .and_then(|v| serde_json::from_value(v.clone()).ok()),
            duration_minutes: number(d, "durationMinutes").and_then(|m| u32::try_from(m).ok()),
            media_mode: text(d, "mediaMode"),
            from: text(d, "from"),
            to: text(d, "to"),
        }),
        E::ParticipantWaiting
        | E::ParticipantAdmitted
        | E::ParticipantJoined
        | E::ParticipantLeft
        | E::ParticipantReconnecting => serde_json::to_value(ParticipantData {
            consultation_id,
            participant_id: text(d, "participantId").unwrap_or_default(),
            user_id: entry.actor_id.unwrap_or_default().to_owned(),
            role: text(d, "role"),
        }),
        E::RecordingStarted | E::RecordingStopped | E::RecordingDeleted => {
            serde_json::to_value(RecordingData {
                consultation_id,
                recording_id: text(d, "recordingId"),
                actor_id: entry.actor_id.map(str::to_owned),
                server: d.get("server").and_then(Value::as_bool),
            })
        }
        E::RecordingReady | E::RecordingIncomplete => {
            let recording_id = text(d, "recordingId").unwrap_or_default();
            let base = format!("/api/v1/recordings/{recording_id}");
            serde_json::to_value(RecordingFinishedData {
                consultation_id,
                kind: text(d, "kind"),
                bytes: number(d, "bytes"),
                sha256: text(d, "sha256"),
                missing: d
                    .get("missing")
                    .and_then(Value::as_array)
                    .map(|seqs| seqs.iter().filter_map(Value::as_u64).collect())
                    .unwrap_or_default(),
                tracks: d
                    .get("tracks")
                    .and_then(Value::as_array)
                    .map(|tracks| {
                        tracks
                            .iter()
                            .map(|t| TrackSummary {
                                track_id: text(t, "trackId").unwrap_or_default(),
                                status: text(t, "status").unwrap_or_default(),
                                bytes: number(t, "bytes").unwrap_or_default(),
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                links: RecordingLinks {
                    manifest: format!("{base}/manifest"),
                    download_url: format!("{base}/download-url"),
                    recording: base,
                },
                recording_id,
            })
        }
        E::ConsentGiven | E::ConsentRefused => serde_json::to_value(ConsentData {
            consultation_id,
            recording_id: text(d, "recordingId"),
            participant_id: text(d, "participantId").unwrap_or_default(),
            user_id: entry.actor_id.unwrap_or_default().to_owned(),
            role: text(d, "role"),
        }),
        E::DevicePruned => serde_json::to_value(DevicePrunedData {
            user_id: text(d, "userId").unwrap_or_default(),
            platform: text(d, "platform").unwrap_or_default(),
            reason: text(d, "reason").unwrap_or_default(),
        }),
        E::QualityDegraded => serde_json::to_value(QualityDegradedData {
            consultation_id,
            participant_id: text(d, "participantId").unwrap_or_default(),
            user_id: entry.actor_id.unwrap_or_default().to_owned(),
            score: d.get("score").and_then(Value::as_f64).unwrap_or_default(),
            poor_for_seconds: number(d, "poorForSeconds").unwrap_or_default(),
        }),
    };
    value.unwrap_or(Value::Null)
}
