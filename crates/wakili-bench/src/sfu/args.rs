//! Flags of `wakili-bench sfu` and of its hidden `sfu-server` child.

use std::{net::SocketAddr, time::Duration};

use anyhow::bail;
use clap::{Args, ValueEnum};
use serde::Serialize;

use super::media::{self, LayerSpec};

/// Flags of `wakili-bench sfu`.
#[derive(Debug, Clone, Args)]
pub struct SfuArgs {
    /// Rooms, each with its own publishers and subscribers. The defaults (18 rooms × (2
    /// publishers + 6 subscribers): eight participants, the SFU's default room limit) offer
    /// about 51,500 forwarded packets/s. `--rooms 7 --subscribers 15` is the larger-room load
    /// of the earlier figures (about 50,000).
    #[arg(long, default_value_t = 18)]
    pub rooms: u32,
    /// Publishers per room: each sends Opus and VP8 in three simulcast layers.
    #[arg(long, default_value_t = 2)]
    pub publishers: u32,
    /// Subscribers per room: each receives audio and one video layer of every publisher in
    /// its room, and publishes nothing.
    #[arg(long, default_value_t = 6)]
    pub subscribers: u32,
    /// The measured window, once every subscriber receives every publisher on the forced
    /// layer.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// The simulcast layer every subscriber receives (forced on both servers: Wakili's
    /// `force_layer`, Janus's `substream`), so both forward the same packets.
    #[arg(long, value_enum, default_value_t = Layer::F)]
    pub layer: Layer,
    /// Bitrates of the q, h and f layers, kbit/s.
    #[arg(long, value_delimiter = ',', default_values_t = [150, 500, 1500])]
    pub layer_kbps: Vec<u32>,
    /// Video frames per second (every layer).
    #[arg(long, default_value_t = 30)]
    pub fps: u32,
    /// A keyframe on every layer this often (and whenever a server asks for one).
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub keyframe_every: Duration,
    /// Servers to measure, in this order. `wakili-record` is Wakili's SFU recording every
    /// room (the server's recorder and recording store); after `wakili` it is compared with it.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [SfuServer::Wakili, SfuServer::WakiliRecord, SfuServer::Janus])]
    pub servers: Vec<SfuServer>,
    /// The IPv4 address media flows on (servers, peers). Janus never gathers loopback
    /// candidates, so the default is this host's first non-loopback address (traffic to it
    /// still stays on the loopback device).
    #[arg(long, value_name = "IP")]
    pub media_ip: Option<std::net::Ipv4Addr>,
    /// Worker threads of the load generator (default: the number of cores).
    #[arg(long, value_name = "N")]
    pub client_threads: Option<usize>,
    /// Pause once every subscriber receives, before the window opens.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub settle: Duration,
    /// After the window, how long packets sent in it may still arrive.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub drain: Duration,
    /// Limit for every peer to connect and every subscriber to receive all it should.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub connect_timeout: Duration,
    /// Profiling: run Wakili's SFU without bandwidth estimation (`initial_estimate_bps =
    /// None`), so str0m sends through its null pacer instead of the leaky bucket.
    #[arg(long)]
    pub wakili_no_bwe: bool,
    /// `wakili-record`: how long the recorder may take, once the load stops, to finish and
    /// store every recording before the run fails.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub record_grace: Duration,
    /// Never run `apt-get install janus` when Janus is missing; fail instead.
    #[arg(long)]
    pub no_install: bool,
    /// Janus's log level (0-7); above 3 its logging costs CPU in the measurement.
    #[arg(long, default_value_t = 3)]
    pub janus_debug_level: u8,
    /// Print one JSON document instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// A simulcast layer a subscriber receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layer {
    /// Quarter resolution.
    Q,
    /// Half resolution.
    H,
    /// Full resolution.
    F,
}

impl Layer {
    /// 0 (q), 1 (h), 2 (f): Janus's substream number and the index into `--layer-kbps`.
    pub fn index(self) -> usize {
        match self {
            Self::Q => 0,
            Self::H => 1,
            Self::F => 2,
        }
    }

    /// The RID.
    pub fn rid(self) -> &'static str {
        media::RIDS[self.index()]
    }
}

/// An SFU under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SfuServer {
    /// `wakili_sfu::Sfu` in a child process (`wakili-bench sfu-server`).
    Wakili,
    /// The same, recording every room (`wakili-bench sfu-server --record`).
    #[serde(rename = "wakili-record")]
    WakiliRecord,
    /// Janus 1.x VideoRoom, the reference.
    Janus,
}

impl SfuServer {
    /// Name in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Wakili => "wakili",
            Self::WakiliRecord => "wakili+rec",
            Self::Janus => "janus",
        }
    }
}

/// The target load of the issue: 0 loss at this many forwarded packets per second.
pub const TARGET_PPS: f64 = 50_000.0;
/// Most publishers per room (Janus rooms and Wakili's track ids stay small).
pub const MAX_PUBLISHERS: u32 = 16;
/// Most peers in all (one UDP socket and one task each).
pub const MAX_PEERS: u32 = 5_000;

impl SfuArgs {
    /// The three layers as configured.
    pub fn layers(&self) -> [LayerSpec; 3] {
        media::layer_specs(&self.layer_kbps, self.fps, self.keyframe_every)
    }

    /// Subscribers in all rooms.
    pub fn total_subscribers(&self) -> u64 {
        u64::from(self.rooms) * u64::from(self.subscribers)
    }

