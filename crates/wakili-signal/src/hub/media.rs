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
use wakili_sfu::{MediaKind, Quality, Rid, SfuError, SfuEvent, SfuHandle, TrackId};

use super::{Hub, Reply, Worker, consultation_room, emit_event, participant_room};
use crate::protocol::{
    LayerPreference, NoFields, Refusal, SdpAck, SdpRequest, SubscriptionRequest,
    server::{ActiveSpeaker, LayerChanged, MediaOffer, MediaTrack},
};

/// What the client sees when the SFU refuses.
fn refused(e: SfuError) -> Refusal {
    match e {
        SfuError::Stopped | SfuError::Bind { .. } | SfuError::NoPublicIp => {
            tracing::error!(error = %e, "the SFU is unavailable");
            Refusal::new("unavailable", "the media server is unavailable; retry")
        }
        SfuError::RoomFull { .. } => Refusal::new("room_full", e.to_string()),
        SfuError::ListenOnly { .. } => Refusal::new("listen_only", e.to_string()),
        other => Refusal::new("media_refused", other.to_string()),
    }
}

impl<A: Adapter> Worker<A> {
    /// The SFU, and this connection's consultation and participant when it may use it.
    async fn media_seat(&self) -> Result<(SfuHandle, String, String), Refusal> {
        let (sfu, room, participant, _) = self.media_seat_as().await?;
        Ok((sfu, room, participant))
    }

    /// [`media_seat`](Self::media_seat), and whether the participant may send media.
    async fn media_seat_as(&self) -> Result<(SfuHandle, String, String, bool), Refusal> {
        let seat = self.seat()?;
        let Some(sfu) = self.hub.sfu.clone() else {
            return Err(Refusal::new(
                "sfu_disabled",
                "this server runs no SFU (sfu.enabled = false): media goes peer to peer",
            ));
        };
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
        Ok((sfu, seat.consultation, seat.participant, may_publish))
    }

    /// `media:publish`: the participant's offer to the SFU, answered. An observer's offer may
    /// only receive.
    pub(super) async fn publish(&mut self, request: SdpRequest) -> Result<Reply, Refusal> {
        let (sfu, room, participant, may_publish) = self.media_seat_as().await?;
        let answer = if may_publish {
            sfu.join(&room, &participant, &request.sdp).await
        } else {
            sfu.listen(&room, &participant, &request.sdp).await
        };
        let answer = answer.map_err(refused)?;
        tracing::info!(consultation_id = %room, participant_id = %participant, "media published to the SFU");
        Reply::ack(&SdpAck { sdp: answer.sdp })
    }

    /// `media:answer`: the participant's answer to the SFU's last `media:offer`.
    pub(super) async fn media_answer(&mut self, request: SdpRequest) -> Result<Reply, Refusal> {
        let (sfu, room, participant) = self.media_seat().await?;
        sfu.answer(&room, &participant, &request.sdp)
            .await
            .map_err(refused)?;
        Reply::ack(&NoFields {})
    }

    /// `media:subscription`: pause or resume one received track.
    pub(super) async fn subscription(
        &mut self,
        request: SubscriptionRequest,
    ) -> Result<Reply, Refusal> {
        let (sfu, room, participant) = self.media_seat().await?;
        sfu.pause(
            &room,
            &participant,
            TrackId(request.track_id),
            request.paused,
        )
        .await
        .map_err(refused)?;
        Reply::ack(&NoFields {})
    }
}

impl<A: Adapter> Worker<A> {
    /// `media:layer-preference`: one layer for every video this participant receives, or the
    /// server's choice again.
    pub(super) async fn layer_preference(
        &mut self,
        request: LayerPreference,
    ) -> Result<Reply, Refusal> {
        let (sfu, room, participant) = self.media_seat().await?;
        let rid = request.rid.as_deref().and_then(Rid::parse);
        sfu.force_layer(&room, &participant, rid)
            .await
            .map_err(refused)?;
        Reply::ack(&NoFields {})
    }

    /// The quality engine recommended `profile` to this participant: in an SFU call, the layers
    /// it receives are capped to match (its downlink is what the report measured).
    pub(super) async fn cap_layers(&self, profile: &str) {
        let (Some(sfu), Some(seat)) = (&self.hub.sfu, &self.seat) else {
            return;
        };
        match sfu
            .set_quality_cap(
                &seat.consultation,
                &seat.participant,
                Quality::from_profile(profile),
            )
            .await
        {
            Ok(()) | Err(SfuError::UnknownRoom(_) | SfuError::UnknownParticipant { .. }) => {}
            Err(e) => tracing::warn!(error = %e, "layer cap not applied"),
        }
    }
}

impl Hub {
    /// Ends `participant`'s SFU session, if it has one (it left the call for good).
    pub(super) async fn leave_sfu(&self, consultation: &str, participant: &str) {
        if let Some(sfu) = &self.sfu {
            match sfu.leave(consultation, participant).await {
                Ok(()) | Err(SfuError::UnknownRoom(_) | SfuError::UnknownParticipant { .. }) => {}
                Err(e) => tracing::warn!(error = %e, "SFU session not ended"),
            }
        }
    }

    /// Tells the recorder what the consultation's room decides now (server recording on,
    /// paused or off, and who is in the call).
    pub(super) async fn sync_recorder(&self, consultation: &str) {
        let Some(recorder) = &self.recorder else {
            return;
        };
        match self
            .store
            .read(consultation, |room| room.and_then(Room::server_recording))
            .await
        {
            Ok(plan) => recorder.apply(consultation, plan).await,
            Err(e) => {
                tracing::error!(error = %e, consultation_id = consultation, "recorder not told of a room change")
            }
        }
    }

    /// Whether the server's recorder records `consultation` now.
    pub(super) async fn records(&self, consultation: &str) -> bool {
        match &self.recorder {
            Some(recorder) => recorder.records(consultation).await,
            None => false,
        }
    }

    /// Ends every SFU session of the consultation (its call ended).
    pub(super) async fn close_sfu(&self, consultation: &str) {
        if let Some(sfu) = &self.sfu {
            match sfu.close(consultation).await {
                Ok(()) | Err(SfuError::UnknownRoom(_)) => {}
                Err(e) => tracing::warn!(error = %e, "SFU sessions not ended"),
            }
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
