//! Server-initiated renegotiation: the m-lines carrying others' tracks to a participant.
//!
//! A participant receives each other participant's track on an m-line the SFU adds (sendonly
//! from the SFU) in an offer of its own. Offers go only to connected participants (so the
//! client has surely applied the SFU's answer to its join first), one at a time: changes made
//! while an offer awaits its answer wait for the next one. An m-line whose track went away
//! is stopped (port 0), and str0m may recycle it later.

use std::time::Instant;

use str0m::{bwe::Bitrate, change::SdpAnswer, media::Direction};
use wakili_forward::ParticipantId;

use super::{Effects, OutState, Room};
use crate::{MediaKind, SfuError, SfuEvent, TrackId, context::Context};

impl Room {
    /// Makes an offer to every participant that needs one and may get one. Returns whether
    /// any offer was made.
    pub(super) fn make_offers(&mut self, fx: &mut Effects) -> bool {
        if !std::mem::take(&mut self.offers_due) {
            return false;
        }
        let ready: Vec<ParticipantId> = self
            .participants
            .values()
            .filter(|p| p.connected && !p.failed && p.pending_offer.is_none())
            .filter(|p| {
                !p.to_stop.is_empty() || p.outgoing.values().any(|o| o.state == OutState::Queued)
            })
            .map(|p| p.id)
            .collect();
        let mut offered = false;
        for id in ready {
            offered |= self.offer_to(id, fx);
        }
        offered
    }

    fn offer_to(&mut self, id: ParticipantId, fx: &mut Effects) -> bool {
        let Self {
            name: room,
            participants,
            tracks,
            pending,
            ..
        } = self;
        let publishers: Vec<(TrackId, MediaKind, String)> = tracks
            .iter()
            .map(|(track, t)| {
                let publisher = participants
                    .get(&t.publisher)
                    .map(|p| p.name.clone())
                    .unwrap_or_default();
                (*track, t.info.kind, publisher)
            })
            .collect();
        let Some(p) = participants.get_mut(&id) else {
            return false;
        };
        let mut change = p.rtc.sdp_api();
        for (track, out) in &mut p.outgoing {
            if out.state != OutState::Queued {
                continue;
            }
            let Some((_, kind, publisher)) = publishers.iter().find(|(t, _, _)| t == track) else {
                continue;
            };
            let kind = match kind {
                MediaKind::Audio => str0m::media::MediaKind::Audio,
                MediaKind::Video => str0m::media::MediaKind::Video,
            };
            // msid "<publisher> t<track>": how the client tells whose track this is.
            let mid = change.add_media(
                kind,
                Direction::SendOnly,
                Some(publisher.clone()),
                Some(format!("t{}", track.0)),
                None,
            );
            out.state = OutState::Negotiating(mid);
        }
        for mid in p.to_stop.drain(..) {
            change.stop_media(mid);
        }
        if !change.has_changes() {
            return false;
        }
        let Some((offer, pending_offer)) = change.apply() else {
            return false;
        };
        p.pending_offer = Some(pending_offer);
        p.drain(&mut fx.transmits, pending);
        fx.events.push(SfuEvent::Offer {
            room: room.clone(),
            participant: p.name.clone(),
            sdp: offer.to_sdp_string(),
        });
        true
    }

    /// `name`'s answer to the SFU's last offer: the offered m-lines open and their tracks
    /// start flowing (each with a keyframe request).
    pub(crate) fn answer(
        &mut self,
        name: &str,
        sdp: &str,
        ctx: &Context,
        now: Instant,
        fx: &mut Effects,
    ) -> Result<(), SfuError> {
        let id = self.by_name(name)?;
        let answer =
            SdpAnswer::from_sdp_string(sdp).map_err(|e| SfuError::InvalidSdp(e.to_string()))?;
        let p = self
            .participants
            .get_mut(&id)
            .ok_or(SfuError::NoPendingOffer)?;
        let pending_offer = p.pending_offer.take().ok_or(SfuError::NoPendingOffer)?;
        // Whatever changed meanwhile goes into the next offer.
        self.offers_due = true;
        let result = p.rtc.sdp_api().accept_answer(pending_offer, answer);
        p.drain(&mut fx.transmits, &mut self.pending);
        let mut opened = Vec::new();
        for (track, out) in &mut p.outgoing {
            if let OutState::Negotiating(mid) = out.state {
                if result.is_ok() {
                    out.state = OutState::Open(mid);
                    opened.push((*track, out.paused));
                } else {
                    // The offer is void: offer these tracks again on new m-lines.
                    out.state = OutState::Queued;
                }
            }
        }
        let forced = p.forced;
        if let Err(error) = result {
            self.settle(ctx, now, fx);
            return Err(SfuError::InvalidSdp(error.to_string()));
        }
        let at = ctx.millis(now);
        for (track, paused) in opened {
            if let Err(error) = self.forwarder.subscribe(id, track, at) {
                tracing::warn!(%error, "subscription refused by the forwarder");
                continue;
            }
            if paused && let Err(error) = self.forwarder.pause(id, track, at) {
                tracing::warn!(%error, "pause refused by the forwarder");
            }
            if forced.is_some() {
                self.apply_forced(id, track, forced, ctx, now);
            }
        }
        self.run_forwarder(fx);
        self.retarget_bwe(id, ctx, fx);
        self.settle(ctx, now, fx);
        Ok(())
    }

    /// Tells `id`'s bandwidth estimator what to probe for: the top layer of every unpaused
    /// video subscription plus its audio. Without a target str0m never probes above what is
    /// sent, and the forwarder would never see room for a higher layer.
    pub(super) fn retarget_bwe(&mut self, id: ParticipantId, ctx: &Context, fx: &mut Effects) {
        const AUDIO_BPS: u64 = 64_000;
        // Above what the forwarder needs to step up to f (a surplus of `up_factor`, held for
        // `up_hold`): an estimate that settles right at that threshold dips under it now and
        // then, and each dip restarts the hold, so the subscriber would stay on h.
        const MARGIN: f64 = 1.25;
        let layer = &ctx.config.forwarder.layer;
        let top = (layer.bitrates.f as f64 * layer.up_factor * MARGIN) as u64;
        let Some(p) = self.participants.get_mut(&id) else {
            return;
        };
        let desired: u64 = p
            .outgoing
            .iter()
            .filter(|(_, out)| matches!(out.state, OutState::Open(_)) && !out.paused)
            .filter_map(|(track, _)| self.tracks.get(track))
            .map(|t| match t.info.kind {
                MediaKind::Audio => AUDIO_BPS,
                MediaKind::Video => top,
            })
            .sum();
        if ctx.config.initial_estimate_bps.is_none() || p.bwe_desired == desired {
            return;
        }
        p.bwe_desired = desired;
        p.rtc
            .bwe()
            .set_bitrate(Bitrate::ZERO, Bitrate::bps(desired));
        p.drain(&mut fx.transmits, &mut self.pending);
    }
}
