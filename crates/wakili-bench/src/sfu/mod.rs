//! `wakili-bench sfu`: the same media load through Wakili's SFU and through Janus's VideoRoom,
//! one after the other, each a child process of this benchmark so their CPU time and memory
//! are read from /proc apart from the load generator (this process: str0m peers, one task and
//! one UDP socket each).

pub mod args;
mod janus;
mod janus_api;
mod load;
mod media;
mod peer;
mod recording;
mod report;
mod sender;
mod slow;
mod tally;
mod wakili;

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, UdpSocket},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

pub use wakili::serve;

use self::{
    args::{SfuArgs, SfuServer},
    load::RoomPeers,
    recording::RecorderCounters,
    report::{Figures, RecordingFigures, ServerRun},
    tally::{Histogram, Tally, Window},
};
use crate::{process, report::Machine};

/// Runs the benchmark and prints the report; `Ok(false)` when a server's run failed.
pub fn run(args: &SfuArgs) -> anyhow::Result<bool> {
    args.validate()?;
    let media_ip = match args.media_ip {
        Some(ip) => ip,
        None => route_ip().context(
            "found no non-loopback IPv4 address (Janus gathers no loopback candidates); pass \
             --media-ip",
        )?,
    };
    let janus = match args.servers.contains(&SfuServer::Janus) {
        true => Some(janus::ensure_installed(!args.no_install)?),
        false => None,
    };
    crate::signal::raise_open_file_limit();
    let (runtime, threads) = crate::process::client_runtime(args.client_threads)?;
    let machine = Machine::detect_basic();
    let ticks_per_s = machine.clock_ticks_per_s as f64;
    let limit = args.connect_timeout * 2
        + args.duration
        + args.settle
        + args.drain
        + Duration::from_secs(60);
    let mut results = Vec::new();
    for (i, &kind) in args.servers.iter().enumerate() {
        if i > 0 {
            std::thread::sleep(Duration::from_secs(1));
        }
        eprintln!(
            "[{}] starting: {} rooms × ({} publishers + {} subscribers), {:.0} pkt/s offered",
            kind.name(),
            args.rooms,
            args.publishers,
            args.subscribers,
            args.offered_pps()
        );
        let ip = IpAddr::V4(media_ip);
        let run = measure(kind, args, ip, janus.as_ref(), ticks_per_s);
        let outcome = runtime.block_on(async {
            tokio::time::timeout(limit, run).await.unwrap_or_else(|_| {
                bail!("not finished within {}", humantime::format_duration(limit))
            })
        });
        results.push(match outcome {
            Ok((figures, description)) => {
                eprintln!(
                    "[{}] done: {:.0} pkt/s forwarded, {:.3} % loss",
                    kind.name(),
                    figures.forwarded_pps,
                    figures.loss_percent
                );
                ServerRun {
                    server: kind.name(),
                    description,
                    figures: Some(figures),
                    error: None,
                }
            }
            Err(e) => {
                eprintln!("[{}] failed: {e:#}", kind.name());
                ServerRun {
                    server: kind.name(),
                    description: String::new(),
                    figures: None,
                    error: Some(format!("{e:#}")),
                }
            }
        });
    }
    runtime.shutdown_timeout(Duration::from_secs(1));
    let load = report::Load::new(args, media_ip.to_string(), threads);
    let report = report::Report::new(machine, janus.map(|j| j.version), load, results);
    if args.json {
        println!("{}", report.json()?);
    } else {
        print!("{}", report.text());
    }
    Ok(report.all_ok())
}

/// The address the kernel would use towards the internet (nothing is sent).
fn route_ip() -> Option<Ipv4Addr> {
    let socket = UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("8.8.8.8:80").ok()?;
    match socket.local_addr().ok()?.ip() {
        IpAddr::V4(ip) if !ip.is_unspecified() && !ip.is_loopback() => Some(ip),
        _ => None,
    }
}

