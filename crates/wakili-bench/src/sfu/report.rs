//! The figures of `wakili-bench sfu`, the targets checked against them, as tables or
//! one JSON document.

use serde::Serialize;

use super::{
    args::{SfuArgs, TARGET_PPS},
    recording::{Finalized, RecorderCounters},
    slow::SlowSummary,
};
use crate::report::Machine;

/// Cores busy before the load above which the figures are flagged.
const BUSY_BEFORE: f64 = 0.2;
/// Target: forwarding latency p99 below this (ms).
pub const TARGET_P99_MS: f64 = 2.0;
/// Target of issue 18: 720p tracks the recorder handles per core without loss.
pub const TARGET_TRACKS_PER_CORE: f64 = 200.0;
/// Name of Wakili's run with server recording.
const RECORDING: &str = "wakili+rec";

/// The load, identical for every server.
#[derive(Debug, Serialize)]
pub struct Load {
    /// Rooms.
    pub rooms: u32,
    /// Publishers per room.
    pub publishers: u32,
    /// Subscribers per room.
    pub subscribers: u32,
    /// Layer every subscriber receives.
    pub layer: &'static str,
    /// q, h, f bitrates, kbit/s.
    pub layer_kbps: Vec<u32>,
    /// Video frames per second.
    pub fps: u32,
    /// Seconds between periodic keyframes.
    pub keyframe_every_s: f64,
    /// Packets per second each publisher sends (all layers and audio).
    pub publisher_pps: f64,
    /// Packets per second the subscribers should receive in all.
    pub offered_pps: f64,
    /// Measured window, seconds.
    pub window_s: f64,
    /// IPv4 address media flows on.
    pub media_ip: String,
    /// Worker threads of the load generator.
    pub client_threads: usize,
}

impl Load {
    /// The load `args` describe.
    pub fn new(args: &SfuArgs, media_ip: String, client_threads: usize) -> Self {
        Self {
            rooms: args.rooms,
            publishers: args.publishers,
            subscribers: args.subscribers,
            layer: args.layer.rid(),
            layer_kbps: args.layer_kbps.clone(),
            fps: args.fps,
            keyframe_every_s: args.keyframe_every.as_secs_f64(),
            publisher_pps: args.sent_pps_per_publisher(),
            offered_pps: args.offered_pps(),
            window_s: args.duration.as_secs_f64(),
            media_ip,
            client_threads,
        }
    }
}

/// One server's figures over the window.
#[derive(Debug, Serialize)]
pub struct Figures {
    /// From the first join until every subscriber received every publisher, seconds.
    pub setup_s: f64,
    /// The measured window, seconds.
    pub window_s: f64,
    /// Packets sent in the window that subscribers should have received.
    pub expected_packets: u64,
    /// Distinct ones they received.
    pub received_packets: u64,
    /// received / window.
    pub forwarded_pps: f64,
    /// (expected − received) / expected × 100.
    pub loss_percent: f64,
    /// Packets received twice.
    pub duplicates: u64,
    /// Packets of streams a subscriber should not have received (another layer).
    pub unexpected_packets: u64,
    /// Receive − send time: median, 99th percentile, maximum (ms).
    pub latency_p50_ms: Option<f64>,
    /// See `latency_p50_ms`.
    pub latency_p99_ms: Option<f64>,
    /// See `latency_p50_ms`.
    pub latency_max_ms: Option<f64>,
    /// Arrival on the subscriber's socket (kernel timestamp) − send: median, 99th percentile
    /// (ms). The forwarding latency without the generator's own receive queue.
    pub arrival_p50_ms: Option<f64>,
    /// See `arrival_p50_ms`.
    pub arrival_p99_ms: Option<f64>,
    /// The packets that reached a socket late, and when they were sent.
    pub slow: SlowSummary,
    /// Server CPU (user + system, all threads) over the window, seconds.
    pub server_cpu_s: f64,
    /// Server CPU per received packet, µs.
    pub cpu_us_per_packet: Option<f64>,
    /// Server CPU, percent of one core.
    pub server_cpu_percent: f64,
    /// VmRSS before the first join, MiB.
    pub rss_idle_mib: f64,
    /// VmRSS at the end of the window, MiB.
    pub rss_loaded_mib: f64,
    /// (loaded − idle) / subscribers, KiB.
    pub rss_per_subscriber_kib: f64,
    /// The load generator's CPU, percent of one core.
    pub generator_cpu_percent: f64,
    /// Cores busy machine-wide over the window.
    pub machine_busy_cores: f64,
    /// Cores busy machine-wide over one second with the server idle, before the load.
    pub machine_busy_before_cores: f64,
    /// Keyframe requests the publishers received over the run.
    pub keyframe_requests: u64,
    /// Wakili only: datagrams its socket refused (full buffer) over the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send_failures: Option<u64>,
    /// Wakili recording every room: the recorder's figures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recording: Option<RecordingFigures>,
}

