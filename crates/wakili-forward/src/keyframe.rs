//! When to ask a publisher for a keyframe (PLI, or FIR for old endpoints).
//!
//! A subscriber can only start decoding a layer at a keyframe, so one is requested whenever a
//! subscriber starts or switches to a layer. Requests are per publisher track + layer (`K`),
//! shared by all subscribers:
//! - at most one request per [`KeyframeConfig::min_interval`]: a keyframe costs the publisher a
//!   burst of bitrate, and one keyframe serves every subscriber waiting on that layer;
//! - a request within the interval is covered by the one in flight; if that one was already
//!   answered, the new request is deferred to the end of the interval, not lost;
//! - while no keyframe arrives, the request is repeated every [`KeyframeConfig::retry_after`]
//!   (the PLI or the keyframe itself may have been lost).
//!
//! Sending the PLI/FIR is str0m's job; this only says when.

use std::{collections::BTreeMap, time::Duration};

use crate::Millis;

/// Keyframe request timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyframeConfig {
    /// Least time between two requests for the same track + layer. Default 500 ms.
    pub min_interval: Duration,
    /// A request still unanswered after this long is sent again. Default 1 s.
    pub retry_after: Duration,
}

impl Default for KeyframeConfig {
    fn default() -> Self {
        Self {
            min_interval: Duration::from_millis(500),
            retry_after: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct State {
    last_sent: Option<Millis>,
    /// Someone waits for a keyframe.
    waiting: bool,
    /// A request was held back by the rate limit after the last one had been answered.
    deferred: bool,
}

impl State {
    /// When the next request for a waiting key is due.
    fn due(&self, config: &KeyframeConfig) -> Option<Millis> {
        if !self.waiting {
            return None;
        }
        let Some(last) = self.last_sent else {
            return Some(Millis(0));
        };
        let wait = if self.deferred {
            config.min_interval
        } else {
            config.retry_after
        };
        Some(last.after(wait))
    }
}

/// Keyframe requests for a room, per publisher track + layer `K`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyframeRequests<K> {
    config: KeyframeConfig,
    states: BTreeMap<K, State>,
}

impl<K: Copy + Ord> KeyframeRequests<K> {
    /// Nothing requested yet.
    pub fn new(config: KeyframeConfig) -> Self {
        Self {
            config,
            states: BTreeMap::new(),
        }
    }

    /// A subscriber needs a keyframe of `key`. Returns whether to send a request now; when not,
    /// the need is remembered and served by [`due`](Self::due).
    pub fn request(&mut self, key: K, now: Millis) -> bool {
        let config = self.config;
        let state = self.states.entry(key).or_default();
        let rested = state
            .last_sent
            .is_none_or(|last| now.since(last) >= config.min_interval);
        if rested {
            *state = State {
                last_sent: Some(now),
                waiting: true,
                deferred: false,
            };
            return true;
        }
        if !state.waiting {
            state.waiting = true;
            state.deferred = true;
        }
        false
    }

    /// A keyframe of `key` arrived: nobody waits any more.
    pub fn keyframe_received(&mut self, key: K) {
        if let Some(state) = self.states.get_mut(&key) {
            state.waiting = false;
            state.deferred = false;
        }
    }

    /// Whether a keyframe of `key` is awaited.
    pub fn is_waiting(&self, key: K) -> bool {
        self.states.get(&key).is_some_and(|s| s.waiting)
    }

    /// Stops waiting for every key `still_needed` rejects (its subscribers switched elsewhere
    /// or left), so it is not requested again.
    pub fn retain_waiting(&mut self, mut still_needed: impl FnMut(&K) -> bool) {
        for (key, state) in &mut self.states {
            if state.waiting && !still_needed(key) {
                state.waiting = false;
                state.deferred = false;
            }
        }
    }

    /// Forgets every key `keep` rejects (a removed track).
    pub fn forget(&mut self, mut keep: impl FnMut(&K) -> bool) {
        self.states.retain(|key, _| keep(key));
    }

    /// The keys whose request is due at `now` (deferred ones and retries), in key order; each
    /// returned key counts as requested now.
    pub fn due(&mut self, now: Millis) -> Vec<K> {
        let config = self.config;
        let mut keys = Vec::new();
        for (key, state) in &mut self.states {
            if state.due(&config).is_some_and(|at| at <= now) {
                state.last_sent = Some(now);
                state.deferred = false;
                keys.push(*key);
            }
        }
        keys
    }

    /// The earliest time [`due`](Self::due) will return something, if anything is awaited.
    pub fn next_due(&self) -> Option<Millis> {
        self.states
            .values()
            .filter_map(|s| s.due(&self.config))
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn requests() -> KeyframeRequests<u8> {
        KeyframeRequests::new(KeyframeConfig::default())
    }

    #[test]
    fn keyframe_requests_are_rate_limited_per_track_and_layer() {
        let mut kf = requests();
        assert!(kf.request(1, Millis(0)));
        // A second subscriber switching 100 ms later is served by the same keyframe.
        assert!(!kf.request(1, Millis(100)));
        assert!(!kf.request(1, Millis(499)));
        // Another track + layer has its own budget.
        assert!(kf.request(2, Millis(100)));
        assert!(kf.request(1, Millis(500)), "the interval has passed");
    }

    #[test]
    fn an_unanswered_request_is_repeated_after_a_second() {
        let mut kf = requests();
        assert!(kf.request(1, Millis(0)));
        assert_eq!(kf.next_due(), Some(Millis(1_000)));
        assert!(kf.due(Millis(999)).is_empty());
        assert_eq!(kf.due(Millis(1_000)), [1]);
        assert!(kf.due(Millis(1_500)).is_empty(), "counted as sent at 1 s");
        assert_eq!(kf.due(Millis(2_000)), [1]);
        kf.keyframe_received(1);
        assert!(!kf.is_waiting(1));
        assert!(kf.due(Millis(10_000)).is_empty());
        assert_eq!(kf.next_due(), None);
    }

    #[test]
    fn a_request_after_the_keyframe_came_is_deferred_not_lost() {
        let mut kf = requests();
        assert!(kf.request(1, Millis(0)));
        kf.keyframe_received(1);
        // Someone new needs a fresh keyframe 100 ms later: held back, then due at 500 ms.
        assert!(!kf.request(1, Millis(100)));
        assert_eq!(kf.next_due(), Some(Millis(500)));
        assert!(kf.due(Millis(499)).is_empty());
        assert_eq!(kf.due(Millis(500)), [1]);
        // From then on it is an ordinary unanswered request.
        assert_eq!(kf.next_due(), Some(Millis(1_500)));
    }

    #[test]
    fn requests_nobody_needs_any_more_are_not_repeated() {
        let mut kf = requests();
        assert!(kf.request(1, Millis(0)));
        assert!(kf.request(2, Millis(0)));
        kf.retain_waiting(|key| *key == 2);
        assert_eq!(kf.due(Millis(1_000)), [2]);
        kf.forget(|key| *key != 2);
        assert!(!kf.is_waiting(2));
        assert!(
            kf.request(2, Millis(1_100)),
            "a forgotten key starts afresh"
        );
    }
}
