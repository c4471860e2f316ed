//! What room changes lead to outside the room: deliveries to connections, presence reports,
//! closing replaced connections, expiring dropped participants, and persisting the facts a change
//! decided (audit entries, consents, consultation status).

use std::convert::Infallible;

use serde_json::json;
use socketioxide::{SocketIo, adapter::Adapter};
use wakili_core::{
    consultation::Action,
    new_id,
    room::{Event, Fact, Outbound, Outcome, Room, To},
};
use wakili_db::{
    DbError,
    lifecycle::{self, Transition, TransitionError},
    models::{ConsentRecord, NewAuditEvent, VideoConsultation},
};

use super::{Hub, PresenceChange, consultation_room, emit_event, participant_room};
use crate::protocol::{CloseReason, Refusal, SessionClosed};

impl Hub {
    /// Tells the presence observer, if any, who is connected to the call now.
    pub(super) async fn presence(&self, consultation: &str, user: &str, name: &str, joined: bool) {
        let Some(observer) = self.observer.get() else {
            return;
        };
        let connected = self
            .store
            .read(consultation, |room| {
                room.map(|room| {
                    room.members
                        .values()
                        .filter(|m| {
                            matches!(
                                m.presence,
                                wakili_core::room::Presence::Waiting
                                    | wakili_core::room::Presence::Present
                            )
                        })
                        .map(|m| m.user_id.clone())
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
            })
            .await;
        match connected {
            Ok(connected) => observer.changed(PresenceChange {
                consultation_id: consultation.to_owned(),
                user_id: user.to_owned(),
                name: name.to_owned(),
                joined,
                connected,
            }),
            Err(e) => tracing::warn!(error = %e, "presence not reported"),
        }
    }

    /// Delivers room events.
    pub(super) async fn deliver<A: Adapter>(
        &self,
        io: &SocketIo<A>,
        consultation: &str,
        outbound: Vec<Outbound>,
    ) {
        // The recorder hears of every recording change, and of arrivals and departures while it
        // records (a join costs no room read otherwise).
        let recording_changed = outbound
            .iter()
            .any(|o| matches!(o.event, Event::RecordingState(_)));
        let seats_changed = outbound.iter().any(|o| {
            matches!(
                o.event,
                Event::Joined(_) | Event::Resumed(_) | Event::YouWereAdmitted(_) | Event::Left(_)
            )
        });
        if recording_changed || (seats_changed && self.records(consultation).await) {
            self.sync_recorder(consultation).await;
        }
        for o in outbound {
            match &o.event {
                // Gone from the call for good: so is its media.
                Event::Left(left) => self.leave_sfu(consultation, &left.participant_id).await,
                Event::Ended(_) => self.close_sfu(consultation).await,
                _ => {}
            }
            let operators = match &o.to {
                To::One(p) => io.to(participant_room(p)),
                To::AllBut(p) => io
                    .to(consultation_room(consultation))
                    .except(participant_room(p)),
                To::All => io.to(consultation_room(consultation)),
            };
            if let Err(e) = operators.emit(o.name, &o.event).await {
                tracing::warn!(event = o.name, error = %e, "delivery failed");
            }
        }
    }

    /// Closes the connections of a participant that another connection replaced.
    pub(super) async fn kick<A: Adapter>(&self, io: &SocketIo<A>, participant: &str) {
        let notice = SessionClosed {
            reason: CloseReason::Replaced,
            message: "this participant joined from another connection",
        };
        self.close_participant(io, participant, notice).await;
    }

    /// Closes a participant's connections, telling them why first.
    pub(super) async fn close_participant<A: Adapter>(
        &self,
        io: &SocketIo<A>,
        participant: &str,
        notice: SessionClosed,
    ) {
        let room = participant_room(participant);
        emit_event(io, room.clone(), &notice).await;
        if let Err(e) = io.to(room).disconnect().await {
            tracing::warn!(error = %e, "could not close a participant's connection");
        }
    }

    /// Carries out a dismissal ([`Room::dismiss`]): the guest's connections are told and
    /// closed, the others see them leave, and the leave is audited.
    pub(super) async fn dismiss<A: Adapter>(
        &self,
        io: &SocketIo<A>,
        consultation: &str,
        outcome: Outcome,
    ) {
        let mut facts = Vec::new();
        for fact in outcome.facts {
            match fact {
                Fact::Disconnect { participant_id } => {
                    let notice = SessionClosed {
                        reason: CloseReason::Dismissed,
                        message: "the lawyer removed you from this consultation or changed your role",
                    };
                    self.close_participant(io, &participant_id, notice).await;
                }
                other => facts.push(other),
            }
        }
        self.deliver(io, consultation, outcome.outbound).await;
        if let Err(e) = self.persist(consultation, facts, "", "").await {
            tracing::warn!(consultation_id = consultation, error = ?e, "dismissal not recorded");
        }
    }

    /// Removes participants whose grace period is over.
    pub(super) async fn expire<A: Adapter>(&self, io: &SocketIo<A>, consultation: &str) {
        let now = self.clock.now();
        let outcome = self
            .store
            .update(consultation, |room: &mut Room| {
                let mut out = Outcome::default();
                room.expire(now, &mut out);
                out
            })
            .await;
        match outcome {
            Ok(outcome) => {
                // Expiry only leads to audit entries, which name their own participant.
                if let Err(e) = self.persist(consultation, outcome.facts, "", "").await {
                    tracing::error!(error = %e, "expiry not recorded");
                }
                self.deliver(io, consultation, outcome.outbound).await;
            }
            Err(e) => tracing::error!(error = %e, consultation_id = consultation, "expiry failed"),
        }
    }

    /// Stores what a room change decided: audit entries, consent decisions, status changes.
    pub(super) async fn persist(
        &self,
        consultation: &str,
        facts: Vec<Fact>,
        actor: &str,
        participant: &str,
    ) -> Result<(), Refusal> {
        self.persist_read(consultation, None, facts, actor, participant)
            .await
    }

    /// [`persist`](Self::persist), knowing the consultation as it was read just before the
    /// change (a join reads it): a status change is then computed from that copy and saved in
    /// the same transaction as the audit entries, instead of in one of its own after reading
    /// the consultation again (it is, should another writer have saved it since).
    pub(super) async fn persist_read(
        &self,
        consultation: &str,
        read: Option<&VideoConsultation>,
        facts: Vec<Fact>,
        actor: &str,
        participant: &str,
    ) -> Result<(), Refusal> {
        let now = self.clock.now();
        // Audit entries go in one transaction (one disk sync), after the facts they record.
        let mut audits = Vec::new();
        let mut actions = Vec::new();
        for fact in facts {
            match fact {
                Fact::Audit {
                    action,
                    participant_id,
                    user_id,
                    role,
                    recording,
                } => {
                    let mut detail = json!({
                        "participantId": participant_id,
                        "role": role.as_str(),
                        "via": "signaling",
                    });
                    if let (Some(r), Some(map)) = (recording, detail.as_object_mut()) {
                        map.insert("recordingId".into(), r.id.into());
                        map.insert("server".into(), r.server.into());
                    }
                    audits.push(NewAuditEvent {
                        consultation_id: Some(consultation.to_owned()),
                        actor_id: Some(user_id),
                        action,
                        detail,
                    });
                }
                Fact::Consent {
                    recording_id,
                    user_id,
                    notice_version,
                    granted,
                    at,
                } => {
                    let record = ConsentRecord {
                        id: new_id(),
                        consultation_id: consultation.to_owned(),
                        recording_id,
                        user_id,
                        participant_id: participant.to_owned(),
                        notice_version,
                        granted,
                        decided_at: at,
                    };
                    self.stores.consents.record_consent(&record).await?;
                }
                Fact::LawyerArrived => actions.push(Action::Start),
                Fact::Ended => actions.push(Action::End),
                // Handled before anything else is delivered (see `Worker::join`).
                Fact::Disconnect { .. } => {}
            }
        }
        // One status change rides with the audit entries when the consultation was read.
        let mut folded = None;
        for action in actions {
            match read {
                Some(read) if folded.is_none() => {
                    // A status that does not allow it leaves the consultation as it is.
                    if let Ok(change) = status_change(action, actor).applied_to(read, now) {
                        folded = Some((action, change));
                    }
                }
                _ => self.transition(consultation, action, actor).await?,
            }
        }
        match folded {
            None => self.stores.audit.append_audits(audits, now).await?,
            Some((action, change)) => {
                let audit = &self.stores.audit;
                if !audit
                    .append_audits_after(change, audits.clone(), now)
                    .await?
                {
                    // Saved by another writer since it was read: judged again on the fresh row.
                    self.transition(consultation, action, actor).await?;
                    audit.append_audits(audits, now).await?;
                }
            }
        }
        Ok(())
    }

    /// Moves the consultation to its next status, if it is not there already (a status that
    /// does not allow it, or writers racing past every attempt, leave it as it is).
    pub(super) async fn transition(
        &self,
        id: &str,
        action: Action,
        actor: &str,
    ) -> Result<(), DbError> {
        let transition = status_change(action, actor);
        let anyone = |_: &VideoConsultation| Ok::<(), Infallible>(());
        match lifecycle::transition(
            &*self.stores.consultations,
            id,
            transition,
            &self.clock,
            anyone,
            |_| {},
        )
        .await
        {
            Err(TransitionError::Db(e)) => Err(e),
            _ => Ok(()),
        }
    }
}

/// A status change signaling makes (the lawyer's arrival starts the consultation, the end of
/// the call ends it).
fn status_change(action: Action, actor: &str) -> Transition<'_> {
    Transition {
        action,
        actor,
        detail: json!({ "via": "signaling" }),
        attempts: 5,
    }
}
