//! The figures of `wakili-bench sfu`, the targets checked against them, as tables or
//! one JSON document.

use serde::Serialize;

use super::args::{SfuArgs, TARGET_PPS};
use crate::report::Machine;

/// Cores busy before the load above which the figures are flagged.
const BUSY_BEFORE: f64 = 0.2;
/// Target: forwarding latency p99 below this (ms).
pub const TARGET_P99_MS: f64 = 2.0;

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
        let targets = targets(&load, &results);
        Self {
            machine,
            janus_version,
            load,
            results,
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
        let row = |c: [&str; 11]| {
            format!(
                "{:<7} {:>9} {:>7} {:>6} {:>6} {:>6} {:>7} {:>6} {:>7} {:>7} {:>7}",
                c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10]
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
                "CPU",
                "CPU",
                "RSS",
                "RSS",
                "RSS/sub",
            ]),
            row([
                "", "pkt/s", "%", "ms", "ms", "ms", "µs/pkt", "%", "idle", "loaded", "KiB",
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
                    &f.cpu_us_per_packet
                        .map_or("?".into(), |v| format!("{v:.2}")),
                    &format!("{:.0}", f.server_cpu_percent),
                    &format!("{:.1}", f.rss_idle_mib),
                    &format!("{:.1}", f.rss_loaded_mib),
                    &format!("{:.0}", f.rss_per_subscriber_kib),
                ]),
                None => format!(
                    "{:<7} FAILED: {}",
                    r.server,
                    r.error.as_deref().unwrap_or("?")
                ),
            });
        }
        for r in &self.results {
            let Some(f) = &r.figures else { continue };
            let mut note = format!(
                "{:<7} set-up {:.1} s; {} of {} packets; generator CPU {:.0} %, machine busy \
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
            "CPU        server process user + system time over the window (/proc/PID/stat): per \
             forwarded packet, and in percent of one core",
            "RSS        VmRSS before the first join and at the end of the window; per subscriber \
             = (loaded − idle) / subscribers (publishers' sessions included in the difference)",
        ]
        .map(str::to_owned)
        .into();
        for r in &self.results {
            lines.push(format!("{:<10} {}", r.server, r.description));
        }
        lines
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
