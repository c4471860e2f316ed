//! Where a latency tail comes from: the packets that reached a subscriber's socket late, grouped
//! by when they were sent. A tail that hits every subscriber in the same 100 ms is a stall (the
//! server's loop, or the machine); one confined to a subscriber or a publisher's video is a queue
//! (a pacer, a keyframe burst); audio late with video points away from the pacer, which sends
//! audio first.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use super::media::stream_parts;

/// A packet is slow when it reached the subscriber's socket this long after it was sent (µs).
pub const SLOW_US: u64 = 5_000;
/// Slow packets one subscriber keeps (the rest are counted only).
const KEPT: usize = 20_000;
/// Moments are this long (µs of send time).
const MOMENT_US: u64 = 100_000;
/// Moments reported, the worst first.
const REPORTED: usize = 3;

/// One late packet, as a subscriber saw it.
#[derive(Debug, Clone, Copy)]
pub struct SlowPacket {
    /// Send time (µs on the generator's clock).
    pub sent_us: u64,
    /// Arrival on the socket − send (µs).
    pub latency_us: u64,
    /// Its stream ([`super::media::stream_id`]).
    pub stream: u16,
}

/// One subscriber's late packets.
#[derive(Debug, Clone, Default)]
pub struct SlowLog {
    kept: Vec<SlowPacket>,
    count: u64,
}

impl SlowLog {
    /// Notes the packet if it is slow.
    pub fn note(&mut self, packet: SlowPacket) {
        if packet.latency_us < SLOW_US {
            return;
        }
        self.count += 1;
        if self.kept.len() < KEPT {
            self.kept.push(packet);
        }
    }
}

/// 100 ms of send time with slow packets in it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SlowMoment {
    /// Its start, seconds into the window.
    pub at_s: f64,
    /// Slow packets sent in it.
    pub packets: u64,
    /// Of them, audio.
    pub audio: u64,
    /// Subscribers that got one.
    pub subscribers: usize,
    /// Publishers whose packets they were.
    pub publishers: usize,
    /// The latest of them, ms.
    pub max_ms: f64,
}

/// The window's slow packets, summed over every subscriber.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct SlowSummary {
    /// Slow packets in all.
    pub packets: u64,
    /// Subscribers that got at least one.
    pub subscribers: usize,
    /// The moments with the most slow packets, the worst first.
    pub worst: Vec<SlowMoment>,
}

/// Sums the subscribers' logs; `start_us` is the window's opening.
pub fn summarize<'a>(logs: impl IntoIterator<Item = &'a SlowLog>, start_us: u64) -> SlowSummary {
    #[derive(Default)]
    struct Moment {
        packets: u64,
        audio: u64,
        subscribers: HashSet<usize>,
        publishers: HashSet<u16>,
        max_us: u64,
    }
    let mut summary = SlowSummary::default();
    let mut moments: HashMap<u64, Moment> = HashMap::new();
    for (subscriber, log) in logs.into_iter().enumerate() {
        summary.packets += log.count;
        summary.subscribers += usize::from(log.count > 0);
        for p in &log.kept {
            let m = moments
                .entry(p.sent_us.saturating_sub(start_us) / MOMENT_US)
                .or_default();
            let (publisher, layer) = stream_parts(p.stream);
            m.packets += 1;
            m.audio += u64::from(layer.is_none());
            m.subscribers.insert(subscriber);
            m.publishers.insert(publisher);
            m.max_us = m.max_us.max(p.latency_us);
        }
    }
    let mut moments: Vec<(u64, Moment)> = moments.into_iter().collect();
    moments.sort_by_key(|(slot, m)| (std::cmp::Reverse(m.packets), *slot));
    summary.worst = moments
        .into_iter()
        .take(REPORTED)
        .map(|(slot, m)| SlowMoment {
            at_s: (slot * MOMENT_US) as f64 / 1e6,
            packets: m.packets,
            audio: m.audio,
            subscribers: m.subscribers.len(),
            publishers: m.publishers.len(),
            max_ms: m.max_us as f64 / 1000.0,
        })
        .collect();
    summary
}

impl SlowSummary {
    /// One line for the report; `of` is the number of subscribers.
    pub fn line(&self, of: usize) -> String {
        let mut line = format!(
            "{} packets reached a socket {} ms or more after they were sent, at {} of {of} \
             subscribers",
            self.packets,
            SLOW_US / 1000,
            self.subscribers
        );
        for m in &self.worst {
            line += &format!(
                "; +{:.1} s: {} ({} audio) to {} subscribers from {} publishers, up to {:.1} ms",
                m.at_s, m.packets, m.audio, m.subscribers, m.publishers, m.max_ms
            );
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(sent_us: u64, latency_us: u64, stream: u16) -> SlowPacket {
        SlowPacket {
            sent_us,
            latency_us,
            stream,
        }
    }

    #[test]
    fn a_stall_shows_as_one_moment_across_subscribers() {
        let start = 1_000_000;
        let mut a = SlowLog::default();
        let mut b = SlowLog::default();
        let quiet = SlowLog::default();
        // A stall 2.3 s in: both subscribers, audio and video of two publishers.
        for i in 0..10 {
            a.note(packet(start + 2_300_000 + i * 1_000, 30_000, 4));
            b.note(packet(start + 2_310_000 + i * 1_000, 35_000, 9));
        }
        // Noise elsewhere, and a packet that was not slow.
        a.note(packet(start + 5_000_000, 6_000, 7));
        b.note(packet(start + 5_000_000, SLOW_US - 1, 7));

        let s = summarize([&a, &quiet, &b], start);
        assert_eq!(s.packets, 21);
        assert_eq!(s.subscribers, 2);
        let worst = &s.worst[0];
        assert_eq!(worst.at_s, 2.3);
        assert_eq!((worst.packets, worst.audio), (20, 10));
        assert_eq!((worst.subscribers, worst.publishers), (2, 2));
        assert_eq!(worst.max_ms, 35.0);
        assert_eq!(s.worst[1].at_s, 5.0);
        assert_eq!(s.worst.len(), 2);
        let line = s.line(3);
        assert!(line.contains("at 2 of 3 subscribers"), "{line}");
        assert!(line.contains("+2.3 s: 20 (10 audio)"), "{line}");
    }

    #[test]
    fn a_quiet_window_has_no_moments() {
        let s = summarize([&SlowLog::default()], 0);
        assert_eq!(s, SlowSummary::default());
    }
}
