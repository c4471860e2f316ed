//! Command-line flags.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

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
    /// Signaling: participants join consultations and relay signals to each other, through
    /// `wakili serve` and through a bare socketioxide relay (the reference), one after the other.
    ///
    /// Both servers run as child processes on 127.0.0.1, so their CPU time and memory are read
    /// from /proc apart from the load generator's (this process, on the same cores).
    Signal(SignalArgs),
    /// Encrypted recording ingest: 1 MiB chunks PUT over HTTP to `wakili serve`, beside this
    /// machine's raw AES-256-GCM + SHA-256 speed and its disk write speed, measured in the same
    /// run.
    ///
    /// The server runs as a child process on 127.0.0.1 (or is reached with --url); the
    /// references run in this process. The download is checked byte for byte by SHA-256.
    Ingest(IngestArgs),
    /// Server recording: CPU per recorded packet of 720p VP8 through the muxer and the
    /// recording store (sealing, local disk, SQLite), beside raw sealing and writing of the same
    /// chunks, in this process; and the 720p tracks one core records at that cost.
    Record(crate::record::RecordArgs),
    /// The reference relay of `wakili-bench signal`, run as its child process.
    #[command(hide = true)]
    SignalReferenceServer(ReferenceServerArgs),
    /// Push: FCM HTTP v1 messages/s over HTTP/2 from Wakili's sender (messages built per
    /// notification, OAuth2 token source) to the local FCM, beside a bare reqwest HTTP/2 loop
    /// posting prebuilt bodies to the same server (the floor any sender pays).
    ///
    /// The local FCM (`wakili_testkit::fcm`) runs as a child process, so the sender's CPU (this
    /// process) and the server's are measured apart.
    Push(PushArgs),
    /// The local FCM of `wakili-bench push`, run as its child process.
    #[command(hide = true)]
    PushFakeFcm(PushFakeArgs),
    /// SFU: publishers send Opus and VP8 simulcast, subscribers receive one layer of each,
    /// through Wakili's SFU and through Janus's VideoRoom (the reference), one after the other.
    ///
    /// Both servers run as child processes, so their CPU time and memory are read from /proc
    /// apart from the load generator (str0m peers in this process). Installs Janus with
    /// apt-get when it is missing (unless --no-install).
    Sfu(crate::sfu::args::SfuArgs),
    /// Wakili's SFU for `wakili-bench sfu`, run as its child process (JSON lines on
    /// stdin/stdout).
    #[command(hide = true)]
    SfuServer(crate::sfu::args::SfuServerArgs),
}

