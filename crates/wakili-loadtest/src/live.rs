//! Counters shared by every simulated participant while a test runs, the progress they add up
//! to, and the final report.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    sync::{
        Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use wakili_client::histogram::Histogram;

use crate::Params;

/// A running test's counters.
#[derive(Debug)]
pub struct Live {
    pub(crate) epoch: Instant,
    started_at: DateTime<Utc>,
    params: Params,
    phase: Mutex<&'static str>,
    pub(crate) joined: AtomicU64,
    pub(crate) active: AtomicU64,
    pub(crate) signals_sent: AtomicU64,
    pub(crate) signals_received: AtomicU64,
    pub(crate) quality_reports: AtomicU64,
    pub(crate) join_ns: Histogram,
    pub(crate) signal_ns: Histogram,
    errors: Mutex<BTreeMap<String, u64>>,
    pub(crate) first_join: AtomicU64,
    last_join: AtomicU64,
    messaging: Mutex<Option<(f64, f64)>>,
}

/// Where a running test is.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// `booking and joining`, `messaging`, `leaving`, `done`.
    pub phase: String,
    /// Seconds since the start.
    pub elapsed_s: f64,
    /// Participants planned.
    pub participants: u64,
    /// Joins acknowledged so far.
    pub joined: u64,
    /// Participants in a room now.
    pub active: u64,
    /// Signals sent.
    pub signals_sent: u64,
    /// Signals delivered.
    pub signals_received: u64,
    /// Quality reports acknowledged.
    pub quality_reports: u64,
    /// Join latency p95 so far, ms.
    pub join_p95_ms: Option<f64>,
    /// Signal latency p95 so far, ms.
    pub signal_p95_ms: Option<f64>,
    /// Failures so far.
    pub errors: u64,
}

impl Progress {
    /// The one-line summary printed while a test runs.
    pub fn line(&self) -> String {
        let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1} ms"));
        format!(
            "[{:>6.1}s] {:<20} joined {}/{}  active {}  signals {}/{}  quality {}  join p95 {}  signal p95 {}  errors {}",
            self.elapsed_s,
            self.phase,
            self.joined,
            self.participants,
            self.active,
            self.signals_received,
            self.signals_sent,
            self.quality_reports,
            ms(self.join_p95_ms),
            ms(self.signal_p95_ms),
            self.errors
        )
    }
}

/// Latency distribution, milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Spread {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
    /// Values.
    pub count: u64,
}

impl Spread {
    fn of(h: &Histogram) -> Option<Self> {
        let ms = |ns: u64| ns as f64 / 1e6;
        Some(Self {
            p50: ms(h.quantile(0.5)?),
            p95: ms(h.quantile(0.95)?),
            p99: ms(h.quantile(0.99)?),
            max: ms(h.max()),
            count: h.count(),
        })
    }
}

/// What a finished test measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// What was asked.
    pub params: Params,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Start to finish, seconds.
    pub wall_s: f64,
    /// Rooms (consultations).
    pub rooms: u32,
    /// Participants planned.
    pub participants: u64,
    /// Joins acknowledged.
    pub joined: u64,
    /// Joins per second, first to last acknowledgement.
    pub joins_per_s: f64,
    /// Connect → join acknowledgement.
    pub join_ms: Option<Spread>,
    /// Signal sent → delivered to the other member.
    pub signal_ms: Option<Spread>,
    /// Signals sent.
    pub signals_sent: u64,
    /// Signals delivered.
    pub signals_received: u64,
    /// Quality reports acknowledged.
    pub quality_reports: u64,
    /// Signals delivered plus quality reports acknowledged, per second of messaging.
    pub messages_per_s: f64,
    /// Failures by kind.
    pub errors: BTreeMap<String, u64>,
    /// All failures.
    pub error_count: u64,
}

impl Report {
    /// The table `wakili loadtest` prints at the end.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let p = &self.params;
        let _ = writeln!(
            out,
            "participants {} in {} rooms of {}, ramp-up {:?}, duration {:?}, message interval {:?}, join interval {:?}",
            self.participants,
            self.rooms,
            p.room_size,
            p.ramp_up,
            p.duration,
            p.message_interval,
            p.join_interval
        );
        let _ = writeln!(out, "{:<24} {:>12}", "joined", self.joined);
        let _ = writeln!(out, "{:<24} {:>12.1}", "joins/s", self.joins_per_s);
        let spread = |out: &mut String, name: &str, s: &Option<Spread>| {
            if let Some(s) = s {
                let _ = writeln!(
                    out,
                    "{name:<24} {:>9.2} ms {:>9.2} ms {:>9.2} ms   (p50 p95 p99; max {:.2} ms, n {})",
                    s.p50, s.p95, s.p99, s.max, s.count
                );
            } else {
                let _ = writeln!(out, "{name:<24} {:>12}", "-");
            }
        };
        spread(&mut out, "join latency", &self.join_ms);
        spread(&mut out, "signal latency", &self.signal_ms);
        let _ = writeln!(
            out,
            "{:<24} {:>12}",
            "signals sent/delivered",
            format!("{}/{}", self.signals_sent, self.signals_received)
        );
        let _ = writeln!(
            out,
            "{:<24} {:>12}",
            "quality reports", self.quality_reports
        );
        let _ = writeln!(out, "{:<24} {:>12.1}", "messages/s", self.messages_per_s);
        let _ = writeln!(out, "{:<24} {:>12}", "errors", self.error_count);
        for (kind, n) in &self.errors {
            let _ = writeln!(out, "  {kind:<22} {n:>12}");
        }
        let _ = writeln!(out, "{:<24} {:>12.1}", "wall time, s", self.wall_s);
        out
    }
}

