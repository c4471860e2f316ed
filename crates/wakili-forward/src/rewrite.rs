//! RTP sequence-number and timestamp rewriting for one subscriber of one track.
//!
//! Each simulcast layer is its own RTP stream with its own sequence numbers and timestamps,
//! yet a subscriber receives one stream. The rewriters here make whatever is forwarded look
//! like one continuous stream:
//! - a switch to another layer happens only at a keyframe of that layer (anything else would
//!   be undecodable); until one arrives the old layer keeps flowing, or nothing if there was
//!   none;
//! - after a switch, sequence numbers continue at the highest one sent + 1: no gap (which
//!   would trigger NACKs for packets that never existed) and no duplicate;
//! - timestamps continue monotonically: the new layer's first packet is stamped the last
//!   forwarded packet's timestamp plus the wall-clock time between their arrivals, at the
//!   stream's clock rate (90 kHz for video);
//! - late packets are handled with 16-bit wraparound in mind: reordered packets of the
//!   current layer keep their place, packets from before the switch point (of either layer)
//!   are dropped.
//!
//! [`AudioRewriter`] is the same without layers: pass-through, with a pause after which the
//! sequence continues where it stopped.

use crate::Millis;

/// What to do with one inbound packet for one subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rewrite {
    /// Forward it with these header values.
    Forward {
        /// Sequence number for the subscriber.
        seq: u16,
        /// RTP timestamp for the subscriber.
        timestamp: u32,
        /// This packet starts a new run: the first packet forwarded, the keyframe a layer
        /// switch happened at, or the first after a resume.
        switched: bool,
    },
    /// Do not forward it.
    Drop(DropReason),
}

/// Why a packet is not forwarded to a subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The subscriber receives nothing of this track (paused, or no layer chosen).
    Paused,
    /// The packet belongs to a layer that is neither forwarded nor wanted.
    OtherLayer,
    /// The packet belongs to the wanted layer, which is not switched to before a keyframe.
    WaitingForKeyframe,
    /// The packet is older than the point the current run started at (a late packet).
    BeforeSwitch,
}

/// Output continuity across runs: the highest sequence number sent so far and the timestamp
/// and arrival time of that packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Continuity {
    clock_rate: u32,
    last: Option<Last>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Last {
    /// Extended (never wrapping) output sequence number.
    seq: u64,
    timestamp: u32,
    at: Millis,
}

/// How one run of input packets maps to output: sequence numbers in extended form, so
/// wraparound is plain arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mapping {
    /// Extended input sequence number of the run's first packet.
    in_base: u64,
    /// Highest extended input sequence number of the run so far.
    in_highest: u64,
    /// Extended output sequence number of the run's first packet.
    out_base: u64,
    /// Added (wrapping) to input timestamps.
    ts_offset: u32,
}

impl Continuity {
    fn new(clock_rate: u32) -> Self {
        Self {
            clock_rate,
            last: None,
        }
    }

    /// A run starting with this packet, continuing the output where it stopped.
    fn start(&self, seq: u16, timestamp: u32, now: Millis) -> Mapping {
        // Input numbers are extended from 2^16 up so a late packet can sit below the base.
        let in_base = (1 << 16) + u64::from(seq);
        let (out_base, ts_offset) = match self.last {
            // The very first run passes the publisher's numbers through.
            None => (u64::from(seq), 0),
            Some(last) => {
                let ms = u64::try_from(now.since(last.at).as_millis()).unwrap_or(u64::MAX);
                let ticks = ms.saturating_mul(u64::from(self.clock_rate)) / 1000;
                // Truncation is wanted: RTP timestamps are modulo 2^32.
                let ticks = ticks.clamp(1, u64::from(u32::MAX)) as u32;
                let first = last.timestamp.wrapping_add(ticks);
                (last.seq + 1, first.wrapping_sub(timestamp))
            }
        };
        Mapping {
            in_base,
            in_highest: in_base,
            out_base,
            ts_offset,
        }
    }

    /// Maps a packet of the run; `None` when it is from before the run started.
    fn map(
        &mut self,
        mapping: &mut Mapping,
        seq: u16,
        timestamp: u32,
        now: Millis,
    ) -> Option<(u16, u32)> {
        // The extension closest to the highest seen: a distance over 2^15 means wraparound.
        let delta = i64::from(seq.wrapping_sub(mapping.in_highest as u16) as i16);
        let extended = mapping.in_highest.checked_add_signed(delta)?;
        if extended < mapping.in_base {
            return None;
        }
        mapping.in_highest = mapping.in_highest.max(extended);
        let out_seq = mapping.out_base + (extended - mapping.in_base);
        let out_ts = timestamp.wrapping_add(mapping.ts_offset);
        if self.last.is_none_or(|last| out_seq > last.seq) {
            self.last = Some(Last {
                seq: out_seq,
                timestamp: out_ts,
                at: now,
            });
        }
        // Truncation is wanted: the wire sequence number is the extended one modulo 2^16.
        Some((out_seq as u16, out_ts))
    }
}