/// Flags of `wakili-bench push`.
#[derive(Debug, Clone, Args)]
pub struct PushArgs {
    /// Messages per run.
    #[arg(long, default_value_t = 100_000)]
    pub messages: u64,
    /// Requests in flight at once (HTTP/2 streams on one connection).
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// Also run Wakili's sender paced at this many messages/s (FCM's per-project quota is
    /// 10,000/s), to read its CPU at that load; 0 skips the paced run.
    #[arg(long, default_value_t = 10_000)]
    pub rate: u64,
    /// Also push this many queued notifications through the whole outbox (an SQLite database in
    /// a temporary directory: lease, send, record), as the server's worker does; 0 skips it.
    #[arg(long, default_value_t = 50_000)]
    pub outbox: u64,
    /// Print one JSON document instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Flags of the hidden local-FCM child.
#[derive(Debug, Clone, Args)]
pub struct PushFakeArgs {
    /// The test service account (JSON written by the parent).
    #[arg(long)]
    pub account: PathBuf,
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

/// Flags of `wakili-bench signal`.
#[derive(Debug, Clone, Args)]
pub struct SignalArgs {
    /// Light load: 20 pairs (40 participants) at 5 signals/s each, the load of a few calls.
    /// Latency here is what one user feels; a stall such as Nagle's algorithm × delayed ACK
    /// (~40 ms) shows in p99. Sets --pairs and --rate.
    #[arg(long, conflicts_with_all = ["pairs", "rate", "idle"])]
    pub light: bool,
    /// Consultations, each joined by its lawyer and its client: 2 × N participants.
    #[arg(long, default_value_t = 1000)]
    pub pairs: u32,
    /// Signals per second each participant sends to the other participant of its pair.
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// How long participants send signals.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Participants connecting and joining per second (connection starts are paced evenly).
    #[arg(long, default_value_t = 1000.0)]
    pub join_rate: f64,
    /// Only join every participant and report server memory per joined, idle participant; no
    /// signals.
    #[arg(long)]
    pub idle: bool,
    /// A signal delivered later than this after it was sent counts as late.
    #[arg(long, default_value = "100ms", value_parser = humantime::parse_duration)]
    pub late: Duration,
    /// Size of each signal's payload object in bytes (an ICE candidate is about 200).
    #[arg(long, default_value_t = 200)]
    pub payload_bytes: usize,
    /// Servers to measure, in this order.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [SignalServer::Wakili, SignalServer::Reference])]
    pub servers: Vec<SignalServer>,
    /// Also measure N Wakili nodes sharing PostgreSQL (--database-url) and Redis (--redis-url),
    /// right after the one-node run: each pair's lawyer and client join different nodes, so
    /// every signal crosses nodes. CPU per signal is then summed over the nodes and Redis, and
    /// Redis commands per signal are read from `INFO commandstats`.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub nodes: u8,
    /// With --nodes: put each pair's lawyer and client on the same node, so that no signal
    /// crosses nodes (what the nodes cost apart from Redis).
    #[arg(long, requires = "nodes")]
    pub same_node: bool,
    /// With --nodes: each node's `worker_threads` (0: one per core, as the one-node run has).
    /// Default: this host's cores shared out among the nodes, at least one each, as one would
    /// size nodes sharing a host.
    #[arg(long, value_name = "N")]
    pub node_threads: Option<u32>,
    /// With --nodes: once everyone has joined, kill the first node (SIGKILL) and measure how
    /// long its participants take to resume on the other nodes, as the SDK does (a new
    /// connection to another node, then `consultation:join` with the resume token).
    #[arg(long, requires = "nodes")]
    pub kill_node: bool,
    /// The database every Wakili run uses (needed with --nodes; default: each run's own
    /// SQLite file).
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// The Redis the nodes of --nodes share.
    #[arg(long, value_name = "URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,
    /// Load an already running Wakili at this base URL (e.g. http://127.0.0.1:8080) instead of
    /// starting one; its CPU time and memory are then not reported. Needs --jwt-secret-file.
    #[arg(long, value_name = "URL", requires = "jwt_secret_file")]
    pub url: Option<String>,
    /// The HS256 secret that server verifies tokens with (its
    /// `<data-dir>/secrets/jwt-hs256.key`), to mint participants' tokens for --url.
    #[arg(long, value_name = "FILE", requires = "url")]
    pub jwt_secret_file: Option<PathBuf>,
    /// The `wakili` binary (default: `wakili` next to this executable).
    #[arg(long, value_name = "PATH")]
    pub wakili_bin: Option<PathBuf>,
    /// Worker threads of the load generator (default: the number of cores).
    #[arg(long, value_name = "N")]
    pub client_threads: Option<usize>,
    /// After sending stops, how long to wait for signals still in flight before counting the
    /// missing ones as lost.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub drain: Duration,
    /// Pause once every participant has joined, before reading the server's memory.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub settle: Duration,
    /// Limit per server for the whole run (start, booking, joins, signals, drain).
    #[arg(long, default_value = "300s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Print one JSON document instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// A signaling server under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SignalServer {
    /// `wakili serve` (or the server at --url).
    Wakili,
    /// `--nodes` × `wakili serve` on PostgreSQL and Redis.
    Cluster,
    /// A bare socketioxide relay: any token, join acks a participant id, signals relayed
    /// unparsed. The floor a Socket.IO server in Rust starts from.
    Reference,
}

impl SignalServer {
    /// Name in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Wakili => "wakili",
            Self::Cluster => "cluster",
            Self::Reference => "reference",
        }
    }
}

