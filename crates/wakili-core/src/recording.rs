//! Consultation recordings: where a recording is in its life, who may do what with one, what
//! an upload still lacks, and what a server-side recording's tracks are.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{CoreError, ParticipantRole, consultation::Access};

/// Where a recording is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RecordingStatus {
    /// Chunks are arriving.
    Uploading,
    /// Its manifest is being written (after `complete`, or after its uploader vanished).
    Finalizing,
    /// Every chunk arrived; the manifest is signed.
    Completed,
    /// Finalized after its uploader vanished, with the chunks that arrived; the manifest lists
    /// the missing ones.
    Incomplete,
    /// Crypto-shredded: its data key is destroyed, nothing can be read any more.
    Deleted,
}

named!(RecordingStatus, field "status", "recording status" {
    Uploading => "uploading",
    Finalizing => "finalizing",
    Completed => "completed",
    Incomplete => "incomplete",
    Deleted => "deleted",
});

impl RecordingStatus {
    /// Whether the recording has a signed manifest and can be downloaded.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Incomplete)
    }
}

/// Who made a recording and how it is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RecordingKind {
    /// Recorded by the lawyer's browser and uploaded chunk by chunk.
    Upload,
    /// Recorded by the server (the SFU): a parent with no media of its own, one track per
    /// participant track; its id is the one signaling announced.
    Session,
    /// One participant track (audio, video or screen share) of a session: an ordinary
    /// recording with its own key, chunks and manifest, stored by the server's recorder.
    Track,
}

named!(RecordingKind, field "kind", "recording kind" {
    Upload => "upload",
    Session => "session",
    Track => "track",
});

impl RecordingKind {
    /// Whether the server recorded it (a session or one of its tracks).
    pub fn is_server(self) -> bool {
        self != Self::Upload
    }
}

/// What a track carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TrackKind {
    /// Sound.
    Audio,
    /// Pictures: a camera or a screen share (its label tells which).
    Video,
}

named!(TrackKind, field "kind", "track kind" {
    Audio => "audio",
    Video => "video",
});

/// Whose track a session's track recording holds and where it sits in the session's time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TrackMeta {
    /// The participant (connection) in the call that sent it.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 64))]
    pub participant_id: String,
    /// Their user id.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 64))]
    pub user_id: String,
    /// Their part in the consultation.
    pub role: ParticipantRole,
    /// Audio or video.
    pub kind: TrackKind,
    /// Which of their tracks: `audio`, `video`, `screen`, … (1–32 of `a-z`, `0-9`, `-`).
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = "^[a-z0-9-]{1,32}$", min_length = 1, max_length = 32)
    )]
    pub label: String,
    /// Its codec as recorded, e.g. `vp8` or `opus` (1–32 of `a-z`, `0-9`, `.`, `-`).
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = "^[a-z0-9.-]{1,32}$", min_length = 1, max_length = 32)
    )]
    pub codec: String,
    /// Wall-clock time of its first media.
    pub started_at: DateTime<Utc>,
    /// Milliseconds from the session's start to its first media (0 or more).
    #[cfg_attr(feature = "openapi", schema(minimum = 0))]
    pub start_offset_ms: i64,
}

impl TrackMeta {
    /// Checks what the recorder reports: ids 1–64 characters without control characters, the
    /// label and codec in their alphabets, the offset not negative.
    pub fn validate(&self) -> Result<(), CoreError> {
        let id = |field: &'static str, v: &str| {
            if v.is_empty() || v.chars().count() > 64 || v.chars().any(char::is_control) {
                Err(CoreError::invalid(field, "1 to 64 printable characters"))
            } else {
                Ok(())
            }
        };
        id("participantId", &self.participant_id)?;
        id("userId", &self.user_id)?;
        let word = |v: &str, extra: &[u8]| {
            (1..=32).contains(&v.len())
                && v.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || extra.contains(&b))
        };
        if !word(&self.label, b"-") {
            return Err(CoreError::invalid("label", "1 to 32 of a-z, 0-9 and -"));
        }
        if !word(&self.codec, b".-") {
            return Err(CoreError::invalid("codec", "1 to 32 of a-z, 0-9, . and -"));
        }
        if self.start_offset_ms < 0 {
            return Err(CoreError::invalid("startOffsetMs", "0 or more"));
        }
        Ok(())
    }
}

