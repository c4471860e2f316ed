//! What a receiver's answer means for the delivery, and when an endpoint is given up.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// What becomes of a delivery after one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The receiver took it (2xx).
    Delivered,
    /// Try again later (any other answer, a timeout, a refused connection), no sooner than the
    /// receiver's `Retry-After` when it gave one.
    Retry {
        /// What went wrong, for the delivery log.
        reason: String,
        /// The receiver's `Retry-After`, from now.
        retry_after: Option<Duration>,
    },
    /// The receiver said the endpoint is gone (410): stop, and disable the endpoint.
    Gone,
}

/// Judges one attempt: `status` is the HTTP status (`None` when no answer came: a timeout or a
/// connection error, described by `error`), `retry_after` the `Retry-After` header as sent.
///
/// Only a 2xx is a delivery. Every failure but 410 is retried: a receiver that answers 4xx
/// while it is misconfigured (a secret being rotated, a route being deployed) must not lose
/// the events of that moment.
pub fn judge(
    status: Option<u16>,
    error: Option<&str>,
    retry_after: Option<&str>,
    now: DateTime<Utc>,
) -> Verdict {
    match status {
        Some(200..=299) => Verdict::Delivered,
        Some(410) => Verdict::Gone,
        Some(code) => Verdict::Retry {
            reason: format!("HTTP {code}"),
            retry_after: retry_after.and_then(|h| parse_retry_after(h, now)),
        },
        None => Verdict::Retry {
            reason: error.unwrap_or("no answer").to_owned(),
            retry_after: None,
        },
    }
}

/// Reads `Retry-After`: delay-seconds or an HTTP date. At most a day: a receiver cannot park
/// deliveries for longer than they are retried.
fn parse_retry_after(header: &str, now: DateTime<Utc>) -> Option<Duration> {
    const DAY: Duration = Duration::from_secs(24 * 3600);
    let header = header.trim();
    let wait = if let Ok(seconds) = header.parse::<u64>() {
        Duration::from_secs(seconds)
    } else {
        let at = DateTime::parse_from_rfc2822(header)
            .ok()?
            .with_timezone(&Utc);
        (at - now).to_std().unwrap_or_default()
    };
    Some(wait.min(DAY))
}

/// When an endpoint that keeps failing is disabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disabling {
    /// Failed attempts in a row (across its deliveries) that disable it; 0 never does.
    pub after_failures: u32,
}

impl Disabling {
    /// Whether an endpoint with `consecutive` failed attempts in a row is disabled.
    pub fn disables(&self, consecutive: u32) -> bool {
        self.after_failures > 0 && consecutive >= self.after_failures
    }
}
