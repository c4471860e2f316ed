//! The EBML the merger reads and writes by hand: element IDs, element headers in a byte
//! slice, unsigned integers. Whole elements are still encoded with `mkv-element`'s types; this
//! is for walking an element's children as bytes, which is what copying without re-encoding
//! needs.

/// Element IDs (with their length marker, as written), checked against `mkv-element`'s in the
/// tests below.
pub(crate) mod id {
    pub(crate) const EBML: u32 = 0x1A45_DFA3;
    pub(crate) const DOC_TYPE: u32 = 0x4282;
    pub(crate) const SEGMENT: u32 = 0x1853_8067;
    pub(crate) const SEEK_HEAD: u32 = 0x114D_9B74;
    pub(crate) const INFO: u32 = 0x1549_A966;
    pub(crate) const TRACKS: u32 = 0x1654_AE6B;
    pub(crate) const CLUSTER: u32 = 0x1F43_B675;
    pub(crate) const CUES: u32 = 0x1C53_BB6B;
    pub(crate) const TAGS: u32 = 0x1254_C367;
    pub(crate) const CHAPTERS: u32 = 0x1043_A770;
    pub(crate) const ATTACHMENTS: u32 = 0x1941_A469;
    pub(crate) const VOID: u32 = 0xEC;
    pub(crate) const CRC32: u32 = 0xBF;
    pub(crate) const TIMESTAMP_SCALE: u32 = 0x2A_D7B1;
    pub(crate) const DURATION: u32 = 0x4489;
    pub(crate) const DATE_UTC: u32 = 0x4461;
    pub(crate) const TRACK_ENTRY: u32 = 0xAE;
    pub(crate) const TRACK_NUMBER: u32 = 0xD7;
    pub(crate) const TRACK_UID: u32 = 0x73C5;
    pub(crate) const NAME: u32 = 0x536E;
    pub(crate) const TIMESTAMP: u32 = 0xE7;
    pub(crate) const SIMPLE_BLOCK: u32 = 0xA3;
    pub(crate) const BLOCK_GROUP: u32 = 0xA0;
    pub(crate) const BLOCK: u32 = 0xA1;
    pub(crate) const BLOCK_DURATION: u32 = 0x9B;
    pub(crate) const REFERENCE_BLOCK: u32 = 0xFB;
}

/// Whether `id` is a Segment child or a top-level element: inside a Cluster of unknown size,
/// one of these ends the Cluster.
pub(crate) fn ends_cluster(element: u32) -> bool {
    matches!(
        element,
        id::CLUSTER
            | id::CUES
            | id::TAGS
            | id::SEEK_HEAD
            | id::INFO
            | id::TRACKS
            | id::CHAPTERS
            | id::ATTACHMENTS
            | id::EBML
            | id::SEGMENT
    )
}

/// How many bytes a variable-length integer whose first byte is `first` takes (1..=8), `None`
/// for the invalid first byte 0.
pub(crate) fn vint_len(first: u8) -> Option<usize> {
    (first != 0).then(|| first.leading_zeros() as usize + 1)
}

/// A variable-length integer at the start of `buf`: its value (`None`: the reserved "unknown"
/// value, all data bits set) and its length.
pub(crate) fn read_vint(buf: &[u8]) -> Option<(Option<u64>, usize)> {
    let len = vint_len(*buf.first()?)?;
    let bytes = buf.get(..len)?;
    let mut value = u64::from(bytes[0]) & (0xFF >> len);
    for b in &bytes[1..] {
        value = (value << 8) | u64::from(*b);
    }
    let all_ones = (1u64 << (7 * len)) - 1;
    Some(((value != all_ones).then_some(value), len))
}

/// An element header at the start of `buf`: ID (with its marker bits), size (`None`:
/// unknown), header length.
pub(crate) fn read_header(buf: &[u8]) -> Option<(u32, Option<u64>, usize)> {
    let id_len = vint_len(*buf.first()?).filter(|l| *l <= 4)?;
    let id = buf
        .get(..id_len)?
        .iter()
        .fold(0u32, |acc, b| (acc << 8) | u32::from(*b));
    let (size, size_len) = read_vint(&buf[id_len..])?;
    Some((id, size, id_len + size_len))
}

/// One child of a master element held in memory.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Child<'a> {
    pub(crate) id: u32,
    /// The whole element, header included.
    pub(crate) raw: &'a [u8],
    /// Its body.
    pub(crate) body: &'a [u8],
}

/// The children of a master element's body, in order; `Err` at the first one that does not
/// fit (a malformed or truncated body).
pub(crate) fn children(mut body: &[u8]) -> impl Iterator<Item = Result<Child<'_>, ()>> {
    std::iter::from_fn(move || {
        if body.is_empty() {
            return None;
        }
        let parsed = read_header(body).and_then(|(id, size, header_len)| {
            let end = header_len.checked_add(usize::try_from(size?).ok()?)?;
            let raw = body.get(..end)?;
            Some((
                Child {
                    id,
                    raw,
                    body: &raw[header_len..],
                },
                end,
            ))
        });
        match parsed {
            Some((child, end)) => {
                body = &body[end..];
                Some(Ok(child))
            }
            None => {
                body = &[];
                Some(Err(()))
            }
        }
    })
}

