//! A clock a test moves by hand, handed to the server as its [`Clock`].

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use chrono::{DateTime, SubsecRound, Utc};
use wakili_core::Clock;

/// A time that stands still until the test sets or advances it. Clones share the time.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

impl ManualClock {
    /// Starts at `at`.
    #[must_use]
    pub fn at(at: DateTime<Utc>) -> Self {
        Self(Arc::new(Mutex::new(at)))
    }

    /// Starts at the real time, cut to microseconds (what the databases keep, so a time read
    /// back equals the one written).
    #[must_use]
    pub fn starting_now() -> Self {
        Self::at(Utc::now().trunc_subsecs(6))
    }

    /// The time it shows.
    #[must_use]
    pub fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Moves it to `at` (also backwards).
    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = at;
    }

    /// Moves it forward by `by`.
    ///
    /// # Panics
    /// When `by` does not fit a chrono duration (centuries).
    pub fn advance(&self, by: Duration) {
        let by = chrono::Duration::from_std(by).expect("a test advances by less than centuries");
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) += by;
    }

    /// The [`Clock`] to give the server: it reads this clock's time.
    #[must_use]
    pub fn clock(&self) -> Clock {
        let shared = self.clone();
        Clock::from_fn(move || shared.now())
    }
}
