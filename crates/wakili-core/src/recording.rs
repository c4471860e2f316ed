//! Consultation recordings: where a recording is in its life, who may do what with one, and
//! what an upload still lacks.

use serde::{Deserialize, Serialize};

use crate::consultation::Access;

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
}

/// Why a [`RecordingUse`] is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordingRefusal {
    /// The caller may not see the consultation: the recording must look as if it did not exist.
    Hidden,
    /// The caller sees it but may not do this; the message says who may.
    Forbidden(&'static str),
}

impl RecordingUse {
    /// Whether a caller with `access` to the recording's consultation may do this, where
    /// `is_uploader` says whether they started the recording (false before it exists).
    pub fn check(self, access: Access, is_uploader: bool) -> Result<(), RecordingRefusal> {
        if !access.can_view() {
            return Err(RecordingRefusal::Hidden);
        }
        match self {
            Self::Read if matches!(access, Access::Guest(_)) => Err(RecordingRefusal::Forbidden(
                "recordings are for the consultation's lawyer, its client and admins, not guests",
            )),
            Self::Read => Ok(()),
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
        for u in [Read, Start, Upload, Manage] {
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
        for u in [Read, Start, Manage] {
            assert!(!allowed(u, counsel, false), "a guest may not {u:?}");
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
