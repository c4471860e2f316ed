//! How many connections one user may hold at once (`signaling.max_sockets_per_user`), sans-IO:
//! a counter per user and a permit that gives its place back when dropped.
//!
//! Counted per node: with several nodes behind a load balancer a user may hold that many on each.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

/// Open connections per user on this node.
#[derive(Debug)]
pub struct UserSockets {
    max: u32,
    open: Mutex<HashMap<String, u32>>,
}

/// A user already holds the most connections allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many connections: at most {max} per user; close another tab or device first")]
pub struct TooManySockets {
    /// The limit.
    pub max: u32,
}

/// One connection's place in its user's count; dropping it frees the place.
#[derive(Debug)]
pub struct SocketPermit {
    owner: Arc<UserSockets>,
    user: String,
}

impl UserSockets {
    /// At most `max` connections per user.
    pub fn new(max: u32) -> Arc<Self> {
        Arc::new(Self {
            max,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A place for one more connection of `user`, unless it holds `max` already.
    pub fn acquire(self: &Arc<Self>, user: &str) -> Result<SocketPermit, TooManySockets> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(user.to_owned()).or_insert(0);
        if *count >= self.max {
            return Err(TooManySockets { max: self.max });
        }
        *count += 1;
        Ok(SocketPermit {
            owner: Arc::clone(self),
            user: user.to_owned(),
        })
    }

    /// Connections `user` holds now.
    pub fn open(&self, user: &str) -> u32 {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(user).copied().unwrap_or(0)
    }

    /// Users holding at least one connection (the map never keeps users at zero).
    pub fn users(&self) -> usize {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl Drop for SocketPermit {
    fn drop(&mut self) {
        let mut open = self
            .owner
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.user) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_gets_max_places_and_one_more_after_a_release() {
        let sockets = UserSockets::new(2);
        let a = sockets.acquire("u1").unwrap();
        let _b = sockets.acquire("u1").unwrap();
        let refused = sockets.acquire("u1").unwrap_err();
        assert_eq!(refused, TooManySockets { max: 2 });
        assert!(refused.to_string().starts_with("too many connections"));
        // Other users have their own count.
        let _c = sockets.acquire("u2").unwrap();
        drop(a);
        assert_eq!(sockets.open("u1"), 1);
        let _d = sockets.acquire("u1").unwrap();
        assert_eq!(sockets.open("u1"), 2);
    }

    #[test]
    fn users_at_zero_are_forgotten() {
        let sockets = UserSockets::new(1);
        let permits: Vec<_> = (0..100)
            .map(|i| sockets.acquire(&format!("user-{i}")).unwrap())
            .collect();
        assert_eq!(sockets.users(), 100);
        drop(permits);
        assert_eq!(sockets.users(), 0);
    }
}
