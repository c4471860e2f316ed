//! What a [`crate::Worker`] needs from the thing it delivers.

use std::future::Future;

use chrono::{DateTime, Utc};
pub use wakili_core::delivery::Outcome;

/// One item's outcome, as the worker hands it to [`Outbox::record`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered<P> {
    /// The item's row id.
    pub id: String,
    /// What became of it.
    pub outcome: Outcome,
    /// A target to retire with it (a device token the provider no longer knows, a webhook
    /// endpoint that is gone).
    pub prune: Option<P>,
}

/// A store of items to deliver and the way to deliver one.
///
/// Implementations do the IO; the [`crate::Worker`] decides when, how many at once, under which
/// lease and in which chunks.
pub trait Outbox: Send + Sync + 'static {
    /// A leased item, as claimed.
    type Item: Send + 'static;
    /// What [`Delivered::prune`] names.
    type Prune: Send + 'static;
    /// What claiming, recording and releasing fail with.
    type Error: std::fmt::Display + Send + 'static;

    /// Leases up to `limit` items due at `now` for `owner` until `until`.
    fn claim(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Self::Item>, Self::Error>> + Send;

    /// Delivers one item and says what became of it. Never fails: a failure is an
    /// [`Outcome`].
    fn deliver(&self, item: Self::Item) -> impl Future<Output = Delivered<Self::Prune>> + Send;

    /// Records outcomes of items `owner` leased, at `now`, retiring what they prune. Outcomes
    /// of items whose lease `owner` lost change nothing.
    fn record(
        &self,
        owner: &str,
        chunk: Vec<Delivered<Self::Prune>>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Gives back every lease `owner` holds (a node stopping).
    fn release(&self, owner: &str) -> impl Future<Output = Result<(), Self::Error>> + Send;
}
