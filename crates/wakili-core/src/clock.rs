//! The one source of "now" that every service is handed.
//!
//! Rules in this crate take `now` as an argument and never read a clock. The services around them
//! (signaling, storage, push, TURN, the API) hold a [`Clock`] and read it where an input arrives, so
//! a test can run any of them on a clock it moves by hand, and all of them agree on the time.

use std::{fmt, sync::Arc};

use chrono::{DateTime, Utc};

/// Where "now" comes from: the system clock in production, a controllable one in tests. Cheap to
/// clone; clones read the same source.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>);

impl Clock {
    /// The system's wall clock.
    #[must_use]
    pub fn system() -> Self {
        Self(Arc::new(Utc::now))
    }

    /// A clock that asks `now` for the time (a test's hand-moved clock, or one offset from the
    /// system's).
    pub fn from_fn(now: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        Self(Arc::new(now))
    }

    /// The current instant.
    #[must_use]
    pub fn now(&self) -> DateTime<Utc> {
        (self.0)()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Clock").field(&self.now()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_read_the_same_source() {
        let start = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).expect("valid");
        let clock = Clock::from_fn(move || start);
        let copy = clock.clone();
        assert_eq!(clock.now(), start);
        assert_eq!(copy.now(), start);
    }
}
