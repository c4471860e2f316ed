//! The room's vocabulary: who is in it ([`Member`], [`Presence`], [`MediaState`]), the recording's
//! state, what participants ask for ([`Input`]) and what a change decides ([`Outcome`]: events to
//! deliver and [`Fact`]s to persist).

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::Event;
use crate::ParticipantRole;

/// How clients are let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Admission {
    /// Clients wait until the lawyer is there, then enter together with them.
    OnLawyerJoin,
    /// Clients wait until the lawyer admits them (`participant:admit`).
    Manual,
}

/// Room rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomPolicy {
    /// How long a dropped participant may come back with its resume token.
    pub grace: Duration,
    /// Waiting-room behaviour.
    pub admission: Admission,
    /// Version of the recording notice participants consent to.
    pub notice_version: String,
    /// Whether the SFU records (every participant's tracks, on the server) when the
    /// consultation's media mode allows it (`sfu` or `auto`); otherwise, and always in `p2p`,
    /// the lawyer's browser records and uploads.
    pub server_recording: bool,
}

/// Camera, microphone and screen share, as the participant reports them.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaState {
    /// Microphone on.
    pub audio: bool,
    /// Camera on.
    pub video: bool,
    /// Sharing the screen.
    pub screen: bool,
}

/// Where a participant is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Presence {
    /// In the waiting room.
    Waiting,
    /// In the call.
    Present,
    /// Connection lost; may resume until `until`.
    Reconnecting {
        /// Where it was before the drop.
        was_waiting: bool,
        /// End of the grace period.
        until: DateTime<Utc>,
    },
}

/// A participant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Stable across resumes.
    pub participant_id: String,
    /// Platform user.
    pub user_id: String,
    /// Part in this consultation.
    pub role: ParticipantRole,
    /// Display name.
    pub name: String,
    /// Media state.
    pub media: MediaState,
    /// Presence.
    pub presence: Presence,
    /// Secret that lets this participant resume.
    pub resume_token: String,
    /// The connection currently serving this participant; a drop of an older one is ignored.
    #[serde(default)]
    pub connection: String,
}

/// A participant as others see it.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberView {
    /// Participant id.
    pub participant_id: String,
    /// User id.
    pub user_id: String,
    /// Part in the consultation.
    pub role: ParticipantRole,
    /// Display name.
    pub name: String,
    /// Media state.
    pub media: MediaState,
    /// In the waiting room.
    pub waiting: bool,
    /// Connection lost, may come back.
    pub reconnecting: bool,
}

impl Member {
    pub(super) fn view(&self) -> MemberView {
        MemberView {
            participant_id: self.participant_id.clone(),
            user_id: self.user_id.clone(),
            role: self.role,
            name: self.name.clone(),
            media: self.media,
            waiting: matches!(
                self.presence,
                Presence::Waiting
                    | Presence::Reconnecting {
                        was_waiting: true,
                        ..
                    }
            ),
            reconnecting: matches!(self.presence, Presence::Reconnecting { .. }),
        }
    }

    pub(super) fn present(&self) -> bool {
        self.presence == Presence::Present
    }
}

/// The recording's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Recording {
    /// Not recording.
    Idle,
    /// Waiting for consent from `pending`.
    AwaitingConsent {
        /// Recording id.
        id: String,
        /// Participant who started it.
        by: String,
        /// Still to answer.
        pending: BTreeSet<String>,
        /// Already granted.
        granted: BTreeSet<String>,
        /// Recorded by the server (the SFU), not the lawyer's browser.
        #[serde(default)]
        server: bool,
    },
    /// Everyone present consented.
    Active {
        /// Recording id.
        id: String,
        /// Participant who started it.
        by: String,
        /// Everyone who granted.
        granted: BTreeSet<String>,
        /// Recorded by the server (the SFU), not the lawyer's browser.
        #[serde(default)]
        server: bool,
    },
}

/// The recording an audit fact concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingRef {
    /// Recording id.
    pub id: String,
    /// Recorded by the server (the SFU), not the lawyer's browser.
    pub server: bool,
}

