//! The per-device rate limit (sans-IO: callers pass the time). Retry delays ([`Backoff`]) are
//! the outbox's, shared with every outbox ([`wakili_outbox`]); re-exported here.

use std::{collections::HashMap, time::Duration};

pub use wakili_outbox::Backoff;

use chrono::{DateTime, Utc};

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
