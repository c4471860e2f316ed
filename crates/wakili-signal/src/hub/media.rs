//! Media through the SFU: `media:publish`, `media:answer` and `media:subscription` from
//! participants, and what the SFU reports (offers, tracks, the active speaker, layers) delivered
//! to them. A participant may connect its media only while present in the call (not waiting)
//! and while the consultation's topology is `sfu`.

use socketioxide::{SocketIo, adapter::Adapter};
use tokio::sync::broadcast::error::RecvError;
use wakili_core::{
    media::Topology,
    room::{Presence, Room, RoomError},
};
use wakili_sfu::{MediaKind, SfuEvent, SfuHandle};

use super::{
    Hub, Reply, Worker, consultation_room, emit_event,
    media_route::{MediaCall, MediaFailure, Op},
    participant_room,
};
use crate::protocol::{
    LayerPreference, NoFields, Refusal, SdpAck, SdpRequest, SubscriptionRequest,
    server::{ActiveSpeaker, LayerChanged, MediaOffer, MediaTrack},
};

impl<A: Adapter> Worker<A> {
    /// This connection's consultation and participant when it may use the SFU, and whether the
    /// participant may send media.
    async fn media_seat(&self) -> Result<(String, String, bool), Refusal> {
        let seat = self.seat()?;
        if self.hub.sfu.is_none() {
            return Err(MediaFailure::Disabled.refusal());
        }
        let (topology, may_publish) = self
            .hub
            .store
            .read(&seat.consultation, |room| {
                let room = room.ok_or(RoomError::NoParticipant)?;
                let me = room
                    .members
                    .get(&seat.participant)
                    .ok_or(RoomError::NoParticipant)?;
                if me.presence != Presence::Present {
                    return Err(RoomError::Waiting);
                }
                Ok((room.topology, me.role.may_publish()))
            })
            .await??;
        if topology != Topology::Sfu {
            return Err(Refusal::new(
                "wrong_topology",
                "this call is peer to peer now: use signal; media:topology says when it moves to the SFU",
            ));
        }
        Ok((seat.consultation, seat.participant, may_publish))
    }

    /// `op` for this connection's participant, on the node that serves its consultation's
    /// media.
    async fn media_call(&self, op: impl FnOnce(bool) -> Op) -> Result<Option<String>, Refusal> {
        let (room, participant, may_publish) = self.media_seat().await?;
        let call = MediaCall {
            room,
            participant,
            op: op(may_publish),
        };
        self.hub.media(call).await.map_err(MediaFailure::refusal)
    }

    /// `media:publish`: the participant's offer to the SFU, answered. An observer's offer may
    /// only receive.
    pub(super) async fn publish(&mut self, request: SdpRequest) -> Result<Reply, Refusal> {
        let sdp = request.sdp;
        let answer = self
            .media_call(|may_publish| {
                if may_publish {
                    Op::Join { sdp }
                } else {
                    Op::Listen { sdp }
                }
            })
            .await?
            .ok_or_else(|| MediaFailure::Refused("the SFU gave no answer".to_owned()).refusal())?;
        if let Some(seat) = &self.seat {
            tracing::info!(consultation_id = %seat.consultation, participant_id = %seat.participant, "media published to the SFU");
        }
        Reply::ack(&SdpAck { sdp: answer })
    }

    /// `media:answer`: the participant's answer to the SFU's last `media:offer`.
    pub(super) async fn media_answer(&mut self, request: SdpRequest) -> Result<Reply, Refusal> {
        self.media_call(|_| Op::Answer { sdp: request.sdp }).await?;
        Reply::ack(&NoFields {})
    }

    /// `media:subscription`: pause or resume one received track.
    pub(super) async fn subscription(
        &mut self,
        request: SubscriptionRequest,
    ) -> Result<Reply, Refusal> {
        self.media_call(|_| Op::Pause {
            track: request.track_id,
            paused: request.paused,
        })
        .await?;
        Reply::ack(&NoFields {})
    }

    /// `media:layer-preference`: one layer for every video this participant receives, or the
    /// server's choice again.
    pub(super) async fn layer_preference(
        &mut self,
        request: LayerPreference,
    ) -> Result<Reply, Refusal> {
        self.media_call(|_| Op::ForceLayer { rid: request.rid })
            .await?;
        Reply::ack(&NoFields {})
    }

