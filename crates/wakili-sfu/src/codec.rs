//! What the SFU reads in a forwarded packet's payload: whether it starts a keyframe (a
//! subscriber may only switch layers there) and, for audio, the speaker's level.
//!
//! Only the first bytes of the RTP payload (the codec's payload descriptor) are read; the
//! media itself stays opaque.

use str0m::{format::Codec, rtp::Vp8Descriptor};

/// Whether `payload` (an RTP payload of `codec`) is the first packet of a keyframe.
pub(crate) fn starts_keyframe(codec: Codec, payload: &[u8]) -> bool {
    match codec {
        Codec::Vp8 => Vp8Descriptor::parse(payload).is_ok_and(|d| d.starts_keyframe(payload)),
        Codec::Vp9 => vp9_starts_keyframe(payload),
        Codec::H264 => h264_starts_keyframe(payload),
        Codec::Av1 => str0m::format::detect_av1_keyframe(payload),
        _ => false,
    }
}

/// VP9 (RFC 9628): the payload descriptor starts `I|P|L|F|B|E|V|Z`. A keyframe starts where a
/// frame begins (B) without inter-picture prediction (P clear), in the base spatial layer.
fn vp9_starts_keyframe(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    let (has_picture_id, predicted, has_layers, begins) = (
        first & 0x80 != 0,
        first & 0x40 != 0,
        first & 0x20 != 0,
        first & 0x08 != 0,
    );
    if predicted || !begins {
        return false;
    }
    if !has_layers {
        return true;
    }
    let mut at = 1;
    if has_picture_id {
        // M bit: a 15-bit picture id takes two bytes.
        at += match payload.get(1) {
            Some(b) if b & 0x80 != 0 => 2,
            Some(_) => 1,
            None => return false,
        };
    }
    // Layer indices: TID(3) U SID(3) D.
    payload.get(at).is_some_and(|b| (b >> 1) & 0x07 == 0)
}

/// H.264 (RFC 6184): a keyframe starts with a sequence parameter set or an IDR slice, sent
/// alone, aggregated (STAP-A) or as the first fragment (FU-A).
fn h264_starts_keyframe(payload: &[u8]) -> bool {
    const IDR: u8 = 5;
    const SPS: u8 = 7;
    const STAP_A: u8 = 24;
    const FU_A: u8 = 28;
    let Some(&header) = payload.first() else {
        return false;
    };
    match header & 0x1f {
        IDR | SPS => true,
        STAP_A => {
            let mut at = 1;
            while let (Some(&hi), Some(&lo)) = (payload.get(at), payload.get(at + 1)) {
                let size = usize::from(u16::from_be_bytes([hi, lo]));
                match payload.get(at + 2) {
                    Some(nal) if matches!(nal & 0x1f, IDR | SPS) => return true,
                    Some(_) if size > 0 => at += 2 + size,
                    _ => return false,
                }
            }
            false
        }
        FU_A => payload
            .get(1)
            .is_some_and(|fu| fu & 0x80 != 0 && fu & 0x1f == IDR),
        _ => false,
    }
}

/// The RFC 6464 level (0 loudest … 127 silence) from str0m's value (−dBov, 0 … −127).
pub(crate) fn audio_level(dbov: i8) -> u8 {
    dbov.unsigned_abs().min(127)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp8_keyframes_are_read_from_the_payload_descriptor() {
        // X, S, PID 0 | I | 15-bit picture id | VP8 header with P clear (key) or set (delta).
        let key = [0x90, 0x80, 0x81, 0x23, 0x10, 0x02, 0x00];
        let delta = [0x90, 0x80, 0x81, 0x24, 0x11, 0x02, 0x00];
        let continuation = [0x80, 0x80, 0x81, 0x23, 0x10];
        assert!(starts_keyframe(Codec::Vp8, &key));
        assert!(!starts_keyframe(Codec::Vp8, &delta));
        assert!(!starts_keyframe(Codec::Vp8, &continuation));
        assert!(!starts_keyframe(Codec::Vp8, &[]));
        assert!(!starts_keyframe(Codec::Opus, &key));
    }

    #[test]
    fn vp9_keyframes_start_a_frame_unpredicted_in_the_base_layer() {
        assert!(starts_keyframe(Codec::Vp9, &[0x08, 0x00]));
        assert!(!starts_keyframe(Codec::Vp9, &[0x48, 0x00]), "predicted");
        assert!(
            !starts_keyframe(Codec::Vp9, &[0x00, 0x00]),
            "not a frame start"
        );
        // I, L, B: 15-bit picture id, then SID 0 or 1.
        assert!(starts_keyframe(Codec::Vp9, &[0xa8, 0x81, 0x00, 0x00]));
        assert!(!starts_keyframe(Codec::Vp9, &[0xa8, 0x81, 0x00, 0x02]));
        assert!(!starts_keyframe(Codec::Vp9, &[0xa8]), "truncated");
    }

    #[test]
    fn h264_keyframes_are_found_alone_aggregated_or_fragmented() {
        assert!(starts_keyframe(Codec::H264, &[0x65, 0x88]), "IDR");
        assert!(starts_keyframe(Codec::H264, &[0x67, 0x42]), "SPS");
        assert!(
            !starts_keyframe(Codec::H264, &[0x41, 0x9a]),
            "non-IDR slice"
        );
        // STAP-A: a 2-byte SEI, then an SPS.
        let stap = [0x78, 0x00, 0x02, 0x06, 0x05, 0x00, 0x02, 0x67, 0x42];
        assert!(starts_keyframe(Codec::H264, &stap));
        assert!(!starts_keyframe(Codec::H264, &stap[..5]), "SEI only");
        // FU-A: start of an IDR, then its middle.
        assert!(starts_keyframe(Codec::H264, &[0x7c, 0x85, 0x00]));
        assert!(!starts_keyframe(Codec::H264, &[0x7c, 0x05, 0x00]));
    }

    #[test]
    fn audio_levels_become_rfc6464_values() {
        assert_eq!(audio_level(0), 0);
        assert_eq!(audio_level(-30), 30);
        assert_eq!(audio_level(-127), 127);
        assert_eq!(audio_level(-128), 127);
    }
}
