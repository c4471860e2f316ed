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

use tokio::net::UdpSocket;
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
    /// Time source for credential expiry: the server's clock, so that the relay and the code
    /// minting credentials agree (and tests can move both).
    pub clock: wakili_core::Clock,
    /// TURN over TLS, when configured.
    pub tls: Option<TlsConfig>,
    /// UDP sockets sharing the port (`SO_REUSEPORT`): the protocol library serves each socket
    /// from one task, so one per core lets the relay use every core. 0: one per core.
    pub udp_sockets: usize,
    /// Connections the TCP and TLS listeners queue for their accept loop
    /// ([`wakili_net::listen`]): after a failover every client behind a UDP-blocking firewall
    /// reconnects at once.
    pub listen_backlog: u32,
}

/// Socket buffer size for listeners and relay sockets: absorbs bursts of media packets while a
/// task is busy (the kernel default, ~200 KiB, overflows at tens of thousands of packets/s).
const UDP_BUFFER: usize = 4 * 1024 * 1024;

/// A non-blocking UDP socket bound to `addr`, with large buffers (best effort: the kernel caps
/// them at `net.core.rmem_max`).
pub(crate) fn udp_socket(addr: SocketAddr, reuse_port: bool) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    #[cfg(unix)]
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    let _ = socket.set_recv_buffer_size(UDP_BUFFER);
    let _ = socket.set_send_buffer_size(UDP_BUFFER);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

/// Binds `count` UDP sockets to `addr` with `SO_REUSEPORT`, so the kernel spreads clients over
/// them (by address hash: a client always lands on the same socket, where its allocation is).
fn bind_udp(addr: SocketAddr, count: usize) -> std::io::Result<Vec<UdpSocket>> {
    let mut sockets = Vec::with_capacity(count);
    let mut addr = addr;
    for _ in 0..count.max(1) {
        let socket = udp_socket(addr, true)?;
        // With port 0 the first bind picks the port; the others join it.
        addr = socket.local_addr()?;
        sockets.push(socket);
    }
    Ok(sockets)
}

/// TURN over TLS (`turns:`).
#[derive(Clone)]
pub struct TlsConfig {
    /// Listen address (5349 by convention).
    pub listen: SocketAddr,
    /// PEM certificate chain, leaf first.
    pub cert_chain_pem: Vec<u8>,
    /// PEM private key.
    pub key_pem: Vec<u8>,
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
    #[error(
        "cannot listen for STUN/TURN on {transport} {addr}: {source}; pass --turn-listen with a free address, or set turn.enabled = false when an external TURN is used"
    )]
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
    /// The TLS certificate or key cannot be used.
    #[error("TURN TLS certificate/key: {0}")]
    Tls(String),
}

/// Maps an I/O error while setting up the `transport` listener on `addr`.
fn bind_error(
    transport: &'static str,
    addr: SocketAddr,
) -> impl FnOnce(std::io::Error) -> TurnError {
    move |source| TurnError::Bind {
        transport,
        addr,
        source,
    }
}

/// A running server.
pub struct RunningTurn {
    server: Server,
    shared: Arc<shared::Shared>,
    udp: SocketAddr,
    tcp: SocketAddr,
    tls: Option<SocketAddr>,
}

impl RunningTurn {
    /// Where TURN over TLS is served, if configured.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls
    }

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
    let sockets = match config.udp_sockets {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    };
    let udp = bind_udp(config.udp, sockets).map_err(bind_error("UDP", config.udp))?;
    let tcp = wakili_net::listen(config.tcp, config.listen_backlog)
        .map_err(bind_error("TCP", config.tcp))?;
    let udp_addr = udp[0].local_addr().map_err(bind_error("UDP", config.udp))?;
    let tcp_addr = tcp.local_addr().map_err(bind_error("TCP", config.tcp))?;
    let shared = Arc::new(shared::Shared::new(
        config.secret,
        config.realm.clone(),
        config.leeway,
        config.policy,
        config.max_allocations_per_user,
        config.clock,
    ));
    let relay = |shared: &Arc<shared::Shared>,
                 current: &guard::Current|
     -> Box<dyn turn::relay::RelayAddressGenerator + Send + Sync> {
        Box::new(relay::RelayGenerator {
            bind_ip: udp_addr.ip(),
            advertised_ip: advertised,
            shared: Arc::clone(shared),
            current: current.clone(),
        })
    };
    let tcp_conn = tcp::TcpConn::new(tcp, None).map_err(bind_error("TCP", config.tcp))?;
    let mut listeners: Vec<Arc<dyn util::Conn + Send + Sync>> = udp
        .into_iter()
        .map(|socket| Arc::new(socket) as Arc<dyn util::Conn + Send + Sync>)
        .collect();
    listeners.push(Arc::new(tcp_conn));
    let mut tls_addr = None;
    if let Some(tls) = &config.tls {
        let acceptor = tls_acceptor(tls)?;
        let listener = wakili_net::listen(tls.listen, config.listen_backlog)
            .map_err(bind_error("TLS", tls.listen))?;
        tls_addr = Some(
            listener
                .local_addr()
                .map_err(bind_error("TLS", tls.listen))?,
        );
        let conn =
            tcp::TcpConn::new(listener, Some(acceptor)).map_err(bind_error("TLS", tls.listen))?;
        listeners.push(Arc::new(conn));
    }
    let (closed_tx, mut closed_rx) = tokio::sync::mpsc::channel(1024);
    let server = Server::new(ServerConfig {
        conn_configs: listeners
            .into_iter()
            .map(|listener| {
                let current = guard::Current::default();
                ConnConfig {
                    conn: Arc::new(guard::GuardConn::new(
                        listener,
                        Arc::clone(&shared),
                        current.clone(),
                    )),
                    relay_addr_generator: relay(&shared, &current),
                }
            })
            .collect(),
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
    tracing::info!(udp = %udp_addr, tcp = %tcp_addr, tls = ?tls_addr, relay_ip = %advertised, "STUN/TURN listening");
    Ok(RunningTurn {
        server,
        shared,
        udp: udp_addr,
        tcp: tcp_addr,
        tls: tls_addr,
    })
}

fn tls_acceptor(tls: &TlsConfig) -> Result<tokio_rustls::TlsAcceptor, TurnError> {
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    let bad = |e: &dyn std::fmt::Display| TurnError::Tls(e.to_string());
    let chain = CertificateDer::pem_slice_iter(&tls.cert_chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(&e))?;
    if chain.is_empty() {
        return Err(TurnError::Tls(
            "no certificate in the certificate file".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&tls.key_pem).map_err(|e| bad(&e))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| bad(&e))?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(|e| bad(&e))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
