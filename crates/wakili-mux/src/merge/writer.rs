//! Writes the merged WebM: EBML header, Segment, Info, Tracks, then Clusters built whole in
//! memory (one at a time) and written with their size; in the seekable layout, Cues at the
//! end and the Segment size, Duration and a SeekHead patched in place once known.

use std::io::{Seek, SeekFrom, Write};

use mkv_element::io::blocking_impl::WriteTo;
use mkv_element::prelude::*;

use super::MergeError;
use super::ebml::{self, id};
use super::interleave::OpenCluster;
use super::reader::InBlock;

/// Space reserved at the start of the Segment for the SeekHead (its 4 entries take at most
/// 89 bytes).
const SEEK_HEAD_SPACE: usize = 128;

const SEEK: u32 = 0x4DBB;
const SEEK_ID: u32 = 0x53AB;
const SEEK_POSITION: u32 = 0x53AC;
const CUE_POINT: u32 = 0xBB;
const CUE_TIME: u32 = 0xB3;
const CUE_TRACK_POSITIONS: u32 = 0xB7;
const CUE_TRACK: u32 = 0xF7;
const CUE_CLUSTER_POSITION: u32 = 0xF1;
const TAG: u32 = 0x7373;
const TARGETS: u32 = 0x63C0;
const TAG_TRACK_UID: u32 = 0x63C5;
const SIMPLE_TAG: u32 = 0x67C8;
const TAG_NAME: u32 = 0x45A3;
const TAG_STRING: u32 = 0x4487;

/// `HH:MM:SS.nnnnnnnnn`, the form of Matroska's `DURATION` tag.
fn tag_duration(ms: u64) -> String {
    let (s, ms) = (ms / 1000, ms % 1000);
    format!(
        "{:02}:{:02}:{:02}.{:03}000000",
        s / 3600,
        s / 60 % 60,
        s % 60,
        ms
    )
}

/// How the file is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// Sizes, Duration, Cues and SeekHead, patched at the end (the output can seek).
    Seekable,
    /// Live WebM: Segment of unknown size, no Duration, no Cues; written strictly forward.
    Live,
}

/// A cue: a keyframe of a cued track and the Cluster holding it.
#[derive(Debug, Clone, Copy)]
struct Cue {
    time_ms: u64,
    track: u64,
    cluster_at: u64,
}

pub(crate) struct Writer<W> {
    w: W,
    /// Where the output stood when the merge began (patches are relative to it).
    base: u64,
    pos: u64,
    layout: Layout,
    segment_size_at: u64,
    segment_data_at: u64,
    seek_head_at: u64,
    info_at: u64,
    tracks_at: u64,
    duration_at: u64,
    cluster: Vec<u8>,
    cluster_timecode: Option<u64>,
    cluster_at: u64,
    cue_tracks: Vec<u64>,
    /// The cued tracks already cued in the open Cluster.
    cued_this_cluster: Vec<u64>,
    cues: Vec<Cue>,
    clusters: u64,
}

fn element(out: &mut Vec<u8>, element: u32, body: &[u8]) {
    ebml::put_header(out, element, body.len() as u64);
    out.extend_from_slice(body);
}

impl<W: Write> Writer<W> {
    /// Writes everything before the first Cluster. `entries` are whole TrackEntry elements;
    /// `cue_tracks` are the track numbers whose keyframes are cued (the first keyframe of
    /// each in each Cluster).
    pub(crate) fn start(
        w: W,
        base: u64,
        layout: Layout,
        entries: &[Vec<u8>],
        date_utc: Option<i64>,
        cue_tracks: Vec<u64>,
    ) -> Result<Self, MergeError> {
        let mut writer = Self {
            w,
            base,
            pos: 0,
            layout,
            segment_size_at: 0,
            segment_data_at: 0,
            seek_head_at: 0,
            info_at: 0,
            tracks_at: 0,
            duration_at: 0,
            cluster: Vec::new(),
            cluster_timecode: None,
            cluster_at: 0,
            cue_tracks,
            cued_this_cluster: Vec::new(),
            cues: Vec::new(),
            clusters: 0,
        };
        let mut out = Vec::new();
        let mut header = Vec::new();
        EbmlVersion(1).write_to(&mut header)?;
        EbmlReadVersion(1).write_to(&mut header)?;
        EbmlMaxIdLength(4).write_to(&mut header)?;
        EbmlMaxSizeLength(8).write_to(&mut header)?;
        DocType("webm".into()).write_to(&mut header)?;
        DocTypeVersion(4).write_to(&mut header)?;
        DocTypeReadVersion(2).write_to(&mut header)?;
        element(&mut out, id::EBML, &header);

        ebml::put_id(&mut out, id::SEGMENT);
        writer.segment_size_at = out.len() as u64;
        match layout {
            Layout::Seekable => out.extend_from_slice(&ebml::UNKNOWN_SIZE_8),
            Layout::Live => out.push(0xFF),
        }
        writer.segment_data_at = out.len() as u64;
        if layout == Layout::Seekable {
            writer.seek_head_at = out.len() as u64;
            out.extend_from_slice(&ebml::void(SEEK_HEAD_SPACE));
        }

        let mut info = Vec::new();
        TimestampScale(1_000_000).write_to(&mut info)?;
        let mut duration_in_info = None;
        if layout == Layout::Seekable {
            // Eight bytes, so that it can be patched in place (mkv-element would pick four
            // when the value fits an f32).
            ebml::put_header(&mut info, id::DURATION, 8);
            duration_in_info = Some(info.len());
            info.extend_from_slice(&0f64.to_be_bytes());
        }
        if let Some(date) = date_utc {
            DateUtc(date).write_to(&mut info)?;
        }
        MuxingApp(concat!("wakili-mux ", env!("CARGO_PKG_VERSION"), " merge").into())
            .write_to(&mut info)?;
        WritingApp("wakili".into()).write_to(&mut info)?;
        writer.info_at = out.len() as u64;
        ebml::put_id(&mut out, id::INFO);
        ebml::put_vint(&mut out, info.len() as u64);
        if let Some(at) = duration_in_info {
            writer.duration_at = (out.len() + at) as u64;
        }
        out.extend_from_slice(&info);

        writer.tracks_at = out.len() as u64;
        element(&mut out, id::TRACKS, &entries.concat());
        writer.write(&out)?;
        Ok(writer)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), MergeError> {
        self.w.write_all(bytes).map_err(MergeError::Output)?;
        self.pos += bytes.len() as u64;
        Ok(())
    }

