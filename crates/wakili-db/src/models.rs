//! What the repository stores and returns.

use chrono::{DateTime, Utc};
use serde::Serialize;
use wakili_core::{
    Role,
    consultation::{ConsultationStatus, NewConsultation},
    page::Cursor,
};

/// A platform user, upserted from token claims on every authenticated request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The platform's `sub`.
    pub id: String,
    /// Role from the newest token.
    pub role: Role,
    /// Display name from the newest token.
    pub name: String,
    /// First seen.
    pub created_at: DateTime<Utc>,
    /// Last time the claims were applied.
    pub updated_at: DateTime<Utc>,
}

/// A booked video consultation between a lawyer and a client. Serialized as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Consultation))]
#[serde(rename_all = "camelCase")]
pub struct VideoConsultation {
    /// Opaque id (UUIDv7).
    pub id: String,
    /// The lawyer running it.
    pub lawyer_id: String,
    /// The client attending.
    pub client_id: String,
    /// Optional title.
    pub title: Option<String>,
    /// The lawyer's notes; absent for the client.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// When the call is due.
    pub scheduled_at: DateTime<Utc>,
    /// Planned length.
    pub duration_minutes: u32,
    /// Where it is in its life.
    pub status: ConsultationStatus,
    /// Who booked it.
    pub created_by: String,
    /// When it was booked.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// When the call began.
    pub started_at: Option<DateTime<Utc>>,
    /// When the call ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// When it was called off.
    pub cancelled_at: Option<DateTime<Utc>>,
    /// Who called it off.
    pub cancelled_by: Option<String>,
    /// Why it was called off.
    pub cancellation_reason: Option<String>,
    /// Video quality profile chosen by the lawyer; `None`: the server default.
    pub quality_profile: Option<String>,
    /// Optimistic-concurrency counter, bumped by every save.
    #[serde(skip)]
    pub version: i64,
}

/// Someone entitled to take part in a consultation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    /// The consultation.
    pub consultation_id: String,
    /// The user.
    pub user_id: String,
    /// Their part in this consultation (`lawyer` or `client`).
    pub role: Role,
    /// Since when.
    pub added_at: DateTime<Utc>,
}

/// One entry of the append-only audit log. Serialized as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = AuditEntry))]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    /// Opaque id (UUIDv7, so ids sort by time).
    pub id: String,
    /// The consultation concerned, if any.
    pub consultation_id: Option<String>,
    /// Who did it (`None` for the system).
    pub actor_id: Option<String>,
    /// What happened, dotted (`consultation.created`).
    pub action: String,
    /// Details as JSON.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub detail: serde_json::Value,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// An audit entry to append.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditEvent {
    /// The consultation concerned, if any.
    pub consultation_id: Option<String>,
    /// Who did it (`None` for the system).
    pub actor_id: Option<String>,
    /// What happened, dotted (`consultation.created`).
    pub action: &'static str,
    /// Details as JSON.
    pub detail: serde_json::Value,
}

/// The user fields taken from token claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserClaims {
    /// The platform's `sub`.
    pub id: String,
    /// The `role` claim.
    pub role: Role,
    /// The `name` claim.
    pub name: String,
}

/// A consultation to insert, with the time it was booked.
#[derive(Debug, Clone)]
pub struct ConsultationInsert {
    /// The validated booking.
    pub booking: NewConsultation,
    /// Who booked it.
    pub created_by: String,
    /// When.
    pub now: DateTime<Utc>,
}

/// Which consultations to list, one page at a time, ordered by `(scheduled_at, id)`.
#[derive(Debug, Clone, Default)]
pub struct ConsultationFilter {
    /// Only consultations this user takes part in (`None`: all, for admins).
    pub participant: Option<String>,
    /// Only this status.
    pub status: Option<ConsultationStatus>,
    /// Scheduled at or after.
    pub from: Option<DateTime<Utc>>,
    /// Scheduled before.
    pub to: Option<DateTime<Utc>>,
    /// Start after this position.
    pub after: Option<Cursor>,
    /// Page size.
    pub limit: u32,
}

/// One page of consultations.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Where the next page starts, if there is one.
    pub next: Option<Cursor>,
}

/// A recording consent decision taken over signaling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ConsentRecord {
    /// Opaque id (UUIDv7).
    pub id: String,
    /// The consultation.
    pub consultation_id: String,
    /// The recording asked about.
    pub recording_id: String,
    /// Who decided.
    pub user_id: String,
    /// Their participant id in the call.
    pub participant_id: String,
    /// The version of the notice they were shown.
    pub notice_version: String,
    /// The answer.
    pub granted: bool,
    /// When.
    pub decided_at: DateTime<Utc>,
}

/// One sampled `quality:report` with its score.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct QualitySample {
    /// The consultation.
    pub consultation_id: String,
    /// The reporting participant.
    pub participant_id: String,
    /// Their user id.
    pub user_id: String,
    /// When the report arrived.
    pub taken_at: DateTime<Utc>,
    /// Round-trip time, ms.
    pub rtt_ms: f64,
    /// Jitter, ms.
    pub jitter_ms: f64,
    /// Packet loss, percent.
    pub packet_loss_pct: f64,
    /// Send bitrate, kbit/s.
    pub outbound_kbps: f64,
    /// Receive bitrate, kbit/s.
    pub inbound_kbps: f64,
    /// Frames per second sent.
    pub frame_rate: f64,
    /// Sent width.
    pub width: i64,
    /// Sent height.
    pub height: i64,
    /// Selected candidate type.
    pub candidate_type: String,
    /// MOS-like score, 1–4.5.
    pub mos: f64,
    /// Quality level the report alone calls for (`low`, `medium`, `high`).
    pub level: String,
}
