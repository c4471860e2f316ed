//! The forwarder's bookkeeping: tracks, subscribers, their subscriptions, and the two
//! decisions made per subscription (estimate share, layer target).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::{ForwarderConfig, Output, TrackKind};
use crate::{
    AudioRewriter, KeyframeRequests, LayerActivity, LayerConfig, LayerSelector, Millis,
    ParticipantId, Quality, Rid, TrackId, VideoRewriter,
};

/// A track and its layer, as keyframes are requested.
pub(super) type LayerKey = (TrackId, Option<Rid>);

/// A published track.
#[derive(Debug)]
pub(super) struct Track {
    pub(super) publisher: ParticipantId,
    pub(super) kind: TrackKind,
    /// Simulcast layers, low to high; empty for audio and single-encoding video.
    pub(super) layers: Vec<Rid>,
    pub(super) activity: LayerActivity,
    pub(super) subscribers: BTreeSet<ParticipantId>,
}

impl Track {
    pub(super) fn simulcast(&self) -> bool {
        !self.layers.is_empty()
    }
}

/// A subscriber: its estimate, its cap, what it receives.
#[derive(Debug, Default)]
pub(super) struct Subscriber {
    pub(super) estimate: Option<u64>,
    pub(super) cap: Quality,
    pub(super) subscriptions: BTreeMap<TrackId, Subscription>,
}

/// One track as one subscriber receives it.
#[derive(Debug)]
pub(super) enum Subscription {
    Audio(AudioRewriter),
    Video(VideoSubscription),
}

/// A video track as one subscriber receives it: its layer choice and its rewriting.
#[derive(Debug)]
pub(super) struct VideoSubscription {
    pub(super) selector: LayerSelector,
    pub(super) rewriter: VideoRewriter<Option<Rid>>,
}

/// The parts of the forwarder a decision writes to.
pub(super) struct Sink<'a> {
    pub(super) config: &'a ForwarderConfig,
    pub(super) keyframes: &'a mut KeyframeRequests<LayerKey>,
    pub(super) outputs: &'a mut VecDeque<Output>,
}

/// Shares the subscriber's estimate equally among its unpaused video subscriptions.
pub(super) fn spread_estimate(sub: &mut Subscriber, now: Millis, config: &LayerConfig) {
    let Some(bps) = sub.estimate else {
        return;
    };
    let playing = sub
        .subscriptions
        .values()
        .filter(|s| matches!(s, Subscription::Video(v) if !v.selector.is_paused()))
        .count();
    let share = bps / u64::try_from(playing.max(1)).unwrap_or(1);
    for subscription in sub.subscriptions.values_mut() {
        if let Subscription::Video(video) = subscription {
            video.selector.set_estimate(share, now, config);
        }
    }
}

/// Re-chooses the layer of one video subscription; when it changes to a layer not yet
/// forwarded, a keyframe is requested, unless the packet being handled is that keyframe.
pub(super) fn retarget(
    subscriber: ParticipantId,
    track_id: TrackId,
    track: &Track,
    video: &mut VideoSubscription,
    now: Millis,
    keyframe_now: Option<Option<Rid>>,
    sink: &mut Sink<'_>,
) {
    let desired = if track.simulcast() {
        video
            .selector
            .decide(now, &track.activity, &sink.config.layer)
            .map(Some)
    } else if video.selector.is_paused() {
        None
    } else {
        Some(None)
    };
    if desired == video.rewriter.target() {
        return;
    }
    let was = video.rewriter.current();
    video.rewriter.set_target(desired);
    if desired.is_none() && was.is_some() && track.simulcast() {
        sink.outputs.push_back(Output::LayerChanged {
            subscriber,
            track: track_id,
            rid: None,
        });
    }
    if let Some(layer) = desired
        && video.rewriter.current() != Some(layer)
        && keyframe_now != Some(layer)
        && sink.keyframes.request((track_id, layer), now)
    {
        sink.outputs.push_back(Output::RequestKeyframe {
            track: track_id,
            rid: layer,
        });
    }
}
