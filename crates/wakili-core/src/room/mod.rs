//! A consultation room: who is in it, the waiting room, resume after a dropped connection, media
//! state and consent-gated recording. Sans-IO: inputs carry `now` and any ids they need, outputs
//! are events to deliver and facts to persist. The state serializes, so one node can keep it in
//! memory and many nodes can keep it in Redis.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    ParticipantRole,
    media::{MediaMode, Topology},
};

mod events;
mod model;
mod recording;
pub use events::{
    ConsentNotice, ConsentRequest, Ended, Event, Left, MediaChange, ParticipantRef, RecordingState,
    TopologyChange,
};
pub use model::*;

/// One consultation's room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Room {
    /// Participants by id.
    pub members: BTreeMap<String, Member>,
    /// Recording.
    pub recording: Recording,
    /// Whether the lawyer has joined at least once.
    pub lawyer_arrived: bool,
    /// Ended: nothing more happens.
    pub ended: bool,
    /// How the consultation was booked to carry media (from the joins).
    #[serde(default)]
    pub media_mode: MediaMode,
    /// How media travels now, from the mode and who is present.
    #[serde(default = "p2p")]
    pub topology: Topology,
}

fn p2p() -> Topology {
    Topology::P2p
}

impl Default for Room {
    fn default() -> Self {
        Self {
            members: BTreeMap::new(),
            recording: Recording::Idle,
            lawyer_arrived: false,
            ended: false,
            media_mode: MediaMode::Auto,
            topology: Topology::P2p,
        }
    }
}

fn send(out: &mut Outcome, to: To, event: Event) {
    out.outbound.push(Outbound {
        name: event.name(),
        to,
        event,
    });
}

fn audit(out: &mut Outcome, action: &'static str, m: &Member) {
    audit_about(out, action, m, None);
}

/// An audit fact about `m` and, for `recording.*` entries, the recording.
fn audit_about(
    out: &mut Outcome,
    action: &'static str,
    m: &Member,
    recording: Option<RecordingRef>,
) {
    out.facts.push(Fact::Audit {
        action,
        participant_id: m.participant_id.clone(),
        user_id: m.user_id.clone(),
        role: m.role,
        recording,
    });
}

impl Room {
    fn member(&self, id: &str) -> Result<&Member, RoomError> {
        self.members.get(id).ok_or(RoomError::NoParticipant)
    }

    fn lawyer_here(&self) -> bool {
        self.members
            .values()
            .any(|m| m.role == ParticipantRole::Lawyer && !matches!(m.presence, Presence::Waiting))
    }

    fn may_run_call(&self, id: &str) -> Result<&Member, RoomError> {
        let m = self.member(id)?;
        if m.role.runs_call() {
            Ok(m)
        } else {
            Err(RoomError::Forbidden(
                "only the lawyer or an admin can do this",
            ))
        }
    }

    fn views(&self) -> Vec<MemberView> {
        self.members.values().map(Member::view).collect()
    }

    /// Handles a join.
    pub fn join(
        &mut self,
        input: Input,
        policy: &RoomPolicy,
        now: DateTime<Utc>,
    ) -> Result<(Joined, Outcome), RoomError> {
        let Input::Join {
            user_id,
            role,
            name,
            resume_token,
            participant_id,
            new_resume_token,
            connection,
            media_mode,
        } = input
        else {
            return Err(RoomError::Forbidden("not a join"));
        };
        if self.ended {
            return Err(RoomError::Ended);
        }
        if role == ParticipantRole::Observer && media_mode == MediaMode::P2p {
            return Err(RoomError::Forbidden(
                "an observer needs the SFU, and this consultation is booked peer to peer",
            ));
        }
        let mut out = Outcome::default();
        self.media_mode = media_mode;
        self.expire(now, &mut out);
        // Resume: same user, matching token, still within the grace period (or not yet noticed gone).
        let resumable = resume_token.as_deref().and_then(|token| {
            self.members
                .values()
                .find(|m| m.user_id == user_id && m.resume_token == token)
                .map(|m| m.participant_id.clone())
        });
        if let Some(id) = resumable {
            let member = self.members.get_mut(&id).ok_or(RoomError::NoParticipant)?;
            member.connection = connection;
            match member.presence {
                Presence::Reconnecting { was_waiting, .. } => {
                    member.presence = if was_waiting {
                        Presence::Waiting
                    } else {
                        Presence::Present
                    };
                    let event = Event::Resumed(ParticipantRef {
                        participant_id: id.clone(),
                    });
                    send(&mut out, To::AllBut(id.clone()), event);
                }
                // The old connection is still open (the drop was not noticed yet): take over.
                _ => out.facts.push(Fact::Disconnect {
                    participant_id: id.clone(),
                }),
            }
            let member = self.member(&id)?.clone();
            audit(&mut out, "participant.resumed", &member);
            if member.role == ParticipantRole::Lawyer && member.present() {
                self.lawyer_entered(policy, &mut out);
            }
            self.settle_topology(&mut out);
            let joined = Joined {
                participant_id: id,
                resume_token: member.resume_token.clone(),
                participants: self.views(),
                recording: self.recording_view(),
                waiting: member.presence == Presence::Waiting,
                resumed: true,
                topology: self.topology,
            };
            return Ok((joined, out));
        }
        // One participant per user: a new join replaces an older one.
        let previous: Vec<String> = self
            .members
            .values()
            .filter(|m| m.user_id == user_id)
            .map(|m| m.participant_id.clone())
            .collect();
        for old in previous {
            out.facts.push(Fact::Disconnect {
                participant_id: old.clone(),
            });
            self.remove(&old, "replaced", &mut out);
        }
        let waits = role.waits() && (policy.admission == Admission::Manual || !self.lawyer_here());
        let member = Member {
            participant_id: participant_id.clone(),
            user_id,
            role,
            name,
            media: MediaState::default(),
            presence: if waits {
                Presence::Waiting
            } else {
                Presence::Present
            },
            resume_token: new_resume_token,
            connection,
        };
        self.members.insert(participant_id.clone(), member.clone());
        audit(
            &mut out,
            if waits {
                "participant.waiting"
            } else {
                "participant.joined"
            },
            &member,
        );
        send(
            &mut out,
            To::AllBut(participant_id.clone()),
            Event::Joined(member.view()),
        );
        if role == ParticipantRole::Lawyer {
            self.lawyer_entered(policy, &mut out);
        } else if !waits {
            self.newcomer_and_recording(&participant_id, policy, &mut out);
        }
        self.settle_topology(&mut out);
        let joined = Joined {
            participant_id: participant_id.clone(),
            resume_token: member.resume_token.clone(),
            participants: self.views(),
            recording: self.recording_view(),
            waiting: waits,
            resumed: false,
            topology: self.topology,
        };
        Ok((joined, out))
    }

