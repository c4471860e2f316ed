//! `wakili-bench signal`: the same signaling load through `wakili serve` and through a bare
//! socketioxide relay, one after the other, each started as a child process of this benchmark.

mod load;
pub mod reference;
mod report;
pub mod target;

use anyhow::bail;

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

/// Reads a child server's CPU time and memory from /proc.
struct ProcProbe {
    pid: Option<u32>,
    ticks_per_s: f64,
}

impl load::Probe for ProcProbe {
    fn server_cpu_s(&self) -> Option<f64> {
        let ticks = process::cpu_ticks(self.pid?).ok()?;
        Some(ticks as f64 / self.ticks_per_s)
    }

    fn server_rss_kib(&self) -> Option<u64> {
        Some(process::memory(self.pid?).ok()?.current_kib)
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
    if args.servers.contains(&SignalServer::Wakili) && args.url.is_none() {
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
    let mut target = target::start(kind, &target::Launch::signal(args)).await?;
    eprintln!(
        "[{}] ready at {}; preparing {} consultations",
        kind.name(),
        target.url,
        args.pairs
    );
    let (tokens, consultations) = target.prepare(args.pairs).await?;
    eprintln!(
        "[{}] joining {} participants at {}/s",
        kind.name(),
        args.participants(),
        args.join_rate
    );
    let probe = ProcProbe {
        pid: target.pid(),
        ticks_per_s,
    };
    let busy_before = busy_cores(&probe, &mut target).await?;
    let plan = load::Plan {
        url: target.url.clone(),
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
    };
    let (joins, signals) = load::run(plan, &shape, &probe).await;
    let error = target
        .ensure_running()
        .err()
        .map(|e| format!("{:#}", e.context("during the load")));
    Ok(report::ServerRun {
        server: kind.name(),
        description: target.description.clone(),
        measured_process: target.pid().is_some(),
        machine_busy_before_cores: busy_before,
        joins: Some(joins),
        signals,
        error,
    })
}

/// Cores busy over one second with the server idle: other processes competing for the machine.
async fn busy_cores(probe: &ProcProbe, target: &mut target::Target) -> anyhow::Result<Option<f64>> {
    use load::Probe;
    let before = probe.machine_cpu_s();
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    target.ensure_running()?;
    Ok(probe
        .machine_cpu_s()
        .zip(before)
        .map(|(a, b)| a.busy - b.busy))
}
