//! Consent-gated recording: a recording starts only once everyone present has consented, a
//! newcomer is asked before their media is recorded, and a refusal stops it. A browser
//! recording also stops when the lawyer recording it leaves; a server recording (the SFU
//! records) goes on until the lawyer stops it or the call ends, and keeps the call on the
//! SFU while it lasts.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use super::{
    ConsentNotice, ConsentRequest, Event, Fact, Outcome, RecordedSeat, Recording, RecordingRef,
    RecordingState, RecordingView, Room, RoomError, RoomPolicy, ServerRecording, To, audit_about,
    send,
};
use crate::{ParticipantRole, media::MediaMode};

impl Room {
    /// The recording as participants see it.
    pub fn recording_view(&self) -> RecordingView {
        match &self.recording {
            Recording::Idle => RecordingView {
                active: false,
                recording_id: None,
                server: false,
            },
            Recording::AwaitingConsent { id, server, .. } => RecordingView {
                active: false,
                recording_id: Some(id.clone()),
                server: *server,
            },
            Recording::Active { id, server, .. } => RecordingView {
                active: true,
                recording_id: Some(id.clone()),
                server: *server,
            },
        }
    }

    /// What the server's recorder must do: `None` when nothing is recorded or a browser
    /// records.
    pub fn server_recording(&self) -> Option<ServerRecording> {
        let (id, by, active) = match &self.recording {
            Recording::Idle => return None,
            Recording::AwaitingConsent { server: false, .. }
            | Recording::Active { server: false, .. } => return None,
            Recording::AwaitingConsent { id, by, .. } => (id, by, false),
            Recording::Active { id, by, .. } => (id, by, true),
        };
        let started_by = self
            .members
            .get(by)
            .map_or_else(|| by.clone(), |m| m.user_id.clone());
        let seats = self
            .members
            .values()
            .map(|m| RecordedSeat {
                participant_id: m.participant_id.clone(),
                user_id: m.user_id.clone(),
                role: m.role,
            })
            .collect();
        Some(ServerRecording {
            recording_id: id.clone(),
            started_by,
            active,
            seats,
        })
    }

    /// A participant became present: if a recording is on or being set up, they must consent
    /// too, and the lawyer is told. An active recording pauses until they do.
    pub(super) fn newcomer_and_recording(
        &mut self,
        id: &str,
        policy: &RoomPolicy,
        out: &mut Outcome,
    ) {
        let (recording_id, by, mut granted, server) = match &self.recording {
            Recording::Idle => return,
            Recording::AwaitingConsent {
                id: r,
                by,
                granted,
                server,
                ..
            }
            | Recording::Active {
                id: r,
                by,
                granted,
                server,
            } => (r.clone(), by.clone(), granted.clone(), *server),
        };
        // The lawyer started it: coming back (after leaving a server recording running) needs
        // no consent.
        let lawyer = self
            .members
            .get(id)
            .is_some_and(|m| m.role == ParticipantRole::Lawyer);
        if id == by || lawyer || granted.contains(id) {
            return;
        }
        let mut pending = match &self.recording {
            Recording::AwaitingConsent { pending, .. } => pending.clone(),
            _ => BTreeSet::new(),
        };
        if matches!(self.recording, Recording::Active { .. }) {
            let paused = Event::RecordingState(RecordingState {
                active: false,
                recording_id: Some(recording_id.clone()),
                by: None,
                reason: Some("consent_pending"),
                server,
            });
            send(out, To::All, paused);
        }
        pending.insert(id.to_owned());
        granted.remove(id);
        self.recording = Recording::AwaitingConsent {
            id: recording_id.clone(),
            by: by.clone(),
            pending,
            granted,
            server,
        };
        if let Some(m) = self.members.get(id) {
            let notice = Event::ConsentNeeded(ConsentNotice {
                participant_id: id.to_owned(),
                user_id: m.user_id.clone(),
            });
            send(out, To::One(by), notice);
        }
        let request = Event::ConsentRequest(ConsentRequest {
            notice_version: policy.notice_version.clone(),
            recording_id,
        });
        send(out, To::One(id.to_owned()), request);
    }

    /// Someone who still had to consent left: the rest may now all have granted.
    pub(super) fn consent_withdrawn_by_leaving(&mut self, id: &str, out: &mut Outcome) {
        if let Recording::AwaitingConsent { pending, .. } = &mut self.recording
            && pending.remove(id)
        {
            self.activate_if_complete(out);
        }
    }

    fn activate_if_complete(&mut self, out: &mut Outcome) {
        if let Recording::AwaitingConsent {
            id,
            by,
            pending,
            granted,
            server,
        } = &self.recording
            && pending.is_empty()
        {
            let (id, by, granted, server) = (id.clone(), by.clone(), granted.clone(), *server);
            let event = Event::RecordingState(RecordingState {
                active: true,
                recording_id: Some(id.clone()),
                by: Some(by.clone()),
                reason: None,
                server,
            });
            send(out, To::All, event);
            if let Some(m) = self.members.get(&by) {
                let m = m.clone();
                let recording = RecordingRef {
                    id: id.clone(),
                    server,
                };
                audit_about(out, "recording.active", &m, Some(recording));
            }
            self.recording = Recording::Active {
                id,
                by,
                granted,
                server,
            };
        }
    }

