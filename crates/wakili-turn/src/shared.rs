//! State shared by the listeners, the relay sockets and the library's auth hook.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use chrono::{DateTime, Utc};
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
    pub clock: fn() -> DateTime<Utc>,
    pub stats: Arc<TurnStats>,
    /// Live allocations: client transport address → user id.
    allocations: Mutex<HashMap<SocketAddr, String>>,
    /// Allocate requests passed to the library: transaction id → (client, user).
    pending: Mutex<HashMap<[u8; 12], (SocketAddr, String)>>,
}

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
        clock: fn() -> DateTime<Utc>,
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
        }
    }

    /// The long-term key (MD5(username:realm:password)) for REST credentials that are well-formed,
    /// unexpired and of our realm; `None` otherwise.
    pub fn key(&self, username: &str, realm: &str) -> Option<(Vec<u8>, String)> {
        if realm != self.realm {
            return None;
        }
        let accepted =
            wakili_core::turn::verify(&self.secret, username, (self.clock)(), self.leeway).ok()?;
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

    pub fn allocation_closed(&self, client: SocketAddr) {
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
