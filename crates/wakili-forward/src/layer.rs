//! Simulcast layer choice for one subscriber of one published video track.
//!
//! A simulcast publisher sends the same video up to three times, identified by RID: `q` (low),
//! `h` (medium) and `f` (high). For each subscriber a [`LayerSelector`] picks the layer to
//! forward:
//! - **down at once** when the bandwidth estimate drops under the current layer's bitrate
//!   (less a small tolerance, as estimates are noisy), to the highest layer that still fits;
//! - **up only after a sustained surplus**: the estimate must have stayed above a higher
//!   layer's bitrate × [`LayerConfig::up_factor`] for [`LayerConfig::up_hold`], so a noisy
//!   estimate does not make the picture flap. Before the first estimate the lowest layer is
//!   a placeholder: the first estimate picks the highest layer it covers at once;
//! - **never above the quality cap** the quality engine recommends for this subscriber;
//! - **only layers the publisher is sending** ([`LayerActivity`]): a layer without a packet for
//!   [`LayerConfig::stopped_after`] is considered stopped (browsers drop high layers when their
//!   own uplink or CPU suffers);
//! - a **forced layer** (operators, tests) replaces the cap as the highest layer allowed, and
//!   is still held to the estimate: when the estimate does not cover it, the subscriber gets
//!   the best layer below it that fits (and steps up to it by the rules above), instead of a
//!   stream its downlink cannot carry. A forced layer the publisher does not send gives way
//!   to the closest one below it, else above it;
//! - **paused** by the subscriber: nothing.
//!
//! The lowest layer that is sent and allowed by the cap is kept even when the estimate is
//! below its bitrate: pausing video for congestion is a product decision, not this one.

use std::time::Duration;

use crate::Millis;

/// A simulcast layer, by its RTP stream id. Ordered from low to high.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rid {
    /// `q`: quarter resolution, the low layer.
    Q,
    /// `h`: half resolution, the medium layer.
    H,
    /// `f`: full resolution, the high layer.
    F,
}

impl Rid {
    /// All layers, low to high.
    pub const ALL: [Rid; 3] = [Rid::Q, Rid::H, Rid::F];

    /// The RID as written in SDP and in the RTP header extension.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Q => "q",
            Self::H => "h",
            Self::F => "f",
        }
    }

    /// The layer named `rid`, if it is one of ours.
    pub fn parse(rid: &str) -> Option<Rid> {
        match rid {
            "q" => Some(Self::Q),
            "h" => Some(Self::H),
            "f" => Some(Self::F),
            _ => None,
        }
    }

    fn index(self) -> usize {
        match self {
            Self::Q => 0,
            Self::H => 1,
            Self::F => 2,
        }
    }
}

/// The quality the quality engine recommends for a subscriber, used as a cap on its layers.
/// Mirrors `wakili_core::quality::Level` (the IO side maps one to the other).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Quality {
    /// At most `q`.
    Low,
    /// At most `h`.
    Medium,
    /// Any layer.
    #[default]
    High,
}

impl Quality {
    /// The highest layer this quality allows.
    pub fn highest_rid(self) -> Rid {
        match self {
            Self::Low => Rid::Q,
            Self::Medium => Rid::H,
            Self::High => Rid::F,
        }
    }

    /// The quality named like the quality engine's profiles (`low`, `medium`, `high`);
    /// anything else reads as `High`, i.e. no cap.
    pub fn from_profile(name: &str) -> Self {
        match name {
            "low" => Self::Low,
            "medium" => Self::Medium,
            _ => Self::High,
        }
    }
}

/// Target bitrate of each layer, bits per second (what the publisher is configured to send).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerBitrates {
    /// `q`.
    pub q: u64,
    /// `h`.
    pub h: u64,
    /// `f`.
    pub f: u64,
}

impl LayerBitrates {
    /// The bitrate of `rid`.
    pub fn get(&self, rid: Rid) -> u64 {
        match rid {
            Rid::Q => self.q,
            Rid::H => self.h,
            Rid::F => self.f,
        }
    }
}

impl Default for LayerBitrates {
    fn default() -> Self {
        Self {
            q: 150_000,
            h: 500_000,
            f: 1_500_000,
        }
    }
}

/// How layers are chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerConfig {
    /// Each layer's bitrate.
    pub bitrates: LayerBitrates,
    /// How far (a fraction) the estimate may dip under the current layer's bitrate before
    /// stepping down. Default 0.1.
    pub down_tolerance: f64,
    /// How far above a layer's bitrate the estimate must be to step up to it. Default 1.2.
    pub up_factor: f64,
    /// How long the estimate must stay that high before stepping up. Default 3 s.
    pub up_hold: Duration,
    /// A layer with no packet for this long is considered stopped. Default 1 s.
    pub stopped_after: Duration,
}

impl Default for LayerConfig {
    fn default() -> Self {
        Self {
            bitrates: LayerBitrates::default(),
            down_tolerance: 0.1,
            up_factor: 1.2,
            up_hold: Duration::from_secs(3),
            stopped_after: Duration::from_secs(1),
        }
    }
}

