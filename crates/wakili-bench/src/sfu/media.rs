//! The synthetic media publishers send: VP8 frames cut into RTP payloads that both SFUs read
//! as real VP8 (payload descriptor, frame tag, keyframe start code), Opus-sized audio, and in
//! the last bytes of every payload a marker with the stream, a sequence number and the send
//! time, which subscribers read to count losses and latency. Neither SFU changes a payload's
//! length (both rewrite the VP8 picture id in place), so the marker stays at the end.

use std::time::Duration;

/// Simulcast RIDs, low to high.
pub const RIDS: [&str; 3] = ["q", "h", "f"];
/// Frame sizes of the layers (keyframes carry them, as a real encoder's would).
const RESOLUTIONS: [(u16, u16); 3] = [(320, 180), (640, 360), (1280, 720)];
/// Largest RTP payload: with the RTP header, extensions and the SRTP tag a packet stays
/// under 1,200 bytes.
pub const MAX_PAYLOAD: usize = 1_100;
/// A keyframe is this many times an average frame.
const KEYFRAME_FACTOR: usize = 4;
/// Smallest delta frame.
const MIN_FRAME: usize = 100;
/// Opus: one packet per 20 ms.
pub const AUDIO_PACKETS_PER_S: f64 = 50.0;
/// Opus payload bytes (32 kbit/s).
pub const AUDIO_PAYLOAD: usize = 80;
/// Marker bytes at the end of every payload.
pub const MARKER_LEN: usize = 16;
const MAGIC: [u8; 2] = [0xb7, 0x5f];

/// What every payload ends with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    /// The stream: see [`stream_id`].
    pub stream: u16,
    /// Packet number within the stream, from 0.
    pub seq: u32,
    /// Send time, µs on the generator's clock ([`super::clock`]).
    pub sent_us: u64,
}

/// Stream id of `publisher`'s audio (`layer` None) or video layer.
pub fn stream_id(publisher: u16, layer: Option<usize>) -> u16 {
    publisher * 4 + layer.map_or(0, |l| l as u16 + 1)
}

/// The publisher and layer (`None`: audio) of a [`stream_id`].
pub fn stream_parts(stream: u16) -> (u16, Option<usize>) {
    let layer = (stream % 4).checked_sub(1).map(usize::from);
    (stream / 4, layer)
}

/// A stream for people: `publisher 3 f`, `publisher 3 audio`.
pub fn stream_name(stream: u16) -> String {
    let (publisher, layer) = stream_parts(stream);
    let layer = layer.and_then(|l| RIDS.get(l).copied());
    format!("publisher {publisher} {}", layer.unwrap_or("audio"))
}

impl Marker {
    /// Writes the marker into the last [`MARKER_LEN`] bytes of `payload`.
    pub fn write(&self, payload: &mut [u8]) {
        let at = payload.len() - MARKER_LEN;
        let out = &mut payload[at..];
        out[..2].copy_from_slice(&MAGIC);
        out[2..4].copy_from_slice(&self.stream.to_be_bytes());
        out[4..8].copy_from_slice(&self.seq.to_be_bytes());
        out[8..16].copy_from_slice(&self.sent_us.to_be_bytes());
    }

    /// Reads the marker from the end of `payload` (`None`: padding or something else).
    pub fn read(payload: &[u8]) -> Option<Self> {
        let at = payload.len().checked_sub(MARKER_LEN)?;
        let tail = &payload[at..];
        if tail[..2] != MAGIC {
            return None;
        }
        let u32_at =
            |i: usize| u32::from_be_bytes([tail[i], tail[i + 1], tail[i + 2], tail[i + 3]]);
        Some(Self {
            stream: u16::from_be_bytes([tail[2], tail[3]]),
            seq: u32_at(4),
            sent_us: u64::from(u32_at(8)) << 32 | u64::from(u32_at(12)),
        })
    }
}

/// One simulcast layer's sizes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerSpec {
    /// Its RID.
    pub rid: &'static str,
    /// Frames per second.
    pub fps: u32,
    /// Frames from one keyframe to the next.
    pub keyframe_interval: u32,
    /// Bytes of a delta frame.
    pub delta_bytes: usize,
    /// Bytes of a keyframe.
    pub key_bytes: usize,
    /// Frame size carried in keyframes.
    pub resolution: (u16, u16),
}

/// The three layers at `kbps` (q, h, f), `fps`, a keyframe every `keyframe_every`.
pub fn layer_specs(kbps: &[u32], fps: u32, keyframe_every: Duration) -> [LayerSpec; 3] {
    let interval = ((keyframe_every.as_secs_f64() * f64::from(fps)).round() as u32).max(1);
    std::array::from_fn(|i| {
        let rate = kbps.get(i).copied().unwrap_or(100) as usize;
        let average = (rate * 1000 / 8 / fps.max(1) as usize).max(MIN_FRAME);
        let frames = interval as usize;
        let (key, delta) = if frames == 1 {
            (average, average)
        } else {
            let key = average * KEYFRAME_FACTOR;
            let rest = (average * frames).saturating_sub(key) / (frames - 1);
            (key, rest.max(MIN_FRAME))
        };
        LayerSpec {
            rid: RIDS[i],
            fps,
            keyframe_interval: interval,
            delta_bytes: delta,
            key_bytes: key,
            resolution: RESOLUTIONS[i],
        }
    })
}

impl LayerSpec {
    /// RTP packets of a frame of `bytes`.
    pub fn packets_for(bytes: usize) -> usize {
        bytes.div_ceil(MAX_PAYLOAD).max(1)
    }

