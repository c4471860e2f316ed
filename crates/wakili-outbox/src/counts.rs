//! What the outbox did: per pass and since start.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counts of one outbox pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    /// Rows leased.
    pub claimed: usize,
    /// Delivered (accepted by FCM).
    pub sent: usize,
    /// Given up.
    pub failed: usize,
    /// Dropped as too late.
    pub expired: usize,
    /// Put back for later.
    pub retried: usize,
    /// Not done within the delivery deadline: left leased, tried again once the lease runs out.
    pub abandoned: usize,
}

impl Pass {
    /// Counts `outcome` in.
    pub(crate) fn count(&mut self, outcome: &crate::Outcome) {
        use crate::Outcome as O;
        match outcome {
            O::Done { .. } => self.sent += 1,
            O::Failed { .. } => self.failed += 1,
            O::Expired => self.expired += 1,
            O::Retry { .. } => self.retried += 1,
        }
    }
}

/// Outcomes since the worker started, for `/metrics`.
#[derive(Debug, Default)]
pub struct Outcomes {
    sent: AtomicU64,
    failed: AtomicU64,
    expired: AtomicU64,
}

impl Outcomes {
    /// (delivered, given up, dropped as too late).
    pub fn get(&self) -> (u64, u64, u64) {
        (
            self.sent.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.expired.load(Ordering::Relaxed),
        )
    }

    pub(crate) fn add(&self, pass: &Pass) {
        self.sent.fetch_add(pass.sent as u64, Ordering::Relaxed);
        self.failed.fetch_add(pass.failed as u64, Ordering::Relaxed);
        self.expired
            .fetch_add(pass.expired as u64, Ordering::Relaxed);
    }
}
