//! The merge's two decisions, kept apart from reading and writing so that they are tested on
//! their own: which input's block goes next, and whether it starts a new Cluster.

/// The Cluster being filled, as far as the policy cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OpenCluster {
    /// Its timecode (ms): the time of its first block.
    pub(crate) timecode: u64,
    /// Bytes of blocks in it.
    pub(crate) bytes: usize,
}

/// When the merged file starts a new Cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClusterPolicy {
    /// A Cluster spans at most this long (ms, at most `i16::MAX` so that every block's time
    /// relative to its Cluster fits a SimpleBlock).
    pub(crate) max_ms: u64,
    /// A Cluster is closed once it holds this many bytes (it is kept in memory until then).
    pub(crate) max_bytes: usize,
    /// The input whose keyframes start Clusters: the first video track, if any.
    pub(crate) lead_video: Option<usize>,
}

impl ClusterPolicy {
    /// Whether the block of input `input` at `time_ms` (never before the open Cluster's
    /// timecode: blocks come in time order) opens a new Cluster.
    pub(crate) fn starts_cluster(
        &self,
        open: Option<OpenCluster>,
        input: usize,
        time_ms: u64,
        keyframe: bool,
    ) -> bool {
        let Some(open) = open else {
            return true;
        };
        let elapsed = time_ms.saturating_sub(open.timecode);
        elapsed > self.max_ms
            || open.bytes >= self.max_bytes
            || (keyframe && self.lead_video == Some(input) && time_ms > open.timecode)
    }
}

/// The input whose next block comes first: the earliest time, the lowest index among equal
/// times (so the merge is deterministic). `None` when every input is exhausted.
pub(crate) fn earliest(heads: impl IntoIterator<Item = Option<u64>>) -> Option<usize> {
    heads
        .into_iter()
        .enumerate()
        .filter_map(|(i, t)| Some((t?, i)))
        .min()
        .map(|(_, i)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: ClusterPolicy = ClusterPolicy {
        max_ms: 5_000,
        max_bytes: 1_000,
        lead_video: Some(1),
    };

    fn open(timecode: u64) -> Option<OpenCluster> {
        Some(OpenCluster {
            timecode,
            bytes: 10,
        })
    }

    #[test]
    fn the_earliest_head_goes_first_and_ties_go_to_the_lower_index() {
        assert_eq!(earliest([Some(40), Some(20), Some(30)]), Some(1));
        assert_eq!(earliest([None, Some(20), Some(20)]), Some(1));
        assert_eq!(earliest([Some(7), None, Some(7)]), Some(0));
        assert_eq!(earliest([None, None]), None);
        assert_eq!(earliest(std::iter::empty()), None);
    }

    #[test]
    fn interleaving_three_inputs_gives_one_nondecreasing_sequence() {
        let inputs: [Vec<u64>; 3] = [
            (0..90).map(|i| i * 100 / 3).collect(),
            (0..90).map(|i| 700 + i * 100 / 3).collect(),
            (0..150).map(|i| 1_200 + i * 20).collect(),
        ];
        let mut next = [0usize; 3];
        let mut merged = Vec::new();
        while let Some(i) = earliest((0..3).map(|i| inputs[i].get(next[i]).copied())) {
            merged.push((inputs[i][next[i]], i));
            next[i] += 1;
        }
        assert_eq!(merged.len(), 330);
        assert!(merged.windows(2).all(|w| w[0] <= w[1]), "{merged:?}");
    }

    #[test]
    fn the_first_block_opens_a_cluster() {
        assert!(POLICY.starts_cluster(None, 0, 1_234, false));
    }

    #[test]
    fn a_cluster_is_closed_past_its_duration_or_size() {
        assert!(!POLICY.starts_cluster(open(1_000), 0, 6_000, false));
        assert!(POLICY.starts_cluster(open(1_000), 0, 6_001, false));
        let full = Some(OpenCluster {
            timecode: 1_000,
            bytes: 1_000,
        });
        assert!(POLICY.starts_cluster(full, 0, 1_020, false));
    }

    #[test]
    fn a_keyframe_of_the_lead_video_starts_a_cluster_other_keyframes_do_not() {
        assert!(POLICY.starts_cluster(open(1_000), 1, 1_033, true));
        // Not the lead video, or not a keyframe: no cut.
        assert!(!POLICY.starts_cluster(open(1_000), 2, 1_033, true));
        assert!(!POLICY.starts_cluster(open(1_000), 1, 1_066, false));
        // Already at the Cluster's first instant (opened by another track's block at the
        // same time): the keyframe is its first frame anyway.
        assert!(!POLICY.starts_cluster(open(1_000), 1, 1_000, true));
        // Audio only: no lead video, clusters are cut by time alone.
        let audio = ClusterPolicy {
            lead_video: None,
            ..POLICY
        };
        assert!(!audio.starts_cluster(open(1_000), 0, 1_020, true));
    }
}
