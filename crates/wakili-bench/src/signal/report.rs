//! The figures of `wakili-bench signal`: one row per server, the targets beside them, printed as
//! tables or as one JSON document.

use serde::Serialize;

use super::load::{Joins, Signals};
use crate::{cli::SignalArgs, report::Machine};

/// The load, identical for every server.
#[derive(Debug, Clone, Serialize)]
pub struct Load {
    /// Consultations.
    pub pairs: u32,
    /// Participants (two per pair).
    pub participants: u64,
    /// Signals per second per participant.
    pub rate_per_s: f64,
    /// participants × rate.
    pub offered_per_s: f64,
    /// Sending time, seconds.
    pub duration_s: f64,
    /// Participants connecting and joining per second.
    pub join_rate_per_s: f64,
    /// Payload bytes per signal.
    pub payload_bytes: usize,
    /// Latency above which a signal is late, milliseconds.
    pub late_ms: f64,
    /// Join only, no signals.
    pub idle: bool,
    /// Worker threads of the load generator.
    pub generator_threads: usize,
    /// This process's open-file limit after raising it (the servers inherit it).
    pub open_file_limit: Option<u64>,
}

impl Load {
    /// The load `args` describe.
    pub fn new(args: &SignalArgs, generator_threads: usize, open_file_limit: Option<u64>) -> Self {
        Self {
            pairs: args.pairs,
            participants: args.participants(),
            rate_per_s: args.rate,
            offered_per_s: args.offered_per_s(),
            duration_s: args.duration.as_secs_f64(),
            join_rate_per_s: args.join_rate,
            payload_bytes: args.payload_bytes,
            late_ms: args.late.as_secs_f64() * 1e3,
            idle: args.idle,
            generator_threads,
            open_file_limit,
        }
    }
}

/// One server's run.
#[derive(Debug, Clone, Serialize)]
pub struct ServerRun {
    /// `wakili` or `reference`.
    pub server: &'static str,
    /// The command line, or where the server already ran.
    pub description: String,
    /// Whether the server is this benchmark's child, so its CPU and memory were read.
    pub measured_process: bool,
    /// Cores the machine kept busy over one second before the load, the server idle: other
    /// processes competing for the cores.
    pub machine_busy_before_cores: Option<f64>,
    /// Booking the consultations over REST, before the joins.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub booking: Option<super::target::Booking>,
    /// Join phase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub joins: Option<Joins>,
    /// Signal phase (not with --idle).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signals: Option<Signals>,
    /// Why the run failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One target checked against one server's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// The target, e.g. `signal p99 < 1 ms`.
    pub target: &'static str,
    /// The load it was set for.
    pub target_load: &'static str,
    /// Whether this run's load is at least that load.
    pub at_target_load: bool,
    /// The server.
    pub server: &'static str,
    /// The figure compared.
    pub measured: String,
    /// Met, missed, or not measured.
    pub met: Option<bool>,
}

/// The whole document.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Where it ran.
    pub machine: Machine,
    /// The load.
    pub load: Load,
    /// Per server, in run order.
    pub results: Vec<ServerRun>,
    /// The targets against each server's figures.
    pub checks: Vec<Check>,
}

const MS: f64 = 1e6;
/// Busy cores before the load above which the machine counts as shared.
const BUSY_BEFORE_NOTE_CORES: f64 = 0.15;
/// Cores charged to nobody above which the report says so.
const UNATTRIBUTED_NOTE_CORES: f64 = 0.3;
const JOIN_P99_MS: f64 = 100.0;
const P99_AT_10_MS: f64 = 1.0;
const P99_AT_25_MS: f64 = 5.0;
const P99_LIGHT_MS: f64 = 2.0;
const CPU_US_PER_SIGNAL: f64 = 10.0;
const REDIS_COMMANDS_PER_SIGNAL: f64 = 1.0;
/// Nodes together may spend this much more CPU per signal than one node.
const CLUSTER_CPU_RATIO: f64 = 1.3;
const RSS_KIB_PER_PARTICIPANT: f64 = 8.0;

