//! RTP in, WebM out: real VP8 and Opus clips through the muxer, checked with ffprobe.

mod support;

use std::time::Duration;

use support::{Recorder, Stream, decode_errors, opus_frames, probe, vp8_frames};
use wakili_mux::{Codec, MuxerConfig};

const CLUSTER_ID: [u8; 4] = [0x1f, 0x43, 0xb6, 0x75];

fn vp8_config() -> MuxerConfig {
    let mut config = MuxerConfig::new(Codec::Vp8);
    config.chunk_interval = Duration::from_secs(1);
    config
}

fn spacing(pts: &[f64]) -> Vec<i64> {
    pts.windows(2)
        .map(|w| ((w[1] - w[0]) * 1000.0).round() as i64)
        .collect()
}

#[test]
fn a_vp8_clip_becomes_a_webm_with_every_frame_at_its_time() {
    let frames = vp8_frames();
    assert_eq!(frames.len(), 90);
    let mut config = MuxerConfig::new(Codec::Vp8);
    config.chunk_interval = std::time::Duration::from_secs(1);
    let mut rec = Recorder::new(config);
    let packets = Stream::vp8(0x1234, 1000, 5000).packetize(&frames, 0..90, 0);
    rec.feed_all(&packets);
    rec.finish();

    let dir = tempfile::tempdir().unwrap();
    let file = rec.write_file(dir.path());
    let p = probe(&file);
    assert_eq!(p.codec, "vp8");
    assert_eq!((p.width, p.height), (Some(320), Some(240)));
    assert!(p.format.contains("webm"), "{}", p.format);
    assert_eq!(p.pts.len(), 90);
    assert!((p.duration - 3.0).abs() <= 0.034, "duration {}", p.duration);
    assert_eq!(decode_errors(&file), "");
    let stats = rec.muxer.stats();
    assert_eq!(stats.frames_written, 90);
    assert_eq!(stats.frames_dropped(), 0);
}

#[test]
fn an_opus_clip_becomes_a_webm_with_every_packet_at_its_time() {
    let frames = opus_frames();
    let n = frames.len();
    assert!((150..=151).contains(&n), "{n} packets");
    let mut rec = Recorder::new(MuxerConfig::new(Codec::Opus { channels: 2 }));
    let packets = Stream::opus(0x55, 7, 1_000_000).packetize(&frames, 0..n, 0);
    rec.feed_all(&packets);
    rec.finish();

    let dir = tempfile::tempdir().unwrap();
    let file = rec.write_file(dir.path());
    let p = probe(&file);
    assert_eq!(p.codec, "opus");
    assert_eq!(p.pts.len(), n);
    let expected = n as f64 * 0.020;
    assert!(
        (p.duration - expected).abs() <= 0.02,
        "duration {}",
        p.duration
    );
    assert_eq!(decode_errors(&file), "");
}

#[test]
fn every_chunk_after_the_first_starts_with_a_keyframe_cluster_and_plays_after_the_header() {
    let frames = vp8_frames();
    let mut rec = Recorder::new(vp8_config());
    rec.feed_all(&Stream::vp8(9, 1, 0).packetize(&frames, 0..90, 0));
    rec.finish();
    assert_eq!(rec.chunks.len(), 3);
    let first = &rec.chunks[0].bytes;
    let header_len = first
        .windows(4)
        .position(|w| w == CLUSTER_ID)
        .expect("chunk 0 has a cluster");
    let header = &first[..header_len];
    let dir = tempfile::tempdir().unwrap();
    for (i, chunk) in rec.chunks.iter().enumerate() {
        assert!(chunk.info.starts_with_keyframe, "chunk {i}");
        assert_eq!(chunk.info.index, i as u64);
        assert_eq!(chunk.info.includes_header, i == 0);
        assert_eq!(chunk.info.last, i == 2);
        if i > 0 {
            assert_eq!(
                chunk.bytes[..4],
                CLUSTER_ID,
                "chunk {i} starts with a Cluster"
            );
        }
        // Header + this chunk alone is a file that plays from a keyframe.
        let path = dir.path().join(format!("chunk{i}.webm"));
        let mut alone = header.to_vec();
        alone.extend_from_slice(&chunk.bytes[if i == 0 { header_len } else { 0 }..]);
        std::fs::write(&path, alone).unwrap();
        let p = probe(&path);
        assert_eq!(p.pts.len(), 30, "chunk {i}");
        assert!(p.keys[0], "chunk {i} begins with a keyframe");
        assert!(
            (p.pts[0] - i as f64).abs() < 0.001,
            "chunk {i} starts at {}",
            p.pts[0]
        );
        assert_eq!(decode_errors(&path), "", "chunk {i}");
    }
}

