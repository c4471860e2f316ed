//! Calls outlive their nodes: three `wakili serve` processes behind HAProxy (the shipped
//! `deploy/haproxy/haproxy.cfg`), sharing PostgreSQL and Redis, hold three calls (a WebSocket
//! lawyer and a long-polling client each). One node is killed with SIGKILL mid-call: everyone
//! on it resumes through the balancer on the others within `signaling.resume_grace`, as the same
//! participant, and signals flow again. Then every node is restarted in turn as systemd would
//! (SIGTERM, drain, start again at the same address): no call drops. Scenario:
//! `tests/node/failover.mjs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    sync::{Arc, Mutex, mpsc},
    time::{Duration, Instant},
};

use common::*;
use serde_json::{Value, json};
use wakili_db::Backend;
use wakili_testkit::{db::TestDatabase, haproxy::Balancer};

const GRACE: Duration = Duration::from_secs(30);
const CALLS: usize = 3;
/// What `deploy/systemd/wakili.service` sets: longer than HAProxy's 2 checks 2 s apart.
const DRAIN: &str = "5s";
/// HAProxy puts a node back after 2 good checks 2 s apart.
const RISE: Duration = Duration::from_millis(4500);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed when dropped.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The nodes, each at a fixed address in its own directory, sharing the first one's secrets.
struct Cluster {
    dirs: Vec<PathBuf>,
    ports: Vec<u16>,
    env: Vec<(String, String)>,
    nodes: Vec<Option<Server>>,
}

impl Cluster {
    fn start(root: &Path, env: Vec<(String, String)>) -> Self {
        let dirs: Vec<PathBuf> = (1..=3).map(|i| root.join(format!("node{i}"))).collect();
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let mut cluster = Self {
            dirs,
            ports,
            env,
            nodes: Vec::new(),
        };
        for i in 0..3 {
            std::fs::create_dir_all(&cluster.dirs[i]).unwrap();
            if i > 0 {
                let secrets = cluster.dirs[0].join("data/secrets");
                let to = cluster.dirs[i].join("data/secrets");
                std::fs::create_dir_all(&to).unwrap();
                for file in std::fs::read_dir(secrets).unwrap() {
                    let file = file.unwrap();
                    std::fs::copy(file.path(), to.join(file.file_name())).unwrap();
                }
            }
            let node = cluster.launch(i);
            cluster.nodes.push(Some(node));
        }
        cluster
    }

    fn launch(&self, i: usize) -> Server {
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let listen = format!("127.0.0.1:{}", self.ports[i]);
        Server::start_at(&self.dirs[i], &listen, &[], &env)
    }

    fn url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.ports[i])
    }

    /// Socket.IO connections open on each node (0 for a node that is down).
    async fn connections(&self, http: &reqwest::Client) -> Vec<u64> {
        let mut counts = Vec::new();
        for i in 0..3 {
            let text = match http.get(format!("{}/metrics", self.url(i))).send().await {
                Ok(r) => r.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            let count = text
                .lines()
                .find_map(|l| l.strip_prefix("wakili_socketio_connections "))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(0.0);
            counts.push(count as u64);
        }
        counts
    }

    /// Starts node `i` again at its address and waits until the balancer sends to it.
    async fn restart(&mut self, i: usize, http: &reqwest::Client) {
        self.nodes[i] = Some(self.launch(i));
        let deadline = Instant::now() + Duration::from_secs(20);
        while !http
            .get(format!("{}/readyz", self.url(i)))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            assert!(Instant::now() < deadline, "node {} not ready", i + 1);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(RISE).await;
    }
}

/// `tests/node/failover.mjs`, driven line by line.
struct Scenario {
    /// Killed when the test ends, however it ends.
    _child: Reaped,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    stderr: Arc<Mutex<String>>,
    _input: tempfile::NamedTempFile,
}

