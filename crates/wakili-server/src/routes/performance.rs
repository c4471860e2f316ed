//! Monitoring endpoints: `/metrics` (Prometheus), a consultation's connection quality, the
//! dashboard's JSON snapshot.

use axum::{
    Json as JsonResponse,
    extract::State,
    http::{HeaderMap, header},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use wakili_core::quality_timeline::{self, QualityAnalysis, StabilityEvent};

use crate::{
    ApiError, AppState,
    auth::{Admin, Auth},
    error::ErrorBody,
    extract::Path,
};

/// Consultations listed in the snapshot at most.
const SNAPSHOT_CONSULTATIONS: usize = 200;

/// Prometheus metrics (text exposition format 0.0.4). When `[metrics] token` is set, send it as
/// `Authorization: Bearer <token>`.
#[utoipa::path(get, path = "/metrics", tag = "monitoring",
    responses(
        (status = 200, description = "Prometheus text format", content_type = "text/plain; version=0.0.4", body = String),
        (status = 401, description = "[metrics] token is set and was not sent", body = ErrorBody),
        (status = 404, description = "[metrics] enabled = false", body = ErrorBody),
    ))]
pub async fn metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let settings = &state.settings.metrics;
    if !settings.enabled {
        return Err(ApiError::not_found(
            "metrics are disabled ([metrics] enabled = false)",
        ));
    }
    if let Some(token) = &settings.token {
        let sent = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim());
        if !sent.is_some_and(|t| constant_time_eq(t.as_bytes(), token.expose().as_bytes())) {
            return Err(ApiError::unauthorized(
                "send Authorization: Bearer <[metrics] token>",
            ));
        }
    }
    let text = state.monitoring.render(&state).await;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A consultation's connection quality.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsultationQuality {
    /// The consultation.
    pub consultation_id: String,
    /// When this was computed.
    pub generated_at: DateTime<Utc>,
    /// Per participant timeline and summary, and the consultation's bandwidth.
    #[serde(flatten)]
    pub analysis: QualityAnalysis,
}

/// Each participant's quality timeline (sampled `quality:report`s: RTT, jitter, loss, bitrate,
/// score) and summary (min / mean / p95, time at each level, reconnects, ICE restarts,
/// candidate types), and the consultation's estimated bandwidth. Its participants and admins.
#[utoipa::path(get, path = "/api/v1/consultations/{id}/quality", tag = "monitoring",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Consultation id")),
    responses(
        (status = 200, description = "Timelines and summaries", body = ConsultationQuality),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 404, description = "No such consultation, or not the caller's", body = ErrorBody),
    ))]
pub async fn quality(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<JsonResponse<ConsultationQuality>, ApiError> {
    let (consultation, _) = super::consultations::visible(&state, &auth, &id).await?;
    let samples = state.db.quality_samples(&consultation.id).await?;
    let audit = state.db.audit_log(&consultation.id).await?;
    let events: Vec<(String, StabilityEvent)> = audit
        .iter()
        .filter_map(|e| {
            let kind = match e.action.as_str() {
                "participant.resumed" => StabilityEvent::Reconnect,
                "participant.ice_restart" => StabilityEvent::IceRestart,
                _ => return None,
            };
            let participant = e.detail.get("participantId")?.as_str()?;
            Some((participant.to_owned(), kind))
        })
        .collect();
    // A sample stands for the reports until the next one: twice the sampling interval at most.
    let hold = chrono::Duration::from_std(state.settings.signaling.quality_sample_interval * 2)
        .unwrap_or(chrono::Duration::seconds(10));
    let now = state.now();
    let end = consultation.ended_at.map_or(now, |ended| ended.min(now));
    Ok(JsonResponse(ConsultationQuality {
        consultation_id: consultation.id,
        generated_at: now,
        analysis: quality_timeline::analyze(&samples, &events, hold, end),
    }))
}

/// One participant in the snapshot's list of active consultations.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LiveParticipant {
    /// Participant id.
    pub participant_id: String,
    /// Their user.
    pub user_id: String,
    /// `lawyer`, `client` or `admin`.
    pub role: String,
    /// Joined (or resumed) at.
    pub since: DateTime<Utc>,
    /// Latest quality report, scored; `null` before the first.
    #[schema(value_type = Option<Object>)]
    pub quality: Option<wakili_core::quality_timeline::TimelinePoint>,
}

/// A consultation with participants connected to this node.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LiveConsultation {
    /// Consultation id.
    pub consultation_id: String,
    /// Its participants here.
    pub participants: Vec<LiveParticipant>,
}

/// Latency percentiles, milliseconds.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Percentiles {
    /// Median.
    pub p50: Option<f64>,
    /// 95th percentile.
    pub p95: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
    /// Values they are computed from.
    pub count: usize,
}