/// The recorder's figures in a run that records every room.
#[derive(Debug, Clone, Serialize)]
pub struct RecordingFigures {
    /// Packets the recorder took from the SFU in the window.
    pub recorded_packets: u64,
    /// recorded / window.
    pub recorded_pps: f64,
    /// Track files open at the window's end.
    pub tracks_recorded: u64,
    /// Packets the SFU could not hand to the recorder (its feed full), from the first join
    /// to the drain's end.
    pub dropped_packets: u64,
    /// Chunks dropped because the recorder's memory and spool were full, same span.
    pub overflow_chunks: u64,
    /// Bytes waiting for storage (memory and spool) at the window's end.
    pub queued_bytes: u64,
    /// Media bytes sealed and stored over the run, the last chunks included.
    pub sealed_bytes: u64,
    /// Chunks sealed and stored over the run.
    pub sealed_chunks: u64,
    /// What storage holds once the recorder stopped (checked: every track completed, with
    /// chunks).
    pub finalized: Finalized,
}

impl RecordingFigures {
    /// From the recorder's counters at the window's opening and closing, after the drain,
    /// and after it stopped.
    pub fn new(
        opened: &RecorderCounters,
        closed: &RecorderCounters,
        drained: &RecorderCounters,
        stopped: &RecorderCounters,
        finalized: Finalized,
        window_s: f64,
    ) -> Self {
        let recorded_packets = closed
            .recorded_packets
            .saturating_sub(opened.recorded_packets);
        Self {
            recorded_packets,
            recorded_pps: recorded_packets as f64 / window_s.max(1e-9),
            tracks_recorded: closed.active_tracks,
            dropped_packets: drained.dropped_packets,
            overflow_chunks: drained.overflow_chunks,
            queued_bytes: closed.queued_bytes,
            sealed_bytes: stopped.sealed_bytes,
            sealed_chunks: stopped.sealed_chunks,
            finalized,
        }
    }

    /// Nothing dropped on the way to storage.
    pub fn lossless(&self) -> bool {
        self.dropped_packets == 0 && self.overflow_chunks == 0
    }
}

/// What recording costs the SFU's process: Wakili's run with recording against the one
/// without, both under the same load.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RecordingCost {
    /// CPU the recording added over the window, seconds: the recording run's server CPU less
    /// what its forwarded packets cost in the run without recording.
    pub added_cpu_s: f64,
    /// That per recorded packet (tap, mux, seal, store: all in the SFU's process), µs.
    pub us_per_recorded_packet: f64,
    /// Video tracks recorded (each publisher's 720p layer, with its audio beside it).
    pub video_tracks: u64,
    /// 720p tracks, each with its publisher's audio track, one core records at this cost
    /// (the whole added CPU charged to them); `None` when the difference is within noise
    /// (not positive).
    pub tracks_per_core: Option<f64>,
    /// Whether nothing was dropped on the way to storage.
    pub lossless: bool,
}

impl RecordingCost {
    /// The cost from Wakili's run without recording (`plain`) and with (`recorded`).
    pub fn of(plain: &Figures, recorded: &Figures) -> Option<Self> {
        let r = recorded.recording.as_ref()?;
        let base_us = plain.cpu_us_per_packet?;
        let added_cpu_s = recorded.server_cpu_s - base_us * recorded.received_packets as f64 / 1e6;
        let video_tracks = r.finalized.video_tracks;
        Some(Self {
            added_cpu_s,
            us_per_recorded_packet: added_cpu_s * 1e6 / r.recorded_packets.max(1) as f64,
            video_tracks,
            tracks_per_core: (added_cpu_s > 0.0)
                .then(|| video_tracks as f64 * recorded.window_s / added_cpu_s),
            lossless: r.lossless(),
        })
    }
}

