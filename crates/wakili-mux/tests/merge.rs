//! The merger: track files made by `TrackMuxer` from real VP8 and Opus clips, merged into one
//! WebM, checked with ffprobe and decoded with ffmpeg.

mod support;

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::{Recorder, Stream, decode_errors, opus_frames, vp8_frames};
use wakili_mux::{
    Codec, InputError, MergeConfig, MergeError, MergeInput, MergeStats, MuxerConfig, merge,
    merge_live, merge_with,
};

/// A camera's track file: the 3 s VP8 clip, chunks of 1 s, concatenated.
fn camera(ssrc: u32) -> Recorder {
    let mut config = MuxerConfig::new(Codec::Vp8);
    config.chunk_interval = Duration::from_secs(1);
    let mut rec = Recorder::new(config);
    rec.feed_all(&Stream::vp8(ssrc, 100, 9_000).packetize(&vp8_frames(), 0..90, 0));
    rec.finish();
    rec
}

/// A microphone's track file: the 3 s Opus clip (150 packets of 20 ms).
fn microphone() -> Recorder {
    let opus = opus_frames();
    let mut rec = Recorder::new(MuxerConfig::new(Codec::Opus { channels: 2 }));
    rec.feed_all(&Stream::opus(77, 5, 48_000).packetize(&opus, 0..opus.len(), 0));
    rec.finish();
    rec
}

fn file_bytes(rec: &Recorder) -> Vec<u8> {
    rec.chunks.iter().flat_map(|c| c.bytes.clone()).collect()
}

fn input(offset_ms: u64, name: &str, bytes: Vec<u8>) -> MergeInput<Cursor<Vec<u8>>> {
    MergeInput {
        offset_ms,
        name: name.to_owned(),
        reader: Cursor::new(bytes),
    }
}

/// Merges into `dir/merged.webm`.
fn merge_to_file(
    dir: &Path,
    inputs: Vec<MergeInput<Cursor<Vec<u8>>>>,
) -> Result<(PathBuf, MergeStats), MergeError> {
    let path = dir.join("merged.webm");
    let file = std::fs::File::create(&path).expect("create the merged file");
    let stats = merge(inputs, std::io::BufWriter::new(file))?;
    Ok((path, stats))
}

/// One stream as ffprobe sees it.
#[derive(Debug)]
struct StreamProbe {
    codec: String,
    title: String,
    /// The `DURATION` tag (s): where the track ends on the file's timeline.
    tag_duration: f64,
    start_time: f64,
    pts: Vec<f64>,
    keys: Vec<bool>,
    /// End of the last packet (pts + duration, s).
    end: f64,
}

#[derive(Debug)]
struct FileProbe {
    format: String,
    /// The container's duration (s); NaN when it has none.
    duration: f64,
    streams: Vec<StreamProbe>,
}

fn seconds(s: &str) -> f64 {
    let mut parts = s.split(':');
    let mut total = 0.0;
    for _ in 0..2 {
        total = total * 60.0
            + parts
                .next()
                .and_then(|p| p.parse::<f64>().ok())
                .unwrap_or(0.0);
    }
    total * 60.0
        + parts
            .next()
            .and_then(|p| p.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
}

fn probe_all(path: &Path) -> FileProbe {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_streams",
            "-show_format",
            "-show_packets",
        ])
        .args(["-of", "json"])
        .arg(path)
        .output()
        .expect("ffprobe must be installed");
    assert!(
        out.status.success(),
        "ffprobe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ffprobe JSON");
    let num = |v: &serde_json::Value| v.as_str().and_then(|s| s.parse::<f64>().ok());
    let packets = json["packets"].as_array().cloned().unwrap_or_default();
    let streams = json["streams"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let own: Vec<&serde_json::Value> = packets
                .iter()
                .filter(|p| p["stream_index"].as_u64() == Some(i as u64))
                .collect();
            StreamProbe {
                codec: s["codec_name"].as_str().unwrap_or_default().to_owned(),
                title: s["tags"]["title"].as_str().unwrap_or_default().to_owned(),
                tag_duration: s["tags"]["DURATION"].as_str().map_or(f64::NAN, seconds),
                start_time: num(&s["start_time"]).unwrap_or(f64::NAN),
                pts: own.iter().filter_map(|p| num(&p["pts_time"])).collect(),
                keys: own
                    .iter()
                    .map(|p| p["flags"].as_str().unwrap_or_default().starts_with('K'))
                    .collect(),
                end: own
                    .iter()
                    .filter_map(|p| {
                        Some(num(&p["pts_time"])? + num(&p["duration_time"]).unwrap_or(0.0))
                    })
                    .fold(f64::NAN, f64::max),
            }
        })
        .collect();
    FileProbe {
        format: json["format"]["format_name"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        duration: num(&json["format"]["duration"]).unwrap_or(f64::NAN),
        streams,
    }
}

