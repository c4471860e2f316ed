//! Wakili's persistence.
//!
//! [`Repository`] is what the rest of the server sees. There is one SQL implementation
//! ([`sql::SqlStore`]), generic over the sqlx driver: every statement is written once with `$N`
//! placeholders that both SQLite and PostgreSQL accept. Only the schema differs, so each backend has
//! its own migrations folder. [`connect`] picks the backend from the URL.

mod error;
mod group_commit;
pub mod lifecycle;
mod log_page;
mod outbox_tables;
/// The records the stores take and return: `wakili_core::model`, where the domain defines them.
pub use wakili_core::model as models;
mod push;
mod recordings;
mod repository;
mod sql;
mod sql_audit;
mod sql_guests;
mod sql_push;
mod sql_recordings;
mod sql_webhooks;
pub mod stores;
mod time;
pub mod webhooks;

use std::{str::FromStr, sync::Arc, time::Duration};

use sqlx::{
    postgres::PgPoolOptions,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

pub use error::DbError;
pub use push::{
    CallState, DeliveryFilter, DeliveryStatus, DeviceRegistration, DueReminder, NewDevice,
    NewNotification, OutboxNotification, Outcome, PushStore,
};
pub use recordings::RecordingStore;
pub use repository::Repository;
pub use sql::SqlStore;
pub use stores::{
    AuditStore, ConsentStore, ConsultationStore, GuestStore, QualityStore, UserStore,
};
pub use webhooks::WebhookStore;

/// A shared handle to the repository.
pub type Db = Arc<dyn Repository>;

/// Which database a URL points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An SQLite file (`sqlite://path`).
    Sqlite,
    /// A PostgreSQL server (`postgres://…` or `postgresql://…`).
    Postgres,
}

impl Backend {
    /// Picks the backend from a database URL.
    pub fn from_url(url: &str) -> Result<Self, DbError> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else {
            Err(DbError::UnsupportedUrl)
        }
    }
}

/// Connection pool settings.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// Most connections kept open.
    pub max_connections: u32,
    /// How long to wait for a free connection (and for the server at start).
    pub acquire_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// A pooled PostgreSQL connection idle longer than this is checked before it is used again.
const PING_AFTER_IDLE: Duration = Duration::from_secs(10);

/// Connects to the database at `url` and applies pending migrations.
pub async fn connect(url: &str, options: &PoolOptions) -> Result<Db, DbError> {
    let db: Db = match Backend::from_url(url)? {
        Backend::Sqlite => {
            let connect = SqliteConnectOptions::from_str(url)
                .map_err(DbError::Connect)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // Metadata of evidence: an acknowledged write must survive power loss too.
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                // Only another process (a `wakili migrate`, a backup) makes a writer wait in
                // SQLite: this one's writers take turns (`SqlStore::write`).
                .busy_timeout(Duration::from_secs(5));
            let pool = |max: u32| {
                SqlitePoolOptions::new()
                    .max_connections(max)
                    // A file has no other end to hang up: pinging it before every use (sqlx's
                    // default) cost a round trip to the connection's thread per statement.
                    .test_before_acquire(false)
                    .acquire_timeout(options.acquire_timeout)
            };
            // Writers take turns, so one connection would do; with a second, the next writer
            // need not wait while sqlx returns the first to the pool (a task and a ping).
            let writer = pool(2)
                .connect_with(connect.clone())
                .await
                .map_err(DbError::Connect)?;
            sqlx::migrate!("migrations/sqlite").run(&writer).await?;
            // Readers never wait for the writer (WAL). Opened read-only, so that a write sent
            // to them by mistake fails instead of skipping the writers' turns.
            let readers = pool(options.max_connections)
                .connect_with(connect.read_only(true))
                .await
                .map_err(DbError::Connect)?;
            Arc::new(SqlStore::with_writer(readers, writer, Backend::Sqlite))
        }
        Backend::Postgres => {
            let pool = PgPoolOptions::new()
                .max_connections(options.max_connections)
                // Pinged before use only after it sat idle a while, not before every statement
                // (sqlx's default costs a round trip per statement).
                .test_before_acquire(false)
                .before_acquire(|conn, meta| {
                    Box::pin(async move {
                        if meta.idle_for > PING_AFTER_IDLE {
                            sqlx::Connection::ping(conn).await?;
                        }
                        Ok(true)
                    })
                })
                .acquire_timeout(options.acquire_timeout)
                .connect(url)
                .await
                .map_err(DbError::Connect)?;
            sqlx::migrate!("migrations/postgres").run(&pool).await?;
            Arc::new(SqlStore::new(pool, Backend::Postgres))
        }
    };
    Ok(db)
}
