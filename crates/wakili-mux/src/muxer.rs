//! [`TrackMuxer`]: one track's RTP packets in, WebM chunks out.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use crate::assemble::{Assembled, Assembler, Broken, Frame};
use crate::reorder::{Pushed, Released, ReorderBuffer};
use crate::timeline::{SenderReport, Timeline, TimelineOrigin};
use crate::webm::{ClusterBuilder, TrackParams, opus_head, write_header};
use crate::{Codec, MuxError, MuxStats, MuxerConfig, vp8};

/// A cluster is closed early (within a chunk) past this many bytes, to bound memory.
const MAX_CLUSTER_BYTES: usize = 32 << 20;

/// One RTP packet of the recorded track, as the SFU received it (after SRTP).
#[derive(Debug, Clone, Copy)]
pub struct RtpInput<'a> {
    /// SSRC; a change means the publisher's stream restarted.
    pub ssrc: u32,
    /// RTP sequence number (wraps at 65535; extended here).
    pub sequence_number: u16,
    /// RTP timestamp (wraps at 2³²; extended here).
    pub timestamp: u32,
    /// RTP marker bit.
    pub marker: bool,
    /// RTP payload (payload descriptor included, padding removed).
    pub payload: &'a [u8],
    /// When the packet was received (the caller's monotonic clock).
    pub arrival: Instant,
}

/// What the muxer asks of its caller.
#[derive(Debug)]
pub enum Output {
    /// A sealed chunk: store it. Chunks concatenated in order are one WebM file.
    Chunk(Chunk),
    /// The recording needs a keyframe now (to start, to recover from a loss, or to cut the
    /// next chunk): send the publisher a PLI (or FIR). Repeats are rate-limited by
    /// [`MuxerConfig::keyframe_retry`].
    KeyframeWanted,
}

/// A piece of the WebM file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The bytes: the EBML header, Segment start and Tracks first (chunk 0 only), then whole
    /// Clusters.
    pub bytes: Vec<u8>,
    /// What it holds.
    pub info: ChunkInfo,
}

/// What a chunk holds, for the recording's index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkInfo {
    /// 0, 1, 2, … in the order the chunks must be concatenated.
    pub index: u64,
    /// Timecode (ms from the track's origin) of its first frame.
    pub start_ms: u64,
    /// Timecode just after its last frame (its timecode plus the last frame spacing).
    pub end_ms: u64,
    /// Whether its first frame is a keyframe (always for audio).
    pub starts_with_keyframe: bool,
    /// Frames in it.
    pub frames: u32,
    /// Keyframes in it.
    pub keyframes: u32,
    /// Whether it begins with the file header (chunk 0).
    pub includes_header: bool,
    /// Whether it is the last chunk (emitted by [`TrackMuxer::finish`]).
    pub last: bool,
}

/// The chunk being filled.
#[derive(Debug, Default)]
struct ChunkAcc {
    bytes: Vec<u8>,
    start_ms: Option<u64>,
    first_arrival: Option<Instant>,
    starts_with_keyframe: bool,
    frames: u32,
    keyframes: u32,
    includes_header: bool,
    keyframe_requested: bool,
}

