//! When a failed delivery is tried again (sans-IO: callers pass the time and the random
//! number).

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::Outcome;

/// Exponential backoff with jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay after the first failure (before jitter).
    pub initial: Duration,
    /// Largest delay (before `Retry-After`).
    pub max: Duration,
}

impl Backoff {
    /// The delay after `failures` failed attempts (1 after the first), jittered by `unit` (a
    /// random number in `[0, 1)`): between half and all of `initial × 2^(failures-1)` (capped
    /// at `max`), and never shorter than the receiver's `Retry-After`.
    pub fn delay(&self, failures: u32, retry_after: Option<Duration>, unit: f64) -> Duration {
        let exponent = failures.saturating_sub(1).min(30);
        let full = self.initial.saturating_mul(1u32 << exponent).min(self.max);
        let unit = unit.clamp(0.0, 1.0);
        let jittered = full.mul_f64(0.5 + unit / 2.0);
        match retry_after {
            Some(after) => jittered.max(after),
            None => jittered,
        }
    }
}

/// How often and how late a failed delivery is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts before giving up.
    pub max_attempts: u32,
    /// Delays between them.
    pub backoff: Backoff,
}

/// A delivery attempt that failed in a way worth retrying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Attempts the item had before this one.
    pub attempts: u32,
    /// When the item stops being worth delivering.
    pub expires_at: Option<DateTime<Utc>>,
    /// How long the receiver asked to wait (`Retry-After`).
    pub retry_after: Option<Duration>,
    /// What went wrong.
    pub reason: String,
}

impl RetryPolicy {
    /// What becomes of an item after `failure` at `now`, with `unit` (random, `[0, 1)`) for the
    /// jitter: given up after `max_attempts`, dropped when the retry would come after it
    /// expires (a call that stopped ringing), else tried again after the backoff.
    pub fn after(&self, failure: Failure, now: DateTime<Utc>, unit: f64) -> Outcome {
        let failures = failure.attempts.saturating_add(1);
        if failures >= self.max_attempts {
            return Outcome::Failed {
                error: format!("{} (gave up after {failures} attempts)", failure.reason),
            };
        }
        let delay = self.backoff.delay(failures, failure.retry_after, unit);
        let at = now + chrono::Duration::from_std(delay).unwrap_or_default();
        if failure.expires_at.is_some_and(|e| at >= e) {
            return Outcome::Expired;
        }
        Outcome::Retry {
            at,
            error: Some(failure.reason),
            attempted: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backoff() -> Backoff {
        Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let b = backoff();
        assert_eq!(b.delay(1, None, 0.0), Duration::from_millis(500));
        assert_eq!(b.delay(1, None, 1.0), Duration::from_secs(1));
        assert_eq!(b.delay(3, None, 1.0), Duration::from_secs(4));
        assert_eq!(b.delay(30, None, 1.0), Duration::from_secs(60));
        assert_eq!(b.delay(u32::MAX, None, 0.0), Duration::from_secs(30));
        let d = b.delay(4, None, 0.3);
        assert!(
            d > Duration::from_secs(4) && d < Duration::from_secs(8),
            "{d:?}"
        );
    }

    #[test]
    fn retry_after_wins_when_longer() {
        let b = backoff();
        assert_eq!(
            b.delay(1, Some(Duration::from_secs(120)), 0.5),
            Duration::from_secs(120)
        );
        assert_eq!(
            b.delay(3, Some(Duration::from_millis(1)), 1.0),
            Duration::from_secs(4)
        );
    }

    fn failure(attempts: u32, expires_at: Option<DateTime<Utc>>) -> Failure {
        Failure {
            attempts,
            expires_at,
            retry_after: None,
            reason: "503".into(),
        }
    }

    #[test]
    fn failures_are_retried_after_the_backoff() {
        let policy = RetryPolicy {
            max_attempts: 5,
            backoff: backoff(),
        };
        let now = DateTime::<Utc>::UNIX_EPOCH;
        assert_eq!(
            policy.after(failure(2, None), now, 1.0),
            Outcome::Retry {
                at: now + chrono::Duration::seconds(4),
                error: Some("503".into()),
                attempted: true,
            }
        );
    }

    #[test]
    fn the_last_attempt_gives_up_and_a_late_retry_expires() {
        let policy = RetryPolicy {
            max_attempts: 5,
            backoff: backoff(),
        };
        let now = DateTime::<Utc>::UNIX_EPOCH;
        assert_eq!(
            policy.after(failure(4, None), now, 0.0),
            Outcome::Failed {
                error: "503 (gave up after 5 attempts)".into()
            }
        );
        let soon = Some(now + chrono::Duration::seconds(4));
        assert_eq!(policy.after(failure(2, soon), now, 1.0), Outcome::Expired);
        assert!(matches!(
            policy.after(failure(2, soon), now, 0.0),
            Outcome::Retry { .. }
        ));
    }
}