/// One server's result.
#[derive(Debug, Serialize)]
pub struct ServerRun {
    /// `wakili` or `janus`.
    pub server: &'static str,
    /// Its command line and version.
    pub description: String,
    /// The figures, when the run succeeded.
    #[serde(flatten)]
    pub figures: Option<Figures>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One of the targets.
#[derive(Debug, Serialize)]
pub struct Target {
    /// What it asks.
    pub target: &'static str,
    /// `met`, `missed`, or `not measured`.
    pub verdict: &'static str,
    /// The figures behind the verdict.
    pub detail: String,
}

/// The whole document.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Where it ran.
    pub machine: Machine,
    /// Janus's version, when it ran.
    pub janus_version: Option<String>,
    /// The load.
    pub load: Load,
    /// Per server, in run order.
    pub results: Vec<ServerRun>,
    /// What recording costs, when Wakili ran with and without it.
    pub recording_cost: Option<RecordingCost>,
    /// The targets, for Wakili.
    pub targets: Vec<Target>,
}

impl Report {
    /// Assembles the report and checks the targets.
    pub fn new(
        machine: Machine,
        janus_version: Option<String>,
        load: Load,
        results: Vec<ServerRun>,
    ) -> Self {
        let figures = |name: &str| {
            results
                .iter()
                .find(|r| r.server == name)
                .and_then(|r| r.figures.as_ref())
        };
        let recording_cost = figures("wakili")
            .zip(figures(RECORDING))
            .and_then(|(plain, recorded)| RecordingCost::of(plain, recorded));
        let mut targets = targets(&load, &results);
        targets.push(recording_target(
            figures(RECORDING).and_then(|f| f.recording.as_ref()),
            recording_cost.as_ref(),
        ));
        Self {
            machine,
            janus_version,
            load,
            results,
            recording_cost,
            targets,
        }
    }

    /// Whether every server's run succeeded.
    pub fn all_ok(&self) -> bool {
        self.results.iter().all(|r| r.error.is_none())
    }

    /// The report as pretty JSON.
    pub fn json(&self) -> anyhow::Result<String> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    /// The report as text.
    pub fn text(&self) -> String {
        let (m, l) = (&self.machine, &self.load);
        let servers: Vec<&str> = self.results.iter().map(|r| r.server).collect();
        let mut lines = vec![
            format!("wakili-bench sfu: SFU forwarding, {}", servers.join(" vs ")),
            format!(
                "machine   {} · {} cores · Linux {} · {} ticks/s",
                m.cpu_model, m.cores, m.kernel, m.clock_ticks_per_s
            ),
            format!(
                "load      {} rooms × ({} publishers + {} subscribers); each publisher: Opus \
                 50 pkt/s + VP8 simulcast q/h/f {} kbit/s at {} fps, keyframe every {} s \
                 ({:.0} pkt/s); each subscriber gets audio + layer {} of every publisher in its room",
                l.rooms,
                l.publishers,
                l.subscribers,
                l.layer_kbps
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join("/"),
                l.fps,
                l.keyframe_every_s,
                l.publisher_pps,
                l.layer
            ),
            format!(
                "offered   {:.0} pkt/s to subscribers, {:.0} pkt/s from publishers; window {:.0} s; \
                 media on {} (UDP, str0m peers, {} generator threads)",
                l.offered_pps,
                l.publisher_pps * f64::from(l.rooms * l.publishers),
                l.window_s,
                l.media_ip,
                l.client_threads
            ),
        ];
        if cfg!(debug_assertions) {
            lines.push(
                "note      debug build: Wakili's SFU and the load generator run unoptimized, so \
                 these figures say nothing about either; build with --release"
                    .into(),
            );
        }
        if let Some(version) = &self.janus_version {
            lines.push(format!(
                "janus     {version}: VideoRoom + HTTP only, ICE on {} only, no STUN/TURN, no \
                 nat_1_1, full ICE, half trickle, log level as --janus-debug-level",
                l.media_ip
            ));
        }
        lines.push(String::new());
        lines.extend(self.table());
        let recording = self.recording_table();
        if !recording.is_empty() {
            lines.push(String::new());
            lines.extend(recording);
        }
        lines.push(String::new());
        lines.push("targets (Wakili)".into());
        for t in &self.targets {
            let flag = if t.verdict == "missed" {
                "MISSED"
            } else {
                t.verdict
            };
            lines.push(format!("  {:<44} {flag}: {}", t.target, t.detail));
        }
        lines.push(String::new());
        lines.extend(self.definitions());
        lines.iter().map(|l| format!("{l}\n")).collect()
    }