/// Everything downstream of frame assembly.
#[derive(Debug)]
struct Sink {
    codec: Codec,
    track_uid: u64,
    interval: Duration,
    interval_ms: u64,
    max_chunk_ms: u64,
    lead: Duration,
    retry: Duration,
    timeline: Timeline,
    ssrc: u32,
    header_written: bool,
    need_keyframe: bool,
    cluster: ClusterBuilder,
    chunk: ChunkAcc,
    next_index: u64,
    last_ms: Option<u64>,
    frame_spacing_ms: u64,
    last_frame_arrival: Option<Instant>,
    last_request: Option<Instant>,
    outputs: VecDeque<Output>,
    stats: MuxStats,
    error: Option<MuxError>,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Sink {
    fn on_assembled(&mut self, assembled: Assembled<'_>, now: Instant) {
        match assembled {
            Assembled::Frame(frame) => {
                if let Err(e) = self.on_frame(frame, now) {
                    self.error.get_or_insert(e);
                }
            }
            Assembled::Dropped(reason) => {
                match reason {
                    Broken::Incomplete => self.stats.frames_incomplete += 1,
                    Broken::Invalid => self.stats.frames_invalid += 1,
                    Broken::TooLarge => self.stats.frames_too_large += 1,
                }
                self.broken(now);
            }
        }
    }

    /// Something was lost: video cannot go on until the next keyframe.
    fn broken(&mut self, now: Instant) {
        if self.codec.is_video() {
            self.need_keyframe = true;
            self.want_keyframe(now);
        }
    }

    fn want_keyframe(&mut self, now: Instant) {
        if self
            .last_request
            .is_some_and(|t| now.saturating_duration_since(t) < self.retry)
        {
            return;
        }
        self.last_request = Some(now);
        self.stats.keyframe_requests += 1;
        if !self
            .outputs
            .iter()
            .any(|o| matches!(o, Output::KeyframeWanted))
        {
            self.outputs.push_back(Output::KeyframeWanted);
        }
    }

    fn on_frame(&mut self, frame: Frame<'_>, now: Instant) -> Result<(), MuxError> {
        let video = self.codec.is_video();
        if video && self.need_keyframe {
            if !frame.keyframe {
                if self.header_written {
                    self.stats.frames_waiting_for_keyframe += 1;
                } else {
                    self.stats.frames_before_first_keyframe += 1;
                }
                self.want_keyframe(now);
                return Ok(());
            }
            self.need_keyframe = false;
        }
        let ms = self
            .timeline
            .place(self.ssrc, frame.timestamp, frame.arrival);
        if !self.header_written {
            self.write_header(&frame)?;
        }
        if let Some(start) = self.chunk.start_ms {
            let elapsed = ms.saturating_sub(start);
            let due = elapsed >= self.interval_ms;
            // A keyframe that answers the request made `lead` ahead of the interval cuts the
            // chunk when it comes, even a little early: waiting for the next would stretch the
            // chunk to `max_chunk_duration`.
            let keyframe_due = elapsed + millis(self.lead) >= self.interval_ms;
            let cut = if video {
                (keyframe_due && frame.keyframe) || elapsed >= self.max_chunk_ms
            } else {
                due
            };
            if cut {
                self.seal_chunk(false)?;
            }
        }
        if self.cluster.timecode().is_some()
            && (self.cluster.relative(ms).is_none() || self.cluster.len() >= MAX_CLUSTER_BYTES)
        {
            self.cluster.seal_into(&mut self.chunk.bytes)?;
        }
        if self.cluster.timecode().is_none() {
            self.cluster.open(ms);
        }
        if self.chunk.start_ms.is_none() {
            self.chunk.start_ms = Some(ms);
            self.chunk.first_arrival = Some(frame.arrival);
            self.chunk.starts_with_keyframe = frame.keyframe;
        }
        let relative = self.cluster.relative(ms).unwrap_or(0);
        self.cluster
            .add_block(relative, frame.keyframe, frame.data)?;

        if let Some(last) = self.last_ms {
            let spacing = ms.saturating_sub(last);
            if (1..=200).contains(&spacing) {
                self.frame_spacing_ms = spacing;
            }
        }
        self.last_ms = Some(ms);
        self.last_frame_arrival = Some(frame.arrival);
        self.chunk.frames += 1;
        self.stats.frames_written += 1;
        if frame.keyframe {
            self.chunk.keyframes += 1;
            self.stats.keyframes_written += 1;
            if video {
                // The next need for a keyframe may ask at once.
                self.last_request = None;
            }
        }
        if video
            && !self.chunk.keyframe_requested
            && self.chunk.start_ms.is_some_and(|start| {
                ms.saturating_sub(start) + millis(self.lead) >= self.interval_ms
            })
        {
            self.chunk.keyframe_requested = true;
            self.want_keyframe(now);
        }
        Ok(())
    }

    fn write_header(&mut self, frame: &Frame<'_>) -> Result<(), MuxError> {
        let params = match self.codec {
            Codec::Vp8 => {
                let (width, height) = vp8::keyframe_size(frame.data).unwrap_or((0, 0));
                TrackParams::Video {
                    codec_id: "V_VP8",
                    width,
                    height,
                }
            }
            Codec::Opus { channels } => TrackParams::Audio {
                codec_id: "A_OPUS",
                channels,
                sample_rate: 48_000,
                codec_private: opus_head(channels),
                seek_pre_roll: Duration::from_millis(80),
            },
        };
        let start = self
            .timeline
            .origin()
            .map_or(SystemTime::UNIX_EPOCH, |o| o.wall_clock);
        write_header(&mut self.chunk.bytes, self.track_uid, &params, start)?;
        self.chunk.includes_header = true;
        self.header_written = true;
        Ok(())
    }

    /// Seals the open cluster and emits the chunk, if it holds anything (or, for the last
    /// chunk, if anything was ever written).
    fn seal_chunk(&mut self, last: bool) -> Result<(), MuxError> {
        self.cluster.seal_into(&mut self.chunk.bytes)?;
        if self.chunk.bytes.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::take(&mut self.chunk);
        let start_ms = chunk.start_ms.or(self.last_ms).unwrap_or(0);
        let end_ms = if chunk.frames > 0 {
            self.last_ms.unwrap_or(start_ms) + self.frame_spacing_ms
        } else {
            start_ms
        };
        let info = ChunkInfo {
            index: self.next_index,
            start_ms,
            end_ms,
            starts_with_keyframe: chunk.frames > 0 && chunk.starts_with_keyframe,
            frames: chunk.frames,
            keyframes: chunk.keyframes,
            includes_header: chunk.includes_header,
            last,
        };
        self.next_index += 1;
        self.stats.chunks += 1;
        self.stats.bytes += chunk.bytes.len() as u64;
        self.outputs.push_back(Output::Chunk(Chunk {
            bytes: chunk.bytes,
            info,
        }));
        Ok(())
    }

    fn idle_deadline(&self) -> Option<Instant> {
        self.cluster.timecode()?;
        self.last_frame_arrival.map(|t| t + self.interval)
    }

    fn keyframe_deadline(&self) -> Option<Instant> {
        if !self.codec.is_video() {
            return None;
        }
        if !(self.need_keyframe || self.chunk.keyframe_requested) {
            return None;
        }
        self.last_request.map(|t| t + self.retry)
    }
}

/// Turns one track's RTP packets into WebM chunks, sans-IO: driven by
/// [`handle_rtp`](Self::handle_rtp), [`handle_sender_report`](Self::handle_sender_report),
/// [`handle_timeout`](Self::handle_timeout), [`restart`](Self::restart) and
/// [`finish`](Self::finish); its decisions come out of [`poll_output`](Self::poll_output).
/// It never reads the clock: every instant is passed in.
#[derive(Debug)]
pub struct TrackMuxer {
    reorder: ReorderBuffer,
    assembler: Assembler,
    sink: Sink,
    ssrc: Option<u32>,
    max_packet_bytes: usize,
    finished: bool,
}

/// Feeds what the reorder buffer releases through the assembler into the sink.
fn release(assembler: &mut Assembler, sink: &mut Sink, released: Released<'_>, now: Instant) {
    match released {
        Released::Packet(packet) => {
            if packet.payload.is_empty() {
                sink.stats.packets_padding += 1;
            }
            assembler.push(packet, &mut |a| sink.on_assembled(a, now));
        }
        Released::Lost(count) => {
            sink.stats.packets_lost += count;
            assembler.lost(&mut |a| sink.on_assembled(a, now));
            sink.broken(now);
        }
    }
}

impl TrackMuxer {
    /// A muxer for one track. `now` and `wall_clock` are the same moment on the caller's
    /// monotonic clock and on the wall clock: they map arrival instants to wall-clock time
    /// (see [`origin`](Self::origin)).
    pub fn new(
        config: MuxerConfig,
        now: Instant,
        wall_clock: SystemTime,
    ) -> Result<Self, MuxError> {
        config.validate()?;
        let timeline = Timeline::new(
            config.clock_rate,
            (now, wall_clock),
            config.origin,
            config.pause_threshold,
            config.pause_tolerance,
        );
        let sink = Sink {
            codec: config.codec,
            track_uid: config.track_uid,
            interval: config.chunk_interval,
            interval_ms: millis(config.chunk_interval),
            max_chunk_ms: millis(config.max_chunk_duration),
            lead: config.keyframe_lead,
            retry: config.keyframe_retry,
            timeline,
            ssrc: 0,
            header_written: false,
            need_keyframe: config.codec.is_video(),
            cluster: ClusterBuilder::default(),
            chunk: ChunkAcc::default(),
            next_index: 0,
            last_ms: None,
            frame_spacing_ms: if config.codec.is_video() { 33 } else { 20 },
            last_frame_arrival: None,
            last_request: None,
            outputs: VecDeque::new(),
            stats: MuxStats::default(),
            error: None,
        };
        Ok(Self {
            reorder: ReorderBuffer::new(config.reorder_capacity, config.reorder_window, now),
            assembler: Assembler::new(config.codec, config.max_frame_bytes),
            sink,
            ssrc: None,
            max_packet_bytes: config.max_packet_bytes,
            finished: false,
        })
    }

