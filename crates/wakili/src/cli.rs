use std::{net::SocketAddr, path::PathBuf};

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};

/// Secure video consultations between lawyers and their clients.
#[derive(Debug, Parser)]
#[command(name = "wakili", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand understands.
#[derive(Debug, Args)]
pub struct Common {
    /// Configuration file (default: ./wakili.toml when present, or $WAKILI_CONFIG).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory: SQLite file, recordings, generated secrets (default ./data).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (no configuration needed: SQLite and local disk under ./data).
    Serve(Serve),
    /// Print a signed token for development and load tests.
    Token(Token),
    /// Apply database migrations and exit.
    Migrate,
    /// Print the effective configuration (secrets masked).
    Config(ConfigCmd),
    /// Check a downloaded recording against its signed manifest, offline.
    ///
    /// Proves that MEDIA_FILE is, byte for byte, the recording the manifest describes: the
    /// manifest's Ed25519 signature, every chunk's SHA-256, the hash chain and the whole SHA-256.
    /// Exits 0 when it is, 1 with the reason (e.g. the chunk that differs) when it is not.
    VerifyRecording(VerifyRecording),
}

#[derive(Debug, Args)]
pub struct Serve {
    /// HTTP listen address (default 127.0.0.1:8080; port 0 picks a free port).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Log format.
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormatArg>,
    /// STUN/TURN listen address, UDP and TCP (default 127.0.0.1:3478).
    #[arg(long, value_name = "ADDR")]
    pub turn_listen: Option<SocketAddr>,
    /// Development: serve a login page at /login that mints tokens for any user (never in
    /// production).
    #[arg(long)]
    pub dev: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormatArg {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct Token {
    /// User id (`sub`).
    #[arg(long)]
    pub sub: String,
    /// Role: client, lawyer or admin.
    #[arg(long)]
    pub role: String,
    /// Display name (default: the user id).
    #[arg(long)]
    pub name: Option<String>,
    /// Lifetime, e.g. 30m, 2h, 7d (at most 30 days).
    #[arg(long, default_value = "2h", value_parser = humantime::parse_duration)]
    pub ttl: std::time::Duration,
    /// PEM private key, when auth.algorithm is RS256 or EdDSA.
    #[arg(long, value_name = "FILE")]
    pub private_key: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ConfigCmd {
    /// Print the commented default configuration file instead.
    #[arg(long)]
    pub default: bool,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("public_key").required(true).args(["key", "url"])))]
pub struct VerifyRecording {
    /// The signed manifest: the JSON `GET /api/v1/recordings/{id}/manifest` returns (its `jws`
    /// is used), or the bare JWS text.
    #[arg(long, value_name = "FILE")]
    pub manifest: PathBuf,
    /// The service's Ed25519 public key, obtained out of band: SPKI PEM
    /// (`-----BEGIN PUBLIC KEY-----`) or the base64 of its 32 raw bytes.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Fetch the public key from this server (`BASE_URL/api/v1/recordings/signing-key`)
    /// instead. This proves less than --key: the key comes from the service being checked.
    #[arg(long, value_name = "BASE_URL")]
    pub url: Option<String>,
    /// A bearer token for --url, read from this file, if the server asks for one.
    #[arg(long, value_name = "FILE", requires = "url")]
    pub token_file: Option<PathBuf>,
    /// The downloaded media (the decrypted download).
    #[arg(value_name = "MEDIA_FILE")]
    pub media: PathBuf,
}
