//! The recording core of Wakili's SFU, sans-IO: one track's RTP packets in, WebM chunks out,
//! without transcoding.
//!
//! The SFU receives each participant's RTP (str0m in RTP mode). For a recorded track it hands
//! every packet to a [`TrackMuxer`] with its arrival instant, together with the track's RTCP
//! sender reports. The muxer
//! - puts packets back in order in a small jitter buffer keyed by extended sequence number
//!   (bounded in packets and in time), and declares the ones that never come lost;
//! - reassembles frames (VP8 across packets, with str0m's depacketizer; one Opus packet is
//!   one frame) and throws away any frame with a missing packet: a corrupt frame is never
//!   written. Video then waits for the next keyframe, and so does a video track at its start;
//! - places each frame on the track's timeline in milliseconds: RTP time (extended across the
//!   32-bit wrap) within a stream, arrival time across a restart or a pause RTP time does not
//!   show, so that gaps stay gaps (see [`TimelineOrigin`] for aligning tracks);
//! - writes WebM: the EBML header, a Segment of unknown size (live WebM) and the Tracks, then
//!   Clusters of SimpleBlocks; and cuts it into chunks of about
//!   [`MuxerConfig::chunk_interval`]: audio at the first frame after the interval, video at
//!   the first keyframe after it, asking for that keyframe a little ahead
//!   ([`Output::KeyframeWanted`], to become a PLI). Every chunk is whole Clusters, so the
//!   chunks concatenated in order are one playable file, and every chunk after the first
//!   starts with a Cluster whose first frame is a keyframe whenever the publisher sends one
//!   in time.
//!
//! The muxer never reads the clock, touches a socket or a file; the caller passes instants
//! in and takes [`Output`]s out with [`TrackMuxer::poll_output`], like str0m.
//!
//! # Merging the tracks into one file
//!
//! The recording keeps one file per track (the evidence, never rewritten). [`merge`] makes
//! the derivative a person watches: several track files, each with its start offset on the
//! recording's timeline ([`MergeInput`]), remuxed into one multi-track WebM without
//! transcoding. It reads each input front to back, one element header and one block at a
//! time (any [`std::io::Read`]: a decrypting reader over stored chunks, a file), so memory is
//! one block per input plus the Cluster being written, whatever the length of the recording.
//! Each input's TrackEntry is copied as it is (`CodecPrivate`, Opus's `OpusHead`, included)
//! with a new `TrackNumber`/`TrackUID` and the input's name as `Name`; its blocks are placed
//! at offset + their time, gaps staying gaps, and the inputs' blocks are interleaved in time
//! order into Clusters cut at every keyframe of the first video track and at least every 5 s
//! ([`MergeConfig`]). The merger takes what `TrackMuxer` leaves in storage: chunks
//! concatenated, a file cut at or inside a chunk (an incomplete recording: merged up to its
//! last whole block, [`MergedTrack::truncated`]), a stream restart (a gap already in the
//! timecodes) and a recorder restart (another EBML header and Segment appended to the file,
//! placed by its `DateUTC`, which `TrackMuxer` sets to its timeline's origin). It refuses, with
//! an [`InputError`] naming the input, what is not WebM, an input with more than one track, a
//! codec other than VP8, VP9, AV1 or Opus, and time going back more than
//! [`MergeConfig::backwards_tolerance`]. The output written by [`merge`] must seek: the
//! Segment size, the Duration (the latest track end), a SeekHead, Cues (every video track's
//! keyframes) and each track's `DURATION` tag are filled in at the end, so players show the
//! length and seek at once. [`merge_live`] writes strictly forward instead (Segment of unknown
//! size, no Duration, no Cues: it plays, but a player finds the length and seek points only
//! by reading Clusters).
//!
//! # Why this muxer
//!
//! No Rust library writes live WebM in chunks of our choosing. `webm` 2.2 (libwebm through
//! `webm-sys`, C++) writes one whole file to one writer: in live mode it does write a Segment
//! of unknown size, but libwebm decides by itself where Clusters start (at every video
//! keyframe, otherwise after 30 s, a limit the crate does not let us change), so an audio
//! track could not be cut every few seconds, and a chunk boundary could only be found by
//! watching which bytes it happened to write when; it also brings C++ and `unsafe` FFI into
//! the media path. `webm-iterable`/`ebml-iterable` and `mkv-element` are pure-Rust EBML
//! readers and writers, not muxers. We use `mkv-element` 0.4 (MIT, elements generated from
//! the Matroska specification, unknown sizes supported) to encode every element, and compose
//! here (`webm.rs`, about 200 lines) the few a live WebM needs: the EBML header, a Segment of
//! unknown size, Info (with `DateUTC`), one TrackEntry, and Clusters built whole in memory so
//! that each is written with its size once sealed. Only the three bytes inside a SimpleBlock
//! (track number, relative timecode, flags) are written by hand, on the per-frame hot path.
//! Cues and Duration are left out, as in any live WebM: a chunk is never rewritten once
//! sealed, which is what encrypted, append-only evidence storage needs (ffprobe then reports
//! no container duration; stream and packet times are exact).
//!
//! # Not here
//!
//! Encryption and storage of chunks (`wakili-storage`), and sending the PLI. VP9, AV1 and
//! H.264 are not recorded yet (str0m 0.25 exposes no VP9 or AV1 depacketizer, and H.264 is
//! not a WebM codec); the merger already copies VP9 and AV1 tracks.

mod assemble;
mod config;
mod error;
mod merge;
mod muxer;
mod reorder;
mod seq;
mod stats;
mod timeline;
mod vp8;
mod webm;

pub use config::{Codec, MuxerConfig};
pub use error::MuxError;
pub use merge::{
    InputError, MergeConfig, MergeError, MergeInput, MergeStats, MergedTrack, merge, merge_live,
    merge_with,
};
pub use muxer::{Chunk, ChunkInfo, Output, RtpInput, TrackMuxer};
pub use stats::MuxStats;
pub use timeline::{SenderReport, TimelineOrigin};