/// Flags of the hidden `wakili-bench signal-reference-server`.
#[derive(Debug, Clone, Args)]
pub struct ReferenceServerArgs {
    /// Listen address (port 0 picks one; the chosen address is printed).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
}

/// Flags of `wakili-bench ingest`.
#[derive(Debug, Clone, Args)]
pub struct IngestArgs {
    /// Bytes to ingest (B, KiB, MiB, GiB; KB, MB, GB are powers of 1000).
    #[arg(long, default_value = "1GiB", value_parser = parse_bytes)]
    pub size: u64,
    /// Bytes per uploaded chunk (the last one may be shorter).
    #[arg(long, default_value = "1MiB", value_parser = parse_bytes)]
    pub chunk: u64,
    /// Chunk PUTs in flight at once, over as many keep-alive connections.
    #[arg(long, default_value_t = 4)]
    pub parallel: usize,
    /// Ingest into an already running Wakili at this base URL (e.g. http://127.0.0.1:8080)
    /// instead of starting one; its CPU time and memory are then not reported. Needs
    /// --jwt-secret-file.
    #[arg(long, value_name = "URL", requires = "jwt_secret_file")]
    pub url: Option<String>,
    /// The HS256 secret that server verifies tokens with (its
    /// `<data-dir>/secrets/jwt-hs256.key`), to mint the lawyer's and the client's tokens.
    #[arg(long, value_name = "FILE", requires = "url")]
    pub jwt_secret_file: Option<PathBuf>,
    /// Where the disk reference writes its file (default: the server's data directory; with
    /// --url, the data directory holding --jwt-secret-file's `secrets/`). Pick a directory on
    /// the filesystem the server stores recordings on.
    #[arg(long, value_name = "DIR")]
    pub disk_dir: Option<PathBuf>,
    /// The `wakili` binary (default: `wakili` next to this executable).
    #[arg(long, value_name = "PATH")]
    pub wakili_bin: Option<PathBuf>,
    /// Limit for the whole run (references, consent, upload, complete, download).
    #[arg(long, default_value = "600s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Print one JSON document instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// Largest `--size`: the data is held in memory, twice at most while it is generated.
pub const MAX_INGEST_BYTES: u64 = 16 << 30;
/// Most PUTs in flight.
pub const MAX_PARALLEL: usize = 256;

impl IngestArgs {
    /// Chunks the data is cut into.
    pub fn chunk_count(&self) -> u64 {
        self.size.div_ceil(self.chunk.max(1))
    }

    /// Refuses runs that cannot give a meaningful figure.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.size == 0 || self.size > MAX_INGEST_BYTES {
            bail!(
                "--size {}: more than 0 and at most {} (the data is held in memory)",
                self.size,
                format_bytes(MAX_INGEST_BYTES)
            );
        }
        let max_chunk = wakili_storage::seal::MAX_CHUNK_BYTES;
        if self.chunk == 0 || self.chunk > max_chunk {
            bail!(
                "--chunk {}: more than 0 and at most {} (a chunk's sealed segments are numbered \
                 in 12 bits)",
                self.chunk,
                format_bytes(max_chunk)
            );
        }
        if self.chunk_count() > u64::from(wakili_storage::seal::MAX_CHUNKS) {
            bail!(
                "--size / --chunk = {} chunks: at most {}; use bigger chunks",
                self.chunk_count(),
                wakili_storage::seal::MAX_CHUNKS
            );
        }
        if self.parallel == 0 || self.parallel > MAX_PARALLEL {
            bail!("--parallel {}: between 1 and {MAX_PARALLEL}", self.parallel);
        }
        Ok(())
    }
}

