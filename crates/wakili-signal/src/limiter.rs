//! Per-connection event rate limit: a token bucket, sans-IO (the caller passes the time).

use std::time::{Duration, Instant};

/// What the limiter says about one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the limit.
    Allow,
    /// Over the limit: refuse this event.
    Refuse,
    /// Over the limit by as much again as the burst: close the connection.
    Close,
}

/// A token bucket that also counts refusals, so a client that keeps flooding is cut off.
#[derive(Debug, Clone)]
pub struct Limiter {
    rate: f64,
    burst: f64,
    tokens: f64,
    refused: f64,
    at: Instant,
}

impl Limiter {
    /// `rate` events per second on average, `burst` at once.
    pub fn new(rate: u32, burst: u32, now: Instant) -> Self {
        Self {
            rate: f64::from(rate),
            burst: f64::from(burst),
            tokens: f64::from(burst),
            refused: 0.0,
            at: now,
        }
    }

    /// Accounts for one event at `now`.
    pub fn check(&mut self, now: Instant) -> Verdict {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        // Refusals are forgiven at the same rate tokens come back.
        self.refused = (self.refused - elapsed * self.rate).max(0.0);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Verdict::Allow;
        }
        self.refused += 1.0;
        if self.refused > self.burst {
            Verdict::Close
        } else {
            Verdict::Refuse
        }
    }

    /// How long until the next event would be allowed.
    pub fn retry_after(&self) -> Duration {
        Duration::from_secs_f64(((1.0 - self.tokens).max(0.0)) / self.rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_rate_holds() {
        let t0 = Instant::now();
        let mut l = Limiter::new(10, 20, t0);
        for _ in 0..20 {
            assert_eq!(l.check(t0), Verdict::Allow);
        }
        assert_eq!(l.check(t0), Verdict::Refuse);
        assert!(l.retry_after() > Duration::ZERO);
        // 100 ms later one token is back.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(l.check(t1), Verdict::Allow);
        assert_eq!(l.check(t1), Verdict::Refuse);
    }

    #[test]
    fn a_steady_client_at_the_rate_is_never_refused() {
        let t0 = Instant::now();
        let mut l = Limiter::new(50, 200, t0);
        for i in 0..10_000u64 {
            let now = t0 + Duration::from_millis(20 * i);
            assert_eq!(l.check(now), Verdict::Allow, "event {i}");
        }
    }

    #[test]
    fn a_flood_is_closed_after_the_burst_again() {
        let t0 = Instant::now();
        let mut l = Limiter::new(50, 200, t0);
        let verdicts: Vec<Verdict> = (0..1000).map(|_| l.check(t0)).collect();
        let allowed = verdicts.iter().filter(|v| **v == Verdict::Allow).count();
        let refused = verdicts.iter().filter(|v| **v == Verdict::Refuse).count();
        assert_eq!((allowed, refused), (200, 200));
        assert_eq!(verdicts[400], Verdict::Close);
    }

    #[test]
    fn refusals_are_forgiven_over_time() {
        let t0 = Instant::now();
        let mut l = Limiter::new(50, 200, t0);
        for _ in 0..350 {
            l.check(t0);
        }
        // Ten quiet seconds later the client starts over.
        let later = t0 + Duration::from_secs(10);
        assert_eq!(l.check(later), Verdict::Allow);
        for _ in 0..199 {
            assert_eq!(l.check(later), Verdict::Allow);
        }
        assert_eq!(l.check(later), Verdict::Refuse);
    }
}
