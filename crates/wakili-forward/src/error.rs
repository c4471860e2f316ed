//! Why the forwarder refused an input.

use crate::{ParticipantId, Rid, TrackId};

/// An input the [`Forwarder`](crate::Forwarder) refused; its state is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForwardError {
    /// The publisher already has the most tracks a participant may publish.
    #[error("{publisher} already publishes {max} tracks, the most allowed")]
    TooManyTracks {
        /// Who tried to publish one more.
        publisher: ParticipantId,
        /// The limit ([`ForwarderConfig::max_tracks_per_publisher`](crate::ForwarderConfig)).
        max: usize,
    },
    /// A track with this id is already published.
    #[error("{0} is already published")]
    DuplicateTrack(TrackId),
    /// No track with this id is published (never added, or removed).
    #[error("unknown {0}")]
    UnknownTrack(TrackId),
    /// An audio track was declared with simulcast layers.
    #[error("{0} is audio and cannot have simulcast layers")]
    AudioLayers(TrackId),
    /// No subscriber with this id was added.
    #[error("unknown subscriber: {0}")]
    UnknownSubscriber(ParticipantId),
    /// A participant tried to receive its own track back.
    #[error("{subscriber} cannot subscribe to its own {track}")]
    OwnTrack {
        /// The participant.
        subscriber: ParticipantId,
        /// Its own track.
        track: TrackId,
    },
    /// The subscriber is not subscribed to this track.
    #[error("{subscriber} is not subscribed to {track}")]
    NotSubscribed {
        /// The subscriber.
        subscriber: ParticipantId,
        /// The track.
        track: TrackId,
    },
    /// A packet or an override named a layer the track was not published with (`None`: no RID
    /// on a simulcast track, or a RID on a track without simulcast, or any layer on audio).
    #[error("{track} has no layer {rid:?}")]
    UnknownLayer {
        /// The track.
        track: TrackId,
        /// The layer named.
        rid: Option<Rid>,
    },
}
