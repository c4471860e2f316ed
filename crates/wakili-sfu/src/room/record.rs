//! The recorder's tap: while a room is recorded, every packet of the recorded layer of each
//! published track is copied to the recorder (the payload is shared, not copied), and the
//! recorder's keyframe requests reach the publishers.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use str0m::{format::PayloadParams, media::KeyframeRequestKind, rtp::RtpPacket};
use tokio::sync::mpsc;

use super::{Effects, Room};
use crate::{RecordedPacket, RecorderFeed, Rid, SfuError, TrackId, api::MediaKind};

/// Where a recorded room's packets go. Never waits: a packet the recorder has no room for is
/// counted in `dropped`, for the recorder to report. The end of a track is never dropped.
#[derive(Clone)]
pub(crate) struct Tap {
    pub(crate) sender: mpsc::Sender<RecorderFeed>,
    pub(crate) dropped: Arc<AtomicU64>,
}

impl Tap {
    fn send(&self, feed: RecorderFeed) {
        if self.sender.try_send(feed).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Hands over `feed` now, or, when the feed is full, as soon as it has room (a task waits
    /// for it; the forwarding does not). Whatever of its track was handed over before reaches
    /// the recorder first: no packet of a track follows its end.
    fn send_surely(&self, feed: RecorderFeed) {
        let Err(mpsc::error::TrySendError::Full(feed)) = self.sender.try_send(feed) else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let sender = self.sender.clone();
                runtime.spawn(async move {
                    // Fails only once the recorder is gone.
                    let _ = sender.send(feed).await;
                });
            }
            Err(_) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The label of a publisher's next track of `kind`: `audio` and `video` first; the second video
/// is the screen share (the web client and the SDK publish the camera first), `screen`; then
/// `kind-3`, `kind-4`…
pub(super) fn label(kind: &str, seen: &mut u32) -> Arc<str> {
    *seen += 1;
    match (*seen, kind) {
        (1, _) => Arc::from(kind),
        (2, "video") => Arc::from("screen"),
        (n, _) => Arc::from(format!("{kind}-{n}")),
    }
}

/// A layer silent this long is taken for gone (a browser stops sending its top layers when its
/// uplink or its CPU cannot keep up).
const LAYER_GONE: Duration = Duration::from_millis(300);
/// A layer must have flowed this long before the recording moves up to it (so that a layer
/// coming and going does not restart the file again and again). Not during a track's first
/// second, when its layers are all starting.
const LAYER_STABLE: Duration = Duration::from_secs(1);

/// Which simulcast layer of a track is recorded: the highest one flowing. Moving to another
/// layer changes the SSRC the recorder sees, so its file goes on from that layer's next
/// keyframe.
#[derive(Debug, Default)]
pub(super) struct RecordedLayer {
    /// Per layer (q, h, f): since when it has flowed without a gap, and its last packet.
    seen: [Option<(Instant, Instant)>; 3],
    first: Option<Instant>,
    current: Option<Rid>,
}

impl RecordedLayer {
    /// A packet of `layer` (`None`: no simulcast) arrived at `at`: whether it is recorded.
    pub(super) fn observe(&mut self, layer: Option<Rid>, at: Instant) -> bool {
        let Some(rid) = layer else {
            return true;
        };
        let first = *self.first.get_or_insert(at);
        let slot = &mut self.seen[index(rid)];
        *slot = match *slot {
            Some((since, last)) if at.saturating_duration_since(last) < LAYER_GONE => {
                Some((since, at))
            }
            _ => Some((at, at)),
        };
        let alive = |seen: Option<(Instant, Instant)>| {
            seen.filter(|(_, last)| at.saturating_duration_since(*last) < LAYER_GONE)
        };
        let starting = at.saturating_duration_since(first) < LAYER_STABLE;
        let current = self.current.map(index);
        let current_alive = current.is_some_and(|i| alive(self.seen[i]).is_some());
        let chosen = (0..3).rev().find(|&i| {
            alive(self.seen[i]).is_some_and(|(since, _)| {
                // Keep or move down; anything when the recorded layer is gone or while
                // starting; move up only to a steady layer.
                Some(i) <= current
                    || !current_alive
                    || starting
                    || at.saturating_duration_since(since) >= LAYER_STABLE
            })
        });
        self.current = chosen.map(|i| Rid::ALL[i]);
        self.current == Some(rid)
    }

    /// The layer recorded now.
    pub(super) fn current(&self) -> Option<Rid> {
        self.current
    }
}

fn index(rid: Rid) -> usize {
    match rid {
        Rid::Q => 0,
        Rid::H => 1,
        Rid::F => 2,
    }
}

impl Room {
    /// Starts (`Some`) or stops (`None`) copying packets to a recorder.
    pub(crate) fn set_tap(&mut self, tap: Option<Tap>) {
        self.tap = tap;
    }

    /// A publisher's packet of `track` on `layer`: to the recorder, if it records the room
    /// and this is the layer it records.
    pub(super) fn tap_packet(
        &mut self,
        track: TrackId,
        layer: Option<Rid>,
        packet: &RtpPacket,
        params: &PayloadParams,
    ) {
        let Some(tap) = &self.tap else {
            return;
        };
        let Some(published) = self.tracks.get_mut(&track) else {
            return;
        };
        if !published.recorded.observe(layer, packet.timestamp) {
            return;
        }
        let spec = params.spec();
        tap.send(RecorderFeed::Packet(RecordedPacket {
            participant: published.publisher_name.clone(),
            track,
            label: published.label.clone(),
            kind: published.info.kind,
            codec: spec.codec,
            clock_rate: spec.clock_rate.get(),
            channels: (published.info.kind == MediaKind::Audio)
                .then_some(spec.channels.unwrap_or(1)),
            ssrc: *packet.header.ssrc,
            seq: packet.header.sequence_number,
            timestamp: packet.header.timestamp,
            marker: packet.header.marker,
            payload: packet.payload.clone(),
            arrival: packet.timestamp,
            sender_report: packet
                .last_sender_info
                .map(|info| (info.ntp_time, info.rtp_time.numer() as u32)),
        }));
    }

    /// `track` is gone: the recorder closes its file's stream (a rejoin starts a new one).
    /// Told even when the feed is full, after the track's last packet.
    pub(super) fn tap_track_ended(&self, participant: &str, track: TrackId) {
        if let Some(tap) = &self.tap {
            tap.send_surely(RecorderFeed::TrackEnded {
                participant: participant.to_owned(),
                track,
            });
        }
    }

    /// The recorder needs a keyframe of `track` (to start a file or a chunk): a PLI to its
    /// publisher, for the recorded layer.
    pub(crate) fn recorder_keyframe(
        &mut self,
        track: TrackId,
        fx: &mut Effects,
    ) -> Result<(), SfuError> {
        let published = self
            .tracks
            .get(&track)
            .ok_or(SfuError::UnknownTrack(track))?;
        let rid = published
            .recorded
            .current()
            .or_else(|| published.info.layers.iter().max().copied());
        let mid = published.mid;
        let publisher = published.publisher;
        let Some(p) = self.participants.get_mut(&publisher) else {
            return Err(SfuError::UnknownTrack(track));
        };
        let rid = rid.map(|rid| str0m::media::Rid::from(rid.as_str()));
        if let Some(stream) = p.rtc.direct_api().stream_rx_by_mid(mid, rid) {
            stream.request_keyframe(KeyframeRequestKind::Pli);
        }
        p.drain(&mut fx.transmits, &mut self.pending);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn the_highest_flowing_layer_is_recorded_and_a_returning_one_only_once_it_is_steady() {
        let t0 = Instant::now();
        let mut r = RecordedLayer::default();
        // All three start: the highest so far is recorded, moving up at once while starting.
        assert!(r.observe(Some(Rid::Q), ms(t0, 0)), "only q so far");
        assert!(r.observe(Some(Rid::F), ms(t0, 5)));
        assert!(!r.observe(Some(Rid::H), ms(t0, 6)));
        assert!(!r.observe(Some(Rid::Q), ms(t0, 7)));
        // The browser drops f: after 300 ms of silence, h is recorded.
        let mut t = 10;
        while t < 2_000 {
            r.observe(Some(Rid::F), ms(t0, t));
            r.observe(Some(Rid::H), ms(t0, t + 1));
            t += 33;
        }
        assert_eq!(r.current(), Some(Rid::F));
        assert!(
            !r.observe(Some(Rid::H), ms(t0, 2_200)),
            "f gone for 200 ms only"
        );
        assert!(r.observe(Some(Rid::H), ms(t0, 2_400)), "f gone: h");
        // f flickers back: not taken until it has flowed for a second.
        assert!(!r.observe(Some(Rid::F), ms(t0, 2_500)));
        let mut t = 2_500;
        while t < 3_450 {
            r.observe(Some(Rid::F), ms(t0, t));
            assert!(r.observe(Some(Rid::H), ms(t0, t + 1)), "still h at {t}");
            t += 33;
        }
        assert!(
            r.observe(Some(Rid::F), ms(t0, 3_510)),
            "f steady for a second: f"
        );
        // Without simulcast every packet is recorded.
        assert!(RecordedLayer::default().observe(None, t0));
    }

    #[test]
    fn the_second_video_is_the_screen_share() {
        let mut videos = 0;
        let labels: Vec<Arc<str>> = (0..3).map(|_| label("video", &mut videos)).collect();
        assert_eq!(
            labels,
            [
                Arc::from("video"),
                Arc::from("screen"),
                Arc::from("video-3")
            ]
        );
        let mut audios = 0;
        assert_eq!(label("audio", &mut audios).as_ref(), "audio");
        assert_eq!(label("audio", &mut audios).as_ref(), "audio-2");
    }
}