/// Decodes the file from `seek_s` with ffmpeg; what it complained about (empty: clean).
fn decode_from(path: &Path, seek_s: f64) -> String {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-ss", &seek_s.to_string(), "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg must be installed");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn ffmpeg(args: &[&str], out: &Path) {
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(args)
        .arg(out)
        .status()
        .expect("ffmpeg must be installed");
    assert!(status.success(), "ffmpeg {args:?}");
}

fn refusal(result: Result<(PathBuf, MergeStats), MergeError>) -> (usize, InputError) {
    match result {
        Err(MergeError::Input { index, error, .. }) => (index, error),
        other => panic!("expected an input refused, got {other:?}"),
    }
}

#[test]
fn two_cameras_and_a_microphone_merge_into_one_file_aligned_by_their_offsets() {
    let (cam_a, cam_b, mic) = (camera(1), camera(2), microphone());
    let opus_packets = mic.muxer.stats().frames_written as usize;
    let dir = tempfile::tempdir().unwrap();
    let (path, stats) = merge_to_file(
        dir.path(),
        vec![
            input(0, "lawyer camera", file_bytes(&cam_a)),
            input(700, "client camera", file_bytes(&cam_b)),
            input(1_200, "client microphone", file_bytes(&mic)),
        ],
    )
    .unwrap();

    let p = probe_all(&path);
    assert!(p.format.contains("webm"), "{}", p.format);
    let codecs: Vec<&str> = p.streams.iter().map(|s| s.codec.as_str()).collect();
    assert_eq!(codecs, ["vp8", "vp8", "opus"]);
    let titles: Vec<&str> = p.streams.iter().map(|s| s.title.as_str()).collect();
    assert_eq!(
        titles,
        ["lawyer camera", "client camera", "client microphone"]
    );
    let counts: Vec<usize> = p.streams.iter().map(|s| s.pts.len()).collect();
    assert_eq!(counts, [90, 90, opus_packets]);
    for (s, offset) in p.streams.iter().zip([0.0, 0.7, 1.2]) {
        assert!(
            (s.start_time - offset).abs() <= 0.020,
            "{} starts at {} (offset {offset})",
            s.title,
            s.start_time
        );
        let own = s.end - s.pts[0];
        let expected = if s.codec == "opus" {
            opus_packets as f64 * 0.020
        } else {
            3.0
        };
        assert!((own - expected).abs() <= 0.034, "{}: {own} s", s.title);
        // Each track's DURATION tag is where it ends: its offset plus its own duration.
        assert!(
            (s.tag_duration - (offset + expected)).abs() <= 0.050,
            "{}: DURATION {} s",
            s.title,
            s.tag_duration
        );
        assert!(s.keys[0], "{} starts with a keyframe", s.title);
    }
    // The file lasts as long as the track that ends last.
    let longest = 1.2 + opus_packets as f64 * 0.020;
    assert!(
        (p.duration - longest).abs() <= 0.050,
        "duration {} (longest track ends at {longest})",
        p.duration
    );
    assert_eq!(stats.duration_ms, (p.duration * 1000.0).round() as u64);
    // Packets keep their spacing: each camera's frames 33-34 ms apart, no jumps.
    for s in &p.streams[..2] {
        assert!(
            s.pts
                .windows(2)
                .all(|w| (33..=34).contains(&(((w[1] - w[0]) * 1000.0).round() as i64))),
            "{:?}",
            s.pts
        );
    }

    assert_eq!(decode_errors(&path), "");
    assert_eq!(decode_from(&path, 2.5), "", "decoding after a seek");

    assert_eq!(stats.tracks.len(), 3);
    assert_eq!(
        stats.tracks.iter().map(|t| t.blocks).collect::<Vec<_>>(),
        [90, 90, opus_packets as u64]
    );
    assert_eq!(
        stats.tracks.iter().map(|t| t.start_ms).collect::<Vec<_>>(),
        [Some(0), Some(700), Some(1_200)]
    );
    assert_eq!(stats.tracks[0].keyframes, 3);
    assert!(stats.tracks.iter().all(|t| !t.truncated && t.segments == 1));
    // A Cluster at every keyframe of the first camera (0, 1, 2 s); a cue point at every
    // keyframe of both cameras (0.7, 1.7, 2.7 s for the second).
    assert_eq!((stats.clusters, stats.cue_points), (3, 6));
    assert_eq!(
        stats.bytes,
        std::fs::metadata(&path).unwrap().len(),
        "bytes written"
    );
}

