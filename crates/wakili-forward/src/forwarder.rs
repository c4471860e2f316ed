//! The forwarding decisions for one room, in one place.
//!
//! A [`Forwarder`] knows the room's published tracks (with their simulcast layers), its
//! subscribers and who receives what. It is driven like str0m's `Rtc`: the IO loop feeds it
//! inputs (`add_track`, `subscribe`, [`handle_packet`](Forwarder::handle_packet),
//! [`set_estimate`](Forwarder::set_estimate), [`handle_timeout`](Forwarder::handle_timeout)…)
//! and then drains [`poll_output`](Forwarder::poll_output) until it returns `None`, acting on
//! each [`Output`]: write the packet to a subscriber with the rewritten header, send a PLI,
//! tell clients who speaks or which layer they get.
//!
//! A subscriber's bandwidth estimate is shared equally by its unpaused video subscriptions
//! (a camera and a screen share each get half); audio is small enough to be left out.

mod io;
mod state;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

pub use io::{ForwarderConfig, InboundPacket, Output, TrackKind};
use state::{
    LayerKey, Sink, Subscriber, Subscription, Track, VideoSubscription, retarget, spread_estimate,
};

use crate::{
    AudioRewriter, ForwardError, KeyframeRequests, LayerActivity, LayerSelector, Millis,
    ParticipantId, Quality, Rewrite, Rid, SpeakerDetector, TrackId, VideoRewriter,
};

/// The forwarding decisions for one room.
#[derive(Debug)]
pub struct Forwarder {
    config: ForwarderConfig,
    tracks: BTreeMap<TrackId, Track>,
    subscribers: BTreeMap<ParticipantId, Subscriber>,
    keyframes: KeyframeRequests<LayerKey>,
    speaker: SpeakerDetector,
    outputs: VecDeque<Output>,
}

impl Forwarder {
    /// An empty room.
    pub fn new(config: ForwarderConfig) -> Self {
        Self {
            config,
            tracks: BTreeMap::new(),
            subscribers: BTreeMap::new(),
            keyframes: KeyframeRequests::new(config.keyframe),
            speaker: SpeakerDetector::new(config.speaker),
            outputs: VecDeque::new(),
        }
    }

    /// The next decision to carry out, oldest first.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) next has a keyframe request to repeat.
    /// Call it at least every few hundred milliseconds anyway: it also re-evaluates layers
    /// and the active speaker.
    pub fn poll_timeout(&self) -> Option<Millis> {
        self.keyframes.next_due()
    }

    /// `publisher` publishes `track`; `layers` lists its simulcast RIDs (empty: one encoding).
    pub fn add_track(
        &mut self,
        publisher: ParticipantId,
        track: TrackId,
        kind: TrackKind,
        layers: &[Rid],
    ) -> Result<(), ForwardError> {
        if self.tracks.contains_key(&track) {
            return Err(ForwardError::DuplicateTrack(track));
        }
        if kind == TrackKind::Audio && !layers.is_empty() {
            return Err(ForwardError::AudioLayers(track));
        }
        let max = self.config.max_tracks_per_publisher;
        let published = self.tracks.values().filter(|t| t.publisher == publisher);
        if published.count() >= max {
            return Err(ForwardError::TooManyTracks { publisher, max });
        }
        let mut layers = layers.to_vec();
        layers.sort_unstable();
        layers.dedup();
        self.tracks.insert(
            track,
            Track {
                publisher,
                kind,
                layers,
                activity: LayerActivity::new(),
                subscribers: BTreeSet::new(),
            },
        );
        Ok(())
    }

    /// The track is no longer published: its subscriptions and pending requests end.
    pub fn remove_track(&mut self, track: TrackId, now: Millis) -> Result<(), ForwardError> {
        let removed = self
            .tracks
            .remove(&track)
            .ok_or(ForwardError::UnknownTrack(track))?;
        for subscriber in &removed.subscribers {
            if let Some(sub) = self.subscribers.get_mut(subscriber) {
                sub.subscriptions.remove(&track);
                spread_estimate(sub, now, &self.config.layer);
            }
            self.refresh(*subscriber, now);
        }
        self.keyframes.forget(|(t, _)| *t != track);
        let still_speaks = self
            .tracks
            .values()
            .any(|t| t.publisher == removed.publisher && t.kind == TrackKind::Audio);
        if removed.kind == TrackKind::Audio && !still_speaks {
            self.speaker.remove(removed.publisher);
        }
        Ok(())
    }