/// The rewriting for one subscriber of one video track. `L` identifies a layer: [`Rid`] for
/// simulcast tracks, `Option<Rid>` when single-encoding tracks (no RID) are mixed in.
///
/// [`Rid`]: crate::Rid
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoRewriter<L> {
    target: Option<L>,
    current: Option<(L, Mapping)>,
    continuity: Continuity,
}

impl<L: Copy + Eq> VideoRewriter<L> {
    /// Nothing forwarded yet; `clock_rate` is the RTP clock (90 000 for video).
    pub fn new(clock_rate: u32) -> Self {
        Self {
            target: None,
            current: None,
            continuity: Continuity::new(clock_rate),
        }
    }

    /// The layer the subscriber should receive (`None`: nothing, effective at once). A
    /// different layer takes over at its next keyframe.
    pub fn set_target(&mut self, target: Option<L>) {
        self.target = target;
        if target.is_none() {
            self.current = None;
        }
    }

    /// The layer wanted.
    pub fn target(&self) -> Option<L> {
        self.target
    }

    /// The layer being forwarded.
    pub fn current(&self) -> Option<L> {
        self.current.map(|(layer, _)| layer)
    }

    /// Whether a wanted layer still waits for its keyframe.
    pub fn is_switch_pending(&self) -> bool {
        self.target.is_some() && self.target != self.current()
    }

    /// Decides on one inbound packet of `layer` that arrived at `now`.
    pub fn rewrite(
        &mut self,
        layer: L,
        seq: u16,
        timestamp: u32,
        is_keyframe: bool,
        now: Millis,
    ) -> Rewrite {
        let Some(target) = self.target else {
            return Rewrite::Drop(DropReason::Paused);
        };
        let mut switched = false;
        if layer == target && self.current() != Some(layer) {
            if !is_keyframe {
                return Rewrite::Drop(DropReason::WaitingForKeyframe);
            }
            self.current = Some((layer, self.continuity.start(seq, timestamp, now)));
            switched = true;
        }
        match &mut self.current {
            Some((current, mapping)) if *current == layer => {
                match self.continuity.map(mapping, seq, timestamp, now) {
                    Some((seq, timestamp)) => Rewrite::Forward {
                        seq,
                        timestamp,
                        switched,
                    },
                    None => Rewrite::Drop(DropReason::BeforeSwitch),
                }
            }
            _ => Rewrite::Drop(DropReason::OtherLayer),
        }
    }
}

/// The rewriting for one subscriber of one audio track: pass-through, with a pause after which
/// sequence numbers and timestamps continue where they stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioRewriter {
    paused: bool,
    mapping: Option<Mapping>,
    continuity: Continuity,
}

impl AudioRewriter {
    /// Nothing forwarded yet; `clock_rate` is the RTP clock (48 000 for Opus).
    pub fn new(clock_rate: u32) -> Self {
        Self {
            paused: false,
            mapping: None,
            continuity: Continuity::new(clock_rate),
        }
    }

    /// Stops forwarding until [`resume`](Self::resume).
    pub fn pause(&mut self) {
        self.paused = true;
        self.mapping = None;
    }

    /// Forwards again, continuing the sequence from the next packet.
    pub fn resume(&mut self) {
        self.paused = false;
    }

    /// Whether forwarding is paused.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Decides on one inbound packet that arrived at `now`.
    pub fn rewrite(&mut self, seq: u16, timestamp: u32, now: Millis) -> Rewrite {
        if self.paused {
            return Rewrite::Drop(DropReason::Paused);
        }
        let switched = self.mapping.is_none();
        let mapping = self
            .mapping
            .get_or_insert_with(|| self.continuity.start(seq, timestamp, now));
        match self.continuity.map(mapping, seq, timestamp, now) {
            Some((seq, timestamp)) => Rewrite::Forward {
                seq,
                timestamp,
                switched,
            },
            None => Rewrite::Drop(DropReason::BeforeSwitch),
        }
    }
}

#[cfg(test)]
mod tests;
