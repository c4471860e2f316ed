//! What the worker does for each client event that is more than one room input: relaying a
//! signal, joining, leaving, scoring a quality report, starting a recording and consenting.

use std::sync::Arc;

use serde_json::json;
use socketioxide::adapter::Adapter;
use wakili_core::{
    consultation::Access,
    new_id,
    quality::{DegradationRule, QualityReport},
    room::{Fact, Input, Recording, RoomError},
};
use wakili_db::models::{NewAuditEvent, QualitySample};

use super::{Reply, Seat, Worker, consultation_room, participant_room};
use crate::protocol::{
    self, ConsentRequest, JoinAck, JoinRequest, QualityAck, RecordingStartAck, Refusal, SignalOut,
    SignalRequest,
};

impl<A: Adapter> Worker<A> {
    /// `signal`: relayed to the addressee when both are in the call.
    pub(super) async fn signal(&mut self, request: SignalRequest<'_>) -> Result<Reply, Refusal> {
        let seat = self.seat()?;
        request.check_sender(&seat.participant)?;
        // Checked against the room as this node holds it: no Redis round trip.
        let connection = self
            .hub
            .store
            .check(&seat.consultation, |room| match room {
                Some(room) => room
                    .check_signal(&seat.participant, &request.to)
                    .map(|to| to.connection.clone()),
                None => Err(RoomError::NoParticipant),
            })
            .await??;
        let out = SignalOut {
            from: &seat.participant,
            kind: request.kind,
            payload: request.payload,
        };
        self.hub
            .relay(&self.io, &connection, &request.to, &out)
            .await;
        self.hub.telemetry.relayed(request.kind);
        if request.kind == protocol::SignalType::Restart {
            // Counted in the consultation's quality summary (network stability).
            let audit = NewAuditEvent {
                consultation_id: Some(seat.consultation.clone()),
                actor_id: Some(self.caller.user_id.to_string()),
                action: "participant.ice_restart",
                detail: json!({ "participantId": seat.participant, "via": "signaling" }),
            };
            if let Err(e) = self
                .hub
                .stores
                .audit
                .append_audit(audit, self.hub.clock.now())
                .await
            {
                tracing::warn!(error = %e, "ICE restart not recorded");
            }
        }
        Ok(Reply::default())
    }

