use super::*;
use crate::Rid;

const VIDEO: u32 = 90_000;

fn forwarded(rewrite: Rewrite) -> (u16, u32) {
    match rewrite {
        Rewrite::Forward { seq, timestamp, .. } => (seq, timestamp),
        Rewrite::Drop(reason) => panic!("dropped: {reason:?}"),
    }
}

fn seq_of(rewrite: Rewrite) -> u16 {
    forwarded(rewrite).0
}

#[test]
fn a_layer_switch_rewrites_sequence_numbers_without_gaps() {
    let mut rw = VideoRewriter::new(VIDEO);
    rw.set_target(Some(Rid::Q));
    let mut out = Vec::new();
    for (i, seq) in (100u16..105).enumerate() {
        out.push(seq_of(rw.rewrite(Rid::Q, seq, 0, i == 0, Millis(0))));
    }
    rw.set_target(Some(Rid::H));
    // h's numbering is unrelated; its first keyframe is at 5002.
    out.push(seq_of(rw.rewrite(Rid::Q, 105, 0, false, Millis(1))));
    assert_eq!(
        rw.rewrite(Rid::H, 5001, 0, false, Millis(1)),
        Rewrite::Drop(DropReason::WaitingForKeyframe)
    );
    let switch = rw.rewrite(Rid::H, 5002, 0, true, Millis(2));
    assert!(matches!(switch, Rewrite::Forward { switched: true, .. }));
    out.push(seq_of(switch));
    for seq in 5003..5006 {
        out.push(seq_of(rw.rewrite(Rid::H, seq, 0, false, Millis(3))));
    }
    assert_eq!(out, (100..110).collect::<Vec<u16>>());
    assert_eq!(rw.current(), Some(Rid::H));
}

#[test]
fn the_old_layer_keeps_flowing_until_the_target_keyframe() {
    let mut rw = VideoRewriter::new(VIDEO);
    rw.set_target(Some(Rid::F));
    forwarded(rw.rewrite(Rid::F, 1, 0, true, Millis(0)));
    rw.set_target(Some(Rid::Q));
    assert!(rw.is_switch_pending());
    for seq in 2..10 {
        assert_eq!(
            rw.rewrite(Rid::F, seq, 0, false, Millis(1)),
            rw_forward(seq)
        );
        assert_eq!(
            rw.rewrite(Rid::Q, 900 + seq, 0, false, Millis(1)),
            Rewrite::Drop(DropReason::WaitingForKeyframe)
        );
    }
    // A keyframe of a third layer changes nothing.
    assert_eq!(
        rw.rewrite(Rid::H, 40, 0, true, Millis(1)),
        Rewrite::Drop(DropReason::OtherLayer)
    );
    assert_eq!(rw.current(), Some(Rid::F));
    // Wanting f again before q's keyframe cancels the switch.
    rw.set_target(Some(Rid::F));
    assert!(!rw.is_switch_pending());
    assert_eq!(
        rw.rewrite(Rid::Q, 950, 0, true, Millis(2)),
        Rewrite::Drop(DropReason::OtherLayer)
    );
}

fn rw_forward(seq: u16) -> Rewrite {
    Rewrite::Forward {
        seq,
        timestamp: 0,
        switched: false,
    }
}

#[test]
fn nothing_is_forwarded_before_the_first_keyframe() {
    let mut rw = VideoRewriter::new(VIDEO);
    assert_eq!(
        rw.rewrite(Rid::H, 7, 0, true, Millis(0)),
        Rewrite::Drop(DropReason::Paused),
        "no layer wanted yet"
    );
    rw.set_target(Some(Rid::H));
    assert_eq!(
        rw.rewrite(Rid::H, 8, 0, false, Millis(0)),
        Rewrite::Drop(DropReason::WaitingForKeyframe)
    );
    // The first run passes the publisher's numbers through.
    assert_eq!(
        rw.rewrite(Rid::H, 9, 1234, true, Millis(0)),
        Rewrite::Forward {
            seq: 9,
            timestamp: 1234,
            switched: true
        }
    );
}

