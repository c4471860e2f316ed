//! Reads one input track file incrementally: one element header at a time, one block at a
//! time, so memory stays at one block whatever the file's size.
//!
//! What it accepts is what `TrackMuxer` writes and what happens to it in storage: an EBML
//! header and a Segment (of unknown size) with Info, one TrackEntry and Clusters; chunks
//! concatenated; a file cut at a chunk boundary or in the middle of one; and a recording that
//! was restarted into the same file, which appends another EBML header and Segment. A later
//! Segment is placed by its `DateUTC` relative to the first one's (`TrackMuxer` writes its
//! timeline's origin there), so the time between the two recordings stays a gap. It also
//! takes what other WebM writers add (SeekHead, Cues, Tags, Void, CRC-32, known sizes,
//! BlockGroups) by skipping or copying it.

use std::io::{ErrorKind, Read};

use mkv_element::prelude::{Element, TrackEntry};

use super::InputError;
use super::ebml::{self, id};

/// Largest header element (EBML header, Info, Tracks) read into memory.
const MAX_HEADER_ELEMENT: usize = 1 << 20;

/// Codecs the merged WebM may carry, with the track type each must have.
const CODECS: [(&str, u64); 4] = [("V_VP8", 1), ("V_VP9", 1), ("V_AV1", 1), ("A_OPUS", 2)];

/// The input's track, as its first Segment describes it.
#[derive(Debug, Clone)]
pub(crate) struct TrackInfo {
    /// `CodecID`.
    pub(crate) codec_id: String,
    /// Whether it is a video track.
    pub(crate) video: bool,
    /// The TrackEntry's children as they are in the file, except TrackNumber, TrackUID and
    /// Name (the merger writes its own), CRC-32 and Void.
    pub(crate) children: Vec<u8>,
    /// The first Segment's `DateUTC` (ns after 2001-01-01), if it has one.
    pub(crate) date_utc: Option<i64>,
}

/// One block of the input, ready to be rewritten for the merged file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InBlock {
    /// Its time on the input's timeline (ms, never below the previous block's).
    pub(crate) time_ms: u64,
    /// Whether it can be decoded on its own.
    pub(crate) keyframe: bool,
    /// The flags byte of its (Simple)Block.
    pub(crate) flags: u8,
    /// The frame data (laced frames included), after the block header (track number,
    /// relative timecode, flags).
    pub(crate) frame: Vec<u8>,
    /// For a BlockGroup: its other children (BlockDuration rescaled to ms, ReferenceBlock,
    /// …) as bytes; `None` for a SimpleBlock.
    pub(crate) group: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Copy)]
struct ElementHeader {
    id: u32,
    /// `None`: unknown size.
    size: Option<u64>,
    /// Where its body starts.
    body_at: u64,
}

impl ElementHeader {
    fn end(&self) -> Option<u64> {
        self.size.map(|s| self.body_at.saturating_add(s))
    }
}

enum Step {
    Tracks,
    Block(InBlock),
    More,
    End,
}

/// Reading limits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_block_bytes: usize,
    pub(crate) backwards_tolerance_ms: u64,
}

/// Reads one input.
pub(crate) struct InputReader<R> {
    r: R,
    pos: u64,
    limits: Limits,
    peeked: Option<ElementHeader>,
    /// `Some(end)` inside a Segment (`end` `None`: unknown size).
    segment: Option<Option<u64>>,
    /// `Some(end)` inside a Cluster.
    cluster: Option<Option<u64>>,
    cluster_timecode: Option<i64>,
    seen_ebml: bool,
    scale_ns: u64,
    segment_base_ms: i64,
    segment_track_number: Option<u64>,
    pending_date: Option<i64>,
    track: Option<TrackInfo>,
    segments: u32,
    truncated: bool,
    done: bool,
    last_ms: Option<u64>,
    clamped: u64,
}

fn io_error(e: std::io::Error) -> InputError {
    if e.kind() == ErrorKind::UnexpectedEof {
        InputError::Truncated
    } else {
        InputError::Io(e)
    }
}

