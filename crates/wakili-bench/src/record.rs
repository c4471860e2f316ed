//! `wakili-bench record`: the server-recording path per recorded packet — muxing (RTP into
//! WebM chunks, `wakili-mux`), then sealing and storing each chunk (the recording store the
//! server uses: AES-256-GCM STREAM, the local disk provider with fsync, the SQLite rows) —
//! beside the raw reference of sealing the same chunks with the server's cipher and writing
//! them to the same disk, in the same run. From the CPU per packet it derives how many 720p
//! tracks one core records.
//!
//! The media is synthetic 720p VP8 at 30 frames/s and about 1.5 Mbit/s (packets of at most
//! 1,200 bytes, a 40 KB keyframe whenever the muxer asks for one), generated as the muxer
//! consumes it. The SFU's own receive path (SRTP, forwarding) is `wakili-bench sfu`'s.

use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use clap::Args;
use serde::Serialize;
use sha2::{Digest, Sha256};
use wakili_mux::{Codec, MuxerConfig, Output, RtpInput, TrackMuxer};
use wakili_storage::{DataKey, RecordingCipher, random_nonce_prefix};

use crate::{process, report::Machine};

/// Flags of `wakili-bench record`.
#[derive(Debug, Clone, Args)]
pub struct RecordArgs {
    /// Tracks recorded at once.
    #[arg(long, default_value_t = 20)]
    pub tracks: usize,
    /// Seconds of media per track.
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// Print one JSON document instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Frames per second of the synthetic video.
const FPS: u64 = 30;
/// Bytes of a delta frame (1.5 Mbit/s at 30 fps) and of a keyframe.
const DELTA_BYTES: usize = 6_000;
const KEY_BYTES: usize = 40_000;
/// Largest RTP payload.
const MTU: usize = 1_200;
/// The target of issue 18: 720p tracks one core records.
const TARGET_TRACKS_PER_CORE: f64 = 200.0;

/// What one run measured.
#[derive(Debug, Serialize)]
struct Figures {
    machine: Machine,
    tracks: usize,
    media_seconds: u64,
    packets: u64,
    chunks: u64,
    media_bytes: u64,
    /// Muxing only (RTP in, WebM chunks out), CPU µs per packet.
    mux_us_per_packet: f64,
    /// Sealing and storing the chunks (the recording store), CPU µs per packet.
    store_us_per_packet: f64,
    /// Both.
    total_us_per_packet: f64,
    /// The reference: sealing the same chunks and writing them to the same disk, µs per packet.
    reference_us_per_packet: f64,
    /// Packets per second of one track.
    packets_per_track_second: f64,
    /// 720p tracks one core records at this cost.
    tracks_per_core: f64,
    /// Reference: tracks per core if recording cost only the raw sealing and writing.
    reference_tracks_per_core: f64,
}

/// Runs the benchmark; `Ok(false)` when the target is missed.
pub fn run(args: &RecordArgs) -> anyhow::Result<bool> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let figures = runtime.block_on(measure(args))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&figures)?);
    } else {
        print(&figures);
    }
    Ok(figures.tracks_per_core >= TARGET_TRACKS_PER_CORE)
}

/// Process CPU seconds so far.
fn cpu_seconds() -> anyhow::Result<f64> {
    let (ticks_per_s, _) = process::clock_ticks_per_second();
    Ok(process::cpu_ticks(std::process::id())? as f64 / ticks_per_s as f64)
}

/// One track's synthetic publisher.
struct Publisher {
    seq: u16,
    picture: u16,
    key_due: bool,
}

impl Publisher {
    /// The packets of frame `n` (payloads slices of `pool`).
    fn frame(&mut self, n: u64, pool: &[u8], out: &mut Vec<(u16, u32, bool, Vec<u8>)>) {
        let key = std::mem::take(&mut self.key_due);
        let size = if key {
            KEY_BYTES
        } else {
            DELTA_BYTES + (n as usize * 37) % 1_000
        };
        let offset = (n as usize * 7_919) % (pool.len() - KEY_BYTES);
        let mut frame = Vec::with_capacity(size);
        frame.extend([if key { 0x10 } else { 0x11 }, 0, 0]);
        frame.extend([0x9d, 0x01, 0x2a]);
        frame.extend(1280u16.to_le_bytes());
        frame.extend(720u16.to_le_bytes());
        frame.extend_from_slice(&pool[offset..offset + size - frame.len()]);
        let parts = frame.len().div_ceil(MTU - 4);
        for (i, part) in frame.chunks(MTU - 4).enumerate() {
            let [hi, lo] = (self.picture | 0x8000).to_be_bytes();
            let mut payload = Vec::with_capacity(part.len() + 4);
            payload.extend([if i == 0 { 0x90 } else { 0x80 }, 0x80, hi, lo]);
            payload.extend_from_slice(part);
            out.push((self.seq, (n * 3_000) as u32, i + 1 == parts, payload));
            self.seq = self.seq.wrapping_add(1);
        }
        self.picture = (self.picture + 1) & 0x7fff;
    }
}