/// Which layers of one published track are being sent: the arrival time of the last packet of
/// each layer. Shared by all subscribers of the track.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LayerActivity {
    last_packet: [Option<Millis>; 3],
}

impl LayerActivity {
    /// Nothing received yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A packet of `rid` arrived at `now`.
    pub fn on_packet(&mut self, rid: Rid, now: Millis) {
        let slot = &mut self.last_packet[rid.index()];
        if slot.is_none_or(|last| now > last) {
            *slot = Some(now);
        }
    }

    /// Whether `rid` had a packet within `stopped_after` before `now`.
    pub fn is_active(&self, rid: Rid, now: Millis, stopped_after: Duration) -> bool {
        self.last_packet[rid.index()].is_some_and(|last| now.since(last) < stopped_after)
    }
}

/// The layer choice for one subscriber of one video track.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LayerSelector {
    /// The last layer chosen while not paused.
    current: Option<Rid>,
    estimate: Option<u64>,
    /// Per layer: since when every estimate has been above its bitrate × `up_factor`.
    surplus_since: [Option<Millis>; 3],
    cap: Quality,
    forced: Option<Rid>,
    paused: bool,
}

impl LayerSelector {
    /// No estimate yet, no cap, not forced, not paused.
    pub fn new() -> Self {
        Self::default()
    }

    /// A new bandwidth estimate (bits per second) for this track.
    pub fn set_estimate(&mut self, bps: u64, now: Millis, config: &LayerConfig) {
        if self.estimate.is_none() {
            // Nothing was known before: the first estimate makes a first choice, not a step
            // up held back by `up_hold`.
            self.current = None;
        }
        self.estimate = Some(bps);
        for rid in Rid::ALL {
            let needed = config.bitrates.get(rid) as f64 * config.up_factor;
            let since = &mut self.surplus_since[rid.index()];
            if bps as f64 > needed {
                since.get_or_insert(now);
            } else {
                *since = None;
            }
        }
    }

    /// The quality engine's cap.
    pub fn set_cap(&mut self, cap: Quality) {
        self.cap = cap;
    }

    /// Forces a layer: the highest allowed, in place of the cap, still within the estimate
    /// (`None` lifts the override).
    pub fn force(&mut self, rid: Option<Rid>) {
        self.forced = rid;
    }

    /// The subscriber paused (`true`) or resumed (`false`) the track.
    pub fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
    }

    /// Whether the subscriber paused the track.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// The layer to forward at `now`, or `None` when paused or when no layer the publisher
    /// sends is allowed.
    pub fn decide(
        &mut self,
        now: Millis,
        activity: &LayerActivity,
        config: &LayerConfig,
    ) -> Option<Rid> {
        if self.paused {
            return None;
        }
        let active = |rid: Rid| activity.is_active(rid, now, config.stopped_after);
        // The forced layer replaces the cap as the highest allowed.
        let max = self.forced.unwrap_or(self.cap.highest_rid());
        let allowed: Vec<Rid> = Rid::ALL
            .into_iter()
            .filter(|r| *r <= max && active(*r))
            .collect();
        if allowed.is_empty()
            && let Some(forced) = self.forced
        {
            // Forced above nothing that is sent: the closest layer above it rather than none.
            let above = Rid::ALL.into_iter().find(|r| *r > forced && active(*r));
            if above.is_some() {
                self.current = above;
            }
            return above;
        }
        let (Some(&lowest), Some(&highest)) = (allowed.first(), allowed.last()) else {
            self.current = None;
            return None;
        };
        let bitrate = |rid: Rid| config.bitrates.get(rid) as f64;
        let chosen = match self.current {
            // Without an estimate (estimation off, or none measured yet) there is nothing to
            // hold a forced layer to.
            _ if self.forced.is_some() && self.estimate.is_none() => highest,
            // First choice: the highest layer the estimate covers, the lowest without one.
            None => {
                let covered = |rid: &Rid| self.estimate.is_some_and(|e| e as f64 >= bitrate(*rid));
                allowed
                    .iter()
                    .rev()
                    .copied()
                    .find(covered)
                    .unwrap_or(lowest)
            }
            Some(current) => {
                let keeps = |rid: &Rid| {
                    self.estimate
                        .is_none_or(|e| e as f64 >= bitrate(*rid) * (1.0 - config.down_tolerance))
                };
                // Down: the highest allowed layer not above the current one that still fits.
                let kept = allowed
                    .iter()
                    .rev()
                    .copied()
                    .filter(|r| *r <= current)
                    .find(keeps)
                    .unwrap_or(lowest);
                // Up: the highest layer whose surplus has lasted long enough.
                let held = |rid: &Rid| {
                    self.surplus_since[rid.index()]
                        .is_some_and(|since| now.since(since) >= config.up_hold)
                };
                allowed
                    .iter()
                    .rev()
                    .copied()
                    .filter(|r| *r > kept)
                    .find(held)
                    .unwrap_or(kept)
            }
        };
        self.current = Some(chosen);
        Some(chosen)
    }
}

#[cfg(test)]
mod tests;