    fn table(&self) -> Vec<String> {
        let row = |c: [&str; 13]| {
            format!(
                "{:<10} {:>9} {:>7} {:>6} {:>6} {:>6} {:>7} {:>7} {:>7} {:>6} {:>7} {:>7} {:>7}",
                c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10], c[11], c[12]
            )
        };
        let ms = |v: Option<f64>| v.map_or("?".into(), |v| format!("{v:.2}"));
        let mut lines = vec![
            row([
                "server",
                "forwarded",
                "loss",
                "p50",
                "p99",
                "max",
                "p50",
                "p99",
                "CPU",
                "CPU",
                "RSS",
                "RSS",
                "RSS/sub",
            ]),
            row([
                "", "pkt/s", "%", "ms", "ms", "ms", "sock ms", "sock ms", "µs/pkt", "%", "idle",
                "loaded", "KiB",
            ]),
        ];
        for r in &self.results {
            lines.push(match &r.figures {
                Some(f) => row([
                    r.server,
                    &format!("{:.0}", f.forwarded_pps),
                    &format!("{:.3}", f.loss_percent),
                    &ms(f.latency_p50_ms),
                    &ms(f.latency_p99_ms),
                    &ms(f.latency_max_ms),
                    &ms(f.arrival_p50_ms),
                    &ms(f.arrival_p99_ms),
                    &f.cpu_us_per_packet
                        .map_or("?".into(), |v| format!("{v:.2}")),
                    &format!("{:.0}", f.server_cpu_percent),
                    &format!("{:.1}", f.rss_idle_mib),
                    &format!("{:.1}", f.rss_loaded_mib),
                    &format!("{:.0}", f.rss_per_subscriber_kib),
                ]),
                None => format!(
                    "{:<10} FAILED: {}",
                    r.server,
                    r.error.as_deref().unwrap_or("?")
                ),
            });
        }
        for r in &self.results {
            let Some(f) = &r.figures else { continue };
            let mut note = format!(
                "{:<10} set-up {:.1} s; {} of {} packets; generator CPU {:.0} %, machine busy \
                 {:.2} cores; {} keyframe requests to publishers",
                r.server,
                f.setup_s,
                f.received_packets,
                f.expected_packets,
                f.generator_cpu_percent,
                f.machine_busy_cores,
                f.keyframe_requests
            );
            if f.duplicates > 0 || f.unexpected_packets > 0 {
                note += &format!(
                    "; {} duplicates, {} of other layers",
                    f.duplicates, f.unexpected_packets
                );
            }
            if let Some(n) = f.send_failures {
                note += &format!("; {n} datagrams its socket refused");
            }
            lines.push(note);
            lines.push(format!(
                "{:<10} {}",
                "",
                f.slow
                    .line((self.load.rooms * self.load.subscribers) as usize)
            ));
            if f.machine_busy_before_cores > BUSY_BEFORE {
                lines.push(format!(
                    "note ({}): {:.2} cores were busy before the load (other processes): its \
                     figures are disturbed; rerun on a quiet machine",
                    r.server, f.machine_busy_before_cores
                ));
            }
        }
        lines
    }

    fn definitions(&self) -> Vec<String> {
        let mut lines: Vec<String> = [
            "forwarded  distinct packets subscribers received of those sent in the window, per second",
            "loss       packets sent in the window that a subscriber should have received (audio + \
             the chosen layer of each publisher in its room) and did not, after the drain",
            "p50/p99    receive time − send time of those packets, both on this process's clock \
             (SRTP, str0m and the server's forwarding included; one machine, no network)",
            "sock       the same, up to when the kernel queued the packet on the subscriber's \
             socket (SO_TIMESTAMPNS): without the time the generator's own tasks took to read it",
            "CPU        server process user + system time over the window (/proc/PID/stat): per \
             forwarded packet, and in percent of one core",
            "RSS        VmRSS before the first join and at the end of the window; per subscriber \
             = (loaded − idle) / subscribers (publishers' sessions included in the difference)",
        ]
        .map(str::to_owned)
        .into();
        let recorded = self
            .results
            .iter()
            .any(|r| r.figures.as_ref().is_some_and(|f| f.recording.is_some()));
        if recorded {
            lines.push(
                "recording  wakili+rec: the same SFU recording every room through the server's \
             recorder and recording store (mux to WebM, AES-GCM sealing, local disk with fsync, \
             SQLite), in the SFU's process; recorded = packets the recorder took in the window; \
             dropped = packets the SFU could not hand it, overflow = chunks it could not queue \
             (first join to drain); sealed = stored over the run; added CPU = its server CPU − \
             wakili's CPU per forwarded packet × its forwarded packets, per recorded packet; \
             720p/core = video tracks × window / added CPU (each with its audio, the whole \
             added CPU charged to them)"
                    .into(),
            );
        }
        for r in &self.results {
            lines.push(format!("{:<10} {}", r.server, r.description));
        }
        lines
    }

    fn recording_table(&self) -> Vec<String> {
        let Some((server, f)) = self.results.iter().find_map(|r| {
            r.figures
                .as_ref()
                .and_then(|f| f.recording.as_ref())
                .map(|f| (r.server, f))
        }) else {
            return Vec::new();
        };
        let row = |c: [&str; 10]| {
            format!(
                "{:<10} {:>9} {:>6} {:>7} {:>8} {:>8} {:>7} {:>7} {:>11} {:>11}",
                c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9]
            )
        };
        let cost = self.recording_cost.as_ref();
        let mut lines = vec![
            row([
                "recording",
                "recorded",
                "tracks",
                "dropped",
                "overflow",
                "sealed",
                "chunks",
                "queued",
                "added CPU",
                "720p",
            ]),
            row([
                "",
                "pkt/s",
                "",
                "pkt",
                "chunks",
                "MiB",
                "stored",
                "MiB",
                "µs/rec pkt",
                "tracks/core",
            ]),
            row([
                server,
                &format!("{:.0}", f.recorded_pps),
                &f.tracks_recorded.to_string(),
                &f.dropped_packets.to_string(),
                &f.overflow_chunks.to_string(),
                &format!("{:.1}", f.sealed_bytes as f64 / 1_048_576.0),
                &f.finalized.chunks.to_string(),
                &format!("{:.1}", f.queued_bytes as f64 / 1_048_576.0),
                &cost.map_or("?".into(), |c| format!("{:.2}", c.us_per_recorded_packet)),
                &cost
                    .and_then(|c| c.tracks_per_core)
                    .map_or("?".into(), |t| format!("{t:.0}")),
            ]),
        ];
        let fin = &f.finalized;
        lines.push(format!(
            "{:<10} {} packets recorded in the window; stored: {} sessions and {} tracks ({} \
             video) completed, {} chunks, at least {} per track",
            server,
            f.recorded_packets,
            fin.sessions,
            fin.tracks,
            fin.video_tracks,
            fin.chunks,
            fin.min_chunks_per_track
        ));
        if cost.is_none() {
            lines.push(
                "note: the added CPU needs a `wakili` run beside `wakili-record` (--servers)"
                    .into(),
            );
        }
        lines
    }
}