async fn measure(args: &RecordArgs) -> anyhow::Result<Figures> {
    anyhow::ensure!(
        args.tracks > 0 && args.seconds > 0,
        "--tracks and --seconds must be positive"
    );
    let pool: Vec<u8> = (0..(1u32 << 20))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();

    // Muxing: every track's frames, interleaved in time, as the SFU hands them over.
    let t0 = Instant::now();
    let mut muxers = Vec::with_capacity(args.tracks);
    let mut publishers = Vec::with_capacity(args.tracks);
    for t in 0..args.tracks {
        let mut config = MuxerConfig::new(Codec::Vp8);
        config.track_uid = t as u64 + 1;
        muxers.push(TrackMuxer::new(config, t0, SystemTime::now())?);
        publishers.push(Publisher {
            seq: 0,
            picture: 0,
            key_due: true,
        });
    }
    let mut chunks: Vec<(usize, u32, Vec<u8>)> = Vec::new();
    let mut packets = 0u64;
    let mut buf = Vec::new();
    let cpu = cpu_seconds()?;
    for n in 0..args.seconds * FPS {
        let at = t0 + Duration::from_millis(n * 1_000 / FPS);
        for t in 0..args.tracks {
            buf.clear();
            publishers[t].frame(n, &pool, &mut buf);
            for (seq, timestamp, marker, payload) in &buf {
                muxers[t].handle_rtp(RtpInput {
                    ssrc: t as u32 + 1,
                    sequence_number: *seq,
                    timestamp: *timestamp,
                    marker: *marker,
                    payload,
                    arrival: at,
                })?;
                packets += 1;
            }
            muxers[t].handle_timeout(at)?;
            while let Some(output) = muxers[t].poll_output() {
                match output {
                    Output::Chunk(chunk) => {
                        chunks.push((t, chunk.info.index as u32, chunk.bytes));
                    }
                    Output::KeyframeWanted => publishers[t].key_due = true,
                }
            }
        }
    }
    let end = t0 + Duration::from_secs(args.seconds);
    for (t, muxer) in muxers.iter_mut().enumerate() {
        muxer.finish(end)?;
        while let Some(output) = muxer.poll_output() {
            if let Output::Chunk(chunk) = output {
                chunks.push((t, chunk.info.index as u32, chunk.bytes));
            }
        }
    }
    let mux_cpu = cpu_seconds()? - cpu;
    let media_bytes: u64 = chunks.iter().map(|(_, _, b)| b.len() as u64).sum();

    // Sealing and storing, through the server's recording store on a local disk and SQLite.
    let dir = tempfile::tempdir()?;
    let (store, tracks) = store(dir.path(), args.tracks).await?;
    let cpu = cpu_seconds()?;
    for (t, seq, bytes) in &chunks {
        let sha = hex(&Sha256::digest(bytes));
        let body = futures_stream(bytes.clone());
        store
            .put_chunk(&tracks[*t], *seq, &sha, Some(bytes.len() as u64), body)
            .await
            .with_context(|| format!("storing chunk {seq} of track {t}"))?;
    }
    let store_cpu = cpu_seconds()? - cpu;

    // The reference: the same chunks sealed with the server's cipher and written, fsynced.
    let reference_dir = tempfile::tempdir_in(dir.path())?;
    let key = DataKey::generate();
    let cipher = RecordingCipher::new(&key, random_nonce_prefix(), "wakili-bench-record");
    let cpu = cpu_seconds()?;
    let mut sealed = Vec::new();
    for (i, (_, seq, bytes)) in chunks.iter().enumerate() {
        sealed.clear();
        let mut sealer = cipher.chunk_sealer(*seq)?;
        sealer.push(bytes, &mut sealed)?;
        sealer.finish(&mut sealed)?;
        let path = reference_dir.path().join(format!("{i}"));
        let file = std::fs::File::create(&path)?;
        std::io::Write::write_all(&mut &file, &sealed)?;
        file.sync_all()?;
    }
    let reference_cpu = cpu_seconds()? - cpu;

    let per_packet = |s: f64| s * 1e6 / packets as f64;
    let packets_per_track_second = packets as f64 / (args.tracks as f64 * args.seconds as f64);
    let total = per_packet(mux_cpu + store_cpu);
    let reference = per_packet(reference_cpu);
    Ok(Figures {
        machine: Machine::detect_basic(),
        tracks: args.tracks,
        media_seconds: args.seconds,
        packets,
        chunks: chunks.len() as u64,
        media_bytes,
        mux_us_per_packet: per_packet(mux_cpu),
        store_us_per_packet: per_packet(store_cpu),
        total_us_per_packet: total,
        reference_us_per_packet: reference,
        packets_per_track_second,
        tracks_per_core: 1e6 / (total * packets_per_track_second),
        reference_tracks_per_core: 1e6 / (reference.max(1e-9) * packets_per_track_second),
    })
}

