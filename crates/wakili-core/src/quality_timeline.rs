//! A consultation's connection quality over time: each participant's timeline of sampled
//! `quality:report`s and a summary (min / mean / p95, time at each quality level, reconnects, ICE
//! restarts, candidate types, estimated bytes). Sans-IO: samples and events in, analysis out.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::{
    model::QualitySample,
    quality::{Level, QualityReport},
};

/// Something that happened to a participant's connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StabilityEvent {
    /// The participant came back after its connection dropped (a resume).
    Reconnect,
    /// The participant asked its peer for an ICE restart.
    IceRestart,
}

/// One point of a participant's timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TimelinePoint {
    /// When the sample was taken.
    pub at: DateTime<Utc>,
    /// Round-trip time, ms.
    pub rtt_ms: f64,
    /// Jitter, ms.
    pub jitter_ms: f64,
    /// Packet loss, percent.
    pub packet_loss_pct: f64,
    /// Send bitrate, kbit/s.
    pub outbound_kbps: f64,
    /// Receive bitrate, kbit/s.
    pub inbound_kbps: f64,
    /// MOS-like score, 1 – 4.5.
    pub score: f64,
    /// `low`, `medium` or `high`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub level: Level,
    /// Selected candidate type.
    pub candidate_type: String,
}

impl TimelinePoint {
    /// The point for `report`, scored `score` at `level`, taken `at`.
    pub fn of(report: &QualityReport, score: f64, level: Level, at: DateTime<Utc>) -> Self {
        Self {
            at,
            rtt_ms: report.rtt_ms,
            jitter_ms: report.jitter_ms,
            packet_loss_pct: report.packet_loss_pct,
            outbound_kbps: report.outbound_kbps,
            inbound_kbps: report.inbound_kbps,
            score,
            level,
            candidate_type: report.candidate_type.clone(),
        }
    }
}

/// Minimum, mean, 95th percentile and maximum of one measure.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Stat {
    /// Smallest value.
    pub min: f64,
    /// Arithmetic mean.
    pub mean: f64,
    /// 95th percentile (nearest rank).
    pub p95: f64,
    /// Largest value.
    pub max: f64,
}

impl Stat {
    /// The statistics of `values`; `None` when empty.
    pub fn of(values: &[f64]) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let rank = ((0.95 * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        Some(Self {
            min: sorted[0],
            mean: sorted.iter().sum::<f64>() / sorted.len() as f64,
            p95: sorted[rank - 1],
            max: sorted[sorted.len() - 1],
        })
    }
}

/// Seconds spent at each quality level.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LevelTimes {
    /// At `high`.
    pub high_s: f64,
    /// At `medium`.
    pub medium_s: f64,
    /// At `low`.
    pub low_s: f64,
}

/// A participant's summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Samples stored.
    pub samples: usize,
    /// Round-trip time, ms.
    pub rtt_ms: Option<Stat>,
    /// Jitter, ms.
    pub jitter_ms: Option<Stat>,
    /// Packet loss, percent.
    pub packet_loss_pct: Option<Stat>,
    /// Send bitrate, kbit/s.
    pub outbound_kbps: Option<Stat>,
    /// Receive bitrate, kbit/s.
    pub inbound_kbps: Option<Stat>,
    /// Score.
    pub score: Option<Stat>,
    /// Time at each level (each sample's level holds until the next sample, at most `hold`).
    pub time_at_level: LevelTimes,
    /// Resumes after a dropped connection.
    pub reconnects: u32,
    /// ICE restarts requested.
    pub ice_restarts: u32,
    /// Samples per selected candidate type.
    pub candidate_types: BTreeMap<String, u32>,
    /// Estimated bytes sent (bitrate × time held).
    pub bytes_sent: u64,
    /// Estimated bytes received.
    pub bytes_received: u64,
}

/// One participant's timeline and summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ParticipantQuality {
    /// The participant.
    pub participant_id: String,
    /// Their user (empty when only stability events are known).
    pub user_id: String,
    /// Samples, oldest first.
    pub timeline: Vec<TimelinePoint>,
    /// Summary.
    pub summary: Summary,
}

/// The consultation's bandwidth, all participants together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Bandwidth {
    /// Estimated bytes sent by all participants.
    pub bytes_sent: u64,
    /// Estimated bytes received by all participants.
    pub bytes_received: u64,
    /// Mean of the participants' mean send bitrates added up, kbit/s.
    pub outbound_kbps: f64,
    /// The same for receiving, kbit/s.
    pub inbound_kbps: f64,
}