/// Milliseconds from nanoseconds, with three significant figures or more.
pub fn ms(ns: u64) -> String {
    let v = ns as f64 / MS;
    if v < 1.0 {
        format!("{v:.3}")
    } else if v < 100.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.0}")
    }
}

fn yes_no(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "yes",
        Some(false) => "NO",
        None => "n/a",
    }
}

/// Checks the targets that apply to `run` under `load`.
pub fn checks(load: &Load, run: &ServerRun) -> Vec<Check> {
    let mut out = Vec::new();
    let server = run.server;
    let mut push = |target, target_load, at_target_load, measured: String, met| {
        out.push(Check {
            target,
            target_load,
            at_target_load,
            server,
            measured,
            met,
        });
    };
    if let Some(j) = &run.joins {
        let p99 = j.latency.map(|s| s.p99_ns);
        push(
            "join p99 < 100 ms",
            "5,000 joins/s",
            load.join_rate_per_s >= 5000.0,
            p99.map_or("-".into(), |v| format!("{} ms", ms(v))),
            p99.map(|v| (v as f64 / MS) < JOIN_P99_MS),
        );
        push(
            "no join lost",
            "5,000 joins/s",
            load.join_rate_per_s >= 5000.0,
            format!("{} lost", j.lost),
            Some(j.lost == 0),
        );
        let kib = j.rss_per_participant_bytes.map(|b| b / 1024.0);
        push(
            "RSS < 8 KiB per joined idle participant",
            "18,000 joined",
            load.participants >= 18_000,
            kib.map_or("not measured".into(), |k| format!("{k:.2} KiB")),
            kib.map(|k| k < RSS_KIB_PER_PARTICIPANT),
        );
    }
    if let Some(s) = &run.signals {
        let p99 = s.latency.map(|l| l.p99_ns as f64 / MS);
        let big = load.participants >= 2000;
        if load.participants <= 100 {
            push(
                "signal p99 < 2 ms at light load",
                "40 × 5/s (--light)",
                load.participants >= 40 && load.rate_per_s >= 5.0,
                p99.map_or("-".into(), |v| format!("{v:.3} ms")),
                p99.map(|v| v < P99_LIGHT_MS),
            );
        }
        if load.rate_per_s <= 10.0 {
            push(
                "signal p99 < 1 ms",
                "2,000 × 10/s",
                big && load.rate_per_s >= 10.0,
                p99.map_or("-".into(), |v| format!("{v:.3} ms")),
                p99.map(|v| v < P99_AT_10_MS),
            );
        } else {
            push(
                "signal p99 < 5 ms",
                "2,000 × 25/s",
                big && load.rate_per_s >= 25.0,
                p99.map_or("-".into(), |v| format!("{v:.3} ms")),
                p99.map(|v| v < P99_AT_25_MS),
            );
            push(
                "no signal late or lost",
                "2,000 × 25/s",
                big && load.rate_per_s >= 25.0,
                format!("{} late, {} lost", s.late, s.lost),
                Some(s.late == 0 && s.lost == 0),
            );
        }
        let cpu = s.server_cpu_us_per_signal;
        push(
            "server CPU ≤ 10 µs per relayed signal",
            "any",
            true,
            cpu.map_or("not measured".into(), |c| format!("{c:.1} µs")),
            cpu.map(|c| c <= CPU_US_PER_SIGNAL),
        );
        if let Some(commands) = s.redis_commands_per_signal {
            push(
                "≤ 1 Redis command per relayed signal",
                "any",
                true,
                format!("{commands:.2}"),
                Some(commands <= REDIS_COMMANDS_PER_SIGNAL),
            );
        }
    }
    out
}