/// What a caller wants to do with a recording: the one place that says who may.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordingUse {
    /// See it, its manifest, and download it: its consultation's parties and admins (not
    /// invited guests).
    Read,
    /// Start storing the consultation's recording: its lawyer.
    Start,
    /// Send its chunks and complete it: the user who started it, and no one else.
    Upload,
    /// Shred it or put it under legal hold: admins.
    Manage,
    /// Download its media: whoever may read it. A session's download is the combined file
    /// remuxed from its tracks (a derivative; the track files are the evidence).
    Download,
}

/// Why a [`RecordingUse`] is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordingRefusal {
    /// The caller may not see the consultation: the recording must look as if it did not exist.
    Hidden,
    /// The caller sees it but may not do this; the message says who may.
    Forbidden(&'static str),
    /// Nobody uploads to a recording the server makes: its recorder stores the tracks.
    ServerRecording(&'static str),
}

impl RecordingUse {
    /// Whether a caller with `access` to the recording's consultation may do this, where
    /// `is_uploader` says whether they started the recording (false before it exists).
    pub fn check(self, access: Access, is_uploader: bool) -> Result<(), RecordingRefusal> {
        if !access.can_view() {
            return Err(RecordingRefusal::Hidden);
        }
        match self {
            Self::Read | Self::Download if matches!(access, Access::Guest(_)) => {
                Err(RecordingRefusal::Forbidden(
                    "recordings are for the consultation's lawyer, its client and admins, not guests",
                ))
            }
            Self::Read | Self::Download => Ok(()),
            Self::Start if access == Access::Lawyer => Ok(()),
            Self::Start => Err(RecordingRefusal::Forbidden(
                "only the consultation's lawyer records it",
            )),
            Self::Upload if is_uploader => Ok(()),
            Self::Upload => Err(RecordingRefusal::Forbidden(
                "only the lawyer who started the recording uploads it",
            )),
            Self::Manage if access == Access::Admin => Ok(()),
            Self::Manage => Err(RecordingRefusal::Forbidden(
                "only admins shred recordings or place legal holds",
            )),
        }
    }
}

impl RecordingUse {
    /// Whether this may be done with a recording of `kind` at all, whoever asks (checked after
    /// [`Self::check`], so a hidden recording stays hidden).
    pub fn fits(self, kind: RecordingKind) -> Result<(), RecordingRefusal> {
        match (self, kind) {
            (Self::Start | Self::Upload, RecordingKind::Session | RecordingKind::Track) => {
                Err(RecordingRefusal::ServerRecording(
                    "the server records this one: its recorder stores the tracks, nobody uploads to it",
                ))
            }
            _ => Ok(()),
        }
    }
}

/// What `complete` found about the chunks of an upload of `expected` chunks.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Completeness {
    /// Sequence numbers below `expected` that never arrived.
    pub missing: Vec<u32>,
    /// Sequence numbers at or above `expected` that did arrive.
    pub unexpected: Vec<u32>,
}

impl Completeness {
    /// Compares the stored chunks (`present`, any order) with the `expected` count.
    pub fn of(expected: u32, present: &[u32]) -> Self {
        let mut have = vec![false; expected as usize];
        let mut unexpected = Vec::new();
        for &seq in present {
            match have.get_mut(seq as usize) {
                Some(slot) => *slot = true,
                None => unexpected.push(seq),
            }
        }
        unexpected.sort_unstable();
        let missing = (0..expected).filter(|&seq| !have[seq as usize]).collect();
        Self {
            missing,
            unexpected,
        }
    }

    /// Whether exactly the chunks `0..expected` are there.
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn statuses_round_trip_through_their_names() {
        for status in [
            RecordingStatus::Uploading,
            RecordingStatus::Finalizing,
            RecordingStatus::Completed,
            RecordingStatus::Incomplete,
            RecordingStatus::Deleted,
        ] {
            assert_eq!(status.as_str().parse::<RecordingStatus>().unwrap(), status);
        }
        assert!("done".parse::<RecordingStatus>().is_err());
        assert!(RecordingStatus::Incomplete.is_final());
        assert!(!RecordingStatus::Finalizing.is_final());
    }