#[test]
fn timecodes_run_straight_across_the_sequence_number_and_timestamp_wrap() {
    let frames = vp8_frames();
    let mut rec = Recorder::new(vp8_config());
    // Sequence numbers wrap after ~25 packets, timestamps after 1 s.
    let packets = Stream::vp8(3, 65_510, u32::MAX - 89_999).packetize(&frames, 0..90, 0);
    rec.feed_all(&packets);
    rec.finish();
    let dir = tempfile::tempdir().unwrap();
    let p = probe(&rec.write_file(dir.path()));
    assert_eq!(p.pts.len(), 90);
    assert!(
        spacing(&p.pts).iter().all(|d| (33..=34).contains(d)),
        "{:?}",
        p.pts
    );
    assert!((p.duration - 3.0).abs() <= 0.034, "duration {}", p.duration);

    let opus = opus_frames();
    let mut rec = Recorder::new(MuxerConfig::new(Codec::Opus { channels: 2 }));
    rec.feed_all(&Stream::opus(4, 65_500, u32::MAX - 47_999).packetize(&opus, 0..opus.len(), 0));
    rec.finish();
    let p = probe(&rec.write_file(dir.path()));
    assert_eq!(p.pts.len(), opus.len());
    assert!(spacing(&p.pts).iter().all(|d| *d == 20), "{:?}", p.pts);
}

#[test]
fn video_waits_for_its_first_keyframe_and_asks_for_one() {
    let frames = vp8_frames();
    let mut rec = Recorder::new(vp8_config());
    // The recording joins mid-stream: frames 5..29 are delta frames.
    rec.feed_all(&Stream::vp8(5, 100, 0).packetize(&frames, 5..90, 0));
    rec.finish();
    assert_eq!(rec.keyframe_requests.first(), Some(&frames[5].at_ms));
    let stats = rec.muxer.stats();
    assert_eq!(stats.frames_before_first_keyframe, 25);
    assert_eq!(stats.frames_written, 60);
    let dir = tempfile::tempdir().unwrap();
    let file = rec.write_file(dir.path());
    let p = probe(&file);
    assert_eq!(p.pts.len(), 60);
    assert!(p.keys[0]);
    assert_eq!(p.pts[0], 0.0, "the track starts at its first written frame");
    assert_eq!(decode_errors(&file), "");
}

#[test]
fn a_reconnect_after_three_seconds_shows_as_a_three_second_gap() {
    // Audio: 1.5 s, the publisher drops, reconnects 3 s later with a new SSRC, new random
    // sequence numbers and timestamps, and sends the rest.
    let opus = opus_frames();
    let mut rec = Recorder::new(MuxerConfig::new(Codec::Opus { channels: 2 }));
    rec.feed_all(&Stream::opus(1, 10, 1_000).packetize(&opus, 0..75, 0));
    rec.feed_all(&Stream::opus(2, 40_000, 3_987_654_321).packetize(&opus, 75..150, 3_000));
    rec.finish();
    let dir = tempfile::tempdir().unwrap();
    let p = probe(&rec.write_file(dir.path()));
    assert_eq!(p.pts.len(), 150);
    let jumps: Vec<i64> = spacing(&p.pts).into_iter().filter(|d| *d != 20).collect();
    assert_eq!(
        jumps,
        [3_020],
        "one jump of 3 s plus one frame: {:?}",
        p.pts
    );
    assert!((p.duration - 6.0).abs() <= 0.02, "duration {}", p.duration);
    assert_eq!(rec.muxer.stats().timeline_rebases, 1);

    // Video: the new stream starts at a keyframe (frame 60) after 3 s without packets.
    let frames = vp8_frames();
    let mut rec = Recorder::new(vp8_config());
    rec.feed_all(&Stream::vp8(1, 10, 1_000).packetize(&frames, 0..45, 0));
    rec.feed_all(&Stream::vp8(2, 50_000, 2_222_222_222).packetize(&frames, 60..90, 1_500));
    rec.finish();
    let file = rec.write_file(dir.path());
    let p = probe(&file);
    assert_eq!(p.pts.len(), 75);
    let gap = p.pts[45] - p.pts[44];
    assert!((gap - (3.5 - 44.0 / 30.0)).abs() < 0.035, "gap {gap}");
    assert!(p.keys[45]);
    assert_eq!(decode_errors(&file), "");
}

