//! The one error type of this crate.

/// Everything push can fail with.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The service-account key is missing, unreadable or not a service-account key.
    #[error("FCM credentials: {0}")]
    Credentials(String),
    /// The OAuth2 token endpoint refused the grant or answered nonsense.
    #[error("OAuth2 token: {0}")]
    Token(String),
    /// A request could not be sent or its answer not read (network, timeout, TLS).
    #[error("HTTP: {0}")]
    Http(#[from] reqwest::Error),
    /// A notification's content is wrong (too large, empty) and was never queued.
    #[error("invalid notification: {0}")]
    Invalid(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] wakili_db::DbError),
}
