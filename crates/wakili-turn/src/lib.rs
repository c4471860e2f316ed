//! Wakili's embedded STUN/TURN server.
//!
//! The protocol (STUN binding, TURN allocations, permissions, channels, relaying) is webrtc-rs's
//! `turn` server. Around it, this crate adds what a relay for the public internet needs:
//! - credentials are exactly the TURN REST API ones `/webrtc/config` hands out (expiry checked;
//!   forged or expired → 401, as coturn answers);
//! - relaying to loopback, private and link-local peers is refused (403) unless allowed;
//! - allocations per user are capped (486);
//! - TURN over TCP besides UDP;
//! - counters for allocations and relayed traffic ([`TurnStats`]).

mod guard;
mod policy;
mod relay;
mod shared;
mod stats;
mod tcp;

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use chrono::{DateTime, Utc};
use tokio::net::{TcpListener, UdpSocket};
use turn::server::{
    Server,
    config::{ConnConfig, ServerConfig},
};

pub use policy::PeerPolicy;
pub use stats::{StatsSnapshot, TurnStats};

/// How the embedded server runs.
#[derive(Clone)]
pub struct TurnConfig {
    /// UDP listen address.
    pub udp: SocketAddr,
    /// TCP listen address (usually the same).
    pub tcp: SocketAddr,
    /// Authentication realm.
    pub realm: String,
    /// TURN REST API shared secret.
    pub secret: Vec<u8>,
    /// Tolerated clock skew on credential expiry.
    pub leeway: Duration,
    /// Address advertised as the relay address; default: the listen address.
    pub external_ip: Option<IpAddr>,
    /// Which peers may be relayed to.
    pub policy: PeerPolicy,
    /// Most simultaneous allocations per user.
    pub max_allocations_per_user: usize,
    /// Time source for credential expiry.
    pub clock: fn() -> DateTime<Utc>,
}

impl std::fmt::Debug for TurnConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnConfig")
            .field("udp", &self.udp)
            .field("tcp", &self.tcp)
            .field("realm", &self.realm)
            .field("external_ip", &self.external_ip)
            .field("policy", &self.policy)
            .field("max_allocations_per_user", &self.max_allocations_per_user)
            .finish_non_exhaustive()
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum TurnError {
    /// A listen address could not be bound.
    #[error("cannot listen for STUN/TURN on {transport} {addr}: {source}")]
    Bind {
        /// `UDP` or `TCP`.
        transport: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The relay address to advertise is unknown.
    #[error(
        "the TURN server listens on every interface: set turn.external_ip to the address clients reach"
    )]
    NoExternalAddress,
    /// The protocol library refused the configuration.
    #[error("TURN server: {0}")]
    Protocol(String),
}

/// A running server.
pub struct RunningTurn {
    server: Server,
    shared: Arc<shared::Shared>,
    udp: SocketAddr,
    tcp: SocketAddr,
}

impl RunningTurn {
    /// Where UDP is served.
    pub fn udp_addr(&self) -> SocketAddr {
        self.udp
    }

    /// Where TCP is served.
    pub fn tcp_addr(&self) -> SocketAddr {
        self.tcp
    }

    /// Counters since start.
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats.snapshot(self.shared.active())
    }

    /// Closes every allocation and the listeners.
    pub async fn stop(self) {
        if let Err(e) = self.server.close().await {
            tracing::warn!(error = %e, "stopping the TURN server");
        }
    }
}

/// Binds the listeners and starts serving on the current runtime.
pub async fn start(config: TurnConfig) -> Result<RunningTurn, TurnError> {
    let advertised = match config.external_ip {
        Some(ip) => ip,
        None if config.udp.ip().is_unspecified() => return Err(TurnError::NoExternalAddress),
        None => config.udp.ip(),
    };
    let udp = UdpSocket::bind(config.udp)
        .await
        .map_err(|source| TurnError::Bind {
            transport: "UDP",
            addr: config.udp,
            source,
        })?;
    let tcp = TcpListener::bind(config.tcp)
        .await
        .map_err(|source| TurnError::Bind {
            transport: "TCP",
            addr: config.tcp,
            source,
        })?;
    let local = |r: std::io::Result<SocketAddr>, transport, addr| {
        r.map_err(|source| TurnError::Bind {
            transport,
            addr,
            source,
        })
    };
    let udp_addr = local(udp.local_addr(), "UDP", config.udp)?;
    let tcp_addr = local(tcp.local_addr(), "TCP", config.tcp)?;
    let shared = Arc::new(shared::Shared::new(
        config.secret,
        config.realm.clone(),
        config.leeway,
        config.policy,
        config.max_allocations_per_user,
        config.clock,
    ));
    let relay = |shared: &Arc<shared::Shared>| -> Box<dyn turn::relay::RelayAddressGenerator + Send + Sync> {
        Box::new(relay::RelayGenerator {
            bind_ip: udp_addr.ip(),
            advertised_ip: advertised,
            shared: Arc::clone(shared),
        })
    };
    let tcp_conn = tcp::TcpConn::new(tcp).map_err(|source| TurnError::Bind {
        transport: "TCP",
        addr: config.tcp,
        source,
    })?;
    let (closed_tx, mut closed_rx) = tokio::sync::mpsc::channel(1024);
    let server = Server::new(ServerConfig {
        conn_configs: vec![
            ConnConfig {
                conn: Arc::new(guard::GuardConn::new(Arc::new(udp), Arc::clone(&shared))),
                relay_addr_generator: relay(&shared),
            },
            ConnConfig {
                conn: Arc::new(guard::GuardConn::new(
                    Arc::new(tcp_conn),
                    Arc::clone(&shared),
                )),
                relay_addr_generator: relay(&shared),
            },
        ],
        realm: config.realm,
        auth_handler: Arc::new(shared::RestAuth(Arc::clone(&shared))),
        channel_bind_timeout: Duration::ZERO,
        alloc_close_notify: Some(closed_tx),
    })
    .await
    .map_err(|e| TurnError::Protocol(e.to_string()))?;
    let closer = Arc::clone(&shared);
    tokio::spawn(async move {
        while let Some(info) = closed_rx.recv().await {
            closer.allocation_closed(info.five_tuple.src_addr);
        }
    });
    tracing::info!(udp = %udp_addr, tcp = %tcp_addr, relay_ip = %advertised, "STUN/TURN listening");
    Ok(RunningTurn {
        server,
        shared,
        udp: udp_addr,
        tcp: tcp_addr,
    })
}
