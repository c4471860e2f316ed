//! Counts for `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// What the webhook worker did since start.
#[derive(Debug, Default)]
pub struct Counters {
    delivered: AtomicU64,
    failed_attempts: AtomicU64,
    endpoints_disabled: AtomicU64,
}

/// A reading of [`Counters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Attempts the receiver answered 2xx.
    pub delivered: u64,
    /// Attempts that failed (any other answer, a timeout, a refused connection).
    pub failed_attempts: u64,
    /// Endpoints disabled for failing too often or being gone.
    pub endpoints_disabled: u64,
}

impl Counters {
    pub(crate) fn attempt(&self, status: Option<u16>) {
        if status.is_some_and(|s| (200..300).contains(&s)) {
            self.delivered.fetch_add(1, Relaxed);
        } else {
            self.failed_attempts.fetch_add(1, Relaxed);
        }
    }

    pub(crate) fn endpoint_disabled(&self) {
        self.endpoints_disabled.fetch_add(1, Relaxed);
    }

    /// The counts now.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            delivered: self.delivered.load(Relaxed),
            failed_attempts: self.failed_attempts.load(Relaxed),
            endpoints_disabled: self.endpoints_disabled.load(Relaxed),
        }
    }
}