impl Percentiles {
    fn of(mut values: Vec<f64>) -> Self {
        values.sort_by(f64::total_cmp);
        let at = |q: f64| {
            (!values.is_empty()).then(|| {
                let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
                values[rank - 1]
            })
        };
        Self {
            p50: at(0.5),
            p95: at(0.95),
            p99: at(0.99),
            count: values.len(),
        }
    }
}

/// The dashboard's snapshot: totals since start (rates are differences between two snapshots).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PerformanceSnapshot {
    /// When it was taken.
    pub at: DateTime<Utc>,
    /// Socket.IO and consultation counters of this node.
    #[schema(value_type = Object)]
    pub signaling: wakili_signal::telemetry::Counters,
    /// All signals relayed since start.
    pub signals_relayed: u64,
    /// Latency of the latest joins (up to 1,024).
    pub join_latency_ms: Percentiles,
    /// The embedded relay's counters (`null` when it is off).
    #[schema(value_type = Option<Object>)]
    pub turn: Option<wakili_turn::StatsSnapshot>,
    /// Recording bytes acknowledged since start.
    pub recording_ingested_bytes: u64,
    /// Recording chunks acknowledged since start.
    pub recording_chunks: u64,
    /// Chunk copies waiting for replication (`null` when unreadable).
    pub replication_backlog: Option<u64>,
    /// Push notifications sent, failed, queued.
    pub push: PushSnapshot,
    /// Database pool: open connections, idle ones.
    pub db_pool: [u64; 2],
    /// Process CPU seconds so far (`null` off Linux).
    pub process_cpu_seconds: Option<f64>,
    /// Process resident memory, bytes.
    pub process_resident_bytes: Option<u64>,
    /// Summed latest send + receive bitrate of every participant here, kbit/s.
    pub bandwidth_kbps: f64,
    /// Consultations with participants here (at most 200), with each participant's quality.
    pub consultations: Vec<LiveConsultation>,
}

/// Push outcomes.
#[derive(Debug, Serialize, ToSchema)]
pub struct PushSnapshot {
    /// Accepted by the provider.
    pub sent: u64,
    /// Failed for good.
    pub failed: u64,
    /// Waiting.
    pub queued: u64,
}

/// The dashboard's live figures (admins).
#[utoipa::path(get, path = "/api/v1/performance/metrics", tag = "monitoring",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Snapshot", body = PerformanceSnapshot),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
    ))]
pub async fn snapshot(
    State(state): State<AppState>,
    _: Admin,
) -> Result<JsonResponse<PerformanceSnapshot>, ApiError> {
    let monitoring = &state.monitoring;
    let telemetry = &monitoring.telemetry;
    let signaling = telemetry.counters();
    let turn = state.turn.lock().await.as_ref().map(|t| t.stats());
    let replication_backlog = state
        .recordings
        .usage()
        .await
        .ok()
        .map(|u| u.replication_backlog);
    let (bytes, chunks) = monitoring.recording_ingest();
    let (sent, failed, queued) = monitoring.push.get();
    let (size, idle) = state.db.pool_connections();
    let process = crate::monitoring::process::read();
    let mut bandwidth_kbps = 0.0;
    let consultations = telemetry
        .seated(SNAPSHOT_CONSULTATIONS)
        .into_iter()
        .map(|(consultation_id, seats)| LiveConsultation {
            consultation_id,
            participants: seats
                .into_iter()
                .map(|(participant_id, seat)| {
                    if let Some(q) = &seat.quality {
                        bandwidth_kbps += q.outbound_kbps + q.inbound_kbps;
                    }
                    LiveParticipant {
                        participant_id,
                        user_id: seat.user_id,
                        role: seat.role,
                        since: seat.since,
                        quality: seat.quality,
                    }
                })
                .collect(),
        })
        .collect();
    Ok(JsonResponse(PerformanceSnapshot {
        at: state.now(),
        signals_relayed: signaling.signals(),
        signaling,
        join_latency_ms: Percentiles::of(telemetry.recent_join_latencies_ms()),
        turn,
        recording_ingested_bytes: bytes,
        recording_chunks: chunks,
        replication_backlog,
        push: PushSnapshot {
            sent,
            failed,
            queued,
        },
        db_pool: [u64::from(size), idle as u64],
        process_cpu_seconds: process.map(|p| p.cpu_seconds),
        process_resident_bytes: process.map(|p| p.resident_bytes),
        bandwidth_kbps,
        consultations,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let p = Percentiles::of((1..=200).map(f64::from).rev().collect());
        assert_eq!(
            (p.p50, p.p95, p.p99, p.count),
            (Some(100.0), Some(190.0), Some(198.0), 200)
        );
        assert_eq!(Percentiles::of(vec![]).p50, None);
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
