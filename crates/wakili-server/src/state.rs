//! What every handler shares.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use chrono::{DateTime, Utc};
use wakili_auth::Verifier;
use wakili_core::Clock;
use wakili_db::Db;
use wakili_settings::Settings;

/// The embedded SFU's handle, with the sender that stops it (sending on it, or dropping it).
pub type RunningSfu = (wakili_sfu::SfuHandle, tokio::sync::oneshot::Sender<()>);

/// Shared state behind every request.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// The contents of [`AppState`].
pub struct Inner {
    /// The repository.
    pub db: Db,
    /// Verifies bearer tokens.
    pub verifier: Verifier,
    /// Effective settings.
    pub settings: Settings,
    /// Time source.
    pub clock: Clock,
    /// ICE servers handed to participants.
    pub ice: crate::ice::IceDirectory,
    /// The embedded STUN/TURN server, while it runs (taken and stopped at shutdown).
    pub turn: Arc<tokio::sync::Mutex<Option<wakili_turn::RunningTurn>>>,
    /// The embedded SFU while it runs.
    pub sfu: Option<RunningSfu>,
    /// The SFU's recorder, when the server records.
    pub recorder: Option<Arc<wakili_recorder::Recorder>>,
    /// Socket.IO signaling, for telling rooms about REST-side changes.
    pub signaling: wakili_signal::Signaling,
    /// Recording storage.
    pub recordings: wakili_storage::RecordingStore,
    /// Metrics (`/metrics`, the dashboard) and the dashboard's load tests.
    pub monitoring: Arc<crate::monitoring::Monitoring>,
    /// The load test started from the dashboard, if any.
    pub(crate) load_tests: crate::routes::load_tests::LoadTests,
    /// Mobile push (devices, outbox, reminders).
    pub push: wakili_push::PushService,
    /// Webhooks to the platform's backend (endpoints, delivery outbox).
    pub webhooks: wakili_webhooks::Webhooks,
    /// The Socket.IO service in front of the router.
    pub(crate) signal_layer: wakili_signal::SignalLayer,
    /// Users whose claims were written recently, by id.
    pub(crate) users_seen: Mutex<HashMap<String, crate::auth::SeenUser>>,
    /// Set when shutdown begins: `/readyz` answers 503 from then on.
    pub(crate) draining: std::sync::atomic::AtomicBool,
}

impl AppState {
    /// Bundles the parts.
    pub fn new(
        db: Db,
        verifier: Verifier,
        settings: Settings,
        clock: Clock,
        (ice, turn, sfu, recorder): (
            crate::ice::IceDirectory,
            Option<wakili_turn::RunningTurn>,
            Option<RunningSfu>,
            Option<Arc<wakili_recorder::Recorder>>,
        ),
        (signaling, signal_layer): (wakili_signal::Signaling, wakili_signal::SignalLayer),
        (recordings, monitoring, push, webhooks): (
            wakili_storage::RecordingStore,
            Arc<crate::monitoring::Monitoring>,
            wakili_push::PushService,
            wakili_webhooks::Webhooks,
        ),
    ) -> Self {
        Self(Arc::new(Inner {
            db,
            verifier,
            settings,
            clock,
            ice,
            turn: Arc::new(tokio::sync::Mutex::new(turn)),
            sfu,
            recorder,
            signaling,
            signal_layer,
            recordings,
            monitoring,
            load_tests: Default::default(),
            push,
            webhooks,
            users_seen: Mutex::new(HashMap::new()),
            draining: std::sync::atomic::AtomicBool::new(false),
        }))
    }

    /// The current instant from the state's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.0.clock.now()
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}
