//! The connection's worker: its events one at a time, in arrival order, each parsed once into a
//! [`ClientEvent`] and dispatched; and what happens when the connection drops.

use std::sync::Arc;

use serde_json::value::RawValue;
use socketioxide::adapter::Adapter;
use tokio::sync::mpsc;
use tracing::Instrument;
use wakili_core::room::{Input, MediaState, Outbound, Outcome, Room, RoomError};

use super::{Reply, Seat, Worker, intake::Item};
use crate::{
    expiry,
    protocol::{self, ClientEvent, EventName, Refusal},
};

impl<A: Adapter> Worker<A> {
    pub(super) async fn run(mut self, mut inbox: mpsc::Receiver<Item<A>>) {
        let timer = tokio::time::sleep(self.token_wait());
        tokio::pin!(timer);
        loop {
            let item = tokio::select! {
                biased;
                item = inbox.recv() => item,
                () = &mut timer, if !self.expired => {
                    self.token_due();
                    timer.as_mut().reset(tokio::time::Instant::now() + self.token_wait());
                    continue;
                }
            };
            let Some(item) = item else { break };
            match item {
                Item::Event {
                    text,
                    ack,
                    received,
                } => {
                    self.received = received;
                    // One span per event: a trace shows which event, of whom, took how long.
                    let span = tracing::info_span!(
                        "signaling_event",
                        event = tracing::field::Empty,
                        sid = %self.socket.id,
                        user_id = %self.caller.user_id,
                        consultation_id = self.seat.as_ref().map(|s| s.consultation.as_str()),
                    );
                    // Boxed, like the other awaits below: a join's or a recording's state
                    // lives on the heap while it runs and is reused by the next event, instead
                    // of sitting in every idle connection's task (3.9 KiB a task unboxed, each
                    // a fresh page to fault in during a join storm).
                    match Box::pin(self.event(&text)).instrument(span).await {
                        Ok(reply) => {
                            let sent = match reply.fields {
                                Some(fields) => ack.send(&protocol::ok(fields)),
                                None => ack.send(&protocol::done()),
                            };
                            if let Err(e) = sent {
                                tracing::debug!(error = %e, "ack not sent");
                            }
                            if let Some((name, event)) = reply.direct
                                && let Err(e) = self.socket.emit(name, &event)
                            {
                                tracing::debug!(event = name, error = %e, "event not sent");
                            }
                            if let Some(seat) = &self.seat {
                                Box::pin(self.hub.deliver(
                                    &self.io,
                                    &seat.consultation,
                                    reply.deliver,
                                ))
                                .await;
                            }
                        }
                        Err(refusal) => {
                            let _ = ack.send(&protocol::failed(&refusal));
                            if refusal.code == expiry::TOKEN_EXPIRED {
                                // After the ack, so that the client reads why.
                                self.close_expired();
                            }
                        }
                    }
                }
                Item::Closed => {
                    Box::pin(self.dropped()).await;
                    break;
                }
            }
            if std::mem::take(&mut self.token_renewed) {
                timer
                    .as_mut()
                    .reset(tokio::time::Instant::now() + self.token_wait());
            }
        }
        self.hub.telemetry.disconnected();
    }

    /// How rooms record this connection: `<node>/<socket id>`.
    pub(super) fn connection(&self) -> String {
        format!("{}/{}", self.hub.node, self.socket.id)
    }

    pub(super) fn seat(&self) -> Result<Seat, Refusal> {
        self.seat
            .clone()
            .ok_or_else(|| Refusal::new("not_joined", "send consultation:join first"))
    }

    /// Handles one event: checks the token, reads the packet into a [`ClientEvent`] (name, then
    /// payload) and runs it.
    async fn event(&mut self, text: &str) -> Result<Reply, Refusal> {
        self.check_token()?;
        let packet = protocol::parse_packet(text)?;
        let name = EventName::parse(&packet.event)?;
        tracing::Span::current().record("event", name.as_str());
        let reply = self.dispatch(name, packet.data).await;
        if name == EventName::Join && reply.is_err() {
            self.hub.telemetry.join_refused();
        }
        reply
    }

