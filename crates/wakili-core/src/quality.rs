//! Connection quality: a MOS-like score from a participant's `quality:report`, and profile
//! recommendations that follow the network without flapping. Sans-IO.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// What a client measures (from `RTCPeerConnection.getStats`).
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct QualityReport {
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
    /// Frames per second sent.
    pub frame_rate: f64,
    /// Sent width.
    #[cfg_attr(feature = "sqlx", sqlx(try_from = "i64"))]
    pub width: u32,
    /// Sent height.
    #[cfg_attr(feature = "sqlx", sqlx(try_from = "i64"))]
    pub height: u32,
    /// Selected candidate type: `host`, `srflx`, `prflx` or `relay`.
    pub candidate_type: String,
}

impl QualityReport {
    /// Problems with the report, naming the field; reports with problems are not scored.
    pub fn problems(&self) -> Vec<&'static str> {
        let mut bad = Vec::new();
        let in_range = |v: f64, max: f64| v.is_finite() && (0.0..=max).contains(&v);
        if !in_range(self.rtt_ms, 60_000.0) {
            bad.push("rttMs");
        }
        if !in_range(self.jitter_ms, 60_000.0) {
            bad.push("jitterMs");
        }
        if !in_range(self.packet_loss_pct, 100.0) {
            bad.push("packetLossPct");
        }
        if !in_range(self.outbound_kbps, 1_000_000.0) {
            bad.push("outboundKbps");
        }
        if !in_range(self.inbound_kbps, 1_000_000.0) {
            bad.push("inboundKbps");
        }
        if !in_range(self.frame_rate, 240.0) {
            bad.push("frameRate");
        }
        if self.width > 16_384 || self.height > 16_384 {
            bad.push("width/height");
        }
        if !["host", "srflx", "prflx", "relay", ""].contains(&self.candidate_type.as_str()) {
            bad.push("candidateType");
        }
        bad
    }
}

/// A MOS-like score, 1 (bad) to 4.5 (excellent), from the ITU-T G.107 E-model simplified the
/// way WebRTC monitoring tools do: delay (one way, plus jitter buffer) and loss impair R.
pub fn mos(report: &QualityReport) -> f64 {
    let latency = report.rtt_ms / 2.0 + report.jitter_ms * 2.0 + 10.0;
    let delay_impairment = if latency < 160.0 {
        latency / 40.0
    } else {
        (latency - 120.0) / 10.0
    };
    let r = (93.2 - delay_impairment - report.packet_loss_pct * 2.5).clamp(0.0, 100.0);
    (1.0 + 0.035 * r + 7.0e-6 * r * (r - 60.0) * (100.0 - r)).clamp(1.0, 4.5)
}

/// A quality level, ordered low < medium < high (named like the default profiles).
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Keep the call alive: small video.
    Low,
    /// Standard.
    Medium,
    /// Full quality.
    High,
}

named!(Level, field "level", "level" {
    Low => "low",
    Medium => "medium",
    High => "high",
});

/// The level one report alone calls for, and why.
pub fn assess(report: &QualityReport) -> (Level, &'static str) {
    let score = mos(report);
    if report.packet_loss_pct > 10.0 {
        (Level::Low, "high packet loss")
    } else if score < 2.5 {
        (Level::Low, "poor connection quality")
    } else if report.outbound_kbps < 400.0 {
        (Level::Low, "low bandwidth")
    } else if report.packet_loss_pct > 3.0 {
        (Level::Medium, "packet loss")
    } else if score < 3.6 {
        (Level::Medium, "unstable connection")
    } else if report.outbound_kbps < 1300.0 {
        (Level::Medium, "limited bandwidth")
    } else {
        (Level::High, "good connection")
    }
}

/// Hysteresis settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hysteresis {
    /// Consecutive reports calling for a lower level before stepping down.
    pub down_after: u32,
    /// Consecutive reports calling for a higher level before stepping up.
    pub up_after: u32,
    /// Least time between two recommendations.
    pub min_interval: Duration,
}

