//! The `wakili` binary as the tests run it: a clean environment, a server process, tokens.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Output, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

pub fn wakili(cwd: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wakili"));
    cmd.current_dir(cwd);
    // No configuration but what a test gives.
    for (key, _) in std::env::vars() {
        if key.starts_with("WAKILI_") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    cmd
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap()
}

pub fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

pub struct Server {
    child: Child,
    pub base: String,
    /// The SFU's media address, when it runs.
    pub sfu: Option<std::net::SocketAddr>,
    lines: mpsc::Receiver<String>,
}

impl Server {
    pub fn start(cwd: &Path, extra: &[&str]) -> Self {
        Self::start_with_env(cwd, extra, &[])
    }

    /// [`Server::start`] with extra environment variables.
    pub fn start_with_env(cwd: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_at(cwd, "127.0.0.1:0", extra, env)
    }

    /// [`Server::start_with_env`] listening on `listen` (a node a load balancer knows by
    /// address comes back on the same one).
    pub fn start_at(cwd: &Path, listen: &str, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = wakili(cwd)
            .envs(env.iter().copied())
            .args([
                "serve",
                "--listen",
                listen,
                "--turn-listen",
                "127.0.0.1:0",
                "--sfu-listen",
                "127.0.0.1:0",
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // From here on, Drop kills and reaps the child whatever happens.
        let mut server = Self {
            child,
            base: String::new(),
            sfu: None,
            lines,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        // The summary names the HTTP listener, then (a few lines on) the SFU.
        loop {
            assert!(
                Instant::now() < deadline,
                "no listen and SFU lines in the summary"
            );
            let line = server
                .lines
                .recv_timeout(Duration::from_secs(30))
                .expect("server prints its summary");
            let line = line.trim();
            if let Some(addr) = line.strip_prefix("listen") {
                server.base = format!("http://{}", addr.trim());
            } else if let Some(sfu) = line.strip_prefix("SFU") {
                server.sfu = sfu
                    .trim()
                    .strip_prefix("udp ")
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|addr| addr.parse().ok());
                break;
            }
        }
        server
    }

    /// The server's process id (to read its `/proc/<pid>/status`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The first word of `field:` in the server's `/proc/<pid>/status` (`VmRSS` → KiB).
    pub fn status_field(&self, field: &str) -> Option<String> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let line = status
            .lines()
            .find(|l| l.split(':').next() == Some(field))?;
        line.split(':')
            .nth(1)?
            .split_whitespace()
            .next()
            .map(str::to_owned)
    }

    /// SIGKILL, as a crash: nothing is flushed or closed.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then wait: the exit status and everything printed.
    pub fn terminate(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        // A node behind a balancer drains first (`shutdown_drain`, at most a few seconds here).
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, self.lines.try_iter().collect());
            }
            assert!(Instant::now() < deadline, "server ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Books a consultation at `base` as `lawyer` (`body`: the booking's fields); its id.
pub async fn book(base: &str, lawyer: &str, body: &serde_json::Value) -> String {
    let booked: serde_json::Value = reqwest::Client::new()
        .post(format!("{base}/api/v1/consultations"))
        .bearer_auth(lawyer)
        .json(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    booked["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {booked}"))
        .to_owned()
}

pub fn token(cwd: &Path, sub: &str, role: &str) -> String {
    stdout(&run(wakili(cwd).args([
        "token", "--sub", sub, "--role", role, "--name", "Amina W.",
    ])))
    .trim()
    .to_owned()
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