impl Live {
    /// Counters at zero for a test of `params` starting now.
    pub fn new(params: Params, started_at: DateTime<Utc>) -> Self {
        Self {
            epoch: Instant::now(),
            started_at,
            params,
            phase: Mutex::new("starting"),
            joined: AtomicU64::new(0),
            active: AtomicU64::new(0),
            signals_sent: AtomicU64::new(0),
            signals_received: AtomicU64::new(0),
            quality_reports: AtomicU64::new(0),
            join_ns: Histogram::new(),
            signal_ns: Histogram::new(),
            errors: Mutex::new(BTreeMap::new()),
            first_join: AtomicU64::new(u64::MAX),
            last_join: AtomicU64::new(0),
            messaging: Mutex::new(None),
        }
    }

    /// The parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    pub(crate) fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    pub(crate) fn set_phase(&self, phase: &'static str) {
        *self.phase.lock().unwrap_or_else(PoisonError::into_inner) = phase;
    }

    pub(crate) fn error(&self, kind: impl Into<String>, n: u64) {
        if n > 0 {
            *self
                .errors
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(kind.into())
                .or_default() += n;
        }
    }

    pub(crate) fn join_done(&self, latency_ns: u64) {
        let now = self.now_ns();
        self.join_ns.record(latency_ns);
        self.joined.fetch_add(1, Ordering::Relaxed);
        self.active.fetch_add(1, Ordering::Relaxed);
        self.first_join.fetch_min(now, Ordering::Relaxed);
        self.last_join.fetch_max(now, Ordering::Relaxed);
    }

    pub(crate) fn messaging_window(&self, start_s: f64, end_s: f64) {
        *self
            .messaging
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((start_s, end_s));
    }

    fn error_total(&self) -> (BTreeMap<String, u64>, u64) {
        let errors = self
            .errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let total = errors.values().sum();
        (errors, total)
    }

    /// Where the test is now.
    pub fn progress(&self) -> Progress {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let ms = |h: &Histogram| h.quantile(0.95).map(|ns| ns as f64 / 1e6);
        Progress {
            phase: (*self.phase.lock().unwrap_or_else(PoisonError::into_inner)).to_owned(),
            elapsed_s: self.epoch.elapsed().as_secs_f64(),
            participants: u64::from(self.params.rooms() * self.params.room_size),
            joined: load(&self.joined),
            active: load(&self.active),
            signals_sent: load(&self.signals_sent),
            signals_received: load(&self.signals_received),
            quality_reports: load(&self.quality_reports),
            join_p95_ms: ms(&self.join_ns),
            signal_p95_ms: ms(&self.signal_ns),
            errors: self.error_total().1,
        }
    }

    /// The report (complete once the run returned).
    pub fn report(&self) -> Report {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let joined = load(&self.joined);
        let (first, last) = (load(&self.first_join), load(&self.last_join));
        let join_window = if joined > 1 && last > first {
            (last - first) as f64 / 1e9
        } else {
            0.0
        };
        let (errors, error_count) = self.error_total();
        let window = self
            .messaging
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map_or(0.0, |(a, b)| b - a);
        let messages = load(&self.signals_received) + load(&self.quality_reports);
        Report {
            params: self.params.clone(),
            started_at: self.started_at,
            wall_s: self.epoch.elapsed().as_secs_f64(),
            rooms: self.params.rooms(),
            participants: u64::from(self.params.rooms() * self.params.room_size),
            joined,
            joins_per_s: if join_window > 0.0 {
                (joined - 1) as f64 / join_window
            } else {
                0.0
            },
            join_ms: Spread::of(&self.join_ns),
            signal_ms: Spread::of(&self.signal_ns),
            signals_sent: load(&self.signals_sent),
            signals_received: load(&self.signals_received),
            quality_reports: load(&self.quality_reports),
            messages_per_s: if window > 0.0 {
                messages as f64 / window
            } else {
                0.0
            },
            errors,
            error_count,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_add_up_by_kind_and_show_in_the_table() {
        let live = Live::new(Params::default(), Utc::now());
        live.error("connect", 2);
        live.error("connect", 1);
        live.error("join:forbidden", 1);
        live.error("nothing", 0);
        live.join_done(2_000_000);
        live.join_done(4_000_000);
        let report = live.report();
        assert_eq!(report.error_count, 4);
        assert_eq!(report.errors.len(), 2);
        assert_eq!(report.joined, 2);
        let join = report.join_ms.unwrap();
        assert!((join.p50 - 2.0).abs() < 0.05, "{join:?}");
        let table = report.table();
        assert!(table.contains("connect"), "{table}");
        assert!(table.contains("join latency"), "{table}");
        assert!(live.progress().line().contains("errors 4"));
    }
}