impl Default for Hysteresis {
    fn default() -> Self {
        Self {
            down_after: 2,
            up_after: 5,
            min_interval: Duration::seconds(10),
        }
    }
}

/// A recommendation to send as `quality:recommendation`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Recommendation {
    /// Profile to switch to.
    pub profile: &'static str,
    /// Why.
    pub reason: &'static str,
}

/// One participant's recommendation state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tracker {
    current: Option<Level>,
    candidate: Option<Level>,
    streak: u32,
    last_change: Option<DateTime<Utc>>,
    /// Latest score, for timelines.
    pub last_mos: Option<f64>,
}

impl Tracker {
    /// Takes a report; returns a recommendation when the level should change.
    pub fn observe(
        &mut self,
        report: &QualityReport,
        rules: Hysteresis,
        now: DateTime<Utc>,
    ) -> Option<Recommendation> {
        self.last_mos = Some(mos(report));
        let (level, reason) = assess(report);
        let Some(current) = self.current else {
            // The first report sets the baseline without telling anyone to change.
            self.current = Some(level);
            self.last_change = Some(now);
            return None;
        };
        if level == current {
            self.candidate = None;
            self.streak = 0;
            return None;
        }
        if self.candidate == Some(level) {
            self.streak += 1;
        } else {
            self.candidate = Some(level);
            self.streak = 1;
        }
        let needed = if level < current {
            rules.down_after
        } else {
            rules.up_after
        };
        let rested = self
            .last_change
            .is_none_or(|at| now - at >= rules.min_interval);
        if self.streak < needed || !rested {
            return None;
        }
        self.current = Some(level);
        self.candidate = None;
        self.streak = 0;
        self.last_change = Some(now);
        Some(Recommendation {
            profile: level.as_str(),
            reason,
        })
    }
}

/// When poor quality is worth telling the platform (`quality.degraded`): a score below
/// `score_below` in every report for at least `sustained`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DegradationRule {
    /// The score (MOS) under which a report is poor.
    pub score_below: f64,
    /// How long reports must stay poor.
    pub sustained: Duration,
}

impl Default for DegradationRule {
    fn default() -> Self {
        Self {
            score_below: 2.5,
            sustained: Duration::seconds(30),
        }
    }
}

/// A participant's quality stayed poor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Degraded {
    /// The last score.
    pub score: f64,
    /// How long it has been poor.
    pub poor_for: Duration,
}

/// One participant's poor-quality episode: reported once when it has lasted long enough, and
/// again only after the quality recovered and fell again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Degradation {
    poor_since: Option<DateTime<Utc>>,
    reported: bool,
}