/// The analysis of one consultation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct QualityAnalysis {
    /// Per participant, in order of first appearance.
    pub participants: Vec<ParticipantQuality>,
    /// All participants together.
    pub bandwidth: Bandwidth,
}

/// Analyzes `samples` (any order) and stability `events` (participant id, what).
///
/// A sample's level and bitrates hold until the participant's next sample, for at most `hold`
/// (the reporting interval, generously): a gap longer than that counts only `hold`. The last
/// sample holds until `now` or for `hold`, whichever is shorter.
pub fn analyze(
    samples: &[QualitySample],
    events: &[(String, StabilityEvent)],
    hold: Duration,
    now: DateTime<Utc>,
) -> QualityAnalysis {
    let mut order: Vec<String> = Vec::new();
    let mut by_participant: BTreeMap<String, Vec<&QualitySample>> = BTreeMap::new();
    for sample in samples {
        let list = by_participant
            .entry(sample.participant_id.clone())
            .or_default();
        if list.is_empty() {
            order.push(sample.participant_id.clone());
        }
        list.push(sample);
    }
    for (participant, _) in events {
        if !by_participant.contains_key(participant) && !order.contains(participant) {
            order.push(participant.clone());
        }
    }
    let mut bandwidth = Bandwidth::default();
    let participants = order
        .into_iter()
        .map(|participant| {
            let mut list = by_participant.remove(&participant).unwrap_or_default();
            list.sort_by_key(|s| s.taken_at);
            let quality = participant_quality(&participant, &list, events, hold, now);
            bandwidth.bytes_sent += quality.summary.bytes_sent;
            bandwidth.bytes_received += quality.summary.bytes_received;
            bandwidth.outbound_kbps += quality.summary.outbound_kbps.map_or(0.0, |s| s.mean);
            bandwidth.inbound_kbps += quality.summary.inbound_kbps.map_or(0.0, |s| s.mean);
            quality
        })
        .collect();
    QualityAnalysis {
        participants,
        bandwidth,
    }
}

