//! `wakili-bench signal`: the same signaling load through `wakili serve` and through a bare
//! socketioxide relay, one after the other, each started as a child process of this benchmark.

mod load;
pub mod reference;
mod report;
pub mod target;

use anyhow::{Context, bail};

use crate::{
    cli::{SignalArgs, SignalServer},
    process,
    report::Machine,
    servers,
};

/// Open files needed besides one socket per participant (HTTP, logs, /proc reads).
const SPARE_FILES: u64 = 256;

/// Raises this process's soft open-file limit to the hard limit; returns the new soft limit.
/// Child processes (the servers) inherit it.
pub fn raise_open_file_limit() -> Option<u64> {
    rlimit::increase_nofile_limit(u64::MAX).ok()
}

/// Reads the child servers' CPU time and memory from /proc (summed over the nodes, and the
/// Redis they share), and Redis's command count.
struct ProcProbe {
    /// The server processes; empty when not this benchmark's children.
    pids: Vec<u32>,
    /// The first node was killed (its pid is no longer read).
    killed: std::sync::atomic::AtomicBool,
    ticks_per_s: f64,
    /// The nodes' shared Redis, with its server's pid.
    redis: Option<SharedRedis>,
}

impl ProcProbe {
    fn server_pids(&self) -> Option<Vec<u32>> {
        if self.pids.is_empty() {
            return None;
        }
        let mut pids = self.pids.clone();
        if self.killed.load(std::sync::atomic::Ordering::Relaxed) {
            pids.remove(0);
        }
        pids.extend(self.redis.as_ref().and_then(|r| r.pid));
        Some(pids)
    }
}

impl load::Probe for ProcProbe {
    fn kill_first_node(&self) -> bool {
        let Some(&pid) = self.pids.first().filter(|_| self.pids.len() > 1) else {
            return false;
        };
        let killed = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        self.killed
            .store(killed, std::sync::atomic::Ordering::Relaxed);
        killed
    }

    fn server_cpu_s(&self) -> Option<f64> {
        let mut ticks = 0;
        for pid in self.server_pids()? {
            ticks += process::cpu_ticks(pid).ok()?;
        }
        Some(ticks as f64 / self.ticks_per_s)
    }

    fn server_rss_kib(&self) -> Option<u64> {
        let mut kib = 0;
        for pid in self.server_pids()? {
            kib += process::memory(pid).ok()?.current_kib;
        }
        Some(kib)
    }

    fn redis_commands(&self) -> Option<u64> {
        self.redis.as_ref()?.commands().ok()
    }

    fn own_cpu_s(&self) -> Option<f64> {
        let ticks = process::cpu_ticks(std::process::id()).ok()?;
        Some(ticks as f64 / self.ticks_per_s)
    }

    fn own_rss_kib(&self) -> Option<u64> {
        Some(process::memory(std::process::id()).ok()?.current_kib)
    }

    fn machine_cpu_s(&self) -> Option<load::MachineCpu> {
        let t = process::machine_ticks().ok()?;
        Some(load::MachineCpu {
            busy: t.busy as f64 / self.ticks_per_s,
            softirq: t.softirq as f64 / self.ticks_per_s,
            steal: t.steal as f64 / self.ticks_per_s,
        })
    }
}

