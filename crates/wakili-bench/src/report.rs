//! The figures of a run, printed as tables or as one JSON document.

use std::{fs, process::Command};

use serde::Serialize;

use crate::{
    cli::{Mode, Transport, TurnArgs},
    process,
};

/// What a relayed packet is in every per-packet figure.
pub const RELAYED_PACKET: &str = "one packet delivered end to end through the relay, as \
     counted by uclient's received total; it crosses the server twice (c2c: client A → relay A → \
     relay B → client B; peer: client → relay → echo peer → relay → client), i.e. 2 datagrams in \
     and 2 out at the server";

/// The machine the run was on.
#[derive(Debug, Serialize)]
pub struct Machine {
    /// `model name` in /proc/cpuinfo.
    pub cpu_model: String,
    /// Cores available to processes (`available_parallelism`).
    pub cores: usize,
    /// Kernel release.
    pub kernel: String,
    /// Clock ticks per second used for CPU time.
    pub clock_ticks_per_s: u64,
    /// Whether `getconf CLK_TCK` confirmed the tick rate (else 100 was assumed).
    pub clock_ticks_verified: bool,
    /// `turnserver --version` (TURN benchmark only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coturn_version: Option<String>,
}

impl Machine {
    /// Reads the machine description, with coturn's version.
    pub fn detect() -> Self {
        Self {
            coturn_version: Some(version_of("turnserver", "--version")),
            ..Self::detect_basic()
        }
    }

    /// Reads the machine description: CPU, cores, kernel, clock ticks.
    pub fn detect_basic() -> Self {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|rest| rest.split_once(':'))
            .map_or_else(|| "unknown".to_owned(), |(_, v)| v.trim().to_owned());
        let (clock_ticks_per_s, clock_ticks_verified) = process::clock_ticks_per_second();
        Self {
            cpu_model,
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            kernel: fs::read_to_string("/proc/sys/kernel/osrelease")
                .map_or_else(|_| "unknown".to_owned(), |v| v.trim().to_owned()),
            clock_ticks_per_s,
            clock_ticks_verified,
            coturn_version: None,
        }
    }
}

