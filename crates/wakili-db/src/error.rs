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
    /// The user is one of the consultation's parties, who cannot be invited or removed as a
    /// guest.
    #[error("{0} is one of the consultation's parties, not a guest")]
    NotAGuest(String),
    /// A stored value does not decode into the domain type (a bug or a hand-edited row).
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
}

impl DbError {
    /// Whether the database is unreachable (down, restarting, dropped, pool exhausted), as opposed
    /// to a bug: callers answer 503 and retry rather than report an internal error.
    pub fn is_unavailable(&self) -> bool {
        let e = match self {
            Self::Connect(_) => return true,
            Self::Query(e) => e,
            _ => return false,
        };
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(db) => db.code().is_some_and(|code| {
                // PostgreSQL: connection exception, operator intervention (shutdown, terminated),
                // database does not exist. SQLite: SQLITE_BUSY (5), SQLITE_LOCKED (6).
                code.starts_with("08")
                    || code.starts_with("57P")
                    || code == "3D000"
                    || code == "5"
                    || code == "6"
            }),
            _ => false,
        }
    }
}