/// An EBML unsigned integer body (0 to 8 bytes, big-endian).
pub(crate) fn uint(body: &[u8]) -> Option<u64> {
    (body.len() <= 8).then(|| body.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
}

/// An EBML signed integer body (0 to 8 bytes, big-endian, two's complement).
pub(crate) fn int(body: &[u8]) -> Option<i64> {
    let raw = uint(body)?;
    if body.is_empty() {
        return Some(0);
    }
    let shift = 64 - 8 * body.len() as u32;
    Some(((raw << shift) as i64) >> shift)
}

/// Appends `value` as a variable-length integer of minimal length (never the reserved
/// all-ones pattern).
pub(crate) fn put_vint(out: &mut Vec<u8>, value: u64) {
    let mut len = 1;
    while len < 8 && value >= (1u64 << (7 * len)) - 1 {
        len += 1;
    }
    let marked = value | (1u64 << (7 * len));
    out.extend_from_slice(&marked.to_be_bytes()[8 - len..]);
}

/// Appends an element ID (already carrying its marker bits).
pub(crate) fn put_id(out: &mut Vec<u8>, element: u32) {
    let bytes = element.to_be_bytes();
    let skip = (element.leading_zeros() / 8) as usize;
    out.extend_from_slice(&bytes[skip.min(3)..]);
}

/// Appends an element header: ID and size.
pub(crate) fn put_header(out: &mut Vec<u8>, element: u32, size: u64) {
    put_id(out, element);
    put_vint(out, size);
}

/// Appends an unsigned integer element in its shortest form.
pub(crate) fn put_uint(out: &mut Vec<u8>, element: u32, value: u64) {
    let len = (8 - (value.leading_zeros() / 8) as usize).max(1);
    put_header(out, element, len as u64);
    out.extend_from_slice(&value.to_be_bytes()[8 - len..]);
}

/// A size written on eight bytes, so that it can be patched in place later.
pub(crate) fn size_8(value: u64) -> [u8; 8] {
    let mut bytes = value.to_be_bytes();
    bytes[0] = 0x01;
    bytes
}

/// The eight-byte form of the unknown size.
pub(crate) const UNKNOWN_SIZE_8: [u8; 8] = [0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];

/// A Void element of exactly `len` bytes (at least 9), to reserve or fill space.
pub(crate) fn void(len: usize) -> Vec<u8> {
    debug_assert!(len >= 9);
    let mut out = Vec::with_capacity(len);
    out.push(0xEC);
    out.extend_from_slice(&size_8(len.saturating_sub(9) as u64));
    out.resize(len, 0);
    out
}

#[cfg(test)]
mod tests {
    use mkv_element::prelude::*;

    use super::*;

    #[test]
    fn ids_are_mkv_elements() {
        let pairs = [
            (id::EBML, Ebml::ID),
            (id::DOC_TYPE, DocType::ID),
            (id::SEGMENT, Segment::ID),
            (id::SEEK_HEAD, SeekHead::ID),
            (id::INFO, Info::ID),
            (id::TRACKS, Tracks::ID),
            (id::CLUSTER, Cluster::ID),
            (id::CUES, Cues::ID),
            (id::TAGS, Tags::ID),
            (id::CHAPTERS, Chapters::ID),
            (id::ATTACHMENTS, Attachments::ID),
            (id::VOID, Void::ID),
            (id::CRC32, Crc32::ID),
            (id::TIMESTAMP_SCALE, TimestampScale::ID),
            (id::DURATION, Duration::ID),
            (id::DATE_UTC, DateUtc::ID),
            (id::TRACK_ENTRY, TrackEntry::ID),
            (id::TRACK_NUMBER, TrackNumber::ID),
            (id::TRACK_UID, TrackUid::ID),
            (id::NAME, Name::ID),
            (id::TIMESTAMP, Timestamp::ID),
            (id::SIMPLE_BLOCK, SimpleBlock::ID),
            (id::BLOCK_GROUP, BlockGroup::ID),
            (id::BLOCK, Block::ID),
            (id::BLOCK_DURATION, BlockDuration::ID),
            (id::REFERENCE_BLOCK, ReferenceBlock::ID),
        ];
        for (ours, theirs) in pairs {
            assert_eq!(u64::from(ours), theirs.as_encoded(), "{ours:#x}");
        }
    }

    #[test]
    fn vints_round_trip_and_unknown_is_recognized() {
        for value in [0, 1, 126, 127, 128, 16_382, 16_383, 1 << 40, (1 << 56) - 2] {
            let mut out = Vec::new();
            put_vint(&mut out, value);
            assert_eq!(read_vint(&out), Some((Some(value), out.len())), "{value}");
        }
        assert_eq!(read_vint(&[0xFF]), Some((None, 1)));
        assert_eq!(read_vint(&UNKNOWN_SIZE_8), Some((None, 8)));
        assert_eq!(read_vint(&size_8(300)), Some((Some(300), 8)));
        assert_eq!(read_vint(&[0x00, 1]), None);
        assert_eq!(read_vint(&[0x40]), None, "truncated");
    }

    #[test]
    fn headers_children_and_integers_parse() {
        let mut body = Vec::new();
        put_uint(&mut body, id::TRACK_NUMBER, 3);
        put_uint(&mut body, id::TRACK_UID, 0x0102_0304);
        body.extend_from_slice(&void(12));
        let kids: Vec<_> = children(&body)
            .collect::<Result<_, _>>()
            .unwrap_or_default();
        assert_eq!(kids.len(), 3);
        assert_eq!(
            (kids[0].id, uint(kids[0].body)),
            (id::TRACK_NUMBER, Some(3))
        );
        assert_eq!(uint(kids[1].body), Some(0x0102_0304));
        assert_eq!((kids[2].id, kids[2].raw.len()), (id::VOID, 12));
        assert!(children(&body[..body.len() - 1]).any(|c| c.is_err()));
        assert_eq!(int(&[0xFF, 0xFE]), Some(-2));
        assert_eq!(int(&[0x7F]), Some(127));
        assert_eq!(int(&[]), Some(0));
        let mut h = Vec::new();
        put_header(&mut h, id::CLUSTER, 1000);
        assert_eq!(read_header(&h), Some((id::CLUSTER, Some(1000), 6)));
    }
}
