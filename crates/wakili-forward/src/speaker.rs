//! Active (dominant) speaker detection from RFC 6464 audio levels.
//!
//! Every audio packet carries the sender's level in −dBov: 0 is the loudest, 127 silence. Per
//! participant the levels are averaged over a short window ([`SpeakerConfig::window`]); no
//! packet in the window counts as silence (a muted microphone sends nothing). Someone becomes
//! the dominant speaker when they are the loudest, at speech level
//! ([`SpeakerConfig::speech_level`]), and louder than the current dominant speaker, without
//! interruption for [`SpeakerConfig::hold`] — so a cough or a "mm-hm" does not move the
//! spotlight. The dominant speaker stays so through silence until someone else takes over.
//! A change is reported once, when it happens.

use std::{
    collections::{BTreeMap, VecDeque},
    time::Duration,
};

use crate::{Millis, ParticipantId};

/// The level meaning silence.
pub const SILENCE: u8 = 127;

/// Speaker detection settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpeakerConfig {
    /// Levels are averaged over this window. Default 500 ms.
    pub window: Duration,
    /// An average level at or under this (i.e. at least this loud) counts as speech.
    /// Default 50 (−50 dBov): above room noise, under normal speech.
    pub speech_level: u8,
    /// How long someone must stay louder than the dominant speaker to take over. Default 1 s.
    pub hold: Duration,
}

impl Default for SpeakerConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_millis(500),
            speech_level: 50,
            hold: Duration::from_secs(1),
        }
    }
}

/// One participant's recent levels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Levels {
    samples: VecDeque<(Millis, u8)>,
    sum: u64,
}

impl Levels {
    fn push(&mut self, at: Millis, level: u8) {
        self.samples.push_back((at, level));
        self.sum += u64::from(level);
    }

    fn prune(&mut self, now: Millis, window: Duration) {
        while let Some(&(at, level)) = self.samples.front() {
            if now.since(at) < window {
                break;
            }
            self.samples.pop_front();
            self.sum -= u64::from(level);
        }
    }

    /// The mean level, or silence without samples.
    fn average(&self) -> u8 {
        let count = self.samples.len() as u64;
        match self.sum.checked_div(count) {
            Some(mean) => u8::try_from(mean).unwrap_or(SILENCE),
            None => SILENCE,
        }
    }
}

/// Dominant speaker detection for one room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpeakerDetector {
    config: SpeakerConfig,
    levels: BTreeMap<ParticipantId, Levels>,
    dominant: Option<ParticipantId>,
    /// Who is taking over, and since when.
    challenger: Option<(ParticipantId, Millis)>,
}

impl SpeakerDetector {
    /// Nobody heard yet.
    pub fn new(config: SpeakerConfig) -> Self {
        Self {
            config,
            levels: BTreeMap::new(),
            dominant: None,
            challenger: None,
        }
    }

    /// An audio level (0 loudest … 127 silence; larger values read as silence) from
    /// `participant` at `now`. Returns the new dominant speaker when this changes it.
    pub fn observe(
        &mut self,
        participant: ParticipantId,
        level: u8,
        now: Millis,
    ) -> Option<ParticipantId> {
        self.levels
            .entry(participant)
            .or_default()
            .push(now, level.min(SILENCE));
        self.evaluate(now)
    }

    /// Re-evaluates at `now` (also call it without packets, e.g. on a timer). Returns the new
    /// dominant speaker when it changes.
    pub fn evaluate(&mut self, now: Millis) -> Option<ParticipantId> {
        for levels in self.levels.values_mut() {
            levels.prune(now, self.config.window);
        }
        // The loudest participant at speech level; ties go to the lowest id.
        let loudest = self
            .levels
            .iter()
            .map(|(p, l)| (*p, l.average()))
            .filter(|(_, level)| *level <= self.config.speech_level)
            .min_by_key(|(_, level)| *level);
        let dominant_level = self.dominant.map_or(SILENCE, |d| self.level(d));
        let challenging =
            |(p, level): &(ParticipantId, u8)| Some(*p) != self.dominant && *level < dominant_level;
        let Some((loudest, _)) = loudest.filter(challenging) else {
            self.challenger = None;
            return None;
        };
        let since = match self.challenger {
            Some((challenger, since)) if challenger == loudest => since,
            _ => {
                self.challenger = Some((loudest, now));
                now
            }
        };
        if now.since(since) < self.config.hold {
            return None;
        }
        self.dominant = Some(loudest);
        self.challenger = None;
        Some(loudest)
    }

