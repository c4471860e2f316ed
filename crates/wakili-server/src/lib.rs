//! Wakili's HTTP server.
//!
//! [`launch`] runs the real server on a listener the caller bound (port 0 in tests) until the
//! `shutdown` future completes. [`prepare`] builds the state (data dir, database, token verifier)
//! so tests can substitute a clock.

mod app;
pub mod auth;
mod combined;
pub mod connections;
pub mod error;
mod extract;
pub mod ice;
pub mod monitoring;
mod recorder;
pub mod routes;
mod state;
mod webhook_docs;

use std::{future::Future, sync::Arc};

use tokio::net::TcpListener;
use wakili_auth::{AuthError, Verifier};
use wakili_db::{DbError, PoolOptions};
use wakili_settings::{Settings, SettingsError};

pub use app::{api, router};
pub use error::ApiError;
pub use recorder::start as start_recorder;
pub use state::AppState;
pub use wakili_core::Clock;

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
    /// The embedded STUN/TURN server could not start.
    #[error(transparent)]
    Turn(#[from] wakili_turn::TurnError),
    /// The SFU could not start (its port is taken, say).
    #[error("sfu: {0}")]
    Sfu(#[from] wakili_sfu::SfuError),
    /// Signaling could not start (Redis unreachable?).
    #[error("signaling: {0}")]
    Signal(#[from] wakili_signal::SignalError),
    /// Recording storage could not be set up (providers, keys).
    #[error("recording storage: {0}")]
    Storage(#[from] wakili_storage::StorageError),
    /// Push could not be set up (FCM credentials).
    #[error("push: {0}")]
    Push(#[from] wakili_push::PushError),
    /// Webhooks could not be set up.
    #[error("webhooks: {0}")]
    Webhooks(#[from] wakili_webhooks::WebhookError),
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
pub async fn prepare(settings: Settings, clock: Clock) -> Result<AppState, ServerError> {
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
    let turn_secret = settings.turn_secret()?;
    // The SFU first: the relay lets clients reach its address.
    let sfu = start_sfu(&settings).await?;
    let sfu_addr = sfu.as_ref().map(|(handle, _)| handle.local_addr());
    let turn = if settings.turn.enabled {
        let config = turn_config(&settings, turn_secret.clone(), &clock, sfu_addr)?;
        Some(wakili_turn::start(config).await?)
    } else {
        None
    };
    let embedded = turn.as_ref().map(|running| ice::EmbeddedTurn {
        host: ice::advertised_host(&settings, running.udp_addr().ip()),
        udp_port: running.udp_addr().port(),
        tcp_port: running.tcp_addr().port(),
        tls_port: running.tls_addr().map(|a| a.port()),
    });
    let ice = ice::IceDirectory::new(&settings, embedded, turn_secret);
    let monitoring = Arc::new(monitoring::Monitoring::new());
    let recordings = recording_store(&settings, db.clone(), &clock)?;
    let recorder = recorder::start(&settings, sfu.as_ref().map(|(h, _)| h), &recordings).map_err(
        |source| ServerError::Io {
            context: "starting the recorder (its spool directory)".into(),
            source,
        },
    )?;
    let signaling = wakili_signal::start(wakili_signal::Deps {
        stores: wakili_signal::Stores::of(&db),
        verifier: Verifier::new(settings.verifier_config()?)?,
        settings: settings.signaling.clone(),
        default_profile: settings.media.default_profile.clone(),
        clock: clock.clone(),
        telemetry: Arc::clone(&monitoring.telemetry),
        sfu: sfu.as_ref().map(|(handle, _)| handle.clone()),
        recorder: recorder
            .clone()
            .map(|r| Arc::new(recorder::Signal(r)) as Arc<dyn wakili_signal::ServerRecorder>),
    })
    .await?;
    let push = push_service(&settings, db.clone(), &clock, &signaling.0)?;
    let webhooks = wakili_webhooks::Webhooks::new(db.clone(), &settings.webhooks, clock.clone())?;
    let synced = webhooks.sync_config().await?;
    if synced > 0 {
        tracing::info!(
            endpoints = synced,
            "webhook endpoints from the settings are in step"
        );
    }
    Ok(AppState::new(
        db,
        verifier,
        settings,
        clock,
        (ice, turn, sfu, recorder),
        signaling,
        (recordings, monitoring, push, webhooks),
    ))
}

/// The embedded SFU from `[sfu]`, with the sender that stops it.
async fn start_sfu(settings: &Settings) -> Result<Option<state::RunningSfu>, ServerError> {
    let s = &settings.sfu;
    if !s.enabled {
        tracing::info!("the SFU is off (sfu.enabled = false): every call is peer to peer");
        return Ok(None);
    }
    let config = wakili_sfu::SfuConfig {
        bind: s.listen,
        public_ip: s.public_ip.or(settings.turn.external_ip),
        ice_tcp: s.ice_tcp,
        max_participants_per_room: s.max_participants,
        max_tracks_per_participant: s.max_tracks_per_participant,
        listen_backlog: settings.http.listen_backlog,
        ..wakili_sfu::SfuConfig::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = wakili_sfu::Sfu::start(config, async move {
        let _ = stopped.await;
    })
    .await?;
    tracing::info!(media = %handle.local_addr(), "the SFU is listening");
    Ok(Some((handle, stop)))
}

/// The push service from `[push]`, told about presence changes by signaling (in order, on one
/// task) so it can ring and stop ringing phones.
fn push_service(
    settings: &Settings,
    db: wakili_db::Db,
    clock: &Clock,
    signaling: &wakili_signal::Signaling,
) -> Result<wakili_push::PushService, ServerError> {
    let sender = wakili_push::sender_from_settings(&settings.push, clock.clone())?;
    match &sender {
        Some(sender) => tracing::info!(endpoint = sender.endpoint(), "push is on (FCM HTTP v1)"),
        None => tracing::info!(
            "push is off: no FCM credentials (push.credentials_file or push.credentials_json)"
        ),
    }
    let push = wakili_push::PushService::new(
        wakili_push::Stores::of(&db),
        sender,
        wakili_push::PushConfig::from_settings(&settings.push),
        clock.clone(),
    );
    if push.enabled() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        signaling.observe(Arc::new(Presence(tx)));
        let push = push.clone();
        tokio::spawn(async move {
            while let Some(change) = rx.recv().await {
                let wakili_signal::PresenceChange {
                    consultation_id: c,
                    user_id: u,
                    name,
                    joined,
                    connected,
                } = change;
                let done = if joined {
                    push.participant_joined(&c, &u, &name, &connected).await
                } else {
                    push.participant_left(&c, &u, &connected).await
                };
                if let Err(e) = done {
                    tracing::warn!(error = %e, consultation_id = %c, "call notification not queued");
                }
            }
        });
    }
    Ok(push)
}

/// Forwards presence changes to the push task.
struct Presence(tokio::sync::mpsc::UnboundedSender<wakili_signal::PresenceChange>);

impl wakili_signal::PresenceObserver for Presence {
    fn changed(&self, change: wakili_signal::PresenceChange) {
        let _ = self.0.send(change);
    }
}

/// The recording store from the settings: providers, keys, download-URL secret.
fn recording_store(
    settings: &Settings,
    db: wakili_db::Db,
    clock: &Clock,
) -> Result<wakili_storage::RecordingStore, ServerError> {
    use wakili_storage::{
        Keyring, ManifestSigner, MasterKey, Providers, RecordingStore, StorageConfig,
        health::HealthPolicy,
    };
    let s = &settings.storage;
    let text = |bytes: Vec<u8>| String::from_utf8_lossy(&bytes).into_owned();
    let current = MasterKey::from_file_text(&text(settings.master_key_text()?))?;
    let retired = settings
        .retired_master_key_texts()?
        .into_iter()
        .map(|t| MasterKey::from_file_text(&text(t)))
        .collect::<Result<Vec<_>, _>>()?;
    let signer = ManifestSigner::from_key_text(&text(settings.signing_key_text()?))?;
    let configured = settings.recording_providers();
    let providers = Providers::open(
        &configured,
        HealthPolicy {
            failure_threshold: s.failure_threshold,
            cooldown: s.cooldown,
        },
        wakili_storage::providers::Timeouts {
            put: s.put_timeout,
            read: s.read_timeout,
        },
        s.replicas_for(configured.len()),
    )?;
    Ok(RecordingStore::new(
        wakili_storage::Stores::of(&db),
        providers,
        Keyring::new(current, retired),
        signer,
        settings.download_url_secret()?,
        StorageConfig {
            max_chunk_bytes: s.max_chunk_bytes,
            upload_memory_bytes: s.upload_memory_bytes,
            abandon_after: s.abandon_after,
            download_url_ttl: s.download_url_ttl,
            replication_interval: s.replication_interval,
            spool_dir: settings.data_dir.join("spool"),
            ack_copies: s.ack_copies,
            spool_max_age: settings.request_timeout * 2,
        },
        clock.clone(),
    )?)
}

fn turn_config(
    settings: &Settings,
    secret: Vec<u8>,
    clock: &Clock,
    sfu: Option<std::net::SocketAddr>,
) -> Result<wakili_turn::TurnConfig, ServerError> {
    let t = &settings.turn;
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|source| ServerError::Io {
            context: format!("reading {}", path.display()),
            source,
        })
    };
    let tls = match (&t.tls_cert_file, &t.tls_key_file) {
        (Some(cert), Some(key)) => Some(wakili_turn::TlsConfig {
            listen: t.tls_listen,
            cert_chain_pem: read(cert)?,
            key_pem: read(key)?,
        }),
        _ => None,
    };
    Ok(wakili_turn::TurnConfig {
        udp: t.listen,
        tcp: t.listen,
        realm: t.realm.clone(),
        secret,
        leeway: t.credential_leeway,
        external_ip: t.external_ip,
        policy: wakili_turn::PeerPolicy {
            allow_loopback: t.allow_loopback_peers,
            allow_private: t.allow_private_peers,
            sfu,
        },
        max_allocations_per_user: t.max_allocations_per_user as usize,
        clock: clock.clone(),
        tls,
        udp_sockets: 0,
        listen_backlog: settings.http.listen_backlog,
    })
}

/// Serves `state` on `listener` until `shutdown` completes, then lets open requests finish for
/// up to `shutdown_grace`.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let grace = state.settings.shutdown_grace;
    let drain = state.settings.shutdown_drain;
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let signaling = state.signaling.clone();
    let recorder = state.recorder.clone();
    let draining = state.clone();
    let signal = async move {
        shutdown.await;
        draining
            .draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
        if !drain.is_zero() {
            // The load balancer sees /readyz fail and sends new clients elsewhere; those here
            // carry on meanwhile.
            tracing::info!(drain = ?drain, "draining: /readyz answers 503, everything else works");
            tokio::time::sleep(drain).await;
        }
        tracing::info!("shutting down: no new connections, finishing open requests");
        // Participants see "reconnecting" and can resume on another node.
        signaling.shutdown().await;
        // Server recordings finish their files and store what they hold.
        if let Some(recorder) = &recorder {
            recorder.shutdown(grace).await;
        }
        let _ = stopping_tx.send(());
    };
    let turn = std::sync::Arc::clone(&state.turn);
    // Replication and the abandoned-upload sweep run while the server does.
    let (background_stop, background_stopped) = tokio::sync::oneshot::channel::<()>();
    let background = tokio::spawn(state.recordings.clone().run_background(async move {
        let _ = background_stopped.await;
    }));
    if let Ok(addr) = listener.local_addr() {
        state.load_tests.set_listen_addr(addr);
    }
    state.monitoring.push.attach(state.push.outcomes());
    let upkeep = tokio::spawn(monitoring::upkeep(
        Arc::clone(&state.monitoring),
        state.push.clone(),
    ));
    // The push outbox, reminders and device upkeep too.
    let (push_stop, push_stopped) = tokio::sync::oneshot::channel::<()>();
    let push = tokio::spawn(state.push.clone().run_background(async move {
        let _ = push_stopped.await;
    }));
    // And the webhook outbox.
    let (webhooks_stop, webhooks_stopped) = tokio::sync::oneshot::channel::<()>();
    let webhooks = tokio::spawn(state.webhooks.clone().run(async move {
        let _ = webhooks_stopped.await;
    }));
    let policy = connections::Policy::from_settings(&state.settings.http);
    let counters = Arc::clone(&state.monitoring.connections);
    let server = connections::serve(listener, router(state), policy, counters, signal);
    let deadline = async move {
        if stopping_rx.await.is_ok() {
            tokio::time::sleep(grace).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    let result = tokio::select! {
        () = server => Ok(()),
        () = deadline => {
            tracing::warn!(grace = ?grace, "grace period over; closing the remaining connections");
            Ok(())
        }
    };
    upkeep.abort();
    let _ = background_stop.send(());
    let _ = push_stop.send(());
    let _ = webhooks_stop.send(());
    let _ = background.await;
    let _ = push.await;
    let _ = webhooks.await;
    if let Some(running) = turn.lock().await.take() {
        running.stop().await;
    }
    result
}

/// Runs the server with the system clock: [`prepare`] then [`serve`].
pub async fn launch(
    settings: Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    if settings.web.dev_login {
        tracing::warn!(
            "development login is on: /login and POST /api/v1/dev/token mint tokens for anyone; never run --dev in production"
        );
    }
    let state = prepare(settings, Clock::system()).await?;
    serve(state, listener, shutdown).await
}
