//! What this node's signaling counts, for `/metrics` and the dashboard: connections, joins and
//! their latency, signals relayed by type, quality reports, and the participants seated on this
//! node with their latest quality.
//!
//! Counters are plain atomics read at scrape time; the join-latency histogram is a `metrics`
//! handle the server registers with its own recorder (a no-op one when nothing is wired).

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use chrono::{DateTime, Utc};
use serde::Serialize;
use wakili_core::{
    quality::{Level, QualityReport},
    quality_timeline::TimelinePoint,
};

use crate::protocol::SignalType;

/// Join latencies kept for the dashboard's percentiles.
const RECENT_JOINS: usize = 1024;

/// Counters and live state of one node's signaling.
#[derive(Debug)]
pub struct Telemetry {
    join_latency: metrics::Histogram,
    connections_open: AtomicU64,
    connections_total: AtomicU64,
    connections_refused: AtomicU64,
    joins: AtomicU64,
    join_refusals: AtomicU64,
    signals: [AtomicU64; 4],
    quality_reports: AtomicU64,
    /// Redis commands the room store sent (shared with it).
    room_commands: Arc<AtomicU64>,
    recent_joins: Mutex<VecDeque<f64>>,
    seated: Mutex<BTreeMap<String, BTreeMap<String, Seated>>>,
}

/// A participant seated on this node.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Seated {
    /// Their user.
    pub user_id: String,
    /// `lawyer`, `client` or `admin`.
    pub role: String,
    /// When they joined (or resumed) here.
    pub since: DateTime<Utc>,
    /// Their latest report, if any.
    pub quality: Option<TimelinePoint>,
    /// The connection serving them (a resume moves them to another).
    #[serde(skip)]
    pub connection: String,
}

/// The counters at one moment.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Counters {
    /// Socket.IO connections open now.
    pub connections_open: u64,
    /// Connections accepted since start.
    pub connections_total: u64,
    /// Handshakes refused (bad or missing token).
    pub connections_refused: u64,
    /// Joins acknowledged.
    pub joins: u64,
    /// Joins refused.
    pub join_refusals: u64,
    /// Signals relayed: offer, answer, candidate, restart.
    pub signals_offer: u64,
    /// See `signals_offer`.
    pub signals_answer: u64,
    /// See `signals_offer`.
    pub signals_candidate: u64,
    /// See `signals_offer`.
    pub signals_restart: u64,
    /// Quality reports received.
    pub quality_reports: u64,
    /// Consultations with someone seated on this node.
    pub active_consultations: u64,
    /// Participants seated on this node.
    pub active_participants: u64,
}