/// Issue 18's recorder target, from the recording run and its cost.
fn recording_target(f: Option<&RecordingFigures>, cost: Option<&RecordingCost>) -> Target {
    const TARGET: &str = "recorder: 200 720p tracks/core, 0 loss";
    let (Some(f), Some(cost)) = (f, cost) else {
        return Target {
            target: TARGET,
            verdict: "not measured",
            detail: "needs the wakili and wakili-record runs".into(),
        };
    };
    let per_core = cost.tracks_per_core;
    let met = cost.lossless && per_core.is_some_and(|t| t >= TARGET_TRACKS_PER_CORE);
    Target {
        target: TARGET,
        verdict: if met { "met" } else { "missed" },
        detail: format!(
            "{} tracks/core ({:.2} µs added per recorded packet, {} video tracks); {} packets \
             dropped, {} chunks overflowed",
            per_core.map_or("? (added CPU within noise)".into(), |t| format!("{t:.0}")),
            cost.us_per_recorded_packet,
            cost.video_tracks,
            f.dropped_packets,
            f.overflow_chunks
        ),
    }
}

fn targets(load: &Load, results: &[ServerRun]) -> Vec<Target> {
    let find = |name: &str| {
        results
            .iter()
            .find(|r| r.server == name)
            .and_then(|r| r.figures.as_ref())
    };
    let not_measured = |target, detail: &str| Target {
        target,
        verdict: "not measured",
        detail: detail.to_owned(),
    };
    let verdict = |ok: bool| if ok { "met" } else { "missed" };
    let Some(w) = find("wakili") else {
        let why = "no Wakili figures";
        return vec![
            not_measured("CPU per forwarded packet ≤ Janus's", why),
            not_measured("0 loss at 50,000 forwarded pkt/s", why),
            not_measured("forwarding latency p99 < 2 ms", why),
        ];
    };
    let cpu = match (
        w.cpu_us_per_packet,
        find("janus").and_then(|j| j.cpu_us_per_packet),
    ) {
        (Some(w), Some(j)) => Target {
            target: "CPU per forwarded packet ≤ Janus's",
            verdict: verdict(w <= j),
            detail: format!("Wakili {w:.2} µs, Janus {j:.2} µs per packet"),
        },
        _ => not_measured(
            "CPU per forwarded packet ≤ Janus's",
            "needs both servers' figures",
        ),
    };
    let loss = if load.offered_pps < TARGET_PPS * 0.98 {
        not_measured(
            "0 loss at 50,000 forwarded pkt/s",
            &format!(
                "the load offers {:.0} pkt/s; raise --rooms or --subscribers (loss here {:.3} %)",
                load.offered_pps, w.loss_percent
            ),
        )
    } else {
        Target {
            target: "0 loss at 50,000 forwarded pkt/s",
            verdict: verdict(w.expected_packets > 0 && w.received_packets == w.expected_packets),
            detail: format!(
                "{:.0} pkt/s forwarded, {} of {} lost ({:.3} %)",
                w.forwarded_pps,
                w.expected_packets - w.received_packets.min(w.expected_packets),
                w.expected_packets,
                w.loss_percent
            ),
        }
    };
    let latency = match w.latency_p99_ms {
        Some(p99) => Target {
            target: "forwarding latency p99 < 2 ms",
            verdict: verdict(p99 < TARGET_P99_MS),
            detail: format!("p99 {p99:.2} ms at {:.0} pkt/s", w.forwarded_pps),
        },
        None => not_measured("forwarding latency p99 < 2 ms", "no packets received"),
    };
    vec![cpu, loss, latency]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(cpu_s: f64, received: u64, recording: Option<RecordingFigures>) -> Figures {
        Figures {
            setup_s: 1.0,
            window_s: 10.0,
            expected_packets: received,
            received_packets: received,
            forwarded_pps: received as f64 / 10.0,
            loss_percent: 0.0,
            duplicates: 0,
            unexpected_packets: 0,
            latency_p50_ms: Some(0.3),
            latency_p99_ms: Some(1.0),
            latency_max_ms: Some(2.0),
            arrival_p50_ms: Some(0.2),
            arrival_p99_ms: Some(0.8),
            slow: SlowSummary::default(),
            server_cpu_s: cpu_s,
            cpu_us_per_packet: Some(cpu_s * 1e6 / received as f64),
            server_cpu_percent: cpu_s * 10.0,
            rss_idle_mib: 10.0,
            rss_loaded_mib: 20.0,
            rss_per_subscriber_kib: 100.0,
            generator_cpu_percent: 50.0,
            machine_busy_cores: 1.0,
            machine_busy_before_cores: 0.0,
            keyframe_requests: 0,
            send_failures: Some(0),
            recording,
        }
    }

    fn counters(recorded: u64, dropped: u64) -> RecorderCounters {
        RecorderCounters {
            active_tracks: 8,
            recorded_packets: recorded,
            dropped_packets: dropped,
            sealed_bytes: 3 << 20,
            sealed_chunks: 40,
            ..RecorderCounters::default()
        }
    }

    fn recording(dropped: u64) -> RecordingFigures {
        let finalized = Finalized {
            sessions: 2,
            tracks: 8,
            video_tracks: 4,
            chunks: 40,
            min_chunks_per_track: 5,
            bytes: 3 << 20,
        };
        RecordingFigures::new(
            &counters(1_000, 0),
            &counters(10_540, 0),
            &counters(11_000, dropped),
            &counters(12_000, dropped),
            finalized,
            10.0,
        )
    }

    #[test]
    fn the_recording_cost_is_the_difference_per_recorded_packet() {
        let f = recording(0);
        assert_eq!((f.recorded_packets, f.recorded_pps), (9_540, 954.0));
        assert!(f.lossless());
        // 2 µs per forwarded packet without recording; 100,000 forwarded with it cost 0.2 s
        // of the 0.3 s: 0.1 s added for 9,540 recorded packets.
        let plain = figures(0.4, 200_000, None);
        let recorded = figures(0.3, 100_000, Some(f));
        let cost = RecordingCost::of(&plain, &recorded).unwrap();
        assert!((cost.added_cpu_s - 0.1).abs() < 1e-9, "{cost:?}");
        assert!((cost.us_per_recorded_packet - 1e5 / 9_540.0).abs() < 1e-6);
        // 4 video tracks for 10 s cost 0.1 CPU-s: 400 per core.
        assert!((cost.tracks_per_core.unwrap() - 400.0).abs() < 1e-6);
        assert_eq!(
            recording_target(recorded.recording.as_ref(), Some(&cost)).verdict,
            "met"
        );
        // Within noise: no figure, and no verdict of met.
        let cheap = figures(0.19, 100_000, Some(recording(0)));
        let cost = RecordingCost::of(&plain, &cheap).unwrap();
        assert_eq!(cost.tracks_per_core, None);
        assert_eq!(
            recording_target(cheap.recording.as_ref(), Some(&cost)).verdict,
            "missed"
        );
        assert!(RecordingCost::of(&plain, &plain).is_none());
    }

    #[test]
    fn a_dropped_packet_misses_the_target_and_runs_print_a_recording_table() {
        let plain = figures(0.4, 200_000, None);
        let recorded = figures(0.3, 100_000, Some(recording(3)));
        let cost = RecordingCost::of(&plain, &recorded).unwrap();
        assert!(!cost.lossless);
        let target = recording_target(recorded.recording.as_ref(), Some(&cost));
        assert_eq!(target.verdict, "missed");
        assert!(
            target.detail.contains("3 packets dropped"),
            "{}",
            target.detail
        );
        let run = |server, figures| ServerRun {
            server,
            description: String::new(),
            figures: Some(figures),
            error: None,
        };
        let load = Load {
            rooms: 2,
            publishers: 2,
            subscribers: 2,
            layer: "f",
            layer_kbps: vec![150, 500, 1500],
            fps: 30,
            keyframe_every_s: 2.0,
            publisher_pps: 450.0,
            offered_pps: 2000.0,
            window_s: 10.0,
            media_ip: "10.0.0.1".into(),
            client_threads: 2,
        };
        let report = Report::new(
            Machine::detect_basic(),
            None,
            load,
            vec![run("wakili", plain), run(RECORDING, recorded)],
        );
        assert!(report.recording_cost.is_some());
        let text = report.text();
        assert!(text.contains("tracks/core"), "{text}");
        assert!(
            text.contains("recorder: 200 720p tracks/core, 0 loss"),
            "{text}"
        );
        let json = report.json().unwrap();
        assert!(json.contains("\"recorded_packets\": 9540"), "{json}");
        // Without a recording run, nothing is printed for it and the target is not measured.
        let alone = Report::new(
            Machine::detect_basic(),
            None,
            report.load,
            vec![run("wakili", figures(0.4, 200_000, None))],
        );
        assert!(alone.recording_cost.is_none());
        assert!(!alone.text().contains("tracks/core ("));
        assert_eq!(alone.targets.last().unwrap().verdict, "not measured");
    }
}
