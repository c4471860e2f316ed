//! A room: its participants' sessions, its published tracks and its [`Forwarder`].
//!
//! Every operation ends in [`Room::settle`]: str0m events queued while draining sessions are
//! handled (which may write to other sessions and queue more), failed sessions are removed,
//! and renegotiation offers are made, until nothing is left to do. Nothing here touches a
//! socket: datagrams to send and events to publish are collected in [`Effects`].

mod controls;
mod media;
mod negotiate;
mod participant;
mod record;

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use str0m::{Input, change::SdpOffer, media::Mid, net::Transmit};
use wakili_forward::{Forwarder, ForwarderConfig, ParticipantId, TrackKind};

use crate::{Answer, MediaKind, SfuError, SfuEvent, TrackId, TrackInfo, context::Context, offer};
use participant::{OutState, OutTrack, Participant, Pending};
pub(crate) use record::Tap;

/// How often the forwarder re-evaluates layers and the active speaker without packets.
const TICK: Duration = Duration::from_millis(100);

/// What an operation asks the IO side to do.
#[derive(Default)]
pub(crate) struct Effects {
    /// Datagrams (or ICE-TCP frames) to send.
    pub(crate) transmits: Vec<Transmit>,
    /// Events for the signaling layer.
    pub(crate) events: Vec<SfuEvent>,
}

/// A published track.
struct Published {
    publisher: ParticipantId,
    /// The m-line it arrives on, in the publisher's session.
    mid: Mid,
    info: TrackInfo,
    received: u64,
    /// `audio`, `video`, `screen`…, for the recorder.
    label: std::sync::Arc<str>,
    /// The publisher's name, shared with every packet handed to the recorder.
    publisher_name: std::sync::Arc<str>,
    /// Which of its layers the recorder gets.
    recorded: record::RecordedLayer,
}

/// One room.
pub(crate) struct Room {
    name: String,
    forwarder: Forwarder,
    participants: BTreeMap<ParticipantId, Participant>,
    tracks: BTreeMap<TrackId, Published>,
    next_id: u64,
    pending: Pending,
    /// Something changed that may need an offer (a join, a track gone, a connection up, an
    /// answer): [`make_offers`](Self::make_offers) looks at the participants only then.
    offers_due: bool,
    last_tick: Instant,
    /// Where packets go to be recorded, while the room is recorded.
    tap: Option<Tap>,
    /// Subscribers with packets written and not yet drained.
    dirty: Vec<ParticipantId>,
}

