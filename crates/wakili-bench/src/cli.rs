//! Command-line flags.

use std::{path::PathBuf, time::Duration};

use anyhow::bail;
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Serialize;

/// Benchmarks for Wakili, each run beside a reference implementation on the same machine.
#[derive(Debug, Parser)]
#[command(name = "wakili-bench", version, about)]
pub struct Cli {
    /// The benchmark to run.
    #[command(subcommand)]
    pub command: Command,
}

/// One subcommand per benchmark.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Relay the same load through the embedded TURN server (`wakili serve`) and coturn.
    ///
    /// Both servers are started on 127.0.0.1 by the benchmark, one after the other, and loaded by
    /// coturn's `turnutils_uclient`. Needs the Debian package `coturn`.
    Turn(TurnArgs),
}

/// Flags of `wakili-bench turn`.
#[derive(Debug, Clone, Args)]
pub struct TurnArgs {
    /// Concurrent sessions, one allocation each (uclient -m). Even in c2c mode (pairs).
    #[arg(long, default_value_t = 50)]
    pub clients: u32,
    /// Packets each session sends (uclient -n).
    #[arg(long, default_value_t = 1000)]
    pub messages: u32,
    /// Milliseconds between two packets of one session (uclient -z).
    #[arg(long, default_value_t = 20)]
    pub interval_ms: u32,
    /// Payload bytes per packet (uclient -l).
    #[arg(long, default_value_t = 200)]
    pub size: u32,
    /// Client-to-server transport; relayed legs are UDP either way.
    #[arg(long, value_enum, default_value_t = Transport::Udp)]
    pub transport: Transport,
    /// Traffic pattern: `c2c`, sessions in pairs send to each other's relay address (uclient
    /// -y); `peer`, every session sends to an echo peer (turnutils_peer) and gets it back.
    #[arg(long, value_enum, default_value_t = Mode::C2c)]
    pub mode: Mode,
    /// Servers to measure, in this order.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [ServerKind::Embedded, ServerKind::Coturn])]
    pub servers: Vec<ServerKind>,
    /// Limit per server for start-up plus load; past it everything is killed and that server's
    /// run is reported as failed.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// The `wakili` binary (default: `wakili` next to this executable).
    #[arg(long, value_name = "PATH")]
    pub wakili_bin: Option<PathBuf>,
    /// coturn relay threads (default: the number of cores, like the embedded server's runtime).
    #[arg(long, value_name = "N")]
    pub coturn_relay_threads: Option<usize>,
    /// Print one JSON document instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Testing: run this instead of `wakili serve` as the embedded server. Split on whitespace
    /// (no shell); `{port}`, `{secret}`, `{dir}` (a fresh temporary directory) and `{data_dir}`
    /// (`{dir}/data`) are replaced.
    #[arg(long, hide = true, value_name = "CMD")]
    pub embedded_cmd: Option<String>,
}

/// How uclient reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// TURN over UDP.
    Udp,
    /// TURN over TCP (uclient -t).
    Tcp,
}

/// Where relayed packets go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Client to client through two allocations (uclient -y).
    C2c,
    /// Client to an echo peer and back through one allocation (uclient -e/-r).
    Peer,
}

/// A server under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerKind {
    /// The TURN server inside `wakili serve`.
    Embedded,
    /// coturn's `turnserver`, the reference.
    Coturn,
}

impl ServerKind {
    /// Name in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Embedded => "embedded",
            Self::Coturn => "coturn",
        }
    }
}

/// uclient starts each session at a random moment 1–6 s after connecting.
pub const RAMP_SECS: f64 = 6.0;
/// uclient waits this long for late packets when some are missing.
pub const STOPPING_SECS: f64 = 10.0;
/// uclient sets sessions up one after the other: about 0.11 s each (coturn 4.6.1, 2 cores).
const CONNECT_SECS_PER_CLIENT: f64 = 0.12;

impl TurnArgs {
    /// Packets per second when every session is sending.
    pub fn offered_pps(&self) -> f64 {
        f64::from(self.clients) * 1000.0 / f64::from(self.interval_ms)
    }

    /// How long one session sends.
    pub fn send_secs(&self) -> f64 {
        f64::from(self.messages) * f64::from(self.interval_ms) / 1000.0
    }

    /// Refuses loads that cannot give a meaningful figure.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.clients == 0 || (self.mode == Mode::C2c && !self.clients.is_multiple_of(2)) {
            bail!(
                "--clients {}: must be at least 1, and even with --mode c2c (sessions come in pairs)",
                self.clients
            );
        }
        if self.interval_ms == 0 || self.messages == 0 {
            bail!("--interval-ms and --messages: at least 1");
        }
        if !(16..=16_000).contains(&self.size) {
            bail!(
                "--size {}: between 16 (uclient's own header) and 16000 bytes",
                self.size
            );
        }
        if self.send_secs() < RAMP_SECS + 2.0 {
            bail!(
                "--messages × --interval-ms = {:.1} s: at least {:.0} s, since uclient starts \
                 sessions at random up to {RAMP_SECS:.0} s late and the steady window (every \
                 session sending) must last a few seconds; e.g. --messages 1000 --interval-ms 20",
                self.send_secs(),
                RAMP_SECS + 2.0
            );
        }
        let expected = self.expected_run_secs();
        if self.timeout.as_secs_f64() < expected {
            bail!(
                "--timeout {}: shorter than one run may take (about {expected:.0} s: set-up of \
                 {} sessions, {RAMP_SECS:.0} s ramp, sending, and uclient's {STOPPING_SECS:.0} s \
                 wait for late packets); raise it",
                humantime::format_duration(self.timeout),
                self.clients
            );
        }
        if self.servers.is_empty() {
            bail!("--servers: name at least one of embedded, coturn");
        }
        Ok(())
    }

    /// Rough upper estimate of one load run: set-up, ramp, sending, waiting for late packets.
    pub fn expected_run_secs(&self) -> f64 {
        2.0 + CONNECT_SECS_PER_CLIENT * f64::from(self.clients)
            + RAMP_SECS
            + self.send_secs()
            + STOPPING_SECS
    }
}
