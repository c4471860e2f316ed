//! Relay sockets: one per allocation, bound on the server's address and advertised at the
//! external one. They count traffic and drop anything the peer policy forbids (defence in depth:
//! permissions to forbidden peers are already refused).

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use async_trait::async_trait;
use tokio::net::UdpSocket;
use turn::relay::RelayAddressGenerator;
use util::Conn;

use crate::{shared::Shared, stats::TurnStats};

pub(crate) struct RelayGenerator {
    pub bind_ip: IpAddr,
    pub advertised_ip: IpAddr,
    pub shared: Arc<Shared>,
    /// The client whose request the listener is handling (see [`crate::guard::Current`]).
    pub current: crate::guard::Current,
}

#[async_trait]
impl RelayAddressGenerator for RelayGenerator {
    fn validate(&self) -> Result<(), turn::Error> {
        Ok(())
    }

    async fn allocate_conn(
        &self,
        _use_ipv4: bool,
        requested_port: u16,
    ) -> Result<(Arc<dyn Conn + Send + Sync>, SocketAddr), turn::Error> {
        let socket = crate::udp_socket(SocketAddr::new(self.bind_ip, requested_port), false)
            .map_err(|e| turn::Error::Other(format!("binding a relay socket: {e}")))?;
        let mut advertised = socket
            .local_addr()
            .map_err(|e| turn::Error::Other(e.to_string()))?;
        advertised.set_ip(self.advertised_ip);
        let socket = Arc::new(socket);
        if let Some(client) = self.current.get() {
            self.shared.relay_created(client, &socket);
        }
        let conn = RelayConn {
            socket,
            shared: Arc::clone(&self.shared),
        };
        Ok((Arc::new(conn), advertised))
    }
}

struct RelayConn {
    socket: Arc<UdpSocket>,
    shared: Arc<Shared>,
}

#[async_trait]
impl Conn for RelayConn {
    async fn connect(&self, _: SocketAddr) -> util::Result<()> {
        Err(util::Error::Other("relay sockets do not connect".into()))
    }

    async fn recv(&self, _: &mut [u8]) -> util::Result<usize> {
        Err(util::Error::Other("use recv_from".into()))
    }

    async fn recv_from(&self, buf: &mut [u8]) -> util::Result<(usize, SocketAddr)> {
        loop {
            let (n, src) = self.socket.recv_from(buf).await?;
            if self.shared.policy.allows_addr(src) {
                let stats = &self.shared.stats;
                TurnStats::add(&stats.relayed_bytes_from_peers, n as u64);
                TurnStats::add(&stats.relayed_packets_from_peers, 1);
                return Ok((n, src));
            }
        }
    }

    async fn send(&self, _: &[u8]) -> util::Result<usize> {
        Err(util::Error::Other("use send_to".into()))
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> util::Result<usize> {
        if !self.shared.policy.allows_addr(target) {
            return Ok(buf.len());
        }
        let stats = &self.shared.stats;
        TurnStats::add(&stats.relayed_bytes_to_peers, buf.len() as u64);
        TurnStats::add(&stats.relayed_packets_to_peers, 1);
        Ok(self.socket.send_to(buf, target).await?)
    }

    fn local_addr(&self) -> util::Result<SocketAddr> {
        Ok(self.socket.local_addr()?)
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        None
    }

    async fn close(&self) -> util::Result<()> {
        Ok(())
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}