    /// The open Cluster, if any.
    pub(crate) fn open_cluster(&self) -> Option<OpenCluster> {
        Some(OpenCluster {
            timecode: self.cluster_timecode?,
            bytes: self.cluster.len(),
        })
    }

    /// Writes the open Cluster and closes it.
    fn seal(&mut self) -> Result<(), MergeError> {
        let Some(tc) = self.cluster_timecode.take() else {
            return Ok(());
        };
        let mut head = Vec::with_capacity(24);
        let mut timestamp = Vec::with_capacity(10);
        Timestamp(tc).write_to(&mut timestamp)?;
        ebml::put_header(
            &mut head,
            id::CLUSTER,
            (timestamp.len() + self.cluster.len()) as u64,
        );
        head.extend_from_slice(&timestamp);
        self.write(&head)?;
        let body = std::mem::take(&mut self.cluster);
        self.write(&body)?;
        self.cluster = body;
        self.cluster.clear();
        Ok(())
    }

    /// Adds `block` as track `track` at `time_ms`, in a new Cluster if `new_cluster` (or if
    /// its time does not fit the open one).
    pub(crate) fn add(
        &mut self,
        track: u64,
        time_ms: u64,
        block: &InBlock,
        new_cluster: bool,
    ) -> Result<(), MergeError> {
        let fits = self
            .cluster_timecode
            .and_then(|tc| i16::try_from(time_ms.checked_sub(tc)?).ok());
        let relative = match fits {
            Some(relative) if !new_cluster => relative,
            _ => {
                self.seal()?;
                self.cluster_timecode = Some(time_ms);
                self.cluster_at = self.pos - self.segment_data_at;
                self.cued_this_cluster.clear();
                self.clusters += 1;
                0
            }
        };
        if block.keyframe
            && self.cue_tracks.contains(&track)
            && !self.cued_this_cluster.contains(&track)
        {
            self.cues.push(Cue {
                time_ms,
                track,
                cluster_at: self.cluster_at,
            });
            self.cued_this_cluster.push(track);
        }
        let mut head = Vec::with_capacity(16);
        ebml::put_vint(&mut head, track);
        head.extend_from_slice(&relative.to_be_bytes());
        head.push(block.flags);
        let block_len = (head.len() + block.frame.len()) as u64;
        match &block.group {
            None => ebml::put_header(&mut self.cluster, id::SIMPLE_BLOCK, block_len),
            Some(rest) => {
                let mut block_header = Vec::with_capacity(12);
                ebml::put_header(&mut block_header, id::BLOCK, block_len);
                let group_len = block_header.len() as u64 + block_len + rest.len() as u64;
                ebml::put_header(&mut self.cluster, id::BLOCK_GROUP, group_len);
                self.cluster.extend_from_slice(&block_header);
            }
        }
        self.cluster.extend_from_slice(&head);
        self.cluster.extend_from_slice(&block.frame);
        if let Some(rest) = &block.group {
            self.cluster.extend_from_slice(rest);
        }
        Ok(())
    }

    /// Clusters opened so far.
    pub(crate) fn clusters(&self) -> u64 {
        self.clusters
    }