#[test]
fn a_live_merge_plays_the_same_without_sizes_duration_or_cues() {
    let (cam, mic) = (camera(1), microphone());
    let inputs = || {
        vec![
            input(300, "camera", file_bytes(&cam)),
            input(0, "microphone", file_bytes(&mic)),
        ]
    };
    let mut live = Vec::new();
    let stats = merge_live(inputs(), &mut live, &MergeConfig::default()).unwrap();
    assert_eq!(stats.cue_points, 0);
    assert_eq!(stats.bytes, live.len() as u64);
    let dir = tempfile::tempdir().unwrap();
    let live_path = dir.path().join("live.webm");
    std::fs::write(&live_path, &live).unwrap();
    let (seekable_path, _) = merge_to_file(dir.path(), inputs()).unwrap();

    let (l, s) = (probe_all(&live_path), probe_all(&seekable_path));
    assert!(l.duration.is_nan(), "a live file declares no duration");
    assert!((s.duration - 3.3).abs() <= 0.050, "{}", s.duration);
    assert_eq!(l.streams.len(), 2);
    for (a, b) in l.streams.iter().zip(&s.streams) {
        assert_eq!(a.codec, b.codec);
        assert_eq!(a.pts, b.pts, "the same packets at the same times");
    }
    assert!((l.streams[0].start_time - 0.3).abs() < 0.001);
    assert_eq!(decode_errors(&live_path), "");
}

#[test]
fn an_incomplete_recording_is_merged_up_to_its_last_whole_block() {
    let (cam, mic) = (camera(1), microphone());
    let dir = tempfile::tempdir().unwrap();

    // Cut at a chunk boundary: the recorder stopped after two of the three chunks.
    let two_chunks: Vec<u8> = cam.chunks[..2]
        .iter()
        .flat_map(|c| c.bytes.clone())
        .collect();
    let (path, stats) = merge_to_file(
        dir.path(),
        vec![
            input(0, "microphone", file_bytes(&mic)),
            input(500, "camera", two_chunks.clone()),
        ],
    )
    .unwrap();
    assert_eq!(stats.tracks[1].blocks, 60);
    assert!(
        !stats.tracks[1].truncated,
        "a chunk boundary is a clean end"
    );
    let p = probe_all(&path);
    assert_eq!(p.streams[1].pts.len(), 60);
    assert!((p.streams[1].start_time - 0.5).abs() < 0.001);
    assert!((p.duration - 3.0).abs() <= 0.050, "{}", p.duration);
    assert_eq!(decode_errors(&path), "");

    // Cut in the middle of a block of the third chunk (a chunk half written).
    let mut cut = file_bytes(&cam);
    let third = two_chunks.len();
    cut.truncate(third + cam.chunks[2].bytes.len() / 2);
    let (path, stats) = merge_to_file(
        dir.path(),
        vec![
            input(0, "microphone", file_bytes(&mic)),
            input(500, "camera", cut),
        ],
    )
    .unwrap();
    let camera_track = &stats.tracks[1];
    assert!(camera_track.truncated);
    assert!(
        (61..90).contains(&camera_track.blocks),
        "{} blocks",
        camera_track.blocks
    );
    let p = probe_all(&path);
    assert_eq!(p.streams[1].pts.len() as u64, camera_track.blocks);
    assert_eq!(decode_errors(&path), "");
}