    /// `participant` may subscribe to others' tracks (adding it again changes nothing).
    pub fn add_subscriber(&mut self, participant: ParticipantId) {
        self.subscribers.entry(participant).or_default();
    }

    /// `participant` no longer receives anything.
    pub fn remove_subscriber(&mut self, participant: ParticipantId) {
        if let Some(sub) = self.subscribers.remove(&participant) {
            for track in sub.subscriptions.keys() {
                if let Some(track) = self.tracks.get_mut(track) {
                    track.subscribers.remove(&participant);
                }
            }
        }
    }

    /// `participant` left: its tracks and its subscriptions go.
    pub fn remove_participant(&mut self, participant: ParticipantId, now: Millis) {
        self.remove_subscriber(participant);
        let own: Vec<TrackId> = self
            .tracks
            .iter()
            .filter(|(_, t)| t.publisher == participant)
            .map(|(id, _)| *id)
            .collect();
        for track in own {
            // Known to exist: listed just above.
            let _ = self.remove_track(track, now);
        }
    }

    /// `subscriber` starts receiving `track` (subscribing twice changes nothing). A keyframe
    /// is requested as soon as a layer is chosen.
    pub fn subscribe(
        &mut self,
        subscriber: ParticipantId,
        track: TrackId,
        now: Millis,
    ) -> Result<(), ForwardError> {
        let published = self
            .tracks
            .get_mut(&track)
            .ok_or(ForwardError::UnknownTrack(track))?;
        let sub = self
            .subscribers
            .get_mut(&subscriber)
            .ok_or(ForwardError::UnknownSubscriber(subscriber))?;
        if published.publisher == subscriber {
            return Err(ForwardError::OwnTrack { subscriber, track });
        }
        if sub.subscriptions.contains_key(&track) {
            return Ok(());
        }
        let subscription = match published.kind {
            TrackKind::Audio => {
                Subscription::Audio(AudioRewriter::new(self.config.audio_clock_rate))
            }
            TrackKind::Video | TrackKind::Screen => {
                let mut selector = LayerSelector::new();
                selector.set_cap(sub.cap);
                Subscription::Video(VideoSubscription {
                    selector,
                    rewriter: VideoRewriter::new(self.config.video_clock_rate),
                })
            }
        };
        sub.subscriptions.insert(track, subscription);
        published.subscribers.insert(subscriber);
        spread_estimate(sub, now, &self.config.layer);
        self.refresh(subscriber, now);
        Ok(())
    }

    /// `subscriber` stops receiving `track`.
    pub fn unsubscribe(
        &mut self,
        subscriber: ParticipantId,
        track: TrackId,
        now: Millis,
    ) -> Result<(), ForwardError> {
        self.change_subscriber(subscriber, now, true, |sub| {
            sub.subscriptions
                .remove(&track)
                .map(drop)
                .ok_or(ForwardError::NotSubscribed { subscriber, track })
        })?;
        if let Some(published) = self.tracks.get_mut(&track) {
            published.subscribers.remove(&subscriber);
        }
        Ok(())
    }

    /// `subscriber` pauses `track`: nothing is forwarded until [`resume`](Self::resume).
    pub fn pause(
        &mut self,
        subscriber: ParticipantId,
        track: TrackId,
        now: Millis,
    ) -> Result<(), ForwardError> {
        self.set_paused(subscriber, track, true, now)
    }

    /// `subscriber` resumes `track`; its sequence numbers continue where they stopped.
    pub fn resume(
        &mut self,
        subscriber: ParticipantId,
        track: TrackId,
        now: Millis,
    ) -> Result<(), ForwardError> {
        self.set_paused(subscriber, track, false, now)
    }

    fn set_paused(
        &mut self,
        subscriber: ParticipantId,
        track: TrackId,
        paused: bool,
        now: Millis,
    ) -> Result<(), ForwardError> {
        self.change_subscriber(subscriber, now, true, |sub| {
            match sub.subscriptions.get_mut(&track) {
                None => return Err(ForwardError::NotSubscribed { subscriber, track }),
                Some(Subscription::Audio(rewriter)) if paused => rewriter.pause(),
                Some(Subscription::Audio(rewriter)) => rewriter.resume(),
                Some(Subscription::Video(video)) => video.selector.set_paused(paused),
            }
            Ok(())
        })
    }

