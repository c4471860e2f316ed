//! The domain's records: consultations, participants, the audit log, consents, quality samples,
//! recordings and their chunks, and (in [`push`]) devices and notifications. The database stores
//! and returns them (`wakili-db` maps rows to them); the API shows several of them as they are.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{
    CoreError, ParticipantRole, Role,
    consultation::{Action, ConsultationStatus, NewConsultation},
    page::Cursor,
    quality::{Level, QualityReport},
};

pub mod push;
pub mod webhook;

/// A platform user, upserted from token claims on every authenticated request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct User {
    /// The platform's `sub`.
    pub id: String,
    /// Role from the newest token.
    #[cfg_attr(feature = "sqlx", sqlx(try_from = "String"))]
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
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
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
    #[cfg_attr(feature = "sqlx", sqlx(try_from = "i64"))]
    pub duration_minutes: u32,
    /// Where it is in its life.
    #[cfg_attr(feature = "sqlx", sqlx(try_from = "String"))]
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
    /// How its media travels, as booked.
    #[cfg_attr(feature = "sqlx", sqlx(try_from = "String"))]
    pub media_mode: crate::media::MediaMode,
    /// Optimistic-concurrency counter, bumped by every save.
    #[serde(skip)]
    pub version: i64,
}

/// Someone entitled to take part in a consultation: its lawyer and client from the booking, and
/// the guests the lawyer invited. Serialized as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = ConsultationParticipant))]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct Participant {
    /// The consultation.
    pub consultation_id: String,
    /// The user.
    pub user_id: String,
    /// Their part in this consultation.
    #[cfg_attr(feature = "sqlx", sqlx(try_from = "String"))]
    pub role: ParticipantRole,
    /// Since when (for a guest: since their latest invitation or role change).
    pub added_at: DateTime<Utc>,
    /// Who invited them (absent for the two parties).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invited_by: Option<String>,
}

/// What inviting a guest did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestChange {
    /// A new guest.
    Invited,
    /// An existing guest with a new role.
    RoleChanged,
    /// Already invited with this role.
    Unchanged,
}

/// One entry of the append-only audit log. Serialized as the API shows it (and read back from
/// an export to check its hash chain offline).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
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
    /// Position in the consultation's hash chain, from 1 (absent for entries of no consultation,
    /// and for entries older than the chain).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain_seq: Option<u64>,
    /// The previous entry's hash (`0`×64 for the first), lowercase hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prev_hash: Option<String>,
    /// This entry's hash: `wakili_core::audit_chain::Link::hash`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
}

impl AuditEvent {
    /// The entry as the hash chain sees it, when it is chained.
    pub fn claimed(&self) -> Option<crate::audit_chain::Claimed<'_>> {
        let (Some(seq), Some(consultation_id), Some(prev_hash), Some(hash)) = (
            self.chain_seq,
            self.consultation_id.as_deref(),
            self.prev_hash.as_deref(),
            self.hash.as_deref(),
        ) else {
            return None;
        };
        Some(crate::audit_chain::Claimed {
            link: crate::audit_chain::Link {
                seq,
                id: &self.id,
                consultation_id,
                actor_id: self.actor_id.as_deref(),
                action: &self.action,
                detail: &self.detail,
                created_at: self.created_at,
            },
            prev_hash,
            hash,
        })
    }
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
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
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
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct QualitySample {
    /// The consultation.
    pub consultation_id: String,
    /// The reporting participant.
    pub participant_id: String,
    /// Their user id.
    pub user_id: String,
    /// When the report arrived.
    pub taken_at: DateTime<Utc>,
    /// What the participant reported (`quality:report`).
    #[serde(flatten)]
    #[cfg_attr(feature = "sqlx", sqlx(flatten))]
    pub report: QualityReport,
    /// MOS-like score, 1–4.5.
    pub mos: f64,
    /// Quality level the report alone calls for (`low`, `medium`, `high`).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    #[cfg_attr(feature = "sqlx", sqlx(try_from = "String"))]
    pub level: Level,
}