    /// Packets per second, keyframes included.
    pub fn packets_per_s(&self) -> f64 {
        let n = f64::from(self.keyframe_interval);
        let key = Self::packets_for(self.key_bytes) as f64;
        let delta = Self::packets_for(self.delta_bytes) as f64;
        f64::from(self.fps) * (key + delta * (n - 1.0)) / n
    }
}

/// The RTP payloads of one VP8 frame of `bytes` (split evenly, each ending in the marker
/// `marker(i)` gives packet `i`), as a browser would packetize it: payload descriptor with a
/// 15-bit picture id, S bit on the first packet, which starts with the VP8 frame tag (and, in
/// a keyframe, the start code and the frame size).
pub fn vp8_frame(
    bytes: usize,
    keyframe: bool,
    picture_id: u16,
    resolution: (u16, u16),
    mut marker: impl FnMut(usize) -> Marker,
) -> Vec<Vec<u8>> {
    let count = LayerSpec::packets_for(bytes);
    let share = bytes / count;
    let [pid_hi, pid_lo] = (picture_id & 0x7fff | 0x8000).to_be_bytes();
    (0..count)
        .map(|i| {
            let size = if i == 0 {
                bytes - share * (count - 1)
            } else {
                share
            };
            let mut payload = Vec::with_capacity(size.max(32));
            let start = if i == 0 { 0x10 } else { 0 };
            // X, S; I; M + 15-bit picture id.
            payload.extend_from_slice(&[0x80 | start, 0x80, pid_hi, pid_lo]);
            if i == 0 {
                // Frame tag: P bit clear for a keyframe, version 0, shown, first partition size.
                let tag = if keyframe { 0x10 } else { 0x11 };
                payload.extend_from_slice(&[tag, 0x02, 0x00]);
                if keyframe {
                    let (w, h) = resolution;
                    payload.extend_from_slice(&[0x9d, 0x01, 0x2a]);
                    payload.extend_from_slice(&w.to_le_bytes());
                    payload.extend_from_slice(&h.to_le_bytes());
                }
            }
            let len = size.max(payload.len() + MARKER_LEN);
            payload.resize(len, 0x5a);
            marker(i).write(&mut payload);
            payload
        })
        .collect()
}

/// An Opus-sized audio payload (a TOC byte, filler) ending in `marker`.
pub fn opus_packet(marker: Marker) -> Vec<u8> {
    let mut payload = vec![0x5a; AUDIO_PAYLOAD];
    payload[0] = 0x78;
    marker.write(&mut payload);
    payload
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marker(seq: u32) -> Marker {
        Marker {
            stream: 9,
            seq,
            sent_us: 0x1234_5678_9abc,
        }
    }

    #[test]
    fn markers_round_trip_and_padding_has_none() {
        let mut payload = vec![0u8; 40];
        marker(7).write(&mut payload);
        assert_eq!(Marker::read(&payload), Some(marker(7)));
        assert_eq!(Marker::read(&[0u8; 40]), None);
        assert_eq!(Marker::read(&[0u8; 3]), None);
        assert_eq!(stream_id(2, None), 8);
        assert_eq!(stream_id(2, Some(2)), 11);
        assert_eq!(stream_parts(8), (2, None));
        assert_eq!(stream_parts(11), (2, Some(2)));
        assert_eq!(stream_name(11), "publisher 2 f");
        assert_eq!(stream_name(8), "publisher 2 audio");
    }

    #[test]
    fn layer_sizes_keep_the_bitrate() {
        let specs = layer_specs(&[150, 500, 1500], 30, Duration::from_secs(2));
        let f = specs[2];
        assert_eq!((f.rid, f.keyframe_interval), ("f", 60));
        assert_eq!(f.key_bytes, 4 * 6250);
        let bytes = f.key_bytes + f.delta_bytes * 59;
        assert!(
            (bytes as f64 / 2.0 * 8.0 / 1000.0 - 1500.0).abs() < 5.0,
            "{bytes}"
        );
        // 6 packets per delta frame, 23 per keyframe: 30 × (23 + 59 × 6) / 60.
        assert_eq!(f.packets_per_s(), 30.0 * (23.0 + 59.0 * 6.0) / 60.0);
        assert!(specs[0].packets_per_s() >= 30.0);
    }

    #[test]
    fn frames_parse_as_vp8_the_way_janus_and_str0m_read_it() {
        let key = vp8_frame(5000, true, 300, (1280, 720), |i| marker(i as u32));
        assert_eq!(key.len(), 5);
        assert_eq!(key.iter().map(Vec::len).sum::<usize>(), 5000);
        assert!(key.iter().all(|p| p.len() <= MAX_PAYLOAD));
        let first = &key[0];
        // Janus: S bit, then the frame tag's P bit clear and the start code.
        assert_eq!(first[0] & 0x10, 0x10);
        assert_eq!(first[4] & 0x01, 0);
        assert_eq!(&first[7..10], &[0x9d, 0x01, 0x2a]);
        // str0m: a keyframe starts where its descriptor says.
        let descriptor = str0m::rtp::Vp8Descriptor::parse(first).unwrap();
        assert!(descriptor.starts_keyframe(first));
        assert!(
            !str0m::rtp::Vp8Descriptor::parse(&key[1])
                .unwrap()
                .starts_keyframe(&key[1])
        );
        for (i, p) in key.iter().enumerate() {
            assert_eq!(Marker::read(p), Some(marker(i as u32)));
        }
        let delta = vp8_frame(600, false, 301, (1280, 720), |_| marker(0));
        assert_eq!(delta.len(), 1);
        assert!(
            !str0m::rtp::Vp8Descriptor::parse(&delta[0])
                .unwrap()
                .starts_keyframe(&delta[0])
        );
        assert_eq!(Marker::read(&opus_packet(marker(3))), Some(marker(3)));
    }
}
