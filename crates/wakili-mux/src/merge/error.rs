//! Why a merge was refused.

/// A merge that could not be made. Nothing written before the error is a usable file.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// No input was given.
    #[error("nothing to merge: no input")]
    NoInputs,
    /// A [`MergeConfig`](crate::MergeConfig) value is out of range; the message names it.
    #[error("invalid merge configuration: {0}")]
    InvalidConfig(&'static str),
    /// One input was refused (or could not be read); `index` is its place in the list.
    #[error("input {index} ({name:?}): {error}")]
    Input {
        /// The input's place in the list given to the merge.
        index: usize,
        /// Its [`MergeInput::name`](crate::MergeInput::name).
        name: String,
        /// What is wrong with it.
        #[source]
        error: InputError,
    },
    /// Writing the merged file failed.
    #[error("writing the merged file failed: {0}")]
    Output(#[source] std::io::Error),
    /// Encoding a Matroska element failed (a value out of EBML's range).
    #[error("writing a Matroska element failed: {0}")]
    Container(#[from] mkv_element::Error),
}

/// What is wrong with one input of a merge.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// Reading it failed.
    #[error("read failed: {0}")]
    Io(#[source] std::io::Error),
    /// It is not a WebM file (no EBML header, or another `DocType`).
    #[error("not a WebM file: {0}")]
    NotWebm(String),
    /// Its EBML structure is broken where it cannot be skipped; the message says where.
    #[error("malformed WebM: {0}")]
    Malformed(&'static str),
    /// It ended before its track was described (a truncated header). An input that ends in
    /// the middle of its Clusters is not refused: it is merged up to its last whole block
    /// ([`MergedTrack::truncated`](crate::MergedTrack::truncated)).
    #[error("ends before its track is described")]
    Truncated,
    /// Its Tracks element describes no track.
    #[error("describes no track")]
    NoTrack,
    /// It has more than one track: the merger takes the one-track files `TrackMuxer` writes.
    #[error("has {count} tracks; one track per input is expected")]
    MultipleTracks {
        /// How many tracks it describes.
        count: usize,
    },
    /// Its codec is not one WebM can carry without transcoding (`V_VP8`, `V_VP9`, `V_AV1`,
    /// `A_OPUS`), or the track type does not match it.
    #[error("unsupported codec {codec_id:?}")]
    UnsupportedCodec {
        /// The track's `CodecID`.
        codec_id: String,
    },
    /// A later Segment of the same input (a recording restarted into the same file) has
    /// another codec than the first.
    #[error("track changes codec from {from:?} to {to:?} in a later segment")]
    TrackChanged {
        /// The first Segment's codec.
        from: String,
        /// The later Segment's codec.
        to: String,
    },
    /// A block's time is earlier than an earlier block's by more than
    /// [`MergeConfig::backwards_tolerance`](crate::MergeConfig::backwards_tolerance).
    #[error("timestamps go back from {previous_ms} ms to {at_ms} ms")]
    TimestampsBackwards {
        /// The block's time on the input's timeline (ms).
        at_ms: i64,
        /// The latest time seen before it (ms).
        previous_ms: i64,
    },
    /// An element is larger than the merger holds in memory (a block over
    /// [`MergeConfig::max_block_bytes`](crate::MergeConfig::max_block_bytes), a header element
    /// over 1 MiB).
    #[error("element {id:#x} of {size} bytes exceeds the limit of {limit} bytes")]
    ElementTooLarge {
        /// Its EBML ID.
        id: u32,
        /// Its size.
        size: u64,
        /// The limit.
        limit: usize,
    },
}
