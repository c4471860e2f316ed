//! Counters of what the muxer did with its input, for metrics and for the recording's
//! integrity report (what was left out of the file, and why).

/// What happened to a track's packets and frames so far. Every packet is counted once in
/// `packets_received` or `packets_refused`; every frame once in `frames_written` or one of
/// the `frames_*` drop reasons.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MuxStats {
    /// Packets taken into the reorder buffer (including duplicates and late ones).
    pub packets_received: u64,
    /// Packets refused by [`TrackMuxer::handle_rtp`](crate::TrackMuxer::handle_rtp).
    pub packets_refused: u64,
    /// Packets with an empty payload (padding): they fill their sequence number, carry no media.
    pub packets_padding: u64,
    /// Packets received twice (a retransmission of one that had arrived).
    pub packets_duplicate: u64,
    /// Packets that came after their loss had been declared.
    pub packets_late: u64,
    /// Sequence numbers that never arrived within the reorder window.
    pub packets_lost: u64,
    /// Frames written to the file.
    pub frames_written: u64,
    /// Keyframes among them.
    pub keyframes_written: u64,
    /// Video frames before the first keyframe (not decodable, so not written).
    pub frames_before_first_keyframe: u64,
    /// Video frames after a loss or a broken frame, before the next keyframe.
    pub frames_waiting_for_keyframe: u64,
    /// Frames with missing packets.
    pub frames_incomplete: u64,
    /// Frames whose payload did not parse (bad payload descriptor, bad keyframe header).
    pub frames_invalid: u64,
    /// Frames over [`MuxerConfig::max_frame_bytes`](crate::MuxerConfig).
    pub frames_too_large: u64,
    /// Keyframe requests emitted ([`Output::KeyframeWanted`](crate::Output)).
    pub keyframe_requests: u64,
    /// Chunks emitted.
    pub chunks: u64,
    /// Bytes in those chunks.
    pub bytes: u64,
    /// Times the timeline was re-anchored to arrival (restarts, unexplained pauses, timestamp
    /// jumps): each is a visible jump in timecodes.
    pub timeline_rebases: u64,
}

impl MuxStats {
    /// Frames not written, for whatever reason.
    pub fn frames_dropped(&self) -> u64 {
        self.frames_before_first_keyframe
            + self.frames_waiting_for_keyframe
            + self.frames_incomplete
            + self.frames_invalid
            + self.frames_too_large
    }
}