impl<R: Read> InputReader<R> {
    /// Reads up to and including the first Tracks.
    pub(crate) fn open(r: R, limits: Limits) -> Result<Self, InputError> {
        let mut reader = Self {
            r,
            pos: 0,
            limits,
            peeked: None,
            segment: None,
            cluster: None,
            cluster_timecode: None,
            seen_ebml: false,
            scale_ns: 1_000_000,
            segment_base_ms: 0,
            segment_track_number: None,
            pending_date: None,
            track: None,
            segments: 0,
            truncated: false,
            done: false,
            last_ms: None,
            clamped: 0,
        };
        loop {
            match reader.step()? {
                Step::Tracks => return Ok(reader),
                Step::More => {}
                Step::Block(_) => return Err(InputError::Malformed("a block before Tracks")),
                Step::End if reader.segments == 0 => {
                    return Err(InputError::NotWebm("no Segment".into()));
                }
                Step::End => return Err(InputError::Truncated),
            }
        }
    }

    /// The track, as the first Segment describes it.
    pub(crate) fn track(&self) -> &TrackInfo {
        // `open` only returns once the track is known.
        self.track.as_ref().unwrap_or_else(|| unreachable!())
    }

    /// Segments read so far.
    pub(crate) fn segments(&self) -> u32 {
        self.segments
    }

    /// Whether the input ended in the middle of an element.
    pub(crate) fn truncated(&self) -> bool {
        self.truncated
    }

    /// Blocks moved forward to the previous block's time (backwards within tolerance).
    pub(crate) fn clamped(&self) -> u64 {
        self.clamped
    }

    /// The next block, `None` at the end of the input (or where it was cut).
    pub(crate) fn next_block(&mut self) -> Result<Option<InBlock>, InputError> {
        while !self.done {
            match self.step() {
                Ok(Step::Block(b)) => return Ok(Some(b)),
                Ok(Step::Tracks | Step::More) => {}
                Ok(Step::End) => self.done = true,
                Err(InputError::Truncated) => {
                    self.truncated = true;
                    self.done = true;
                }
                Err(e) => {
                    self.done = true;
                    return Err(e);
                }
            }
        }
        Ok(None)
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), InputError> {
        self.r.read_exact(buf).map_err(io_error)?;
        self.pos += buf.len() as u64;
        Ok(())
    }

    /// The next element header; `None` at a clean end of input (between elements).
    fn next_header(&mut self) -> Result<Option<ElementHeader>, InputError> {
        if let Some(h) = self.peeked.take() {
            return Ok(Some(h));
        }
        let mut first = [0u8; 1];
        loop {
            match self.r.read(&mut first) {
                Ok(0) => return Ok(None),
                Ok(_) => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(InputError::Io(e)),
            }
        }
        self.pos += 1;
        let mut buf = [0u8; 12];
        buf[0] = first[0];
        let id_len = ebml::vint_len(first[0])
            .filter(|l| *l <= 4)
            .ok_or(InputError::Malformed("invalid element ID"))?;
        self.read_exact(&mut buf[1..=id_len])?;
        let size_len = ebml::vint_len(buf[id_len]).ok_or(InputError::Malformed("invalid size"))?;
        self.read_exact(&mut buf[id_len + 1..id_len + size_len])?;
        let (id, size, _) = ebml::read_header(&buf[..id_len + size_len])
            .ok_or(InputError::Malformed("invalid element header"))?;
        Ok(Some(ElementHeader {
            id,
            size,
            body_at: self.pos,
        }))
    }

    fn read_body(&mut self, h: &ElementHeader, limit: usize) -> Result<Vec<u8>, InputError> {
        let size = h
            .size
            .ok_or(InputError::Malformed("unknown size where a size is needed"))?;
        if size > limit as u64 {
            return Err(InputError::ElementTooLarge {
                id: h.id,
                size,
                limit,
            });
        }
        let mut body = vec![0; size as usize];
        self.read_exact(&mut body)?;
        Ok(body)
    }

    fn skip(&mut self, h: &ElementHeader) -> Result<(), InputError> {
        let size = h
            .size
            .ok_or(InputError::Malformed("unknown size where a size is needed"))?;
        let copied =
            std::io::copy(&mut (&mut self.r).take(size), &mut std::io::sink()).map_err(io_error)?;
        self.pos += copied;
        if copied < size {
            return Err(InputError::Truncated);
        }
        Ok(())
    }

    fn step(&mut self) -> Result<Step, InputError> {
        // Leave the elements whose known size is used up.
        if let Some(Some(end)) = self.cluster
            && self.pos >= end
        {
            self.cluster = None;
        }
        if self.cluster.is_none()
            && let Some(Some(end)) = self.segment
            && self.pos >= end
        {
            self.segment = None;
        }
        let Some(h) = self.next_header()? else {
            let open_known =
                matches!(self.cluster, Some(Some(_))) || matches!(self.segment, Some(Some(_)));
            if open_known {
                return Err(InputError::Truncated);
            }
            return Ok(Step::End);
        };
        if let Some(end) = self.cluster {
            if end.is_none() && ebml::ends_cluster(h.id) {
                self.cluster = None;
                self.peeked = Some(h);
                return Ok(Step::More);
            }
            return self.cluster_child(h);
        }
        if let Some(end) = self.segment {
            return self.segment_child(h, end);
        }
        self.top_level(h)
    }