    fn lawyer_entered(&mut self, policy: &RoomPolicy, out: &mut Outcome) {
        if !self.lawyer_arrived {
            self.lawyer_arrived = true;
            out.facts.push(Fact::LawyerArrived);
        }
        if policy.admission == Admission::OnLawyerJoin {
            let waiting: Vec<String> = self
                .members
                .values()
                .filter(|m| m.presence == Presence::Waiting)
                .map(|m| m.participant_id.clone())
                .collect();
            for id in waiting {
                self.admit_member(&id, policy, out);
            }
        }
    }

    fn admit_member(&mut self, id: &str, policy: &RoomPolicy, out: &mut Outcome) {
        let Some(member) = self.members.get_mut(id) else {
            return;
        };
        member.presence = Presence::Present;
        let member = member.clone();
        audit(out, "participant.admitted", &member);
        let who = ParticipantRef {
            participant_id: id.to_owned(),
        };
        send(
            out,
            To::One(id.to_owned()),
            Event::YouWereAdmitted(who.clone()),
        );
        send(out, To::AllBut(id.to_owned()), Event::Admitted(who));
        self.newcomer_and_recording(id, policy, out);
    }

    fn remove(&mut self, id: &str, reason: &'static str, out: &mut Outcome) {
        let Some(member) = self.members.remove(id) else {
            return;
        };
        audit(out, "participant.left", &member);
        let event = Event::Left(Left {
            participant_id: id.to_owned(),
            reason,
        });
        send(out, To::AllBut(id.to_owned()), event);
        // The browser recording leaves with its lawyer; the server's goes on.
        let recorder_left = match &self.recording {
            Recording::AwaitingConsent { by, server, .. }
            | Recording::Active { by, server, .. } => by == id && !server,
            Recording::Idle => false,
        };
        if recorder_left {
            self.stop_recording("recorder_left", out);
        } else {
            self.consent_withdrawn_by_leaving(id, out);
        }
    }

