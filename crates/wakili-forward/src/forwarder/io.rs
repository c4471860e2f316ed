//! What goes into and comes out of a [`Forwarder`](super::Forwarder), and its settings.

use crate::{KeyframeConfig, LayerConfig, Millis, ParticipantId, Rid, SpeakerConfig, TrackId};

/// What a published track carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrackKind {
    /// A microphone: no layers, audio levels for speaker detection.
    Audio,
    /// A camera: simulcast layers or a single encoding.
    Video,
    /// A screen share: like video.
    Screen,
}

/// Settings for a room's forwarder.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ForwarderConfig {
    /// Layer choice.
    pub layer: LayerConfig,
    /// Keyframe request timing.
    pub keyframe: KeyframeConfig,
    /// Active speaker detection.
    pub speaker: SpeakerConfig,
    /// Most tracks one participant may publish at once. Default 4 (microphone, camera,
    /// screen, screen audio).
    pub max_tracks_per_publisher: usize,
    /// RTP clock of video tracks. Default 90 000.
    pub video_clock_rate: u32,
    /// RTP clock of audio tracks. Default 48 000 (Opus).
    pub audio_clock_rate: u32,
}

impl Default for ForwarderConfig {
    fn default() -> Self {
        Self {
            layer: LayerConfig::default(),
            keyframe: KeyframeConfig::default(),
            speaker: SpeakerConfig::default(),
            max_tracks_per_publisher: 4,
            video_clock_rate: 90_000,
            audio_clock_rate: 48_000,
        }
    }
}

/// An RTP packet from a publisher, as much as the forwarder needs of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboundPacket {
    /// The published track it belongs to.
    pub track: TrackId,
    /// Its simulcast layer; `None` for audio and video sent without simulcast.
    pub rid: Option<Rid>,
    /// Its sequence number.
    pub seq: u16,
    /// Its RTP timestamp.
    pub timestamp: u32,
    /// Whether it starts a keyframe (the IO side reads that from the payload).
    pub is_keyframe: bool,
    /// RFC 6464 audio level (0 loudest … 127 silence), if the packet carries one.
    pub audio_level: Option<u8>,
    /// When it arrived.
    pub arrival: Millis,
}

/// A decision for the IO side to carry out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Send the packet just handled to `subscriber`, with these header values.
    Forward {
        /// Who receives it.
        subscriber: ParticipantId,
        /// The track it belongs to.
        track: TrackId,
        /// Sequence number to write.
        seq: u16,
        /// RTP timestamp to write.
        timestamp: u32,
    },
    /// Ask the track's publisher for a keyframe of this layer (PLI).
    RequestKeyframe {
        /// The track.
        track: TrackId,
        /// The layer; `None` for a track without simulcast.
        rid: Option<Rid>,
    },
    /// The room's dominant speaker changed.
    ActiveSpeaker {
        /// Who speaks now.
        participant: ParticipantId,
    },
    /// A subscriber now receives another layer of a simulcast track (`None`: nothing).
    LayerChanged {
        /// The subscriber.
        subscriber: ParticipantId,
        /// The track.
        track: TrackId,
        /// The layer now forwarded.
        rid: Option<Rid>,
    },
}