    /// The quality engine recommended `profile` to this participant: in an SFU call, the layers
    /// it receives are capped to match (its downlink is what the report measured).
    pub(super) async fn cap_layers(&self, profile: &str) {
        let (Some(_), Some(seat)) = (&self.hub.sfu, &self.seat) else {
            return;
        };
        let call = MediaCall {
            room: seat.consultation.clone(),
            participant: seat.participant.clone(),
            op: Op::QualityCap {
                profile: profile.to_owned(),
            },
        };
        match self.hub.media(call).await {
            Ok(_) | Err(MediaFailure::Unknown(_)) => {}
            Err(e) => tracing::warn!(error = ?e, "layer cap not applied"),
        }
    }
}

impl Hub {
    /// Ends `participant`'s SFU session, if it has one (it left the call for good).
    pub(super) async fn leave_sfu(&self, consultation: &str, participant: &str) {
        if self.sfu.is_none() {
            return;
        }
        let call = MediaCall {
            room: consultation.to_owned(),
            participant: participant.to_owned(),
            op: Op::Leave,
        };
        match self.media(call).await {
            Ok(_) | Err(MediaFailure::Unknown(_)) => {}
            Err(e) => tracing::warn!(error = ?e, "SFU session not ended"),
        }
    }

    /// Tells the recorder what the consultation's room decides now (server recording on,
    /// paused or off, and who is in the call).
    pub(super) async fn sync_recorder(&self, consultation: &str) {
        if self.recorder.is_none() {
            return;
        }
        let call = MediaCall {
            room: consultation.to_owned(),
            participant: String::new(),
            op: Op::SyncRecorder,
        };
        if let Err(e) = self.media(call).await {
            tracing::error!(error = ?e, consultation_id = consultation, "recorder not told of a room change");
        }
    }

    /// Whether the server records `consultation` now: this node's recorder says so, or, with
    /// several nodes, the room has a server recording (its recorder may be on the node that
    /// serves the consultation's media).
    pub(super) async fn records(&self, consultation: &str) -> bool {
        let Some(recorder) = &self.recorder else {
            return false;
        };
        if recorder.records(consultation).await {
            return true;
        }
        matches!(self.store, crate::RoomStore::Redis(_))
            && self
                .store
                .read(consultation, |room| {
                    room.and_then(Room::server_recording).is_some()
                })
                .await
                .unwrap_or(true)
    }

    /// Ends every SFU session of the consultation (its call ended).
    pub(super) async fn close_sfu(&self, consultation: &str) {
        if self.sfu.is_none() {
            return;
        }
        let call = MediaCall {
            room: consultation.to_owned(),
            participant: String::new(),
            op: Op::Close,
        };
        match self.media(call).await {
            Ok(_) | Err(MediaFailure::Unknown(_)) => {}
            Err(e) => tracing::warn!(error = ?e, "SFU sessions not ended"),
        }
    }
}

/// Delivers what the SFU reports, until it stops. Offers and layers go to one participant,
/// tracks and the active speaker to the whole call; with the Redis adapter they reach
/// participants connected to any node.
pub(super) async fn pump<A: Adapter>(io: SocketIo<A>, sfu: SfuHandle) {
    let mut events = sfu.events();
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(RecvError::Lagged(missed)) => {
                tracing::error!(missed, "SFU events were dropped: signaling fell behind");
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        match event {
            SfuEvent::Offer {
                participant, sdp, ..
            } => emit_event(&io, participant_room(&participant), &MediaOffer { sdp }).await,
            SfuEvent::TrackPublished {
                room,
                participant,
                track,
            } => {
                let event = MediaTrack {
                    participant_id: participant,
                    track_id: track.id.0,
                    kind: Some(kind(track.kind)),
                    layers: track.layers.iter().map(|r| r.as_str()).collect(),
                    active: true,
                };
                emit_event(&io, consultation_room(&room), &event).await;
            }
            SfuEvent::TrackRemoved {
                room,
                participant,
                track,
            } => {
                let event = MediaTrack::removed(participant, track.0);
                emit_event(&io, consultation_room(&room), &event).await;
            }
            SfuEvent::ActiveSpeaker { room, participant } => {
                let event = ActiveSpeaker {
                    participant_id: participant,
                };
                emit_event(&io, consultation_room(&room), &event).await;
            }
            SfuEvent::LayerChanged {
                subscriber,
                track,
                rid,
                ..
            } => {
                let event = LayerChanged {
                    track_id: track.0,
                    rid: rid.map(|r| r.as_str()),
                };
                emit_event(&io, participant_room(&subscriber), &event).await;
            }
            SfuEvent::Disconnected { room, participant } => {
                tracing::info!(consultation_id = %room, participant_id = %participant, "media connection to the SFU lost");
            }
        }
    }
}

fn kind(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Audio => "audio",
        MediaKind::Video => "video",
    }
}