/// A consultation recording as stored: the seed's `ConsultationRecording` fields plus what
/// storage needs (wrapped data key, nonce prefix, manifest, legal hold).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct Recording {
    /// Opaque id (the one signaling announced in `recording:state`).
    pub id: String,
    /// The consultation recorded.
    pub consultation_id: String,
    /// The user who uploads it (the lawyer).
    pub started_by: String,
    /// Where it is in its life.
    #[cfg_attr(feature = "sqlx", sqlx(try_from = "String"))]
    pub status: crate::recording::RecordingStatus,
    /// Container, e.g. `webm` or `mp4` (set on completion).
    pub format: Option<String>,
    /// Codecs, e.g. `vp8,opus`.
    pub codec: Option<String>,
    /// e.g. `1280x720`.
    pub resolution: Option<String>,
    /// Length as the uploader reported it.
    pub duration_seconds: Option<f64>,
    /// Plaintext bytes (set on completion).
    pub file_size_bytes: i64,
    /// Chunks in the manifest (set on completion).
    pub chunk_count: i64,
    /// SHA-256 of the whole plaintext, hex (set on completion).
    pub sha256: Option<String>,
    /// When recording began.
    pub started_at: DateTime<Utc>,
    /// When it was finalized.
    pub completed_at: Option<DateTime<Utc>>,
    /// Row creation.
    pub created_at: DateTime<Utc>,
    /// The data key wrapped by a master key (base64); `None` once crypto-shredded.
    pub wrapped_key: Option<String>,
    /// Id of the master key that wrapped it.
    pub key_id: Option<String>,
    /// STREAM nonce prefix (base64).
    pub nonce_prefix: String,
    /// The signed manifest (JWS compact), once finalized.
    pub manifest: Option<String>,
    /// Deletion is refused while set.
    pub legal_hold: bool,
    /// Why it is held.
    pub legal_hold_reason: Option<String>,
    /// Last chunk stored (or creation): an upload silent for long is finalized as incomplete.
    pub last_activity_at: Option<DateTime<Utc>>,
    /// When it was crypto-shredded.
    pub deleted_at: Option<DateTime<Utc>>,
    /// An upload, a server-made session, or one track of a session.
    #[cfg_attr(feature = "sqlx", sqlx(try_from = "String"))]
    pub kind: crate::recording::RecordingKind,
    /// A track's session.
    pub parent_id: Option<String>,
    /// A track's participant, kind, codec and offset (the `track_meta` JSON column, which the
    /// database crate decodes).
    #[cfg_attr(feature = "sqlx", sqlx(skip))]
    pub track: Option<crate::recording::TrackMeta>,
}

impl Recording {
    /// Whether the server recorded this as a session (a parent of tracks, no media of its own).
    pub fn is_session(&self) -> bool {
        self.kind == crate::recording::RecordingKind::Session
    }

    /// Whether this is one track of a session.
    pub fn is_track(&self) -> bool {
        self.kind == crate::recording::RecordingKind::Track
    }
}

/// A new recording.
#[derive(Debug, Clone)]
pub struct NewRecording {
    /// Its id.
    pub id: String,
    /// The consultation.
    pub consultation_id: String,
    /// The uploader.
    pub started_by: String,
    /// The wrapped data key (base64).
    pub wrapped_key: String,
    /// The wrapping master key's id.
    pub key_id: String,
    /// STREAM nonce prefix (base64).
    pub nonce_prefix: String,
    /// Upload, session or track.
    pub kind: crate::recording::RecordingKind,
    /// A track's session.
    pub parent_id: Option<String>,
    /// A track's metadata.
    pub track: Option<crate::recording::TrackMeta>,
    /// Now.
    pub now: DateTime<Utc>,
}

/// What a chunk row holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkState {
    /// Claimed with its hash; being encrypted and stored.
    Pending,
    /// Held by at least one provider.
    Stored,
    /// The STREAM terminator written on finalization (its `seq` is the chunk count).
    Terminator,
}

named!(ChunkState, field "state", "chunk state" {
    Pending => "pending",
    Stored => "stored",
    Terminator => "terminator",
});

/// One chunk of a recording (or its terminator), with the providers holding its object.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct Chunk {
    /// The recording.
    pub recording_id: String,
    /// Position in the recording, from 0.
    #[cfg_attr(feature = "sqlx", sqlx(try_from = "i64"))]
    pub seq: u32,
    /// SHA-256 of the plaintext, hex.
    pub sha256: String,
    /// Plaintext bytes.
    #[cfg_attr(feature = "sqlx", sqlx(try_from = "i64"))]
    pub size: u64,
    /// Ciphertext bytes (the object's size).
    #[cfg_attr(feature = "sqlx", sqlx(try_from = "i64"))]
    pub object_size: u64,
    /// Claimed, stored or terminator.
    #[cfg_attr(feature = "sqlx", sqlx(try_from = "String"))]
    pub state: ChunkState,
    /// Object key inside every provider.
    pub object_key: String,
    /// Providers holding the object, by name.
    #[cfg_attr(feature = "sqlx", sqlx(skip))]
    pub providers: Vec<String>,
}

/// What `complete` (or the abandoned-upload sweep) writes.
#[derive(Debug, Clone)]
pub struct FinalizedRecording {
    /// The recording.
    pub id: String,
    /// `Completed` or `Incomplete`.
    pub status: crate::recording::RecordingStatus,
    /// Container.
    pub format: Option<String>,
    /// Codecs.
    pub codec: Option<String>,
    /// Resolution.
    pub resolution: Option<String>,
    /// Reported length.
    pub duration_seconds: Option<f64>,
    /// Plaintext bytes.
    pub file_size_bytes: u64,
    /// Chunks present.
    pub chunk_count: u32,
    /// SHA-256 of the whole plaintext, hex.
    pub sha256: String,
    /// The signed manifest (JWS).
    pub manifest: String,
    /// Now.
    pub now: DateTime<Utc>,
}