    /// Takes one received packet. A refused packet is counted and changes nothing; an
    /// accepted one may still be dropped later (lost neighbours, bad payload, waiting for a
    /// keyframe), which [`stats`](Self::stats) counts by reason. A new SSRC restarts the
    /// stream as [`restart`](Self::restart) does.
    pub fn handle_rtp(&mut self, packet: RtpInput<'_>) -> Result<(), MuxError> {
        if self.finished {
            self.sink.stats.packets_refused += 1;
            return Err(MuxError::Finished);
        }
        if packet.payload.len() > self.max_packet_bytes {
            self.sink.stats.packets_refused += 1;
            return Err(MuxError::PacketTooLarge {
                len: packet.payload.len(),
                max: self.max_packet_bytes,
            });
        }
        if self.ssrc.is_some_and(|s| s != packet.ssrc) {
            self.restart(packet.arrival);
        }
        self.ssrc = Some(packet.ssrc);
        self.sink.ssrc = packet.ssrc;
        self.sink.stats.packets_received += 1;
        let now = packet.arrival;
        let Self {
            reorder,
            assembler,
            sink,
            ..
        } = self;
        let pushed = reorder.push(
            packet.sequence_number,
            packet.timestamp,
            packet.marker,
            packet.payload,
            packet.arrival,
            &mut |r| release(assembler, sink, r, now),
        );
        match pushed {
            Pushed::Accepted => {}
            Pushed::Duplicate => self.sink.stats.packets_duplicate += 1,
            Pushed::Late => self.sink.stats.packets_late += 1,
        }
        self.take_error()
    }

