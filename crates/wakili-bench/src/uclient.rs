//! The load generator, coturn's `turnutils_uclient`: its command line, running it under a
//! deadline, and reading its report.
//!
//! uclient prints, once a second, `start_mclient: msz=…, tot_send_msgs=S, tot_recv_msgs=R, …`,
//! and at the end `start_mclient: tot_send_msgs=S, tot_recv_msgs=R` and
//! `Total lost packets L (p%), total send dropped D (q%)`. Lines are flushed as written, so the
//! benchmark timestamps them itself on arrival.

use std::{
    io::{BufRead, BufReader, Read},
    process::{Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

use crate::{
    cli::{Mode, RAMP_SECS, Transport, TurnArgs},
    process::{self, ChildGuard},
};

/// TURN user name; uclient prefixes it with an expiry time for REST credentials.
const USER: &str = "wakili-bench";

/// One output line of uclient.
#[derive(Debug, Clone)]
pub struct Line {
    /// Seconds since uclient started.
    pub at: f64,
    /// The text.
    pub text: String,
    /// The server's CPU ticks when the line arrived.
    pub server_ticks: Option<u64>,
}

/// What one uclient run printed, and its own CPU use.
#[derive(Debug)]
pub struct Output {
    /// All lines, stdout and stderr, in arrival order.
    pub lines: Vec<Line>,
    /// uclient's CPU ticks over its life.
    pub generator_ticks: Option<u64>,
    /// Wall-clock seconds uclient ran.
    pub wall_secs: f64,
}

/// The uclient command for `args` against 127.0.0.1:`port`.
pub fn command(args: &TurnArgs, port: u16, secret: &str, peer_port: Option<u16>) -> Command {
    let mut command = Command::new("turnutils_uclient");
    // -c: no RTCP companion sessions, so -m counts the sessions that send.
    command.arg("-c");
    match (args.mode, peer_port) {
        (Mode::Peer, Some(peer)) => {
            command.args(["-e", "127.0.0.1", "-r", &peer.to_string()]);
        }
        _ => {
            command.arg("-y");
        }
    }
    if args.transport == Transport::Tcp {
        command.arg("-t");
    }
    command
        .args(["-m", &args.clients.to_string()])
        .args(["-n", &args.messages.to_string()])
        .args(["-l", &args.size.to_string()])
        .args(["-z", &args.interval_ms.to_string()])
        .args(["-u", USER, "-W", secret])
        .args(["-p", &port.to_string()])
        .arg("127.0.0.1");
    command
}

/// Runs uclient to its end, sampling the server's CPU at every line; kills it at `deadline`.
pub fn run(mut command: Command, server_pid: u32, deadline: Instant) -> anyhow::Result<Output> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = ChildGuard::spawn("turnutils_uclient", &mut command)?;
    let (sender, receiver) = mpsc::channel();
    let (stdout, stderr) = child.take_output();
    let pipes: [Option<Box<dyn Read + Send>>; 2] = [
        stdout.map(|p| Box::new(p) as Box<dyn Read + Send>),
        stderr.map(|p| Box::new(p) as Box<dyn Read + Send>),
    ];
    for pipe in pipes.into_iter().flatten() {
        let sender = sender.clone();
        thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if sender.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
    }
    drop(sender);

    let mut lines = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match receiver.recv_timeout(left.max(Duration::from_millis(1))) {
            Ok((at, text)) => lines.push(Line {
                at: at.duration_since(started).as_secs_f64(),
                text,
                server_ticks: process::cpu_ticks(server_pid).ok(),
            }),
            // Both pipes closed: uclient has ended.
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => bail!(
                "turnutils_uclient still running at the --timeout; killed it{}",
                tail(&lines)
            ),
        }
    }
    // Read before reaping: a zombie still shows its CPU time.
    let generator_ticks = process::cpu_ticks(child.pid()).ok();
    let status = loop {
        if let Some(status) = child.exited()? {
            break status;
        }
        if Instant::now() >= deadline {
            bail!("turnutils_uclient closed its output but did not exit; killed it");
        }
        thread::sleep(Duration::from_millis(10));
    };
    if !status.success() {
        bail!("turnutils_uclient failed ({status}){}", tail(&lines));
    }
    Ok(Output {
        lines,
        generator_ticks,
        wall_secs: started.elapsed().as_secs_f64(),
    })
}