impl Degradation {
    /// Takes a report's score; returns the degradation to report, once per episode.
    pub fn observe(
        &mut self,
        score: f64,
        rule: DegradationRule,
        now: DateTime<Utc>,
    ) -> Option<Degraded> {
        if score >= rule.score_below {
            *self = Self::default();
            return None;
        }
        let since = *self.poor_since.get_or_insert(now);
        let poor_for = now - since;
        if self.reported || poor_for < rule.sustained {
            return None;
        }
        self.reported = true;
        Some(Degraded { score, poor_for })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(rtt: f64, jitter: f64, loss: f64, kbps: f64) -> QualityReport {
        QualityReport {
            rtt_ms: rtt,
            jitter_ms: jitter,
            packet_loss_pct: loss,
            outbound_kbps: kbps,
            inbound_kbps: kbps,
            frame_rate: 30.0,
            width: 1280,
            height: 720,
            candidate_type: "srflx".into(),
        }
    }

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    #[test]
    fn sustained_poor_quality_is_reported_once_per_episode() {
        let rule = DegradationRule::default();
        let mut d = Degradation::default();
        assert_eq!(d.observe(2.0, rule, t(0)), None);
        assert_eq!(d.observe(2.1, rule, t(20)), None, "not yet 30 s");
        let degraded = d.observe(1.9, rule, t(30)).expect("30 s of poor quality");
        assert_eq!(degraded.poor_for, Duration::seconds(30));
        assert_eq!(degraded.score, 1.9);
        assert_eq!(d.observe(1.8, rule, t(60)), None, "once per episode");
        // A good report ends the episode; a short dip is not news.
        assert_eq!(d.observe(4.0, rule, t(65)), None);
        assert_eq!(d.observe(2.0, rule, t(70)), None);
        assert_eq!(d.observe(4.1, rule, t(80)), None);
        assert_eq!(d.observe(2.0, rule, t(90)), None);
        assert!(d.observe(2.0, rule, t(125)).is_some(), "a new episode");
    }

    #[test]
    fn scores_follow_the_network() {
        let great = mos(&report(20.0, 2.0, 0.0, 2500.0));
        let laggy = mos(&report(600.0, 60.0, 0.0, 2500.0));
        let lossy = mos(&report(20.0, 2.0, 15.0, 2500.0));
        assert!(great > 4.3, "{great}");
        assert!(laggy < great && lossy < great);
        assert!(lossy < 3.0, "{lossy}");
        assert_eq!(mos(&report(60_000.0, 60_000.0, 100.0, 0.0)), 1.0, "clamped");
    }

    #[test]
    fn single_reports_map_to_levels() {
        assert_eq!(assess(&report(20.0, 2.0, 0.0, 2500.0)).0, Level::High);
        assert_eq!(
            assess(&report(20.0, 2.0, 5.0, 2500.0)),
            (Level::Medium, "packet loss")
        );
        assert_eq!(
            assess(&report(20.0, 2.0, 0.0, 800.0)),
            (Level::Medium, "limited bandwidth")
        );
        assert_eq!(
            assess(&report(20.0, 2.0, 12.0, 2500.0)),
            (Level::Low, "high packet loss")
        );
        assert_eq!(
            assess(&report(20.0, 2.0, 0.0, 200.0)),
            (Level::Low, "low bandwidth")
        );
    }

    #[test]
    fn recommendations_do_not_flap() {
        let rules = Hysteresis::default();
        let mut tracker = Tracker::default();
        let good = report(20.0, 2.0, 0.0, 2500.0);
        let bad = report(20.0, 2.0, 12.0, 2500.0);
        assert_eq!(tracker.observe(&good, rules, t(0)), None, "baseline");
        // Alternating good and bad never changes anything.
        for i in 1..=20 {
            let r = if i % 2 == 0 { &good } else { &bad };
            assert_eq!(tracker.observe(r, rules, t(i * 2)), None, "report {i}");
        }
        // Two bad in a row step down at once (the interval has passed).
        assert_eq!(tracker.observe(&bad, rules, t(50)), None);
        assert_eq!(
            tracker.observe(&bad, rules, t(52)),
            Some(Recommendation {
                profile: "low",
                reason: "high packet loss"
            })
        );
        // Recovery needs five good reports and ten seconds since the last change.
        for i in 0..4 {
            assert_eq!(tracker.observe(&good, rules, t(54 + i * 2)), None);
        }
        assert_eq!(
            tracker.observe(&good, rules, t(62)),
            Some(Recommendation {
                profile: "high",
                reason: "good connection"
            })
        );
    }

    #[test]
    fn the_minimum_interval_holds_back_changes() {
        let rules = Hysteresis::default();
        let mut tracker = Tracker::default();
        let good = report(20.0, 2.0, 0.0, 2500.0);
        let bad = report(20.0, 2.0, 12.0, 2500.0);
        tracker.observe(&good, rules, t(0));
        assert_eq!(tracker.observe(&bad, rules, t(1)), None);
        assert_eq!(
            tracker.observe(&bad, rules, t(2)),
            None,
            "only 2 s since the baseline"
        );
        assert!(tracker.observe(&bad, rules, t(10)).is_some());
    }

    #[test]
    fn nonsense_reports_are_named() {
        let mut r = report(20.0, 2.0, 0.0, 2500.0);
        assert!(r.problems().is_empty());
        r.packet_loss_pct = 140.0;
        r.rtt_ms = f64::NAN;
        r.candidate_type = "carrier-pigeon".into();
        assert_eq!(r.problems(), ["rttMs", "packetLossPct", "candidateType"]);
    }
}
