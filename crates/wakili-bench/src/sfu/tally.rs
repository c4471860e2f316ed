//! What peers count: the measurement window, one clock for send and receive times, packets
//! sent and received per stream, and a latency histogram.

use std::{
    collections::HashMap,
    sync::{
        OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

/// µs since the first call in this process: the clock markers carry. Senders and receivers
/// are tasks of this one process, so receive − send needs no clock synchronisation.
pub fn clock_us(at: Instant) -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    at.saturating_duration_since(epoch).as_micros() as u64
}

/// The measured window, by send time: packets sent in it are counted on both sides.
#[derive(Debug)]
pub struct Window {
    start_us: AtomicU64,
    end_us: AtomicU64,
}

impl Default for Window {
    fn default() -> Self {
        Self {
            start_us: AtomicU64::new(u64::MAX),
            end_us: AtomicU64::new(u64::MAX),
        }
    }
}

impl Window {
    /// Opens the window at `at`.
    pub fn open(&self, at: Instant) {
        self.start_us.store(clock_us(at), Ordering::Relaxed);
    }

    /// Closes the window at `at`.
    pub fn close(&self, at: Instant) {
        self.end_us.store(clock_us(at), Ordering::Relaxed);
    }

    /// When it opened (µs on [`clock_us`]'s clock).
    pub fn start_us(&self) -> u64 {
        self.start_us.load(Ordering::Relaxed)
    }

    /// Whether a packet sent at `sent_us` belongs to the window.
    pub fn contains(&self, sent_us: u64) -> bool {
        sent_us >= self.start_us() && sent_us < self.end_us.load(Ordering::Relaxed)
    }
}

/// Latencies in µs: exact below 1,024 µs, then 64 buckets per power of two (≤ 1.6 % error).
#[derive(Debug, Clone)]
pub struct Histogram {
    buckets: Vec<u64>,
    count: u64,
    max: u64,
}

const LINEAR: u64 = 1024;
const SUB_BITS: u32 = 6;

impl Default for Histogram {
    fn default() -> Self {
        Self {
            buckets: vec![0; Self::bucket(u64::MAX) + 1],
            count: 0,
            max: 0,
        }
    }
}

impl Histogram {
    fn bucket(us: u64) -> usize {
        if us < LINEAR {
            return us as usize;
        }
        let power = 63 - us.leading_zeros(); // ≥ 10
        let sub = (us >> (power - SUB_BITS)) & ((1 << SUB_BITS) - 1);
        LINEAR as usize + ((power - 10) << SUB_BITS) as usize + sub as usize
    }

    /// The smallest value of bucket `b`.
    fn floor(b: usize) -> u64 {
        if (b as u64) < LINEAR {
            return b as u64;
        }
        let rest = b - LINEAR as usize;
        let power = (rest >> SUB_BITS) as u32 + 10;
        let sub = (rest & ((1 << SUB_BITS) - 1)) as u64;
        (1 << power) | (sub << (power - SUB_BITS))
    }

    /// Counts one latency.
    pub fn record(&mut self, us: u64) {
        self.buckets[Self::bucket(us)] += 1;
        self.count += 1;
        self.max = self.max.max(us);
    }

    /// Adds `other`'s counts.
    pub fn merge(&mut self, other: &Self) {
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        self.count += other.count;
        self.max = self.max.max(other.max);
    }

    /// Values counted.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Largest value.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0–1), as its bucket's lower bound; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (b, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(Self::floor(b).min(self.max));
            }
        }
        Some(self.max)
    }
}

/// Distinct sequence numbers received of one stream.
#[derive(Debug, Clone, Default)]
pub struct SeqSet {
    bits: Vec<u64>,
    count: u64,
}

impl SeqSet {
    /// Adds `seq`; whether it was new.
    pub fn insert(&mut self, seq: u32) -> bool {
        let (word, bit) = (seq as usize / 64, seq % 64);
        if word >= self.bits.len() {
            self.bits.resize(word + 1, 0);
        }
        let fresh = self.bits[word] & (1 << bit) == 0;
        self.bits[word] |= 1 << bit;
        self.count += u64::from(fresh);
        fresh
    }

    /// Distinct numbers.
    pub fn len(&self) -> u64 {
        self.count
    }
}

/// One peer's counts, handed back when it stops.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Publisher: packets sent in the window, by stream id.
    pub sent: HashMap<u16, u64>,
    /// Subscriber: distinct packets sent in the window and received, by stream id.
    pub received: HashMap<u16, SeqSet>,
    /// Subscriber: receive − send of the packets counted in `received`.
    pub latency: Histogram,
    /// Subscriber: arrival on its socket (kernel timestamp) − send, of the same packets.
    pub arrival: Histogram,
    /// Subscriber: the packets of `arrival` that came late (see [`super::slow`]).
    pub slow: super::slow::SlowLog,
    /// Subscriber: packets received twice (retransmissions that were not needed).
    pub duplicates: u64,
    /// Keyframe requests (PLI/FIR) the publisher got.
    pub keyframe_requests: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_are_close() {
        let mut h = Histogram::default();
        for us in 1..=10_000 {
            h.record(us);
        }
        assert_eq!(h.count(), 10_000);
        assert_eq!(h.quantile(0.05), Some(500));
        let p99 = h.quantile(0.99).unwrap();
        assert!((9_800..=9_900).contains(&p99), "{p99}");
        assert_eq!(h.max(), 10_000);
        let mut other = Histogram::default();
        other.record(5_000_000);
        h.merge(&other);
        let top = h.quantile(1.0).unwrap();
        assert!(
            top <= 5_000_000 && 5_000_000 - top <= 5_000_000 / 64,
            "{top}"
        );
        assert_eq!(Histogram::default().quantile(0.5), None);
        for us in [0, 1023, 1024, 1025, 4096, 123_456, 1 << 40] {
            let floor = Histogram::floor(Histogram::bucket(us));
            assert!(floor <= us && us - floor <= us / 64, "{us} → {floor}");
        }
    }

    #[test]
    fn seq_sets_count_distinct_numbers() {
        let mut s = SeqSet::default();
        assert!(s.insert(5));
        assert!(s.insert(700));
        assert!(!s.insert(5));
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn the_window_holds_what_was_sent_inside_it() {
        let w = Window::default();
        let t0 = Instant::now();
        assert!(!w.contains(clock_us(t0)));
        w.open(t0);
        assert!(w.contains(clock_us(t0) + 10));
        w.close(t0 + std::time::Duration::from_millis(1));
        assert!(!w.contains(clock_us(t0) + 2_000));
    }
}