    /// `consultation:join` (from a connection not yet in a consultation).
    pub(super) async fn join(&mut self, request: JoinRequest) -> Result<Reply, Refusal> {
        let hub = Arc::clone(&self.hub);
        let consultation = hub
            .stores
            .consultations
            .consultation(&request.consultation_id)
            .await?
            .ok_or_else(|| Refusal::new("not_found", "no such consultation"))?;
        let mut access = Access::of(
            &self.caller,
            &consultation.lawyer_id,
            &consultation.client_id,
        );
        if access == Access::None {
            let invited = hub
                .stores
                .guests
                .invitation(&consultation.id, self.caller.user_id.as_str())
                .await?;
            access = access.or_guest(invited);
        }
        let Some(role) = access.participant_role() else {
            return Err(Refusal::new(
                "forbidden",
                "only the consultation's lawyer, its client, its invited guests and admins can join",
            ));
        };
        if consultation.status.is_closed() {
            return Err(Refusal::new(
                "consultation_closed",
                format!("the consultation is {}", consultation.status),
            ));
        }
        let input = Input::Join {
            user_id: self.caller.user_id.to_string(),
            role,
            name: self.name.clone(),
            resume_token: request.resume_token,
            participant_id: uuid::Uuid::new_v4().to_string(),
            new_resume_token: format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            ),
            connection: self.connection(),
            media_mode: consultation.media_mode,
        };
        let now = hub.clock.now();
        let id = consultation.id.clone();
        let (joined, outcome) = hub
            .store
            .update(&id, |room| room.join(input.clone(), &hub.policy, now))
            .await??;
        // Older connections of this participant (or of this user) go first, so they do not
        // receive what follows.
        for fact in &outcome.facts {
            if let Fact::Disconnect { participant_id } = fact {
                hub.kick(&self.io, participant_id).await;
            }
        }
        self.socket.join(consultation_room(&id));
        self.socket.join(participant_room(&joined.participant_id));
        self.seat = Some(Seat {
            consultation: id.clone(),
            participant: joined.participant_id.clone(),
        });
        hub.persist_read(
            &id,
            Some(&consultation),
            outcome.facts,
            self.caller.user_id.as_str(),
            &joined.participant_id,
        )
        .await?;
        tracing::info!(consultation_id = %id, user_id = %self.caller.user_id, participant_id = %joined.participant_id, resumed = joined.resumed, waiting = joined.waiting, "joined");
        hub.telemetry.joined(
            self.received.elapsed(),
            &id,
            &joined.participant_id,
            crate::telemetry::Seated {
                user_id: self.caller.user_id.to_string(),
                role: role.as_str().to_owned(),
                since: now,
                quality: None,
                connection: self.socket.id.to_string(),
            },
        );
        hub.presence(&id, self.caller.user_id.as_str(), &self.name, true)
            .await;
        let profile = consultation
            .quality_profile
            .unwrap_or_else(|| hub.default_profile.clone());
        let mut reply = Reply::ack(&JoinAck {
            joined,
            quality_profile: profile,
            media_mode: consultation.media_mode,
        })?;
        reply.deliver = outcome.outbound;
        Ok(reply)
    }

    /// `consultation:leave`: out of the room for good; the others still hear about it.
    pub(super) async fn leave(&mut self) -> Result<Reply, Refusal> {
        let seat = self.seat()?;
        let reply = self
            .change(Input::Leave {
                participant_id: seat.participant.clone(),
            })
            .await;
        self.socket.leave(consultation_room(&seat.consultation));
        self.socket.leave(participant_room(&seat.participant));
        self.hub.telemetry.left(
            &seat.consultation,
            &seat.participant,
            &self.socket.id.to_string(),
        );
        self.hub
            .presence(
                &seat.consultation,
                self.caller.user_id.as_str(),
                &self.name,
                false,
            )
            .await;
        // Others still hear about the leave.
        if let Ok(reply) = reply {
            self.hub
                .deliver(&self.io, &seat.consultation, reply.deliver)
                .await;
        }
        self.seat = None;
        Ok(Reply::default())
    }

    /// `quality:report` (already range-checked): scored, sampled into the timeline, and
    /// answered with a recommendation when the network calls for another profile.
    pub(super) async fn quality(&mut self, report: QualityReport) -> Result<Reply, Refusal> {
        let seat = self.seat()?;
        let now = self.hub.clock.now();
        let recommendation = self.tracker.observe(&report, self.hub.hysteresis, now);
        let sample = QualitySample::scored(
            &seat.consultation,
            &seat.participant,
            self.caller.user_id.as_str(),
            report,
            now,
        )
        .map_err(|e| Refusal::bad_request(format!("quality:report: {e}")))?;
        let (score, level) = (sample.mos, sample.level);
        if let Some(degraded) = self
            .degradation
            .observe(score, DegradationRule::default(), now)
        {
            // For the platform's backend (`quality.degraded` webhook) and the audit log.
            let audit = NewAuditEvent {
                consultation_id: Some(seat.consultation.clone()),
                actor_id: Some(self.caller.user_id.to_string()),
                action: "quality.degraded",
                detail: json!({
                    "participantId": seat.participant,
                    "score": (degraded.score * 100.0).round() / 100.0,
                    "poorForSeconds": degraded.poor_for.num_seconds(),
                    "via": "signaling",
                }),
            };
            if let Err(e) = self.hub.stores.audit.append_audit(audit, now).await {
                tracing::warn!(error = %e, "quality degradation not recorded");
            }
        }
        self.hub.telemetry.quality(
            &seat.consultation,
            &seat.participant,
            &sample.report,
            (score, level, now),
        );
        let interval = chrono::Duration::from_std(self.hub.settings.quality_sample_interval)
            .unwrap_or(chrono::Duration::seconds(5));
        if recommendation.is_some() || self.last_sample.is_none_or(|at| now - at >= interval) {
            self.last_sample = Some(now);
            if let Err(e) = self.hub.stores.quality.add_quality_sample(&sample).await {
                tracing::warn!(error = %e, "quality sample not stored");
            }
        }
        let mut reply = Reply::ack(&QualityAck {
            score: (score * 100.0).round() / 100.0,
            level,
        })?;
        if let Some(recommendation) = recommendation {
            self.cap_layers(recommendation.profile).await;
            reply.direct(&recommendation)?;
        }
        Ok(reply)
    }

    /// `recording:start`: asks everyone present for consent.
    pub(super) async fn start_recording(&mut self) -> Result<Reply, Refusal> {
        let seat = self.seat()?;
        let recording_id = new_id();
        let (policy, now) = (&self.hub.policy, self.hub.clock.now());
        let input = Input::RecordingStart {
            by: seat.participant.clone(),
            recording_id: recording_id.clone(),
        };
        let (deliver, recording) = self
            .apply(&seat, |room| {
                room.handle(input.clone(), policy, now)
                    .map(|out| (out, room.recording.clone()))
            })
            .await?;
        let (active, pending): (bool, Vec<String>) = match recording {
            Recording::Active { .. } => (true, Vec::new()),
            Recording::AwaitingConsent { pending, .. } => (false, pending.into_iter().collect()),
            Recording::Idle => (false, Vec::new()),
        };
        let mut reply = Reply::ack(&RecordingStartAck {
            recording_id,
            active,
            pending,
        })?;
        reply.deliver = deliver;
        Ok(reply)
    }

    /// `recording:consent`: for the current recording only.
    pub(super) async fn consent(&mut self, request: ConsentRequest) -> Result<Reply, Refusal> {
        let seat = self.seat()?;
        let (policy, now) = (&self.hub.policy, self.hub.clock.now());
        let input = Input::Consent {
            participant_id: seat.participant.clone(),
            granted: request.granted,
        };
        let wanted = request.recording_id.as_deref();
        let (deliver, ()) = self
            .apply(&seat, |room| {
                if let Some(wanted) = wanted
                    && room.recording_view().recording_id.as_deref() != Some(wanted)
                {
                    return Err(RoomError::Recording(
                        "that recording is no longer asking for consent",
                    ));
                }
                room.handle(input.clone(), policy, now).map(|out| (out, ()))
            })
            .await?;
        Ok(Reply {
            deliver,
            ..Reply::default()
        })
    }
}
