//! The merger: several one-track WebM files into one multi-track WebM, without transcoding.
//!
//! Each input is read incrementally, one element header and one block at a time (memory: one
//! block per input, plus the Cluster being written), placed at its offset on the recording's
//! timeline, and the inputs' blocks are interleaved in time order into Clusters of the output.

mod ebml;
mod error;
mod interleave;
mod reader;
mod writer;

use std::io::{Read, Seek, Write};
use std::time::Duration;

pub use error::{InputError, MergeError};
use interleave::{ClusterPolicy, earliest};
use reader::{InBlock, InputReader, Limits};
use writer::{Layout, Writer};

/// One track file to merge.
#[derive(Debug)]
pub struct MergeInput<R> {
    /// Where the track starts on the merged timeline, in ms after the recording's start: its
    /// block at time `t` is written at `offset_ms + t`.
    pub offset_ms: u64,
    /// The track's `Name` in the merged file (for example the participant and the source).
    pub name: String,
    /// The track file, as `TrackMuxer` wrote it (chunks concatenated in order). Read once,
    /// front to back. Inputs of different types can be merged as `Box<dyn Read>`.
    pub reader: R,
}

/// How the merged file is written. [`MergeConfig::default`] suits recordings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeConfig {
    /// A Cluster spans at most this long (default 5 s, at most 32.767 s: a block's time is
    /// written relative to its Cluster on 16 bits). Clusters also start at every keyframe of
    /// the first video track.
    pub max_cluster_duration: Duration,
    /// A Cluster is closed once it holds this many bytes (default 32 MiB); it is held in
    /// memory until it is written.
    pub max_cluster_bytes: usize,
    /// A block may come this much earlier than the input's previous block and still be taken
    /// (moved up to the previous block's time, counted in
    /// [`MergedTrack::clamped_blocks`]); further back, the input is refused
    /// ([`InputError::TimestampsBackwards`]). Default 100 ms. `TrackMuxer` never writes time
    /// going back: this is for a restarted recording whose origin is a little off.
    pub backwards_tolerance: Duration,
    /// Largest block (or BlockGroup) read into memory (default 16 MiB; `TrackMuxer` writes
    /// frames of at most 4 MiB).
    pub max_block_bytes: usize,
}

impl Default for MergeConfig {
    fn default() -> Self {
        Self {
            max_cluster_duration: Duration::from_secs(5),
            max_cluster_bytes: 32 << 20,
            backwards_tolerance: Duration::from_millis(100),
            max_block_bytes: 16 << 20,
        }
    }
}

impl MergeConfig {
    fn validate(&self) -> Result<(), MergeError> {
        if self.max_cluster_duration.is_zero()
            || self.max_cluster_duration > Duration::from_millis(i16::MAX as u64)
        {
            return Err(MergeError::InvalidConfig(
                "max_cluster_duration must be between 1 ms and 32.767 s",
            ));
        }
        if self.max_cluster_bytes == 0 || self.max_block_bytes == 0 {
            return Err(MergeError::InvalidConfig("size limits must be positive"));
        }
        Ok(())
    }
}

/// What the merge wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeStats {
    /// The merged file's tracks, in input order (track number = place + 1).
    pub tracks: Vec<MergedTrack>,
    /// Clusters written.
    pub clusters: u64,
    /// Cue points written: instants of the first keyframe of each video track (of the first
    /// track, if none is video) in each Cluster; 0 for a live merge.
    pub cue_points: u64,
    /// Bytes of the merged file.
    pub bytes: u64,
    /// The merged file's duration (ms): the latest track end, as written in its Info.
    pub duration_ms: u64,
}

/// One track of the merged file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergedTrack {
    /// Its name (the input's).
    pub name: String,
    /// Its `TrackNumber` (and `TrackUID`) in the merged file.
    pub track_number: u64,
    /// Its `CodecID`.
    pub codec_id: String,
    /// Blocks written.
    pub blocks: u64,
    /// Keyframes among them.
    pub keyframes: u64,
    /// Bytes of frame data written.
    pub frame_bytes: u64,
    /// Time (ms, merged timeline) of its first block.
    pub start_ms: Option<u64>,
    /// Time just after its last block (its time plus the track's frame spacing).
    pub end_ms: Option<u64>,
    /// Segments read from the input (more than one: the recording was restarted into the
    /// same file).
    pub segments: u32,
    /// Whether the input ended in the middle of an element (an incomplete recording): it is
    /// merged up to its last whole block.
    pub truncated: bool,
    /// Blocks moved up to the previous block's time
    /// ([`MergeConfig::backwards_tolerance`]).
    pub clamped_blocks: u64,
}