/// Parses a byte count: a whole number with an optional unit, `B`, `KiB`, `MiB`, `GiB`, `TiB`
/// (powers of 1024) or `KB`, `MB`, `GB`, `TB` (powers of 1000), case-insensitive, `K`/`M`/`G`/`T`
/// alone meaning the binary units.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected a whole number and a unit, e.g. 256MiB"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        other => {
            return Err(format!(
                "{text:?}: unknown unit {other:?}; use B, KiB, MiB, GiB (or KB, MB, GB)"
            ));
        }
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("{text:?}: too large"))
}

/// A byte count in the largest binary unit that divides it, e.g. `256MiB`, `1536KiB`, `100B`.
pub fn format_bytes(bytes: u64) -> String {
    for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if bytes != 0 && bytes.is_multiple_of(1 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    format!("{bytes}B")
}

/// Most signals per second per participant the benchmark offers (Wakili's default limit is 50
/// events per second per connection).
pub const MAX_RATE: f64 = 1000.0;
/// Smallest payload: the send time, sequence number and a candidate string must fit.
pub const MIN_PAYLOAD_BYTES: usize = 100;
/// Largest payload: Wakili's signal limit is 64 KiB.
pub const MAX_PAYLOAD_BYTES: usize = 60_000;

/// `--light`: pairs.
pub const LIGHT_PAIRS: u32 = 20;
/// `--light`: signals per second per participant.
pub const LIGHT_RATE: f64 = 5.0;

impl SignalArgs {
    /// These flags with the `--light` preset applied.
    pub fn resolved(&self) -> Self {
        let mut args = self.clone();
        if args.light {
            args.pairs = LIGHT_PAIRS;
            args.rate = LIGHT_RATE;
        }
        if args.nodes > 1 && !args.servers.contains(&SignalServer::Cluster) {
            let after = args
                .servers
                .iter()
                .position(|&s| s == SignalServer::Wakili)
                .map_or(0, |i| i + 1);
            args.servers.insert(after, SignalServer::Cluster);
        }
        args
    }

    /// Participants: two per pair.
    pub fn participants(&self) -> u64 {
        u64::from(self.pairs) * 2
    }

    /// Signals per second offered with everyone sending.
    pub fn offered_per_s(&self) -> f64 {
        self.participants() as f64 * self.rate
    }

    /// Refuses loads that cannot give a meaningful figure.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.pairs == 0 {
            bail!("--pairs: at least 1");
        }
        if !(self.rate > 0.0 && self.rate <= MAX_RATE) {
            bail!(
                "--rate {}: more than 0 and at most {MAX_RATE} per second",
                self.rate
            );
        }
        if !(self.join_rate > 0.0 && self.join_rate.is_finite()) {
            bail!("--join-rate {}: more than 0 per second", self.join_rate);
        }
        if self.duration < Duration::from_secs(1) && !self.idle {
            bail!("--duration: at least 1s");
        }
        if self.late.is_zero() {
            bail!("--late: more than 0");
        }
        if !(MIN_PAYLOAD_BYTES..=MAX_PAYLOAD_BYTES).contains(&self.payload_bytes) {
            bail!(
                "--payload-bytes {}: between {MIN_PAYLOAD_BYTES} and {MAX_PAYLOAD_BYTES}",
                self.payload_bytes
            );
        }
        if self.servers.is_empty() {
            bail!("--servers: name at least one of wakili, cluster, reference");
        }
        if self.client_threads == Some(0) {
            bail!("--client-threads: at least 1");
        }
        if self.servers.contains(&SignalServer::Cluster) {
            if self.nodes < 2 {
                bail!("--servers cluster: give --nodes 2 or more");
            }
            if self.url.is_some() {
                bail!("--nodes: the benchmark starts the nodes itself; drop --url");
            }
            if !self
                .database_url
                .as_deref()
                .is_some_and(|u| u.starts_with("postgres"))
            {
                bail!(
                    "--nodes: the nodes share a PostgreSQL database; give --database-url postgres://…"
                );
            }
        }
        let expected = self.expected_run_secs();
        if self.timeout.as_secs_f64() < expected {
            bail!(
                "--timeout {}: shorter than one run may take (about {expected:.0} s: start, \
                 joining {} participants at {}/s, settling, sending, draining); raise it",
                humantime::format_duration(self.timeout),
                self.participants(),
                self.join_rate
            );
        }
        Ok(())
    }

    /// Rough lower estimate of one server's run.
    pub fn expected_run_secs(&self) -> f64 {
        let joins = self.participants() as f64 / self.join_rate;
        let sending = if self.idle {
            0.0
        } else {
            self.duration.as_secs_f64() + self.drain.as_secs_f64()
        };
        5.0 + joins + self.settle.as_secs_f64() + sending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signal(args: &[&str]) -> Result<SignalArgs, clap::Error> {
        let argv = ["wakili-bench", "signal"].iter().chain(args);
        match Cli::try_parse_from(argv)?.command {
            Command::Signal(args) => Ok(args),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn signal_defaults_are_a_valid_load() {
        let args = signal(&[]).unwrap();
        assert_eq!(args.pairs, 1000);
        assert_eq!(args.participants(), 2000);
        assert_eq!(args.offered_per_s(), 20_000.0);
        assert_eq!(args.late, Duration::from_millis(100));
        assert_eq!(
            args.servers,
            [SignalServer::Wakili, SignalServer::Reference]
        );
        args.validate().unwrap();
    }

    #[test]
    fn signal_flags_parse() {
        let args = signal(&[
            "--pairs",
            "9000",
            "--idle",
            "--join-rate",
            "5000",
            "--servers",
            "reference",
            "--late",
            "50ms",
            "--duration",
            "30s",
            "--client-threads",
            "1",
        ])
        .unwrap();
        assert_eq!(args.participants(), 18_000);
        assert!(args.idle);
        assert_eq!(args.join_rate, 5000.0);
        assert_eq!(args.servers, [SignalServer::Reference]);
        assert_eq!(args.late, Duration::from_millis(50));
        assert_eq!(args.duration, Duration::from_secs(30));
        assert_eq!(args.client_threads, Some(1));
        args.validate().unwrap();
    }

    #[test]
    fn nodes_add_a_cluster_run_after_the_one_node_run_and_need_postgres() {
        let args = signal(&["--nodes", "3"]).unwrap().resolved();
        assert_eq!(
            args.servers,
            [
                SignalServer::Wakili,
                SignalServer::Cluster,
                SignalServer::Reference
            ]
        );
        let refused = args.validate().unwrap_err().to_string();
        assert!(refused.contains("--database-url"), "{refused}");
        let args = signal(&["--nodes", "3", "--database-url", "postgres://u@h/d"])
            .unwrap()
            .resolved();
        args.validate().unwrap();
        assert_eq!(args.redis_url, "redis://127.0.0.1:6379");
        let alone = signal(&["--servers", "cluster"]).unwrap().resolved();
        assert!(
            alone
                .validate()
                .unwrap_err()
                .to_string()
                .contains("--nodes 2")
        );
    }

    #[test]
    fn light_is_40_participants_at_5_per_second() {
        let args = signal(&["--light", "--duration", "30s"])
            .unwrap()
            .resolved();
        assert_eq!(args.participants(), 40);
        assert_eq!(args.rate, 5.0);
        assert_eq!(args.offered_per_s(), 200.0);
        args.validate().unwrap();
        assert!(signal(&["--light", "--pairs", "5"]).is_err());
        assert!(signal(&["--light", "--idle"]).is_err());
        // Without --light the flags stand as given.
        assert_eq!(signal(&["--pairs", "5"]).unwrap().resolved().pairs, 5);
    }

    #[test]
    fn url_and_secret_come_together() {
        assert!(signal(&["--url", "http://127.0.0.1:8080"]).is_err());
        assert!(signal(&["--jwt-secret-file", "/tmp/k"]).is_err());
        let args = signal(&[
            "--url",
            "http://127.0.0.1:8080",
            "--jwt-secret-file",
            "/tmp/k",
        ])
        .unwrap();
        assert_eq!(args.url.as_deref(), Some("http://127.0.0.1:8080"));
    }

    #[test]
    fn meaningless_signal_loads_are_refused() {
        for bad in [
            &["--pairs", "0"][..],
            &["--rate", "0"],
            &["--rate", "5000"],
            &["--join-rate", "0"],
            &["--duration", "100ms"],
            &["--payload-bytes", "10"],
            &["--client-threads", "0"],
            &["--pairs", "9000", "--timeout", "5s"],
        ] {
            let args = signal(bad).unwrap();
            assert!(args.validate().is_err(), "{bad:?} accepted");
        }
        // --idle needs no sending time.
        signal(&["--idle", "--duration", "0s"])
            .unwrap()
            .validate()
            .unwrap();
    }

    fn ingest(args: &[&str]) -> Result<IngestArgs, clap::Error> {
        let argv = ["wakili-bench", "ingest"].iter().chain(args);
        match Cli::try_parse_from(argv)?.command {
            Command::Ingest(args) => Ok(args),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn ingest_defaults_are_1_gib_in_1_mib_chunks() {
        let args = ingest(&[]).unwrap();
        assert_eq!(args.size, 1 << 30);
        assert_eq!(args.chunk, 1 << 20);
        assert_eq!(args.chunk_count(), 1024);
        assert_eq!(args.parallel, 4);
        assert!(args.url.is_none() && !args.json);
        args.validate().unwrap();
    }

    #[test]
    fn ingest_flags_parse_and_nonsense_is_refused() {
        let args = ingest(&["--size", "256MiB", "--chunk", "100KB", "--parallel", "8"]).unwrap();
        assert_eq!(args.size, 256 << 20);
        assert_eq!(args.chunk, 100_000);
        assert_eq!(args.chunk_count(), (256u64 << 20).div_ceil(100_000));
        args.validate().unwrap();
        assert!(ingest(&["--url", "http://127.0.0.1:1"]).is_err());
        assert!(ingest(&["--size", "1 parsec"]).is_err());
        for bad in [
            &["--size", "0"][..],
            &["--size", "17GiB"],
            &["--chunk", "0"],
            &["--chunk", "257MiB"],
            &["--chunk", "1", "--size", "1GiB"],
            &["--parallel", "0"],
        ] {
            assert!(ingest(bad).unwrap().validate().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn byte_counts_parse_and_print() {
        assert_eq!(parse_bytes("1GiB"), Ok(1 << 30));
        assert_eq!(parse_bytes("256mib"), Ok(256 << 20));
        assert_eq!(parse_bytes("64K"), Ok(64 << 10));
        assert_eq!(parse_bytes("5MB"), Ok(5_000_000));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes(" 2 GiB "), Ok(2 << 30));
        assert!(parse_bytes("GiB").is_err());
        assert!(parse_bytes("1.5GiB").is_err());
        assert!(parse_bytes("99999999999TiB").is_err());
        assert_eq!(format_bytes(1 << 30), "1GiB");
        assert_eq!(format_bytes(1536 << 10), "1536KiB");
        assert_eq!(format_bytes(100), "100B");
        assert_eq!(format_bytes(0), "0B");
    }

    #[test]
    fn the_reference_server_is_hidden_but_parses() {
        let cli = Cli::try_parse_from([
            "wakili-bench",
            "signal-reference-server",
            "--listen",
            "127.0.0.1:0",
        ])
        .unwrap();
        assert!(matches!(cli.command, Command::SignalReferenceServer(_)));
    }
}
