//! State shared by the listeners, the relay sockets and the library's auth hook.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard, Weak},
    time::Duration,
};

use std::time::{Duration as StdDuration, Instant};

use tokio::net::UdpSocket;
use turn::auth::{AuthHandler, generate_auth_key};

use crate::{PeerPolicy, TurnStats, stats::TurnStats as Stats};

/// Bound on Allocate transactions awaiting their response.
const MAX_PENDING: usize = 10_000;

pub(crate) struct Shared {
    pub secret: Vec<u8>,
    pub realm: String,
    pub leeway: Duration,
    pub policy: PeerPolicy,
    pub max_per_user: usize,
    pub clock: wakili_core::Clock,
    pub stats: Arc<TurnStats>,
    /// Live allocations: client transport address → user id.
    allocations: Mutex<HashMap<SocketAddr, String>>,
    /// Allocate requests passed to the library: transaction id → (client, user).
    pending: Mutex<HashMap<[u8; 12], (SocketAddr, String)>>,
    /// Relay socket of each client's allocation. Weak: the library owns the socket (and drops
    /// probe sockets it makes to find free ports); a bound channel's route holds it.
    relays: Mutex<HashMap<SocketAddr, Weak<UdpSocket>>>,
    /// ChannelBind requests passed to the library: transaction id → (client, channel, peer).
    pending_binds: Mutex<HashMap<[u8; 12], (SocketAddr, u16, SocketAddr)>>,
    /// Bound channels: (client, channel) → route. The fast path relays ChannelData on these
    /// without the library.
    channels: Mutex<HashMap<(SocketAddr, u16), Route>>,
}

/// Where a bound channel's data goes.
#[derive(Clone)]
pub(crate) struct Route {
    pub relay: Arc<UdpSocket>,
    pub peer: SocketAddr,
    expires: Instant,
}

/// How long a channel binding lasts without refresh (RFC 8656 §12).
const CHANNEL_LIFETIME: StdDuration = StdDuration::from_secs(600);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    pub fn new(
        secret: Vec<u8>,
        realm: String,
        leeway: Duration,
        policy: PeerPolicy,
        max_per_user: usize,
        clock: wakili_core::Clock,
    ) -> Self {
        Self {
            secret,
            realm,
            leeway,
            policy,
            max_per_user,
            clock,
            stats: Arc::new(Stats::default()),
            allocations: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
            relays: Mutex::new(HashMap::new()),
            pending_binds: Mutex::new(HashMap::new()),
            channels: Mutex::new(HashMap::new()),
        }
    }

    /// The long-term key (MD5(username:realm:password)) for REST credentials that are well-formed,
    /// unexpired and of our realm; `None` otherwise.
    pub fn key(&self, username: &str, realm: &str) -> Option<(Vec<u8>, String)> {
        if realm != self.realm {
            return None;
        }
        let accepted =
            wakili_core::turn::verify(&self.secret, username, self.clock.now(), self.leeway)
                .ok()?;
        Some((
            generate_auth_key(username, realm, &accepted.password),
            accepted.user_id,
        ))
    }

    pub fn allocations_of(&self, user: &str) -> usize {
        lock(&self.allocations)
            .values()
            .filter(|u| *u == user)
            .count()
    }

    pub fn has_allocation(&self, client: SocketAddr) -> bool {
        lock(&self.allocations).contains_key(&client)
    }

    pub fn active(&self) -> u64 {
        lock(&self.allocations).len() as u64
    }

    pub fn allocate_pending(&self, transaction: [u8; 12], client: SocketAddr, user: String) {
        let mut pending = lock(&self.pending);
        if pending.len() >= MAX_PENDING {
            pending.clear();
        }
        pending.insert(transaction, (client, user));
    }

    pub fn has_pending(&self) -> bool {
        !lock(&self.pending).is_empty()
    }

    /// The library answered an Allocate: record the allocation if it succeeded.
    pub fn allocate_answered(&self, transaction: [u8; 12], success: bool) {
        let Some((client, user)) = lock(&self.pending).remove(&transaction) else {
            return;
        };
        if success
            && lock(&self.allocations)
                .insert(client, user.clone())
                .is_none()
        {
            Stats::add(&self.stats.allocations_created, 1);
            tracing::debug!(%client, user, "TURN allocation created");
        }
    }

    /// The library made a relay socket for `client`'s allocation.
    pub fn relay_created(&self, client: SocketAddr, relay: &Arc<UdpSocket>) {
        lock(&self.relays).insert(client, Arc::downgrade(relay));
    }

    pub fn bind_pending(
        &self,
        transaction: [u8; 12],
        client: SocketAddr,
        channel: u16,
        peer: SocketAddr,
    ) {
        let mut pending = lock(&self.pending_binds);
        if pending.len() >= MAX_PENDING {
            pending.clear();
        }
        pending.insert(transaction, (client, channel, peer));
    }

    pub fn has_pending_binds(&self) -> bool {
        !lock(&self.pending_binds).is_empty()
    }

    /// The library answered a ChannelBind: on success, route the channel's data directly.
    pub fn bind_answered(&self, transaction: [u8; 12], success: bool) {
        let Some((client, channel, peer)) = lock(&self.pending_binds).remove(&transaction) else {
            return;
        };
        if !success {
            return;
        }
        let Some(relay) = lock(&self.relays).get(&client).and_then(Weak::upgrade) else {
            return;
        };
        let route = Route {
            relay,
            peer,
            expires: Instant::now() + CHANNEL_LIFETIME,
        };
        lock(&self.channels).insert((client, channel), route);
    }

    /// The route of a live channel binding.
    pub fn route(&self, client: SocketAddr, channel: u16) -> Option<Route> {
        let channels = lock(&self.channels);
        let route = channels.get(&(client, channel))?;
        (route.expires > Instant::now()).then(|| route.clone())
    }

    pub fn allocation_closed(&self, client: SocketAddr) {
        lock(&self.relays).remove(&client);
        lock(&self.channels).retain(|(c, _), _| *c != client);
        if let Some(user) = lock(&self.allocations).remove(&client) {
            Stats::add(&self.stats.allocations_closed, 1);
            tracing::debug!(%client, user, "TURN allocation closed");
        }
    }
}

/// The library's credential hook; the guard has already refused what fails here, so this only
/// re-derives the key.
pub(crate) struct RestAuth(pub Arc<Shared>);

impl AuthHandler for RestAuth {
    fn auth_handle(
        &self,
        username: &str,
        realm: &str,
        _src: SocketAddr,
    ) -> Result<Vec<u8>, turn::Error> {
        self.0
            .key(username, realm)
            .map(|(key, _)| key)
            .ok_or_else(|| turn::Error::Other("invalid or expired credentials".into()))
    }
}
