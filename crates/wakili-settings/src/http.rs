//! The `[http]` section: how long HTTP connections may sit idle or trickle a request head, how
//! many may be open, in total and per client address, and how many may wait to be accepted.

use std::{net::IpAddr, time::Duration};

use serde::{Deserialize, Serialize};

/// Limits on the HTTP listener's connections (`[http]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// Longest a client may take to send a request head, counted from the accept (first request)
    /// or from the request's first byte (later requests on a keep-alive connection). Slow
    /// senders ("slowloris") are disconnected after it.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Longest a keep-alive connection may wait between requests before it is closed. Upgraded
    /// (WebSocket) connections are not idle connections: this never closes them.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Most connections open at once, WebSockets included. Beyond it new connections are closed
    /// right after the accept (with a 503 when the socket takes it); open ones are still served.
    pub max_connections: u32,
    /// Most connections open at once from one client address (IPv6: one /64), WebSockets
    /// included; `0`: no per-address cap.
    pub max_connections_per_ip: u32,
    /// Addresses the per-address cap does not apply to: a reverse proxy or load balancer in front
    /// (every connection arrives from it) and this host (the dashboard's load tests).
    pub per_ip_exempt: Vec<IpAddr>,
    /// Connections the kernel holds for a listener until the server accepts them (the
    /// `listen()` backlog; Linux caps it at `net.core.somaxconn`): this HTTP listener's, and
    /// also the embedded TURN's TCP and TLS listeners' and the SFU's ICE-TCP listener's. A
    /// connection arriving when it is full is dropped and its client retries after a second:
    /// a reconnect storm after a node restart needs room for what arrives while the server is
    /// busy.
    pub listen_backlog: u32,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            max_connections_per_ip: 500,
            per_ip_exempt: vec![
                IpAddr::from([127, 0, 0, 1]),
                IpAddr::from([0, 0, 0, 0, 0, 0, 0, 1]),
            ],
            listen_backlog: 4096,
        }
    }
}

impl HttpSettings {
    /// Problems with these settings, one message each.
    pub(crate) fn problems(&self) -> Vec<String> {
        let mut bad = Vec::new();
        if self.header_read_timeout.is_zero() || self.header_read_timeout > Duration::from_secs(600)
        {
            bad.push(
                "http.header_read_timeout: must be positive and at most 10m, e.g. \"10s\"".into(),
            );
        }
        if self.idle_timeout.is_zero() || self.idle_timeout > Duration::from_secs(3600) {
            bad.push("http.idle_timeout: must be positive and at most 1h, e.g. \"60s\"".into());
        }
        if self.max_connections == 0 {
            bad.push("http.max_connections: must be at least 1".into());
        }
        if self.max_connections_per_ip > self.max_connections {
            bad.push(format!(
                "http.max_connections_per_ip: must be at most http.max_connections ({}), or 0 for no per-address cap",
                self.max_connections
            ));
        }
        if !(1..=65_535).contains(&self.listen_backlog) {
            bad.push("http.listen_backlog: must be between 1 and 65535, e.g. 4096".into());
        }
        bad
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        assert!(HttpSettings::default().problems().is_empty());
        let bad = HttpSettings {
            header_read_timeout: Duration::ZERO,
            idle_timeout: Duration::from_secs(7200),
            max_connections: 10,
            max_connections_per_ip: 11,
            listen_backlog: 0,
            ..HttpSettings::default()
        };
        let problems = bad.problems().join("\n");
        for key in [
            "http.header_read_timeout",
            "http.idle_timeout",
            "http.max_connections_per_ip",
            "http.listen_backlog",
        ] {
            assert!(problems.contains(key), "{key} in {problems}");
        }
        let none = HttpSettings {
            max_connections: 0,
            max_connections_per_ip: 0,
            ..HttpSettings::default()
        };
        assert!(
            none.problems()
                .join("\n")
                .contains("http.max_connections: must be at least 1")
        );
    }
}
