//! Counters the server keeps, for metrics and tests.

use std::sync::atomic::{AtomicU64, Ordering};

/// What the TURN server has done since it started.
#[derive(Debug, Default)]
pub struct TurnStats {
    /// Allocations created.
    pub allocations_created: AtomicU64,
    /// Allocations closed (expired, refreshed to zero, or server stopped).
    pub allocations_closed: AtomicU64,
    /// Bytes sent from relay sockets to peers.
    pub relayed_bytes_to_peers: AtomicU64,
    /// Packets sent from relay sockets to peers.
    pub relayed_packets_to_peers: AtomicU64,
    /// Of the packets to peers, those relayed on the ChannelData fast path.
    pub fast_path_packets: AtomicU64,
    /// Bytes received by relay sockets from peers.
    pub relayed_bytes_from_peers: AtomicU64,
    /// Packets received by relay sockets from peers.
    pub relayed_packets_from_peers: AtomicU64,
    /// Requests refused with 401 (forged, expired, malformed credentials).
    pub rejected_auth: AtomicU64,
    /// Permissions refused with 403 (peer address policy).
    pub rejected_peer: AtomicU64,
    /// Allocations refused with 486 (per-user cap).
    pub rejected_quota: AtomicU64,
}

/// A point-in-time copy of [`TurnStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = TurnStats))]
#[serde(rename_all = "camelCase")]
pub struct StatsSnapshot {
    /// Allocations created.
    pub allocations_created: u64,
    /// Allocations closed.
    pub allocations_closed: u64,
    /// Allocations alive now.
    pub allocations_active: u64,
    /// Bytes relayed to peers.
    pub relayed_bytes_to_peers: u64,
    /// Packets relayed to peers.
    pub relayed_packets_to_peers: u64,
    /// Of those, relayed on the ChannelData fast path.
    pub fast_path_packets: u64,
    /// Bytes relayed from peers.
    pub relayed_bytes_from_peers: u64,
    /// Packets relayed from peers.
    pub relayed_packets_from_peers: u64,
    /// 401s.
    pub rejected_auth: u64,
    /// 403s.
    pub rejected_peer: u64,
    /// 486s.
    pub rejected_quota: u64,
}

impl TurnStats {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads every counter.
    pub fn snapshot(&self, active: u64) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            allocations_created: get(&self.allocations_created),
            allocations_closed: get(&self.allocations_closed),
            allocations_active: active,
            relayed_bytes_to_peers: get(&self.relayed_bytes_to_peers),
            relayed_packets_to_peers: get(&self.relayed_packets_to_peers),
            fast_path_packets: get(&self.fast_path_packets),
            relayed_bytes_from_peers: get(&self.relayed_bytes_from_peers),
            relayed_packets_from_peers: get(&self.relayed_packets_from_peers),
            rejected_auth: get(&self.rejected_auth),
            rejected_peer: get(&self.rejected_peer),
            rejected_quota: get(&self.rejected_quota),
        }
    }
}
