//! `spawn_app`: the real server on port 0 with its own database and data directory.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::{net::SocketAddr, time::Duration};

use reqwest::{Client, Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use wakili_auth::{Minter, TokenRequest};
use wakili_core::{Role, UserId};
use wakili_db::Backend;
use wakili_settings::{Secret, Settings};
use wakili_testkit::db::TestDatabase;

pub const SECRET: &str = "test-secret-test-secret-test-secret-0123456789";
pub const TURN_SECRET: &str = "turn-rest-secret-for-tests";

pub struct TestApp {
    pub addr: SocketAddr,
    pub http: Client,
    pub db: TestDatabase,
    shutdown: Option<oneshot::Sender<()>>,
    turn_ports: (u16, u16),
    pub server: Option<tokio::task::JoinHandle<Result<(), wakili_server::ServerError>>>,
    /// The server's data directory.
    pub data: tempfile::TempDir,
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

/// The server with the settings `configure` leaves (HS256 with [`SECRET`] unless changed).
pub async fn spawn_app_with(backend: Backend, configure: impl FnOnce(&mut Settings)) -> TestApp {
    let db = TestDatabase::new(backend).await;
    let node = start(&db.url, configure).await;
    TestApp {
        addr: node.addr,
        http: Client::new(),
        db,
        shutdown: node.shutdown,
        turn_ports: node.turn_ports,
        server: node.server,
        data: node._data,
    }
}

/// A server on `database_url` with the test defaults and `configure`'s changes, once ready.
async fn start(database_url: &str, configure: impl FnOnce(&mut Settings)) -> TestNode {
    let data = tempfile::tempdir().unwrap();
    let mut settings = Settings {
        data_dir: data.path().to_path_buf(),
        database_url: Some(database_url.to_owned()),
        shutdown_grace: Duration::from_secs(2),
        ..Settings::default()
    };
    settings.auth.leeway = Duration::ZERO;
    settings.auth.secret = Some(Secret::new(SECRET));
    settings.turn.secret = Some(Secret::new(TURN_SECRET));
    configure(&mut settings);
    settings.validate().unwrap();
    settings.turn.listen = "127.0.0.1:0".parse().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel();
    // What `launch` does, keeping the state to read where the TURN server listens.
    let state = wakili_server::prepare(settings, wakili_server::Clock::system())
        .await
        .unwrap();
    let turn_ports = state
        .ice
        .embedded()
        .map_or((0, 0), |t| (t.udp_port, t.tcp_port));
    let server = tokio::spawn(wakili_server::serve(state, listener, async {
        let _ = rx.await;
    }));
    let node = TestNode {
        addr,
        shutdown: Some(tx),
        turn_ports,
        server: Some(server),
        _data: data,
    };
    // Ready when /readyz says so (migrations ran).
    let http = Client::new();
    for _ in 0..100 {
        if let Ok(r) = http.get(node.url("/readyz")).send().await
            && r.status() == StatusCode::OK
        {
            return node;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("server did not become ready");
}

pub fn token_at(
    sub: &str,
    role: Role,
    now: chrono::DateTime<chrono::Utc>,
    ttl: Duration,
) -> String {
    Minter::hs256(SECRET.as_bytes())
        .unwrap()
        .mint(
            &TokenRequest {
                user_id: UserId::parse(sub).unwrap(),
                role,
                name: format!("{sub} name"),
                ttl,
            },
            now,
        )
        .unwrap()
}

/// `n` days from today at `hour`:00 UTC, RFC 3339 as the API prints it.
pub fn day(n: i64, hour: u32) -> String {
    let midnight = chrono::Utc::now()
        .date_naive()
        .and_hms_opt(hour, 0, 0)
        .unwrap()
        .and_utc();
    (midnight + chrono::Duration::days(n)).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

pub fn token(sub: &str, role: Role) -> String {
    token_at(sub, role, chrono::Utc::now(), Duration::from_secs(3600))
}

impl TestApp {
    /// The embedded TURN server's UDP and TCP ports.
    pub fn turn_ports(&self) -> (u16, u16) {
        self.turn_ports
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn request(&self, method: Method, path: &str, token: &str) -> RequestBuilder {
        self.http.request(method, self.url(path)).bearer_auth(token)
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.request(method, path, token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        read(request.send().await.unwrap()).await
    }

    pub async fn book(&self, token: &str, client: &str, at: &str) -> Value {
        let (status, body) = self
            .call(
                Method::POST,
                "/api/v1/consultations",
                token,
                Some(json!({"clientId": client, "scheduledAt": at, "durationMinutes": 45, "notes": "privileged"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    /// Stops the server the way SIGTERM does and waits for it.
    pub async fn stop(mut self) -> Result<(), wakili_server::ServerError> {
        let _ = self.shutdown.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(10), self.server.take().unwrap())
            .await
            .expect("server stops within the grace period")
            .unwrap()
    }
}

/// Status and JSON body; every response of this API is JSON.
pub async fn read(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap();
    let body =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text:?}"));
    (status, body)
}

/// Asserts the one error shape and returns the code.
pub fn error_code(body: &Value) -> &str {
    let error = &body["error"];
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "error message in {body}"
    );
    error["code"]
        .as_str()
        .unwrap_or_else(|| panic!("error code in {body}"))
}

/// Another server on an existing database (another node of the same deployment), with the same
/// test defaults as [`spawn_app_with`]. It owns no database: the caller keeps the
/// [`TestDatabase`] (usually inside the first node's [`TestApp`]) alive for as long as it runs.
pub struct TestNode {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    turn_ports: (u16, u16),
    server: Option<tokio::task::JoinHandle<Result<(), wakili_server::ServerError>>>,
    _data: tempfile::TempDir,
}

/// A second (third, …) node on `database_url`, configured like [`spawn_app_with`] does.
pub async fn spawn_node_with(
    database_url: &str,
    configure: impl FnOnce(&mut Settings),
) -> TestNode {
    start(database_url, configure).await
}

impl TestNode {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Stops the node the way SIGTERM does and waits for it.
    pub async fn stop(mut self) -> Result<(), wakili_server::ServerError> {
        let _ = self.shutdown.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(10), self.server.take().unwrap())
            .await
            .expect("node stops within the grace period")
            .unwrap()
    }
}

/// `tests/node`, where the scenario scripts and their npm packages live.
pub fn node_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/node")
}

/// Runs `tests/node/<script>` with `input` in the file `WAKILI_TEST_FILE` names (and `env`);
/// panics with its output unless it exits 0 within `timeout`; returns its stdout. `package` is
/// the npm package the script needs, checked first for a clear message.
pub async fn run_node(
    script: &str,
    input: &Value,
    package: &str,
    env: &[(&str, &str)],
    timeout: Duration,
) -> String {
    let dir = node_dir();
    assert!(
        dir.join("node_modules").join(package).is_dir(),
        "{package} is not installed in {}: run scripts/install-test-tools (npm ci there)",
        dir.display()
    );
    // In a file: a storm's tokens exceed what one environment variable may hold.
    let inputs = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(inputs.path(), input.to_string()).unwrap();
    let mut command = tokio::process::Command::new("node");
    command
        .arg(script)
        .current_dir(&dir)
        .env("WAKILI_TEST_FILE", inputs.path())
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = match tokio::time::timeout(timeout, command.output()).await {
        Err(_) => panic!("node {script} did not finish within {timeout:?} (killed)"),
        Ok(Err(e)) => panic!("cannot run `node {script}` (Node.js 18+ must be on PATH): {e}"),
        Ok(Ok(output)) => output,
    };
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "node {script} failed ({})\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    eprint!("{stdout}");
    stdout
}