    /// Removes participants whose grace period is over. Call it on a timer
    /// ([`Room::next_deadline`]) and before each input.
    pub fn expire(&mut self, now: DateTime<Utc>, out: &mut Outcome) {
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| matches!(m.presence, Presence::Reconnecting { until, .. } if until <= now))
            .map(|m| m.participant_id.clone())
            .collect();
        for id in expired {
            self.remove(&id, "timeout", out);
        }
    }

    /// When [`Room::expire`] next has work.
    pub fn next_deadline(&self) -> Option<DateTime<Utc>> {
        self.members
            .values()
            .filter_map(|m| match m.presence {
                Presence::Reconnecting { until, .. } => Some(until),
                _ => None,
            })
            .min()
    }

    /// Whether `from` may send a signal to `to`; the recipient when it may.
    pub fn check_signal(&self, from: &str, to: &str) -> Result<&Member, RoomError> {
        let sender = self.member(from)?;
        let recipient = self.member(to)?;
        if !sender.present() {
            return Err(RoomError::Waiting);
        }
        if !sender.role.may_publish() {
            return Err(RoomError::Forbidden(
                "an observer only listens: it receives the call through the SFU",
            ));
        }
        if !recipient.present() {
            return Err(RoomError::Forbidden("that participant is not in the call"));
        }
        Ok(recipient)
    }

    /// The consultation was ended or cancelled outside the call (over the API): everyone is told
    /// and the room closes.
    pub fn close(&mut self, by_user: &str) -> Outcome {
        let mut out = Outcome::default();
        if self.ended {
            return out;
        }
        self.stop_recording("ended", &mut out);
        let event = Event::Ended(Ended {
            by: by_user.to_owned(),
        });
        send(&mut out, To::All, event);
        self.members.clear();
        self.ended = true;
        out
    }

    /// `user_id`'s invitation was withdrawn or their role changed over the API: they leave the
    /// call (the others see `participant:left` with `reason`) and their connection is closed.
    /// They may join again if they are still invited, with their new role.
    pub fn dismiss(&mut self, user_id: &str, reason: &'static str) -> Outcome {
        let mut out = Outcome::default();
        let dismissed: Vec<String> = self
            .members
            .values()
            .filter(|m| m.user_id == user_id)
            .map(|m| m.participant_id.clone())
            .collect();
        for id in dismissed {
            out.facts.push(Fact::Disconnect {
                participant_id: id.clone(),
            });
            self.remove(&id, reason, &mut out);
        }
        if !self.ended {
            self.settle_topology(&mut out);
        }
        out
    }

    /// Handles every input but joins and signals.
    pub fn handle(
        &mut self,
        input: Input,
        policy: &RoomPolicy,
        now: DateTime<Utc>,
    ) -> Result<Outcome, RoomError> {
        if self.ended {
            return Err(RoomError::Ended);
        }
        let mut out = Outcome::default();
        self.expire(now, &mut out);
        match input {
            Input::Join { .. } => return Err(RoomError::Forbidden("use join")),
            Input::Signal { from, to } => {
                self.check_signal(&from, &to)?;
            }
            Input::Disconnected {
                participant_id,
                connection,
            } => {
                let m = self
                    .members
                    .get_mut(&participant_id)
                    .ok_or(RoomError::NoParticipant)?;
                if m.connection == connection
                    && !matches!(m.presence, Presence::Reconnecting { .. })
                {
                    m.presence = Presence::Reconnecting {
                        was_waiting: m.presence == Presence::Waiting,
                        until: now + policy.grace,
                    };
                    let m = m.clone();
                    audit(&mut out, "participant.reconnecting", &m);
                    let event = Event::Reconnecting(ParticipantRef {
                        participant_id: participant_id.clone(),
                    });
                    send(&mut out, To::AllBut(participant_id), event);
                }
            }
            Input::Leave { participant_id } => {
                self.member(&participant_id)?;
                self.remove(&participant_id, "left", &mut out);
            }
            Input::Admit { by, target } => {
                self.may_run_call(&by)?;
                if self.member(&target)?.presence != Presence::Waiting {
                    return Err(RoomError::Forbidden("that participant is not waiting"));
                }
                self.admit_member(&target, policy, &mut out);
            }
            Input::Media {
                participant_id,
                media,
            } => {
                let m = self
                    .members
                    .get_mut(&participant_id)
                    .ok_or(RoomError::NoParticipant)?;
                if !m.role.may_publish() && (media.audio || media.video || media.screen) {
                    return Err(RoomError::Forbidden("an observer sends no media"));
                }
                m.media = media;
                let event = Event::Media(MediaChange {
                    participant_id: participant_id.clone(),
                    media,
                });
                send(&mut out, To::AllBut(participant_id), event);
            }
            Input::RecordingStart { by, recording_id } => {
                self.start_recording(by, recording_id, policy, &mut out)?;
            }
            Input::RecordingStop { by } => self.stop_recording_by(&by, &mut out)?,
            Input::Consent {
                participant_id,
                granted,
            } => self.consent(participant_id, granted, policy, now, &mut out)?,
            Input::End { by } => {
                let m = self.may_run_call(&by)?.clone();
                audit(&mut out, "consultation.ended", &m);
                self.stop_recording("ended", &mut out);
                let event = Event::Ended(Ended {
                    by: m.user_id.clone(),
                });
                send(&mut out, To::All, event);
                self.members.clear();
                self.ended = true;
                out.facts.push(Fact::Ended);
            }
        }
        if !self.ended {
            self.settle_topology(&mut out);
        }
        Ok(out)
    }

    /// Re-derives how media travels from the booked mode and who is present (waiting and
    /// reconnecting participants do not count; an observer present needs the SFU, which alone
    /// can keep them from sending); on a change everyone is told
    /// (`media:topology`). It never goes back from the SFU to peer to peer during a call, so
    /// someone dropping for a moment does not make everyone renegotiate twice.
    fn settle_topology(&mut self, out: &mut Outcome) {
        let present = self.members.values().filter(|m| m.present()).count();
        let server_must_see = self.recording.by_server()
            || self
                .members
                .values()
                .any(|m| m.present() && !m.role.may_publish());
        let sticks = self.media_mode == MediaMode::Auto && self.topology == Topology::Sfu;
        let wanted = if sticks {
            Topology::Sfu
        } else {
            self.media_mode.topology(present, server_must_see)
        };
        if wanted != self.topology {
            self.topology = wanted;
            send(
                out,
                To::All,
                Event::Topology(TopologyChange { topology: wanted }),
            );
        }
    }
}

#[cfg(test)]
mod tests;
