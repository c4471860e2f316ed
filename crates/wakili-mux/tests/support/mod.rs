//! Test support: real VP8 and Opus frames made by ffmpeg, packetized into RTP, fed to a
//! [`TrackMuxer`] at simulated time; the chunks it seals are checked with ffprobe/ffmpeg.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use str0m::unversioned::{Packetizer, Vp8Packetizer};
use wakili_mux::{Chunk, MuxerConfig, Output, RtpInput, TrackMuxer};

/// A frame from the fixture clips.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Its bitstream.
    pub data: Vec<u8>,
    /// Its position in the clip in milliseconds.
    pub at_ms: u64,
    /// Its RTP timestamp offset from the first frame (90 kHz or 48 kHz ticks).
    pub ticks: u32,
    /// Whether it is a keyframe.
    pub keyframe: bool,
}

struct Fixtures {
    _dir: tempfile::TempDir,
    ivf: PathBuf,
    ogg: PathBuf,
}

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().expect("ffmpeg/ffprobe must be installed");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn fixtures() -> &'static Fixtures {
    static F: OnceLock<Fixtures> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let ivf = dir.path().join("clip.ivf");
        let ogg = dir.path().join("clip.ogg");
        run(Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
            .args([
                "testsrc=size=320x240:rate=30",
                "-t",
                "3",
                "-c:v",
                "libvpx",
                "-deadline",
                "realtime",
                "-cpu-used",
                "8",
                "-lag-in-frames",
                "0",
                "-g",
                "30",
                "-keyint_min",
                "30",
                "-b:v",
                "600k",
                "-f",
                "ivf",
            ])
            .arg(&ivf));
        run(Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
            .args([
                "sine=frequency=440:sample_rate=48000",
                "-t",
                "3",
                "-c:a",
                "libopus",
                "-b:a",
                "32k",
                "-frame_duration",
                "20",
                "-f",
                "ogg",
            ])
            .arg(&ogg));
        Fixtures {
            _dir: dir,
            ivf,
            ogg,
        }
    })
}

fn le_u16(b: &[u8]) -> u16 {
    u16::from_le_bytes([b[0], b[1]])
}
fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// The 90 VP8 frames of a 3 s, 30 fps, 320x240 clip with a keyframe every 30 frames.
pub fn vp8_frames() -> Vec<Frame> {
    let bytes = std::fs::read(&fixtures().ivf).unwrap();
    assert_eq!(&bytes[..4], b"DKIF");
    let header_len = usize::from(le_u16(&bytes[6..8]));
    let rate = le_u32(&bytes[16..20]);
    let scale = le_u32(&bytes[20..24]);
    let mut frames = Vec::new();
    let mut pos = header_len;
    while pos + 12 <= bytes.len() {
        let size = le_u32(&bytes[pos..pos + 4]) as usize;
        let pts = u64::from_le_bytes(bytes[pos + 4..pos + 12].try_into().unwrap());
        let data = bytes[pos + 12..pos + 12 + size].to_vec();
        pos += 12 + size;
        let at_ms = pts * 1000 * u64::from(scale) / u64::from(rate);
        frames.push(Frame {
            keyframe: data[0] & 1 == 0,
            ticks: u32::try_from(pts * 90_000 * u64::from(scale) / u64::from(rate)).unwrap(),
            at_ms,
            data,
        });
    }
    frames
}

/// The 150 Opus packets (20 ms each) of a 3 s 440 Hz tone.
pub fn opus_frames() -> Vec<Frame> {
    let bytes = std::fs::read(&fixtures().ogg).unwrap();
    let mut packets: Vec<Vec<u8>> = Vec::new();
    let mut current = Vec::new();
    let mut pos = 0;
    while pos + 27 <= bytes.len() {
        assert_eq!(&bytes[pos..pos + 4], b"OggS");
        let segments = usize::from(bytes[pos + 26]);
        let table = &bytes[pos + 27..pos + 27 + segments];
        let mut body = pos + 27 + segments;
        for &lace in table {
            current.extend_from_slice(&bytes[body..body + usize::from(lace)]);
            body += usize::from(lace);
            if lace < 255 {
                packets.push(std::mem::take(&mut current));
            }
        }
        pos = body;
    }
    // OpusHead and OpusTags come first.
    packets
        .into_iter()
        .skip(2)
        .enumerate()
        .map(|(i, data)| Frame {
            data,
            at_ms: i as u64 * 20,
            ticks: u32::try_from(i * 960).unwrap(),
            keyframe: true,
        })
        .collect()
}

/// An RTP packet as the SFU would hand it over.
#[derive(Debug, Clone)]
pub struct Packet {
    pub ssrc: u32,
    pub seq: u16,
    pub ts: u32,
    pub marker: bool,
    pub payload: Vec<u8>,
    /// Arrival in ms after the test's start.
    pub at_ms: u64,
    /// Which frame of the clip it carries.
    pub frame: usize,
}

/// One publisher's RTP stream: SSRC, sequence numbers and timestamps from a chosen start.
pub struct Stream {
    pub ssrc: u32,
    pub seq: u16,
    pub ts_base: u32,
    pub vp8: Option<Vp8Packetizer>,
}

impl Stream {
    pub fn vp8(ssrc: u32, seq: u16, ts_base: u32) -> Self {
        Self {
            ssrc,
            seq,
            ts_base,
            vp8: Some(Vp8Packetizer::default()),
        }
    }

    pub fn opus(ssrc: u32, seq: u16, ts_base: u32) -> Self {
        Self {
            ssrc,
            seq,
            ts_base,
            vp8: None,
        }
    }