    fn top_level(&mut self, h: ElementHeader) -> Result<Step, InputError> {
        match h.id {
            id::EBML => {
                let body = self.read_body(&h, MAX_HEADER_ELEMENT)?;
                let doc_type = ebml::children(&body)
                    .filter_map(Result::ok)
                    .find(|c| c.id == id::DOC_TYPE)
                    .map(|c| {
                        String::from_utf8_lossy(c.body)
                            .trim_end_matches('\0')
                            .to_owned()
                    });
                match doc_type.as_deref() {
                    Some("webm") => {}
                    Some(other) => {
                        return Err(InputError::NotWebm(format!("DocType {other:?}")));
                    }
                    None => return Err(InputError::NotWebm("no DocType (Matroska)".into())),
                }
                self.seen_ebml = true;
                Ok(Step::More)
            }
            _ if !self.seen_ebml => Err(InputError::NotWebm("no EBML header".into())),
            id::SEGMENT => {
                self.segment = Some(h.end());
                self.segments += 1;
                self.scale_ns = 1_000_000;
                self.segment_base_ms = 0;
                self.segment_track_number = None;
                self.cluster_timecode = None;
                Ok(Step::More)
            }
            id::VOID | id::CRC32 => {
                self.skip(&h)?;
                Ok(Step::More)
            }
            _ => Err(InputError::Malformed("unexpected top-level element")),
        }
    }

    fn segment_child(&mut self, h: ElementHeader, end: Option<u64>) -> Result<Step, InputError> {
        match h.id {
            id::CLUSTER => {
                if self.segment_track_number.is_none() {
                    return Err(InputError::Malformed("a Cluster before Tracks"));
                }
                self.cluster = Some(h.end());
                self.cluster_timecode = None;
                Ok(Step::More)
            }
            id::INFO => {
                let body = self.read_body(&h, MAX_HEADER_ELEMENT)?;
                self.info(&body)?;
                Ok(Step::More)
            }
            id::TRACKS => {
                let body = self.read_body(&h, MAX_HEADER_ELEMENT)?;
                self.tracks(&body)?;
                Ok(Step::Tracks)
            }
            id::EBML | id::SEGMENT if end.is_none() => {
                // The next recording appended to this file.
                self.segment = None;
                self.peeked = Some(h);
                Ok(Step::More)
            }
            _ => {
                self.skip(&h)?;
                Ok(Step::More)
            }
        }
    }

    fn info(&mut self, body: &[u8]) -> Result<(), InputError> {
        let mut date = None;
        for child in ebml::children(body) {
            let child = child.map_err(|()| InputError::Malformed("Info"))?;
            match child.id {
                id::TIMESTAMP_SCALE => {
                    self.scale_ns = ebml::uint(child.body)
                        .filter(|s| *s > 0)
                        .ok_or(InputError::Malformed("TimestampScale"))?;
                }
                id::DATE_UTC => date = ebml::int(child.body),
                _ => {}
            }
        }
        match &mut self.track {
            None => {
                // First Segment: its track is not read yet; keep the date for it.
                self.pending_date = date;
            }
            Some(track) => {
                // A later Segment: placed by the distance between the two origins.
                if let (Some(first), Some(this)) = (track.date_utc, date) {
                    self.segment_base_ms = (this.saturating_sub(first)) / 1_000_000;
                }
            }
        }
        Ok(())
    }

