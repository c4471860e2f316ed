//! What became of one item an outbox delivered (a push notification, a webhook): the worker in
//! `wakili-outbox` decides it, the stores record it.

use chrono::{DateTime, Utc};

/// What became of one leased item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Delivered; the receiver's name for it (FCM's message name, a webhook's response id).
    Done {
        /// The receipt, kept with the row.
        receipt: String,
    },
    /// Given up for good.
    Failed {
        /// Why.
        error: String,
    },
    /// Its moment passed: dropped unsent.
    Expired,
    /// Try again at `at`.
    Retry {
        /// When.
        at: DateTime<Utc>,
        /// Why.
        error: Option<String>,
        /// Whether this counts as an attempt (a rate-limited item was not tried at all).
        attempted: bool,
    },
}
