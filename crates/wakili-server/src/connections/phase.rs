//! Where an HTTP/1 connection is in its life, and when it should be closed for slowness:
//! the same rules as Go's `net/http` (`ReadHeaderTimeout`, `IdleTimeout`). No sockets, no clock:
//! the time of each event is passed in.
//!
//! - A new connection must deliver its first request head within the header timeout.
//! - Between requests a keep-alive connection may stay idle for the idle timeout; once the next
//!   request's first byte arrives, its head must be complete within the header timeout.
//! - While a request is being answered nothing here applies (`request_timeout` does).
//! - An upgraded connection (WebSocket) is never closed from here.

use std::time::Duration;

use tokio::time::Instant;

/// The two limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// From the accept or a request's first byte to its complete head.
    pub header: Duration,
    /// Between requests on a keep-alive connection.
    pub idle: Duration,
}

/// Why a connection is due to be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// The request head did not arrive in time.
    Header,
    /// No request arrived in time.
    Idle,
}

/// The connection's phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for a request head (the first one since the accept, or one whose first byte
    /// came) since the given time.
    Head(Instant),
    /// Answering this many requests.
    Busy(u32),
    /// Between requests since the given time.
    Idle(Instant),
    /// Handed over to another protocol (WebSocket): not watched any more.
    Upgraded,
}

impl Phase {
    /// A connection accepted at `now`.
    pub fn accepted(now: Instant) -> Self {
        Self::Head(now)
    }

    /// Bytes arrived at `now`; true when that started a request head on an idle connection.
    pub fn bytes_read(&mut self, now: Instant) -> bool {
        match self {
            Self::Idle(_) => {
                *self = Self::Head(now);
                true
            }
            _ => false,
        }
    }

    /// A request head is complete and its handler runs.
    pub fn request_started(&mut self) {
        *self = match *self {
            Self::Busy(n) => Self::Busy(n + 1),
            Self::Upgraded => Self::Upgraded,
            Self::Head(_) | Self::Idle(_) => Self::Busy(1),
        };
    }

    /// A response was sent (or abandoned) at `now`.
    pub fn response_finished(&mut self, now: Instant) {
        *self = match *self {
            Self::Busy(n) if n > 1 => Self::Busy(n - 1),
            Self::Busy(_) | Self::Head(_) | Self::Idle(_) => Self::Idle(now),
            Self::Upgraded => Self::Upgraded,
        };
    }

    /// The connection switched protocols.
    pub fn upgraded(&mut self) {
        *self = Self::Upgraded;
    }

    /// Whether the next bytes read would start a request head.
    pub fn is_idle(&self) -> bool {
        matches!(self, Self::Idle(_))
    }

    /// When the connection is due to be closed, and why; `None` while busy or upgraded.
    pub fn deadline(&self, limits: Timeouts) -> Option<(Instant, Expiry)> {
        match *self {
            Self::Head(since) => Some((since + limits.header, Expiry::Header)),
            Self::Idle(since) => Some((since + limits.idle, Expiry::Idle)),
            Self::Busy(_) | Self::Upgraded => None,
        }
    }

    /// Why the connection should be closed at `now`, if it should.
    pub fn expired(&self, limits: Timeouts, now: Instant) -> Option<Expiry> {
        self.deadline(limits)
            .filter(|(at, _)| *at <= now)
            .map(|(_, why)| why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Timeouts = Timeouts {
        header: Duration::from_secs(10),
        idle: Duration::from_secs(60),
    };

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn a_new_connection_must_send_its_head_within_the_header_timeout() {
        let t0 = Instant::now();
        let mut phase = Phase::accepted(t0);
        // Bytes trickling in do not extend it (slowloris).
        for s in 1..10 {
            assert!(!phase.bytes_read(t0 + secs(s)));
        }
        assert_eq!(phase.expired(LIMITS, t0 + secs(9)), None);
        assert_eq!(phase.expired(LIMITS, t0 + secs(10)), Some(Expiry::Header));
    }

    #[test]
    fn keep_alive_waits_for_the_idle_timeout_then_the_header_timeout_from_the_first_byte() {
        let t0 = Instant::now();
        let mut phase = Phase::accepted(t0);
        phase.request_started();
        assert_eq!(
            phase.deadline(LIMITS),
            None,
            "a request runs: no limit here"
        );
        assert_eq!(phase.expired(LIMITS, t0 + secs(3600)), None);
        phase.response_finished(t0 + secs(1));
        assert!(phase.is_idle());
        assert_eq!(phase.deadline(LIMITS), Some((t0 + secs(61), Expiry::Idle)));
        // The next request starts after 50 s idle: its head has 10 s from its first byte.
        assert!(phase.bytes_read(t0 + secs(51)));
        assert_eq!(phase.expired(LIMITS, t0 + secs(60)), None);
        assert_eq!(phase.expired(LIMITS, t0 + secs(61)), Some(Expiry::Header));
        // An idle connection with no bytes is closed at the idle timeout.
        let mut idle = Phase::accepted(t0);
        idle.request_started();
        idle.response_finished(t0);
        assert_eq!(idle.expired(LIMITS, t0 + secs(59)), None);
        assert_eq!(idle.expired(LIMITS, t0 + secs(60)), Some(Expiry::Idle));
    }

    #[test]
    fn an_upgraded_connection_is_never_due() {
        let t0 = Instant::now();
        let mut phase = Phase::accepted(t0);
        phase.request_started();
        phase.upgraded();
        phase.response_finished(t0);
        assert!(!phase.bytes_read(t0 + secs(5)));
        assert_eq!(phase, Phase::Upgraded);
        assert_eq!(phase.expired(LIMITS, t0 + secs(100_000)), None);
    }

    #[test]
    fn pipelined_requests_keep_it_busy_until_the_last_answer() {
        let t0 = Instant::now();
        let mut phase = Phase::accepted(t0);
        phase.request_started();
        phase.request_started();
        phase.response_finished(t0 + secs(1));
        assert_eq!(phase, Phase::Busy(1));
        phase.response_finished(t0 + secs(2));
        assert_eq!(phase, Phase::Idle(t0 + secs(2)));
    }
}