/// One server: start it, load it, measure the window; everything is stopped on return.
async fn measure(
    kind: SfuServer,
    args: &SfuArgs,
    ip: IpAddr,
    janus: Option<&janus::Installation>,
    ticks_per_s: f64,
) -> anyhow::Result<(Figures, String)> {
    let dir = tempfile::Builder::new()
        .prefix("wakili-bench-sfu-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let window = Arc::new(Window::default());
    let probe = Probe { ticks_per_s };
    match kind {
        SfuServer::Wakili | SfuServer::WakiliRecord => {
            let record = kind == SfuServer::WakiliRecord;
            let max_participants = args.publishers + args.subscribers;
            let (mut process, sfu, offers) = wakili::WakiliSfu::start(
                ip,
                max_participants,
                args.wakili_no_bwe,
                record,
                dir.path(),
            )
            .await?;
            let sfu = Arc::new(sfu);
            let pid = process.pid();
            let idle = probe.idle(pid).await?;
            let started = Instant::now();
            // A recorded room is a booked consultation, named by its id as the server names it.
            let mut names = Vec::new();
            for r in 0..args.rooms {
                names.push(if record {
                    sfu.book().await.context("booking a consultation")?
                } else {
                    format!("r{r}")
                });
            }
            let (rooms, router) =
                load::join_wakili(args, &sfu, offers, ip, &window, &names).await?;
            let expected_tracks = u64::from(args.rooms * args.publishers * 2);
            if record {
                let (publishers, subscribers) = load::participant_names(args);
                for room in &names {
                    sfu.record(room, publishers.clone(), subscribers.clone())
                        .await
                        .with_context(|| format!("recording {room}"))?;
                }
                wait_recording(&sfu, expected_tracks, args.connect_timeout).await?;
            }
            let measured = measure_window(
                args,
                &probe,
                pid,
                rooms,
                &window,
                idle,
                started,
                Some(&*sfu),
            )
            .await;
            let counters = sfu.counters().await.ok();
            router.abort();
            let (mut figures, recorder_window) = measured?;
            figures.send_failures = counters.map(|c| c.send_failures);
            if record {
                let (before, after) = recorder_window.context("no recorder counters")?;
                let drained = counters
                    .and_then(|c| c.recorder)
                    .context("no recorder counters after the load")?;
                let (sessions, last) = sfu.finish(args.record_grace).await.with_context(|| {
                    format!(
                        "finishing the recordings:{}",
                        process::log_tail(&sfu.log, 15)
                    )
                })?;
                let finalized = recording::verify(
                    &sessions,
                    names.len(),
                    (args.publishers * 2) as usize,
                )
                .with_context(|| {
                    format!(
                        "the recordings in storage (the recorder after the load: {drained:?}):{}",
                        process::log_tail(&sfu.log, 15)
                    )
                })?;
                figures.recording = Some(RecordingFigures::new(
                    &before,
                    &after,
                    &drained,
                    &last,
                    finalized,
                    figures.window_s,
                ));
            }
            process
                .ensure_running()
                .with_context(|| format!("during the load:{}", process::log_tail(&sfu.log, 15)))?;
            Ok((figures, sfu.command_line.clone()))
        }
        SfuServer::Janus => {
            let janus = janus.context("Janus is not installed")?;
            let settings = janus::Settings {
                http_port: process::free_port()?,
                media_ip: match ip {
                    IpAddr::V4(ip) => ip,
                    IpAddr::V6(_) => bail!("Janus is configured for IPv4 here"),
                },
                debug_level: args.janus_debug_level,
            };
            let conf = janus::write_config(dir.path(), janus, &settings)?;
            let mut server = janus::start(janus, &conf, &settings).await?;
            let pid = server.process.pid();
            let api = janus_api::JanusApi::connect(&server.url).await?;
            let idle = probe.idle(pid).await?;
            let started = Instant::now();
            let rooms = load::join_janus(args, &api, ip, &window)
                .await
                .with_context(|| {
                    format!("janus's last output:{}", process::log_tail(&server.log, 10))
                })?;
            let (figures, _) =
                measure_window(args, &probe, pid, rooms, &window, idle, started, None).await?;
            server.process.ensure_running().with_context(|| {
                format!("during the load:{}", process::log_tail(&server.log, 15))
            })?;
            Ok((
                figures,
                format!("{} ({})", server.command_line, janus.version),
            ))
        }
    }
}

/// The server before the load.
#[derive(Debug, Clone, Copy)]
struct Idle {
    rss_kib: u64,
    busy_cores: f64,
}

/// Reads /proc for the server and this process.
struct Probe {
    ticks_per_s: f64,
}

impl Probe {
    /// VmRSS in KiB of the started, idle server, and the cores busy machine-wide over one
    /// second meanwhile (other processes competing for the machine).
    async fn idle(&self, pid: u32) -> anyhow::Result<Idle> {
        let before = self.cpu(pid)?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let after = self.cpu(pid)?;
        Ok(Idle {
            rss_kib: process::memory(pid)?.current_kib,
            busy_cores: after[2] - before[2],
        })
    }

    /// Server CPU, own CPU, machine busy; seconds.
    fn cpu(&self, pid: u32) -> anyhow::Result<[f64; 3]> {
        let s = |ticks: u64| ticks as f64 / self.ticks_per_s;
        Ok([
            s(process::cpu_ticks(pid)?),
            s(process::cpu_ticks(std::process::id())?),
            s(process::machine_ticks()?.busy),
        ])
    }
}

/// Waits until the recorder has a file open for each of the `expected` published tracks.
async fn wait_recording(
    sfu: &wakili::WakiliSfu,
    expected: u64,
    limit: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let open = sfu
            .counters()
            .await?
            .recorder
            .map_or(0, |r| r.active_tracks);
        if open >= expected {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "the recorder opened {open} of {expected} tracks within {} (--connect-timeout):{}",
                humantime::format_duration(limit),
                process::log_tail(&sfu.log, 15)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until everyone receives, measures the window, stops the peers and counts. With
/// Wakili's `sfu`, its recorder's counters at the window's opening and closing too.
#[allow(clippy::too_many_arguments)]
async fn measure_window(
    args: &SfuArgs,
    probe: &Probe,
    pid: u32,
    rooms: Vec<RoomPeers>,
    window: &Window,
    idle: Idle,
    started: Instant,
    sfu: Option<&wakili::WakiliSfu>,
) -> anyhow::Result<(Figures, Option<(RecorderCounters, RecorderCounters)>)> {
    load::wait_receiving(&rooms, args.layer.index(), args.connect_timeout).await?;
    let setup_s = started.elapsed().as_secs_f64();
    tokio::time::sleep(args.settle).await;
    let recorder = async || match sfu {
        Some(sfu) => Ok::<_, anyhow::Error>(sfu.counters().await?.recorder),
        None => Ok(None),
    };
    let recorder_before = recorder().await?;
    let before = probe.cpu(pid)?;
    let opened = Instant::now();
    window.open(opened);
    tokio::time::sleep(args.duration).await;
    let closed = Instant::now();
    window.close(closed);
    let after = probe.cpu(pid)?;
    let recorder_after = recorder().await?;
    let loaded_kib = process::memory(pid)?.current_kib;
    tokio::time::sleep(args.drain).await;
    let window_s = (closed - opened).as_secs_f64();

    let layer = args.layer.index();
    let mut sent: HashMap<u16, u64> = HashMap::new();
    let mut subscribers: Vec<(Vec<u16>, Tally)> = Vec::new();
    let mut keyframe_requests = 0;
    for room in rooms {
        let expected = room.expected_streams(layer);
        for (_, publisher) in room.publishers {
            let tally = publisher.stop().await;
            keyframe_requests += tally.keyframe_requests;
            for (stream, n) in tally.sent {
                *sent.entry(stream).or_default() += n;
            }
        }
        for subscriber in room.subscribers {
            subscribers.push((expected.clone(), subscriber.stop().await));
        }
    }
    let (mut expected_packets, mut received_packets, mut unexpected, mut duplicates) = (0, 0, 0, 0);
    let (mut latency, mut arrival) = (Histogram::default(), Histogram::default());
    for (streams, tally) in &subscribers {
        for stream in streams {
            let sent = sent.get(stream).copied().unwrap_or(0);
            expected_packets += sent;
            received_packets += tally.received.get(stream).map_or(0, |s| s.len().min(sent));
        }
        unexpected += tally
            .received
            .iter()
            .filter(|(stream, _)| !streams.contains(stream))
            .map(|(_, s)| s.len())
            .sum::<u64>();
        duplicates += tally.duplicates;
        latency.merge(&tally.latency);
        arrival.merge(&tally.arrival);
    }
    let quantile_ms = |h: &Histogram, q: f64| h.quantile(q).map(|us| us as f64 / 1000.0);
    let ms = |q: f64| quantile_ms(&latency, q);
    let server_cpu_s = after[0] - before[0];
    let count = args.total_subscribers() as f64;
    let figures = Figures {
        setup_s,
        window_s,
        expected_packets,
        received_packets,
        forwarded_pps: received_packets as f64 / window_s,
        loss_percent: if expected_packets == 0 {
            100.0
        } else {
            (expected_packets - received_packets) as f64 / expected_packets as f64 * 100.0
        },
        duplicates,
        unexpected_packets: unexpected,
        latency_p50_ms: ms(0.5),
        latency_p99_ms: ms(0.99),
        latency_max_ms: (latency.count() > 0).then(|| latency.max() as f64 / 1000.0),
        arrival_p50_ms: quantile_ms(&arrival, 0.5),
        arrival_p99_ms: quantile_ms(&arrival, 0.99),
        slow: slow::summarize(subscribers.iter().map(|(_, t)| &t.slow), window.start_us()),
        server_cpu_s,
        cpu_us_per_packet: (received_packets > 0)
            .then(|| server_cpu_s * 1e6 / received_packets as f64),
        server_cpu_percent: server_cpu_s / window_s * 100.0,
        rss_idle_mib: idle.rss_kib as f64 / 1024.0,
        rss_loaded_mib: loaded_kib as f64 / 1024.0,
        rss_per_subscriber_kib: loaded_kib.saturating_sub(idle.rss_kib) as f64 / count,
        machine_busy_before_cores: idle.busy_cores,
        generator_cpu_percent: (after[1] - before[1]) / window_s * 100.0,
        machine_busy_cores: (after[2] - before[2]) / window_s,
        keyframe_requests,
        send_failures: None,
        recording: None,
    };
    Ok((figures, recorder_before.zip(recorder_after)))
}
