//! Retry delays and the per-device rate limit (sans-IO: callers pass the time and the random
//! number).

use std::{collections::HashMap, time::Duration};

use chrono::{DateTime, Utc};

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
    /// at `max`), and never shorter than FCM's `Retry-After`.
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

/// A token bucket per device: `per_minute` notifications a minute, in bursts of up to
/// `per_minute`.
#[derive(Debug)]
pub struct DeviceLimiter {
    per_minute: u32,
    buckets: HashMap<String, Bucket>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: DateTime<Utc>,
}

/// Most devices remembered; beyond this, full buckets are forgotten.
const MAX_BUCKETS: usize = 100_000;

impl DeviceLimiter {
    /// A limiter allowing `per_minute` per device.
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute: per_minute.max(1),
            buckets: HashMap::new(),
        }
    }

    fn rate_per_second(&self) -> f64 {
        f64::from(self.per_minute) / 60.0
    }

    /// Takes one send for `device` at `now`, or says how long to wait.
    pub fn take(&mut self, device: &str, now: DateTime<Utc>) -> Result<(), Duration> {
        let capacity = f64::from(self.per_minute);
        let rate = self.rate_per_second();
        if self.buckets.len() >= MAX_BUCKETS && !self.buckets.contains_key(device) {
            self.buckets.retain(|_, b| {
                let idle = (now - b.at).to_std().unwrap_or_default().as_secs_f64();
                b.tokens + idle * rate < capacity
            });
        }
        let bucket = self.buckets.entry(device.to_owned()).or_insert(Bucket {
            tokens: capacity,
            at: now,
        });
        let elapsed = (now - bucket.at).to_std().unwrap_or_default().as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(capacity);
        bucket.at = bucket.at.max(now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let b = Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
        };
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
        let b = Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
        };
        assert_eq!(
            b.delay(1, Some(Duration::from_secs(120)), 0.5),
            Duration::from_secs(120)
        );
        assert_eq!(
            b.delay(3, Some(Duration::from_millis(1)), 1.0),
            Duration::from_secs(4)
        );
    }

    #[test]
    fn devices_are_limited_separately() {
        let t0 = DateTime::<Utc>::UNIX_EPOCH;
        let mut l = DeviceLimiter::new(2);
        assert!(l.take("a", t0).is_ok());
        assert!(l.take("a", t0).is_ok());
        let wait = l.take("a", t0).err();
        assert_eq!(wait, Some(Duration::from_secs(30)));
        assert!(l.take("b", t0).is_ok());
        // One token back every 30 s.
        assert!(l.take("a", t0 + chrono::Duration::seconds(29)).is_err());
        assert!(l.take("a", t0 + chrono::Duration::seconds(31)).is_ok());
    }
}
