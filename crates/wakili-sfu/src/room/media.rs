//! Media between sessions: str0m's events in, the forwarder's decisions out.
//!
//! An RTP packet from a publisher is described to the forwarder (track, layer, keyframe,
//! audio level) and written to every subscriber it decides on, with the sequence number and
//! timestamp it chose. Keyframe requests go to the publisher as PLI; subscribers' own PLIs and
//! bandwidth estimates go to the forwarder.

use std::time::Instant;

use str0m::{
    Event, IceConnectionState, bwe::BweKind, format::Codec, media::KeyframeRequestKind,
    rtp::RtpPacket,
};
use wakili_forward::{InboundPacket, Output, ParticipantId};

use super::{Effects, Room, participant::Forwarded};
use crate::{MediaKind, Rid, SfuEvent, codec, context::Context};

impl Room {
    /// One event from `id`'s session.
    pub(super) fn on_event(
        &mut self,
        id: ParticipantId,
        event: Event,
        ctx: &Context,
        now: Instant,
        fx: &mut Effects,
    ) {
        let Some(p) = self.participants.get_mut(&id) else {
            return;
        };
        match event {
            Event::RtpPacket(packet) => self.on_rtp(id, &packet, ctx, fx),
            Event::Connected => {
                tracing::debug!(room = %self.name, participant = %p.name, "connected");
                p.connected = true;
                self.offers_due = true;
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) | Event::Closed => {
                tracing::info!(room = %self.name, participant = %p.name, "connection lost");
                p.fail();
            }
            Event::KeyframeRequest(request) => {
                if let Some(track) = p.track_on(request.mid) {
                    if let Err(error) = self.forwarder.request_keyframe(id, track, ctx.millis(now))
                    {
                        tracing::debug!(%error, "keyframe request ignored");
                    }
                    self.run_forwarder(fx);
                }
            }
            Event::EgressBitrateEstimate(estimate) => {
                let bps = match estimate {
                    BweKind::Twcc { estimate, .. } | BweKind::Remb { estimate, .. } => {
                        estimate.as_u64()
                    }
                    _ => return,
                };
                if p.estimate.is_none() && Some(bps) == ctx.config.initial_estimate_bps {
                    // str0m first reports the starting bitrate it was configured with: not a
                    // measurement. The forwarder waits for the first one (its probe follows
                    // within tens of milliseconds) and takes it as a first choice.
                    return;
                }
                p.estimate = Some(bps);
                if let Err(error) = self.forwarder.set_estimate(id, bps, ctx.millis(now)) {
                    tracing::debug!(%error, "estimate ignored");
                }
                self.run_forwarder(fx);
            }
            _ => {}
        }
    }

    /// A publisher's RTP packet: forwarded to whom the forwarder says.
    fn on_rtp(&mut self, id: ParticipantId, packet: &RtpPacket, ctx: &Context, fx: &mut Effects) {
        let Some(p) = self.participants.get_mut(&id) else {
            return;
        };
        let ssrc = packet.header.ssrc;
        let Some((mid, rid)) = p.stream(ssrc, &mut fx.transmits, &mut self.pending) else {
            return;
        };
        let Some(track) = p.published.get(&mid).copied() else {
            return;
        };
        let pt = packet.header.payload_type;
        let Some(params) = p
            .rtc
            .codec_config()
            .find(|params| params.pt() == pt)
            .copied()
        else {
            return;
        };
        let layer = match rid {
            None => None,
            Some(rid) => match Rid::parse(&rid) {
                Some(layer) => Some(layer),
                None => return,
            },
        };
        let Some(published) = self.tracks.get_mut(&track) else {
            return;
        };
        published.received += 1;
        let video = published.info.kind == MediaKind::Video;
        let codec = params.spec().codec;
        if self.tap.is_some() {
            self.tap_packet(track, layer, packet, &params);
        }
        let inbound = InboundPacket {
            track,
            rid: layer,
            seq: packet.header.sequence_number,
            timestamp: packet.header.timestamp,
            is_keyframe: video && codec::starts_keyframe(codec, &packet.payload),
            audio_level: packet.header.ext_vals.audio_level.map(codec::audio_level),
            arrival: ctx.millis(packet.timestamp),
        };
        if let Err(error) = self.forwarder.handle_packet(inbound) {
            tracing::trace!(%error, "packet not forwarded");
            return;
        }
        let outputs: Vec<Output> = std::iter::from_fn(|| self.forwarder.poll_output()).collect();
        for output in outputs {
            let Output::Forward {
                subscriber,
                track,
                seq,
                timestamp,
            } = output
            else {
                self.execute(output, fx);
                continue;
            };
            let Some(sub) = self.participants.get_mut(&subscriber) else {
                continue;
            };
            let forwarded = Forwarded {
                rtp: packet,
                params,
                seq,
                timestamp,
                nackable: video,
                vp8_layer: (codec == Codec::Vp8).then_some(layer),
            };
            // Drained in `flush`, once for everything written in this turn of the engine.
            if sub.write(track, forwarded) && !sub.dirty {
                sub.dirty = true;
                self.dirty.push(subscriber);
            }
        }
    }

    /// Carries out the forwarder's pending decisions (none of them forwards: that only
    /// follows a packet, in `on_rtp`).
    pub(super) fn run_forwarder(&mut self, fx: &mut Effects) {
        while let Some(output) = self.forwarder.poll_output() {
            self.execute(output, fx);
        }
    }

    fn execute(&mut self, output: Output, fx: &mut Effects) {
        match output {
            Output::Forward { .. } => {}
            Output::RequestKeyframe { track, rid } => {
                let Some(published) = self.tracks.get(&track) else {
                    return;
                };
                let mid = published.mid;
                let Some(p) = self.participants.get_mut(&published.publisher) else {
                    return;
                };
                let rid = rid.map(|rid| str0m::media::Rid::from(rid.as_str()));
                let mut direct = p.rtc.direct_api();
                if let Some(stream) = direct.stream_rx_by_mid(mid, rid) {
                    stream.request_keyframe(KeyframeRequestKind::Pli);
                }
                p.drain(&mut fx.transmits, &mut self.pending);
            }
            Output::ActiveSpeaker { participant } => {
                fx.events.push(SfuEvent::ActiveSpeaker {
                    room: self.name.clone(),
                    participant: self.name_of(participant),
                });
            }
            Output::LayerChanged {
                subscriber,
                track,
                rid,
            } => {
                fx.events.push(SfuEvent::LayerChanged {
                    room: self.name.clone(),
                    subscriber: self.name_of(subscriber),
                    track,
                    rid,
                });
            }
        }
    }
}
