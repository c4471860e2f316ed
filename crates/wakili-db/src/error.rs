/// Everything the repository can fail with.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL names no database this build supports.
    #[error("unsupported database URL: expected sqlite://PATH or postgres://…")]
    UnsupportedUrl,
    /// The database could not be reached or opened.
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] sqlx::Error),
    /// Applying migrations failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A statement failed.
    #[error("database query failed: {0}")]
    Query(#[from] sqlx::Error),
    /// A stored value does not decode into the domain type (a bug or a hand-edited row).
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
}