    /// The dominant speaker, if anyone has spoken yet.
    pub fn dominant(&self) -> Option<ParticipantId> {
        self.dominant
    }

    /// `participant`'s average level over the window, as of the last evaluation.
    pub fn level(&self, participant: ParticipantId) -> u8 {
        self.levels
            .get(&participant)
            .map_or(SILENCE, Levels::average)
    }

    /// Forgets `participant` (left, or stopped publishing audio). If they were the dominant
    /// speaker, nobody is until someone speaks; no change is reported for that.
    pub fn remove(&mut self, participant: ParticipantId) {
        self.levels.remove(&participant);
        if self.dominant == Some(participant) {
            self.dominant = None;
        }
        if self.challenger.is_some_and(|(c, _)| c == participant) {
            self.challenger = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: ParticipantId = ParticipantId(1);
    const BOB: ParticipantId = ParticipantId(2);

    /// Both talk at the given levels, one packet each every 20 ms, from `from` to `to` (ms);
    /// returns the changes reported with their times.
    fn talk(
        detector: &mut SpeakerDetector,
        from: u64,
        to: u64,
        alice: u8,
        bob: u8,
    ) -> Vec<(u64, ParticipantId)> {
        let mut changes = Vec::new();
        for ms in (from..to).step_by(20) {
            for (who, level) in [(ALICE, alice), (BOB, bob)] {
                if let Some(p) = detector.observe(who, level, Millis(ms)) {
                    changes.push((ms, p));
                }
            }
        }
        changes
    }

    #[test]
    fn the_first_speaker_is_announced_after_speaking_for_the_hold_time() {
        let mut detector = SpeakerDetector::new(SpeakerConfig::default());
        let changes = talk(&mut detector, 0, 3_000, 30, SILENCE);
        assert_eq!(changes, [(1_000, ALICE)], "reported once, after 1 s");
        assert_eq!(detector.dominant(), Some(ALICE));
    }

    #[test]
    fn the_speaker_changes_only_after_someone_is_louder_for_a_second() {
        let mut detector = SpeakerDetector::new(SpeakerConfig::default());
        talk(&mut detector, 0, 2_000, 30, SILENCE);
        // Bob interjects for 600 ms: too short.
        assert!(talk(&mut detector, 2_000, 2_600, 45, 20).is_empty());
        assert!(talk(&mut detector, 2_600, 4_000, 30, SILENCE).is_empty());
        // Alice falls silent and Bob talks: he takes over once his average overtakes hers
        // and stays ahead for a second.
        let changes = talk(&mut detector, 4_000, 7_000, SILENCE, 35);
        assert_eq!(changes.len(), 1, "{changes:?}");
        let (at, who) = changes[0];
        assert_eq!(who, BOB);
        assert!((5_000..5_500).contains(&at), "took over at {at} ms");
    }

    #[test]
    fn levels_under_the_speech_threshold_never_take_the_spotlight() {
        let mut detector = SpeakerDetector::new(SpeakerConfig::default());
        // Bob's fan hums at −60 dBov for a minute: not speech.
        assert!(talk(&mut detector, 0, 60_000, SILENCE, 60).is_empty());
        assert_eq!(detector.dominant(), None);
    }

    #[test]
    fn the_dominant_speaker_stays_through_silence_and_leaves_with_the_participant() {
        let mut detector = SpeakerDetector::new(SpeakerConfig::default());
        talk(&mut detector, 0, 1_500, 25, SILENCE);
        // Nobody sends anything for a while (both muted): the spotlight stays.
        assert_eq!(detector.evaluate(Millis(30_000)), None);
        assert_eq!(detector.level(ALICE), SILENCE);
        assert_eq!(detector.dominant(), Some(ALICE));
        detector.remove(ALICE);
        assert_eq!(detector.dominant(), None);
        let changes = talk(&mut detector, 31_000, 33_000, SILENCE, 40);
        assert_eq!(changes, [(32_000, BOB)]);
    }

    #[test]
    fn levels_are_smoothed_over_the_window() {
        let mut detector = SpeakerDetector::new(SpeakerConfig::default());
        for (ms, level) in [(0, 20), (100, 40), (200, 60)] {
            detector.observe(ALICE, level, Millis(ms));
        }
        assert_eq!(detector.level(ALICE), 40);
        // At 550 ms the 0 ms sample has left the 500 ms window.
        detector.observe(ALICE, 200, Millis(550));
        assert_eq!(detector.level(ALICE), (40 + 60 + 127) / 3);
    }
}