#[test]
fn sequence_numbers_wrap_around_in_and_out() {
    let mut rw = VideoRewriter::new(VIDEO);
    rw.set_target(Some(Rid::Q));
    let inputs = [65_533u16, 65_534, 65_535, 0, 1];
    let out: Vec<u16> = inputs
        .iter()
        .enumerate()
        .map(|(i, seq)| seq_of(rw.rewrite(Rid::Q, *seq, 0, i == 0, Millis(0))))
        .collect();
    assert_eq!(out, inputs);
    // Late packet from across the wrap still finds its place.
    assert_eq!(
        seq_of(rw.rewrite(Rid::Q, 65_535, 0, false, Millis(0))),
        65_535
    );
    // A switch whose continuation crosses 65535 → 0 in the output.
    let mut rw = VideoRewriter::new(VIDEO);
    rw.set_target(Some(Rid::Q));
    seq_of(rw.rewrite(Rid::Q, 65_534, 0, true, Millis(0)));
    rw.set_target(Some(Rid::F));
    let f: Vec<u16> = (300..303)
        .map(|seq| seq_of(rw.rewrite(Rid::F, seq, 0, seq == 300, Millis(1))))
        .collect();
    assert_eq!(f, [65_535, 0, 1]);
}

#[test]
fn late_packets_from_before_a_switch_are_dropped() {
    let mut rw = VideoRewriter::new(VIDEO);
    rw.set_target(Some(Rid::Q));
    for seq in 10..14 {
        seq_of(rw.rewrite(Rid::Q, seq, 0, seq == 10, Millis(0)));
    }
    rw.set_target(Some(Rid::H));
    assert_eq!(seq_of(rw.rewrite(Rid::H, 70, 0, true, Millis(1))), 14);
    // The old layer's stragglers (13 was sent, 14 never was) must not reach the subscriber.
    for seq in [13, 14] {
        assert_eq!(
            rw.rewrite(Rid::Q, seq, 0, false, Millis(2)),
            Rewrite::Drop(DropReason::OtherLayer)
        );
    }
    // Nor may the new layer's packets from before its keyframe: 14 is taken.
    assert_eq!(
        rw.rewrite(Rid::H, 69, 0, false, Millis(2)),
        Rewrite::Drop(DropReason::BeforeSwitch)
    );
    assert_eq!(seq_of(rw.rewrite(Rid::H, 71, 0, false, Millis(2))), 15);
}

#[test]
fn reordered_packets_of_the_current_layer_keep_their_place() {
    let mut rw = VideoRewriter::new(VIDEO);
    rw.set_target(Some(Rid::Q));
    seq_of(rw.rewrite(Rid::Q, 500, 0, true, Millis(0)));
    rw.set_target(Some(Rid::F));
    // f starts at output 501; its packets arrive 40, 42, 41, 43.
    let arrivals = [40u16, 42, 41, 43];
    let out: Vec<u16> = arrivals
        .iter()
        .map(|seq| seq_of(rw.rewrite(Rid::F, *seq, 0, *seq == 40, Millis(1))))
        .collect();
    assert_eq!(out, [501, 503, 502, 504]);
    // After the late one, the sequence continues from the highest.
    rw.set_target(Some(Rid::H));
    assert_eq!(seq_of(rw.rewrite(Rid::H, 9, 0, true, Millis(2))), 505);
}

