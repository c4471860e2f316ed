//! Wakili's outbox worker, generic over what it delivers.
//!
//! Every message worth sending (a push notification, a webhook call) is a row before
//! anything is sent. A [`Worker`] leases due rows for a while (`lease_owner`, `lease_until`),
//! delivers them a few at a time, each within a deadline, and records each outcome only while it
//! still holds the lease, in chunks while later rows are still being delivered. So two nodes
//! never send the same row, a node that stops gracefully finishes its batch and releases the
//! rest, and a node that dies leaves rows that another takes over once their lease runs out.
//!
//! What is delivered, and how, is an [`Outbox`]: claim a batch under a lease, deliver one item
//! into an [`Outcome`] (done, retry at, failed, expired, plus something to prune such as a
//! device token the provider dropped), record a chunk of outcomes, release leases. The
//! [`RetryPolicy`] (exponential [`Backoff`] with jitter, a cap on attempts, no retry past an
//! item's expiry) is sans-IO and shared by every implementation.

mod counts;
mod outbox;
mod retry;
mod worker;

pub use counts::{Outcomes, Pass};
pub use outbox::{Delivered, Outbox, Outcome};
pub use retry::{Backoff, Failure, RetryPolicy};
pub use worker::{RECORD_CHUNK, Upkeep, Worker, WorkerConfig};