    /// Packets per second one publisher sends on every layer and audio together.
    pub fn sent_pps_per_publisher(&self) -> f64 {
        let video: f64 = self.layers().iter().map(LayerSpec::packets_per_s).sum();
        video + media::AUDIO_PACKETS_PER_S
    }

    /// Packets per second the subscribers should receive in all: audio and the chosen layer
    /// of every publisher of their room.
    pub fn offered_pps(&self) -> f64 {
        let per_pair =
            self.layers()[self.layer.index()].packets_per_s() + media::AUDIO_PACKETS_PER_S;
        per_pair * f64::from(self.publishers) * self.total_subscribers() as f64
    }

    /// Refuses loads that cannot give a meaningful figure.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.rooms == 0 || self.publishers == 0 || self.subscribers == 0 {
            bail!("--rooms, --publishers, --subscribers: at least 1 each");
        }
        if self.publishers > MAX_PUBLISHERS {
            bail!("--publishers {}: at most {MAX_PUBLISHERS}", self.publishers);
        }
        let peers = self.rooms * (self.publishers + self.subscribers);
        if peers > MAX_PEERS {
            bail!("{peers} peers: at most {MAX_PEERS}");
        }
        if self.layer_kbps.len() != 3
            || self.layer_kbps.iter().any(|&k| !(16..=20_000).contains(&k))
        {
            bail!("--layer-kbps: three bitrates (q,h,f) between 16 and 20000 kbit/s");
        }
        if !(1..=60).contains(&self.fps) {
            bail!("--fps {}: between 1 and 60", self.fps);
        }
        if self.keyframe_every < Duration::from_millis(100) {
            bail!("--keyframe-every: at least 100ms");
        }
        if self.duration < Duration::from_secs(1) {
            bail!("--duration: at least 1s");
        }
        if self.servers.is_empty() {
            bail!("--servers: name at least one of wakili, wakili-record, janus");
        }
        if self.record_grace < Duration::from_secs(1) {
            bail!("--record-grace: at least 1s");
        }
        if self.client_threads == Some(0) {
            bail!("--client-threads: at least 1");
        }
        if self.janus_debug_level > 7 {
            bail!("--janus-debug-level: 0 to 7");
        }
        Ok(())
    }
}

/// Flags of the hidden `wakili-bench sfu-server`.
#[derive(Debug, Clone, Args)]
pub struct SfuServerArgs {
    /// UDP address of the SFU (port 0 picks one; the chosen one is printed).
    #[arg(long)]
    pub bind: SocketAddr,
    /// Most participants per room.
    #[arg(long, default_value_t = 64)]
    pub max_participants: usize,
    /// No bandwidth estimation (and so no pacing) in the SFU's sessions.
    #[arg(long)]
    pub no_bwe: bool,
    /// Record the rooms the benchmark asks for, as the server does (its recorder and its
    /// recording store: SQLite and local disk in this data directory).
    #[arg(long, value_name = "DATA_DIR")]
    pub record: Option<std::path::PathBuf>,
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn sfu(args: &[&str]) -> Result<SfuArgs, clap::Error> {
        let argv = ["wakili-bench", "sfu"].iter().chain(args);
        match Cli::try_parse_from(argv)?.command {
            Command::Sfu(args) => Ok(args),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn defaults_are_a_valid_load() {
        let args = sfu(&[]).unwrap();
        args.validate().unwrap();
        assert_eq!(
            args.servers,
            [SfuServer::Wakili, SfuServer::WakiliRecord, SfuServer::Janus]
        );
        assert_eq!(args.layer, Layer::F);
        assert_eq!(args.layer_kbps, [150, 500, 1500]);
        // 216 subscriber × publisher pairs × (Opus 50 + layer f 188.5) packets/s.
        assert_eq!(args.offered_pps(), 216.0 * 238.5);
        // Rooms no larger than the SFU lets a consultation be by default.
        assert!(args.publishers + args.subscribers <= 8);
        assert!(args.offered_pps() >= TARGET_PPS);
    }

    #[test]
    fn flags_parse_and_nonsense_is_refused() {
        let args = sfu(&[
            "--rooms",
            "2",
            "--publishers",
            "3",
            "--subscribers",
            "5",
            "--layer",
            "h",
            "--servers",
            "wakili,wakili-record",
            "--duration",
            "5s",
            "--layer-kbps",
            "100,300,900",
        ])
        .unwrap();
        args.validate().unwrap();
        assert_eq!(args.total_subscribers(), 10);
        assert_eq!(args.layer.rid(), "h");
        assert_eq!(args.servers, [SfuServer::Wakili, SfuServer::WakiliRecord]);
        for bad in [
            &["--rooms", "0"][..],
            &["--publishers", "17"],
            &["--layer-kbps", "100,200"],
            &["--fps", "0"],
            &["--duration", "100ms"],
            &["--client-threads", "0"],
            &["--record-grace", "0s"],
        ] {
            assert!(sfu(bad).unwrap().validate().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn the_server_child_is_hidden_but_parses() {
        let cli =
            Cli::try_parse_from(["wakili-bench", "sfu-server", "--bind", "127.0.0.1:0"]).unwrap();
        assert!(matches!(cli.command, Command::SfuServer(ref a) if a.record.is_none()));
        let cli = Cli::try_parse_from([
            "wakili-bench",
            "sfu-server",
            "--bind",
            "127.0.0.1:0",
            "--record",
            "/tmp/x",
        ])
        .unwrap();
        assert!(matches!(cli.command, Command::SfuServer(a) if a.record.is_some()));
    }
}
