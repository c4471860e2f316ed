//! The real server for integration tests: [`wakili_server::prepare`] then
//! [`wakili_server::serve`] on port 0, over a [`TestDatabase`] and a temporary data directory,
//! stopped through a channel the way SIGTERM stops it. Each test starts its own, so tests run in
//! parallel.
//!
//! Every server starts from the test defaults (HS256 with [`SECRET`] and no leeway, TURN REST
//! with [`TURN_SECRET`], the embedded TURN server on free ports, a two-second shutdown grace);
//! a `configure` closure changes what a test needs. [`spawn_app`] and [`spawn_app_with`] are the
//! usual entry points; [`Launch`] also sets the server's clock, and [`Launch::prepare`] gives the
//! prepared state to look at before it serves.

mod http;
mod tokens;

use std::{net::SocketAddr, path::Path, time::Duration};

use reqwest::{Client, Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};
use tokio::{sync::oneshot, task::JoinHandle};
use wakili_db::Backend;
use wakili_server::{AppState, Clock, ServerError};
use wakili_settings::{Secret, Settings};

pub use http::{day, error_code, metric_at, read};
pub use tokens::{SECRET, token, token_at};

use crate::db::TestDatabase;

/// The TURN REST secret every test server shares with the TURN servers it hands out.
pub const TURN_SECRET: &str = "turn-rest-secret-for-tests";

/// How long a stopping server may take after its drain: its two-second grace and some.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The options of a test server other than its settings: for now, the clock it reads
/// (the system clock unless set).
#[derive(Clone)]
pub struct Launch {
    clock: Clock,
}

impl Default for Launch {
    fn default() -> Self {
        Self {
            clock: Clock::system(),
        }
    }
}

impl Launch {
    /// A server on the system clock.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A server that reads `clock` (e.g. [`ManualClock::clock`](crate::clock::ManualClock::clock))
    /// wherever it needs the time.
    #[must_use]
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Prepares a server on `database_url` with the test defaults and `configure`'s changes
    /// (data directories created, database migrated, embedded TURN listening), without serving
    /// HTTP yet: [`Prepared::serve`] does.
    ///
    /// # Panics
    /// When the settings do not validate or the server cannot be prepared.
    pub async fn prepare(
        self,
        database_url: &str,
        configure: impl FnOnce(&mut Settings),
    ) -> Prepared {
        let data = tempfile::tempdir().expect("temporary data directory");
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
        settings.validate().expect("valid test settings");
        settings.turn.listen = "127.0.0.1:0".parse().expect("a socket address");
        settings.sfu.listen = "127.0.0.1:0".parse().expect("a socket address");
        let state = wakili_server::prepare(settings, self.clock)
            .await
            .expect("the server prepares");
        Prepared { state, data }
    }

    /// A server on `database_url` with the test defaults and `configure`'s changes, once ready:
    /// another node of a deployment whose database the caller keeps.
    ///
    /// # Panics
    /// When it cannot be prepared or does not become ready within five seconds.
    pub async fn start(
        self,
        database_url: &str,
        configure: impl FnOnce(&mut Settings),
    ) -> TestServer {
        self.prepare(database_url, configure).await.serve().await
    }

    /// A server with its own new database of `backend`, the test defaults and `configure`'s
    /// changes, once ready.
    ///
    /// # Panics
    /// When the database or the server cannot be had, or it does not become ready within five
    /// seconds.
    pub async fn app(self, backend: Backend, configure: impl FnOnce(&mut Settings)) -> TestApp {
        let db = TestDatabase::new(backend).await;
        let TestServer {
            addr,
            sfu,
            running,
            turn_ports,
            data,
        } = self.start(&db.url, configure).await;
        TestApp {
            sfu,
            addr,
            http: Client::new(),
            db,
            running,
            turn_ports,
            data,
        }
    }
}

/// A server that is prepared but does not serve HTTP yet.
pub struct Prepared {
    /// Its state, to look at before it serves (or instead: the embedded TURN server already
    /// runs).
    pub state: AppState,
    data: tempfile::TempDir,
}