    /// Packets for `frames[range]`, arriving `offset_ms` + the frame's clip time.
    pub fn packetize(
        &mut self,
        frames: &[Frame],
        range: std::ops::Range<usize>,
        offset_ms: u64,
    ) -> Vec<Packet> {
        let mut out = Vec::new();
        for (index, frame) in frames.iter().enumerate().take(range.end).skip(range.start) {
            let payloads = match &mut self.vp8 {
                Some(p) => p.packetize(1200, &frame.data).unwrap(),
                None => vec![frame.data.clone()],
            };
            let count = payloads.len();
            for (i, payload) in payloads.into_iter().enumerate() {
                out.push(Packet {
                    ssrc: self.ssrc,
                    seq: self.seq,
                    ts: self.ts_base.wrapping_add(frame.ticks),
                    marker: i + 1 == count,
                    payload,
                    at_ms: offset_ms + frame.at_ms,
                    frame: index,
                });
                self.seq = self.seq.wrapping_add(1);
            }
        }
        out
    }
}

/// A muxer driven at simulated time, collecting what it outputs.
pub struct Recorder {
    pub muxer: TrackMuxer,
    pub t0: Instant,
    pub wall0: SystemTime,
    pub chunks: Vec<Chunk>,
    pub keyframe_requests: Vec<u64>,
    pub refused: usize,
    now_ms: u64,
}

impl Recorder {
    pub fn new(config: MuxerConfig) -> Self {
        let t0 = Instant::now();
        let wall0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_765_000_000);
        Self {
            muxer: TrackMuxer::new(config, t0, wall0).unwrap(),
            t0,
            wall0,
            chunks: Vec::new(),
            keyframe_requests: Vec::new(),
            refused: 0,
            now_ms: 0,
        }
    }

    pub fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    /// Lets simulated time run to `ms`, firing the muxer's timeouts on the way.
    pub fn advance(&mut self, ms: u64) {
        let until = self.at(ms);
        while let Some(t) = self.muxer.poll_timeout() {
            if t > until {
                break;
            }
            self.muxer.handle_timeout(t).unwrap();
            self.now_ms = u64::try_from(t.duration_since(self.t0).as_millis()).unwrap();
            self.drain();
        }
        self.now_ms = self.now_ms.max(ms);
    }

    fn drain(&mut self) {
        while let Some(out) = self.muxer.poll_output() {
            match out {
                Output::Chunk(c) => self.chunks.push(c),
                Output::KeyframeWanted => self.keyframe_requests.push(self.now_ms),
            }
        }
    }

    pub fn feed(&mut self, packet: &Packet) {
        self.advance(packet.at_ms);
        let result = self.muxer.handle_rtp(RtpInput {
            ssrc: packet.ssrc,
            sequence_number: packet.seq,
            timestamp: packet.ts,
            marker: packet.marker,
            payload: &packet.payload,
            arrival: self.at(packet.at_ms),
        });
        if result.is_err() {
            self.refused += 1;
        }
        self.drain();
    }

    pub fn feed_all(&mut self, packets: &[Packet]) {
        for p in packets {
            self.feed(p);
        }
    }

    pub fn finish(&mut self) {
        let at = self.at(self.now_ms);
        self.muxer.finish(at).unwrap();
        self.drain();
    }

    /// The chunks concatenated, written to a file in `dir`.
    pub fn write_file(&self, dir: &Path) -> PathBuf {
        let path = dir.join("track.webm");
        let bytes: Vec<u8> = self.chunks.iter().flat_map(|c| c.bytes.clone()).collect();
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

/// What ffprobe says about a file: its one stream, format and packets.
#[derive(Debug)]
pub struct Probe {
    pub codec: String,
    pub width: Option<u64>,
    pub height: Option<u64>,
    pub format: String,
    /// The container's duration; a live WebM has none (NaN).
    pub format_duration: f64,
    /// From the first packet's start to the last packet's end (pts + duration).
    pub duration: f64,
    /// Presentation times (s) of the packets, in file order.
    pub pts: Vec<f64>,
    /// Whether each packet is flagged a keyframe.
    pub keys: Vec<bool>,
}

pub fn probe(path: &Path) -> Probe {
    let out = run(Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_streams",
            "-show_format",
            "-show_packets",
            "-of",
            "json",
        ])
        .arg(path));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let stream = &json["streams"][0];
    let packets = json["packets"].as_array().cloned().unwrap_or_default();
    let num = |v: &serde_json::Value| v.as_str().and_then(|s| s.parse::<f64>().ok());
    Probe {
        codec: stream["codec_name"].as_str().unwrap_or_default().to_owned(),
        width: stream["width"].as_u64(),
        height: stream["height"].as_u64(),
        format: json["format"]["format_name"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        format_duration: num(&json["format"]["duration"]).unwrap_or(f64::NAN),
        duration: {
            let first = packets
                .iter()
                .filter_map(|p| num(&p["pts_time"]))
                .reduce(f64::min);
            let end = packets
                .iter()
                .filter_map(|p| {
                    Some(num(&p["pts_time"])? + num(&p["duration_time"]).unwrap_or(0.0))
                })
                .reduce(f64::max);
            end.zip(first).map_or(f64::NAN, |(e, f)| e - f)
        },
        pts: packets.iter().filter_map(|p| num(&p["pts_time"])).collect(),
        keys: packets
            .iter()
            .map(|p| p["flags"].as_str().unwrap_or_default().starts_with('K'))
            .collect(),
    }
}

/// Decodes the whole file with ffmpeg; returns what it complained about (empty: clean).
pub fn decode_errors(path: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}
