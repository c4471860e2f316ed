//! `wakili-bench turn`: the same load through each TURN server in turn.

use std::{
    net::UdpSocket,
    path::Path,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

use crate::{
    cli::{Mode, ServerKind, TurnArgs},
    process::{self, ChildGuard},
    report::{Load, Machine, Measurement, Report, ServerResult},
    servers, uclient,
};

/// Runs the benchmark and prints the report; `Ok(false)` when a server's run failed.
pub fn run(args: &TurnArgs) -> anyhow::Result<bool> {
    args.validate()?;
    check_tools(args)?;
    let machine = Machine::detect();
    let ticks_per_s = machine.clock_ticks_per_s as f64;
    let load = Load::new(args, servers::relay_threads(args));
    let mut results = Vec::new();
    for (i, &kind) in args.servers.iter().enumerate() {
        if i > 0 {
            // Let the previous server's sockets and memory go.
            thread::sleep(Duration::from_secs(1));
        }
        eprintln!(
            "[{}] starting; the run takes about {:.0} s (limit {})",
            kind.name(),
            args.expected_run_secs(),
            humantime::format_duration(args.timeout)
        );
        let result = measure(kind, args, ticks_per_s);
        match &result {
            Ok(m) => eprintln!(
                "[{}] done: {:.0} pkt/s delivered, {:.2} % loss",
                kind.name(),
                m.steady_delivered_pps,
                m.loss_percent
            ),
            Err(e) => eprintln!("[{}] failed: {e:#}", kind.name()),
        }
        let (measurement, error) = match result {
            Ok(m) => (Some(m), None),
            Err(e) => (None, Some(format!("{e:#}"))),
        };
        results.push(ServerResult {
            server: kind.name(),
            measurement,
            error,
        });
    }
    let report = Report::new(machine, load, results);
    if args.json {
        println!("{}", report.json()?);
    } else {
        print!("{}", report.text());
    }
    Ok(report.all_ok())
}

fn check_tools(args: &TurnArgs) -> anyhow::Result<()> {
    let mut needed = vec!["turnutils_uclient"];
    if args.servers.contains(&ServerKind::Coturn) {
        needed.push("turnserver");
    }
    if args.mode == Mode::Peer {
        needed.push("turnutils_peer");
    }
    let missing: Vec<&str> = needed
        .into_iter()
        .filter(|tool| process::find_in_path(tool).is_none())
        .collect();
    if !missing.is_empty() {
        bail!(
            "{} not found in PATH; they come with coturn: `apt-get install -y coturn` \
             (as root; the service need not run)",
            missing.join(", ")
        );
    }
    if args.servers.contains(&ServerKind::Embedded) && args.embedded_cmd.is_none() {
        servers::wakili_binary(args)?;
    }
    Ok(())
}

/// One server: start it, load it, read the figures; everything it started is killed on return.
fn measure(kind: ServerKind, args: &TurnArgs, ticks_per_s: f64) -> anyhow::Result<Measurement> {
    let deadline = Instant::now() + args.timeout;
    let dir = tempfile::Builder::new()
        .prefix("wakili-bench-turn-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let secret = servers::new_secret();
    let mut server = servers::start(kind, args, &secret, dir.path())?;
    let peer = match args.mode {
        Mode::Peer => Some(start_peer(dir.path(), deadline)?),
        Mode::C2c => None,
    };
    servers::wait_ready(&mut server, args.transport, deadline)?;

    let pid = server.process.pid();
    let command = uclient::command(args, server.port, &secret, peer.as_ref().map(|p| p.1));
    let cpu_before = process::cpu_ticks(pid)?;
    let output = uclient::run(command, pid, deadline).map_err(|e| {
        let server_state = match server.process.exited() {
            Ok(Some(status)) => format!(
                "\n  {} had exited ({status}); its last output:{}",
                kind.name(),
                process::log_tail(&server.log, 15)
            ),
            _ => String::new(),
        };
        e.context(format!("load on {} failed{server_state}", kind.name()))
    })?;
    server.process.ensure_running().with_context(|| {
        format!(
            "during the load; its last output:{}",
            process::log_tail(&server.log, 15)
        )
    })?;
    let cpu_after = process::cpu_ticks(pid)?;
    let memory = process::memory(pid)?;

    let report = uclient::parse(&output.lines)?;
    let steady = report.steady(args.send_secs())?;
    let server_cpu_s = cpu_after.saturating_sub(cpu_before) as f64 / ticks_per_s;
    let received = report.received.min(report.sent);
    Ok(Measurement {
        command: server.command_line.clone(),
        setup_s: report.connected_at,
        steady_window_s: steady.secs,
        steady_sent_pps: steady.sent_pps,
        steady_delivered_pps: steady.received_pps,
        steady_server_cpu_percent: steady
            .server_ticks
            .map(|t| t as f64 / ticks_per_s / steady.secs * 100.0),
        sent_packets: report.sent,
        received_packets: report.received,
        lost_packets: report.lost,
        send_dropped: report.send_dropped,
        loss_percent: if report.sent == 0 {
            0.0
        } else {
            report.lost as f64 / report.sent as f64 * 100.0
        },
        load_s: output.wall_secs,
        server_cpu_s,
        cpu_s_per_mpkt: (received > 0).then(|| server_cpu_s / (received as f64 / 1e6)),
        rss_peak_mib: memory.peak_kib as f64 / 1024.0,
        rss_end_mib: memory.current_kib as f64 / 1024.0,
        generator_cpu_s: output.generator_ticks.map(|t| t as f64 / ticks_per_s),
    })
}

/// Starts `turnutils_peer`, a UDP echo, on a free port and waits until it echoes.
fn start_peer(dir: &Path, deadline: Instant) -> anyhow::Result<(ChildGuard, u16)> {
    let port = process::free_port()?;
    let log = std::fs::File::create(dir.join("peer.log"))?;
    let mut command = Command::new("turnutils_peer");
    command
        .args(["-L", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log));
    let mut peer = ChildGuard::spawn("turnutils_peer", &mut command)?;
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.set_read_timeout(Some(Duration::from_millis(200)))?;
    let limit = deadline.min(Instant::now() + Duration::from_secs(10));
    let mut buf = [0u8; 64];
    loop {
        peer.ensure_running()?;
        socket.send_to(b"wakili-bench", ("127.0.0.1", port))?;
        if socket.recv_from(&mut buf).is_ok() {
            return Ok((peer, port));
        }
        if Instant::now() >= limit {
            bail!("turnutils_peer did not echo on 127.0.0.1:{port} within 10 s");
        }
    }
}
