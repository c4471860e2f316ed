//! Frames from in-order packets: VP8 frames are reassembled across packets (same RTP
//! timestamp, first packet with S=1/PID=0, last with the marker bit) with str0m's
//! depacketizer; an Opus packet is one frame.

use std::time::Instant;

use str0m::format::CodecExtra;
use str0m::unversioned::{Depacketizer, Vp8Depacketizer};

use crate::reorder::PacketRef;
use crate::{Codec, vp8};

/// A complete frame.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Frame<'a> {
    /// RTP timestamp of its packets.
    pub(crate) timestamp: u32,
    /// The codec bitstream (payload descriptors removed).
    pub(crate) data: &'a [u8],
    /// Decodable without earlier frames.
    pub(crate) keyframe: bool,
    /// Earliest arrival among its packets.
    pub(crate) arrival: Instant,
}

/// Why a frame was not assembled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Broken {
    /// Some of its packets are missing (lost, or the first or last never came).
    Incomplete,
    /// Its payload does not parse (descriptor or keyframe header).
    Invalid,
    /// It grew past the frame size limit.
    TooLarge,
}

/// What the assembler produced from a packet.
#[derive(Debug)]
pub(crate) enum Assembled<'a> {
    /// A complete frame.
    Frame(Frame<'a>),
    /// A frame was thrown away.
    Dropped(Broken),
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// Between frames.
    Idle,
    /// Collecting the packets of the frame with this RTP timestamp.
    Building { timestamp: u32, arrival: Instant },
    /// Ignoring the rest of a broken frame with this RTP timestamp.
    Skipping { timestamp: u32 },
}

#[derive(Debug)]
enum Depack {
    Vp8(Vp8Depacketizer),
    Opus,
}

/// Turns one track's in-order packets into frames.
#[derive(Debug)]
pub(crate) struct Assembler {
    depack: Depack,
    state: State,
    frame: Vec<u8>,
    extra: CodecExtra,
    max_frame_bytes: usize,
}

impl Assembler {
    pub(crate) fn new(codec: Codec, max_frame_bytes: usize) -> Self {
        let depack = match codec {
            Codec::Vp8 => Depack::Vp8(Vp8Depacketizer::default()),
            Codec::Opus { .. } => Depack::Opus,
        };
        Self {
            depack,
            state: State::Idle,
            frame: Vec::new(),
            extra: CodecExtra::None,
            max_frame_bytes,
        }
    }

    /// Forgets the stream's depacketizer state (a new SSRC or a restarted publisher).
    pub(crate) fn reset(&mut self) {
        if let Depack::Vp8(d) = &mut self.depack {
            *d = Vp8Depacketizer::default();
        }
        self.state = State::Idle;
    }

    /// Packets are missing before the next one: the frame being built cannot be completed.
    pub(crate) fn lost(&mut self, out: &mut impl FnMut(Assembled<'_>)) {
        self.abandon(out);
    }

    /// The stream ends or restarts: a frame still being built is incomplete.
    pub(crate) fn flush(&mut self, out: &mut impl FnMut(Assembled<'_>)) {
        self.abandon(out);
    }

    fn abandon(&mut self, out: &mut impl FnMut(Assembled<'_>)) {
        if let State::Building { .. } = self.state {
            out(Assembled::Dropped(Broken::Incomplete));
        }
        self.state = State::Idle;
    }

    /// Takes the next packet in sequence order. Empty payloads (padding) carry no media and
    /// are skipped without touching the frame being built.
    pub(crate) fn push(&mut self, packet: PacketRef<'_>, out: &mut impl FnMut(Assembled<'_>)) {
        if packet.payload.is_empty() {
            return;
        }
        match &mut self.depack {
            Depack::Opus => {
                if packet.payload.len() > self.max_frame_bytes {
                    out(Assembled::Dropped(Broken::TooLarge));
                    return;
                }
                out(Assembled::Frame(Frame {
                    timestamp: packet.timestamp,
                    data: packet.payload,
                    keyframe: true,
                    arrival: packet.arrival,
                }));
            }
            Depack::Vp8(_) => self.push_vp8(packet, out),
        }
    }

    fn push_vp8(&mut self, packet: PacketRef<'_>, out: &mut impl FnMut(Assembled<'_>)) {
        match self.state {
            State::Building { timestamp, .. } if timestamp != packet.timestamp => {
                // The previous frame's last packet never came.
                out(Assembled::Dropped(Broken::Incomplete));
                self.state = State::Idle;
            }
            State::Skipping { timestamp } if timestamp == packet.timestamp => {
                if packet.marker {
                    self.state = State::Idle;
                }
                return;
            }
            State::Skipping { .. } => self.state = State::Idle,
            _ => {}
        }
        if let State::Idle = self.state {
            if !vp8::payload_starts_frame(packet.payload) {
                // A frame whose first packet is missing.
                out(Assembled::Dropped(Broken::Incomplete));
                self.skip_rest(packet);
                return;
            }
            self.frame.clear();
            self.extra = CodecExtra::None;
            self.state = State::Building {
                timestamp: packet.timestamp,
                arrival: packet.arrival,
            };
        }
        let State::Building { arrival, .. } = self.state else {
            return;
        };
        let Depack::Vp8(depack) = &mut self.depack else {
            return;
        };
        if depack
            .depacketize(packet.payload, &mut self.frame, &mut self.extra)
            .is_err()
        {
            out(Assembled::Dropped(Broken::Invalid));
            self.skip_rest(packet);
            return;
        }
        if self.frame.len() > self.max_frame_bytes {
            out(Assembled::Dropped(Broken::TooLarge));
            self.skip_rest(packet);
            return;
        }
        self.state = State::Building {
            timestamp: packet.timestamp,
            arrival: arrival.min(packet.arrival),
        };
        if !packet.marker {
            return;
        }
        self.state = State::Idle;
        let keyframe = matches!(self.extra, CodecExtra::Vp8(e) if e.is_keyframe);
        if keyframe && vp8::keyframe_size(&self.frame).is_none() {
            out(Assembled::Dropped(Broken::Invalid));
            return;
        }
        out(Assembled::Frame(Frame {
            timestamp: packet.timestamp,
            data: &self.frame,
            keyframe,
            arrival: arrival.min(packet.arrival),
        }));
    }

    /// Ignores the remaining packets of the frame `packet` belongs to.
    fn skip_rest(&mut self, packet: PacketRef<'_>) {
        self.state = if packet.marker {
            State::Idle
        } else {
            State::Skipping {
                timestamp: packet.timestamp,
            }
        };
    }
}
