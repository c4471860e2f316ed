//! The recorder's tap: while a room is recorded, every packet of the recorded layer of each
//! published track is copied to the recorder (the payload is shared, not copied), and the
//! recorder's keyframe requests reach the publishers.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use str0m::{format::PayloadParams, media::KeyframeRequestKind, rtp::RtpPacket};
use tokio::sync::mpsc;

use super::{Effects, Published, Room};
use crate::{RecordedPacket, RecorderFeed, Rid, SfuError, TrackId, api::MediaKind};

/// Where a recorded room's packets go. Never waits: a packet the recorder has no room for is
/// counted in `dropped`, for the recorder to report.
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

/// The layer of a track that is recorded: the highest it has (`None`: no simulcast).
fn recorded_layer(published: &Published) -> Option<Rid> {
    published.info.layers.iter().max().copied()
}

impl Room {
    /// Starts (`Some`) or stops (`None`) copying packets to a recorder.
    pub(crate) fn set_tap(&mut self, tap: Option<Tap>) {
        self.tap = tap;
    }

    /// A publisher's packet of `track` on `layer`: to the recorder, if it records the room
    /// and this is the layer it records.
    pub(super) fn tap_packet(
        &self,
        participant: &str,
        track: TrackId,
        layer: Option<Rid>,
        packet: &RtpPacket,
        params: &PayloadParams,
    ) {
        let Some(tap) = &self.tap else {
            return;
        };
        let Some(published) = self.tracks.get(&track) else {
            return;
        };
        if layer != recorded_layer(published) {
            return;
        }
        let spec = params.spec();
        tap.send(RecorderFeed::Packet(RecordedPacket {
            participant: participant.to_owned(),
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
    pub(super) fn tap_track_ended(&self, participant: &str, track: TrackId) {
        if let Some(tap) = &self.tap {
            tap.send(RecorderFeed::TrackEnded {
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
        let (mid, rid) = (published.mid, recorded_layer(published));
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
