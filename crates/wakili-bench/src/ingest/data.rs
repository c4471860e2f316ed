//! The bytes to ingest: generated up front from a fast PRNG (incompressible, never all zeros),
//! with every chunk's SHA-256 and the whole SHA-256 computed before anything is timed.

use std::ops::Range;

use bytes::Bytes;
use sha2::{Digest, Sha256};

/// The media to upload, cut into chunks, with its digests.
#[derive(Debug, Clone)]
pub struct Media {
    /// All the bytes; chunks are zero-copy slices of it.
    pub bytes: Bytes,
    /// Bytes per chunk (the last may be shorter).
    pub chunk_bytes: usize,
    /// SHA-256 of each chunk, in order.
    pub chunk_sha256: Vec<[u8; 32]>,
    /// SHA-256 of all the bytes.
    pub sha256: [u8; 32],
}

impl Media {
    /// Generates `size` bytes in chunks of `chunk_bytes` on `threads` threads; the same `seed`
    /// gives the same bytes.
    pub fn generate(size: usize, chunk_bytes: usize, threads: usize, seed: u64) -> Self {
        let chunk_bytes = chunk_bytes.max(1);
        let count = size.div_ceil(chunk_bytes);
        let mut data = vec![0u8; size];
        let mut chunk_sha256 = vec![[0u8; 32]; count];
        // Each thread fills and hashes whole chunks: a contiguous run of them.
        let per_thread = count.div_ceil(threads.max(1)).max(1);
        std::thread::scope(|scope| {
            for (part, (region, digests)) in data
                .chunks_mut(per_thread * chunk_bytes)
                .zip(chunk_sha256.chunks_mut(per_thread))
                .enumerate()
            {
                scope.spawn(move || {
                    for (i, (chunk, digest)) in
                        region.chunks_mut(chunk_bytes).zip(digests).enumerate()
                    {
                        let seq = (part * per_thread + i) as u64;
                        fill(chunk, seed ^ seq.wrapping_mul(0x9e37_79b9_7f4a_7c15));
                        *digest = Sha256::digest(&*chunk).into();
                    }
                });
            }
        });
        let sha256 = Sha256::digest(&data).into();
        Self {
            bytes: Bytes::from(data),
            chunk_bytes,
            chunk_sha256,
            sha256,
        }
    }

    /// Total bytes.
    pub fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// Number of chunks.
    pub fn chunk_count(&self) -> usize {
        self.chunk_sha256.len()
    }

    /// Byte range of chunk `seq`.
    pub fn chunk_range(&self, seq: usize) -> Range<usize> {
        let start = seq * self.chunk_bytes;
        start..(start + self.chunk_bytes).min(self.bytes.len())
    }

    /// Chunk `seq`, sharing the buffer.
    pub fn chunk(&self, seq: usize) -> Bytes {
        self.bytes.slice(self.chunk_range(seq))
    }
}

/// Fills `out` from SplitMix64 seeded with `seed` (several GB/s: the generation is not what the
/// run waits for).
fn fill(out: &mut [u8], seed: u64) {
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut words = out.chunks_exact_mut(8);
    for word in &mut words {
        word.copy_from_slice(&next().to_le_bytes());
    }
    let tail = words.into_remainder();
    let last = next().to_le_bytes();
    tail.copy_from_slice(&last[..tail.len()]);
}

/// Lowercase hex of a digest.
pub fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn chunks_cover_the_data_and_their_digests_match() {
        let media = Media::generate(10_000, 3_000, 3, 7);
        assert_eq!(media.len(), 10_000);
        assert_eq!(media.chunk_count(), 4);
        assert_eq!(media.chunk_range(3), 9_000..10_000);
        for seq in 0..4 {
            let chunk = media.chunk(seq);
            assert_eq!(
                <[u8; 32]>::from(Sha256::digest(&chunk)),
                media.chunk_sha256[seq]
            );
        }
        assert_eq!(<[u8; 32]>::from(Sha256::digest(&media.bytes)), media.sha256);
    }

    #[test]
    fn data_is_deterministic_varied_and_independent_of_threads() {
        let one = Media::generate(100_003, 1 << 12, 1, 42);
        let many = Media::generate(100_003, 1 << 12, 8, 42);
        assert_eq!(one.bytes, many.bytes);
        assert_ne!(one.bytes, Media::generate(100_003, 1 << 12, 1, 43).bytes);
        // Chunks differ from each other, and no byte value dominates.
        assert_ne!(one.chunk(0), one.chunk(1).slice(..4096));
        let zeros = one.bytes.iter().filter(|&&b| b == 0).count();
        assert!(zeros < 1_000, "{zeros} zero bytes");
    }

    #[test]
    fn hex_is_lowercase() {
        assert_eq!(hex(&[0x00, 0xab, 0x5f]), "00ab5f");
    }
}