impl Prepared {
    /// Its data directory.
    #[must_use]
    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// Serves on a free port of 127.0.0.1, once `/readyz` says it is ready.
    ///
    /// # Panics
    /// When no port can be had or it does not become ready within five seconds.
    pub async fn serve(self) -> TestServer {
        // Bound as `wakili serve` binds, with the configured listen backlog.
        let backlog = self.state.settings.http.listen_backlog;
        let listener =
            wakili_net::listen(([127, 0, 0, 1], 0).into(), backlog).expect("a free local port");
        let addr = listener.local_addr().expect("the listener's address");
        let turn_ports = embedded_turn_ports(&self.state);
        let sfu = self
            .state
            .sfu
            .as_ref()
            .map(|(handle, _)| handle.local_addr());
        let (shutdown, stopped) = oneshot::channel();
        let drain = self.state.settings.shutdown_drain;
        let task = tokio::spawn(wakili_server::serve(self.state, listener, async {
            let _ = stopped.await;
        }));
        let server = TestServer {
            addr,
            sfu,
            running: Running {
                shutdown: Some(shutdown),
                task: Some(task),
                drain,
            },
            turn_ports,
            data: self.data,
        };
        // Ready when /readyz says so (the database answers).
        let http = Client::new();
        for _ in 0..100 {
            if let Ok(r) = http.get(server.url("/readyz")).send().await
                && r.status() == StatusCode::OK
            {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("server did not become ready");
    }
}

/// The embedded TURN server's UDP and TCP ports, `(0, 0)` without one.
fn embedded_turn_ports(state: &AppState) -> (u16, u16) {
    state
        .ice
        .embedded()
        .map_or((0, 0), |t| (t.udp_port, t.tcp_port))
}

/// A serving server's task and the channel that stops it.
struct Running {
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ServerError>>>,
    /// Its `shutdown_drain`, which the stop waits through first.
    drain: Duration,
}

impl Running {
    /// Signals shutdown and waits for the server's result; `what` names it in the panic.
    async fn stop(mut self, what: &str) -> Result<(), ServerError> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let task = self.task.take().expect("a running server");
        tokio::time::timeout(STOP_TIMEOUT + self.drain, task)
            .await
            .unwrap_or_else(|_| panic!("{what} stops within the grace period"))
            .expect("the server task does not panic")
    }
}

/// A serving server that owns no database (another node of the same deployment, on a database
/// the caller keeps alive for as long as it runs). Dropping it starts its shutdown;
/// [`stop`](Self::stop) waits for it.
pub struct TestServer {
    /// Where it serves HTTP.
    pub addr: SocketAddr,
    /// Where its SFU takes media (UDP and ICE-TCP), when it runs one.
    pub sfu: Option<SocketAddr>,
    running: Running,
    turn_ports: (u16, u16),
    /// Its data directory.
    pub data: tempfile::TempDir,
}

impl TestServer {
    /// `http://<addr><path>`.
    #[must_use]
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The embedded TURN server's UDP and TCP ports.
    #[must_use]
    pub fn turn_ports(&self) -> (u16, u16) {
        self.turn_ports
    }

    /// Stops it the way SIGTERM does and waits for it: its result.
    ///
    /// # Panics
    /// When it takes longer than ten seconds or its task panicked.
    pub async fn stop(self) -> Result<(), ServerError> {
        self.running.stop("node").await
    }
}

/// A serving server with its own database, and an HTTP client for it. Dropping it starts the
/// server's shutdown and removes the database; [`stop`](Self::stop) waits for the server.
pub struct TestApp {
    /// Where it serves HTTP.
    pub addr: SocketAddr,
    /// Where its SFU takes media (UDP and ICE-TCP), when it runs one.
    pub sfu: Option<SocketAddr>,
    /// A client for the tests' requests.
    pub http: Client,
    /// Its database.
    pub db: TestDatabase,
    running: Running,
    turn_ports: (u16, u16),
    /// Its data directory.
    pub data: tempfile::TempDir,
}

/// [`spawn_app_with`] without changes to the test defaults.
pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

/// A server on the system clock with a new database of `backend` and the settings `configure`
/// leaves (HS256 with [`SECRET`] unless changed), once ready.
pub async fn spawn_app_with(backend: Backend, configure: impl FnOnce(&mut Settings)) -> TestApp {
    Launch::new().app(backend, configure).await
}

/// A second (third, …) node on `database_url`, configured like [`spawn_app_with`] does.
pub async fn spawn_node_with(
    database_url: &str,
    configure: impl FnOnce(&mut Settings),
) -> TestServer {
    Launch::new().start(database_url, configure).await
}

impl TestApp {
    /// The embedded TURN server's UDP and TCP ports.
    #[must_use]
    pub fn turn_ports(&self) -> (u16, u16) {
        self.turn_ports
    }

