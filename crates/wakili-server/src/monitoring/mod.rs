//! Metrics: a Prometheus recorder owned by this server instance (not the process-global one, so
//! several servers in one test process keep their own figures), the HTTP middleware that counts
//! requests by matched route and status, and the scrape that reads every other subsystem's
//! counters (signaling, TURN, recordings, push, database pool, process).

mod descriptions;
pub mod process;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    extract::{MatchedPath, Request, State},
    middleware::Next,
    response::Response,
};
use metrics::{Counter, Gauge, Histogram, Key, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use crate::AppState;
use descriptions::{DESCRIPTIONS, Kind};

static METADATA: Metadata<'static> = Metadata::new("wakili", Level::INFO, Some(module_path!()));

/// Latency buckets, seconds: 0.5 ms to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Push outcomes: the push outbox's counts once attached, plus any counted here.
#[derive(Debug, Default)]
pub struct PushCounters {
    sent: AtomicU64,
    failed: AtomicU64,
    queued: AtomicU64,
    outbox: std::sync::OnceLock<Arc<wakili_push::Outcomes>>,
}

impl PushCounters {
    /// One notification was accepted by the provider.
    pub fn sent(&self) {
        self.sent.fetch_add(1, Ordering::Relaxed);
    }

    /// One notification failed for good.
    pub fn failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }

    /// Notifications waiting now.
    pub fn set_queued(&self, n: u64) {
        self.queued.store(n, Ordering::Relaxed);
    }

    /// Reads the push outbox's own counts from now on (dropped-as-late counts as failed).
    pub fn attach(&self, outbox: Arc<wakili_push::Outcomes>) {
        let _ = self.outbox.set(outbox);
    }

    /// (sent, failed, queued).
    pub fn get(&self) -> (u64, u64, u64) {
        let (sent, failed, expired) = self.outbox.get().map_or((0, 0, 0), |o| o.get());
        (
            self.sent.load(Ordering::Relaxed) + sent,
            self.failed.load(Ordering::Relaxed) + failed + expired,
            self.queued.load(Ordering::Relaxed),
        )
    }
}

/// This server's metrics.
pub struct Monitoring {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// Signaling's counters on this node.
    pub telemetry: Arc<wakili_signal::Telemetry>,
    /// Push outcomes.
    pub push: PushCounters,
    /// The HTTP listener's connections.
    pub connections: Arc<crate::connections::Counters>,
    recording_bytes: AtomicU64,
    recording_chunks: AtomicU64,
}

impl std::fmt::Debug for Monitoring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitoring").finish_non_exhaustive()
    }
}

impl Default for Monitoring {
    fn default() -> Self {
        Self::new()
    }
}

