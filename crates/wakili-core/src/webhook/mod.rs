//! Webhooks: which changes the platform's backend hears about, what each message says, and how
//! a receiver's answer is judged. Sans-IO.
//!
//! Every change worth a webhook already writes an audit entry in the transaction that makes
//! it. [`EventType::from_audit`] names the webhook event an entry reports (or none), and
//! [`Message::from_audit`] shapes its body; the database turns the entry into deliveries in
//! that same transaction, so a change and the news of it are stored together or not at all.
//!
//! Bodies follow the Standard Webhooks layout: `{"type", "timestamp", "data"}`. `data` is
//! thin: ids, roles, times and the API paths to read more (the recording, its manifest), never
//! names, notes or secrets. Fields are picked one by one from the audit entry, so nothing new
//! in an audit entry reaches a receiver unnoticed.

mod data;
pub mod endpoint;
mod filter;
mod verdict;

#[cfg(test)]
mod tests;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use data::{
    ConsentData, ConsultationData, DevicePrunedData, ParticipantData, QualityDegradedData,
    RecordingData, RecordingFinishedData, RecordingLinks, TrackSummary,
};
pub use filter::Filter;
pub use verdict::{Disabling, Verdict, judge};

/// Something that happened, as a receiver subscribes to it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EventType {
    /// A consultation was booked.
    #[serde(rename = "consultation.booked")]
    ConsultationBooked,
    /// Its time or length changed.
    #[serde(rename = "consultation.rescheduled")]
    ConsultationRescheduled,
    /// It was called off before it began.
    #[serde(rename = "consultation.cancelled")]
    ConsultationCancelled,
    /// The call began (the lawyer arrived, or the API started it).
    #[serde(rename = "consultation.started")]
    ConsultationStarted,
    /// The call is over.
    #[serde(rename = "consultation.ended")]
    ConsultationEnded,
    /// Someone is in the waiting room.
    #[serde(rename = "participant.waiting")]
    ParticipantWaiting,
    /// The lawyer let someone in.
    #[serde(rename = "participant.admitted")]
    ParticipantAdmitted,
    /// Someone joined the call.
    #[serde(rename = "participant.joined")]
    ParticipantJoined,
    /// Someone left for good (or did not come back in time).
    #[serde(rename = "participant.left")]
    ParticipantLeft,
    /// Someone's connection dropped; they may still resume.
    #[serde(rename = "participant.reconnecting")]
    ParticipantReconnecting,
    /// Everyone consented: the recording runs.
    #[serde(rename = "recording.started")]
    RecordingStarted,
    /// The recording was stopped.
    #[serde(rename = "recording.stopped")]
    RecordingStopped,
    /// The recording is complete and its manifest signed.
    #[serde(rename = "recording.ready")]
    RecordingReady,
    /// The recording was closed with parts missing (signed, with the gaps listed).
    #[serde(rename = "recording.incomplete")]
    RecordingIncomplete,
    /// The recording was deleted (by an admin, or by retention).
    #[serde(rename = "recording.deleted")]
    RecordingDeleted,
    /// A participant consented to being recorded.
    #[serde(rename = "consent.given")]
    ConsentGiven,
    /// A participant refused; the recording does not start.
    #[serde(rename = "consent.refused")]
    ConsentRefused,
    /// A mobile device stopped receiving push notifications (FCM dropped its token, or it was
    /// silent too long).
    #[serde(rename = "device.pruned")]
    DevicePruned,
    /// A participant's connection quality stayed poor.
    #[serde(rename = "quality.degraded")]
    QualityDegraded,
}

named!(EventType, field "events", "webhook event" {
    ConsultationBooked => "consultation.booked",
    ConsultationRescheduled => "consultation.rescheduled",
    ConsultationCancelled => "consultation.cancelled",
    ConsultationStarted => "consultation.started",
    ConsultationEnded => "consultation.ended",
    ParticipantWaiting => "participant.waiting",
    ParticipantAdmitted => "participant.admitted",
    ParticipantJoined => "participant.joined",
    ParticipantLeft => "participant.left",
    ParticipantReconnecting => "participant.reconnecting",
    RecordingStarted => "recording.started",
    RecordingStopped => "recording.stopped",
    RecordingReady => "recording.ready",
    RecordingIncomplete => "recording.incomplete",
    RecordingDeleted => "recording.deleted",
    ConsentGiven => "consent.given",
    ConsentRefused => "consent.refused",
    DevicePruned => "device.pruned",
    QualityDegraded => "quality.degraded",
});