/// Merges `inputs` into one WebM written to `out`, with every size, the Duration, Cues, each
/// track's `DURATION` tag and a SeekHead (the output is patched in place at the end, so it must seek; it is written from
/// its current position). With [`MergeConfig::default`].
pub fn merge<R: Read, W: Write + Seek>(
    inputs: Vec<MergeInput<R>>,
    out: W,
) -> Result<MergeStats, MergeError> {
    merge_with(inputs, out, &MergeConfig::default())
}

/// [`merge`] with a configuration.
pub fn merge_with<R: Read, W: Write + Seek>(
    inputs: Vec<MergeInput<R>>,
    mut out: W,
    config: &MergeConfig,
) -> Result<MergeStats, MergeError> {
    let base = out.stream_position().map_err(MergeError::Output)?;
    let (writer, mut stats) = run(inputs, out, base, Layout::Seekable, config)?;
    let track_ends: Vec<(u64, u64)> = stats
        .tracks
        .iter()
        .filter_map(|t| Some((t.track_number, t.end_ms?)))
        .collect();
    let (bytes, cue_points) = writer.finish_seekable(stats.duration_ms, &track_ends)?;
    stats.bytes = bytes;
    stats.cue_points = cue_points;
    Ok(stats)
}

/// Merges `inputs` into a live WebM, written strictly forward to `out` (a pipe, an upload):
/// Segment of unknown size, no Duration, no Cues. It plays and seeks by scanning Clusters,
/// but players show no duration until they have read it all.
pub fn merge_live<R: Read, W: Write>(
    inputs: Vec<MergeInput<R>>,
    out: W,
    config: &MergeConfig,
) -> Result<MergeStats, MergeError> {
    let (writer, mut stats) = run(inputs, out, 0, Layout::Live, config)?;
    let (bytes, _) = writer.finish_live()?;
    stats.bytes = bytes;
    Ok(stats)
}

/// One input being merged.
struct Source<R> {
    index: usize,
    name: String,
    offset_ms: u64,
    reader: InputReader<R>,
    head: Option<InBlock>,
    track: MergedTrack,
    last_ms: Option<u64>,
    spacing_ms: u64,
}

impl<R: Read> Source<R> {
    fn error(&self, error: InputError) -> MergeError {
        MergeError::Input {
            index: self.index,
            name: self.name.clone(),
            error,
        }
    }

    /// Reads the next block into `head`, on the merged timeline.
    fn pull(&mut self) -> Result<(), MergeError> {
        self.head = self.reader.next_block().map_err(|e| self.error(e))?;
        if let Some(block) = &mut self.head {
            block.time_ms = block.time_ms.saturating_add(self.offset_ms);
        }
        Ok(())
    }

    /// Counts `block`, just written.
    fn wrote(&mut self, block: &InBlock) {
        let t = block.time_ms;
        if let Some(last) = self.last_ms {
            let spacing = t.saturating_sub(last);
            if (1..=200).contains(&spacing) {
                self.spacing_ms = spacing;
            }
        }
        self.last_ms = Some(t);
        let track = &mut self.track;
        track.blocks += 1;
        track.keyframes += u64::from(block.keyframe);
        track.frame_bytes += block.frame.len() as u64;
        track.start_ms.get_or_insert(t);
    }

    fn finish(mut self) -> MergedTrack {
        self.track.end_ms = self.last_ms.map(|t| t + self.spacing_ms);
        self.track.segments = self.reader.segments();
        self.track.truncated = self.reader.truncated();
        self.track.clamped_blocks = self.reader.clamped();
        self.track
    }
}