    /// A new downlink bandwidth estimate for `subscriber` (bits per second, from TWCC/REMB).
    pub fn set_estimate(
        &mut self,
        subscriber: ParticipantId,
        bps: u64,
        now: Millis,
    ) -> Result<(), ForwardError> {
        self.change_subscriber(subscriber, now, true, |sub| {
            sub.estimate = Some(bps);
            Ok(())
        })
    }

    /// The quality engine's recommendation for `subscriber`, capping all its video layers.
    pub fn set_quality_cap(
        &mut self,
        subscriber: ParticipantId,
        cap: Quality,
        now: Millis,
    ) -> Result<(), ForwardError> {
        self.change_subscriber(subscriber, now, false, |sub| {
            sub.cap = cap;
            for subscription in sub.subscriptions.values_mut() {
                if let Subscription::Video(video) = subscription {
                    video.selector.set_cap(cap);
                }
            }
            Ok(())
        })
    }

    /// Forces the layer `subscriber` receives of a simulcast `track` (`None` lifts it).
    pub fn force_layer(
        &mut self,
        subscriber: ParticipantId,
        track: TrackId,
        rid: Option<Rid>,
        now: Millis,
    ) -> Result<(), ForwardError> {
        let published = self
            .tracks
            .get(&track)
            .ok_or(ForwardError::UnknownTrack(track))?;
        if rid.is_some_and(|r| !published.layers.contains(&r)) {
            return Err(ForwardError::UnknownLayer { track, rid });
        }
        self.change_subscriber(subscriber, now, false, |sub| {
            match sub.subscriptions.get_mut(&track) {
                Some(Subscription::Video(video)) => video.selector.force(rid),
                Some(Subscription::Audio(_)) => {
                    return Err(ForwardError::UnknownLayer { track, rid });
                }
                None => return Err(ForwardError::NotSubscribed { subscriber, track }),
            }
            Ok(())
        })
    }

    /// Applies `change` to `subscriber`, then (with `respread`) shares its estimate anew among
    /// its video subscriptions and re-decides its layers. Nothing is re-decided when `change`
    /// refuses.
    fn change_subscriber(
        &mut self,
        subscriber: ParticipantId,
        now: Millis,
        respread: bool,
        change: impl FnOnce(&mut Subscriber) -> Result<(), ForwardError>,
    ) -> Result<(), ForwardError> {
        let sub = self
            .subscribers
            .get_mut(&subscriber)
            .ok_or(ForwardError::UnknownSubscriber(subscriber))?;
        change(sub)?;
        if respread {
            spread_estimate(sub, now, &self.config.layer);
        }
        self.refresh(subscriber, now);
        Ok(())
    }

    /// `subscriber`'s decoder lost pictures of `track` (it sent a PLI or FIR): ask the publisher
    /// for a keyframe of the layer the subscriber receives (or waits for), under the same rate
    /// limit as the forwarder's own requests, so a subscriber cannot make a publisher send
    /// keyframes back to back. Nothing to do for audio, or while nothing is forwarded.
    pub fn request_keyframe(
        &mut self,
        subscriber: ParticipantId,
        track: TrackId,
        now: Millis,
    ) -> Result<(), ForwardError> {
        let sub = self
            .subscribers
            .get(&subscriber)
            .ok_or(ForwardError::UnknownSubscriber(subscriber))?;
        let layer = match sub.subscriptions.get(&track) {
            None => return Err(ForwardError::NotSubscribed { subscriber, track }),
            Some(Subscription::Audio(_)) => None,
            Some(Subscription::Video(video)) => {
                video.rewriter.current().or(video.rewriter.target())
            }
        };
        if let Some(rid) = layer
            && self.keyframes.request((track, rid), now)
        {
            self.outputs
                .push_back(Output::RequestKeyframe { track, rid });
        }
        Ok(())
    }

