//! Throw-away databases for tests: each test gets its own, so tests run in parallel and in any
//! order.

use std::time::Duration;

use sqlx::{Connection, Executor, PgConnection};

use wakili_db::Backend;

/// Where tests find PostgreSQL: `WAKILI_TEST_POSTGRES_URL`, or the local server with trust auth.
pub fn postgres_admin_url() -> String {
    std::env::var("WAKILI_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database that exists for one test and is removed afterwards.
pub struct TestDatabase {
    /// URL to connect to it.
    pub url: String,
    /// Which backend it is.
    pub backend: Backend,
    postgres: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDatabase {
    /// A fresh database of `backend`.
    ///
    /// # Panics
    /// When the database cannot be created: tests need it, and a panic names the cause.
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => Self::sqlite(),
            Backend::Postgres => Self::postgres().await,
        }
    }

    fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", dir.path().join("wakili.db").display());
        Self {
            url,
            backend: Backend::Sqlite,
            postgres: None,
            _dir: Some(dir),
        }
    }

    async fn postgres() -> Self {
        let admin = postgres_admin_url();
        let name = format!("wakili_test_{}", uuid::Uuid::now_v7().simple());
        let mut conn = PgConnection::connect(&admin).await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL at {admin} is needed for this test (set WAKILI_TEST_POSTGRES_URL): {e}"
            )
        });
        conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("create test database");
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        Self {
            url: format!("{base}/{name}"),
            backend: Backend::Postgres,
            postgres: Some((admin.clone(), name)),
            _dir: None,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some((admin, name)) = self.postgres.take() else {
            return;
        };
        // Drop may run inside a runtime: use a thread with its own.
        let dropper = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                if let Ok(mut conn) = PgConnection::connect(&admin).await {
                    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = tokio::time::timeout(
                        Duration::from_secs(10),
                        conn.execute(sqlx::AssertSqlSafe(sql)),
                    )
                    .await;
                }
            });
        });
        let _ = dropper.join();
    }
}

/// Re-exported for [`both_backends!`](crate::both_backends).
#[doc(hidden)]
pub use wakili_db::Backend as BackendForMacro;

/// One story test run on every database backend: for each `async fn name(backend: Backend)`
/// listed, a `#[tokio::test]` `sqlite::name` and `postgres::name` (two worker threads each).
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::db::BackendForMacro::Sqlite).await })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::db::BackendForMacro::Postgres).await })*
        }
    };
}