#[test]
fn a_restarted_track_keeps_its_gap() {
    let dir = tempfile::tempdir().unwrap();
    let opus = opus_frames();

    // The publisher reconnected 3 s later: the muxer restarted its stream within the file.
    let mut rec = Recorder::new(MuxerConfig::new(Codec::Opus { channels: 2 }));
    rec.feed_all(&Stream::opus(1, 10, 1_000).packetize(&opus, 0..75, 0));
    rec.feed_all(&Stream::opus(2, 40_000, 3_987_654_321).packetize(&opus, 75..150, 3_000));
    rec.finish();
    let (path, stats) = merge_to_file(
        dir.path(),
        vec![
            input(0, "camera", file_bytes(&camera(5))),
            input(400, "microphone", file_bytes(&rec)),
        ],
    )
    .unwrap();
    let p = probe_all(&path);
    let mic = &p.streams[1];
    assert!((mic.start_time - 0.4).abs() < 0.001);
    let jumps: Vec<i64> = mic
        .pts
        .windows(2)
        .map(|w| ((w[1] - w[0]) * 1000.0).round() as i64)
        .filter(|d| *d != 20)
        .collect();
    assert_eq!(jumps, [3_020], "{:?}", mic.pts);
    assert!((p.duration - 6.4).abs() <= 0.050, "{}", p.duration);
    assert_eq!(stats.tracks[1].segments, 1);
    assert_eq!(decode_errors(&path), "");

    // The recorder itself restarted: a second TrackMuxer appended its own header and
    // Segment to the same file, its origin 4 s after the first one's. Its `DateUTC` places it.
    let mut first = Recorder::new(MuxerConfig::new(Codec::Opus { channels: 2 }));
    first.feed_all(&Stream::opus(1, 10, 1_000).packetize(&opus, 0..75, 0));
    first.finish();
    let mut second = Recorder::new(MuxerConfig::new(Codec::Opus { channels: 2 }));
    second.feed_all(&Stream::opus(9, 500, 77).packetize(&opus, 75..150, 2_500));
    second.finish();
    assert_eq!(
        second
            .muxer
            .origin()
            .unwrap()
            .wall_clock
            .duration_since(first.muxer.origin().unwrap().wall_clock)
            .unwrap(),
        Duration::from_millis(4_000)
    );
    let mut both = file_bytes(&first);
    both.extend_from_slice(&file_bytes(&second));
    let (path, stats) = merge_to_file(dir.path(), vec![input(1_000, "microphone", both)]).unwrap();
    assert_eq!(stats.tracks[0].segments, 2);
    assert_eq!(stats.tracks[0].blocks, 150);
    let p = probe_all(&path);
    let s = &p.streams[0];
    assert_eq!(s.pts.len(), 150);
    assert!((s.pts[0] - 1.0).abs() < 0.001, "{}", s.pts[0]);
    assert!(
        (s.pts[75] - 5.0).abs() < 0.001,
        "second segment at {}",
        s.pts[75]
    );
    assert!((p.duration - 6.5).abs() <= 0.050, "{}", p.duration);
    assert_eq!(decode_errors(&path), "");
}

#[test]
fn inputs_that_are_not_one_webm_track_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let good = file_bytes(&microphone());
    let with = |bad: Vec<u8>| {
        merge_to_file(
            dir.path(),
            vec![input(0, "good", good.clone()), input(0, "bad", bad)],
        )
    };

    let (index, error) = refusal(with(b"RIFF....WAVEfmt not a WebM file at all".to_vec()));
    assert_eq!(index, 1);
    assert!(matches!(error, InputError::NotWebm(_)), "{error:?}");
    assert!(matches!(
        refusal(with(Vec::new())).1,
        InputError::NotWebm(_)
    ));

    // Matroska that is not WebM.
    let mkv = dir.path().join("clip.mkv");
    ffmpeg(
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=160x120:rate=10",
            "-t",
            "0.5",
        ],
        &mkv,
    );
    let error = refusal(with(std::fs::read(&mkv).unwrap())).1;
    assert!(
        matches!(&error, InputError::NotWebm(why) if why.contains("matroska")),
        "{error:?}"
    );

    // A WebM with two tracks.
    let two = dir.path().join("two.webm");
    ffmpeg(
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=160x120:rate=10",
            "-f",
            "lavfi",
            "-i",
            "sine",
            "-t",
            "0.5",
            "-c:v",
            "libvpx",
            "-c:a",
            "libopus",
        ],
        &two,
    );
    let error = refusal(with(std::fs::read(&two).unwrap())).1;
    assert!(
        matches!(error, InputError::MultipleTracks { count: 2 }),
        "{error:?}"
    );

    // A codec WebM does not carry.
    let mut other_codec = good.clone();
    let at = other_codec.windows(6).position(|w| w == b"A_OPUS").unwrap();
    other_codec[at..at + 6].copy_from_slice(b"A_AAC\0");
    let error = refusal(with(other_codec)).1;
    assert!(
        matches!(&error, InputError::UnsupportedCodec { codec_id } if codec_id == "A_AAC"),
        "{error:?}"
    );

    // Cut before its track is described.
    let error = refusal(with(good[..60].to_vec())).1;
    assert!(matches!(error, InputError::Truncated), "{error:?}");

    // The refusal names the input.
    let message = with(Vec::new()).unwrap_err().to_string();
    assert!(
        message.starts_with("input 1 (\"bad\"): not a WebM file"),
        "{message}"
    );

    assert!(matches!(
        merge_to_file(dir.path(), Vec::new()),
        Err(MergeError::NoInputs)
    ));
}