fn participant_quality(
    participant: &str,
    list: &[&QualitySample],
    events: &[(String, StabilityEvent)],
    hold: Duration,
    now: DateTime<Utc>,
) -> ParticipantQuality {
    let values = |f: fn(&QualitySample) -> f64| list.iter().map(|s| f(s)).collect::<Vec<_>>();
    let mut times = LevelTimes::default();
    let (mut bits_sent, mut bits_received) = (0.0, 0.0);
    let mut candidate_types = BTreeMap::new();
    for (i, sample) in list.iter().enumerate() {
        let until = list.get(i + 1).map_or(now, |next| next.taken_at);
        let held = (until - sample.taken_at).clamp(Duration::zero(), hold);
        let seconds = held.num_milliseconds() as f64 / 1000.0;
        match sample.level {
            Level::High => times.high_s += seconds,
            Level::Medium => times.medium_s += seconds,
            Level::Low => times.low_s += seconds,
        }
        bits_sent += sample.report.outbound_kbps * 1000.0 * seconds;
        bits_received += sample.report.inbound_kbps * 1000.0 * seconds;
        if !sample.report.candidate_type.is_empty() {
            *candidate_types
                .entry(sample.report.candidate_type.clone())
                .or_insert(0u32) += 1;
        }
    }
    let count = |kind: StabilityEvent| {
        events
            .iter()
            .filter(|(p, k)| p == participant && *k == kind)
            .count() as u32
    };
    ParticipantQuality {
        participant_id: participant.to_owned(),
        user_id: list.first().map(|s| s.user_id.clone()).unwrap_or_default(),
        timeline: list
            .iter()
            .map(|s| TimelinePoint::of(&s.report, s.mos, s.level, s.taken_at))
            .collect(),
        summary: Summary {
            samples: list.len(),
            rtt_ms: Stat::of(&values(|s| s.report.rtt_ms)),
            jitter_ms: Stat::of(&values(|s| s.report.jitter_ms)),
            packet_loss_pct: Stat::of(&values(|s| s.report.packet_loss_pct)),
            outbound_kbps: Stat::of(&values(|s| s.report.outbound_kbps)),
            inbound_kbps: Stat::of(&values(|s| s.report.inbound_kbps)),
            score: Stat::of(&values(|s| s.mos)),
            time_at_level: times,
            reconnects: count(StabilityEvent::Reconnect),
            ice_restarts: count(StabilityEvent::IceRestart),
            candidate_types,
            bytes_sent: (bits_sent / 8.0).round() as u64,
            bytes_received: (bits_received / 8.0).round() as u64,
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    fn sample(
        p: &str,
        s: i64,
        rtt: f64,
        kbps: f64,
        level: Level,
        candidate: &str,
    ) -> QualitySample {
        QualitySample {
            consultation_id: "c".into(),
            participant_id: p.into(),
            user_id: format!("user-{p}"),
            taken_at: at(s),
            report: QualityReport {
                rtt_ms: rtt,
                jitter_ms: rtt / 10.0,
                packet_loss_pct: 0.0,
                outbound_kbps: kbps,
                inbound_kbps: kbps / 2.0,
                frame_rate: 30.0,
                width: 1280,
                height: 720,
                candidate_type: candidate.into(),
            },
            mos: 4.0,
            level,
        }
    }

    #[test]
    fn stats_use_nearest_rank_percentiles() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        let stat = Stat::of(&values).unwrap();
        assert_eq!((stat.min, stat.p95, stat.max), (1.0, 95.0, 100.0));
        assert!((stat.mean - 50.5).abs() < 1e-9);
        let one = Stat::of(&[7.0]).unwrap();
        assert_eq!((one.min, one.mean, one.p95, one.max), (7.0, 7.0, 7.0, 7.0));
        assert_eq!(Stat::of(&[]), None);
    }

    #[test]
    fn levels_hold_until_the_next_sample_but_never_longer_than_hold() {
        // a: high for 5 s, then low for 30 s of silence (counted as 10 s), then medium until
        // now (4 s later).
        let samples = vec![
            sample("a", 0, 20.0, 1000.0, Level::High, "host"),
            sample("a", 5, 400.0, 100.0, Level::Low, "relay"),
            sample("a", 35, 50.0, 800.0, Level::Medium, "relay"),
        ];
        let analysis = analyze(&samples, &[], Duration::seconds(10), at(39));
        let summary = &analysis.participants[0].summary;
        assert_eq!(summary.time_at_level.high_s, 5.0);
        assert_eq!(summary.time_at_level.low_s, 10.0);
        assert_eq!(summary.time_at_level.medium_s, 4.0);
        // 1000 kbit/s × 5 s + 100 × 10 + 800 × 4 = 9,200 kbit = 1,150,000 bytes.
        assert_eq!(summary.bytes_sent, 1_150_000);
        assert_eq!(summary.bytes_received, 575_000);
        assert_eq!(summary.candidate_types.get("relay"), Some(&2));
        assert_eq!(summary.candidate_types.get("host"), Some(&1));
        assert_eq!(summary.rtt_ms.unwrap().max, 400.0);
        assert_eq!(summary.rtt_ms.unwrap().min, 20.0);
    }

    #[test]
    fn participants_are_separated_sorted_and_events_counted() {
        let samples = vec![
            sample("b", 10, 30.0, 500.0, Level::Medium, "srflx"),
            sample("a", 4, 10.0, 2000.0, Level::High, "host"),
            sample("a", 0, 10.0, 2000.0, Level::High, "host"),
        ];
        let events = vec![
            ("a".to_owned(), StabilityEvent::Reconnect),
            ("a".to_owned(), StabilityEvent::IceRestart),
            ("a".to_owned(), StabilityEvent::IceRestart),
            ("c".to_owned(), StabilityEvent::Reconnect),
        ];
        let analysis = analyze(&samples, &events, Duration::seconds(10), at(12));
        let ids: Vec<_> = analysis
            .participants
            .iter()
            .map(|p| p.participant_id.as_str())
            .collect();
        assert_eq!(ids, ["b", "a", "c"]);
        let a = &analysis.participants[1];
        assert_eq!(a.timeline[0].at, at(0), "oldest first");
        assert_eq!(a.summary.reconnects, 1);
        assert_eq!(a.summary.ice_restarts, 2);
        assert_eq!(a.user_id, "user-a");
        let c = &analysis.participants[2];
        assert_eq!((c.summary.samples, c.summary.reconnects), (0, 1));
        assert_eq!(c.summary.rtt_ms, None);
        // a: 2000 × (4 + 8) s; b: 500 × 2 s.
        assert_eq!(
            analysis.bandwidth.bytes_sent,
            (2000 * 12 + 500 * 2) * 1000 / 8
        );
        assert_eq!(analysis.bandwidth.outbound_kbps, 2500.0);
    }

    #[test]
    fn nothing_in_nothing_out() {
        let analysis = analyze(&[], &[], Duration::seconds(10), at(0));
        assert!(analysis.participants.is_empty());
        assert_eq!(analysis.bandwidth, Bandwidth::default());
    }
}
