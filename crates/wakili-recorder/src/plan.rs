//! The decisions that need no IO: what signaling asks for, which file a packet belongs to,
//! which codecs are recorded.

use std::{collections::HashMap, time::SystemTime};

use wakili_mux::Codec;
use wakili_sfu::{Codec as SdpCodec, MediaKind};

use crate::TrackKind;

/// A participant in the call.
pub use wakili_core::room::RecordedSeat as Seat;
/// A consultation's recording as its room decided it.
pub use wakili_core::room::ServerRecording as Plan;

/// One file: a user's track of one label. A participant who comes back (reload, new
/// connection) continues their files.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct FileKey {
    pub(crate) user_id: String,
    pub(crate) label: String,
}

/// Who is who, from the latest plan.
#[derive(Debug, Default)]
pub(crate) struct Roster {
    seats: HashMap<String, Seat>,
}

impl Roster {
    pub(crate) fn new(seats: Vec<Seat>) -> Self {
        let mut roster = Self::default();
        roster.update(seats);
        roster
    }

    /// Keeps participants who left: their last packets may still be on the way.
    pub(crate) fn update(&mut self, seats: Vec<Seat>) {
        for seat in seats {
            self.seats.insert(seat.participant_id.clone(), seat);
        }
    }

    /// The seat of the SFU participant `participant`, if signaling told us of it.
    pub(crate) fn seat(&self, participant: &str) -> Option<&Seat> {
        self.seats.get(participant)
    }

    /// The file a packet of `participant`'s track `label` goes to.
    pub(crate) fn file(&self, participant: &str, label: &str) -> Option<FileKey> {
        self.seat(participant).map(|seat| FileKey {
            user_id: seat.user_id.clone(),
            label: label.to_owned(),
        })
    }
}

/// How a negotiated codec is recorded: the muxer's codec and its name in the manifest, or
/// `None` when it cannot be written to WebM here (VP9, AV1 and H.264 are forwarded, not
/// recorded).
pub(crate) fn recordable(codec: SdpCodec, channels: Option<u8>) -> Option<(Codec, &'static str)> {
    match codec {
        SdpCodec::Vp8 => Some((Codec::Vp8, "vp8")),
        SdpCodec::Opus => Some((
            Codec::Opus {
                channels: channels.unwrap_or(2).clamp(1, 2),
            },
            "opus",
        )),
        _ => None,
    }
}

/// The track kind as storage names it.
pub(crate) fn kind(kind: MediaKind) -> TrackKind {
    match kind {
        MediaKind::Audio => TrackKind::Audio,
        MediaKind::Video => TrackKind::Video,
    }
}

/// Where a track starts in its session: its first media's wall-clock time and milliseconds
/// after the session's start. A track's timeline is placed from packet arrivals, so its first
/// media can fall before the session's start: media sent before the recording started that
/// reached the recorder after it (a few milliseconds, or hundreds on an overloaded server).
/// Storage refuses a negative offset, and the track would be lost with it: such a track
/// starts with the session.
pub(crate) fn track_start(session: SystemTime, first_media: SystemTime) -> (SystemTime, i64) {
    match first_media.duration_since(session) {
        Ok(d) => (
            first_media,
            i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        ),
        Err(_) => (session, 0),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use super::*;
    use wakili_core::ParticipantRole;

    fn seat(participant: &str, user: &str) -> Seat {
        Seat {
            participant_id: participant.into(),
            user_id: user.into(),
            role: ParticipantRole::Client,
        }
    }

    #[test]
    fn a_participant_who_comes_back_continues_their_files() {
        let mut roster = Roster::new(vec![seat("p1", "client-1")]);
        let before = roster.file("p1", "video").unwrap();
        // A reload without the resume token: a new participant id for the same user.
        roster.update(vec![seat("p2", "client-1")]);
        assert_eq!(roster.file("p2", "video").unwrap(), before);
        assert_ne!(roster.file("p2", "audio").unwrap(), before);
        assert_eq!(
            roster.file("p1", "video").unwrap(),
            before,
            "late packets of the old session still belong"
        );
        assert_eq!(roster.file("stranger", "video"), None);
    }

    #[test]
    fn only_vp8_and_opus_are_recorded() {
        assert_eq!(recordable(SdpCodec::Vp8, None).unwrap().1, "vp8");
        let (codec, name) = recordable(SdpCodec::Opus, Some(2)).unwrap();
        assert_eq!((codec, name), (Codec::Opus { channels: 2 }, "opus"));
        assert!(recordable(SdpCodec::Vp9, None).is_none());
        assert!(recordable(SdpCodec::H264, None).is_none());
    }

    #[test]
    fn a_track_starts_at_or_after_its_session() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let later = t + Duration::from_millis(1_500);
        assert_eq!(track_start(t, later), (later, 1_500));
        // Media sent before the session started: the track starts with the session.
        assert_eq!(track_start(t, t - Duration::from_millis(20)), (t, 0));
    }
}