/// Nodes against one node: CPU per relayed signal (summed over the nodes and Redis).
fn cluster_check(results: &[ServerRun]) -> Option<Check> {
    let cpu = |name: &str| {
        results
            .iter()
            .find(|r| r.server == name)?
            .signals
            .as_ref()?
            .server_cpu_us_per_signal
    };
    let one = cpu("wakili")?;
    let many = cpu("cluster");
    let ratio = many.map(|m| m / one);
    Some(Check {
        target: "nodes' CPU per signal ≤ 1.3× one node's",
        target_load: "any",
        at_target_load: true,
        server: "cluster",
        measured: ratio.map_or("-".into(), |r| format!("{r:.2}×")),
        met: ratio.map(|r| r <= CLUSTER_CPU_RATIO),
    })
}

impl Report {
    /// Assembles the report and checks the targets.
    pub fn new(machine: Machine, load: Load, results: Vec<ServerRun>) -> Self {
        let mut checks: Vec<Check> = results.iter().flat_map(|r| checks(&load, r)).collect();
        checks.extend(cluster_check(&results));
        Self {
            machine,
            load,
            results,
            checks,
        }
    }

    /// Whether every server's run completed.
    pub fn all_ok(&self) -> bool {
        self.results.iter().all(|r| r.error.is_none())
    }

    /// The report as pretty JSON.
    pub fn json(&self) -> anyhow::Result<String> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    /// The report as text: header, figures, targets, notes, definitions.
    pub fn text(&self) -> String {
        let mut lines = self.header();
        lines.push(String::new());
        lines.extend(self.table());
        let targets = self.targets();
        if !targets.is_empty() {
            lines.push(String::new());
            lines.extend(targets);
        }
        let notes = self.notes();
        if !notes.is_empty() {
            lines.push(String::new());
            lines.extend(notes);
        }
        if self.results.iter().any(|r| r.joins.is_some()) {
            lines.push(String::new());
            lines.extend(self.definitions());
        }
        lines.iter().map(|l| format!("{l}\n")).collect()
    }

    fn header(&self) -> Vec<String> {
        let (m, l) = (&self.machine, &self.load);
        let servers: Vec<&str> = self.results.iter().map(|r| r.server).collect();
        let load = if l.idle {
            format!(
                "load      {} participants ({} consultations × lawyer + client) join at {}/s, \
                 then stay idle (--idle)",
                l.participants, l.pairs, l.join_rate_per_s
            )
        } else {
            format!(
                "load      {} participants ({} consultations × lawyer + client) join at {}/s, \
                 then each sends {}/s `signal` (candidate, {} B payload) to the other for {:.0} s \
                 = {:.0} signals/s offered",
                l.participants,
                l.pairs,
                l.join_rate_per_s,
                l.rate_per_s,
                l.payload_bytes,
                l.duration_s,
                l.offered_per_s
            )
        };
        vec![
            format!(
                "wakili-bench signal: Socket.IO signaling, {}",
                servers.join(" vs ")
            ),
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
            load,
            format!(
                "generator wakili-client over WebSocket, {} worker threads in this process, on the \
                 same cores as the server; late = over {} ms; open files {}",
                l.generator_threads,
                l.late_ms,
                l.open_file_limit
                    .map_or("unknown".into(), |n| n.to_string())
            ),
        ]
    }