fn tail(lines: &[Line]) -> String {
    if lines.is_empty() {
        return "; it printed nothing".into();
    }
    let last: String = lines[lines.len().saturating_sub(8)..]
        .iter()
        .map(|l| format!("\n    | {}", l.text))
        .collect();
    format!("; its last output:{last}")
}

/// A once-a-second progress line.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Seconds since uclient started.
    pub at: f64,
    /// Packets sent so far.
    pub sent: u64,
    /// Packets received so far.
    pub received: u64,
    /// Server CPU ticks at that moment.
    pub server_ticks: Option<u64>,
}

/// uclient's report of a run.
#[derive(Debug)]
pub struct Report {
    /// When sessions were set up and the sending schedule started (seconds since uclient started).
    pub connected_at: f64,
    /// Packets sent.
    pub sent: u64,
    /// Packets received.
    pub received: u64,
    /// Packets lost, as uclient counts them: sent − received.
    pub lost: u64,
    /// Packets uclient could not send (socket buffer full).
    pub send_dropped: u64,
    /// The progress lines.
    pub samples: Vec<Sample>,
}

/// Reads uclient's output.
pub fn parse(lines: &[Line]) -> anyhow::Result<Report> {
    let missing = |what: &str| format!("turnutils_uclient printed no {what:?} line");
    let connected_at = lines
        .iter()
        .find(|l| l.text.contains("Total connect time"))
        .map(|l| l.at)
        .with_context(|| missing("Total connect time"))?;
    let samples = lines
        .iter()
        .filter(|l| l.text.contains("start_mclient: msz="))
        .filter_map(|l| {
            Some(Sample {
                at: l.at,
                sent: number_after(&l.text, "tot_send_msgs=")?,
                received: number_after(&l.text, "tot_recv_msgs=")?,
                server_ticks: l.server_ticks,
            })
        })
        .collect();
    let totals = lines
        .iter()
        .rev()
        .find(|l| l.text.contains("start_mclient: tot_send_msgs="))
        .with_context(|| missing("start_mclient: tot_send_msgs="))?;
    let loss = lines
        .iter()
        .rev()
        .find(|l| l.text.contains("Total lost packets"))
        .with_context(|| missing("Total lost packets"))?;
    let number = |line: &Line, key: &str| {
        number_after(&line.text, key).with_context(|| {
            format!(
                "turnutils_uclient: no number after {key:?} in {:?}",
                line.text
            )
        })
    };
    Ok(Report {
        connected_at,
        sent: number(totals, "tot_send_msgs=")?,
        received: number(totals, "tot_recv_msgs=")?,
        lost: number(loss, "Total lost packets ")?,
        send_dropped: number(loss, "total send dropped ")?,
        samples,
    })
}

