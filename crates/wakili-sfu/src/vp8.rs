//! VP8 picture ids across simulcast layer switches.
//!
//! Each simulcast layer is a separate VP8 encoder with its own PictureID and TL0PICIDX counters.
//! wakili-forward keeps RTP sequence numbers and timestamps continuous across a switch; this
//! does the same for the two VP8 payload descriptor fields a receiver's reference finder relies
//! on (libwebrtc drops frames whose picture id jumps backwards). The rewrite is a fixed-size
//! byte patch str0m applies when it serializes the packet ([`Vp8Patch`]), so the payload shared
//! by all subscribers is never copied here.

use str0m::rtp::{Vp8Descriptor, Vp8Patch, Vp8PatchError};

use crate::Rid;

/// 15-bit picture ids.
const PICTURE_ID_MASK: u16 = 0x7fff;
/// 7-bit picture ids (the short form of the field).
const SHORT_PICTURE_ID_MASK: u16 = 0x7f;

/// The descriptor rewriting for one subscriber of one VP8 track.
#[derive(Debug, Clone, Default)]
pub(crate) struct Vp8Munger {
    /// The layer the current run comes from.
    layer: Option<Option<Rid>>,
    picture_id_offset: u16,
    tl0_offset: u8,
    /// The newest picture id and TL0PICIDX written.
    last_picture_id: Option<u16>,
    last_tl0: Option<u8>,
}

impl Vp8Munger {
    /// Forwarding resumes after a pause: the next packet starts a new run, numbered on from
    /// the last one written, like a layer switch.
    pub(crate) fn restart(&mut self) {
        self.layer = None;
    }

    /// The patch for one packet of `layer` forwarded to the subscriber (`None`: send it as it
    /// is). A packet from another layer than the previous one starts a new run, numbered on
    /// from the last one written.
    pub(crate) fn patch(&mut self, layer: Option<Rid>, payload: &[u8]) -> Option<Vp8Patch> {
        let descriptor = Vp8Descriptor::parse(payload).ok()?;
        let picture_id = descriptor.picture_id();
        let tl0 = descriptor.tl0_pic_idx();
        if self.layer != Some(layer) {
            self.layer = Some(layer);
            self.picture_id_offset = match (self.last_picture_id, picture_id) {
                (Some(last), Some(id)) => last.wrapping_add(1).wrapping_sub(id) & PICTURE_ID_MASK,
                _ => 0,
            };
            self.tl0_offset = match (self.last_tl0, tl0) {
                (Some(last), Some(idx)) => last.wrapping_add(1).wrapping_sub(idx),
                _ => 0,
            };
        }
        let picture_id =
            picture_id.map(|id| id.wrapping_add(self.picture_id_offset) & PICTURE_ID_MASK);
        let tl0 = tl0.map(|idx| idx.wrapping_add(self.tl0_offset));
        if let Some(id) = picture_id
            && self
                .last_picture_id
                .is_none_or(|last| newer_picture_id(id, last))
        {
            self.last_picture_id = Some(id);
        }
        if let Some(idx) = tl0
            && self
                .last_tl0
                .is_none_or(|last| (idx.wrapping_sub(last) as i8) > 0)
        {
            self.last_tl0 = Some(idx);
        }
        if self.picture_id_offset == 0 && self.tl0_offset == 0 {
            return None;
        }
        build(&descriptor, picture_id, tl0)
    }
}

/// Whether `a` comes after `b` in the 15-bit picture id space.
fn newer_picture_id(a: u16, b: u16) -> bool {
    let distance = a.wrapping_sub(b) & PICTURE_ID_MASK;
    distance != 0 && distance < 0x4000
}