    /// Ends a live file. Returns the bytes written.
    pub(crate) fn finish_live(mut self) -> Result<(u64, u64), MergeError> {
        self.seal()?;
        self.w.flush().map_err(MergeError::Output)?;
        Ok((self.pos, 0))
    }
}

impl<W: Write + Seek> Writer<W> {
    /// Ends a seekable file: Cues and Tags (each track's `DURATION`: the end of its last
    /// block, as `(TrackUID, ms)`), then the Segment size, Duration and SeekHead patched in.
    /// Returns the bytes written and the cue points (one per instant cued).
    pub(crate) fn finish_seekable(
        mut self,
        duration_ms: u64,
        track_ends: &[(u64, u64)],
    ) -> Result<(u64, u64), MergeError> {
        debug_assert_eq!(self.layout, Layout::Seekable);
        self.seal()?;
        let mut cue_points = 0;
        let cues_at = if self.cues.is_empty() {
            None
        } else {
            let mut points = Vec::with_capacity(self.cues.len() * 20);
            // Cues come in time order; those of one instant share a CuePoint.
            for same_time in self.cues.chunk_by(|a, b| a.time_ms == b.time_ms) {
                let mut point = Vec::with_capacity(12 + 16 * same_time.len());
                ebml::put_uint(&mut point, CUE_TIME, same_time[0].time_ms);
                for cue in same_time {
                    let mut positions = Vec::with_capacity(16);
                    ebml::put_uint(&mut positions, CUE_TRACK, cue.track);
                    ebml::put_uint(&mut positions, CUE_CLUSTER_POSITION, cue.cluster_at);
                    element(&mut point, CUE_TRACK_POSITIONS, &positions);
                }
                element(&mut points, CUE_POINT, &point);
                cue_points += 1;
            }
            let mut cues = Vec::with_capacity(points.len() + 12);
            element(&mut cues, id::CUES, &points);
            let at = self.pos - self.segment_data_at;
            self.write(&cues)?;
            Some(at)
        };
        let tags_at = if track_ends.is_empty() {
            None
        } else {
            let mut tags = Vec::with_capacity(track_ends.len() * 64);
            for (uid, end_ms) in track_ends {
                let mut targets = Vec::with_capacity(12);
                ebml::put_uint(&mut targets, TAG_TRACK_UID, *uid);
                let mut simple = Vec::with_capacity(40);
                element(&mut simple, TAG_NAME, b"DURATION");
                element(&mut simple, TAG_STRING, tag_duration(*end_ms).as_bytes());
                let mut tag = Vec::with_capacity(64);
                element(&mut tag, TARGETS, &targets);
                element(&mut tag, SIMPLE_TAG, &simple);
                element(&mut tags, TAG, &tag);
            }
            let mut element_bytes = Vec::with_capacity(tags.len() + 12);
            element(&mut element_bytes, id::TAGS, &tags);
            let at = self.pos - self.segment_data_at;
            self.write(&element_bytes)?;
            Some(at)
        };
        let end = self.pos;

        let mut seek_head = Vec::with_capacity(SEEK_HEAD_SPACE);
        let mut seeks = Vec::with_capacity(80);
        let targets = [
            Some((id::INFO, self.info_at - self.segment_data_at)),
            Some((id::TRACKS, self.tracks_at - self.segment_data_at)),
            cues_at.map(|at| (id::CUES, at)),
            tags_at.map(|at| (id::TAGS, at)),
        ];
        for (target, at) in targets.into_iter().flatten() {
            let mut seek = Vec::with_capacity(24);
            element(&mut seek, SEEK_ID, &target.to_be_bytes());
            ebml::put_uint(&mut seek, SEEK_POSITION, at);
            element(&mut seeks, SEEK, &seek);
        }
        element(&mut seek_head, id::SEEK_HEAD, &seeks);
        seek_head.extend_from_slice(&ebml::void(SEEK_HEAD_SPACE - seek_head.len()));

        let patches: [(u64, &[u8]); 3] = [
            (
                self.segment_size_at,
                &ebml::size_8(end - self.segment_data_at),
            ),
            (self.duration_at, &(duration_ms as f64).to_be_bytes()),
            (self.seek_head_at, &seek_head),
        ];
        for (at, bytes) in patches {
            self.w
                .seek(SeekFrom::Start(self.base + at))
                .and_then(|_| self.w.write_all(bytes))
                .map_err(MergeError::Output)?;
        }
        self.w
            .seek(SeekFrom::Start(self.base + end))
            .and_then(|_| self.w.flush())
            .map_err(MergeError::Output)?;
        Ok((end, cue_points))
    }
}

#[cfg(test)]
mod tests {
    use super::tag_duration;

    #[test]
    fn durations_are_written_as_matroska_tags_write_them() {
        assert_eq!(tag_duration(0), "00:00:00.000000000");
        assert_eq!(tag_duration(4_221), "00:00:04.221000000");
        assert_eq!(tag_duration(3_723_004), "01:02:03.004000000");
    }
}