/// Runs the benchmark and prints the report; `Ok(false)` when a server's run failed.
pub fn run(args: &SignalArgs) -> anyhow::Result<bool> {
    let args = &args.resolved();
    args.validate()?;
    let open_files = raise_open_file_limit();
    if let Some(limit) = open_files
        && limit < args.participants() + SPARE_FILES
    {
        bail!(
            "{} participants need about {} open files, but the limit is {limit} (hard limit \
             included); raise it (`ulimit -Hn`, /etc/security/limits.conf) or use fewer --pairs",
            args.participants(),
            args.participants() + SPARE_FILES
        );
    }
    if args.servers.iter().any(|&s| s != SignalServer::Reference) && args.url.is_none() {
        servers::locate_wakili(args.wakili_bin.as_deref())?;
    }
    let (runtime, threads) = crate::process::client_runtime(args.client_threads)?;
    let machine = Machine::detect_basic();
    let ticks_per_s = machine.clock_ticks_per_s as f64;
    let mut results = Vec::new();
    for (i, &kind) in args.servers.iter().enumerate() {
        if i > 0 {
            // Let the previous server's sockets go.
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
        eprintln!(
            "[{}] starting; the run takes about {:.0} s (limit {})",
            kind.name(),
            args.expected_run_secs(),
            humantime::format_duration(args.timeout)
        );
        let outcome = runtime.block_on(async {
            tokio::time::timeout(args.timeout, measure(kind, args, threads, ticks_per_s))
                .await
                .unwrap_or_else(|_| {
                    Err(anyhow::anyhow!(
                        "not finished within --timeout {}",
                        humantime::format_duration(args.timeout)
                    ))
                })
        });
        let run = match outcome {
            Ok(run) => {
                eprintln!("[{}] done", kind.name());
                run
            }
            Err(e) => {
                eprintln!("[{}] failed: {e:#}", kind.name());
                report::ServerRun {
                    server: kind.name(),
                    description: String::new(),
                    measured_process: false,
                    machine_busy_before_cores: None,
                    booking: None,
                    joins: None,
                    signals: None,
                    error: Some(format!("{e:#}")),
                }
            }
        };
        results.push(run);
    }
    // Connections are closed and the servers gone; nothing may linger past this point.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    let report = report::Report::new(
        machine,
        report::Load::new(args, threads, open_files),
        results,
    );
    if args.json {
        println!("{}", report.json()?);
    } else {
        print!("{}", report.text());
    }
    Ok(report.all_ok())
}

/// One server: start it, prepare, load it, read the figures; it is killed on return.
async fn measure(
    kind: SignalServer,
    args: &SignalArgs,
    pacers: usize,
    ticks_per_s: f64,
) -> anyhow::Result<report::ServerRun> {
    let mut nodes = start_nodes(kind, args).await?;
    let urls: Vec<String> = nodes.iter().map(|n| n.url.clone()).collect();
    eprintln!(
        "[{}] ready at {}; preparing {} consultations",
        kind.name(),
        urls.join(", "),
        args.pairs
    );
    let (tokens, consultations, booking) = nodes[0].prepare(args.pairs).await?;
    eprintln!(
        "[{}] joining {} participants at {}/s",
        kind.name(),
        args.participants(),
        args.join_rate
    );
    let redis = match kind {
        SignalServer::Cluster => Some(SharedRedis::connect(&args.redis_url)?),
        _ => None,
    };
    let probe = ProcProbe {
        pids: nodes.iter().filter_map(target::Target::pid).collect(),
        killed: false.into(),
        ticks_per_s,
        redis,
    };
    let busy_before = busy_cores(&probe, &mut nodes).await?;
    let plan = load::Plan {
        urls,
        same_node: args.same_node,
        tokens,
        consultations,
    };
    let shape = load::Shape {
        join_rate: args.join_rate,
        rate: args.rate,
        duration: args.duration,
        payload_bytes: args.payload_bytes,
        late: args.late,
        drain: args.drain,
        settle: args.settle,
        idle: args.idle,
        pacers,
        kill_node: args.kill_node && kind == SignalServer::Cluster,
    };
    let (joins, signals) = load::run(plan, &shape, &probe).await;
    let killed = usize::from(probe.killed.load(std::sync::atomic::Ordering::Relaxed));
    // A node `--kill-node` killed on purpose is not a failure (it is the first).
    let error = nodes
        .iter_mut()
        .skip(killed)
        .find_map(|n| n.ensure_running().err())
        .map(|e| format!("{:#}", e.context("during the load")));
    let description = match nodes.as_slice() {
        [one] => one.description.clone(),
        [first, ..] => format!(
            "{} nodes{} sharing {} (Redis pid {}), each: {}",
            nodes.len(),
            if args.same_node {
                " (each pair on one node)"
            } else {
                ""
            },
            args.redis_url,
            probe
                .redis
                .as_ref()
                .and_then(|r| r.pid)
                .map_or("unknown".into(), |p| p.to_string()),
            first.description
        ),
        [] => String::new(),
    };
    Ok(report::ServerRun {
        server: kind.name(),
        description,
        measured_process: !probe.pids.is_empty(),
        machine_busy_before_cores: busy_before,
        booking,
        joins: Some(joins),
        signals,
        error,
    })
}

