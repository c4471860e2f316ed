//! What a [`TrackMuxer`](crate::TrackMuxer) records and how.

use std::time::{Duration, Instant};

use crate::MuxError;

/// The codec of the recorded track, as negotiated in SDP. Frames are written as received,
/// never transcoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// VP8 video (RFC 7741 payload format), Matroska `V_VP8`.
    Vp8,
    /// Opus audio (RFC 7587), Matroska `A_OPUS`.
    Opus {
        /// Channels to declare: 2 for WebRTC's `opus/48000/2` (a mono stream decodes fine as
        /// stereo), 1 to declare mono.
        channels: u8,
    },
}

impl Codec {
    /// Whether this is a video codec (keyframes matter).
    pub fn is_video(self) -> bool {
        matches!(self, Codec::Vp8)
    }

    /// The RTP clock rate WebRTC uses for this codec.
    pub fn default_clock_rate(self) -> u32 {
        match self {
            Codec::Vp8 => 90_000,
            Codec::Opus { .. } => 48_000,
        }
    }
}

/// How one track is recorded. [`MuxerConfig::new`] gives the defaults; every field is public
/// so the recorder can tune it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MuxerConfig {
    /// The track's codec.
    pub codec: Codec,
    /// RTP clock rate of the codec (Hz), from SDP.
    pub clock_rate: u32,
    /// Matroska `TrackUID`, non-zero; unique per recorded track is good practice.
    pub track_uid: u64,
    /// How much media a chunk holds before it is sealed: audio is cut at the first frame
    /// after it, video at the first keyframe from [`keyframe_lead`](Self::keyframe_lead)
    /// before it on (the keyframe asked for then) (default 4 s).
    pub chunk_interval: Duration,
    /// Video only: a chunk is cut at a delta frame once it is this long, when no keyframe came
    /// (default 10 s).
    pub max_chunk_duration: Duration,
    /// Video only: how long before [`chunk_interval`](Self::chunk_interval) is reached a
    /// keyframe is asked for, so that it arrives in time (default 500 ms).
    pub keyframe_lead: Duration,
    /// Least time between two keyframe requests (default 1 s).
    pub keyframe_retry: Duration,
    /// How long a missing packet is waited for before its frame is given up (default 250 ms:
    /// room for a retransmission after a NACK).
    pub reorder_window: Duration,
    /// How many packets the reorder buffer holds (default 512, at most 16384); when it is
    /// full the oldest hole is given up.
    pub reorder_capacity: usize,
    /// A stream silent for at least this long is checked on its return: if RTP time did not
    /// advance with the wall clock, the gap is taken from arrival (default 1 s).
    pub pause_threshold: Duration,
    /// How far RTP time may fall behind arrival after a pause before arrival is used
    /// (default 250 ms).
    pub pause_tolerance: Duration,
    /// Largest RTP payload accepted (default 1500 bytes; nothing larger comes over UDP).
    pub max_packet_bytes: usize,
    /// Largest frame written (default 4 MiB); a larger one is dropped.
    pub max_frame_bytes: usize,
    /// The instant of timecode 0, to put several tracks on one timeline (for example the
    /// start of the recording); `None`: the first written frame.
    pub origin: Option<Instant>,
}

impl MuxerConfig {
    /// Defaults for `codec` at its usual clock rate, with `TrackUID` 1.
    pub fn new(codec: Codec) -> Self {
        Self {
            codec,
            clock_rate: codec.default_clock_rate(),
            track_uid: 1,
            chunk_interval: Duration::from_secs(4),
            max_chunk_duration: Duration::from_secs(10),
            keyframe_lead: Duration::from_millis(500),
            keyframe_retry: Duration::from_secs(1),
            reorder_window: Duration::from_millis(250),
            reorder_capacity: 512,
            pause_threshold: Duration::from_secs(1),
            pause_tolerance: Duration::from_millis(250),
            max_packet_bytes: 1500,
            max_frame_bytes: 4 << 20,
            origin: None,
        }
    }

    /// Checks the values a muxer cannot work with.
    pub(crate) fn validate(&self) -> Result<(), MuxError> {
        if self.clock_rate == 0 {
            return Err(MuxError::InvalidConfig("clock_rate must be positive"));
        }
        if self.track_uid == 0 {
            return Err(MuxError::InvalidConfig("track_uid must be non-zero"));
        }
        if self.chunk_interval.is_zero() {
            return Err(MuxError::InvalidConfig("chunk_interval must be positive"));
        }
        if self.chunk_interval > Duration::from_secs(30) {
            return Err(MuxError::InvalidConfig(
                "chunk_interval must be at most 30 s (one cluster per chunk)",
            ));
        }
        if self.max_chunk_duration < self.chunk_interval {
            return Err(MuxError::InvalidConfig(
                "max_chunk_duration must be at least chunk_interval",
            ));
        }
        if !(1..=16_384).contains(&self.reorder_capacity) {
            return Err(MuxError::InvalidConfig(
                "reorder_capacity must be between 1 and 16384",
            ));
        }
        if self.max_packet_bytes == 0 || self.max_frame_bytes == 0 {
            return Err(MuxError::InvalidConfig("size limits must be positive"));
        }
        if let Codec::Opus { channels } = self.codec
            && !(1..=2).contains(&channels)
        {
            return Err(MuxError::InvalidConfig("Opus channels must be 1 or 2"));
        }
        Ok(())
    }
}
