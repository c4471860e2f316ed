//! The servers under test: starting them as child processes, waiting until they answer, and
//! preparing what participants need (tokens, consultations). `wakili-bench ingest` starts its
//! Wakili the same way.

use std::{
    fs::{self, File},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, bail};
use chrono::Utc;
use serde::Serialize;
use wakili_auth::{Minter, TokenRequest};
use wakili_client::histogram::Histogram;
use wakili_core::{Role, UserId};

use super::load::Spread;
use crate::{
    cli::{SignalArgs, SignalServer},
    process::{self, ChildGuard},
    servers,
};

/// How long a server may take to answer `/healthz`.
const STARTUP_LIMIT: Duration = Duration::from_secs(30);
/// Token lifetime: longer than any run.
const TOKEN_TTL: Duration = Duration::from_secs(4 * 3600);
/// Bookings in flight at once.
const BOOKING_CONCURRENCY: usize = 16;

/// What booking the consultations over REST took: concurrent writes, each a transaction.
#[derive(Debug, Clone, Serialize)]
pub struct Booking {
    /// Consultations booked.
    pub consultations: u64,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// First request sent → last answer, seconds.
    pub wall_s: f64,
    /// Each `POST /api/v1/consultations`: sent → answered.
    pub latency: Option<Spread>,
}

/// A server ready for load.
pub struct Target {
    /// Which one.
    pub kind: SignalServer,
    /// Its base URL.
    pub url: String,
    /// Its command line, or the URL it was given at.
    pub description: String,
    /// The child process, when this benchmark started it.
    pub process: Option<ChildGuard>,
    /// Its stdout and stderr.
    pub log: Option<PathBuf>,
    /// Its data directory, when this benchmark started it.
    pub data_dir: Option<PathBuf>,
    /// Signs participants' tokens (Wakili); `None`: any token does (the reference).
    minter: Option<Minter>,
    /// Holds the data directory until the run ends.
    _dir: Option<tempfile::TempDir>,
}

/// How to reach Wakili: the flags every benchmark against it shares.
#[derive(Debug, Clone, Copy)]
pub struct Launch<'a> {
    /// `--url`: an already running server.
    pub url: Option<&'a str>,
    /// `--jwt-secret-file`: the HS256 secret of the server at `url`.
    pub jwt_secret_file: Option<&'a Path>,
    /// `--wakili-bin`: the binary to start otherwise.
    pub wakili_bin: Option<&'a Path>,
    /// Name prefix of the temporary directory holding a started server's data and log.
    pub dir_prefix: &'a str,
    /// Connections the load opens at once, spread over the 127.0.0.x sources (see
    /// `load::LOOPBACK_SOURCES`); a started Wakili is told to admit them when its default caps
    /// (`http.max_connections`, `http.max_connections_per_ip`) would not.
    pub connections: Option<u64>,
    /// `WAKILI_DATABASE_URL` of a started Wakili (default: SQLite in its data directory).
    pub database_url: Option<&'a str>,
    /// `WAKILI_SIGNALING__REDIS_URL` of a started Wakili (a node of several).
    pub redis_url: Option<&'a str>,
    /// Secrets (the `secrets/` of another node's data directory) a started Wakili shares, so
    /// that tokens and recordings are good on every node.
    pub secrets_from: Option<&'a Path>,
    /// `WAKILI_WORKER_THREADS` of a started Wakili (default: one thread per core).
    pub worker_threads: Option<u32>,
}

impl<'a> Launch<'a> {
    /// The flags of `wakili-bench signal`.
    pub fn signal(args: &'a SignalArgs) -> Self {
        Self {
            url: args.url.as_deref(),
            jwt_secret_file: args.jwt_secret_file.as_deref(),
            wakili_bin: args.wakili_bin.as_deref(),
            dir_prefix: "wakili-bench-signal-",
            // Every participant holds a WebSocket; bookings and probes need a few more.
            connections: Some(args.participants() + 1000),
            database_url: args.database_url.as_deref(),
            redis_url: None,
            secrets_from: None,
            worker_threads: None,
        }
    }
}