    #[test]
    fn who_may_do_what_with_a_recording() {
        use RecordingUse::*;
        let allowed = |u: RecordingUse, access, uploader| u.check(access, uploader).is_ok();
        for u in [Read, Start, Upload, Manage, Download] {
            assert_eq!(u.check(Access::None, true), Err(RecordingRefusal::Hidden));
        }
        for access in [Access::Client, Access::Lawyer, Access::Admin] {
            assert!(allowed(Read, access, false));
        }
        assert!(allowed(Start, Access::Lawyer, false));
        assert!(!allowed(Start, Access::Client, false));
        assert!(!allowed(Start, Access::Admin, false));
        assert!(allowed(Upload, Access::Lawyer, true));
        assert!(
            !allowed(Upload, Access::Lawyer, false),
            "another lawyer's upload"
        );
        assert!(!allowed(Upload, Access::Admin, false));
        assert!(allowed(Manage, Access::Admin, false));
        assert!(!allowed(Manage, Access::Lawyer, true));
        let counsel = Access::Guest(crate::GuestRole::Counsel);
        for u in [Read, Start, Manage, Download] {
            assert!(!allowed(u, counsel, false), "a guest may not {u:?}");
        }
    }

    #[test]
    fn server_recordings_take_no_uploads() {
        use RecordingUse::*;
        for u in [Read, Start, Upload, Manage, Download] {
            assert_eq!(u.fits(RecordingKind::Upload), Ok(()));
        }
        for kind in [RecordingKind::Session, RecordingKind::Track] {
            assert!(matches!(
                Upload.fits(kind),
                Err(RecordingRefusal::ServerRecording(_))
            ));
            assert!(kind.is_server());
        }
        assert_eq!(
            Download.fits(RecordingKind::Session),
            Ok(()),
            "the combined file"
        );
        assert_eq!(Download.fits(RecordingKind::Track), Ok(()));
        assert_eq!(Read.fits(RecordingKind::Session), Ok(()));
        assert_eq!(Manage.fits(RecordingKind::Session), Ok(()));
        assert_eq!(
            "track".parse::<RecordingKind>().unwrap(),
            RecordingKind::Track
        );
        assert_eq!(TrackKind::Audio.as_str(), "audio");
    }

    fn meta() -> TrackMeta {
        TrackMeta {
            participant_id: "p-1".into(),
            user_id: "lawyer-1".into(),
            role: ParticipantRole::Lawyer,
            kind: TrackKind::Video,
            label: "screen".into(),
            codec: "vp8".into(),
            started_at: DateTime::UNIX_EPOCH,
            start_offset_ms: 1500,
        }
    }

    #[test]
    fn track_meta_is_camel_case_and_checked() {
        let json = serde_json::to_value(meta()).unwrap();
        assert_eq!(json["participantId"], "p-1");
        assert_eq!(json["kind"], "video");
        assert_eq!(json["startOffsetMs"], 1500);
        assert_eq!(serde_json::from_value::<TrackMeta>(json).unwrap(), meta());
        assert!(meta().validate().is_ok());
        for bad in [
            TrackMeta {
                label: "Screen".into(),
                ..meta()
            },
            TrackMeta {
                label: String::new(),
                ..meta()
            },
            TrackMeta {
                label: "a".repeat(33),
                ..meta()
            },
            TrackMeta {
                codec: "vp 8".into(),
                ..meta()
            },
            TrackMeta {
                user_id: String::new(),
                ..meta()
            },
            TrackMeta {
                start_offset_ms: -1,
                ..meta()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn completeness_lists_gaps_and_extras() {
        let c = Completeness::of(5, &[4, 0, 2, 7]);
        assert_eq!(c.missing, vec![1, 3]);
        assert_eq!(c.unexpected, vec![7]);
        assert!(!c.is_complete());
        assert!(Completeness::of(3, &[2, 1, 0]).is_complete());
        assert!(Completeness::of(0, &[]).is_complete());
    }
}