    fn tracks(&mut self, body: &[u8]) -> Result<(), InputError> {
        let mut entries = Vec::new();
        for child in ebml::children(body) {
            let child = child.map_err(|()| InputError::Malformed("Tracks"))?;
            if child.id == id::TRACK_ENTRY {
                entries.push(child.body);
            }
        }
        let entry = match entries.as_slice() {
            [] => return Err(InputError::NoTrack),
            [one] => *one,
            more => return Err(InputError::MultipleTracks { count: more.len() }),
        };
        let parsed = TrackEntry::decode_body(&mut &entry[..])
            .map_err(|_| InputError::Malformed("TrackEntry"))?;
        let codec_id = parsed.codec_id.0.clone();
        let track_type = parsed.track_type.0;
        if !CODECS.contains(&(codec_id.as_str(), track_type)) {
            return Err(InputError::UnsupportedCodec { codec_id });
        }
        self.segment_track_number = Some(parsed.track_number.0);
        if let Some(first) = &self.track {
            if first.codec_id != codec_id {
                return Err(InputError::TrackChanged {
                    from: first.codec_id.clone(),
                    to: codec_id,
                });
            }
            return Ok(());
        }
        let mut children = Vec::with_capacity(entry.len());
        for child in ebml::children(entry) {
            let child = child.map_err(|()| InputError::Malformed("TrackEntry"))?;
            if !matches!(
                child.id,
                id::TRACK_NUMBER | id::TRACK_UID | id::NAME | id::CRC32 | id::VOID
            ) {
                children.extend_from_slice(child.raw);
            }
        }
        self.track = Some(TrackInfo {
            video: track_type == 1,
            codec_id,
            children,
            date_utc: self.pending_date.take(),
        });
        Ok(())
    }

    fn cluster_child(&mut self, h: ElementHeader) -> Result<Step, InputError> {
        if let (Some(Some(cluster_end)), Some(end)) = (self.cluster, h.end())
            && end > cluster_end
        {
            return Err(InputError::Malformed(
                "a Cluster child overruns its Cluster",
            ));
        }
        match h.id {
            id::TIMESTAMP => {
                let body = self.read_body(&h, 8)?;
                let tc = ebml::uint(&body).and_then(|t| i64::try_from(t).ok());
                self.cluster_timecode = Some(tc.ok_or(InputError::Malformed("Cluster Timestamp"))?);
                Ok(Step::More)
            }
            id::SIMPLE_BLOCK => {
                let body = self.read_body(&h, self.limits.max_block_bytes)?;
                let block = self.block(body, None)?;
                Ok(Step::Block(block))
            }
            id::BLOCK_GROUP => {
                let body = self.read_body(&h, self.limits.max_block_bytes)?;
                let mut block = None;
                let mut rest = Vec::new();
                let mut referenced = false;
                for child in ebml::children(&body) {
                    let child = child.map_err(|()| InputError::Malformed("BlockGroup"))?;
                    match child.id {
                        id::BLOCK => block = Some(child.body.to_vec()),
                        id::REFERENCE_BLOCK => {
                            referenced = true;
                            rest.extend_from_slice(child.raw);
                        }
                        id::BLOCK_DURATION => {
                            let ticks = ebml::uint(child.body)
                                .ok_or(InputError::Malformed("BlockDuration"))?;
                            let ms = u128::from(ticks) * u128::from(self.scale_ns) / 1_000_000;
                            ebml::put_uint(
                                &mut rest,
                                id::BLOCK_DURATION,
                                u64::try_from(ms).unwrap_or(u64::MAX),
                            );
                        }
                        id::CRC32 | id::VOID => {}
                        _ => rest.extend_from_slice(child.raw),
                    }
                }
                let body = block.ok_or(InputError::Malformed("a BlockGroup without a Block"))?;
                let mut block = self.block(body, Some(rest))?;
                block.keyframe = !referenced;
                Ok(Step::Block(block))
            }
            _ => {
                self.skip(&h)?;
                Ok(Step::More)
            }
        }
    }

