//! How fast a provider has been answering, and whether it is stuck now. Sans-IO: callers pass
//! `now`.
//!
//! A provider that does not answer (a frozen process, a black-holed network) produces no error
//! until its timeout. Waiting for that timeout is what turned a frozen provider into client 408s,
//! so the store hedges instead: when an operation has taken longer than the provider's recent p99
//! ([`LatencyTracker::hedge_after`]), the next provider is tried alongside it, and while an
//! operation is overdue ([`LatencyTracker::stalled`]) new operations start elsewhere.

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

/// Latencies kept per provider and operation kind.
const WINDOW: usize = 128;

/// Samples needed before the p99 is trusted; until then [`UNKNOWN_HEDGE`] (or less) applies.
const MIN_SAMPLES: usize = 16;

/// Hedge delay before anything is known about the provider.
const UNKNOWN_HEDGE: Duration = Duration::from_millis(500);

/// The hedge delay never goes below this: a provider answering in 2 ms would otherwise be
/// hedged on every scheduling hiccup.
const FLOOR: Duration = Duration::from_millis(50);

/// Token for an operation in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpId(u64);

/// Recent latencies of one provider for one kind of operation, and what is in flight.
#[derive(Debug, Default)]
pub struct LatencyTracker {
    samples: VecDeque<Duration>,
    /// The samples' p99, recomputed when a sample arrives (read on every operation, written
    /// on every answer).
    p99: Option<Duration>,
    in_flight: Vec<(OpId, Instant)>,
    next: u64,
}

impl LatencyTracker {
    /// An operation starts at `now`.
    pub fn begin(&mut self, now: Instant) -> OpId {
        let id = OpId(self.next);
        self.next = self.next.wrapping_add(1);
        self.in_flight.push((id, now));
        id
    }

    /// The operation `id` ended at `now`; `answered` says whether the provider answered (a
    /// success or a definite error such as "not found"), so its latency is a sample. Timeouts
    /// and connection failures are not samples: they say nothing about how fast it answers.
    pub fn end(&mut self, id: OpId, now: Instant, answered: bool) {
        let Some(i) = self.in_flight.iter().position(|(op, _)| *op == id) else {
            return;
        };
        let (_, started) = self.in_flight.swap_remove(i);
        if answered {
            if self.samples.len() == WINDOW {
                self.samples.pop_front();
            }
            self.samples
                .push_back(now.saturating_duration_since(started));
            self.p99 = percentile_99(&self.samples);
        }
    }

    /// The 99th percentile of recent latencies, once enough are known.
    pub fn p99(&self) -> Option<Duration> {
        self.p99
    }

    /// How long to wait for this provider before trying the next one as well: its recent p99
    /// (at least [`FLOOR`]), and never more than half the operation's `timeout`.
    pub fn hedge_after(&self, timeout: Duration) -> Duration {
        let p99 = self.p99().map_or(UNKNOWN_HEDGE, |p| p.max(FLOOR));
        p99.min(timeout / 2)
    }

    /// Whether an operation has been in flight longer than [`Self::hedge_after`] at `now`: the
    /// provider is probably stuck, so new operations should start on another one.
    pub fn stalled(&self, now: Instant, timeout: Duration) -> bool {
        if self.in_flight.is_empty() {
            return false;
        }
        let limit = self.hedge_after(timeout);
        self.in_flight
            .iter()
            .any(|(_, started)| now.saturating_duration_since(*started) > limit)
    }
}

/// The 99th percentile of `samples`, or `None` below [`MIN_SAMPLES`].
fn percentile_99(samples: &VecDeque<Duration>) -> Option<Duration> {
    if samples.len() < MIN_SAMPLES {
        return None;
    }
    let mut sorted: Vec<Duration> = samples.iter().copied().collect();
    sorted.sort_unstable();
    let rank = (sorted.len() * 99).div_ceil(100).saturating_sub(1);
    sorted.get(rank).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(8);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_hedge_delay_follows_the_recent_p99_within_bounds() {
        let t0 = Instant::now();
        let mut t = LatencyTracker::default();
        assert_eq!(t.hedge_after(TIMEOUT), UNKNOWN_HEDGE, "nothing known yet");
        assert_eq!(t.hedge_after(ms(600)), ms(300), "at most half the timeout");
        // 99 fast answers and one slow one: p99 is the slowest of the fast ones.
        for i in 0..100u64 {
            let id = t.begin(t0);
            let took = if i == 50 { ms(900) } else { ms(100 + i) };
            t.end(id, t0 + took, true);
        }
        assert_eq!(t.p99(), Some(ms(199)));
        assert_eq!(t.hedge_after(TIMEOUT), ms(199));
        // Very fast providers are still given the floor.
        let mut fast = LatencyTracker::default();
        for _ in 0..20 {
            let id = fast.begin(t0);
            fast.end(id, t0 + ms(2), true);
        }
        assert_eq!(fast.hedge_after(TIMEOUT), FLOOR);
    }

    #[test]
    fn timeouts_are_not_latency_samples() {
        let t0 = Instant::now();
        let mut t = LatencyTracker::default();
        for _ in 0..20 {
            let id = t.begin(t0);
            t.end(id, t0 + ms(10), true);
        }
        for _ in 0..5 {
            let id = t.begin(t0);
            t.end(id, t0 + TIMEOUT, false);
        }
        assert_eq!(t.p99(), Some(ms(10)));
    }

    #[test]
    fn an_overdue_operation_marks_the_provider_stalled_until_it_ends() {
        let t0 = Instant::now();
        let mut t = LatencyTracker::default();
        for _ in 0..20 {
            let id = t.begin(t0);
            t.end(id, t0 + ms(20), true);
        }
        let stuck = t.begin(t0);
        assert!(!t.stalled(t0 + ms(40), TIMEOUT));
        assert!(t.stalled(t0 + ms(60), TIMEOUT), "past the 50 ms floor");
        t.end(stuck, t0 + TIMEOUT, false);
        assert!(!t.stalled(t0 + TIMEOUT, TIMEOUT));
        // Ending an unknown operation changes nothing.
        t.end(OpId(999), t0, true);
        assert_eq!(t.p99(), Some(ms(20)));
    }

    #[test]
    fn only_the_recent_window_counts() {
        let t0 = Instant::now();
        let mut t = LatencyTracker::default();
        for _ in 0..WINDOW {
            let id = t.begin(t0);
            t.end(id, t0 + ms(1000), true);
        }
        for _ in 0..WINDOW {
            let id = t.begin(t0);
            t.end(id, t0 + ms(100), true);
        }
        assert_eq!(t.p99(), Some(ms(100)));
    }
}
