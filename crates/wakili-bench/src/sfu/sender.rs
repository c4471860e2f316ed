//! A publisher's media clock: which RTP packets are due when (an Opus packet every 20 ms, a
//! VP8 frame on every simulcast layer at the frame rate, keyframes periodically and on
//! request), each payload carrying its marker.

use std::time::{Duration, Instant};

use str0m::{
    Rtc,
    format::Codec,
    media::{Mid, Pt, Rid},
    rtp::RtpWrite,
};

use super::{
    media::{self, LayerSpec, Marker},
    tally::clock_us,
};

/// One simulcast layer's counters.
#[derive(Debug, Clone, Copy)]
struct Layer {
    spec: LayerSpec,
    /// Next marker sequence number.
    seq: u32,
    /// Next RTP sequence number.
    rtp_seq: u64,
    picture_id: u16,
    since_keyframe: u32,
    keyframe_asked: bool,
}

/// One RTP packet to write.
pub struct Packet {
    /// The m-line.
    pub mid: Mid,
    /// The simulcast layer, for video.
    pub rid: Option<Rid>,
    /// What str0m sends.
    pub write: RtpWrite,
    /// What the payload ends with.
    pub marker: Marker,
}

/// A publisher's media state.
pub struct Sender {
    index: u16,
    layers: [Layer; 3],
    /// Next marker and RTP sequence numbers of the audio.
    audio: (u32, u64),
    next_audio: Instant,
    next_frame: Instant,
    frame: u64,
    /// The audio and video m-lines.
    mids: (Mid, Mid),
    /// Opus and VP8, once negotiated.
    payload_types: Option<(Pt, Pt)>,
}

impl Sender {
    /// Publisher `index` sending `specs` on the m-lines `mids` (audio, video).
    pub fn new(index: u16, specs: [LayerSpec; 3], mids: (Mid, Mid)) -> Self {
        let now = Instant::now();
        let layers = std::array::from_fn(|i| Layer {
            spec: specs[i],
            seq: 0,
            rtp_seq: 1_000 * (i as u64 + 1),
            picture_id: 100,
            since_keyframe: 0,
            keyframe_asked: true,
        });
        Self {
            index,
            layers,
            audio: (0, 500),
            next_audio: now,
            next_frame: now,
            frame: 0,
            mids,
            payload_types: None,
        }
    }

    /// When the next packet is due.
    pub fn next_tick(&self) -> Instant {
        self.next_audio.min(self.next_frame)
    }

    /// The next frame of layer `rid` (every layer when `None`) is a keyframe.
    pub fn keyframe_requested(&mut self, rid: Option<&str>) {
        for layer in &mut self.layers {
            if rid.is_none_or(|rid| rid == layer.spec.rid) {
                layer.keyframe_asked = true;
            }
        }
    }

    /// Sends nothing until `until` (the session is not connected yet).
    pub fn hold(&mut self, until: Instant) {
        self.next_audio = until;
        self.next_frame = until;
    }

    /// The packets due at `now`.
    pub fn due(&mut self, now: Instant, rtc: &Rtc) -> Vec<Packet> {
        if self.payload_types.is_none() {
            self.payload_types = payload_types(rtc);
        }
        let ((audio_mid, video_mid), Some((opus, vp8))) = (self.mids, self.payload_types) else {
            return Vec::new();
        };
        let mut packets = Vec::new();
        if now >= self.next_audio {
            self.next_audio += Duration::from_millis(20);
            let (seq, rtp_seq) = &mut self.audio;
            let marker = Marker {
                stream: media::stream_id(self.index, None),
                seq: *seq,
                sent_us: clock_us(Instant::now()),
            };
            let time = (*rtp_seq * 960) as u32;
            let payload = media::opus_packet(marker);
            packets.push(Packet {
                mid: audio_mid,
                rid: None,
                write: RtpWrite::new(opus, (*rtp_seq).into(), time, now, payload),
                marker,
            });
            *seq += 1;
            *rtp_seq += 1;
        }
        if now >= self.next_frame {
            let fps = self.layers[0].spec.fps;
            self.frame += 1;
            self.next_frame += Duration::from_secs(1) / fps;
            let time = (self.frame * 90_000 / u64::from(fps)) as u32;
            for (i, layer) in self.layers.iter_mut().enumerate() {
                let stream = media::stream_id(self.index, Some(i));
                frame(layer, stream, video_mid, vp8, time, now, &mut packets);
            }
        }
        packets
    }
}

/// One frame of `layer`, appended to `packets`.
fn frame(
    layer: &mut Layer,
    stream: u16,
    mid: Mid,
    pt: Pt,
    time: u32,
    now: Instant,
    packets: &mut Vec<Packet>,
) {
    let spec = layer.spec;
    let keyframe = layer.keyframe_asked || layer.since_keyframe + 1 >= spec.keyframe_interval;
    layer.since_keyframe = if keyframe {
        0
    } else {
        layer.since_keyframe + 1
    };
    layer.keyframe_asked = false;
    let bytes = if keyframe {
        spec.key_bytes
    } else {
        spec.delta_bytes
    };
    let sent_us = clock_us(Instant::now());
    let first = layer.seq;
    let marker = |k: usize| Marker {
        stream,
        seq: first + k as u32,
        sent_us,
    };
    let payloads = media::vp8_frame(bytes, keyframe, layer.picture_id, spec.resolution, marker);
    layer.picture_id = (layer.picture_id + 1) & 0x7fff;
    let count = payloads.len();
    for (k, payload) in payloads.into_iter().enumerate() {
        let write = RtpWrite::new(pt, layer.rtp_seq.into(), time, now, payload)
            .marker(k + 1 == count)
            .nackable(true);
        packets.push(Packet {
            mid,
            rid: Some(spec.rid.into()),
            write,
            marker: marker(k),
        });
        layer.rtp_seq += 1;
    }
    layer.seq += count as u32;
}

/// The Opus and VP8 payload types of the session.
fn payload_types(rtc: &Rtc) -> Option<(Pt, Pt)> {
    let pt = |codec: Codec| {
        rtc.codec_config()
            .find(|p| p.spec().codec == codec)
            .map(|p| p.pt())
    };
    Some((pt(Codec::Opus)?, pt(Codec::Vp8)?))
}