    /// Takes an RTCP sender report of the track's stream: its NTP ↔ RTP mapping places the
    /// track on the publisher's clock ([`TimelineOrigin::sender_ntp`]).
    pub fn handle_sender_report(&mut self, report: SenderReport) {
        self.sink.timeline.sender_report(report);
    }

    /// The publisher reconnected (or its stream otherwise restarted with new sequence
    /// numbers and timestamps): what is buffered is written or given up, and the next packet
    /// starts a new stream placed at its arrival, so the gap shows in the timecodes. Video
    /// waits for a keyframe.
    pub fn restart(&mut self, now: Instant) {
        self.flush_stream(now);
        self.reorder.reset();
        self.assembler.reset();
        self.sink.timeline.restart();
        self.ssrc = None;
        self.sink.broken(now);
    }

    fn flush_stream(&mut self, now: Instant) {
        let Self {
            reorder,
            assembler,
            sink,
            ..
        } = self;
        reorder.flush(&mut |r| release(assembler, sink, r, now));
        assembler.flush(&mut |a| sink.on_assembled(a, now));
    }

    /// Lets time pass: gives up on packets missing longer than the reorder window, seals a
    /// chunk whose stream went silent for a chunk interval, repeats keyframe requests.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), MuxError> {
        if self.finished {
            return Ok(());
        }
        let Self {
            reorder,
            assembler,
            sink,
            ..
        } = self;
        reorder.handle_timeout(now, &mut |r| release(assembler, sink, r, now));
        if sink.idle_deadline().is_some_and(|t| now >= t) {
            sink.seal_chunk(false)?;
        }
        if sink.keyframe_deadline().is_some_and(|t| now >= t) {
            sink.want_keyframe(now);
        }
        self.take_error()
    }

