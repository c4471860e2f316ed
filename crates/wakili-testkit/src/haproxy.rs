//! HAProxy (Debian's `haproxy`) in front of three Wakili nodes, configured by the shipped
//! `deploy/haproxy/haproxy.cfg` exactly as written: addresses come from its environment
//! variables (`WAKILI_LB_BIND`, `WAKILI_NODE1..3`).

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

/// The `haproxy` executable; panics with how to install it when it is missing.
pub fn binary() -> &'static str {
    let found = Command::new("haproxy")
        .arg("-v")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "haproxy is needed (Debian: apt-get install haproxy; scripts/install-test-tools does it)"
    );
    "haproxy"
}

/// The shipped configuration, `deploy/haproxy/haproxy.cfg`.
pub fn shipped_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/haproxy/haproxy.cfg")
}

/// A running balancer; killed when dropped.
pub struct Balancer {
    child: Child,
    url: String,
}

impl Balancer {
    /// Starts HAProxy with the shipped configuration on a free loopback port in front of
    /// `nodes` (`host:port` each) and waits until it serves `/readyz` (within 10 s).
    pub async fn start(nodes: [&str; 3]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("no free port: {e}"));
        let child = Command::new(binary())
            .args(["-db", "-f"])
            .arg(shipped_config())
            .env("WAKILI_LB_BIND", format!("127.0.0.1:{port}"))
            .env("WAKILI_NODE1", nodes[0])
            .env("WAKILI_NODE2", nodes[1])
            .env("WAKILI_NODE3", nodes[2])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start haproxy: {e}"));
        let balancer = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let http = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !http
            .get(format!("{}/readyz", balancer.url))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "HAProxy did not serve /readyz"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        balancer
    }

    /// Its base URL, `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
