//! Provider health: a provider that keeps failing is skipped for a cool-down, then tried again.
//! Sans-IO: callers pass `now`.

use std::time::{Duration, Instant};

/// When to give up on a provider for a while.
#[derive(Debug, Clone, Copy)]
pub struct HealthPolicy {
    /// Consecutive failures that start a cool-down.
    pub failure_threshold: u32,
    /// How long a failing provider is skipped.
    pub cooldown: Duration,
}

/// One provider's recent record.
#[derive(Debug, Clone, Default)]
pub struct Health {
    consecutive_failures: u32,
    cooling_until: Option<Instant>,
    last_error: Option<String>,
}

impl Health {
    /// Whether the provider should be tried at `now`: not failing, or its cool-down is over
    /// (then one attempt decides whether it cools down again).
    pub fn available(&self, now: Instant) -> bool {
        self.cooling_until.is_none_or(|until| now >= until)
    }

    /// A request succeeded: the record is clean again.
    pub fn succeeded(&mut self) {
        *self = Self::default();
    }

    /// A request failed at `now`.
    pub fn failed(&mut self, now: Instant, policy: HealthPolicy, error: impl Into<String>) {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        self.last_error = Some(error.into());
        if self.consecutive_failures >= policy.failure_threshold {
            self.cooling_until = Some(now + policy.cooldown);
        }
    }

    /// Failures since the last success.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// Time left in the cool-down at `now`, if cooling down.
    pub fn cooldown_left(&self, now: Instant) -> Option<Duration> {
        self.cooling_until
            .and_then(|until| until.checked_duration_since(now))
            .filter(|left| !left.is_zero())
    }

    /// The last error, until a success clears it.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: HealthPolicy = HealthPolicy {
        failure_threshold: 3,
        cooldown: Duration::from_secs(30),
    };

    #[test]
    fn a_provider_cools_down_after_repeated_failures_then_gets_one_more_try() {
        let t0 = Instant::now();
        let mut health = Health::default();
        health.failed(t0, POLICY, "refused");
        health.failed(t0, POLICY, "refused");
        assert!(health.available(t0), "two failures are not enough");
        health.failed(t0, POLICY, "timeout");
        assert!(!health.available(t0 + Duration::from_secs(29)));
        assert_eq!(
            health.cooldown_left(t0 + Duration::from_secs(20)),
            Some(Duration::from_secs(10))
        );
        assert_eq!(health.last_error(), Some("timeout"));
        let later = t0 + Duration::from_secs(30);
        assert!(health.available(later));
        // The trial fails: straight back into cool-down.
        health.failed(later, POLICY, "refused");
        assert!(!health.available(later + Duration::from_secs(1)));
        // A success clears everything.
        health.succeeded();
        assert!(health.available(later));
        assert_eq!(health.consecutive_failures(), 0);
        assert_eq!(health.last_error(), None);
    }
}
