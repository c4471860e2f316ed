//! What goes in and out of the SFU besides the handle's arguments: answers, events, stats.

use crate::{Rid, TrackId};

/// The SFU's SDP answer to a participant's offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The answer, as SDP text.
    pub sdp: String,
}

/// What a track carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// Audio (Opus).
    Audio,
    /// Video (a camera or a screen).
    Video,
}

/// A track someone publishes.
///
/// Subscribers find it in the SDP the SFU offers them as `a=msid:<publisher> t<id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackInfo {
    /// Its id, unique within the room.
    pub id: TrackId,
    /// Audio or video.
    pub kind: MediaKind,
    /// Its simulcast layers, low to high; empty without simulcast.
    pub layers: Vec<Rid>,
}

/// Something the signaling layer must know or deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SfuEvent {
    /// The SFU renegotiates with `participant` (someone published or removed a track): deliver
    /// this offer and pass the client's answer to [`SfuHandle::answer`](crate::SfuHandle::answer).
    /// At most one offer per participant awaits an answer; changes meanwhile go in the next one.
    Offer {
        /// The room.
        room: String,
        /// Who must answer.
        participant: String,
        /// The offer, as SDP text.
        sdp: String,
    },
    /// `participant` publishes a track (it joined with it).
    TrackPublished {
        /// The room.
        room: String,
        /// The publisher.
        participant: String,
        /// The track.
        track: TrackInfo,
    },
    /// A track is no longer published (its publisher left, was disconnected or rejoined).
    TrackRemoved {
        /// The room.
        room: String,
        /// The publisher.
        participant: String,
        /// The track.
        track: TrackId,
    },
    /// The room's dominant speaker changed.
    ActiveSpeaker {
        /// The room.
        room: String,
        /// Who speaks now.
        participant: String,
    },
    /// A subscriber now receives another simulcast layer of a track (`None`: none).
    LayerChanged {
        /// The room.
        room: String,
        /// The subscriber.
        subscriber: String,
        /// The track.
        track: TrackId,
        /// The layer forwarded now.
        rid: Option<Rid>,
    },
    /// `participant`'s connection failed or timed out; the SFU removed it from the room
    /// (its tracks are reported [`TrackRemoved`](SfuEvent::TrackRemoved)).
    Disconnected {
        /// The room.
        room: String,
        /// The participant.
        participant: String,
    },
}

/// A room's state, for operators and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomStats {
    /// The room.
    pub room: String,
    /// Its participants, by name.
    pub participants: Vec<ParticipantStats>,
    /// The dominant speaker, if anyone spoke.
    pub active_speaker: Option<String>,
}

/// One participant of a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantStats {
    /// The participant.
    pub name: String,
    /// Whether its ICE+DTLS connection is up.
    pub connected: bool,
    /// What it publishes.
    pub published: Vec<PublishedStats>,
    /// What it receives (or will, once negotiated).
    pub subscriptions: Vec<SubscriptionStats>,
    /// RTP packets forwarded to it, all tracks together.
    pub forwarded_packets: u64,
    /// Its latest downlink bandwidth estimate (bits/s, from str0m's TWCC estimator or REMB),
    /// which the forwarder shares among its video subscriptions.
    pub estimate_bps: Option<u64>,
}

/// One published track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedStats {
    /// The track.
    pub track: TrackInfo,
    /// RTP packets received from the publisher (all layers).
    pub received_packets: u64,
}

/// One track as one subscriber receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionStats {
    /// The track.
    pub track: TrackId,
    /// Its publisher.
    pub publisher: String,
    /// Whether the SDP m-line carrying it is negotiated (media can flow).
    pub negotiated: bool,
    /// Whether the subscriber paused it.
    pub paused: bool,
    /// The simulcast layer forwarded now (`None` for audio, single-layer video, or nothing).
    pub layer: Option<Rid>,
    /// RTP packets of this track forwarded to the subscriber.
    pub forwarded_packets: u64,
}

/// What the SFU hands a recorder ([`SfuHandle::record`](crate::SfuHandle::record)).
#[derive(Debug, Clone)]
pub enum RecorderFeed {
    /// A packet of a published track, as the publisher sent it.
    Packet(RecordedPacket),
    /// A track is no longer published (its publisher left, rejoined or dropped).
    TrackEnded {
        /// The publisher.
        participant: String,
        /// The track.
        track: TrackId,
    },
}

/// A received RTP packet of a published track, copied for the recorder before forwarding.
/// Of a simulcast track only the highest layer flowing is recorded (a browser may stop sending
/// its top layer when its uplink or CPU cannot keep up).
#[derive(Debug, Clone)]
pub struct RecordedPacket {
    /// The publisher (shared by its packets, not copied).
    pub participant: std::sync::Arc<str>,
    /// The track.
    pub track: TrackId,
    /// `audio`, `video`, then `screen` for the publisher's second video (its screen share),
    /// `video-3`, `audio-2`… for any further ones.
    pub label: std::sync::Arc<str>,
    /// Audio or video.
    pub kind: MediaKind,
    /// The payload's codec, as negotiated.
    pub codec: str0m::format::Codec,
    /// The codec's RTP clock rate.
    pub clock_rate: u32,
    /// Audio channels, as negotiated.
    pub channels: Option<u8>,
    /// RTP SSRC (a new one after the publisher reconnects).
    pub ssrc: u32,
    /// RTP sequence number.
    pub seq: u16,
    /// RTP timestamp.
    pub timestamp: u32,
    /// RTP marker bit.
    pub marker: bool,
    /// The payload, shared with the forwarded copies (not copied).
    pub payload: std::sync::Arc<[u8]>,
    /// When it arrived.
    pub arrival: std::time::Instant,
    /// The latest RTCP sender report of its stream: wall clock and RTP time of one instant.
    pub sender_report: Option<(std::time::SystemTime, u32)>,
}