fn futures_stream(
    bytes: Vec<u8>,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::convert::Infallible>> + Unpin + Send
{
    futures_util::stream::iter([Ok(bytes::Bytes::from(bytes))])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The server's state on embedded defaults in `dir` (SQLite, the recording store on a local
/// disk provider), without its SFU and relay, and with `sfu.record` as given (the recorder
/// needs an SFU: [`wakili_server::start_recorder`] takes one). Also the `sfu` benchmark's.
pub(crate) async fn recording_state(
    dir: &std::path::Path,
    record: bool,
) -> anyhow::Result<wakili_server::AppState> {
    let mut settings = wakili_settings::Settings {
        data_dir: dir.to_owned(),
        ..wakili_settings::Settings::default()
    };
    settings.sfu.enabled = false;
    settings.sfu.record = record;
    settings.turn.enabled = false;
    Ok(wakili_server::prepare(settings, wakili_core::Clock::system()).await?)
}

/// Books a consultation of `bench-lawyer` with `bench-client` an hour from now; its id.
pub(crate) async fn book_consultation(state: &wakili_server::AppState) -> anyhow::Result<String> {
    let now = chrono::Utc::now();
    let consultation = state
        .db
        .create_consultation(wakili_db::models::ConsultationInsert {
            booking: wakili_core::consultation::NewConsultation {
                lawyer_id: wakili_core::UserId::parse("bench-lawyer")?,
                client_id: wakili_core::UserId::parse("bench-client")?,
                scheduled_at: now + chrono::Duration::hours(1),
                duration_minutes: 60,
                title: None,
                notes: None,
                media_mode: None,
            },
            created_by: "bench-lawyer".into(),
            now,
        })
        .await?;
    Ok(consultation.id)
}

/// The server's recording store in `dir` (SQLite, a local disk provider), with a session of
/// `tracks` track recordings.
async fn store(
    dir: &std::path::Path,
    tracks: usize,
) -> anyhow::Result<(
    wakili_storage::RecordingStore,
    Vec<wakili_db::models::Recording>,
)> {
    let state = recording_state(dir, false).await?;
    let consultation = book_consultation(&state).await?;
    let now = chrono::Utc::now();
    let store = state.recordings.clone();
    let (session, _) = store
        .create_session(&wakili_core::new_id(), &consultation, "bench-lawyer")
        .await?;
    let mut made = Vec::with_capacity(tracks);
    for t in 0..tracks {
        let meta = wakili_core::recording::TrackMeta {
            participant_id: format!("p{t}"),
            user_id: format!("user-{t}"),
            role: wakili_core::ParticipantRole::Client,
            kind: wakili_core::recording::TrackKind::Video,
            label: "video".into(),
            codec: "vp8".into(),
            started_at: now,
            start_offset_ms: 0,
        };
        made.push(store.create_track(&session, meta).await?);
    }
    Ok((store, made))
}

fn print(f: &Figures) {
    println!(
        "server recording: {} tracks × {} s of 720p VP8 ({:.0} packets/s each), {} packets, {} chunks, {:.1} MiB",
        f.tracks,
        f.media_seconds,
        f.packets_per_track_second,
        f.packets,
        f.chunks,
        f.media_bytes as f64 / 1_048_576.0
    );
    println!(
        "machine: {}, {} cores",
        f.machine.cpu_model, f.machine.cores
    );
    println!();
    println!(
        "{:<44} {:>14} {:>16}",
        "", "CPU µs/packet", "720p tracks/core"
    );
    println!(
        "{:<44} {:>14.2} {:>16.0}",
        "wakili: mux + seal + store (total)", f.total_us_per_packet, f.tracks_per_core
    );
    println!(
        "{:<44} {:>14.2}",
        "  of which mux (RTP → WebM chunks)", f.mux_us_per_packet
    );
    println!(
        "{:<44} {:>14.2}",
        "  of which seal + store (disk, SQLite)", f.store_us_per_packet
    );
    println!(
        "{:<44} {:>14.2} {:>16.0}",
        "reference: raw seal + write + fsync",
        f.reference_us_per_packet,
        f.reference_tracks_per_core
    );
    println!();
    println!(
        "target: at least {TARGET_TRACKS_PER_CORE:.0} tracks per core: {}",
        if f.tracks_per_core >= TARGET_TRACKS_PER_CORE {
            "met"
        } else {
            "MISSED"
        }
    );
}
