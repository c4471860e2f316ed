//! The platform's webhook receiver, as a test talks to it: `tests/node/webhook-receiver.mjs`
//! (Node's HTTP server and the npm `standardwebhooks` verifier) in a child process, told how to
//! answer and asked what it received over HTTP.

use std::{path::PathBuf, process::Stdio, time::Duration};

use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

/// One message the receiver took (it answered with whatever status it was set to).
#[derive(Debug, Clone)]
pub struct Received {
    /// `webhook-id`.
    pub id: String,
    /// The body's `type`.
    pub kind: String,
    /// The body's `data`.
    pub data: Value,
    /// How many signatures the header carried.
    pub signatures: usize,
    /// The secrets that verified it.
    pub verified_with: Vec<String>,
    /// The status the receiver answered with.
    pub answered: u16,
    /// When it arrived (ms since the epoch, the receiver's clock).
    pub at_ms: u64,
}

/// A running receiver; stopped when dropped.
pub struct Receiver {
    child: Child,
    port: u16,
    http: reqwest::Client,
    secrets: Vec<String>,
}

/// `tests/node`.
fn node_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/node")
}

impl Receiver {
    /// Starts a receiver verifying with `secrets`, on `port` (0: any).
    ///
    /// # Panics
    ///
    /// When Node.js or the npm package is missing, or it does not start within 20 s.
    pub async fn start(secrets: &[&str], port: u16) -> Self {
        let dir = node_dir();
        // The repository root is an npm workspace: its node_modules serves tests/node.
        let modules = dir.join("../../node_modules/standardwebhooks");
        assert!(
            modules.is_dir(),
            "standardwebhooks is not installed in {}: run scripts/install-test-tools",
            modules.display()
        );
        let secrets: Vec<String> = secrets.iter().map(|s| (*s).to_owned()).collect();
        let mut child = Command::new("node")
            .arg("webhook-receiver.mjs")
            .current_dir(&dir)
            .env("WEBHOOK_SECRETS", json!(secrets).to_string())
            .env("WEBHOOK_PORT", port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node (Node.js 18+) runs the receiver");
        let stdout = child.stdout.take().expect("piped");
        let mut lines = BufReader::new(stdout).lines();
        let port = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(line) = lines.next_line().await.expect("receiver output") {
                if let Some(port) = line.strip_prefix("LISTENING ") {
                    return port.trim().parse::<u16>().expect("a port");
                }
            }
            panic!("the receiver exited before listening");
        })
        .await
        .expect("the receiver listens within 20 s");
        Self {
            child,
            port,
            http: reqwest::Client::new(),
            secrets,
        }
    }

    /// Its port.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The endpoint URL.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    /// Answers every message with `status` from now on (with `Retry-After` when given).
    ///
    /// # Panics
    ///
    /// When the receiver does not answer.
    pub async fn answer(&self, status: u16, retry_after: Option<&str>) {
        self.http
            .post(format!("http://127.0.0.1:{}/control", self.port))
            .json(&json!({ "status": status, "retryAfter": retry_after }))
            .send()
            .await
            .expect("receiver control")
            .error_for_status()
            .expect("receiver control accepted");
    }

    /// Everything received so far, in arrival order, and how many signatures failed.
    ///
    /// # Panics
    ///
    /// When the receiver does not answer.
    pub async fn received(&self) -> (Vec<Received>, u64) {
        let body: Value = self
            .http
            .get(format!("http://127.0.0.1:{}/received", self.port))
            .send()
            .await
            .expect("receiver")
            .json()
            .await
            .expect("JSON");
        let items = body["received"]
            .as_array()
            .expect("a list")
            .iter()
            .map(|r| Received {
                id: r["id"].as_str().unwrap_or_default().to_owned(),
                kind: r["type"].as_str().unwrap_or_default().to_owned(),
                data: r["data"].clone(),
                signatures: r["signatures"].as_u64().unwrap_or_default() as usize,
                verified_with: r["verifiedWith"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|s| s.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default(),
                answered: r["answered"].as_u64().unwrap_or_default() as u16,
                at_ms: r["at"].as_u64().unwrap_or_default(),
            })
            .collect();
        (items, body["rejected"].as_u64().unwrap_or_default())
    }

    /// The messages it accepted (answered 2xx), once `done` holds for them, polling up to
    /// `limit`.
    ///
    /// # Panics
    ///
    /// When `done` does not hold in time, with what was received.
    pub async fn wait_for(
        &self,
        limit: Duration,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let (all, _) = self.received().await;
            let accepted: Vec<Received> = all
                .into_iter()
                .filter(|r| (200..300).contains(&r.answered))
                .collect();
            if done(&accepted) {
                return accepted;
            }
            if tokio::time::Instant::now() >= deadline {
                let kinds: Vec<&str> = accepted.iter().map(|r| r.kind.as_str()).collect();
                panic!("webhooks not received within {limit:?}; accepted so far: {kinds:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The secrets it verifies with.
    #[must_use]
    pub fn secrets(&self) -> &[String] {
        &self.secrets
    }

    /// Stops it (connections are then refused).
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}