/// The TrackEntry of input `index` in the merged file.
fn track_entry(number: u64, name: &str, children: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(children.len() + name.len() + 16);
    ebml::put_uint(&mut body, ebml::id::TRACK_NUMBER, number);
    ebml::put_uint(&mut body, ebml::id::TRACK_UID, number);
    if !name.is_empty() {
        ebml::put_header(&mut body, ebml::id::NAME, name.len() as u64);
        body.extend_from_slice(name.as_bytes());
    }
    body.extend_from_slice(children);
    let mut entry = Vec::with_capacity(body.len() + 8);
    ebml::put_header(&mut entry, ebml::id::TRACK_ENTRY, body.len() as u64);
    entry.extend_from_slice(&body);
    entry
}

fn run<R: Read, W: Write>(
    inputs: Vec<MergeInput<R>>,
    out: W,
    base: u64,
    layout: Layout,
    config: &MergeConfig,
) -> Result<(Writer<W>, MergeStats), MergeError> {
    config.validate()?;
    if inputs.is_empty() {
        return Err(MergeError::NoInputs);
    }
    let limits = Limits {
        max_block_bytes: config.max_block_bytes,
        backwards_tolerance_ms: u64::try_from(config.backwards_tolerance.as_millis())
            .unwrap_or(u64::MAX),
    };
    let mut sources = Vec::with_capacity(inputs.len());
    for (index, input) in inputs.into_iter().enumerate() {
        let reader =
            InputReader::open(input.reader, limits).map_err(|error| MergeError::Input {
                index,
                name: input.name.clone(),
                error,
            })?;
        let info = reader.track();
        let track = MergedTrack {
            name: input.name.clone(),
            track_number: index as u64 + 1,
            codec_id: info.codec_id.clone(),
            blocks: 0,
            keyframes: 0,
            frame_bytes: 0,
            start_ms: None,
            end_ms: None,
            segments: 0,
            truncated: false,
            clamped_blocks: 0,
        };
        let spacing_ms = if info.video { 33 } else { 20 };
        sources.push(Source {
            index,
            name: input.name,
            offset_ms: input.offset_ms,
            reader,
            head: None,
            track,
            last_ms: None,
            spacing_ms,
        });
    }

    let entries: Vec<Vec<u8>> = sources
        .iter()
        .map(|s| track_entry(s.track.track_number, &s.name, &s.reader.track().children))
        .collect();
    // The recording's start: an input's origin less its offset (the earliest-placed input
    // that has a date).
    let date_utc = sources
        .iter()
        .filter_map(|s| {
            let date = s.reader.track().date_utc?;
            let offset_ns = i64::try_from(s.offset_ms).ok()?.checked_mul(1_000_000)?;
            Some((s.offset_ms, date.checked_sub(offset_ns)?))
        })
        .min()
        .map(|(_, date)| date);
    let lead_video = sources.iter().position(|s| s.reader.track().video);
    // Every video track's keyframes are cued; with no video, the first track's blocks.
    let mut cue_tracks: Vec<u64> = sources
        .iter()
        .filter(|s| s.reader.track().video)
        .map(|s| s.track.track_number)
        .collect();
    if cue_tracks.is_empty() {
        cue_tracks.push(1);
    }
    let mut writer = Writer::start(out, base, layout, &entries, date_utc, cue_tracks)?;

    let policy = ClusterPolicy {
        max_ms: u64::try_from(config.max_cluster_duration.as_millis()).unwrap_or(u64::MAX),
        max_bytes: config.max_cluster_bytes,
        lead_video,
    };
    for source in &mut sources {
        source.pull()?;
    }
    while let Some(i) = earliest(
        sources
            .iter()
            .map(|s| s.head.as_ref().map(|block| block.time_ms)),
    ) {
        let source = &mut sources[i];
        let Some(block) = source.head.take() else {
            break;
        };
        let new_cluster =
            policy.starts_cluster(writer.open_cluster(), i, block.time_ms, block.keyframe);
        writer.add(
            source.track.track_number,
            block.time_ms,
            &block,
            new_cluster,
        )?;
        source.wrote(&block);
        source.pull()?;
    }

    let clusters = writer.clusters();
    let tracks: Vec<MergedTrack> = sources.into_iter().map(Source::finish).collect();
    let duration_ms = tracks.iter().filter_map(|t| t.end_ms).max().unwrap_or(0);
    Ok((
        writer,
        MergeStats {
            tracks,
            clusters,
            cue_points: 0,
            bytes: 0,
            duration_ms,
        },
    ))
}