impl EventType {
    /// Every event, in declaration order.
    pub const ALL: [Self; 19] = [
        Self::ConsultationBooked,
        Self::ConsultationRescheduled,
        Self::ConsultationCancelled,
        Self::ConsultationStarted,
        Self::ConsultationEnded,
        Self::ParticipantWaiting,
        Self::ParticipantAdmitted,
        Self::ParticipantJoined,
        Self::ParticipantLeft,
        Self::ParticipantReconnecting,
        Self::RecordingStarted,
        Self::RecordingStopped,
        Self::RecordingReady,
        Self::RecordingIncomplete,
        Self::RecordingDeleted,
        Self::ConsentGiven,
        Self::ConsentRefused,
        Self::DevicePruned,
        Self::QualityDegraded,
    ];

    /// The webhook event an audit entry reports, if any.
    ///
    /// A few audit actions are written twice for one change, from two vantage points; only one
    /// of them is the event: the status change (its detail has `to`) for `consultation.started`
    /// and `.ended`, and the whole recording (not one of its tracks) for `recording.completed`
    /// and `.incomplete`.
    pub fn from_audit(action: &str, detail: &Value) -> Option<Self> {
        let status_change = detail.get("to").is_some();
        let whole_recording = detail.get("kind").and_then(Value::as_str) != Some("track");
        Some(match action {
            "consultation.created" => Self::ConsultationBooked,
            "consultation.rescheduled" => Self::ConsultationRescheduled,
            "consultation.cancelled" => Self::ConsultationCancelled,
            "consultation.started" if status_change => Self::ConsultationStarted,
            "consultation.ended" if status_change => Self::ConsultationEnded,
            "participant.waiting" => Self::ParticipantWaiting,
            "participant.admitted" => Self::ParticipantAdmitted,
            "participant.joined" => Self::ParticipantJoined,
            "participant.left" => Self::ParticipantLeft,
            "participant.reconnecting" => Self::ParticipantReconnecting,
            "recording.active" => Self::RecordingStarted,
            "recording.stopped" => Self::RecordingStopped,
            "recording.completed" if whole_recording => Self::RecordingReady,
            "recording.incomplete" if whole_recording => Self::RecordingIncomplete,
            "recording.deleted" => Self::RecordingDeleted,
            "recording.consent_granted" => Self::ConsentGiven,
            "recording.consent_refused" => Self::ConsentRefused,
            "device.pruned" => Self::DevicePruned,
            "quality.degraded" => Self::QualityDegraded,
            _ => return None,
        })
    }

    /// The first part of the name (`consultation`, `participant`, …), for `recording.*`
    /// filters.
    pub fn group(self) -> &'static str {
        self.as_str().split('.').next().unwrap_or_default()
    }
}

/// One webhook message: its stable id (the `webhook-id` header, the same on every attempt and
/// redelivery, so receivers dedupe by it), its type and its JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Stable id: the audit entry's.
    pub id: String,
    /// What happened.
    pub event: EventType,
    /// The consultation it concerns (deliveries of one consultation go in order).
    pub consultation_id: Option<String>,
    /// The body, Standard Webhooks layout.
    pub body: Value,
}

/// What an audit entry says, as [`Message::from_audit`] reads it.
#[derive(Debug, Clone, Copy)]
pub struct AuditFacts<'a> {
    /// The entry's id.
    pub id: &'a str,
    /// Its consultation.
    pub consultation_id: Option<&'a str>,
    /// Who did it.
    pub actor_id: Option<&'a str>,
    /// Dotted action.
    pub action: &'a str,
    /// Its detail.
    pub detail: &'a Value,
    /// When.
    pub at: DateTime<Utc>,
}

impl Message {
    /// The message reporting an audit entry, if it reports one.
    pub fn from_audit(entry: AuditFacts<'_>) -> Option<Self> {
        let event = EventType::from_audit(entry.action, entry.detail)?;
        let data = data::build(event, &entry);
        let body = serde_json::json!({
            "type": event.as_str(),
            "timestamp": entry.at.to_rfc3339_opts(SecondsFormat::Millis, true),
            "data": data,
        });
        Some(Self {
            id: format!("evt_{}", entry.id),
            event,
            consultation_id: entry.consultation_id.map(str::to_owned),
            body,
        })
    }
}