/// Starts `kind`: one server, or `--nodes` Wakili nodes sharing the first one's secrets, the
/// database and Redis.
async fn start_nodes(kind: SignalServer, args: &SignalArgs) -> anyhow::Result<Vec<target::Target>> {
    let mut launch = target::Launch::signal(args);
    if kind != SignalServer::Cluster {
        return Ok(vec![target::start(kind, &launch).await?]);
    }
    launch.redis_url = Some(&args.redis_url);
    launch.worker_threads = Some(args.node_threads.unwrap_or_else(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        (cores / usize::from(args.nodes.max(1))).max(1) as u32
    }));
    let first = target::start(kind, &launch).await?;
    let secrets = first
        .data_dir
        .as_ref()
        .map(|d| d.join("secrets"))
        .context("the first node has no data directory")?;
    let mut nodes = vec![first];
    launch.secrets_from = Some(&secrets);
    for _ in 1..args.nodes {
        nodes.push(target::start(kind, &launch).await?);
    }
    Ok(nodes)
}

/// The Redis the nodes share: its command count (`INFO commandstats`) and server pid.
struct SharedRedis {
    conn: std::sync::Mutex<redis::Connection>,
    /// `process_id` from `INFO server`, when it runs on this machine.
    pid: Option<u32>,
}

impl SharedRedis {
    fn connect(url: &str) -> anyhow::Result<Self> {
        let mut conn = redis::Client::open(url)
            .and_then(|c| c.get_connection())
            .with_context(|| format!("cannot reach Redis at {url}"))?;
        let server: String = redis::cmd("INFO").arg("server").query(&mut conn)?;
        let pid = info_field(&server, "process_id").and_then(|p| p.parse().ok());
        // Only a local Redis's CPU can be read.
        let local = url.contains("127.0.0.1") || url.contains("localhost");
        Ok(Self {
            conn: std::sync::Mutex::new(conn),
            pid: pid.filter(|_| local),
        })
    }

    /// Commands executed so far (the sum of `calls` over `INFO commandstats`).
    fn commands(&self) -> anyhow::Result<u64> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let stats: String = redis::cmd("INFO").arg("commandstats").query(&mut *conn)?;
        Ok(commandstats_calls(&stats))
    }
}

/// The value of `field` in an `INFO` reply.
fn info_field<'a>(info: &'a str, field: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(str::trim)
}

/// The sum of `calls=` over the lines of `INFO commandstats`, minus the `INFO` calls (the
/// probe's own).
fn commandstats_calls(stats: &str) -> u64 {
    stats
        .lines()
        .filter(|l| l.starts_with("cmdstat_") && !l.starts_with("cmdstat_info:"))
        .filter_map(|l| {
            l.split_once("calls=")?
                .1
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// Cores busy over one second with the server idle: other processes competing for the machine.
async fn busy_cores(
    probe: &ProcProbe,
    nodes: &mut [target::Target],
) -> anyhow::Result<Option<f64>> {
    use load::Probe;
    let before = probe.machine_cpu_s();
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    for node in nodes {
        node.ensure_running()?;
    }
    Ok(probe
        .machine_cpu_s()
        .zip(before)
        .map(|(a, b)| a.busy - b.busy))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_summed_over_commandstats_without_the_probe_s_own() {
        let stats = "# Commandstats\r\ncmdstat_publish:calls=300,usec=900,usec_per_call=3.00,rejected_calls=0,failed_calls=0\r\ncmdstat_evalsha:calls=12,usec=100,usec_per_call=8.33\r\ncmdstat_info:calls=7,usec=70\r\n";
        assert_eq!(commandstats_calls(stats), 312);
        let server = "# Server\r\nredis_version:7.0.15\r\nprocess_id:4242\r\n";
        assert_eq!(info_field(server, "process_id"), Some("4242"));
    }
}
