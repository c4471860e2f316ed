//! What the muxer reads from a VP8 frame itself (RFC 6386 §9.1): keyframe flag and size.

/// Whether the first byte of an RTP payload starts a VP8 frame: the descriptor's S bit set and
/// partition index 0 (RFC 7741 §4.2).
pub(crate) fn payload_starts_frame(payload: &[u8]) -> bool {
    payload
        .first()
        .is_some_and(|b| b & 0x10 != 0 && b & 0x07 == 0)
}

/// Width and height of a VP8 keyframe, from its uncompressed data chunk; `None` when `frame`
/// is not a well-formed keyframe (a delta frame, a missing start code, a zero size).
pub(crate) fn keyframe_size(frame: &[u8]) -> Option<(u16, u16)> {
    let header = frame.get(..10)?;
    // Frame tag bit 0: 0 = keyframe. Then the start code 9d 01 2a.
    if header[0] & 0x01 != 0 || header[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let width = u16::from_le_bytes([header[6], header[7]]) & 0x3fff;
    let height = u16::from_le_bytes([header[8], header[9]]) & 0x3fff;
    (width > 0 && height > 0).then_some((width, height))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyframe_sizes_come_from_the_uncompressed_header() {
        let key = [0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00];
        assert_eq!(keyframe_size(&key), Some((320, 240)));
        let mut delta = key;
        delta[0] |= 1;
        assert_eq!(keyframe_size(&delta), None);
        assert_eq!(keyframe_size(&key[..9]), None);
        let mut no_start_code = key;
        no_start_code[4] = 0;
        assert_eq!(keyframe_size(&no_start_code), None);
    }

    #[test]
    fn only_the_first_partition_start_starts_a_frame() {
        assert!(payload_starts_frame(&[0x10]));
        assert!(payload_starts_frame(&[0x90, 0x80]));
        assert!(!payload_starts_frame(&[0x00]));
        assert!(!payload_starts_frame(&[0x11]), "partition 1");
        assert!(!payload_starts_frame(&[]));
    }
}
