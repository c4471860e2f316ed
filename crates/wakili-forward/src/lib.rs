//! The forwarding decisions of Wakili's SFU, sans-IO.
//!
//! An SFU receives each publisher's RTP once and sends it on to every subscriber. This crate
//! decides, for every packet, *what* goes to *whom* and with *which header values*; it never
//! reads the clock, touches a socket or parses a payload. Callers pass the time in as
//! [`Millis`] (a monotonic millisecond count from an epoch of their choice), so tests run at
//! simulated speed.
//!
//! Decided here:
//! - [`layer`]: which simulcast layer (`q`/`h`/`f`) each subscriber receives of each video
//!   track, from its bandwidth estimate, the quality engine's cap, an operator override, pause,
//!   and which layers the publisher is actually sending;
//! - [`rewrite`]: the RTP sequence numbers and timestamps each subscriber sees, so that layer
//!   switches and pauses look like one continuous stream (switching only at keyframes);
//! - [`keyframe`]: when to ask a publisher for a keyframe (PLI/FIR), rate-limited and retried;
//! - [`speaker`]: who the dominant speaker is, from RFC 6464 audio levels;
//! - [`forwarder`]: a [`Forwarder`] per room tying these together, driven like str0m:
//!   inputs through `handle_*` methods, decisions out of [`Forwarder::poll_output`].
//!
//! Left to the IO side and str0m (in RTP mode): ICE, DTLS/SRTP, parsing and writing packets,
//! NACK and RTX (str0m answers a subscriber's NACKs from what it sent), RTCP sender/receiver
//! reports, and the bandwidth estimate itself (TWCC/REMB), which is fed in here as a number.
//! Detecting keyframes and reading the audio-level header extension also happen there: a
//! packet arrives here already described by an [`InboundPacket`].

mod error;
pub mod forwarder;
pub mod keyframe;
pub mod layer;
pub mod rewrite;
pub mod speaker;

use std::{fmt, time::Duration};

pub use error::ForwardError;
pub use forwarder::{Forwarder, ForwarderConfig, InboundPacket, Output, TrackKind};
pub use keyframe::{KeyframeConfig, KeyframeRequests};
pub use layer::{LayerActivity, LayerBitrates, LayerConfig, LayerSelector, Quality, Rid};
pub use rewrite::{AudioRewriter, DropReason, Rewrite, VideoRewriter};
pub use speaker::{SpeakerConfig, SpeakerDetector};

/// A monotonic instant: milliseconds since an epoch the caller chooses (for example the
/// server's start). Only differences matter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Millis(pub u64);

impl Millis {
    /// Time from `earlier` to `self`; zero when `earlier` is later.
    pub fn since(self, earlier: Millis) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }

    /// The instant `duration` after `self` (saturating).
    pub fn after(self, duration: Duration) -> Millis {
        let ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        Millis(self.0.saturating_add(ms))
    }
}

/// A participant of the room: publisher of tracks, subscriber to others' tracks, or both.
/// The IO side maps its own identifiers to these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ParticipantId(pub u64);

impl fmt::Display for ParticipantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "participant {}", self.0)
    }
}

/// A published track (one media source: a microphone, a camera, a screen).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TrackId(pub u64);

impl fmt::Display for TrackId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "track {}", self.0)
    }
}