    pub(super) fn stop_recording(&mut self, reason: &'static str, out: &mut Outcome) {
        let (id, server) = match &self.recording {
            Recording::Idle => return,
            Recording::AwaitingConsent { id, server, .. }
            | Recording::Active { id, server, .. } => (id.clone(), *server),
        };
        self.recording = Recording::Idle;
        let event = Event::RecordingState(RecordingState {
            active: false,
            recording_id: Some(id),
            by: None,
            reason: Some(reason),
            server,
        });
        send(out, To::All, event);
        self.settle_topology(out);
    }

    /// `by` (the lawyer, present) asks to record as `recording_id`: everyone else present is
    /// asked to consent; with no one else present it is active at once. The server records it
    /// when the policy says so and the consultation may use the SFU (an `auto` call moves to
    /// the SFU for it).
    pub(super) fn start_recording(
        &mut self,
        by: String,
        recording_id: String,
        policy: &RoomPolicy,
        out: &mut Outcome,
    ) -> Result<(), RoomError> {
        let starter = self.member(&by)?.clone();
        if starter.role != ParticipantRole::Lawyer {
            return Err(RoomError::Forbidden("only the lawyer can record"));
        }
        if !starter.present() {
            return Err(RoomError::Waiting);
        }
        if self.recording != Recording::Idle {
            return Err(RoomError::Recording(
                "a recording is already on or awaiting consent",
            ));
        }
        let pending: BTreeSet<String> = self
            .members
            .values()
            .filter(|m| m.present() && m.participant_id != by)
            .map(|m| m.participant_id.clone())
            .collect();
        let server = policy.server_recording && self.media_mode != MediaMode::P2p;
        let recording = RecordingRef {
            id: recording_id.clone(),
            server,
        };
        audit_about(out, "recording.requested", &starter, Some(recording));
        for id in &pending {
            let event = Event::ConsentRequest(ConsentRequest {
                notice_version: policy.notice_version.clone(),
                recording_id: recording_id.clone(),
            });
            send(out, To::One(id.clone()), event);
        }
        self.recording = Recording::AwaitingConsent {
            id: recording_id,
            by,
            pending,
            granted: BTreeSet::new(),
            server,
        };
        self.activate_if_complete(out);
        self.settle_topology(out);
        Ok(())
    }

    /// `by` (the lawyer) stops the recording.
    pub(super) fn stop_recording_by(
        &mut self,
        by: &str,
        out: &mut Outcome,
    ) -> Result<(), RoomError> {
        let m = self.member(by)?.clone();
        if m.role != ParticipantRole::Lawyer {
            return Err(RoomError::Forbidden(
                "only the lawyer can stop the recording",
            ));
        }
        if self.recording == Recording::Idle {
            return Err(RoomError::Recording("nothing is being recorded"));
        }
        let recording = self.recording.reference();
        audit_about(out, "recording.stopped", &m, recording);
        self.stop_recording("stopped", out);
        Ok(())
    }

    /// `participant_id`'s answer to the consent request: a grant may activate the recording, a
    /// refusal stops it and tells the lawyer who refused.
    pub(super) fn consent(
        &mut self,
        participant_id: String,
        granted: bool,
        policy: &RoomPolicy,
        now: DateTime<Utc>,
        out: &mut Outcome,
    ) -> Result<(), RoomError> {
        let m = self.member(&participant_id)?.clone();
        let Recording::AwaitingConsent {
            id,
            by,
            pending,
            granted: yes,
            server,
        } = &mut self.recording
        else {
            return Err(RoomError::Recording("no consent is being asked"));
        };
        if !pending.remove(&participant_id) {
            return Err(RoomError::Recording("your consent is not being asked"));
        }
        out.facts.push(Fact::Consent {
            recording_id: id.clone(),
            user_id: m.user_id.clone(),
            notice_version: policy.notice_version.clone(),
            granted,
            at: now,
        });
        let recording = RecordingRef {
            id: id.clone(),
            server: *server,
        };
        audit_about(
            out,
            if granted {
                "recording.consent_granted"
            } else {
                "recording.consent_refused"
            },
            &m,
            Some(recording),
        );
        if granted {
            yes.insert(participant_id);
            self.activate_if_complete(out);
        } else {
            let by = by.clone();
            let event = Event::ConsentRefused(ConsentNotice {
                participant_id: participant_id.clone(),
                user_id: m.user_id.clone(),
            });
            send(out, To::One(by), event);
            self.stop_recording("consent_refused", out);
        }
        Ok(())
    }
}

impl Recording {
    /// The recording under way, if any, for audit facts.
    pub(super) fn reference(&self) -> Option<RecordingRef> {
        match self {
            Recording::Idle => None,
            Recording::AwaitingConsent { id, server, .. }
            | Recording::Active { id, server, .. } => Some(RecordingRef {
                id: id.clone(),
                server: *server,
            }),
        }
    }

    /// Whether the server records it (set up or active).
    pub fn by_server(&self) -> bool {
        match self {
            Recording::Idle => false,
            Recording::AwaitingConsent { server, .. } | Recording::Active { server, .. } => *server,
        }
    }
}