impl Scenario {
    fn start(input: &Value) -> Self {
        let node_dir = repo().join("tests/node");
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), input.to_string()).unwrap();
        let mut child = Command::new("node")
            .arg("failover.mjs")
            .current_dir(&node_dir)
            .env("WAKILI_TEST_FILE", file.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("node (Node.js 18+) on PATH");
        let stdin = child.stdin.take().unwrap();
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                eprintln!("failover.mjs: {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let err = child.stderr.take().unwrap();
        let collected = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut text = collected.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
            }
        });
        Self {
            _child: Reaped(child),
            stdin,
            lines,
            stderr,
            _input: file,
        }
    }

    /// The rest of the next line that starts with `prefix`, within `limit`.
    fn expect(&mut self, prefix: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left.max(Duration::from_millis(1))) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return rest.trim().to_owned();
                    }
                }
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(200));
                    panic!(
                        "failover.mjs: no {prefix} line within {limit:?}\n--- stderr\n{}",
                        self.stderr.lock().unwrap()
                    );
                }
            }
        }
    }

    fn send(&mut self, command: &str) {
        writeln!(self.stdin, "{command}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// `check`: everyone back and signalling; its figures.
    fn check(&mut self) -> Value {
        self.send("check");
        serde_json::from_str(&self.expect("OK", GRACE + Duration::from_secs(15))).unwrap()
    }
}

#[test]
fn calls_survive_a_killed_node_and_a_rolling_restart_behind_haproxy() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let http = reqwest::Client::new();
    let db = runtime.block_on(TestDatabase::new(Backend::Postgres));
    let redis = std::env::var("WAKILI_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let root = tempfile::tempdir().unwrap();
    let env = vec![
        ("WAKILI_DATABASE_URL".to_owned(), db.url.clone()),
        ("WAKILI_SIGNALING__REDIS_URL".to_owned(), redis),
        (
            "WAKILI_SIGNALING__RESUME_GRACE".to_owned(),
            format!("{}s", GRACE.as_secs()),
        ),
        ("WAKILI_SHUTDOWN_DRAIN".to_owned(), DRAIN.to_owned()),
    ];
    let mut cluster = Cluster::start(root.path(), env);

    let node = |i: usize| format!("127.0.0.1:{}", cluster.ports[i]);
    let balancer = runtime.block_on(Balancer::start([&node(0), &node(1), &node(2)]));
    let lb = balancer.url().to_owned();
    let (lawyers, clients): (Vec<String>, Vec<String>) = (0..CALLS)
        .map(|i| {
            (
                token(&cluster.dirs[0], &format!("fo-lawyer-{i}"), "lawyer"),
                token(&cluster.dirs[0], &format!("fo-client-{i}"), "client"),
            )
        })
        .unzip();
    let consultations: Vec<String> = runtime.block_on(async {
        let mut ids = Vec::new();
        for (i, lawyer) in lawyers.iter().enumerate() {
            let body = json!({
                "clientId": format!("fo-client-{i}"),
                "scheduledAt": chrono::Utc::now().to_rfc3339(),
                "durationMinutes": 60,
            });
            ids.push(book(&lb, lawyer, &body).await);
        }
        ids
    });

    let mut scenario = Scenario::start(&json!({
        "url": lb,
        "lb": lb,
        "consultations": consultations,
        "tokens": {"lawyer": lawyers, "client": clients},
        "graceMs": GRACE.as_millis() as u64,
    }));
    scenario.expect("READY", Duration::from_secs(60));
    let counts = runtime.block_on(cluster.connections(&http));
    eprintln!("connections per node: {counts:?}");
    assert_eq!(counts.iter().sum::<u64>(), 2 * CALLS as u64);

    // A crash: the busiest node is killed mid-call.
    let victim = (0..3).max_by_key(|&i| counts[i]).unwrap();
    let on_victim = counts[victim];
    assert!(on_victim > 0);
    let killed_at = Instant::now();
    cluster.nodes[victim].take().unwrap().kill();
    let after_kill = scenario.check();
    let recovered = killed_at.elapsed();
    eprintln!(
        "node {} killed with {on_victim} participants: {after_kill} after {recovered:?}",
        victim + 1
    );
    assert!(
        after_kill["resumes"].as_u64().unwrap() >= on_victim,
        "every participant of the killed node resumed: {after_kill}"
    );
    assert!(
        after_kill["slowestMs"].as_u64().unwrap() < GRACE.as_millis() as u64,
        "within the resume grace: {after_kill}"
    );
    let counts = runtime.block_on(cluster.connections(&http));
    assert_eq!(counts[victim], 0);
    assert_eq!(counts.iter().sum::<u64>(), 2 * CALLS as u64, "{counts:?}");
    runtime.block_on(cluster.restart(victim, &http));

    // A rolling deploy: each node in turn stops as systemd stops it (drain, then close) and
    // starts again; calls move and resume, none drops.
    let mut resumes = after_kill["resumes"].as_u64().unwrap();
    for i in 0..3 {
        let counts = runtime.block_on(cluster.connections(&http));
        let (status, _) = cluster.nodes[i].take().unwrap().terminate();
        assert!(status.success(), "node {} stopped cleanly: {status}", i + 1);
        runtime.block_on(cluster.restart(i, &http));
        let figures = scenario.check();
        eprintln!(
            "node {} restarted with {} participants: {figures}",
            i + 1,
            counts[i]
        );
        let now = figures["resumes"].as_u64().unwrap();
        assert!(
            now >= resumes + counts[i],
            "its {} participants resumed elsewhere: {figures}",
            counts[i]
        );
        resumes = now;
    }
    scenario.send("end");
    scenario.expect("ok:", Duration::from_secs(30));
}