#[test]
fn timestamps_that_go_back_are_refused_beyond_the_tolerance() {
    let dir = tempfile::tempdir().unwrap();
    // The same recording twice in one file: the second Segment has the same origin, so its
    // blocks go back 3 s.
    let once = file_bytes(&microphone());
    let twice = [once.clone(), once].concat();
    let error = refusal(merge_to_file(
        dir.path(),
        vec![input(0, "microphone", twice.clone())],
    ))
    .1;
    assert!(
        matches!(
            error,
            InputError::TimestampsBackwards {
                at_ms: 0,
                previous_ms: 2_980..=3_000
            }
        ),
        "{error:?}"
    );

    // Within the tolerance, late blocks are moved up to the latest time and counted.
    let config = MergeConfig {
        backwards_tolerance: Duration::from_secs(4),
        ..MergeConfig::default()
    };
    let path = dir.path().join("tolerant.webm");
    let file = std::fs::File::create(&path).unwrap();
    let stats = merge_with(vec![input(0, "microphone", twice)], file, &config).unwrap();
    assert_eq!(stats.tracks[0].segments, 2);
    assert!(stats.tracks[0].clamped_blocks > 100, "{stats:?}");
}

#[test]
fn files_other_webm_writers_make_are_merged_too() {
    // ffmpeg writes known sizes, a SeekHead, Cues, Tags and CRC-32s, codec delay for Opus,
    // and BlockGroups; VP9 is a WebM codec the merger copies as it copies VP8.
    let dir = tempfile::tempdir().unwrap();
    let vp9 = dir.path().join("vp9.webm");
    ffmpeg(
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=25",
            "-t",
            "2",
            "-c:v",
            "libvpx-vp9",
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
            "-g",
            "25",
        ],
        &vp9,
    );
    let opus = dir.path().join("opus.webm");
    ffmpeg(
        &[
            "-f",
            "lavfi",
            "-i",
            "sine=sample_rate=48000",
            "-t",
            "2",
            "-c:a",
            "libopus",
        ],
        &opus,
    );
    let (path, stats) = merge_to_file(
        dir.path(),
        vec![
            input(250, "vp9", std::fs::read(&vp9).unwrap()),
            input(0, "opus", std::fs::read(&opus).unwrap()),
            input(1_000, "vp8", file_bytes(&camera(3))),
        ],
    )
    .unwrap();
    let p = probe_all(&path);
    let codecs: Vec<&str> = p.streams.iter().map(|s| s.codec.as_str()).collect();
    assert_eq!(codecs, ["vp9", "opus", "vp8"]);
    assert_eq!(p.streams[0].pts.len(), 50);
    assert!((p.streams[0].start_time - 0.25).abs() < 0.001);
    assert!((p.duration - 4.0).abs() <= 0.050, "{}", p.duration);
    assert_eq!(stats.tracks[2].blocks, 90);
    assert_eq!(decode_errors(&path), "");
}

/// Hands out at most one byte per read.
struct Trickle(Cursor<Vec<u8>>);

impl std::io::Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(1);
        self.0.read(&mut buf[..n])
    }
}

#[test]
fn inputs_read_a_byte_at_a_time_give_the_same_file() {
    let (cam, mic) = (camera(1), microphone());
    let merged = |trickle: bool| {
        let inputs = vec![(0, file_bytes(&cam)), (700, file_bytes(&mic))]
            .into_iter()
            .map(|(offset_ms, bytes)| MergeInput {
                offset_ms,
                name: String::new(),
                reader: if trickle {
                    Box::new(Trickle(Cursor::new(bytes))) as Box<dyn std::io::Read>
                } else {
                    Box::new(Cursor::new(bytes))
                },
            })
            .collect();
        let mut out = Cursor::new(Vec::new());
        merge(inputs, &mut out).unwrap();
        out.into_inner()
    };
    let whole = merged(false);
    assert!(!whole.is_empty());
    assert_eq!(whole, merged(true));
}