fn number_after(text: &str, key: &str) -> Option<u64> {
    let rest = &text[text.find(key)? + key.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Rates over the steady window, when every session is sending.
#[derive(Debug, Clone, Copy)]
pub struct Steady {
    /// Window length in seconds.
    pub secs: f64,
    /// Packets per second uclient sent.
    pub sent_pps: f64,
    /// Packets per second uclient received.
    pub received_pps: f64,
    /// Server CPU ticks used in the window.
    pub server_ticks: Option<u64>,
}

impl Report {
    /// The window between the last session's start (uclient starts each 1–6 s after connecting)
    /// and the first session's end (`send_secs` after its start), measured between the progress
    /// lines inside it.
    pub fn steady(&self, send_secs: f64) -> anyhow::Result<Steady> {
        let start = self.connected_at + RAMP_SECS;
        let end = self.connected_at + 1.0 + send_secs;
        let inside: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| s.at >= start && s.at <= end)
            .collect();
        let (Some(first), Some(last)) = (inside.first(), inside.last()) else {
            bail!(
                "turnutils_uclient printed no progress lines between {start:.1} s and {end:.1} s"
            );
        };
        let secs = last.at - first.at;
        if secs < 1.0 {
            bail!("steady window of {secs:.1} s is too short to measure; send longer (--messages)");
        }
        Ok(Steady {
            secs,
            sent_pps: last.sent.saturating_sub(first.sent) as f64 / secs,
            received_pps: last.received.saturating_sub(first.received) as f64 / secs,
            server_ticks: last
                .server_ticks
                .zip(first.server_ticks)
                .map(|(b, a)| b.saturating_sub(a)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<Line> {
        text.lines()
            .filter_map(|l| {
                let (at, text) = l.trim().split_once(' ')?;
                Some(Line {
                    at: at.parse().ok()?,
                    text: text.to_owned(),
                    server_ticks: Some((at.parse::<f64>().ok()? * 10.0) as u64),
                })
            })
            .collect()
    }

    const RUN: &str = "\
        0.40 0: : Total connect time is 1
        0.41 0: : Total connect time is 1
        0.50 0: : start_mclient: msz=10, tot_send_msgs=0, tot_recv_msgs=0, tot_send_bytes ~ 0, tot_recv_bytes ~ 0
        5.10 5: : start_mclient: msz=10, tot_send_msgs=935, tot_recv_msgs=932, tot_send_bytes ~ 187000, tot_recv_bytes ~ 186400
        6.50 6: : start_mclient: msz=10, tot_send_msgs=1200, tot_recv_msgs=1195, tot_send_bytes ~ 1, tot_recv_bytes ~ 1
        7.50 7: : start_mclient: msz=10, tot_send_msgs=1700, tot_recv_msgs=1695, tot_send_bytes ~ 1, tot_recv_bytes ~ 1
        8.50 8: : start_mclient: msz=10, tot_send_msgs=2200, tot_recv_msgs=2195, tot_send_bytes ~ 1, tot_recv_bytes ~ 1
        9.50 9: : start_mclient: msz=10, tot_send_msgs=2600, tot_recv_msgs=2590, tot_send_bytes ~ 1, tot_recv_bytes ~ 1
        12.0 11: : start_mclient: tot_send_msgs=3000, tot_recv_msgs=2990
        12.0 11: : start_mclient: tot_send_bytes ~ 600000, tot_recv_bytes ~ 598000
        12.0 11: : Total transmit time is 11
        12.0 11: : Total lost packets 10 (0.333333%), total send dropped 2 (0.066644%)
        12.0 11: : Average round trip delay 0.001500 ms; min = 0 ms, max = 3 ms";

    #[test]
    fn parses_totals() {
        let report = parse(&lines(RUN)).unwrap();
        assert_eq!(
            (
                report.sent,
                report.received,
                report.lost,
                report.send_dropped
            ),
            (3000, 2990, 10, 2)
        );
        assert_eq!(report.samples.len(), 6);
        assert!((report.connected_at - 0.40).abs() < 1e-9);
    }

    #[test]
    fn steady_window_skips_ramp_and_tail() {
        let report = parse(&lines(RUN)).unwrap();
        // connected 0.40: window 6.40 ..= 0.40 + 1 + 8.0 = 9.40 → samples at 6.5, 7.5, 8.5.
        let steady = report.steady(8.0).unwrap();
        assert!((steady.secs - 2.0).abs() < 1e-9);
        assert!((steady.sent_pps - 500.0).abs() < 1e-9);
        assert!((steady.received_pps - 500.0).abs() < 1e-9);
        assert_eq!(steady.server_ticks, Some(20));
    }

    #[test]
    fn missing_summary_is_an_error() {
        let err = parse(&lines("0.1 0: : ERROR: Cannot complete Allocation")).unwrap_err();
        assert!(err.to_string().contains("Total connect time"));
    }
}