impl Monitoring {
    /// A recorder with every metric described and the push and recording metrics at zero.
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new())
            .build_recorder();
        let handle = recorder.handle();
        for (name, kind, help) in DESCRIPTIONS {
            let name = metrics::KeyName::from_const_str(name);
            let help = metrics::SharedString::const_str(help);
            match kind {
                Kind::Counter => recorder.describe_counter(name, None, help),
                Kind::Gauge => recorder.describe_gauge(name, None, help),
                Kind::Histogram => recorder.describe_histogram(name, None, help),
            }
        }
        let join_latency = recorder.register_histogram(
            &Key::from_static_name("wakili_join_duration_seconds"),
            &METADATA,
        );
        let monitoring = Self {
            recorder,
            handle,
            telemetry: Arc::new(wakili_signal::Telemetry::new(join_latency)),
            push: PushCounters::default(),
            connections: Arc::default(),
            recording_bytes: AtomicU64::new(0),
            recording_chunks: AtomicU64::new(0),
        };
        // Present from the first scrape, at zero.
        monitoring.refresh_counters();
        monitoring
    }

    fn counter(&self, name: &'static str, labels: Vec<Label>) -> Counter {
        self.recorder
            .register_counter(&Key::from_parts(name, labels), &METADATA)
    }

    fn gauge(&self, name: &'static str) -> Gauge {
        self.recorder
            .register_gauge(&Key::from_static_name(name), &METADATA)
    }

    fn gauge_with(&self, name: &'static str, labels: Vec<Label>) -> Gauge {
        self.recorder
            .register_gauge(&Key::from_parts(name, labels), &METADATA)
    }

    fn histogram(&self, name: &'static str, labels: Vec<Label>) -> Histogram {
        self.recorder
            .register_histogram(&Key::from_parts(name, labels), &METADATA)
    }

    /// Counts one answered HTTP request.
    pub fn http(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let labels = || {
            vec![
                Label::new("method", method.to_owned()),
                Label::new("route", route.to_owned()),
                Label::new("status", status.to_string()),
            ]
        };
        self.counter("wakili_http_requests_total", labels())
            .increment(1);
        self.histogram("wakili_http_request_duration_seconds", labels())
            .record(elapsed.as_secs_f64());
    }

    /// Counts an acknowledged recording chunk of `bytes`.
    pub fn recording_chunk(&self, bytes: u64) {
        self.recording_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.recording_chunks.fetch_add(1, Ordering::Relaxed);
    }

    /// (bytes, chunks) of recordings acknowledged since start.
    pub fn recording_ingest(&self) -> (u64, u64) {
        (
            self.recording_bytes.load(Ordering::Relaxed),
            self.recording_chunks.load(Ordering::Relaxed),
        )
    }

    /// Copies the counters that need no I/O into the recorder.
    fn refresh_counters(&self) {
        let http = self.connections.snapshot();
        self.gauge("wakili_http_connections").set(http.open as f64);
        self.counter("wakili_http_connections_total", vec![])
            .absolute(http.accepted);
        for (cap, n) in [
            ("max_connections", http.refused_total),
            ("max_connections_per_ip", http.refused_per_ip),
        ] {
            self.counter(
                "wakili_http_connections_refused_total",
                vec![Label::new("cap", cap)],
            )
            .absolute(n);
        }
        for (limit, n) in [
            ("header_read_timeout", http.header_timeouts),
            ("idle_timeout", http.idle_timeouts),
        ] {
            self.counter(
                "wakili_http_connections_timed_out_total",
                vec![Label::new("limit", limit)],
            )
            .absolute(n);
        }
        self.counter("wakili_http_accept_errors_total", vec![])
            .absolute(http.accept_errors);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            self.gauge("wakili_runtime_worker_threads")
                .set(runtime.metrics().num_workers() as f64);
        }
        let c = self.telemetry.counters();
        self.gauge("wakili_socketio_connections")
            .set(c.connections_open as f64);
        self.counter("wakili_socketio_connections_total", vec![])
            .absolute(c.connections_total);
        self.counter("wakili_socketio_handshakes_refused_total", vec![])
            .absolute(c.connections_refused);
        self.gauge("wakili_active_consultations")
            .set(c.active_consultations as f64);
        self.gauge("wakili_active_participants")
            .set(c.active_participants as f64);
        for (kind, n) in [
            ("offer", c.signals_offer),
            ("answer", c.signals_answer),
            ("candidate", c.signals_candidate),
            ("restart", c.signals_restart),
        ] {
            self.counter(
                "wakili_signals_relayed_total",
                vec![Label::new("type", kind)],
            )
            .absolute(n);
        }
        self.counter("wakili_joins_total", vec![]).absolute(c.joins);
        self.counter("wakili_room_redis_commands_total", vec![])
            .absolute(self.telemetry.room_redis_commands());
        self.counter("wakili_join_refusals_total", vec![])
            .absolute(c.join_refusals);
        self.counter("wakili_quality_reports_total", vec![])
            .absolute(c.quality_reports);
        let (bytes, chunks) = self.recording_ingest();
        self.counter("wakili_recording_ingested_bytes_total", vec![])
            .absolute(bytes);
        self.counter("wakili_recording_chunks_total", vec![])
            .absolute(chunks);
        let (sent, failed, queued) = self.push.get();
        self.counter("wakili_push_sent_total", vec![])
            .absolute(sent);
        self.counter("wakili_push_failed_total", vec![])
            .absolute(failed);
        self.gauge("wakili_push_queued").set(queued as f64);
    }

    /// Reads every subsystem and renders the Prometheus text exposition.
    pub async fn render(&self, state: &AppState) -> String {
        self.refresh_counters();
        let (size, idle) = state.db.pool_connections();
        self.gauge("wakili_db_pool_connections")
            .set(f64::from(size));
        self.gauge("wakili_db_pool_idle_connections")
            .set(idle as f64);
        if let Some(turn) = state.turn.lock().await.as_ref() {
            let s = turn.stats();
            self.gauge("wakili_turn_allocations")
                .set(s.allocations_active as f64);
            self.counter("wakili_turn_allocations_total", vec![])
                .absolute(s.allocations_created);
            for (direction, n) in [
                ("to_peers", s.relayed_bytes_to_peers),
                ("from_peers", s.relayed_bytes_from_peers),
            ] {
                self.counter(
                    "wakili_turn_relayed_bytes_total",
                    vec![Label::new("direction", direction)],
                )
                .absolute(n);
            }
            for (reason, n) in [
                ("auth", s.rejected_auth),
                ("peer", s.rejected_peer),
                ("quota", s.rejected_quota),
            ] {
                self.counter(
                    "wakili_turn_refusals_total",
                    vec![Label::new("reason", reason)],
                )
                .absolute(n);
            }
        }
        if let Some((sfu, _)) = &state.sfu {
            self.counter("wakili_sfu_dropped_datagrams_total", vec![])
                .absolute(sfu.dropped_datagrams());
            self.counter("wakili_sfu_send_failures_total", vec![])
                .absolute(sfu.send_failures());
            self.gauge("wakili_sfu_sessions").set(sfu.sessions() as f64);
        }
        let w = state.webhooks.counters();
        for (result, n) in [("delivered", w.delivered), ("failed", w.failed_attempts)] {
            self.counter(
                "wakili_webhook_attempts_total",
                vec![Label::new("result", result)],
            )
            .absolute(n);
        }
        self.counter("wakili_webhook_endpoints_disabled_total", vec![])
            .absolute(w.endpoints_disabled);
        match state.webhooks.pending().await {
            Ok(n) => self.gauge("wakili_webhook_pending").set(n as f64),
            Err(e) => tracing::debug!(error = %e, "cannot count pending webhook deliveries"),
        }
        if let Some(recorder) = &state.recorder {
            let r = recorder.stats();
            self.gauge("wakili_recorder_sessions")
                .set(r.sessions as f64);
            self.gauge("wakili_recorder_tracks")
                .set(r.active_tracks as f64);
            self.counter("wakili_recorder_sealed_bytes_total", vec![])
                .absolute(r.sealed_bytes);
            for (place, n) in [
                ("memory", r.queued_memory_bytes),
                ("spool", r.spooled_bytes),
            ] {
                self.gauge_with(
                    "wakili_recorder_queue_bytes",
                    vec![Label::new("where", place)],
                )
                .set(n as f64);
            }
            self.counter("wakili_recorder_overflow_chunks_total", vec![])
                .absolute(r.overflow_chunks);
            self.counter("wakili_recorder_dropped_packets_total", vec![])
                .absolute(r.dropped_packets);
            self.counter("wakili_recorder_packets_total", vec![])
                .absolute(r.recorded_packets);
        }
        match state.recordings.usage().await {
            Ok(usage) => self
                .gauge("wakili_recording_replication_backlog")
                .set(usage.replication_backlog as f64),
            Err(e) => tracing::warn!(error = %e, "replication backlog not read for /metrics"),
        }
        let mut text = self.handle.render();
        if let Some(p) = process::read() {
            text.push_str(&p.exposition());
        }
        text
    }

    /// Drains histogram samples into their buckets; run every few seconds so memory stays
    /// bounded when nobody scrapes.
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }
}

/// Runs [`Monitoring::upkeep`] every 5 s until aborted, and counts the queued push notifications.
pub async fn upkeep(monitoring: Arc<Monitoring>, push: wakili_push::PushService) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        monitoring.upkeep();
        match push.pending().await {
            Ok(n) => monitoring.push.set_queued(n),
            Err(e) => tracing::debug!(error = %e, "cannot count queued push notifications"),
        }
    }
}

/// Middleware: counts every request by method, matched route (not the raw path: ids would make
/// unbounded label values) and status, with its latency.
pub async fn track_http(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    state.monitoring.http(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}