/// Starts (or, with `--url`, reaches) `kind` and waits until it answers.
pub async fn start(kind: SignalServer, launch: &Launch<'_>) -> anyhow::Result<Target> {
    if let (SignalServer::Wakili, Some(url)) = (kind, launch.url) {
        let secret_file = launch
            .jwt_secret_file
            .context("--url needs --jwt-secret-file")?;
        let url = url.trim_end_matches('/').to_owned();
        let mut target = Target {
            kind,
            description: format!("already running at {url}"),
            url,
            process: None,
            log: None,
            data_dir: None,
            minter: Some(minter_from(secret_file)?),
            _dir: None,
        };
        wait_healthy(&mut target).await?;
        return Ok(target);
    }
    let dir = tempfile::Builder::new()
        .prefix(launch.dir_prefix)
        .tempdir()
        .context("cannot create a temporary directory")?;
    let port = process::free_port()?;
    let mut command = match kind {
        SignalServer::Wakili | SignalServer::Cluster => {
            let mut command = Command::new(servers::locate_wakili(launch.wakili_bin)?);
            command
                .arg("serve")
                .args(["--listen", &format!("127.0.0.1:{port}")])
                .args(["--turn-listen", "127.0.0.1:0"])
                .args(["--sfu-listen", "127.0.0.1:0"])
                .arg("--data-dir")
                .arg(dir.path().join("data"));
            // Nothing from the caller's configuration leaks in: no ./wakili.toml, no WAKILI_*.
            for (key, _) in std::env::vars_os() {
                if key.to_string_lossy().starts_with("WAKILI_") {
                    command.env_remove(&key);
                }
            }
            command.env("RUST_LOG", "warn");
            if let Some(url) = launch.database_url {
                command.env("WAKILI_DATABASE_URL", url);
            }
            if let Some(url) = launch.redis_url {
                command.env("WAKILI_SIGNALING__REDIS_URL", url);
            }
            if let Some(threads) = launch.worker_threads {
                command.env("WAKILI_WORKER_THREADS", threads.to_string());
            }
            if let Some(secrets) = launch.secrets_from {
                copy_dir(secrets, &dir.path().join("data/secrets"))?;
            }
            if let Some(connections) = launch.connections.filter(|&n| over_default_caps(n)) {
                // The load is this host's: caps meant for the internet would refuse it.
                command
                    .env("WAKILI_HTTP__MAX_CONNECTIONS", connections.to_string())
                    .env("WAKILI_HTTP__MAX_CONNECTIONS_PER_IP", "0");
            }
            command
        }
        SignalServer::Reference => {
            let mut command =
                Command::new(std::env::current_exe().context("cannot locate this executable")?);
            command
                .arg("signal-reference-server")
                .args(["--listen", &format!("127.0.0.1:{port}")]);
            command
        }
    };
    command.current_dir(dir.path());
    let description = servers::describe(&command);
    let log = dir.path().join(format!("{}.log", kind.name()));
    let out = File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
    let err = out.try_clone()?;
    // To a file, not a pipe: a full pipe would stall the server. The child inherits this
    // process's raised open-file limit.
    command
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err));
    let process = ChildGuard::spawn(kind.name(), &mut command)?;
    let mut target = Target {
        kind,
        url: format!("http://127.0.0.1:{port}"),
        description,
        process: Some(process),
        log: Some(log),
        data_dir: (kind != SignalServer::Reference).then(|| dir.path().join("data")),
        minter: None,
        _dir: None,
    };
    wait_healthy(&mut target).await?;
    if kind != SignalServer::Reference {
        let key = dir.path().join("data/secrets/jwt-hs256.key");
        target.minter = Some(minter_from(&key)?);
    }
    target._dir = Some(dir);
    Ok(target)
}

/// Copies the files of `from` into `to` (created).
fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    for entry in fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))? {
        let entry = entry?;
        fs::copy(entry.path(), to.join(entry.file_name()))
            .with_context(|| format!("cannot copy {}", entry.path().display()))?;
    }
    Ok(())
}

/// Whether `connections` spread over the loopback sources exceed a default Wakili's caps. Only
/// then are they raised, so that older binaries (`--wakili-bin`), which know no `[http]`
/// settings, still start for smaller loads.
fn over_default_caps(connections: u64) -> bool {
    let caps = wakili_settings::HttpSettings::default();
    let per_source = connections.div_ceil(u64::from(super::load::LOOPBACK_SOURCES));
    connections > u64::from(caps.max_connections)
        || per_source > u64::from(caps.max_connections_per_ip)
}

fn minter_from(path: &Path) -> anyhow::Result<Minter> {
    let text =
        fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    // The secret is the file's text (base64), as the server reads it.
    Minter::hs256(text.trim().as_bytes())
        .with_context(|| format!("{}: not a usable HS256 secret", path.display()))
}

