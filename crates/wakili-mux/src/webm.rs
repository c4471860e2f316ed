//! The few Matroska elements a live WebM recording needs, written with `mkv-element`'s typed
//! elements (IDs and encodings generated from the Matroska specification).

use std::time::{Duration, SystemTime};

use mkv_element::io::blocking_impl::WriteTo;
use mkv_element::prelude::*;

use crate::MuxError;

/// Matroska's epoch for `DateUTC`: 2001-01-01T00:00:00 UTC, in seconds after the Unix epoch.
const MATROSKA_EPOCH_UNIX_SECS: u64 = 978_307_200;

/// What the `TrackEntry` says about the one track of the file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TrackParams {
    /// A video track.
    Video {
        codec_id: &'static str,
        width: u16,
        height: u16,
    },
    /// An audio track.
    Audio {
        codec_id: &'static str,
        channels: u8,
        sample_rate: u32,
        codec_private: Vec<u8>,
        seek_pre_roll: Duration,
    },
}

/// Writes `id` with the children `body` writes, its size computed.
fn master(
    out: &mut Vec<u8>,
    id: VInt64,
    body: impl FnOnce(&mut Vec<u8>) -> Result<(), MuxError>,
) -> Result<(), MuxError> {
    let mut children = Vec::new();
    body(&mut children)?;
    Header {
        id,
        size: VInt64::new(children.len() as u64),
    }
    .write_to(out)?;
    out.extend_from_slice(&children);
    Ok(())
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Writes the EBML header, the start of a live Segment (unknown size: it ends where the
/// bytes end), its Info and its Tracks with one `TrackEntry` (number 1).
pub(crate) fn write_header(
    out: &mut Vec<u8>,
    track_uid: u64,
    params: &TrackParams,
    start: SystemTime,
) -> Result<(), MuxError> {
    master(out, Ebml::ID, |b| {
        EbmlVersion(1).write_to(b)?;
        EbmlReadVersion(1).write_to(b)?;
        EbmlMaxIdLength(4).write_to(b)?;
        EbmlMaxSizeLength(8).write_to(b)?;
        DocType("webm".into()).write_to(b)?;
        DocTypeVersion(4).write_to(b)?;
        DocTypeReadVersion(2).write_to(b)?;
        Ok(())
    })?;
    Header {
        id: Segment::ID,
        size: VInt64::new_unknown(),
    }
    .write_to(out)?;
    master(out, Info::ID, |b| {
        // Timecodes in milliseconds.
        TimestampScale(1_000_000).write_to(b)?;
        MuxingApp(concat!("wakili-mux ", env!("CARGO_PKG_VERSION")).into()).write_to(b)?;
        WritingApp("wakili".into()).write_to(b)?;
        let since = start
            .duration_since(SystemTime::UNIX_EPOCH + Duration::from_secs(MATROSKA_EPOCH_UNIX_SECS))
            .unwrap_or_default();
        DateUtc(i64::try_from(since.as_nanos()).unwrap_or(i64::MAX)).write_to(b)?;
        Ok(())
    })?;
    master(out, Tracks::ID, |b| {
        master(b, TrackEntry::ID, |t| {
            TrackNumber(1).write_to(t)?;
            TrackUid(track_uid).write_to(t)?;
            FlagLacing(0).write_to(t)?;
            match params {
                TrackParams::Video {
                    codec_id,
                    width,
                    height,
                } => {
                    TrackType(1).write_to(t)?;
                    CodecId((*codec_id).into()).write_to(t)?;
                    master(t, Video::ID, |v| {
                        PixelWidth(u64::from(*width)).write_to(v)?;
                        PixelHeight(u64::from(*height)).write_to(v)?;
                        Ok(())
                    })?;
                }
                TrackParams::Audio {
                    codec_id,
                    channels,
                    sample_rate,
                    codec_private,
                    seek_pre_roll,
                } => {
                    TrackType(2).write_to(t)?;
                    CodecId((*codec_id).into()).write_to(t)?;
                    if !codec_private.is_empty() {
                        CodecPrivate(codec_private.clone().into()).write_to(t)?;
                    }
                    SeekPreRoll(nanos(*seek_pre_roll)).write_to(t)?;
                    master(t, Audio::ID, |a| {
                        SamplingFrequency(f64::from(*sample_rate)).write_to(a)?;
                        Channels(u64::from(*channels)).write_to(a)?;
                        Ok(())
                    })?;
                }
            }
            Ok(())
        })
    })
}

/// The `OpusHead` identification header (RFC 7845 §5.1) that Matroska carries as the Opus
/// track's `CodecPrivate`. WebRTC streams have no pre-skip to declare.
pub(crate) fn opus_head(channels: u8) -> Vec<u8> {
    let mut head = Vec::with_capacity(19);
    head.extend_from_slice(b"OpusHead");
    head.push(1); // version
    head.push(channels);
    head.extend_from_slice(&0u16.to_le_bytes()); // pre-skip
    head.extend_from_slice(&48_000u32.to_le_bytes()); // input sample rate
    head.extend_from_slice(&0i16.to_le_bytes()); // output gain
    head.push(0); // channel mapping family: mono or stereo
    head
}

/// One Cluster being filled: its blocks are kept until it is sealed, so that it can be
/// written with its size known.
#[derive(Debug, Default)]
pub(crate) struct ClusterBuilder {
    body: Vec<u8>,
    timecode: Option<u64>,
}

impl ClusterBuilder {
    /// The open cluster's timecode, `None` when no cluster is open.
    pub(crate) fn timecode(&self) -> Option<u64> {
        self.timecode
    }

    /// Bytes of blocks in the open cluster.
    pub(crate) fn len(&self) -> usize {
        self.body.len()
    }

    /// Opens a cluster at `timecode` (ms).
    pub(crate) fn open(&mut self, timecode: u64) {
        self.body.clear();
        self.timecode = Some(timecode);
    }

    /// `ms` relative to the open cluster's timecode, when a block can express it (i16).
    pub(crate) fn relative(&self, ms: u64) -> Option<i16> {
        let tc = self.timecode?;
        i16::try_from(ms.checked_sub(tc)?).ok()
    }

    /// Appends a SimpleBlock for track 1, `relative` ms after the cluster's timecode.
    pub(crate) fn add_block(
        &mut self,
        relative: i16,
        keyframe: bool,
        data: &[u8],
    ) -> Result<(), MuxError> {
        Header {
            id: SimpleBlock::ID,
            size: VInt64::new(4 + data.len() as u64),
        }
        .write_to(&mut self.body)?;
        self.body.push(0x81); // track number 1 as an EBML varint
        self.body.extend_from_slice(&relative.to_be_bytes());
        self.body.push(if keyframe { 0x80 } else { 0x00 });
        self.body.extend_from_slice(data);
        Ok(())
    }

    /// Writes the open cluster (if any) to `out` and closes it.
    pub(crate) fn seal_into(&mut self, out: &mut Vec<u8>) -> Result<(), MuxError> {
        let Some(tc) = self.timecode.take() else {
            return Ok(());
        };
        let mut timestamp = Vec::with_capacity(10);
        Timestamp(tc).write_to(&mut timestamp)?;
        Header {
            id: Cluster::ID,
            size: VInt64::new((timestamp.len() + self.body.len()) as u64),
        }
        .write_to(out)?;
        out.extend_from_slice(&timestamp);
        out.extend_from_slice(&self.body);
        self.body.clear();
        Ok(())
    }
}
