//! What webhook administration and sending fail with.

use wakili_db::DbError;

/// A webhook failure.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// Input the API refuses (a malformed URL, an unknown event, a bad secret), naming the
    /// field.
    #[error("{0}")]
    Invalid(String),
    /// The URL points where webhooks may not go (loopback, private, special-purpose).
    #[error("{0}")]
    Refused(String),
    /// The URL's host does not resolve, or the client could not be built.
    #[error("{0}")]
    Unreachable(String),
    /// No such endpoint or delivery.
    #[error("no such webhook {0}")]
    NotFound(&'static str),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}