/// Something a participant asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// `consultation:join`. `participant_id` and `new_resume_token` are used when this is not a
    /// resume.
    Join {
        /// Platform user.
        user_id: String,
        /// Part in the consultation.
        role: ParticipantRole,
        /// Display name.
        name: String,
        /// Token from an earlier join.
        resume_token: Option<String>,
        /// Id for a new participant.
        participant_id: String,
        /// Resume token for a new participant.
        new_resume_token: String,
        /// The connection joining.
        connection: String,
        /// How the consultation was booked to carry media.
        media_mode: crate::media::MediaMode,
    },
    /// The participant's connection dropped.
    Disconnected {
        /// Who.
        participant_id: String,
        /// Which connection dropped (ignored unless it is the participant's current one).
        connection: String,
    },
    /// `consultation:leave`.
    Leave {
        /// Who.
        participant_id: String,
    },
    /// `participant:admit`.
    Admit {
        /// The lawyer or an admin.
        by: String,
        /// The waiting participant.
        target: String,
    },
    /// `signal`: may `from` send to `to`?
    Signal {
        /// Sender.
        from: String,
        /// Recipient.
        to: String,
    },
    /// `media:state`.
    Media {
        /// Who.
        participant_id: String,
        /// New state.
        media: MediaState,
    },
    /// `recording:start`, with the id the new recording gets.
    RecordingStart {
        /// The lawyer.
        by: String,
        /// New recording id.
        recording_id: String,
    },
    /// `recording:stop`.
    RecordingStop {
        /// The lawyer.
        by: String,
    },
    /// `recording:consent`.
    Consent {
        /// Who answers.
        participant_id: String,
        /// The answer.
        granted: bool,
    },
    /// `consultation:end`.
    End {
        /// The lawyer or an admin.
        by: String,
    },
}

/// Who an event goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum To {
    /// One participant.
    One(String),
    /// Every participant but one.
    AllBut(String),
    /// Every participant.
    All,
}

/// A delivery: event name, recipients, payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    /// Socket.IO event name.
    pub name: &'static str,
    /// Recipients.
    pub to: To,
    /// Payload.
    pub event: Event,
}

/// A fact the caller must persist or act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fact {
    /// For the audit log: action and participant.
    Audit {
        /// Dotted action name.
        action: &'static str,
        /// Participant concerned.
        participant_id: String,
        /// Their user id.
        user_id: String,
        /// Their part in the call.
        role: ParticipantRole,
        /// The recording concerned (`recording.*` entries).
        recording: Option<RecordingRef>,
    },
    /// A consent decision to store.
    Consent {
        /// Recording it concerns.
        recording_id: String,
        /// Who decided.
        user_id: String,
        /// Notice version shown.
        notice_version: String,
        /// The decision.
        granted: bool,
        /// When.
        at: DateTime<Utc>,
    },
    /// The lawyer is in: the consultation should be `in_progress`.
    LawyerArrived,
    /// The consultation ended.
    Ended,
    /// This participant's connection must be closed (another connection took its place).
    Disconnect {
        /// Whose.
        participant_id: String,
    },
}

/// What an input led to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Events to deliver.
    pub outbound: Vec<Outbound>,
    /// Facts to persist.
    pub facts: Vec<Fact>,
}

/// The answer to a join.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Joined {
    /// The participant (the same as before, on a resume).
    pub participant_id: String,
    /// Token to resume with.
    pub resume_token: String,
    /// Everyone in the room, the joiner included.
    pub participants: Vec<MemberView>,
    /// Recording state.
    pub recording: RecordingView,
    /// In the waiting room.
    pub waiting: bool,
    /// Whether this was a resume.
    pub resumed: bool,
    /// How media travels now.
    pub topology: crate::media::Topology,
}

/// Recording state as participants see it.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordingView {
    /// On.
    pub active: bool,
    /// Current recording, active or awaiting consent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recording_id: Option<String>,
    /// The server records it (every participant's tracks, through the SFU); false: the
    /// lawyer's browser records and uploads.
    pub server: bool,
}

/// Why an input is refused; `code()` is the error code clients see.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomError {
    /// The caller has no right to do this.
    #[error("{0}")]
    Forbidden(&'static str),
    /// No such participant in this consultation.
    #[error("no such participant in this consultation")]
    NoParticipant,
    /// A waiting participant cannot do this yet.
    #[error("you are in the waiting room")]
    Waiting,
    /// The recording is not in a state that allows this.
    #[error("{0}")]
    Recording(&'static str),
    /// The consultation is over.
    #[error("the consultation has ended")]
    Ended,
}

impl RoomError {
    /// The error code clients branch on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Forbidden(_) => "forbidden",
            Self::NoParticipant => "not_found",
            Self::Waiting => "waiting",
            Self::Recording(_) => "invalid_state",
            Self::Ended => "consultation_closed",
        }
    }
}

/// What the server's recorder must do for a room ([`Room::server_recording`](super::Room::server_recording)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerRecording {
    /// The recording (the id `recording:state` announced).
    pub recording_id: String,
    /// The user who started it.
    pub started_by: String,
    /// Recording now; `false`: paused until everyone present consents.
    pub active: bool,
    /// Everyone in the room now (their media is recorded only while `active`).
    pub seats: Vec<RecordedSeat>,
}

/// A participant, as the recorder needs to know them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedSeat {
    /// Their participant id (the SFU's participant name).
    pub participant_id: String,
    /// Their user id.
    pub user_id: String,
    /// Their role.
    pub role: ParticipantRole,
}
