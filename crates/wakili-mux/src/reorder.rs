//! A small jitter buffer: puts one track's packets back in sequence-number order, waits a
//! bounded time for the missing ones, and reports those that never came as lost.

use std::time::{Duration, Instant};

use crate::seq::SeqUnwrapper;

/// A packet released in order.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PacketRef<'a> {
    /// RTP timestamp as sent.
    pub(crate) timestamp: u32,
    /// RTP marker bit (for video: last packet of a frame).
    pub(crate) marker: bool,
    /// RTP payload.
    pub(crate) payload: &'a [u8],
    /// When the packet arrived.
    pub(crate) arrival: Instant,
}

/// What the buffer releases, in sequence-number order.
#[derive(Debug)]
pub(crate) enum Released<'a> {
    /// The next packet.
    Packet(PacketRef<'a>),
    /// This many packets before the next one will never be released.
    Lost(u64),
}

/// What happened to a pushed packet besides being buffered or released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// Buffered or released.
    Accepted,
    /// Already received.
    Duplicate,
    /// Older than what was already released (it came after its loss was declared).
    Late,
}

#[derive(Debug)]
struct Slot {
    seq: u64,
    filled: bool,
    timestamp: u32,
    marker: bool,
    arrival: Instant,
    payload: Vec<u8>,
}

/// The jitter buffer: a ring of `capacity` slots indexed by extended sequence number. Payload
/// buffers are kept between uses, so a warmed-up buffer does not allocate; in-order packets
/// with nothing buffered pass through without being copied.
#[derive(Debug)]
pub(crate) struct ReorderBuffer {
    slots: Vec<Slot>,
    window: Duration,
    unwrap: SeqUnwrapper,
    next: Option<u64>,
    buffered: usize,
    /// Since when the head of the line has been missing (arrival of the first packet behind it).
    hole_since: Option<Instant>,
}

impl ReorderBuffer {
    /// A buffer holding at most `capacity` packets (at least 1), waiting at most `window` for a
    /// missing one.
    pub(crate) fn new(capacity: usize, window: Duration, now: Instant) -> Self {
        let slots = (0..capacity.max(1))
            .map(|_| Slot {
                seq: 0,
                filled: false,
                timestamp: 0,
                marker: false,
                arrival: now,
                payload: Vec::new(),
            })
            .collect();
        Self {
            slots,
            window,
            unwrap: SeqUnwrapper::default(),
            next: None,
            buffered: 0,
            hole_since: None,
        }
    }

    /// Forgets the stream (a new SSRC or a restarted publisher); call [`flush`](Self::flush)
    /// first to release what is buffered.
    pub(crate) fn reset(&mut self) {
        self.unwrap = SeqUnwrapper::default();
        self.next = None;
        self.hole_since = None;
        for slot in &mut self.slots {
            slot.filled = false;
        }
        self.buffered = 0;
    }

    fn index(&self, seq: u64) -> usize {
        // The modulo keeps the value below `slots.len()`, a usize.
        usize::try_from(seq % self.slots.len() as u64).unwrap_or(0)
    }

