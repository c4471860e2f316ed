//! Consultation recordings: where a recording is in its life, and what an upload still lacks.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::CoreError;

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

impl RecordingStatus {
    /// The status as the API and database spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Uploading => "uploading",
            Self::Finalizing => "finalizing",
            Self::Completed => "completed",
            Self::Incomplete => "incomplete",
            Self::Deleted => "deleted",
        }
    }

    /// Whether the recording has a signed manifest and can be downloaded.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Incomplete)
    }
}

impl fmt::Display for RecordingStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RecordingStatus {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "uploading" => Self::Uploading,
            "finalizing" => Self::Finalizing,
            "completed" => Self::Completed,
            "incomplete" => Self::Incomplete,
            "deleted" => Self::Deleted,
            other => {
                return Err(CoreError::invalid(
                    "status",
                    format!("unknown recording status {other:?}"),
                ));
            }
        })
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
    fn completeness_lists_gaps_and_extras() {
        let c = Completeness::of(5, &[4, 0, 2, 7]);
        assert_eq!(c.missing, vec![1, 3]);
        assert_eq!(c.unexpected, vec![7]);
        assert!(!c.is_complete());
        assert!(Completeness::of(3, &[2, 1, 0]).is_complete());
        assert!(Completeness::of(0, &[]).is_complete());
    }
}
