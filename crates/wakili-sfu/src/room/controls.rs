//! What operators and the quality engine change for a subscriber: pause, forced layer,
//! quality cap; and the room's statistics.

use std::time::Instant;

use wakili_forward::ParticipantId;

use super::{Effects, OutState, Room};
use crate::{
    ParticipantStats, PublishedStats, Quality, Rid, RoomStats, SfuError, SubscriptionStats,
    TrackId, context::Context,
};

impl Room {
    /// `subscriber` pauses (or resumes) `track`.
    pub(crate) fn pause(
        &mut self,
        subscriber: &str,
        track: TrackId,
        paused: bool,
        ctx: &Context,
        now: Instant,
        fx: &mut Effects,
    ) -> Result<(), SfuError> {
        let id = self.by_name(subscriber)?;
        let published = self
            .tracks
            .get(&track)
            .ok_or(SfuError::UnknownTrack(track))?;
        if published.publisher == id {
            return Err(SfuError::OwnTrack(track));
        }
        let unknown = self.unknown(subscriber);
        let p = self.participants.get_mut(&id).ok_or(unknown)?;
        let out = p
            .outgoing
            .get_mut(&track)
            .ok_or(SfuError::UnknownTrack(track))?;
        if out.paused && !paused {
            out.resumed();
        }
        out.paused = paused;
        if matches!(out.state, OutState::Open(_)) {
            let at = ctx.millis(now);
            let result = if paused {
                self.forwarder.pause(id, track, at)
            } else {
                self.forwarder.resume(id, track, at)
            };
            if let Err(error) = result {
                tracing::warn!(%error, "pause refused by the forwarder");
            }
        }
        self.run_forwarder(fx);
        self.retarget_bwe(id, ctx, fx);
        self.settle(ctx, now, fx);
        Ok(())
    }

    /// Forces the layer `subscriber` receives of every simulcast track (`None` lifts it).
    pub(crate) fn force_layer(
        &mut self,
        subscriber: &str,
        rid: Option<Rid>,
        ctx: &Context,
        now: Instant,
        fx: &mut Effects,
    ) -> Result<(), SfuError> {
        let id = self.by_name(subscriber)?;
        let unknown = self.unknown(subscriber);
        let p = self.participants.get_mut(&id).ok_or(unknown)?;
        p.forced = rid;
        let open: Vec<TrackId> = p
            .outgoing
            .iter()
            .filter(|(_, out)| matches!(out.state, OutState::Open(_)))
            .map(|(track, _)| *track)
            .collect();
        for track in open {
            self.apply_forced(id, track, rid, ctx, now);
        }
        self.run_forwarder(fx);
        self.settle(ctx, now, fx);
        Ok(())
    }

    /// Applies a forced layer to one subscription: the track's own layer closest below it (or
    /// its lowest), as tracks may be published with fewer layers.
    pub(super) fn apply_forced(
        &mut self,
        subscriber: ParticipantId,
        track: TrackId,
        rid: Option<Rid>,
        ctx: &Context,
        now: Instant,
    ) {
        let Some(layers) = self.tracks.get(&track).map(|t| &t.info.layers) else {
            return;
        };
        if layers.is_empty() {
            return;
        }
        let layer = rid.map(|rid| {
            let below = layers.iter().rev().find(|l| **l <= rid);
            *below.unwrap_or(&layers[0])
        });
        if let Err(error) = self
            .forwarder
            .force_layer(subscriber, track, layer, ctx.millis(now))
        {
            tracing::warn!(%error, "forced layer refused by the forwarder");
        }
    }

    /// The quality engine's cap for `subscriber`'s video.
    pub(crate) fn set_quality_cap(
        &mut self,
        subscriber: &str,
        cap: Quality,
        ctx: &Context,
        now: Instant,
        fx: &mut Effects,
    ) -> Result<(), SfuError> {
        let id = self.by_name(subscriber)?;
        if let Err(error) = self.forwarder.set_quality_cap(id, cap, ctx.millis(now)) {
            tracing::warn!(%error, "quality cap refused by the forwarder");
        }
        self.run_forwarder(fx);
        self.settle(ctx, now, fx);
        Ok(())
    }

    /// The room's state.
    pub(crate) fn stats(&self) -> RoomStats {
        let participants = self.participants.values().map(|p| {
            let published = p
                .published
                .values()
                .filter_map(|track| self.tracks.get(track))
                .map(|t| PublishedStats {
                    track: t.info.clone(),
                    received_packets: t.received,
                })
                .collect();
            let subscriptions = p
                .outgoing
                .iter()
                .map(|(track, out)| SubscriptionStats {
                    track: *track,
                    publisher: self
                        .tracks
                        .get(track)
                        .map(|t| self.name_of(t.publisher))
                        .unwrap_or_default(),
                    negotiated: matches!(out.state, OutState::Open(_)),
                    paused: out.paused,
                    layer: self.forwarder.forwarded_layer(p.id, *track),
                    forwarded_packets: out.forwarded,
                })
                .collect();
            ParticipantStats {
                name: p.name.clone(),
                connected: p.connected,
                published,
                subscriptions,
                forwarded_packets: p.forwarded,
                estimate_bps: p.estimate,
            }
        });
        RoomStats {
            room: self.name.clone(),
            participants: participants.collect(),
            active_speaker: self.forwarder.active_speaker().map(|id| self.name_of(id)),
        }
    }
}