    /// `http://<addr><path>`.
    #[must_use]
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A request to `path` with `token` as its bearer.
    pub fn request(&self, method: Method, path: &str, token: &str) -> RequestBuilder {
        self.http.request(method, self.url(path)).bearer_auth(token)
    }

    /// The value of the unlabelled sample `name` in `/metrics`, if it is there.
    ///
    /// # Panics
    /// When `/metrics` does not answer.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        metric_at(&self.url(""), name).await
    }

    /// Sends a request (with `body` as JSON, if any) and [`read`]s the answer.
    ///
    /// # Panics
    /// When the request fails or the answer is not JSON.
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
        read(request.send().await.expect("the request is answered")).await
    }

    /// Books a 45-minute consultation with `client` at `at` (RFC 3339) as the lawyer `token`
    /// names; the created consultation.
    ///
    /// # Panics
    /// Unless it is created.
    pub async fn book(&self, token: &str, client: &str, at: &str) -> Value {
        self.book_in(token, client, at, "auto").await
    }

    /// [`book`](Self::book) with media mode `mode` (`p2p`: the lawyer's browser records).
    ///
    /// # Panics
    /// Unless it is created.
    pub async fn book_in(&self, token: &str, client: &str, at: &str, mode: &str) -> Value {
        let (status, body) = self
            .call(
                Method::POST,
                "/api/v1/consultations",
                token,
                Some(
                    json!({"clientId": client, "scheduledAt": at, "durationMinutes": 45,
                            "notes": "privileged", "mediaMode": mode}),
                ),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    /// Stops the server the way SIGTERM does and waits for it: its result.
    ///
    /// # Panics
    /// When it takes longer than ten seconds or its task panicked.
    pub async fn stop(self) -> Result<(), ServerError> {
        self.running.stop("server").await
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use wakili_core::Role;

    use super::*;
    use crate::clock::ManualClock;

    #[tokio::test]
    async fn an_app_serves_until_stopped() {
        let app = spawn_app(Backend::Sqlite).await;
        let (status, body) = app
            .call(
                Method::GET,
                "/api/v1/me",
                &token("lawyer-1", Role::Lawyer),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, body) = app
            .call(Method::GET, "/api/v1/me", "not-a-token", None)
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(!error_code(&body).is_empty());
        let url = app.url("/readyz");
        app.stop().await.expect("a clean stop");
        assert!(Client::new().get(url).send().await.is_err(), "stopped");
    }

    #[tokio::test]
    async fn a_launch_on_a_manual_clock_judges_tokens_by_it() {
        let clock = ManualClock::at(Utc::now() - chrono::Duration::hours(5));
        let app = Launch::new()
            .clock(clock.clock())
            .app(Backend::Sqlite, |_| {})
            .await;
        let on_its_clock = token_at(
            "client-1",
            Role::Client,
            clock.now(),
            Duration::from_secs(3600),
        );
        let (status, _) = app
            .call(Method::GET, "/api/v1/me", &on_its_clock, None)
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = app
            .call(
                Method::GET,
                "/api/v1/me",
                &token("client-1", Role::Client),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "issued in its future");
        clock.advance(Duration::from_secs(3601));
        let (status, _) = app
            .call(Method::GET, "/api/v1/me", &on_its_clock, None)
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "expired on its clock");
    }

    #[tokio::test]
    async fn a_prepared_server_can_be_looked_at_before_it_serves() {
        let db = TestDatabase::new(Backend::Sqlite).await;
        let prepared = Launch::new().prepare(&db.url, |_| {}).await;
        assert!(prepared.data_dir().is_dir());
        let (udp, tcp) = embedded_turn_ports(&prepared.state);
        assert!(udp != 0 && tcp != 0, "embedded TURN on free ports");
        let node = prepared.serve().await;
        assert_eq!(node.turn_ports(), (udp, tcp));
        node.stop().await.expect("a clean stop");
    }
}
