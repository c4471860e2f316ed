//! The name, kind and help text of every metric the server exports, in one table.

/// Every metric: name, kind and help text (promtool wants a HELP line for each).
pub(super) const DESCRIPTIONS: &[(&str, Kind, &str)] = &[
    (
        "wakili_http_requests_total",
        Kind::Counter,
        "HTTP requests answered, by method, matched route and status",
    ),
    (
        "wakili_http_request_duration_seconds",
        Kind::Histogram,
        "HTTP request latency, by method, matched route and status",
    ),
    (
        "wakili_http_connections",
        Kind::Gauge,
        "HTTP connections open, upgraded WebSockets included",
    ),
    (
        "wakili_http_connections_total",
        Kind::Counter,
        "HTTP connections accepted and served since start",
    ),
    (
        "wakili_http_connections_refused_total",
        Kind::Counter,
        "HTTP connections refused at a cap, by cap (max_connections, max_connections_per_ip)",
    ),
    (
        "wakili_http_connections_timed_out_total",
        Kind::Counter,
        "HTTP connections closed for slowness, by limit (header_read_timeout, idle_timeout)",
    ),
    (
        "wakili_runtime_worker_threads",
        Kind::Gauge,
        "Threads of the async runtime (worker_threads, or one per core)",
    ),
    (
        "wakili_http_accept_errors_total",
        Kind::Counter,
        "Failed accepts other than a client giving up (EMFILE, ENFILE, ENOMEM)",
    ),
    (
        "wakili_room_redis_commands_total",
        Kind::Counter,
        "Redis commands this node sent for rooms: reads, change scripts and signals relayed to another node (0 on one node)",
    ),
    (
        "wakili_socketio_connections",
        Kind::Gauge,
        "Socket.IO connections open on this node",
    ),
    (
        "wakili_socketio_connections_total",
        Kind::Counter,
        "Socket.IO connections accepted since start",
    ),
    (
        "wakili_socketio_handshakes_refused_total",
        Kind::Counter,
        "Socket.IO handshakes refused (missing or invalid token)",
    ),
    (
        "wakili_active_consultations",
        Kind::Gauge,
        "Consultations with participants connected to this node",
    ),
    (
        "wakili_active_participants",
        Kind::Gauge,
        "Participants connected to this node",
    ),
    (
        "wakili_signals_relayed_total",
        Kind::Counter,
        "WebRTC signals relayed, by type",
    ),
    (
        "wakili_joins_total",
        Kind::Counter,
        "consultation:join events acknowledged",
    ),
    (
        "wakili_join_refusals_total",
        Kind::Counter,
        "consultation:join events refused",
    ),
    (
        "wakili_join_duration_seconds",
        Kind::Histogram,
        "consultation:join arrival to acknowledgement",
    ),
    (
        "wakili_quality_reports_total",
        Kind::Counter,
        "quality:report events received",
    ),
    (
        "wakili_turn_allocations",
        Kind::Gauge,
        "TURN allocations open on the embedded relay",
    ),
    (
        "wakili_turn_allocations_total",
        Kind::Counter,
        "TURN allocations created since start",
    ),
    (
        "wakili_turn_relayed_bytes_total",
        Kind::Counter,
        "Bytes the embedded TURN relay forwarded, by direction",
    ),
    (
        "wakili_turn_refusals_total",
        Kind::Counter,
        "TURN requests refused, by reason (auth: bad or expired credentials; peer: a private or \
         loopback peer; quota: the per-user allocation cap)",
    ),
    (
        "wakili_sfu_dropped_datagrams_total",
        Kind::Counter,
        "Datagrams the SFU's media port dropped: from no known session, or not WebRTC",
    ),
    (
        "wakili_sfu_send_failures_total",
        Kind::Counter,
        "Media datagrams the SFU could not send",
    ),
    (
        "wakili_sfu_sessions",
        Kind::Gauge,
        "Media sessions the SFU holds open, all consultations together",
    ),
    (
        "wakili_recorder_sessions",
        Kind::Gauge,
        "Consultations the server is recording (or finishing) now",
    ),
    (
        "wakili_recorder_tracks",
        Kind::Gauge,
        "Track files the server is recording now",
    ),
    (
        "wakili_recorder_sealed_bytes_total",
        Kind::Counter,
        "Server-recorded media bytes sealed and stored (its rate: bytes sealed per second)",
    ),
    (
        "wakili_recorder_queue_bytes",
        Kind::Gauge,
        "Server-recorded media waiting for storage, in memory or in the spool",
    ),
    (
        "wakili_recorder_overflow_chunks_total",
        Kind::Counter,
        "Server-recorded chunks dropped because memory and spool were full (each is audited)",
    ),
    (
        "wakili_recorder_dropped_packets_total",
        Kind::Counter,
        "Packets the SFU could not hand to the recorder (its feed was full)",
    ),
    (
        "wakili_recorder_packets_total",
        Kind::Counter,
        "RTP packets the server recorded (written into a track file)",
    ),
    (
        "wakili_recording_ingested_bytes_total",
        Kind::Counter,
        "Recording chunk bytes acknowledged to uploaders",
    ),
    (
        "wakili_recording_chunks_total",
        Kind::Counter,
        "Recording chunks acknowledged to uploaders",
    ),
    (
        "wakili_recording_replication_backlog",
        Kind::Gauge,
        "Recording chunk copies still to be replicated",
    ),
    (
        "wakili_push_sent_total",
        Kind::Counter,
        "Push notifications accepted by the provider",
    ),
    (
        "wakili_push_failed_total",
        Kind::Counter,
        "Push notifications that failed for good",
    ),
    (
        "wakili_push_queued",
        Kind::Gauge,
        "Push notifications waiting to be sent",
    ),
    (
        "wakili_webhook_attempts_total",
        Kind::Counter,
        "Webhook delivery attempts, by result (delivered: a 2xx; failed: anything else)",
    ),
    (
        "wakili_webhook_endpoints_disabled_total",
        Kind::Counter,
        "Webhook endpoints disabled for failing too often in a row or answering 410",
    ),
    (
        "wakili_webhook_pending",
        Kind::Gauge,
        "Webhook deliveries waiting (due, backing off, or queued behind an earlier one)",
    ),
    (
        "wakili_db_pool_connections",
        Kind::Gauge,
        "Database connections the pools hold open (on SQLite the readers and the writers)",
    ),
    (
        "wakili_db_pool_idle_connections",
        Kind::Gauge,
        "Idle database connections in the pools",
    ),
];

#[derive(Clone, Copy)]
pub(super) enum Kind {
    Counter,
    Gauge,
    Histogram,
}
