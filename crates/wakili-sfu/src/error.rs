//! Why the SFU refused a request.

use crate::TrackId;

/// A request the SFU refused; nothing changed (a refused join leaves the room as it was,
/// including a session the same participant already had).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SfuError {
    /// The configuration cannot work.
    #[error("invalid SFU configuration: {0}")]
    InvalidConfig(String),
    /// The UDP (or ICE-TCP) socket could not be bound.
    #[error("cannot bind {addr}: {reason}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The operating system's reason.
        reason: String,
    },
    /// Bound to an unspecified address, no `public_ip` set, and no route to derive one from.
    #[error("cannot tell which IP address to advertise: set public_ip")]
    NoPublicIp,
    /// The SFU has stopped (shut down, or its task ended).
    #[error("the SFU has stopped")]
    Stopped,
    /// A room or participant name is empty, too long, or has characters outside
    /// `A-Z a-z 0-9 - _ .` (names travel in SDP `msid` lines, which allow no more).
    #[error("invalid {what} name {name:?}: 1 to 64 characters of A-Z a-z 0-9 - _ .")]
    InvalidName {
        /// `room` or `participant`.
        what: &'static str,
        /// The name given.
        name: String,
    },
    /// The SDP could not be parsed, or str0m refused it.
    #[error("invalid SDP: {0}")]
    InvalidSdp(String),
    /// The offer has media, but none in a codec this SFU accepts.
    #[error("no supported codec in the offer (accepted: {accepted})")]
    NoSupportedCodec {
        /// The codecs the SFU accepts, for the message.
        accepted: String,
    },
    /// The offer publishes more tracks than a participant may.
    #[error("the offer publishes {offered} tracks, at most {max} are allowed")]
    TooManyTracks {
        /// Tracks in the offer.
        offered: usize,
        /// The limit.
        max: usize,
    },
    /// A listen-only participant (an observer) offered to send media.
    #[error(
        "this participant may only listen, and the offer sends {offered} tracks: offer receive-only media or a data channel"
    )]
    ListenOnly {
        /// Tracks the offer sends.
        offered: usize,
    },
    /// A simulcast layer is not one of `q`, `h`, `f`.
    #[error("unsupported simulcast layer {0:?} (use q, h, f)")]
    UnsupportedLayer(String),
    /// The room already has the most participants allowed.
    #[error("room {room} is full ({max} participants)")]
    RoomFull {
        /// The room.
        room: String,
        /// The limit.
        max: usize,
    },
    /// No room with this name exists (nobody joined it, or everyone left).
    #[error("unknown room {0}")]
    UnknownRoom(String),
    /// The participant is not in the room.
    #[error("unknown participant {participant} in room {room}")]
    UnknownParticipant {
        /// The room.
        room: String,
        /// The participant.
        participant: String,
    },
    /// No track with this id is published in the room.
    #[error("unknown {0}")]
    UnknownTrack(TrackId),
    /// A participant cannot pause its own track: it does not receive it.
    #[error("{0} is the participant's own track")]
    OwnTrack(TrackId),
    /// An answer came for a participant the SFU has sent no offer to.
    #[error("no offer is awaiting an answer from this participant")]
    NoPendingOffer,
}
