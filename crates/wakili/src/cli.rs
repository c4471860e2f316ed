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
    /// Load-test a running server: book consultations over the API, join a lawyer and a client
    /// per room over Socket.IO (waiting room included), exchange offer/answer/candidates and
    /// quality reports, leave; print progress and a table (or --json). Exits 1 when anything
    /// failed.
    ///
    /// With --token-secret(-file) the load comes from this process; with --admin-token the
    /// server runs the test against itself (`[metrics] load_tests = true`) and this command
    /// watches it.
    Loadtest(Loadtest),
    /// Print the signaling protocol as a JSON Schema (every client event with its payload and
    /// ack, every server event with its payload), to generate client types from.
    SignalingSchema,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("credentials").required(true).args(["token_secret", "token_secret_file", "admin_token"])))]
pub struct Loadtest {
    /// The server's base URL, e.g. http://127.0.0.1:8080.
    #[arg(long, value_name = "URL")]
    pub url: String,
    /// Simulated participants in all.
    #[arg(long, default_value_t = 100)]
    pub participants: u32,
    /// Rooms start evenly over this time.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    pub ramp_up: std::time::Duration,
    /// Messaging time after the ramp-up.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration)]
    pub duration: std::time::Duration,
    /// Each participant sends a candidate to every other member and a quality report this often.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = humantime::parse_duration)]
    pub message_interval: std::time::Duration,
    /// Pause between two members of a room joining (the client waits in the waiting room).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = humantime::parse_duration)]
    pub join_interval: std::time::Duration,
    /// Participants per room: lawyer, client, then admins.
    #[arg(long, default_value_t = 2)]
    pub room_size: u32,
    /// The server's HS256 secret (auth.secret), to sign the participants' tokens. Visible to
    /// other users of this machine in the process list: prefer --token-secret-file.
    #[arg(long, value_name = "SECRET")]
    pub token_secret: Option<String>,
    /// A file holding the server's HS256 secret (e.g. <data_dir>/secrets/jwt-hs256.key).
    #[arg(long, value_name = "FILE")]
    pub token_secret_file: Option<PathBuf>,
    /// An admin token: the server runs the test itself and this command watches it.
    #[arg(long, value_name = "TOKEN")]
    pub admin_token: Option<String>,
    /// Print the report as JSON on stdout (progress still goes to stderr).
    #[arg(long)]
    pub json: bool,
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
    /// SFU media listen address, UDP and ICE-TCP (default 127.0.0.1:3479).
    #[arg(long, value_name = "ADDR")]
    pub sfu_listen: Option<SocketAddr>,
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
    /// Also check an exported audit log (the JSON `GET /api/v1/consultations/{id}/audit`
    /// returns) against the audit chain head the manifest signs: an entry edited, removed or
    /// reordered is reported.
    #[arg(long, value_name = "FILE")]
    pub audit: Option<PathBuf>,
    /// The downloaded media (the decrypted download) of a single recording.
    #[arg(
        value_name = "MEDIA_FILE",
        required_unless_present = "tracks",
        conflicts_with = "tracks"
    )]
    pub media: Option<PathBuf>,
    /// For a session recorded by the server (manifest format `webm-tracks`): one track's
    /// recording id and its downloaded file, as `TRACK_ID=FILE`; repeat it for every track the
    /// session's manifest lists.
    #[arg(long = "track", value_name = "TRACK_ID=FILE", value_parser = track_file)]
    pub tracks: Vec<(String, PathBuf)>,
}

/// `TRACK_ID=FILE` of `--track`.
fn track_file(value: &str) -> Result<(String, PathBuf), String> {
    match value.split_once('=') {
        Some((id, file)) if !id.is_empty() && !file.is_empty() => {
            Ok((id.to_owned(), PathBuf::from(file)))
        }
        _ => Err("expected TRACK_ID=FILE (the track's recording id, `=`, its file)".into()),
    }
}