impl Counters {
    /// All signals relayed.
    pub fn signals(&self) -> u64 {
        self.signals_offer + self.signals_answer + self.signals_candidate + self.signals_restart
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new(metrics::Histogram::noop())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Telemetry {
    /// Counters at zero; join latencies (seconds) also go to `join_latency`.
    pub fn new(join_latency: metrics::Histogram) -> Self {
        Self {
            join_latency,
            connections_open: AtomicU64::new(0),
            connections_total: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
            joins: AtomicU64::new(0),
            join_refusals: AtomicU64::new(0),
            signals: Default::default(),
            quality_reports: AtomicU64::new(0),
            room_commands: Arc::new(AtomicU64::new(0)),
            recent_joins: Mutex::new(VecDeque::with_capacity(RECENT_JOINS)),
            seated: Mutex::new(BTreeMap::new()),
        }
    }

    pub(crate) fn connected(&self) {
        self.connections_open.fetch_add(1, Ordering::Relaxed);
        self.connections_total.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn disconnected(&self) {
        let _ = self
            .connections_open
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    pub(crate) fn refused(&self) {
        self.connections_refused.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn join_refused(&self) {
        self.join_refusals.fetch_add(1, Ordering::Relaxed);
    }

    /// A join was acknowledged `latency` after its event arrived.
    pub(crate) fn joined(
        &self,
        latency: Duration,
        consultation: &str,
        participant: &str,
        seat: Seated,
    ) {
        self.joins.fetch_add(1, Ordering::Relaxed);
        self.join_latency.record(latency.as_secs_f64());
        {
            let mut recent = lock(&self.recent_joins);
            if recent.len() == RECENT_JOINS {
                recent.pop_front();
            }
            recent.push_back(latency.as_secs_f64() * 1000.0);
        }
        lock(&self.seated)
            .entry(consultation.to_owned())
            .or_default()
            .insert(participant.to_owned(), seat);
    }

    /// The participant is no longer seated here through `connection` (a late drop of a
    /// connection a resume replaced leaves the new seat alone).
    pub(crate) fn left(&self, consultation: &str, participant: &str, connection: &str) {
        let mut seated = lock(&self.seated);
        if let Some(room) = seated.get_mut(consultation) {
            if room
                .get(participant)
                .is_some_and(|seat| seat.connection == connection)
            {
                room.remove(participant);
            }
            if room.is_empty() {
                seated.remove(consultation);
            }
        }
    }

    pub(crate) fn relayed(&self, kind: SignalType) {
        let i = match kind {
            SignalType::Offer => 0,
            SignalType::Answer => 1,
            SignalType::Candidate => 2,
            SignalType::Restart => 3,
        };
        self.signals[i].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn quality(
        &self,
        consultation: &str,
        participant: &str,
        report: &QualityReport,
        (score, level, at): (f64, Level, DateTime<Utc>),
    ) {
        self.quality_reports.fetch_add(1, Ordering::Relaxed);
        let mut seated = lock(&self.seated);
        if let Some(seat) = seated
            .get_mut(consultation)
            .and_then(|room| room.get_mut(participant))
        {
            seat.quality = Some(TimelinePoint::of(report, score, level, at));
        }
    }

    /// The counters now.
    pub fn counters(&self) -> Counters {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (active_consultations, active_participants) = {
            let seated = lock(&self.seated);
            (
                seated.len() as u64,
                seated.values().map(|room| room.len() as u64).sum(),
            )
        };
        Counters {
            connections_open: load(&self.connections_open),
            connections_total: load(&self.connections_total),
            connections_refused: load(&self.connections_refused),
            joins: load(&self.joins),
            join_refusals: load(&self.join_refusals),
            signals_offer: load(&self.signals[0]),
            signals_answer: load(&self.signals[1]),
            signals_candidate: load(&self.signals[2]),
            signals_restart: load(&self.signals[3]),
            quality_reports: load(&self.quality_reports),
            active_consultations,
            active_participants,
        }
    }

    /// Redis commands this node sent for rooms: reads, change scripts and signals relayed to
    /// another node's channel (0 on one node).
    pub fn room_redis_commands(&self) -> u64 {
        self.room_commands.load(Ordering::Relaxed)
    }

    /// The counter the room store adds its Redis commands to.
    pub(crate) fn room_commands(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.room_commands)
    }

    /// The latest join latencies (up to 1,024), milliseconds, oldest first.
    pub fn recent_join_latencies_ms(&self) -> Vec<f64> {
        lock(&self.recent_joins).iter().copied().collect()
    }

    /// Consultations with participants seated on this node (at most `limit`, by id), each with
    /// its participants by id.
    pub fn seated(&self, limit: usize) -> Vec<(String, BTreeMap<String, Seated>)> {
        lock(&self.seated)
            .iter()
            .take(limit)
            .map(|(id, room)| (id.clone(), room.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn seat() -> Seated {
        Seated {
            user_id: "u".into(),
            role: "lawyer".into(),
            since: DateTime::from_timestamp(0, 0).unwrap(),
            quality: None,
            connection: "s1".into(),
        }
    }

    #[test]
    fn seats_come_and_go_with_their_consultation() {
        let t = Telemetry::default();
        t.connected();
        t.connected();
        t.joined(Duration::from_millis(3), "c1", "p1", seat());
        t.joined(Duration::from_millis(5), "c1", "p2", seat());
        t.relayed(SignalType::Offer);
        t.relayed(SignalType::Candidate);
        t.relayed(SignalType::Candidate);
        let c = t.counters();
        assert_eq!((c.active_consultations, c.active_participants), (1, 2));
        assert_eq!((c.signals(), c.signals_candidate, c.joins), (3, 2, 2));
        assert_eq!(t.recent_join_latencies_ms(), vec![3.0, 5.0]);
        t.left("c1", "p1", "s1");
        t.left("c1", "p2", "another connection");
        assert_eq!(t.counters().active_participants, 1);
        t.left("c1", "p2", "s1");
        t.left("c1", "p2", "s1");
        t.disconnected();
        t.disconnected();
        t.disconnected();
        let c = t.counters();
        assert_eq!((c.active_consultations, c.active_participants), (0, 0));
        assert_eq!((c.connections_open, c.connections_total), (0, 2));
    }

    #[test]
    fn quality_lands_on_the_seated_participant() {
        let t = Telemetry::default();
        t.joined(Duration::ZERO, "c1", "p1", seat());
        let report: QualityReport = serde_json::from_value(serde_json::json!({
            "rttMs": 40.0, "jitterMs": 2.0, "packetLossPct": 0.0, "outboundKbps": 1500.0,
            "inboundKbps": 1400.0, "frameRate": 30.0, "width": 1280, "height": 720,
            "candidateType": "relay"
        }))
        .unwrap();
        let now = DateTime::from_timestamp(10, 0).unwrap();
        t.quality("c1", "p1", &report, (4.2, Level::High, now));
        t.quality("c1", "nobody", &report, (4.2, Level::High, now));
        let seated = t.seated(10);
        let q = seated[0].1["p1"].quality.clone().unwrap();
        assert_eq!(
            (q.level.as_str(), q.candidate_type.as_str()),
            ("high", "relay")
        );
        assert_eq!(t.counters().quality_reports, 2);
    }
}
