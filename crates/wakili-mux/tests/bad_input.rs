//! Bad input is refused or dropped with a counted reason, never a panic or a corrupt frame.

mod support;

use std::time::{Duration, Instant, SystemTime};

use support::{Packet, Recorder, Stream, decode_errors, probe, vp8_frames};
use wakili_mux::{Codec, MuxError, MuxerConfig, Output, RtpInput, TrackMuxer};

fn packet(seq: u16, ts: u32, marker: bool, payload: &[u8], at_ms: u64) -> Packet {
    Packet {
        ssrc: 1,
        seq,
        ts,
        marker,
        payload: payload.to_vec(),
        at_ms,
        frame: 0,
    }
}

#[test]
fn padding_packets_fill_their_sequence_number_without_breaking_frames() {
    let frames = vp8_frames();
    let mut packets = Stream::vp8(1, 0, 0).packetize(&frames, 0..60, 0);
    // A padding-only packet (empty payload once padding is removed) between frames 9 and 10
    // takes a sequence number; the packets after it move up by one.
    let at = packets.iter().position(|p| p.frame == 10).unwrap();
    for p in &mut packets[at..] {
        p.seq = p.seq.wrapping_add(1);
    }
    let before = &packets[at - 1];
    let padding = packet(
        before.seq.wrapping_add(1),
        before.ts,
        false,
        &[],
        before.at_ms,
    );
    packets.insert(at, padding);
    let mut rec = Recorder::new(MuxerConfig::new(Codec::Vp8));
    rec.feed_all(&packets);
    rec.finish();
    let stats = rec.muxer.stats();
    assert_eq!(stats.packets_padding, 1);
    assert_eq!((stats.packets_lost, stats.frames_written), (0, 60));
}

#[test]
fn truncated_vp8_descriptors_drop_their_frame_and_are_counted() {
    let frames = vp8_frames();
    let mut packets = Stream::vp8(1, 0, 0).packetize(&frames, 0..60, 0);
    // Frame 5 (one packet): a descriptor announcing extensions that are not there.
    let i = packets.iter().position(|p| p.frame == 5).unwrap();
    packets[i].payload.truncate(1);
    packets[i].payload[0] = 0x90;
    // Frame 40: a descriptor and nothing after it.
    let j = packets.iter().position(|p| p.frame == 40).unwrap();
    packets[j].payload.truncate(1);
    packets[j].payload[0] = 0x10;
    let mut rec = Recorder::new(MuxerConfig::new(Codec::Vp8));
    rec.feed_all(&packets);
    rec.finish();
    let stats = rec.muxer.stats();
    assert_eq!(stats.frames_invalid, 2, "{stats:?}");
    // 6..29 and 41..59 wait for a keyframe.
    assert_eq!(stats.frames_waiting_for_keyframe, 24 + 19, "{stats:?}");
    let dir = tempfile::tempdir().unwrap();
    let file = rec.write_file(dir.path());
    assert_eq!(probe(&file).pts.len(), 60 - 2 - 24 - 19);
    assert_eq!(decode_errors(&file), "");
}

#[test]
fn huge_packets_and_packets_after_finish_are_refused() {
    let t0 = Instant::now();
    let mut muxer =
        TrackMuxer::new(MuxerConfig::new(Codec::Vp8), t0, SystemTime::UNIX_EPOCH).unwrap();
    let huge = vec![0x10; 64 * 1024];
    let input = RtpInput {
        ssrc: 1,
        sequence_number: 1,
        timestamp: 0,
        marker: true,
        payload: &huge,
        arrival: t0,
    };
    assert!(matches!(
        muxer.handle_rtp(input),
        Err(MuxError::PacketTooLarge {
            len: 65536,
            max: 1500
        })
    ));
    muxer.finish(t0).unwrap();
    assert!(matches!(
        muxer.handle_rtp(RtpInput {
            payload: &huge[..10],
            ..input
        }),
        Err(MuxError::Finished)
    ));
    assert_eq!(muxer.stats().packets_refused, 2);
    assert!(
        muxer.poll_output().is_none(),
        "nothing was written, no chunk"
    );
}

#[test]
fn configurations_a_muxer_cannot_work_with_are_refused() {
    let t0 = Instant::now();
    let bad = [
        MuxerConfig {
            clock_rate: 0,
            ..MuxerConfig::new(Codec::Vp8)
        },
        MuxerConfig {
            track_uid: 0,
            ..MuxerConfig::new(Codec::Vp8)
        },
        MuxerConfig {
            chunk_interval: Duration::ZERO,
            ..MuxerConfig::new(Codec::Vp8)
        },
        MuxerConfig {
            reorder_capacity: 0,
            ..MuxerConfig::new(Codec::Vp8)
        },
        MuxerConfig::new(Codec::Opus { channels: 3 }),
    ];
    for config in bad {
        assert!(matches!(
            TrackMuxer::new(config, t0, SystemTime::UNIX_EPOCH),
            Err(MuxError::InvalidConfig(_))
        ));
    }
}

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn garbage_packets_never_panic_and_every_one_is_accounted_for() {
    for codec in [Codec::Vp8, Codec::Opus { channels: 2 }] {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let t0 = Instant::now();
        let mut config = MuxerConfig::new(codec);
        config.chunk_interval = Duration::from_secs(1);
        config.reorder_capacity = 64;
        let mut muxer = TrackMuxer::new(config, t0, SystemTime::UNIX_EPOCH).unwrap();
        let mut seq: u16 = 0;
        let mut ts: u32 = 0;
        let mut now = t0;
        let mut payload = Vec::new();
        let mut accepted = 0u64;
        for _ in 0..20_000 {
            now += Duration::from_micros(rng.below(20_000));
            // Mostly in order, sometimes a jump back or far ahead.
            seq = match rng.below(20) {
                0 => seq.wrapping_sub(rng.below(100) as u16),
                1 => seq.wrapping_add(rng.below(30_000) as u16),
                _ => seq.wrapping_add(1),
            };
            ts = match rng.below(10) {
                0 => rng.next() as u32,
                1..=4 => ts.wrapping_add(3000),
                _ => ts,
            };
            payload.clear();
            let len = match rng.below(10) {
                0 => 0,
                1 => 1 + rng.below(3) as usize,
                2 => 1400 + rng.below(200) as usize,
                _ => rng.below(1200) as usize,
            };
            payload.extend((0..len).map(|_| rng.next() as u8));
            if rng.below(4) == 0 && !payload.is_empty() {
                // Make it look like a frame start, sometimes a keyframe.
                payload[0] = 0x10;
            }
            let ssrc = if rng.below(2_000) == 0 { 2 } else { 1 };
            let result = muxer.handle_rtp(RtpInput {
                ssrc,
                sequence_number: seq,
                timestamp: ts,
                marker: rng.below(3) == 0,
                payload: &payload,
                arrival: now,
            });
            if result.is_ok() {
                accepted += 1;
            }
            if rng.below(50) == 0 {
                muxer.handle_timeout(now).unwrap();
            }
            while let Some(out) = muxer.poll_output() {
                if let Output::Chunk(c) = out {
                    assert!(c.info.start_ms <= c.info.end_ms);
                }
            }
        }
        muxer.finish(now).unwrap();
        while muxer.poll_output().is_some() {}
        let stats = muxer.stats();
        assert_eq!(stats.packets_received, accepted, "{stats:?}");
        assert!(
            stats.packets_refused > 0,
            "some payloads were over 1500 bytes"
        );
    }
}