#[test]
fn timestamps_continue_by_the_wall_clock_gap_at_90_khz() {
    let mut rw = VideoRewriter::new(VIDEO);
    rw.set_target(Some(Rid::Q));
    // q: 30 frames/s, 3000 ticks apart, arriving 33 ms apart.
    for frame in 0..4u32 {
        let ts = 1_000 + frame * 3_000;
        let (_, out) = forwarded(rw.rewrite(
            Rid::Q,
            frame as u16,
            ts,
            frame == 0,
            Millis(u64::from(frame) * 33),
        ));
        assert_eq!(out, ts);
    }
    // Last forwarded: timestamp 10_000 at 99 ms. h's keyframe (its own clock) at 139 ms:
    // 40 ms later = 3_600 ticks later.
    rw.set_target(Some(Rid::H));
    let (_, first) = forwarded(rw.rewrite(Rid::H, 50, 4_000_000_000, true, Millis(139)));
    assert_eq!(first, 13_600);
    // Same frame, same timestamp; the next frame keeps h's own spacing.
    let (_, same) = forwarded(rw.rewrite(Rid::H, 51, 4_000_000_000, false, Millis(140)));
    assert_eq!(same, 13_600);
    let (_, next) = forwarded(rw.rewrite(Rid::H, 52, 4_000_003_000, false, Millis(172)));
    assert_eq!(next, 16_600);
    // A switch in the same millisecond still moves the timestamp forward.
    rw.set_target(Some(Rid::F));
    let (_, f) = forwarded(rw.rewrite(Rid::F, 1, 5, true, Millis(172)));
    assert_eq!(f, 16_601);
}

#[test]
fn pausing_video_stops_at_once_and_resuming_continues_the_sequence() {
    let mut rw = VideoRewriter::new(VIDEO);
    rw.set_target(Some(Rid::H));
    for seq in 1..=3 {
        seq_of(rw.rewrite(Rid::H, seq, 90 * u32::from(seq), seq == 1, Millis(0)));
    }
    rw.set_target(None);
    assert_eq!(rw.current(), None);
    assert_eq!(
        rw.rewrite(Rid::H, 4, 0, true, Millis(1)),
        Rewrite::Drop(DropReason::Paused)
    );
    // Resumed ten seconds later on the same layer: it still waits for a keyframe.
    rw.set_target(Some(Rid::H));
    assert_eq!(
        rw.rewrite(Rid::H, 900, 0, false, Millis(10_000)),
        Rewrite::Drop(DropReason::WaitingForKeyframe)
    );
    let resumed = rw.rewrite(Rid::H, 901, 7, true, Millis(10_000));
    assert_eq!(
        resumed,
        Rewrite::Forward {
            seq: 4,
            timestamp: 270 + 10_000 * 90,
            switched: true
        }
    );
}

#[test]
fn audio_passes_through_unchanged() {
    let mut rw = AudioRewriter::new(48_000);
    for seq in 65_530u16..=65_535 {
        let ts = u32::from(seq) * 960;
        assert_eq!(forwarded(rw.rewrite(seq, ts, Millis(0))), (seq, ts));
    }
    assert_eq!(forwarded(rw.rewrite(0, 7, Millis(0))), (0, 7));
}

#[test]
fn audio_pause_and_resume_keep_the_sequence_continuous() {
    let mut rw = AudioRewriter::new(48_000);
    for seq in 100u16..110 {
        forwarded(rw.rewrite(seq, u32::from(seq) * 960, Millis(u64::from(seq) * 20)));
    }
    // Last: seq 109, timestamp 104_640 at 2_180 ms.
    rw.pause();
    assert!(rw.is_paused());
    for seq in 110u16..200 {
        assert_eq!(
            rw.rewrite(seq, 0, Millis(u64::from(seq) * 20)),
            Rewrite::Drop(DropReason::Paused)
        );
    }
    rw.resume();
    // Resumed at 4_000 ms: 1_820 ms later at 48 kHz = 87_360 ticks.
    assert_eq!(
        rw.rewrite(200, 192_000, Millis(4_000)),
        Rewrite::Forward {
            seq: 110,
            timestamp: 104_640 + 87_360,
            switched: true
        }
    );
    assert_eq!(
        forwarded(rw.rewrite(201, 192_960, Millis(4_020))),
        (111, 192_960)
    );
    // A packet from during the pause arriving late is not forwarded.
    assert_eq!(
        rw.rewrite(199, 0, Millis(4_021)),
        Rewrite::Drop(DropReason::BeforeSwitch)
    );
}