impl Target {
    /// The server's pid, when it is this benchmark's child.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(ChildGuard::pid)
    }

    /// Fails when the child process has ended, with the end of its log.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        if let Some(process) = &mut self.process
            && let Some(status) = process.exited()?
        {
            bail!(
                "{} exited ({status}); its last output:{}",
                self.kind.name(),
                self.log_tail()
            );
        }
        Ok(())
    }

    /// The last lines of the server's log, for error messages.
    pub fn log_tail(&self) -> String {
        self.log
            .as_deref()
            .map(|log| process::log_tail(log, 15))
            .unwrap_or_default()
    }

    /// Tokens for every participant (2i: pair i's lawyer, 2i + 1: its client), a booked
    /// consultation per pair, and what the booking took (not for the reference, which books
    /// nothing).
    pub async fn prepare(
        &self,
        pairs: u32,
    ) -> anyhow::Result<(Vec<String>, Vec<String>, Option<Booking>)> {
        let Some(minter) = &self.minter else {
            // The reference takes any token and any consultation id.
            let participants = pairs as usize * 2;
            return Ok((
                vec!["reference".to_owned(); participants],
                (0..pairs).map(|i| format!("consultation-{i}")).collect(),
                None,
            ));
        };
        let run = run_tag();
        let now = Utc::now();
        let mint = |user: &str, role: Role, name: &str| -> anyhow::Result<String> {
            let request = TokenRequest {
                user_id: UserId::parse(user)?,
                role,
                name: name.to_owned(),
                ttl: TOKEN_TTL,
            };
            Ok(minter.mint(&request, now)?)
        };
        let mut tokens = Vec::with_capacity(pairs as usize * 2);
        let mut clients = Vec::with_capacity(pairs as usize);
        for i in 0..pairs {
            let lawyer = format!("bench-{run}-lawyer-{i}");
            let client = format!("bench-{run}-client-{i}");
            tokens.push(mint(&lawyer, Role::Lawyer, &format!("Lawyer {i}"))?);
            tokens.push(mint(&client, Role::Client, &format!("Client {i}"))?);
            clients.push(client);
        }
        let (consultations, booking) = self.book(&tokens, clients).await?;
        Ok((tokens, consultations, Some(booking)))
    }

    /// Books one consultation per pair over REST, as its lawyer, [`BOOKING_CONCURRENCY`] at a
    /// time, timing each.
    async fn book(
        &self,
        tokens: &[String],
        clients: Vec<String>,
    ) -> anyhow::Result<(Vec<String>, Booking)> {
        let http = reqwest::Client::new();
        let endpoint = format!("{}/api/v1/consultations", self.url);
        let scheduled_at = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let jobs: Arc<Vec<(String, String)>> = Arc::new(
            clients
                .into_iter()
                .enumerate()
                .map(|(i, client)| (tokens[2 * i].clone(), client))
                .collect(),
        );
        let latency = Arc::new(Histogram::new());
        let started = Instant::now();
        let mut workers = Vec::new();
        for worker in 0..BOOKING_CONCURRENCY {
            let (http, endpoint, jobs, scheduled_at, latency) = (
                http.clone(),
                endpoint.clone(),
                jobs.clone(),
                scheduled_at.clone(),
                latency.clone(),
            );
            workers.push(tokio::spawn(async move {
                let mut booked = Vec::new();
                for i in (worker..jobs.len()).step_by(BOOKING_CONCURRENCY) {
                    let (token, client) = &jobs[i];
                    let sent = Instant::now();
                    let body = serde_json::json!({
                        "clientId": client,
                        "scheduledAt": scheduled_at,
                        "durationMinutes": 60,
                    });
                    let response = http
                        .post(&endpoint)
                        .bearer_auth(token)
                        .json(&body)
                        .send()
                        .await
                        .with_context(|| format!("POST {endpoint}"))?;
                    let status = response.status();
                    let text = response.text().await.unwrap_or_default();
                    let took = sent.elapsed().as_nanos();
                    latency.record(u64::try_from(took).unwrap_or(u64::MAX));
                    if !status.is_success() {
                        bail!("POST {endpoint}: {status}: {text}");
                    }
                    let created: serde_json::Value = serde_json::from_str(&text)
                        .with_context(|| format!("POST {endpoint}: not JSON: {text}"))?;
                    let id = created
                        .get("id")
                        .and_then(serde_json::Value::as_str)
                        .with_context(|| format!("POST {endpoint}: no id in {text}"))?;
                    booked.push((i, id.to_owned()));
                }
                anyhow::Ok(booked)
            }));
        }
        let mut ids = vec![String::new(); jobs.len()];
        for worker in workers {
            for (i, id) in worker.await.context("a booking task failed")?? {
                ids[i] = id;
            }
        }
        let booking = Booking {
            consultations: ids.len() as u64,
            concurrency: BOOKING_CONCURRENCY,
            wall_s: started.elapsed().as_secs_f64(),
            latency: Spread::of(&latency),
        };
        Ok((ids, booking))
    }
}

/// Distinguishes this run's users from earlier runs against the same server.
fn run_tag() -> String {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("{:x}{:x}", seconds & 0xff_ffff, std::process::id())
}

/// Polls `/healthz` until it answers 200; fails when the child exits or after 30 s.
async fn wait_healthy(target: &mut Target) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    let url = format!("{}/healthz", target.url);
    let started = tokio::time::Instant::now();
    loop {
        if let Ok(response) = http.get(&url).send().await
            && response.status().is_success()
        {
            return Ok(());
        }
        target
            .ensure_running()
            .context("the server did not start")?;
        if started.elapsed() > STARTUP_LIMIT {
            bail!(
                "{} did not answer GET {url} within {} s; its last output:{}",
                target.kind.name(),
                STARTUP_LIMIT.as_secs(),
                target.log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::over_default_caps;

    #[test]
    fn caps_are_raised_only_for_loads_beyond_the_defaults() {
        // --light and 2,000 participants fit the defaults: older binaries can be measured.
        assert!(!over_default_caps(40 + 1000));
        assert!(!over_default_caps(2000 + 1000));
        // 18,000 idle participants exceed max_connections (and 500 per source).
        assert!(over_default_caps(18_000 + 1000));
    }
}