fn build(descriptor: &Vp8Descriptor, picture_id: Option<u16>, tl0: Option<u8>) -> Option<Vp8Patch> {
    let patch = |id: Option<u16>| {
        let mut builder = descriptor.patch();
        if let Some(id) = id {
            builder = builder.picture_id(id);
        }
        if let Some(idx) = tl0 {
            builder = builder.tl0_pic_idx(idx);
        }
        builder.build()
    };
    match patch(picture_id) {
        Ok(patch) => Some(patch),
        // The publisher uses the 7-bit form: the same numbering, modulo 128.
        Err(Vp8PatchError::PictureIdTooLarge) => {
            patch(picture_id.map(|id| id & SHORT_PICTURE_ID_MASK)).ok()
        }
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-packet VP8 frame: 15-bit picture id, TL0PICIDX, TID, then a payload header.
    fn frame(picture_id: u16, tl0: u8) -> Vec<u8> {
        let [hi, lo] = (picture_id | 0x8000).to_be_bytes();
        vec![0x90, 0xe0, hi, lo, tl0, 0x00, 0x11, 0xaa]
    }

    /// The patch writing `picture_id` and `tl0` into `payload`.
    fn rewritten(payload: &[u8], picture_id: u16, tl0: u8) -> Option<Vp8Patch> {
        let descriptor = Vp8Descriptor::parse(payload).unwrap();
        Some(
            descriptor
                .patch()
                .picture_id(picture_id)
                .tl0_pic_idx(tl0)
                .build()
                .unwrap(),
        )
    }

    #[test]
    fn a_single_layer_passes_unchanged() {
        let mut munger = Vp8Munger::default();
        for id in 100..110 {
            assert_eq!(munger.patch(Some(Rid::Q), &frame(id, 7)), None);
        }
    }

    #[test]
    fn picture_ids_continue_across_layer_switches() {
        let mut munger = Vp8Munger::default();
        assert_eq!(munger.patch(Some(Rid::Q), &frame(100, 7)), None);
        assert_eq!(munger.patch(Some(Rid::Q), &frame(101, 8)), None);
        // Switch to h, whose encoder counts elsewhere (and wraps soon).
        let cases = [
            (Rid::H, 0x7ffe, 200, 102, 9),
            (Rid::H, 0x7fff, 201, 103, 10),
            (Rid::H, 0, 202, 104, 11),
            // A second packet of the same frame keeps its number.
            (Rid::H, 0, 202, 104, 11),
            // And back to q, which went on counting meanwhile.
            (Rid::Q, 160, 40, 105, 12),
            (Rid::Q, 161, 41, 106, 13),
        ];
        for (layer, id, tl0, out_id, out_tl0) in cases {
            let payload = frame(id, tl0);
            assert_eq!(
                munger.patch(Some(layer), &payload),
                rewritten(&payload, out_id, out_tl0),
                "{layer:?} {id} {tl0}"
            );
        }
    }

    #[test]
    fn a_restart_numbers_on_from_the_last_picture() {
        let mut munger = Vp8Munger::default();
        assert_eq!(munger.patch(Some(Rid::Q), &frame(100, 7)), None);
        munger.restart();
        // Paused for a while: q went on to 130, the subscriber sees 101.
        let payload = frame(130, 37);
        assert_eq!(
            munger.patch(Some(Rid::Q), &payload),
            rewritten(&payload, 101, 8)
        );
    }

    #[test]
    fn seven_bit_picture_ids_wrap_at_128() {
        let short = |id: u8| vec![0x90, 0x80, id & 0x7f, 0x11, 0xaa];
        let mut munger = Vp8Munger::default();
        assert_eq!(munger.patch(Some(Rid::Q), &short(126)), None);
        let payload = short(5);
        let expected = Vp8Descriptor::parse(&payload)
            .unwrap()
            .patch()
            .picture_id(127)
            .build()
            .ok();
        assert_eq!(munger.patch(Some(Rid::H), &payload), expected);
    }

    #[test]
    fn payloads_without_a_descriptor_extension_are_left_alone() {
        let mut munger = Vp8Munger::default();
        assert_eq!(munger.patch(Some(Rid::Q), &[0x10, 0x00]), None);
        assert_eq!(munger.patch(Some(Rid::H), &[0x10, 0x00]), None);
        assert_eq!(munger.patch(Some(Rid::H), &[]), None);
    }
}
