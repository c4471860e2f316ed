//! A lock-free latency histogram: log-linear buckets (exact below 128 ns, then 64 per power of
//! two, so at most 1/64 ≈ 1.6 % wide), recorded from any thread with relaxed atomic adds.

use std::sync::atomic::{AtomicU64, Ordering};

/// Values below this have a bucket each.
const EXACT: u64 = 128;
/// Buckets per power of two above [`EXACT`].
const SUB: u64 = 64;
/// log2(SUB).
const SUB_BITS: u32 = 6;
/// log2(EXACT).
const EXACT_BITS: u32 = 7;
const BUCKETS: usize = (EXACT + (64 - EXACT_BITS as u64) * SUB) as usize;

/// Counts of values (nanoseconds), safe to record from many threads at once.
pub struct Histogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum: AtomicU64,
    max: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.count())
            .field("max", &self.max())
            .finish_non_exhaustive()
    }
}

fn index(value: u64) -> usize {
    if value < EXACT {
        return value as usize;
    }
    let exponent = 63 - value.leading_zeros(); // ≥ EXACT_BITS
    let mantissa = value >> (exponent - SUB_BITS); // in [SUB, 2 × SUB)
    (EXACT + u64::from(exponent - EXACT_BITS) * SUB + (mantissa - SUB)) as usize
}

/// The smallest and largest value of bucket `index`.
fn bounds(index: usize) -> (u64, u64) {
    let index = index as u64;
    if index < EXACT {
        return (index, index);
    }
    let exponent = EXACT_BITS as u64 + (index - EXACT) / SUB;
    let mantissa = SUB + (index - EXACT) % SUB;
    let shift = exponent - u64::from(SUB_BITS);
    let low = mantissa << shift;
    (low, low + ((1u64 << shift) - 1))
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            max: AtomicU64::new(0),
        }
    }

    /// Counts one value.
    pub fn record(&self, value: u64) {
        self.buckets[index(value)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
        self.max.fetch_max(value, Ordering::Relaxed);
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The largest value recorded (0 when empty).
    pub fn max(&self) -> u64 {
        self.max.load(Ordering::Relaxed)
    }

    /// The mean, when any value was recorded.
    pub fn mean(&self) -> Option<f64> {
        let count = self.count();
        (count > 0).then(|| self.sum.load(Ordering::Relaxed) as f64 / count as f64)
    }

    /// The value at quantile `q` (0.5 = median, 0.99): the upper bound of the bucket holding
    /// the ⌈q × n⌉-th smallest value, capped at the maximum; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        quantile(&counts, q).map(|v| v.min(self.max()))
    }
}

/// The upper bound of the bucket holding the ⌈q × n⌉-th smallest of the counted values.
fn quantile(counts: &[u64], q: f64) -> Option<u64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    // The small subtraction keeps 0.99 × 1000 at rank 990 despite rounding.
    let rank = ((q.clamp(0.0, 1.0) * total as f64 - 1e-9).ceil() as u64).max(1);
    let mut seen = 0;
    for (i, &c) in counts.iter().enumerate() {
        seen += c;
        if seen >= rank {
            return Some(bounds(i).1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_in_order() {
        let mut last = None;
        for i in 0..BUCKETS {
            let (low, high) = bounds(i);
            assert!(low <= high);
            if let Some(previous) = last {
                assert_eq!(low, previous + 1, "gap before bucket {i}");
            }
            assert_eq!(index(low), i);
            assert_eq!(index(high), i);
            last = Some(high);
        }
        assert_eq!(last, Some(u64::MAX));
    }

    #[test]
    fn buckets_are_at_most_one_sixty_fourth_wide() {
        for value in [128u64, 1_000, 12_345, 999_999, 5_000_000, 1 << 40] {
            let (low, high) = bounds(index(value));
            assert!(low <= value && value <= high);
            assert!(
                (high - low) as f64 <= low as f64 / 64.0,
                "{value}: {low}..{high}"
            );
        }
    }

    #[test]
    fn quantiles_of_small_values_are_exact() {
        let h = Histogram::new();
        for v in 1..=100 {
            h.record(v);
        }
        assert_eq!(h.count(), 100);
        assert_eq!(h.quantile(0.5), Some(50));
        assert_eq!(h.quantile(0.99), Some(99));
        assert_eq!(h.quantile(1.0), Some(100));
        assert_eq!(h.quantile(0.0), Some(1));
        assert_eq!(h.mean(), Some(50.5));
        assert_eq!(h.max(), 100);
    }

    #[test]
    fn quantiles_of_large_values_are_close_and_capped_at_the_max() {
        let h = Histogram::new();
        // 990 fast values of 200 µs, 10 slow ones of 30 ms.
        for _ in 0..990 {
            h.record(200_000);
        }
        for _ in 0..10 {
            h.record(30_000_000);
        }
        let p50 = h.quantile(0.5).unwrap();
        assert!((200_000..=203_200).contains(&p50), "{p50}");
        let p99 = h.quantile(0.99).unwrap();
        assert!((200_000..=203_200).contains(&p99), "{p99}");
        // The 991st value is slow: p99.1 lands there, capped at the true maximum.
        assert_eq!(h.quantile(0.991), Some(30_000_000));
    }

    #[test]
    fn an_empty_histogram_has_no_quantiles() {
        let h = Histogram::new();
        assert_eq!(h.quantile(0.5), None);
        assert_eq!(h.mean(), None);
    }

    #[test]
    fn concurrent_records_are_all_counted() {
        let h = std::sync::Arc::new(Histogram::new());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let h = h.clone();
                std::thread::spawn(move || {
                    for v in 0..10_000u64 {
                        h.record(v * (t + 1));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(h.count(), 40_000);
        assert_eq!(h.max(), 9_999 * 4);
    }
}