#[test]
fn a_reordered_packet_is_written_in_its_place() {
    let frames = vp8_frames();
    let mut packets = Stream::vp8(8, 65_530, 0).packetize(&frames, 0..90, 0);
    // Swap packets inside the big first keyframe and across two later frames.
    packets.swap(1, 2);
    let i = packets.iter().position(|p| p.frame == 40).unwrap();
    packets.swap(i - 1, i);
    packets[i - 1].at_ms = packets[i].at_ms;
    let mut rec = Recorder::new(vp8_config());
    rec.feed_all(&packets);
    rec.finish();
    let stats = rec.muxer.stats();
    assert_eq!((stats.packets_lost, stats.frames_written), (0, 90));
    let dir = tempfile::tempdir().unwrap();
    let file = rec.write_file(dir.path());
    assert_eq!(probe(&file).pts.len(), 90);
    assert_eq!(decode_errors(&file), "");
}

#[test]
fn a_lost_packet_drops_its_frame_and_video_waits_for_the_next_keyframe() {
    let frames = vp8_frames();
    let mut packets = Stream::vp8(8, 0, 0).packetize(&frames, 0..90, 0);
    let lost = packets.iter().position(|p| p.frame == 10).unwrap();
    let frame_10_packets = packets.iter().filter(|p| p.frame == 10).count();
    packets.remove(lost);
    let mut rec = Recorder::new(vp8_config());
    rec.feed_all(&packets);
    rec.finish();
    let stats = rec.muxer.stats();
    assert_eq!(stats.packets_lost, 1);
    // Frame 10 is gone (counted as incomplete if some of its packets came); 11..29 would
    // decode wrong without it; 30 is a keyframe.
    assert_eq!(stats.frames_waiting_for_keyframe, 19, "{stats:?}");
    assert_eq!(stats.frames_incomplete, u64::from(frame_10_packets > 1));
    assert_eq!(stats.frames_written, 70);
    // The loss is declared once the reorder window (250 ms) after the next packet ran out: the
    // packet after the lost one is frame 10's next packet if the encoder split it (libvpx's
    // frame sizes vary run to run), else frame 11's first.
    let next_at = packets[lost].at_ms;
    assert!(
        rec.keyframe_requests.contains(&(next_at + 250)),
        "{:?} (next packet at {next_at} ms)",
        rec.keyframe_requests
    );
    let dir = tempfile::tempdir().unwrap();
    let file = rec.write_file(dir.path());
    let p = probe(&file);
    assert_eq!(p.pts.len(), 70);
    assert!(
        (p.pts[10] - 1.0).abs() < 0.001,
        "resumes at the keyframe: {:?}",
        p.pts
    );
    assert_eq!(decode_errors(&file), "");

    // Audio just loses the one packet.
    let opus = opus_frames();
    let mut packets = Stream::opus(1, 0, 0).packetize(&opus, 0..opus.len(), 0);
    packets.remove(20);
    let mut rec = Recorder::new(MuxerConfig::new(Codec::Opus { channels: 2 }));
    rec.feed_all(&packets);
    rec.finish();
    let stats = rec.muxer.stats();
    assert_eq!(
        (stats.packets_lost, stats.frames_written),
        (1, opus.len() as u64 - 1)
    );
}

#[test]
fn a_stream_that_goes_silent_has_its_chunk_sealed_after_an_interval() {
    let opus = opus_frames();
    let mut rec = Recorder::new(MuxerConfig::new(Codec::Opus { channels: 2 }));
    rec.feed_all(&Stream::opus(1, 0, 0).packetize(&opus, 0..50, 0));
    assert!(rec.chunks.is_empty());
    rec.advance(980 + 4_000);
    assert_eq!(rec.chunks.len(), 1);
    assert_eq!(rec.chunks[0].info.frames, 50);
    assert!(!rec.chunks[0].info.last);
}