    /// One packet from a publisher: who receives it with which header, plus any keyframe
    /// request, layer change or speaker change it causes.
    pub fn handle_packet(&mut self, packet: InboundPacket) -> Result<(), ForwardError> {
        let Self {
            config,
            tracks,
            subscribers,
            keyframes,
            speaker,
            outputs,
        } = self;
        let track_id = packet.track;
        let track = tracks
            .get_mut(&track_id)
            .ok_or(ForwardError::UnknownTrack(track_id))?;
        let known_layer = match packet.rid {
            Some(rid) => track.layers.contains(&rid),
            None => !track.simulcast(),
        };
        if !known_layer || (track.kind == TrackKind::Audio && packet.rid.is_some()) {
            return Err(ForwardError::UnknownLayer {
                track: track_id,
                rid: packet.rid,
            });
        }
        let now = packet.arrival;
        if let Some(rid) = packet.rid {
            track.activity.on_packet(rid, now);
        }
        let track = &*track;
        if track.kind == TrackKind::Audio
            && let Some(participant) = packet
                .audio_level
                .and_then(|level| speaker.observe(track.publisher, level, now))
        {
            outputs.push_back(Output::ActiveSpeaker { participant });
        }
        let mut sink = Sink {
            config,
            keyframes,
            outputs,
        };
        let keyframe_now = packet.is_keyframe.then_some(packet.rid);
        for subscriber in &track.subscribers {
            let Some(subscription) = subscribers
                .get_mut(subscriber)
                .and_then(|s| s.subscriptions.get_mut(&track_id))
            else {
                continue;
            };
            let rewrite = match subscription {
                Subscription::Audio(rewriter) => {
                    rewriter.rewrite(packet.seq, packet.timestamp, now)
                }
                Subscription::Video(video) => {
                    retarget(
                        *subscriber,
                        track_id,
                        track,
                        video,
                        now,
                        keyframe_now,
                        &mut sink,
                    );
                    let rewrite = video.rewriter.rewrite(
                        packet.rid,
                        packet.seq,
                        packet.timestamp,
                        packet.is_keyframe,
                        now,
                    );
                    if let Rewrite::Forward { switched: true, .. } = rewrite
                        && track.simulcast()
                    {
                        sink.outputs.push_back(Output::LayerChanged {
                            subscriber: *subscriber,
                            track: track_id,
                            rid: packet.rid,
                        });
                    }
                    rewrite
                }
            };
            if let Rewrite::Forward { seq, timestamp, .. } = rewrite {
                sink.outputs.push_back(Output::Forward {
                    subscriber: *subscriber,
                    track: track_id,
                    seq,
                    timestamp,
                });
            }
        }
        if packet.is_keyframe {
            sink.keyframes.keyframe_received((track_id, packet.rid));
        }
        Ok(())
    }

    /// Time passed: layers are re-chosen (held surpluses, stopped layers), unanswered
    /// keyframe requests repeated, the active speaker re-evaluated.
    pub fn handle_timeout(&mut self, now: Millis) {
        let ids: Vec<ParticipantId> = self.subscribers.keys().copied().collect();
        for subscriber in ids {
            self.refresh(subscriber, now);
        }
        let mut needed = BTreeSet::new();
        for sub in self.subscribers.values() {
            for (track, subscription) in &sub.subscriptions {
                if let Subscription::Video(video) = subscription
                    && video.rewriter.is_switch_pending()
                    && let Some(layer) = video.rewriter.target()
                {
                    needed.insert((*track, layer));
                }
            }
        }
        self.keyframes.retain_waiting(|key| needed.contains(key));
        for (track, rid) in self.keyframes.due(now) {
            self.outputs
                .push_back(Output::RequestKeyframe { track, rid });
        }
        if let Some(participant) = self.speaker.evaluate(now) {
            self.outputs
                .push_back(Output::ActiveSpeaker { participant });
        }
    }

    /// The layer `subscriber` currently receives of a simulcast `track`.
    pub fn forwarded_layer(&self, subscriber: ParticipantId, track: TrackId) -> Option<Rid> {
        match self
            .subscribers
            .get(&subscriber)?
            .subscriptions
            .get(&track)?
        {
            Subscription::Video(video) => video.rewriter.current().flatten(),
            Subscription::Audio(_) => None,
        }
    }

    /// The room's dominant speaker, if anyone has spoken yet.
    pub fn active_speaker(&self) -> Option<ParticipantId> {
        self.speaker.dominant()
    }

    /// Re-chooses the layers of all of `subscriber`'s video subscriptions.
    fn refresh(&mut self, subscriber: ParticipantId, now: Millis) {
        let Some(sub) = self.subscribers.get_mut(&subscriber) else {
            return;
        };
        let mut sink = Sink {
            config: &self.config,
            keyframes: &mut self.keyframes,
            outputs: &mut self.outputs,
        };
        for (track_id, subscription) in &mut sub.subscriptions {
            if let Subscription::Video(video) = subscription
                && let Some(track) = self.tracks.get(track_id)
            {
                retarget(subscriber, *track_id, track, video, now, None, &mut sink);
            }
        }
    }
}

#[cfg(test)]
mod tests;
