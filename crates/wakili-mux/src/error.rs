//! Why the muxer refused an input.

/// An input the [`TrackMuxer`](crate::TrackMuxer) refused. A refused packet leaves the
/// muxer's state unchanged and is counted in [`MuxStats::packets_refused`](crate::MuxStats).
#[derive(Debug, thiserror::Error)]
pub enum MuxError {
    /// A configuration value is out of range; the message names it.
    #[error("invalid muxer configuration: {0}")]
    InvalidConfig(&'static str),
    /// The packet is larger than [`MuxerConfig::max_packet_bytes`](crate::MuxerConfig): no
    /// RTP packet the SFU can receive over UDP is that large.
    #[error("RTP payload of {len} bytes exceeds the limit of {max} bytes")]
    PacketTooLarge {
        /// The payload's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The packet arrived after [`TrackMuxer::finish`](crate::TrackMuxer::finish): the last
    /// chunk is already sealed.
    #[error("the recording of this track is finished")]
    Finished,
    /// Writing a Matroska element failed. Only values out of EBML's range cause this, which the
    /// muxer's own limits rule out; it is reported rather than hidden.
    #[error("writing a Matroska element failed: {0}")]
    Container(#[from] mkv_element::Error),
}