    /// When [`handle_timeout`](Self::handle_timeout) has something to do next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.finished {
            return None;
        }
        [
            self.reorder.poll_timeout(),
            self.sink.idle_deadline(),
            self.sink.keyframe_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The next output: a sealed chunk or a keyframe request, in the order they happened.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.sink.outputs.pop_front()
    }

    /// Ends the recording: buffered packets are written (or given up) and the rest is sealed
    /// as the last chunk ([`ChunkInfo::last`]), to be taken with
    /// [`poll_output`](Self::poll_output). A track that never wrote a frame has no chunk.
    /// Later packets are refused.
    pub fn finish(&mut self, now: Instant) -> Result<(), MuxError> {
        if self.finished {
            return Ok(());
        }
        self.flush_stream(now);
        self.finished = true;
        self.sink.seal_chunk(true)?;
        self.take_error()
    }

    fn take_error(&mut self) -> Result<(), MuxError> {
        match self.sink.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// What happened so far.
    pub fn stats(&self) -> MuxStats {
        MuxStats {
            timeline_rebases: self.sink.timeline.rebases(),
            ..self.sink.stats.clone()
        }
    }

    /// Where timecode 0 is in wall-clock time, once the first frame is written.
    pub fn origin(&self) -> Option<TimelineOrigin> {
        self.sink.timeline.origin()
    }

    /// Whether the track is waiting for a keyframe (video: before the first, after a loss).
    pub fn waiting_for_keyframe(&self) -> bool {
        self.sink.need_keyframe
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A one-packet VP8 frame: descriptor, frame tag (keyframe or not), start code, 320x240.
    fn vp8(frame: u16, key: bool) -> Vec<u8> {
        let [hi, lo] = (frame | 0x8000).to_be_bytes();
        let mut payload = vec![0x90, 0x80, hi, lo, if key { 0x10 } else { 0x11 }, 0, 0];
        payload.extend([0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00]);
        payload.resize(40, 0);
        payload
    }

    #[test]
    fn a_keyframe_answering_the_early_request_cuts_the_chunk_when_it_comes() {
        let t0 = Instant::now();
        let mut config = MuxerConfig::new(Codec::Vp8);
        config.chunk_interval = Duration::from_secs(1);
        let mut muxer = TrackMuxer::new(config, t0, SystemTime::now()).unwrap();
        let mut outputs = Vec::new();
        // 25 frames/s; the publisher answers the request (at 500 ms) with a keyframe at 600 ms.
        for n in 0u16..40 {
            let payload = vp8(n, n == 0 || n == 15);
            let at = t0 + Duration::from_millis(40 * u64::from(n));
            let packet = RtpInput {
                ssrc: 7,
                sequence_number: n,
                timestamp: u32::from(n) * 3_600,
                marker: true,
                payload: &payload,
                arrival: at,
            };
            muxer.handle_rtp(packet).unwrap();
            outputs.extend(std::iter::from_fn(|| muxer.poll_output()));
        }
        let wanted = outputs
            .iter()
            .position(|o| matches!(o, Output::KeyframeWanted))
            .unwrap();
        let Some(Output::Chunk(first)) = outputs.get(wanted + 1) else {
            panic!("the chunk follows the request: {outputs:?}");
        };
        assert_eq!((first.info.start_ms, first.info.end_ms), (0, 600));
        assert!(first.info.starts_with_keyframe);
    }
}