    fn table(&self) -> Vec<String> {
        let row = |c: [&str; 12]| {
            format!(
                "{:<9} {:>8} {:>8} {:>8} {:>6} {:>9} {:>9} {:>10} {:>8} {:>7} {:>9} {:>10}",
                c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10], c[11]
            )
        };
        let mut lines = vec![
            row([
                "server",
                "joins/s",
                "join",
                "join",
                "joins",
                "signal",
                "signal",
                "delivered",
                "signals",
                "signals",
                "server",
                "server RSS",
            ]),
            row([
                "",
                "",
                "p50 ms",
                "p99 ms",
                "lost",
                "p50 ms",
                "p99 ms",
                "signals/s",
                "lost",
                "late",
                "CPU µs /",
                "KiB /",
            ]),
            row([
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "signal",
                "particip.",
            ]),
        ];
        let dash = || "-".to_owned();
        for r in &self.results {
            let Some(j) = &r.joins else {
                lines.push(format!(
                    "{:<9} FAILED: {}",
                    r.server,
                    r.error.as_deref().unwrap_or("no figures")
                ));
                continue;
            };
            let s = r.signals.as_ref();
            let latency = s.and_then(|s| s.latency);
            let cells = [
                r.server.to_owned(),
                format!("{:.0}", j.per_s),
                j.latency.map_or_else(dash, |l| ms(l.p50_ns)),
                j.latency.map_or_else(dash, |l| ms(l.p99_ns)),
                j.lost.to_string(),
                latency.map_or_else(dash, |l| ms(l.p50_ns)),
                latency.map_or_else(dash, |l| ms(l.p99_ns)),
                s.map_or_else(dash, |s| format!("{:.0}", s.delivered_per_s)),
                s.map_or_else(dash, |s| s.lost.to_string()),
                s.map_or_else(dash, |s| s.late.to_string()),
                s.and_then(|s| s.server_cpu_us_per_signal)
                    .map_or_else(dash, |c| format!("{c:.1}")),
                j.rss_per_participant_bytes
                    .map_or_else(dash, |b| format!("{:.2}", b / 1024.0)),
            ];
            lines.push(row(cells.each_ref().map(String::as_str)));
            if let Some(e) = &r.error {
                lines.push(format!("{:<9} then FAILED: {e}", ""));
            }
        }
        lines
    }

    fn targets(&self) -> Vec<String> {
        if self.checks.is_empty() {
            return Vec::new();
        }
        let mut lines = vec![format!(
            "{:<40} {:<10} {:<16} {:<4} {}",
            "target", "server", "measured", "met", "set for"
        )];
        for c in &self.checks {
            lines.push(format!(
                "{:<40} {:<10} {:<16} {:<4} {}{}",
                c.target,
                c.server,
                c.measured,
                yes_no(c.met),
                c.target_load,
                if c.at_target_load {
                    ""
                } else {
                    " (this run is lighter)"
                }
            ));
        }
        lines
    }

    fn notes(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for r in &self.results {
            let name = r.server;
            let per_join = r.joins.as_ref().and_then(|j| j.redis_commands_per_join);
            let per_signal = r.signals.as_ref().and_then(|s| s.redis_commands_per_signal);
            if per_join.is_some() || per_signal.is_some() {
                let figure = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}"));
                lines.push(format!(
                    "note ({name}): {}; Redis ran {} commands per join and {} per relayed \
                     signal (INFO commandstats); server CPU and RSS are summed over the nodes \
                     and redis-server",
                    r.description,
                    figure(per_join),
                    figure(per_signal)
                ));
            }
            if let Some(b) = &r.booking
                && let Some(l) = &b.latency
            {
                let ms = |ns: u64| ns as f64 / 1e6;
                lines.push(format!(
                    "note ({name}): booking {} consultations over REST, {} requests at a time, \
                     took {:.2} s ({:.0}/s); each POST p50 {:.2} / p99 {:.2} / max {:.2} ms",
                    b.consultations,
                    b.concurrency,
                    b.wall_s,
                    b.consultations as f64 / b.wall_s.max(1e-9),
                    ms(l.p50_ns),
                    ms(l.p99_ns),
                    ms(l.max_ns)
                ));
            }
            if let Some(j) = &r.joins {
                for (reason, count) in j.failures.iter().take(5) {
                    lines.push(format!("note ({name}): {count} joins failed: {reason}"));
                }
                if j.waited > 0 {
                    lines.push(format!(
                        "note ({name}): {} clients joined before their lawyer and waited to be \
                         admitted; {} were never admitted",
                        j.waited, j.never_admitted
                    ));
                }
                if let Some(k) = &j.kill {
                    let ms = |ns: Option<u64>| {
                        ns.map_or("-".into(), |ns| format!("{:.0} ms", ns as f64 / 1e6))
                    };
                    lines.push(format!(
                        "note ({name}): the first node was killed (SIGKILL) with everyone joined: \
                         {} of its {} participants resumed on the other nodes, all back {} after \
                         the kill (each: p50 {}, p99 {} from its new connection to the join ack); \
                         {} lost, {} came back as a new participant",
                        k.resumed,
                        k.participants,
                        k.all_back_s.map_or("-".into(), |s| format!("{s:.2} s")),
                        ms(k.latency.map(|l| l.p50_ns)),
                        ms(k.latency.map(|l| l.p99_ns)),
                        k.lost,
                        k.other_participant
                    ));
                }
            }
            if let Some(s) = &r.signals {
                let expected = s.offered_per_s * self.load.duration_s;
                let lag_p99 = s.send_lag.map_or(0, |l| l.p99_ns);
                if (s.sent as f64) < 0.97 * expected || lag_p99 > 5_000_000 {
                    lines.push(format!(
                        "note ({name}): the load generator fell behind its schedule (sent {} of \
                         {:.0}, send lag p99 {} ms): the server was offered less than the load",
                        s.sent,
                        expected,
                        ms(lag_p99)
                    ));
                }
                if s.send_errors > 0 {
                    lines.push(format!(
                        "note ({name}): {} signals could not be sent (connection closed)",
                        s.send_errors
                    ));
                }
                if s.sequence_gaps > 0 {
                    lines.push(format!(
                        "note ({name}): {} signals arrived out of sequence (after a loss, or \
                         reordered)",
                        s.sequence_gaps
                    ));
                }
            }
            if let Some(busy) = r.machine_busy_before_cores
                && busy > BUSY_BEFORE_NOTE_CORES
            {
                lines.push(format!(
                    "note ({name}): before the load, with the server idle, the machine was already \
                     busy {busy:.2} cores: other processes compete, the figures are noisy"
                ));
            }
            if let Some(s) = &r.signals
                && let Some(other) = s.unattributed_cores
                && other > UNATTRIBUTED_NOTE_CORES
            {
                lines.push(format!(
                    "note ({name}): while sending, {other:.2} busy cores were charged to neither \
                     the server nor the generator (other processes, or softirq: {} cores)",
                    s.machine_softirq_cores
                        .map_or("?".into(), |c| format!("{c:.2}"))
                ));
            }
            if !r.measured_process {
                lines.push(format!(
                    "note ({name}): {}: server CPU and memory not measured",
                    r.description
                ));
            }
        }
        if self.load.rate_per_s > 45.0 && !self.load.idle {
            lines.push(format!(
                "note: {}/s per participant is near or over Wakili's default limit of 50 events/s \
                 per connection (signaling.rate_per_second): expect rate_limited refusals",
                self.load.rate_per_s
            ));
        }
        lines
    }

    fn definitions(&self) -> Vec<String> {
        let mut lines: Vec<String> = [
            "joins/s    participants joined / (first connection start → last join ack)",
            "join       TCP connect start → `consultation:join` acknowledged (WebSocket, Engine.IO \
             open, Socket.IO CONNECT with the token, join)",
            "joins lost a connection or join that failed, was refused or had no ack within 10 s",
            "signal     send → delivery, stamped in the payload by the sender and read by the \
             receiver (same process, monotonic clock)",
            "delivered  signals received during the sending window / its length",
            "lost       sent − received once the drain time after sending has passed",
            "server CPU user + system time of the server process (/proc/PID/stat) from the first \
             send to the end of the drain, per signal received",
            "server RSS (VmRSS with everyone joined and idle − VmRSS before the first \
             connection) / participants joined",
        ]
        .map(str::to_owned)
        .into();
        for r in &self.results {
            let mut detail = format!("{:<10} {}", r.server, r.description);
            if let Some(j) = &r.joins {
                if let Some(a) = j.ack_latency {
                    detail.push_str(&format!(
                        "; join ack alone p50 {} / p99 {} ms",
                        ms(a.p50_ns),
                        ms(a.p99_ns)
                    ));
                }
                if let Some(cpu) = j.server_cpu_s
                    && j.joined > 0
                {
                    detail.push_str(&format!(
                        "; join phase server CPU {cpu:.2} s = {:.0} µs per join",
                        cpu * 1e6 / j.joined as f64
                    ));
                }
                if let Some(kib) = j.generator_rss_kib {
                    detail.push_str(&format!(
                        "; generator RSS {:.0} MiB with all joined",
                        kib as f64 / 1024.0
                    ));
                }
            }
            if let Some(s) = &r.signals {
                detail.push_str(&format!(
                    "; window {:.1} s, server CPU {}, generator CPU {}, machine busy {} cores",
                    s.window_s,
                    s.server_cpu_s.map_or("?".into(), |c| format!("{c:.2} s")),
                    s.generator_cpu_s
                        .map_or("?".into(), |c| format!("{c:.2} s")),
                    s.machine_busy_cores
                        .map_or("?".into(), |c| format!("{c:.2}"))
                ));
            }
            lines.push(detail);
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::signal::load::Spread;

    fn load(participants: u64, rate: f64, idle: bool) -> Load {
        Load {
            pairs: (participants / 2) as u32,
            participants,
            rate_per_s: rate,
            offered_per_s: participants as f64 * rate,
            duration_s: 10.0,
            join_rate_per_s: 1000.0,
            payload_bytes: 200,
            late_ms: 100.0,
            idle,
            generator_threads: 2,
            open_file_limit: Some(20_000),
        }
    }

    fn spread(p50_us: u64, p99_us: u64) -> Option<Spread> {
        Some(Spread {
            p50_ns: p50_us * 1000,
            p99_ns: p99_us * 1000,
            max_ns: p99_us * 2000,
            mean_ns: p50_us as f64 * 1000.0,
            count: 100,
        })
    }

    fn run(server: &'static str, with_signals: bool) -> ServerRun {
        ServerRun {
            server,
            description: "wakili serve --listen 127.0.0.1:1".into(),
            measured_process: true,
            machine_busy_before_cores: Some(0.01),
            booking: None,
            joins: Some(Joins {
                started: 2000,
                joined: 2000,
                lost: 0,
                failures: BTreeMap::new(),
                waited: 0,
                never_admitted: 0,
                wall_s: 2.0,
                per_s: 1000.0,
                latency: spread(900, 4_200),
                ack_latency: spread(300, 1_000),
                server_cpu_s: Some(1.0),
                rss_before_kib: Some(10_000),
                rss_joined_kib: Some(30_000),
                rss_per_participant_bytes: Some(20_000.0 * 1024.0 / 2000.0),
                generator_rss_kib: Some(50_000),
                redis_commands_per_join: None,
                kill: None,
            }),
            signals: with_signals.then(|| Signals {
                senders: 2000,
                offered_per_s: 20_000.0,
                sent: 200_000,
                send_errors: 0,
                received: 200_000,
                delivered_per_s: 19_990.0,
                lost: 0,
                late: 0,
                sequence_gaps: 0,
                latency: spread(250, 800),
                send_lag: spread(100, 900),
                window_s: 10.1,
                server_cpu_s: Some(4.0),
                server_cpu_us_per_signal: Some(20.0),
                generator_cpu_s: Some(6.0),
                machine_busy_cores: Some(1.2),
                machine_softirq_cores: Some(0.1),
                machine_steal_cores: Some(0.0),
                unattributed_cores: Some(0.2),
                other_events: 0,
                redis_commands_per_signal: None,
            }),
            error: None,
        }
    }

    #[test]
    fn nodes_are_held_to_one_redis_command_per_signal_and_one_node_s_cpu() {
        let mut cluster = run("cluster", true);
        let signals = cluster.signals.as_mut().unwrap();
        signals.redis_commands_per_signal = Some(1.0);
        signals.server_cpu_us_per_signal = Some(27.0);
        cluster.joins.as_mut().unwrap().redis_commands_per_join = Some(6.5);
        let report = Report::new(
            Machine::detect_basic(),
            load(2000, 10.0, false),
            vec![run("wakili", true), cluster],
        );
        let find = |t: &str| report.checks.iter().find(|c| c.target == t).unwrap();
        let redis = find("≤ 1 Redis command per relayed signal");
        assert_eq!((redis.server, redis.met), ("cluster", Some(true)));
        let ratio = find("nodes' CPU per signal ≤ 1.3× one node's");
        // 27 µs against one node's 20 µs.
        assert_eq!((ratio.measured.as_str(), ratio.met), ("1.35×", Some(false)));
        assert!(
            report
                .text()
                .contains("6.50 commands per join and 1.00 per relayed signal")
        );
    }

    #[test]
    fn milliseconds_keep_three_significant_figures() {
        assert_eq!(ms(412_345), "0.412");
        assert_eq!(ms(12_345_678), "12.35");
        assert_eq!(ms(1_234_000_000), "1234");
        assert_eq!(ms(0), "0.000");
    }

    #[test]
    fn targets_follow_the_load() {
        let l = load(2000, 10.0, false);
        let c = checks(&l, &run("wakili", true));
        let find = |t: &str| c.iter().find(|c| c.target == t).unwrap();
        let p99 = find("signal p99 < 1 ms");
        assert_eq!((p99.met, p99.at_target_load), (Some(true), true));
        assert_eq!(p99.measured, "0.800 ms");
        assert_eq!(
            find("server CPU ≤ 10 µs per relayed signal").met,
            Some(false)
        );
        assert_eq!(find("join p99 < 100 ms").met, Some(true));
        assert!(!find("join p99 < 100 ms").at_target_load);
        assert_eq!(
            find("RSS < 8 KiB per joined idle participant").met,
            Some(false)
        );
        assert!(c.iter().all(|c| c.target != "signal p99 < 5 ms"));

        let c = checks(&load(2000, 25.0, false), &run("wakili", true));
        assert!(
            c.iter()
                .any(|c| c.target == "signal p99 < 5 ms" && c.met == Some(true))
        );
        assert!(
            c.iter()
                .any(|c| c.target == "no signal late or lost" && c.met == Some(true))
        );

        let c = checks(&load(18_000, 10.0, true), &run("wakili", false));
        assert!(c.iter().all(|c| !c.target.starts_with("signal")));
    }

    #[test]
    fn text_has_a_row_per_server_and_names_failures() {
        let mut failed = run("reference", false);
        failed.joins = None;
        failed.error = Some("reference exited".into());
        let report = Report::new(
            Machine::detect_basic(),
            load(2000, 10.0, false),
            vec![run("wakili", true), failed],
        );
        let text = report.text();
        let row = text
            .lines()
            .find(|l| l.starts_with("wakili "))
            .expect("a wakili row");
        for cell in [
            "1000", "0.900", "4.20", "0.250", "0.800", "19990", "20.0", "10.00",
        ] {
            assert!(row.contains(cell), "{cell} missing from {row:?}");
        }
        assert!(text.contains("reference FAILED: reference exited"));
        assert!(text.contains("signal p99 < 1 ms"));
        assert!(!report.all_ok());
        let json: serde_json::Value = serde_json::from_str(&report.json().unwrap()).unwrap();
        assert_eq!(json["results"][0]["signals"]["received"], 200_000);
    }

    #[test]
    fn a_shared_machine_is_named() {
        let mut r = run("wakili", true);
        r.machine_busy_before_cores = Some(0.9);
        let report = Report::new(Machine::detect_basic(), load(2000, 10.0, false), vec![r]);
        assert!(report.text().contains("already busy 0.90 cores"));
        let quiet = Report::new(
            Machine::detect_basic(),
            load(2000, 10.0, false),
            vec![run("wakili", true)],
        );
        assert!(!quiet.text().contains("already busy"));
        assert!(!quiet.text().contains("charged to neither"));
    }

    #[test]
    fn a_lagging_generator_is_named() {
        let mut r = run("wakili", true);
        if let Some(s) = &mut r.signals {
            s.sent = 100_000;
        }
        let report = Report::new(Machine::detect_basic(), load(2000, 10.0, false), vec![r]);
        assert!(report.text().contains("the load generator fell behind"));
    }
}