    /// Reads the payload of event `name` and runs it.
    async fn dispatch(
        &mut self,
        name: EventName,
        data: Option<&RawValue>,
    ) -> Result<Reply, Refusal> {
        // A second join is refused whatever its payload.
        if name == EventName::Join && self.seat.is_some() {
            return Err(Refusal::new(
                "already_joined",
                "this connection is already in a consultation; send consultation:leave first",
            ));
        }
        match ClientEvent::parse(name, data)? {
            ClientEvent::Join(request) => self.join(request).await,
            ClientEvent::Signal(request) => self.signal(request).await,
            ClientEvent::Refresh(request) => self.refresh(request),
            ClientEvent::Media(m) => {
                let media = MediaState {
                    audio: m.audio,
                    video: m.video,
                    screen: m.screen,
                };
                let seat = self.seat()?;
                self.change(Input::Media {
                    participant_id: seat.participant,
                    media,
                })
                .await
            }
            ClientEvent::Quality(report) => self.quality(report).await,
            ClientEvent::Admit(request) => {
                let seat = self.seat()?;
                self.change(Input::Admit {
                    by: seat.participant,
                    target: request.participant_id,
                })
                .await
            }
            ClientEvent::RecordingStart(()) => self.start_recording().await,
            ClientEvent::RecordingStop(()) => {
                let seat = self.seat()?;
                self.change(Input::RecordingStop {
                    by: seat.participant,
                })
                .await
            }
            ClientEvent::Consent(request) => self.consent(request).await,
            ClientEvent::Leave(()) => self.leave().await,
            ClientEvent::Publish(request) => self.publish(request).await,
            ClientEvent::MediaAnswer(request) => self.media_answer(request).await,
            ClientEvent::Subscription(request) => self.subscription(request).await,
            ClientEvent::LayerPreference(request) => self.layer_preference(request).await,
            ClientEvent::End(()) => {
                let seat = self.seat()?;
                self.change(Input::End {
                    by: seat.participant,
                })
                .await
            }
        }
    }

    /// Applies `change` to this connection's room and persists the facts it decided; returns
    /// the deliveries and whatever else `change` returned.
    pub(super) async fn apply<R>(
        &self,
        seat: &Seat,
        change: impl FnMut(&mut Room) -> Result<(Outcome, R), RoomError>,
    ) -> Result<(Vec<Outbound>, R), Refusal> {
        let (outcome, extra) = self.hub.store.update(&seat.consultation, change).await??;
        self.hub
            .persist(
                &seat.consultation,
                outcome.facts,
                self.caller.user_id.as_str(),
                &seat.participant,
            )
            .await?;
        Ok((outcome.outbound, extra))
    }

    /// Applies `input` to the room, persists its facts and returns its deliveries.
    pub(super) async fn change(&mut self, input: Input) -> Result<Reply, Refusal> {
        let seat = self.seat()?;
        let (policy, now) = (&self.hub.policy, self.hub.clock.now());
        let (deliver, ()) = self
            .apply(&seat, |room| {
                room.handle(input.clone(), policy, now).map(|out| (out, ()))
            })
            .await?;
        Ok(Reply {
            deliver,
            ..Reply::default()
        })
    }

    /// The connection closed: the participant may resume within the grace period.
    pub(super) async fn dropped(&mut self) {
        let Some(seat) = self.seat.take() else {
            return;
        };
        self.hub.telemetry.left(
            &seat.consultation,
            &seat.participant,
            &self.socket.id.to_string(),
        );
        let hub = Arc::clone(&self.hub);
        let now = hub.clock.now();
        let input = Input::Disconnected {
            participant_id: seat.participant.clone(),
            connection: self.connection(),
        };
        let outcome = hub
            .store
            .update(&seat.consultation, |room| {
                room.handle(input.clone(), &hub.policy, now)
            })
            .await;
        let outcome = match outcome {
            Ok(Ok(outcome)) => outcome,
            // Already gone (left, ended, replaced): nothing to do.
            Ok(Err(_)) => return,
            Err(e) => {
                tracing::error!(error = %e, consultation_id = %seat.consultation, "could not mark a participant as reconnecting");
                return;
            }
        };
        let reconnecting = !outcome.outbound.is_empty();
        if let Err(e) = hub
            .persist(
                &seat.consultation,
                outcome.facts,
                self.caller.user_id.as_str(),
                &seat.participant,
            )
            .await
        {
            tracing::error!(error = %e, "disconnect not recorded");
        }
        hub.deliver(&self.io, &seat.consultation, outcome.outbound)
            .await;
        hub.presence(
            &seat.consultation,
            self.caller.user_id.as_str(),
            &self.name,
            false,
        )
        .await;
        if reconnecting {
            let io = self.io.clone();
            let grace = hub.settings.resume_grace;
            tokio::spawn(async move {
                tokio::time::sleep(grace + std::time::Duration::from_millis(20)).await;
                hub.expire(&io, &seat.consultation).await;
            });
        }
    }
}
