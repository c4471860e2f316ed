//! HTTP `Range` requests over an encrypted recording.
//!
//! The media a client downloads is the present chunks' plaintext concatenated in sequence
//! order. [`parse_range`] turns a `Range` header into one inclusive byte range of that media;
//! [`Layout::plan`] says which sealed segments of which chunk objects hold it, so the service
//! fetches only those ciphertext bytes, opens each segment and emits the wanted slice.

use std::ops::Range;

use crate::{
    error::{ManifestError, RequestError, Result, StorageError},
    manifest::Manifest,
    seal::{
        MAX_CHUNK_BYTES, MAX_CHUNKS, SEGMENT_BYTES, segment_object_range, segment_plaintext_len,
    },
};

/// Reads a `Range` header for a body of `total` bytes.
///
/// - `bytes=a-b`, `bytes=a-` and `bytes=-n` give `Ok(Some((start, end)))` with `end` inclusive
///   and clamped to `total - 1` (a suffix longer than the body is the whole body).
/// - Several ranges give `Ok(None)`: RFC 9110 §14.2 lets a server ignore `Range` and send the
///   whole body with 200, which is simpler than `multipart/byteranges` and what players cope
///   with.
/// - An invalid header (another unit, bad syntax, `b < a`) gives `Ok(None)` too: RFC 9110
///   §14.2 says to ignore a `Range` that cannot be parsed.
/// - A valid range that selects nothing (`a >= total`, `-0`, or any range when `total == 0`)
///   gives [`StorageError::Request(RequestError::RangeNotSatisfiable)`], which the HTTP layer answers with 416 and
///   `Content-Range: bytes */{total}`.
///
/// Positions too large for `u64` saturate, so they are treated as "past the end".
pub fn parse_range(header: &str, total: u64) -> Result<Option<(u64, u64)>> {
    let Some((unit, set)) = header.trim().split_once('=') else {
        return Ok(None);
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return Ok(None);
    }
    let mut specs = set.split(',').map(str::trim).filter(|s| !s.is_empty());
    let (Some(spec), None) = (specs.next(), specs.next()) else {
        return Ok(None);
    };
    let Some((first, last)) = spec.split_once('-') else {
        return Ok(None);
    };
    let unsatisfiable = Err(StorageError::Request(RequestError::RangeNotSatisfiable {
        total,
    }));
    match (first.trim(), last.trim()) {
        ("", "") => Ok(None),
        ("", suffix) => {
            let Some(n) = parse_position(suffix) else {
                return Ok(None);
            };
            if n == 0 || total == 0 {
                return unsatisfiable;
            }
            Ok(Some((total.saturating_sub(n), total - 1)))
        }
        (first, last) => {
            let Some(start) = parse_position(first) else {
                return Ok(None);
            };
            let end = match last {
                "" => u64::MAX,
                last => match parse_position(last) {
                    Some(end) if end >= start => end,
                    _ => return Ok(None),
                },
            };
            if start >= total {
                return unsatisfiable;
            }
            Ok(Some((start, end.min(total - 1))))
        }
    }
}

/// A run of ASCII digits as a `u64`, saturating; `None` for anything else.
fn parse_position(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse().unwrap_or(u64::MAX))
}

/// One sealed segment a range read needs, and which of its plaintext bytes to keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentRead {
    /// The chunk holding it.
    pub seq: u32,
    /// The segment's index inside that chunk (for [`crate::RecordingCipher::open_segment`]).
    pub segment: u32,
    /// Byte range of the sealed segment inside the chunk's object (plaintext + tag).
    pub object_range: Range<u64>,
    /// Plaintext bytes to drop from the front of the opened segment.
    pub skip: usize,
    /// Plaintext bytes to emit after `skip`.
    pub take: usize,
}

/// A present chunk and where its plaintext starts in the media.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Placed {
    seq: u32,
    size: u64,
    offset: u64,
}

/// Where each present chunk's plaintext sits in the downloadable media.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    chunks: Vec<Placed>,
    total: u64,
}