    /// Takes one packet (its 16-bit sequence number is extended here) and releases what is
    /// now in order.
    pub(crate) fn push(
        &mut self,
        sequence_number: u16,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
        arrival: Instant,
        out: &mut impl FnMut(Released<'_>),
    ) -> Pushed {
        let seq = self.unwrap.extend(u64::from(sequence_number));
        let next = *self.next.get_or_insert(seq);
        if seq < next {
            return Pushed::Late;
        }
        if seq == next && self.buffered == 0 {
            out(Released::Packet(PacketRef {
                timestamp,
                marker,
                payload,
                arrival,
            }));
            self.next = Some(seq + 1);
            return Pushed::Accepted;
        }
        let capacity = self.slots.len() as u64;
        if seq - next >= capacity {
            // No room to wait any longer for what is missing before this packet.
            self.skip_to(seq + 1 - capacity, out);
        }
        let index = self.index(seq);
        let slot = &mut self.slots[index];
        if slot.filled && slot.seq == seq {
            return Pushed::Duplicate;
        }
        slot.seq = seq;
        slot.filled = true;
        slot.timestamp = timestamp;
        slot.marker = marker;
        slot.arrival = arrival;
        slot.payload.clear();
        slot.payload.extend_from_slice(payload);
        self.buffered += 1;
        self.release_in_order(out);
        if self.buffered > 0 && self.hole_since.is_none() {
            self.hole_since = Some(arrival);
        }
        Pushed::Accepted
    }

    /// Releases buffered packets from `next` on, as long as there is no hole.
    fn release_in_order(&mut self, out: &mut impl FnMut(Released<'_>)) {
        let Some(mut next) = self.next else { return };
        while self.buffered > 0 {
            let index = self.index(next);
            let slot = &mut self.slots[index];
            if !(slot.filled && slot.seq == next) {
                break;
            }
            slot.filled = false;
            self.buffered -= 1;
            self.hole_since = None;
            out(Released::Packet(PacketRef {
                timestamp: slot.timestamp,
                marker: slot.marker,
                payload: &slot.payload,
                arrival: slot.arrival,
            }));
            next += 1;
        }
        self.next = Some(next);
    }

    /// Gives up on everything missing before `target`: releases what is buffered before it in
    /// order and reports the holes as lost.
    fn skip_to(&mut self, target: u64, out: &mut impl FnMut(Released<'_>)) {
        let Some(mut next) = self.next else { return };
        let mut lost = 0u64;
        while next < target {
            if self.buffered == 0 {
                lost += target - next;
                next = target;
                break;
            }
            let index = self.index(next);
            let slot = &mut self.slots[index];
            if slot.filled && slot.seq == next {
                if lost > 0 {
                    out(Released::Lost(lost));
                    lost = 0;
                }
                slot.filled = false;
                self.buffered -= 1;
                out(Released::Packet(PacketRef {
                    timestamp: slot.timestamp,
                    marker: slot.marker,
                    payload: &slot.payload,
                    arrival: slot.arrival,
                }));
            } else {
                lost += 1;
            }
            next += 1;
        }
        if lost > 0 {
            out(Released::Lost(lost));
        }
        self.next = Some(next);
        self.hole_since = None;
        self.release_in_order(out);
        if self.buffered > 0 {
            self.hole_since = self.earliest_buffered_arrival();
        }
    }

    fn earliest_buffered_arrival(&self) -> Option<Instant> {
        self.slots
            .iter()
            .filter(|s| s.filled)
            .map(|s| s.arrival)
            .min()
    }

    /// The first buffered sequence number after the hole at the head of the line.
    fn first_buffered(&self) -> Option<u64> {
        self.slots.iter().filter(|s| s.filled).map(|s| s.seq).min()
    }

    /// When [`handle_timeout`](Self::handle_timeout) would give up on the current hole.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.hole_since.map(|t| t + self.window)
    }

    /// Gives up on holes that have been waited for longer than the window.
    pub(crate) fn handle_timeout(&mut self, now: Instant, out: &mut impl FnMut(Released<'_>)) {
        while let Some(since) = self.hole_since {
            if now.saturating_duration_since(since) < self.window {
                break;
            }
            match self.first_buffered() {
                Some(first) => self.skip_to(first, out),
                None => self.hole_since = None,
            }
        }
    }

    /// Releases everything buffered, reporting the holes between as lost.
    pub(crate) fn flush(&mut self, out: &mut impl FnMut(Released<'_>)) {
        while let Some(first) = self.first_buffered() {
            self.skip_to(first, out);
        }
        self.hole_since = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Eq)]
    enum Ev {
        P(u16),
        Lost(u64),
    }

    struct Harness {
        buf: ReorderBuffer,
        t0: Instant,
        events: Vec<Ev>,
    }

    impl Harness {
        fn new(capacity: usize) -> Self {
            let t0 = Instant::now();
            Self {
                buf: ReorderBuffer::new(capacity, Duration::from_millis(100), t0),
                t0,
                events: Vec::new(),
            }
        }
        fn push(&mut self, seq: u16, at_ms: u64) -> Pushed {
            let events = &mut self.events;
            self.buf.push(
                seq,
                0,
                false,
                &seq.to_be_bytes(),
                self.t0 + Duration::from_millis(at_ms),
                &mut |r| events.push(to_ev(r)),
            )
        }
        fn timeout(&mut self, at_ms: u64) {
            let events = &mut self.events;
            self.buf
                .handle_timeout(self.t0 + Duration::from_millis(at_ms), &mut |r| {
                    events.push(to_ev(r))
                });
        }
    }

    fn to_ev(r: Released<'_>) -> Ev {
        match r {
            Released::Packet(p) => Ev::P(u16::from_be_bytes([p.payload[0], p.payload[1]])),
            Released::Lost(n) => Ev::Lost(n),
        }
    }

    #[test]
    fn a_reordered_packet_is_released_in_its_place() {
        let mut h = Harness::new(16);
        h.push(10, 0);
        h.push(12, 1);
        h.push(11, 2);
        h.push(13, 3);
        assert_eq!(h.events, [Ev::P(10), Ev::P(11), Ev::P(12), Ev::P(13)]);
    }

    #[test]
    fn a_missing_packet_is_declared_lost_after_the_window() {
        let mut h = Harness::new(16);
        h.push(1, 0);
        h.push(3, 10);
        h.timeout(50);
        assert_eq!(h.events, [Ev::P(1)]);
        assert_eq!(
            h.buf.poll_timeout(),
            Some(h.t0 + Duration::from_millis(110))
        );
        h.timeout(110);
        assert_eq!(h.events, [Ev::P(1), Ev::Lost(1), Ev::P(3)]);
        assert_eq!(h.push(2, 120), Pushed::Late);
    }

    #[test]
    fn a_full_buffer_gives_up_on_the_oldest_hole() {
        let mut h = Harness::new(4);
        h.push(1, 0);
        for s in 3..=6 {
            h.push(s, 1);
        }
        assert_eq!(
            h.events,
            [
                Ev::P(1),
                Ev::Lost(1),
                Ev::P(3),
                Ev::P(4),
                Ev::P(5),
                Ev::P(6)
            ]
        );
    }

    #[test]
    fn duplicates_are_refused_and_order_survives_the_wrap() {
        let mut h = Harness::new(16);
        h.push(65534, 0);
        h.push(0, 1);
        assert_eq!(h.push(0, 2), Pushed::Duplicate);
        h.push(65535, 3);
        assert_eq!(h.events, [Ev::P(65534), Ev::P(65535), Ev::P(0)]);
    }

    #[test]
    fn a_far_jump_reports_the_whole_gap_as_lost() {
        let mut h = Harness::new(8);
        h.push(1, 0);
        h.push(1001, 1);
        assert_eq!(h.events, [Ev::P(1), Ev::Lost(992)]);
        h.timeout(200);
        assert_eq!(
            h.events,
            [Ev::P(1), Ev::Lost(992), Ev::Lost(7), Ev::P(1001)]
        );
    }
}
