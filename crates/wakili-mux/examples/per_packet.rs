//! Measures the muxer's cost per RTP packet on a synthetic 720p VP8 stream (30 fps, about
//! 1.5 Mbit/s, a keyframe every 4 s, chunks of 4 s): `cargo run --release -p wakili-mux
//! --example per_packet`.

use std::time::{Duration, Instant, SystemTime};

use wakili_mux::{Codec, MuxerConfig, Output, RtpInput, TrackMuxer};

const MTU: usize = 1100;
const FRAMES: u32 = 30 * 60;

/// VP8 frames of the right sizes: keyframes with a valid 1280x720 header, delta frames.
fn frame(index: u32, buf: &mut Vec<u8>) {
    buf.clear();
    let key = index.is_multiple_of(120);
    let len = if key { 60_000 } else { 6_000 };
    if key {
        buf.extend_from_slice(&[0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a]);
        buf.extend_from_slice(&1280u16.to_le_bytes());
        buf.extend_from_slice(&720u16.to_le_bytes());
    } else {
        buf.push(0x51);
    }
    buf.resize(len, 0xa5);
}

fn main() {
    let t0 = Instant::now();
    let mut packets: Vec<(u16, u32, bool, Vec<u8>, Duration)> = Vec::new();
    let mut data = Vec::new();
    let mut seq = 0u16;
    for i in 0..FRAMES {
        frame(i, &mut data);
        let chunks: Vec<&[u8]> = data.chunks(MTU).collect();
        for (n, piece) in chunks.iter().enumerate() {
            let mut payload = vec![if n == 0 { 0x10 } else { 0x00 }];
            payload.extend_from_slice(piece);
            packets.push((
                seq,
                i * 3000,
                n + 1 == chunks.len(),
                payload,
                Duration::from_micros(u64::from(i) * 33_333),
            ));
            seq = seq.wrapping_add(1);
        }
    }

    let rounds = 20;
    let mut best = Duration::MAX;
    let mut bytes = 0;
    for _ in 0..rounds {
        let mut muxer =
            TrackMuxer::new(MuxerConfig::new(Codec::Vp8), t0, SystemTime::now()).expect("config");
        let started = Instant::now();
        for (seq, ts, marker, payload, at) in &packets {
            muxer
                .handle_rtp(RtpInput {
                    ssrc: 1,
                    sequence_number: *seq,
                    timestamp: *ts,
                    marker: *marker,
                    payload,
                    arrival: t0 + *at,
                })
                .expect("accepted");
            while let Some(out) = muxer.poll_output() {
                if let Output::Chunk(c) = out {
                    bytes += c.bytes.len();
                }
            }
        }
        muxer.finish(t0 + Duration::from_secs(60)).expect("finish");
        best = best.min(started.elapsed());
    }
    let per_packet = best / u32::try_from(packets.len()).unwrap_or(u32::MAX);
    println!(
        "{} packets ({} frames, 60 s of 720p VP8): best of {rounds} runs {best:?}, {per_packet:?} per packet, {:.0} tracks per core at {:.0} packets/s each ({bytes} bytes written)",
        packets.len(),
        FRAMES,
        Duration::from_secs(1).as_secs_f64()
            / (per_packet.as_secs_f64() * packets.len() as f64 / 60.0),
        packets.len() as f64 / 60.0,
    );
}