impl Layout {
    /// The layout of the present chunks `(seq, plaintext size)`, strictly ascending by `seq`,
    /// concatenated as the media.
    pub fn new(chunks: Vec<(u32, u64)>) -> Result<Self> {
        let mut placed = Vec::with_capacity(chunks.len());
        let mut total: u64 = 0;
        for (seq, size) in chunks {
            if placed.last().is_some_and(|p: &Placed| p.seq >= seq) {
                return Err(ManifestError::InvalidChunks(
                    "chunks are not in ascending order".into(),
                )
                .into());
            }
            if seq >= MAX_CHUNKS || size == 0 || size > MAX_CHUNK_BYTES {
                return Err(
                    ManifestError::InvalidChunks(format!("chunk {seq} of {size} bytes")).into(),
                );
            }
            placed.push(Placed {
                seq,
                size,
                offset: total,
            });
            total += size;
        }
        Ok(Self {
            chunks: placed,
            total,
        })
    }

    /// The layout of the chunks a manifest lists.
    pub fn from_manifest(manifest: &Manifest) -> Result<Self> {
        Self::new(manifest.chunks.iter().map(|c| (c.seq, c.size)).collect())
    }

    /// Length of the media in bytes.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The segment reads that produce media bytes `start..=end_inclusive`, in order.
    ///
    /// `end_inclusive` is clamped to the last byte; an empty range (`start > end_inclusive`
    /// or `start >= total`) plans nothing.
    pub fn plan(&self, start: u64, end_inclusive: u64) -> Vec<SegmentRead> {
        let mut reads = Vec::new();
        if start >= self.total || start > end_inclusive {
            return reads;
        }
        let end = end_inclusive.min(self.total - 1);
        let first = self.chunks.partition_point(|c| c.offset + c.size <= start);
        let segment_bytes = SEGMENT_BYTES as u64;
        for chunk in self.chunks[first..].iter().take_while(|c| c.offset <= end) {
            let local_start = start.max(chunk.offset) - chunk.offset;
            let local_end = end.min(chunk.offset + chunk.size - 1) - chunk.offset;
            for segment in local_start / segment_bytes..=local_end / segment_bytes {
                let segment_start = segment * segment_bytes;
                let segment_end = segment_start + segment_plaintext_len(chunk.size, segment) - 1;
                let from = local_start.max(segment_start) - segment_start;
                let to = local_end.min(segment_end) - segment_start;
                reads.push(SegmentRead {
                    seq: chunk.seq,
                    segment: segment as u32,
                    object_range: segment_object_range(chunk.size, segment),
                    skip: from as usize,
                    take: (to - from + 1) as usize,
                });
            }
        }
        reads
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::HashMap;

    use super::*;
    use crate::seal::{DataKey, RecordingCipher};

    #[test]
    fn single_ranges_parse() {
        let cases: &[(&str, Option<(u64, u64)>)] = &[
            ("bytes=0-99", Some((0, 99))),
            ("bytes=10-", Some((10, 999))),
            ("bytes=-100", Some((900, 999))),
            ("bytes=-5000", Some((0, 999))),
            ("bytes=990-5000", Some((990, 999))),
            ("bytes=999-999", Some((999, 999))),
            ("Bytes = 5-6 ", Some((5, 6))),
            ("bytes=5-6,", Some((5, 6))),
            ("bytes=0-99999999999999999999999", Some((0, 999))),
            // Ignored: several ranges, other units, malformed.
            ("bytes=0-1,5-6", None),
            ("items=0-1", None),
            ("bytes=", None),
            ("bytes=-", None),
            ("bytes=5", None),
            ("bytes=6-5", None),
            ("bytes=a-5", None),
            ("bytes=+1-5", None),
            ("bytes=1--5", None),
            ("0-5", None),
            ("", None),
        ];
        for (header, want) in cases {
            assert_eq!(parse_range(header, 1000).unwrap(), *want, "{header}");
        }
    }

    #[test]
    fn unsatisfiable_ranges_are_errors() {
        for (header, total) in [
            ("bytes=1000-", 1000),
            ("bytes=1000-2000", 1000),
            ("bytes=99999999999999999999999-", 1000),
            ("bytes=-0", 1000),
            ("bytes=0-", 0),
            ("bytes=-5", 0),
        ] {
            assert!(
                matches!(parse_range(header, total), Err(StorageError::Request(RequestError::RangeNotSatisfiable { total: t })) if t == total),
                "{header}"
            );
        }
        // Malformed stays ignorable even for an empty body.
        assert_eq!(parse_range("bytes=x", 0).unwrap(), None);
    }

    fn plaintext(seq: u32, len: u64) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8) ^ (i >> 9) as u8 ^ seq as u8)
            .collect()
    }

    #[test]
    fn plans_reproduce_every_slice_of_the_media() {
        let sizes = [
            (0u32, 1u64),
            (2, 65_536),
            (3, 65_537),
            (5, 150_003),
            (6, 17),
            (9, 65_535),
        ];
        let cipher = RecordingCipher::new(&DataKey::from_bytes([3; 32]), [9; 7], "rec-range");
        let mut media = Vec::new();
        let mut objects = HashMap::new();
        for &(seq, len) in &sizes {
            let plain = plaintext(seq, len);
            objects.insert(seq, cipher.seal_chunk(seq, &plain).unwrap().0);
            media.extend_from_slice(&plain);
        }
        let layout = Layout::new(sizes.to_vec()).unwrap();
        assert_eq!(layout.total(), media.len() as u64);

        // Every chunk and segment boundary, ±1, plus a spread of pseudo-random points.
        let mut points = vec![0u64, layout.total() - 1];
        let mut offset = 0;
        for &(_, len) in &sizes {
            for at in (0..len).step_by(SEGMENT_BYTES).chain([len]) {
                let p = offset + at;
                points.extend([p.saturating_sub(1), p, p + 1]);
            }
            offset += len;
        }
        let mut x: u64 = 0x9e37_79b9;
        for _ in 0..40 {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            points.push((x >> 33) % layout.total());
        }
        points.retain(|&p| p < layout.total());
        points.sort_unstable();
        points.dedup();

        let mut opened: HashMap<(u32, u32), Vec<u8>> = HashMap::new();
        for (i, &start) in points.iter().enumerate() {
            for &end in points[i..].iter().step_by(3).chain([&(u64::MAX)]) {
                let reads = layout.plan(start, end);
                let mut out = Vec::new();
                for read in &reads {
                    assert!(read.take > 0);
                    let plain = opened.entry((read.seq, read.segment)).or_insert_with(|| {
                        let object = &objects[&read.seq];
                        let range =
                            read.object_range.start as usize..read.object_range.end as usize;
                        let mut buf = object[range].to_vec();
                        cipher
                            .open_segment(read.seq, read.segment, &mut buf)
                            .unwrap();
                        buf
                    });
                    out.extend_from_slice(&plain[read.skip..read.skip + read.take]);
                }
                let end = end.min(layout.total() - 1);
                assert_eq!(out, media[start as usize..=end as usize], "{start}..={end}");
            }
        }
    }

    #[test]
    fn plans_touch_only_the_needed_segments() {
        let layout = Layout::new(vec![(0, 200_000), (1, 10)]).unwrap();
        let reads = layout.plan(65_536, 65_536);
        assert_eq!(
            reads,
            [SegmentRead {
                seq: 0,
                segment: 1,
                object_range: 65_552..131_104,
                skip: 0,
                take: 1
            }]
        );
        let reads = layout.plan(199_999, 200_001);
        assert_eq!(reads.len(), 2);
        assert_eq!(
            (reads[0].seq, reads[0].segment, reads[0].skip, reads[0].take),
            (0, 3, 3_391, 1)
        );
        assert_eq!(reads[0].object_range, 3 * 65_552..3 * 65_552 + 3_392 + 16);
        assert_eq!(
            (reads[1].seq, reads[1].segment, reads[1].skip, reads[1].take),
            (1, 0, 0, 2)
        );
        assert_eq!(reads[1].object_range, 0..26);
        assert!(layout.plan(5, 4).is_empty());
        assert!(layout.plan(200_010, 200_020).is_empty());
        assert!(Layout::new(vec![]).unwrap().plan(0, 0).is_empty());
    }

    #[test]
    fn layouts_refuse_bad_chunk_lists() {
        assert!(Layout::new(vec![(1, 5), (1, 5)]).is_err());
        assert!(Layout::new(vec![(2, 5), (1, 5)]).is_err());
        assert!(Layout::new(vec![(0, 0)]).is_err());
        assert!(Layout::new(vec![(0, MAX_CHUNK_BYTES + 1)]).is_err());
        assert!(Layout::new(vec![(MAX_CHUNKS, 1)]).is_err());
    }
}