/// What one provider holds, for `GET /api/v1/storage/usage`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct ProviderUsage {
    /// Provider name.
    pub provider: String,
    /// Recordings with at least one object there.
    #[cfg_attr(feature = "sqlx", sqlx(try_from = "i64"))]
    pub recordings: u64,
    /// Objects.
    #[cfg_attr(feature = "sqlx", sqlx(try_from = "i64"))]
    pub objects: u64,
    /// Ciphertext bytes.
    #[cfg_attr(feature = "sqlx", sqlx(try_from = "i64"))]
    pub bytes: u64,
}

impl QualitySample {
    /// `report`, from `participant_id` (user `user_id`) in `consultation_id` at `taken_at`,
    /// scored: its MOS and level always follow from the report. A report with out-of-range
    /// values is refused, naming them.
    pub fn scored(
        consultation_id: &str,
        participant_id: &str,
        user_id: &str,
        report: QualityReport,
        taken_at: DateTime<Utc>,
    ) -> Result<Self, CoreError> {
        let problems = report.problems();
        if !problems.is_empty() {
            return Err(CoreError::invalid(
                "report",
                format!("out of range: {}", problems.join(", ")),
            ));
        }
        let (level, _) = crate::quality::assess(&report);
        Ok(Self {
            consultation_id: consultation_id.to_owned(),
            participant_id: participant_id.to_owned(),
            user_id: user_id.to_owned(),
            taken_at,
            mos: crate::quality::mos(&report),
            level,
            report,
        })
    }
}

impl VideoConsultation {
    /// This consultation after `action` by `actor` at `now`: the next status and the lifecycle
    /// time it stamps.
    pub fn transitioned(
        &self,
        action: Action,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<Self, CoreError> {
        let mut next = self.clone();
        next.status = self.status.apply(action)?;
        next.updated_at = now;
        match action {
            Action::Start => next.started_at = Some(now),
            Action::End => next.ended_at = Some(now),
            Action::Cancel => {
                next.cancelled_at = Some(now);
                next.cancelled_by = Some(actor.to_owned());
            }
            Action::Edit | Action::Reschedule => {}
        }
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use chrono::TimeZone;

    use super::{
        push::{NewDevice, Platform},
        *,
    };

    fn report(rtt_ms: f64, packet_loss_pct: f64) -> QualityReport {
        QualityReport {
            rtt_ms,
            jitter_ms: 5.0,
            packet_loss_pct,
            outbound_kbps: 1500.0,
            inbound_kbps: 1500.0,
            frame_rate: 30.0,
            width: 1280,
            height: 720,
            candidate_type: "host".into(),
        }
    }

    #[test]
    fn a_quality_sample_is_scored_from_its_report_and_refused_out_of_range() {
        let at = Utc.with_ymd_and_hms(2026, 12, 5, 9, 0, 0).unwrap();
        let good = QualitySample::scored("c", "p", "u", report(40.0, 0.0), at).unwrap();
        assert_eq!(good.level, Level::High);
        assert!(good.mos > 4.0, "{}", good.mos);
        let lossy = QualitySample::scored("c", "p", "u", report(40.0, 15.0), at).unwrap();
        assert_eq!(lossy.level, Level::Low);
        assert!(lossy.mos < good.mos);
        let err = QualitySample::scored("c", "p", "u", report(-1.0, 101.0), at).unwrap_err();
        assert_eq!(
            err.to_string(),
            "report: out of range: rttMs, packetLossPct"
        );
    }

    #[test]
    fn a_device_registration_is_checked_as_the_api_documents() {
        let new = |token: &str, version: &str, locale: Option<&str>| {
            NewDevice::new(
                "d".into(),
                "u",
                token.into(),
                Platform::Android,
                version,
                locale,
            )
        };
        let ok = new("tok-1", "2.4.1  ", Some("sw-KE")).unwrap();
        assert_eq!(
            (ok.platform.as_str(), ok.app_version.as_str()),
            ("android", "2.4.1")
        );
        assert_eq!(new("tok", "1", Some("")).unwrap().locale, None);
        let refused = |token: &str, version: &str, locale: Option<&str>| {
            new(token, version, locale).unwrap_err().to_string()
        };
        assert_eq!(refused("", "1", None), "token: 1 to 4096 characters");
        assert_eq!(
            refused(&"t".repeat(4097), "1", None),
            "token: 1 to 4096 characters"
        );
        assert!(refused("a/b", "1", None).starts_with("token: visible ASCII"));
        assert!(refused("a b", "1", None).starts_with("token: visible ASCII"));
        assert!(refused("t", " 1", None).starts_with("appVersion:"));
        assert!(refused("t", &"1".repeat(65), None).starts_with("appVersion:"));
        assert!(refused("t", "1", Some("sw KE")).starts_with("locale:"));
    }
}