impl Room {
    pub(crate) fn new(name: String, tap: Option<Tap>, ctx: &Context, now: Instant) -> Self {
        let forwarder = Forwarder::new(ForwarderConfig {
            max_tracks_per_publisher: ctx.config.max_tracks_per_participant,
            ..ctx.config.forwarder
        });
        Self {
            name,
            forwarder,
            participants: BTreeMap::new(),
            tracks: BTreeMap::new(),
            next_id: 1,
            pending: Pending::new(),
            offers_due: false,
            last_tick: now,
            tap,
            dirty: Vec::new(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.participants.is_empty()
    }

    /// How many sessions the room holds.
    pub(crate) fn len(&self) -> usize {
        self.participants.len()
    }

    /// Whether `id` is (still) in the room.
    pub(crate) fn has(&self, id: ParticipantId) -> bool {
        self.participants.contains_key(&id)
    }

    /// The SFU stops or the call ended: every session says goodbye (RTCP BYE, DTLS
    /// close_notify).
    pub(crate) fn close(&mut self, fx: &mut Effects) {
        for p in self.participants.values_mut() {
            if p.rtc.close().is_ok() {
                let mut ignored = Pending::new();
                p.drain(&mut fx.transmits, &mut ignored);
            }
        }
        self.participants.clear();
    }

    fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn by_name(&self, name: &str) -> Result<ParticipantId, SfuError> {
        self.participants
            .values()
            .find(|p| p.name == name)
            .map(|p| p.id)
            .ok_or_else(|| self.unknown(name))
    }

    fn unknown(&self, name: &str) -> SfuError {
        SfuError::UnknownParticipant {
            room: self.name.clone(),
            participant: name.to_owned(),
        }
    }

    fn name_of(&self, id: ParticipantId) -> String {
        self.participants
            .get(&id)
            .map(|p| p.name.clone())
            .unwrap_or_default()
    }

    /// `name` joins with `offer_sdp` (refused if it sends media and `may_publish` is false); a
    /// session it already had is replaced.
    pub(crate) fn join(
        &mut self,
        name: &str,
        offer_sdp: &str,
        may_publish: bool,
        ctx: &Context,
        now: Instant,
        fx: &mut Effects,
    ) -> Result<Answer, SfuError> {
        let offer = SdpOffer::from_sdp_string(offer_sdp)
            .map_err(|e| SfuError::InvalidSdp(e.to_string()))?;
        let existing = self.by_name(name).ok();
        let max = ctx.config.max_participants_per_room;
        if self.participants.len() - usize::from(existing.is_some()) >= max {
            return Err(SfuError::RoomFull {
                room: self.name.clone(),
                max,
            });
        }
        let mut rtc = ctx.new_rtc(now);
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| SfuError::InvalidSdp(e.to_string()))?;
        let publications = offer::publications(
            &rtc,
            offer_sdp,
            &ctx.config.codecs,
            ctx.config.max_tracks_per_participant,
        )?;
        if !may_publish && !publications.is_empty() {
            return Err(SfuError::ListenOnly {
                offered: publications.len(),
            });
        }
        if let Some(old) = existing {
            tracing::info!(room = %self.name, participant = name, "rejoin replaces the session");
            self.remove(old, false, ctx, now, fx);
        }
        let id = ParticipantId(self.next_id());
        let mut joining = Participant::new(id, name.to_owned(), rtc, now);
        self.forwarder.add_subscriber(id);
        let (mut audios, mut videos) = (0, 0);
        for publication in publications {
            let label: std::sync::Arc<str> = match publication.kind {
                MediaKind::Audio => record::label("audio", &mut audios),
                MediaKind::Video => record::label("video", &mut videos),
            };
            let track = TrackId(self.next_id());
            let kind = match publication.kind {
                MediaKind::Audio => TrackKind::Audio,
                MediaKind::Video => TrackKind::Video,
            };
            if let Err(error) = self
                .forwarder
                .add_track(id, track, kind, &publication.layers)
            {
                tracing::error!(%error, "track refused by the forwarder");
                continue;
            }
            let info = TrackInfo {
                id: track,
                kind: publication.kind,
                layers: publication.layers,
            };
            fx.events.push(SfuEvent::TrackPublished {
                room: self.name.clone(),
                participant: name.to_owned(),
                track: info.clone(),
            });
            joining.published.insert(publication.mid, track);
            self.tracks.insert(
                track,
                Published {
                    publisher: id,
                    mid: publication.mid,
                    info,
                    received: 0,
                    label,
                    publisher_name: std::sync::Arc::from(name),
                    recorded: record::RecordedLayer::default(),
                },
            );
            for other in self.participants.values_mut() {
                other.outgoing.insert(track, OutTrack::queued());
            }
        }
        for (track, published) in &self.tracks {
            if published.publisher != id {
                joining.outgoing.insert(*track, OutTrack::queued());
            }
        }
        joining.drain(&mut fx.transmits, &mut self.pending);
        self.participants.insert(id, joining);
        self.offers_due = true;
        self.settle(ctx, now, fx);
        Ok(Answer {
            sdp: answer.to_sdp_string(),
        })
    }

    /// `name` leaves: its session ends, its tracks are removed.
    pub(crate) fn leave(
        &mut self,
        name: &str,
        ctx: &Context,
        now: Instant,
        fx: &mut Effects,
    ) -> Result<(), SfuError> {
        let id = self.by_name(name)?;
        self.remove(id, false, ctx, now, fx);
        self.settle(ctx, now, fx);
        Ok(())
    }

    /// Removes a participant: its tracks go (others' m-lines for them are stopped in their
    /// next offer), and `Disconnected` is reported when it did not leave on its own.
    fn remove(
        &mut self,
        id: ParticipantId,
        disconnected: bool,
        ctx: &Context,
        now: Instant,
        fx: &mut Effects,
    ) {
        let Some(mut gone) = self.participants.remove(&id) else {
            return;
        };
        gone.rtc.disconnect();
        self.offers_due = true;
        self.forwarder.remove_participant(id, ctx.millis(now));
        let own: Vec<TrackId> = gone.published.values().copied().collect();
        let others: Vec<ParticipantId> = self.participants.keys().copied().collect();
        for track in own {
            self.tracks.remove(&track);
            self.tap_track_ended(&gone.name, track);
            fx.events.push(SfuEvent::TrackRemoved {
                room: self.name.clone(),
                participant: gone.name.clone(),
                track,
            });
            for other in self.participants.values_mut() {
                if let Some(mid) = other.outgoing.remove(&track).and_then(|o| o.state.mid()) {
                    other.to_stop.push(mid);
                }
            }
        }
        for other in others {
            self.retarget_bwe(other, ctx, fx);
        }
        if disconnected {
            fx.events.push(SfuEvent::Disconnected {
                room: self.name.clone(),
                participant: gone.name,
            });
        }
        self.run_forwarder(fx);
    }

    /// The participants whose session accepts this input (ICE credentials or address).
    pub(crate) fn find(&self, input: &Input<'_>) -> Option<ParticipantId> {
        self.participants
            .values()
            .find(|p| !p.failed && p.rtc.accepts(input))
            .map(|p| p.id)
    }

    /// Whether `id`'s session still accepts input like this one (a cached route).
    pub(crate) fn accepts(&self, id: ParticipantId, input: &Input<'_>) -> bool {
        self.participants
            .get(&id)
            .is_some_and(|p| !p.failed && p.rtc.accepts(input))
    }

    /// A datagram for `id`'s session.
    pub(crate) fn receive(
        &mut self,
        id: ParticipantId,
        input: Input<'_>,
        ctx: &Context,
        now: Instant,
        fx: &mut Effects,
    ) {
        let Some(p) = self.participants.get_mut(&id) else {
            return;
        };
        // What was written to it leaves before it takes more input.
        p.drain_written(now, &mut fx.transmits, &mut self.pending);
        if let Err(error) = p.rtc.handle_input(input) {
            // A bad packet is the sender's problem; str0m stays usable (or reports it dead).
            tracing::debug!(participant = %p.name, %error, "input refused");
        }
        p.drain_at(now, &mut fx.transmits, &mut self.pending);
        self.settle(ctx, now, fx);
    }

    /// Drains the subscribers packets were written to since the last flush: their packets
    /// are released and encrypted together, and handed to `send` subscriber by subscriber, so
    /// each leaves as soon as it is encrypted. str0m stamps a packet's send time for TWCC when
    /// it releases it: sent only once every subscriber was drained, the first ones would wait
    /// longer the larger the burst, and the receiver's feedback would show that wait as a
    /// queue building up. The engine flushes every room before it sends the rest.
    pub(crate) fn flush(
        &mut self,
        ctx: &Context,
        now: Instant,
        fx: &mut Effects,
        send: &mut impl FnMut(&mut Vec<Transmit>),
    ) {
        while !self.dirty.is_empty() {
            for id in std::mem::take(&mut self.dirty) {
                if let Some(p) = self.participants.get_mut(&id) {
                    p.drain_written(now, &mut fx.transmits, &mut self.pending);
                    send(&mut fx.transmits);
                }
            }
            self.settle(ctx, now, fx);
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) next has work.
    pub(crate) fn next_timeout(&self, ctx: &Context) -> Instant {
        let connect = ctx.config.connect_timeout;
        let sessions = self.participants.values().map(|p| {
            if p.connected {
                p.timeout
            } else {
                p.timeout.min(p.joined_at + connect)
            }
        });
        let forwarder = self.forwarder.poll_timeout().map(|at| ctx.instant(at));
        sessions
            .chain(forwarder)
            .fold(self.last_tick + TICK, Instant::min)
    }

    /// Time passed: sessions' timers, connect deadlines, the forwarder's re-evaluation.
    pub(crate) fn handle_timeout(&mut self, ctx: &Context, now: Instant, fx: &mut Effects) {
        for p in self.participants.values_mut() {
            if !p.connected
                && now.saturating_duration_since(p.joined_at) >= ctx.config.connect_timeout
            {
                tracing::info!(participant = %p.name, "not connected in time");
                p.fail();
            } else if p.timeout <= now {
                p.handle_timeout(now, &mut fx.transmits, &mut self.pending);
                p.drain_at(now, &mut fx.transmits, &mut self.pending);
            }
        }
        let due = self
            .forwarder
            .poll_timeout()
            .is_some_and(|at| ctx.instant(at) <= now);
        if due || now >= self.last_tick + TICK {
            self.last_tick = now;
            self.forwarder.handle_timeout(ctx.millis(now));
            self.run_forwarder(fx);
        }
        self.settle(ctx, now, fx);
    }

    /// Handles queued events, removes failed sessions and makes offers until all is done.
    fn settle(&mut self, ctx: &Context, now: Instant, fx: &mut Effects) {
        loop {
            while let Some((id, event)) = self.pending.pop_front() {
                self.on_event(id, event, ctx, now, fx);
            }
            let failed: Vec<ParticipantId> = self
                .participants
                .values()
                .filter(|p| p.failed)
                .map(|p| p.id)
                .collect();
            for id in &failed {
                self.remove(*id, true, ctx, now, fx);
            }
            let offered = self.make_offers(fx);
            if failed.is_empty() && !offered && self.pending.is_empty() {
                break;
            }
        }
    }
}