    /// A (Simple)Block's body: placed on the input's timeline, checked for going back.
    fn block(&mut self, mut body: Vec<u8>, group: Option<Vec<u8>>) -> Result<InBlock, InputError> {
        let (track, len) = ebml::read_vint(&body).ok_or(InputError::Malformed("block header"))?;
        if track.is_none() || track != self.segment_track_number {
            return Err(InputError::Malformed("a block of an undeclared track"));
        }
        let header = body
            .get(len..len + 3)
            .ok_or(InputError::Malformed("block header"))?;
        let relative = i16::from_be_bytes([header[0], header[1]]);
        let flags = header[2];
        let timecode = self.cluster_timecode.ok_or(InputError::Malformed(
            "a block before its Cluster's Timestamp",
        ))?;
        let ticks = i128::from(timecode) + i128::from(relative);
        let ms = (ticks * i128::from(self.scale_ns) + 500_000).div_euclid(1_000_000)
            + i128::from(self.segment_base_ms);
        let mut time_ms = u64::try_from(ms.max(0)).unwrap_or(u64::MAX);
        if let Some(last) = self.last_ms
            && time_ms < last
        {
            if last - time_ms > self.limits.backwards_tolerance_ms {
                return Err(InputError::TimestampsBackwards {
                    at_ms: i64::try_from(ms).unwrap_or(i64::MIN),
                    previous_ms: i64::try_from(last).unwrap_or(i64::MAX),
                });
            }
            time_ms = last;
            self.clamped += 1;
        }
        self.last_ms = Some(time_ms);
        body.drain(..len + 3);
        Ok(InBlock {
            time_ms,
            keyframe: flags & 0x80 != 0,
            flags,
            frame: body,
            group,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;
    use crate::merge::ebml::{put_header, put_uint};

    const LIMITS: Limits = Limits {
        max_block_bytes: 1 << 20,
        backwards_tolerance_ms: 0,
    };

    fn element(element: u32, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        put_header(&mut out, element, body.len() as u64);
        out.extend_from_slice(body);
        out
    }

    fn ebml_header(doc_type: &str) -> Vec<u8> {
        element(id::EBML, &element(id::DOC_TYPE, doc_type.as_bytes()))
    }

    fn segment_start(scale: u64, date: Option<i64>, codec: &str, number: u64) -> Vec<u8> {
        let mut out = Vec::new();
        put_header(&mut out, id::SEGMENT, 0);
        out.truncate(out.len() - 1);
        out.push(0xFF); // unknown size
        let mut info = Vec::new();
        put_uint(&mut info, id::TIMESTAMP_SCALE, scale);
        if let Some(date) = date {
            info.extend_from_slice(&element(id::DATE_UTC, &date.to_be_bytes()));
        }
        out.extend_from_slice(&element(id::INFO, &info));
        let mut entry = Vec::new();
        put_uint(&mut entry, id::TRACK_NUMBER, number);
        put_uint(&mut entry, id::TRACK_UID, 42);
        put_uint(&mut entry, 0x83, if codec.starts_with('V') { 1 } else { 2 }); // TrackType
        entry.extend_from_slice(&element(0x86, codec.as_bytes())); // CodecID
        out.extend_from_slice(&element(id::TRACKS, &element(id::TRACK_ENTRY, &entry)));
        out
    }

    fn block_body(track: u8, relative: i16, flags: u8, data: &[u8]) -> Vec<u8> {
        let mut body = vec![0x80 | track];
        body.extend_from_slice(&relative.to_be_bytes());
        body.push(flags);
        body.extend_from_slice(data);
        body
    }

    fn simple(track: u8, relative: i16, key: bool) -> Vec<u8> {
        let flags = if key { 0x80 } else { 0 };
        element(
            id::SIMPLE_BLOCK,
            &block_body(track, relative, flags, b"frame"),
        )
    }

    fn cluster(timecode: u64, blocks: &[Vec<u8>], unknown_size: bool) -> Vec<u8> {
        let mut body = Vec::new();
        put_uint(&mut body, id::TIMESTAMP, timecode);
        body.extend_from_slice(&blocks.concat());
        if unknown_size {
            let mut out = Vec::new();
            ebml::put_id(&mut out, id::CLUSTER);
            out.push(0xFF);
            out.extend_from_slice(&body);
            out
        } else {
            element(id::CLUSTER, &body)
        }
    }

    fn read_all(bytes: Vec<u8>) -> (InputReader<Cursor<Vec<u8>>>, Vec<InBlock>) {
        let mut reader = InputReader::open(Cursor::new(bytes), LIMITS).expect("opens");
        let mut blocks = Vec::new();
        while let Some(b) = reader.next_block().expect("reads") {
            blocks.push(b);
        }
        (reader, blocks)
    }

    #[test]
    fn unknown_size_clusters_and_an_appended_segment_are_read_in_order() {
        let mut file = ebml_header("webm");
        file.extend(segment_start(1_000_000, Some(7_000_000_000), "V_VP8", 1));
        file.extend(cluster(
            0,
            &[
                simple(1, 0, true),
                simple(1, 33, false),
                simple(1, 66, false),
            ],
            true,
        ));
        file.extend(cluster(100, &[simple(1, 0, false)], true));
        // The recording restarted 5 s after the first origin, into the same file.
        file.extend(ebml_header("webm"));
        file.extend(segment_start(1_000_000, Some(12_000_000_000), "V_VP8", 2));
        file.extend(cluster(
            0,
            &[simple(2, 0, true), simple(2, 40, false)],
            false,
        ));
        let (reader, blocks) = read_all(file);
        let times: Vec<u64> = blocks.iter().map(|b| b.time_ms).collect();
        assert_eq!(times, [0, 33, 66, 100, 5_000, 5_040]);
        let keys: Vec<bool> = blocks.iter().map(|b| b.keyframe).collect();
        assert_eq!(keys, [true, false, false, false, true, false]);
        assert!(
            blocks
                .iter()
                .all(|b| b.frame == b"frame" && b.group.is_none())
        );
        assert_eq!(reader.segments(), 2);
        assert!(!reader.truncated());
        assert_eq!(reader.track().codec_id, "V_VP8");
        assert_eq!(reader.track().date_utc, Some(7_000_000_000));
    }

    #[test]
    fn timestamp_scale_and_block_groups_are_converted_to_milliseconds() {
        let mut file = ebml_header("webm");
        // Ticks of 0.5 ms.
        file.extend(segment_start(500_000, None, "A_OPUS", 1));
        let mut group = element(id::BLOCK, &block_body(1, 40, 0, b"opus"));
        put_uint(&mut group, id::BLOCK_DURATION, 40);
        group.extend_from_slice(&element(id::REFERENCE_BLOCK, &[0xD8])); // -40 ticks
        file.extend(cluster(
            2_000,
            &[simple(1, 0, true), element(id::BLOCK_GROUP, &group)],
            false,
        ));
        let (_, blocks) = read_all(file);
        assert_eq!(blocks.len(), 2);
        assert_eq!((blocks[0].time_ms, blocks[1].time_ms), (1_000, 1_020));
        assert!(!blocks[1].keyframe, "a ReferenceBlock makes a delta frame");
        assert_eq!(blocks[1].frame, b"opus");
        let mut rest = Vec::new();
        put_uint(&mut rest, id::BLOCK_DURATION, 20);
        rest.extend_from_slice(&element(id::REFERENCE_BLOCK, &[0xD8]));
        assert_eq!(blocks[1].group.as_deref(), Some(rest.as_slice()));
    }

    #[test]
    fn a_cut_in_a_block_ends_the_input_after_the_last_whole_one() {
        let mut file = ebml_header("webm");
        file.extend(segment_start(1_000_000, None, "A_OPUS", 1));
        file.extend(cluster(
            0,
            &[simple(1, 0, true), simple(1, 20, true)],
            false,
        ));
        file.truncate(file.len() - 3);
        let (reader, blocks) = read_all(file);
        assert_eq!(blocks.len(), 1);
        assert!(reader.truncated());
    }

    #[test]
    fn what_is_not_one_webm_track_is_refused() {
        let open = |bytes: Vec<u8>| InputReader::open(Cursor::new(bytes), LIMITS).err();
        let mut mkv = ebml_header("matroska");
        mkv.extend(segment_start(1_000_000, None, "V_VP8", 1));
        assert!(matches!(open(mkv), Some(InputError::NotWebm(_))));

        let mut h264 = ebml_header("webm");
        h264.extend(segment_start(1_000_000, None, "V_MPEG4/ISO/AVC", 1));
        assert!(matches!(
            open(h264),
            Some(InputError::UnsupportedCodec { .. })
        ));

        // Opus declared as a video track.
        let mut mistyped = ebml_header("webm");
        let mut segment = segment_start(1_000_000, None, "A_OPUS", 1);
        let at = segment.windows(3).position(|w| w == [0x83, 0x81, 0x02]);
        segment[at.expect("TrackType") + 2] = 1;
        mistyped.extend(segment);
        assert!(matches!(
            open(mistyped),
            Some(InputError::UnsupportedCodec { .. })
        ));

        let mut stray = ebml_header("webm");
        stray.extend(segment_start(1_000_000, None, "A_OPUS", 1));
        stray.extend(cluster(0, &[simple(2, 0, true)], false));
        let mut reader = InputReader::open(Cursor::new(stray), LIMITS).expect("opens");
        assert!(matches!(reader.next_block(), Err(InputError::Malformed(_))));

        let mut big = ebml_header("webm");
        big.extend(segment_start(1_000_000, None, "A_OPUS", 1));
        big.extend(cluster(0, &[simple(1, 0, true)], false));
        let small = Limits {
            max_block_bytes: 4,
            ..LIMITS
        };
        let mut reader = InputReader::open(Cursor::new(big), small).expect("opens");
        assert!(matches!(
            reader.next_block(),
            Err(InputError::ElementTooLarge { .. })
        ));
    }
}
