//! Wakili's HTTP server.
//!
//! [`launch`] runs the real server on a listener the caller bound (port 0 in tests) until the
//! `shutdown` future completes. [`prepare`] builds the state (data dir, database, token verifier)
//! so tests can substitute a clock.

mod app;
pub mod auth;
pub mod error;
mod extract;
pub mod ice;
pub mod routes;
mod state;

use std::{future::Future, sync::Arc};

use tokio::net::TcpListener;
use wakili_auth::{AuthError, Verifier};
use wakili_db::{DbError, PoolOptions};
use wakili_settings::{Settings, SettingsError};

pub use app::{api, router};
pub use error::ApiError;
pub use state::{AppState, Clock, SystemClock};

/// Why the server could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The configuration cannot be used.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The token verification key cannot be used.
    #[error("auth: {0}")]
    Auth(#[from] AuthError),
    /// The data directory or the listener failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Creates the data directories, opens and migrates the database and loads the verification key.
pub async fn prepare(settings: Settings, clock: Arc<dyn Clock>) -> Result<AppState, ServerError> {
    for dir in [settings.data_dir.clone(), settings.recordings_dir()] {
        std::fs::create_dir_all(&dir).map_err(|source| ServerError::Io {
            context: format!("creating {}", dir.display()),
            source,
        })?;
    }
    let verifier = Verifier::new(settings.verifier_config()?)?;
    let db = wakili_db::connect(
        &settings.database_url(),
        &PoolOptions {
            max_connections: settings.database.max_connections,
            acquire_timeout: settings.database.acquire_timeout,
        },
    )
    .await?;
    let embedded = settings.turn.enabled.then(|| ice::EmbeddedTurn {
        host: ice::advertised_host(&settings, settings.turn.listen.ip()),
        udp_port: settings.turn.listen.port(),
        tcp_port: settings.turn.listen.port(),
        tls_port: settings
            .turn
            .tls()
            .then_some(settings.turn.tls_listen.port()),
    });
    let ice = ice::IceDirectory::new(&settings, embedded, settings.turn_secret()?);
    Ok(AppState::new(db, verifier, settings, clock, ice))
}

/// Serves `state` on `listener` until `shutdown` completes, then lets open requests finish for
/// up to `shutdown_grace`.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let grace = state.settings.shutdown_grace;
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: no new connections, finishing open requests");
        let _ = stopping_tx.send(());
    };
    let server = axum::serve(listener, router(state)).with_graceful_shutdown(signal);
    let deadline = async move {
        if stopping_rx.await.is_ok() {
            tokio::time::sleep(grace).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        result = server => result.map_err(|source| ServerError::Io {
            context: "serving HTTP".into(),
            source,
        }),
        () = deadline => {
            tracing::warn!(grace = ?grace, "grace period over; closing the remaining connections");
            Ok(())
        }
    }
}

/// Runs the server with the system clock: [`prepare`] then [`serve`].
pub async fn launch(
    settings: Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let state = prepare(settings, Arc::new(SystemClock)).await?;
    serve(state, listener, shutdown).await
}