/// First output line of `program flag`, or "unknown".
pub fn version_of(program: &str, flag: &str) -> String {
    Command::new(program)
        .arg(flag)
        .output()
        .ok()
        .and_then(|out| {
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            text.lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The load, identical for every server.
#[derive(Debug, Serialize)]
pub struct Load {
    /// Sessions (allocations that send).
    pub clients: u32,
    /// Packets per session.
    pub messages: u32,
    /// Milliseconds between packets of a session.
    pub interval_ms: u32,
    /// Payload bytes per packet.
    pub size_bytes: u32,
    /// Client-to-server transport.
    pub transport: Transport,
    /// Traffic pattern.
    pub mode: Mode,
    /// clients × 1000 / interval: packets per second with every session sending.
    pub offered_pps: f64,
    /// offered_pps × size × 8, payload only.
    pub offered_mbit_s: f64,
    /// Relay threads given to coturn.
    pub coturn_relay_threads: usize,
    /// Limit per server, seconds.
    pub timeout_s: f64,
}

impl Load {
    /// The load `args` describe.
    pub fn new(args: &TurnArgs, coturn_relay_threads: usize) -> Self {
        Self {
            clients: args.clients,
            messages: args.messages,
            interval_ms: args.interval_ms,
            size_bytes: args.size,
            transport: args.transport,
            mode: args.mode,
            offered_pps: args.offered_pps(),
            offered_mbit_s: args.offered_pps() * f64::from(args.size) * 8.0 / 1e6,
            coturn_relay_threads,
            timeout_s: args.timeout.as_secs_f64(),
        }
    }
}

/// One server's figures.
#[derive(Debug, Serialize)]
pub struct Measurement {
    /// The server command line (secret masked).
    pub command: String,
    /// uclient's set-up of all sessions (allocations, channel binds), seconds.
    pub setup_s: f64,
    /// Length of the steady window (every session sending), seconds.
    pub steady_window_s: f64,
    /// Packets per second uclient sent in the steady window.
    pub steady_sent_pps: f64,
    /// Packets per second uclient received in the steady window.
    pub steady_delivered_pps: f64,
    /// Server CPU in the steady window, percent of one core.
    pub steady_server_cpu_percent: Option<f64>,
    /// Packets sent over the whole run.
    pub sent_packets: u64,
    /// Packets received over the whole run (relayed packets).
    pub received_packets: u64,
    /// sent − received, as uclient reports it.
    pub lost_packets: u64,
    /// Packets uclient could not hand to its socket.
    pub send_dropped: u64,
    /// lost / sent × 100, whole run.
    pub loss_percent: f64,
    /// Wall time of the load phase (uclient start to exit), seconds.
    pub load_s: f64,
    /// Server CPU-seconds (user + system, all threads) over the load phase.
    pub server_cpu_s: f64,
    /// server_cpu_s per million relayed packets.
    pub cpu_s_per_mpkt: Option<f64>,
    /// VmHWM after the load: peak resident memory since the server started, MiB.
    pub rss_peak_mib: f64,
    /// VmRSS right after the load, MiB.
    pub rss_end_mib: f64,
    /// uclient's own CPU-seconds (it shares the machine with the server).
    pub generator_cpu_s: Option<f64>,
}

/// One server's result.
#[derive(Debug, Serialize)]
pub struct ServerResult {
    /// `embedded` or `coturn`.
    pub server: &'static str,
    /// The figures, when the run succeeded.
    #[serde(flatten)]
    pub measurement: Option<Measurement>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Embedded relative to coturn.
#[derive(Debug, Serialize)]
pub struct Comparison {
    /// Delivered packets/s, embedded ÷ coturn (higher is better).
    pub delivered_ratio: f64,
    /// CPU-seconds per million relayed packets, embedded ÷ coturn (lower is better).
    pub cpu_per_mpkt_ratio: Option<f64>,
    /// Peak RSS, embedded ÷ coturn.
    pub rss_peak_ratio: f64,
}

/// The whole document.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Where it ran.
    pub machine: Machine,
    /// The load.
    pub load: Load,
    /// What a relayed packet is.
    pub relayed_packet: &'static str,
    /// Per server, in run order.
    pub results: Vec<ServerResult>,
    /// Embedded vs coturn, when both succeeded.
    pub comparison: Option<Comparison>,
}

impl Report {
    /// Assembles the report and the comparison.
    pub fn new(machine: Machine, load: Load, results: Vec<ServerResult>) -> Self {
        let find = |name: &str| {
            results
                .iter()
                .find(|r| r.server == name)
                .and_then(|r| r.measurement.as_ref())
        };
        let comparison = find("embedded")
            .zip(find("coturn"))
            .map(|(e, c)| Comparison {
                delivered_ratio: e.steady_delivered_pps / c.steady_delivered_pps,
                cpu_per_mpkt_ratio: e.cpu_s_per_mpkt.zip(c.cpu_s_per_mpkt).map(|(e, c)| e / c),
                rss_peak_ratio: e.rss_peak_mib / c.rss_peak_mib,
            });
        Self {
            machine,
            load,
            relayed_packet: RELAYED_PACKET,
            results,
            comparison,
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

    /// The report as text: header, table, comparison, notes, definitions.
    pub fn text(&self) -> String {
        let mut lines = self.header();
        lines.push(String::new());
        lines.extend(self.table());
        if let Some(c) = &self.comparison {
            lines.push(String::new());
            lines.push(format!(
                "embedded vs coturn: delivered ×{:.2} (higher is better), CPU per Mpkt ×{} \
                 (lower is better), peak RSS ×{:.2}",
                c.delivered_ratio,
                c.cpu_per_mpkt_ratio
                    .map_or("?".into(), |v| format!("{v:.2}")),
                c.rss_peak_ratio
            ));
        }
        lines.extend(self.notes());
        if self.results.iter().any(|r| r.measurement.is_some()) {
            lines.push(String::new());
            lines.extend(self.definitions());
        }
        lines.iter().map(|l| format!("{l}\n")).collect()
    }

    fn header(&self) -> Vec<String> {
        let (m, l) = (&self.machine, &self.load);
        let servers: Vec<&str> = self.results.iter().map(|r| r.server).collect();
        let pattern = match l.mode {
            Mode::C2c => "in pairs sending to each other (c2c)",
            Mode::Peer => "sending to a UDP echo peer (peer)",
        };
        let transport = match l.transport {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        };
        let mut lines = vec![
            format!("wakili-bench turn: TURN relay, {}", servers.join(" vs ")),
            format!(
                "machine   {} · {} cores · Linux {} · {} ticks/s{}",
                m.cpu_model,
                m.cores,
                m.kernel,
                m.clock_ticks_per_s,
                if m.clock_ticks_verified {
                    ""
                } else {
                    " (assumed)"
                }
            ),
            format!(
                "load      turnutils_uclient (coturn {}): {} sessions {pattern}, client↔server \
                 {transport}, ChannelData, {} B payload, 1 packet / {} ms / session, {} packets each",
                m.coturn_version.as_deref().unwrap_or("unknown"),
                l.clients,
                l.size_bytes,
                l.interval_ms,
                l.messages
            ),
            format!(
                "offered   {:.0} pkt/s = {:.2} Mbit/s payload with every session sending",
                l.offered_pps, l.offered_mbit_s
            ),
        ];
        if servers.contains(&"coturn") {
            lines.push(format!(
                "coturn    {} relay threads (= cores unless --coturn-relay-threads), no \
                 TLS/DTLS/CLI, REST secret, loopback peers allowed",
                l.coturn_relay_threads
            ));
        }
        lines
    }

    fn table(&self) -> Vec<String> {
        let row = |cells: [&str; 8]| {
            format!(
                "{:<9} {:>9} {:>10} {:>7} {:>7} {:>8} {:>9} {:>9}",
                cells[0], cells[1], cells[2], cells[3], cells[4], cells[5], cells[6], cells[7]
            )
        };
        let opt = |v: Option<f64>| v.map_or("?".into(), |v| format!("{v:.1}"));
        let mut lines = vec![
            row([
                "server",
                "offered",
                "delivered",
                "loss",
                "CPU",
                "CPU s /",
                "RSS peak",
                "RSS end",
            ]),
            row(["", "pkt/s", "pkt/s", "%", "%", "Mpkt", "MiB", "MiB"]),
        ];
        for r in &self.results {
            lines.push(match &r.measurement {
                Some(x) => row([
                    r.server,
                    &format!("{:.0}", self.load.offered_pps),
                    &format!("{:.0}", x.steady_delivered_pps),
                    &format!("{:.2}", x.loss_percent),
                    &opt(x.steady_server_cpu_percent),
                    &opt(x.cpu_s_per_mpkt),
                    &format!("{:.1}", x.rss_peak_mib),
                    &format!("{:.1}", x.rss_end_mib),
                ]),
                None => format!(
                    "{:<9} FAILED: {}",
                    r.server,
                    r.error.as_deref().unwrap_or("no figures")
                ),
            });
        }
        lines
    }

    fn notes(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for r in &self.results {
            let Some(x) = &r.measurement else { continue };
            if x.steady_sent_pps < 0.95 * self.load.offered_pps {
                lines.push(format!(
                    "note ({}): uclient sent only {:.0} pkt/s of the offered {:.0}: the load \
                     generator fell behind, so this is not the server's limit",
                    r.server, x.steady_sent_pps, self.load.offered_pps
                ));
            }
            if x.send_dropped > 0 {
                lines.push(format!(
                    "note ({}): {} packets could not be sent (uclient's socket buffer was full)",
                    r.server, x.send_dropped
                ));
            }
        }
        lines
    }

    fn definitions(&self) -> Vec<String> {
        let mut lines: Vec<String> = [
            "offered    clients × 1000 / interval, the rate with every session sending",
            "delivered  packets/s uclient received in the steady window, when every session is \
             sending (uclient starts sessions at random 1–6 s after set-up)",
            "loss       whole run: (sent − received) / sent, as uclient reports it",
            "CPU %      server process user + system time in the steady window, 100 % = one core",
            "CPU s/Mpkt server CPU-seconds over the whole load phase (/proc/PID/stat, uclient \
             start to exit: set-up, ramp, sending, wait for late packets) per million relayed \
             packets",
            &format!("           relayed packet = {RELAYED_PACKET}"),
            "RSS        peak = VmHWM (since the server started), end = VmRSS right after the load",
        ]
        .map(str::to_owned)
        .into();
        for r in &self.results {
            let Some(x) = &r.measurement else { continue };
            lines.push(format!(
                "{:<10} {} (load phase {:.1} s incl. set-up {:.1} s, steady window {:.1} s, \
                 server CPU {:.2} s, uclient CPU {})",
                r.server,
                x.command,
                x.load_s,
                x.setup_s,
                x.steady_window_s,
                x.server_cpu_s,
                x.generator_cpu_s
                    .map_or("?".into(), |v| format!("{v:.2} s"))
            ));
        }
        lines
    }
}
