//! Scenarios for a whole room: a doctor publishing a microphone and a simulcast camera, a
//! patient and an observer receiving them, at simulated time. This file holds the harness.

mod room;
mod video;

use super::*;

const DOCTOR: ParticipantId = ParticipantId(1);
const PATIENT: ParticipantId = ParticipantId(2);
const OBSERVER: ParticipantId = ParticipantId(3);
const MIC: TrackId = TrackId(10);
const CAM: TrackId = TrackId(11);
const SCREEN: TrackId = TrackId(12);
const PATIENT_MIC: TrackId = TrackId(20);

fn room() -> Forwarder {
    let mut f = Forwarder::new(ForwarderConfig::default());
    f.add_track(DOCTOR, MIC, TrackKind::Audio, &[]).unwrap();
    f.add_track(DOCTOR, CAM, TrackKind::Video, &Rid::ALL)
        .unwrap();
    f.add_subscriber(PATIENT);
    f.add_subscriber(OBSERVER);
    f
}

fn drain(f: &mut Forwarder) -> Vec<Output> {
    std::iter::from_fn(|| f.poll_output()).collect()
}

/// A publisher's video track: one packet per layer per frame, keyframes when asked.
struct Camera {
    track: TrackId,
    seq: BTreeMap<Option<Rid>, u16>,
    ts: u32,
    keyframe_due: BTreeSet<Option<Rid>>,
    stopped: BTreeSet<Option<Rid>>,
    answers_pli: bool,
}

impl Camera {
    /// Simulcast; `q` starts just before the 16-bit wrap. The first frame is a keyframe.
    fn simulcast(track: TrackId) -> Self {
        let seq = BTreeMap::from([
            (Some(Rid::Q), 65_500),
            (Some(Rid::H), 1_000),
            (Some(Rid::F), 30_000),
        ]);
        Self {
            track,
            keyframe_due: seq.keys().copied().collect(),
            seq,
            ts: 1_000,
            stopped: BTreeSet::new(),
            answers_pli: true,
        }
    }

    /// One encoding, no RID; no keyframe until asked.
    fn single(track: TrackId) -> Self {
        Self {
            keyframe_due: BTreeSet::new(),
            seq: BTreeMap::from([(None, 100)]),
            ..Self::simulcast(track)
        }
    }

    fn send(&mut self, f: &mut Forwarder, at: u64) {
        for (layer, seq) in &mut self.seq {
            if self.stopped.contains(layer) {
                continue;
            }
            f.handle_packet(InboundPacket {
                track: self.track,
                rid: *layer,
                seq: *seq,
                timestamp: self.ts,
                is_keyframe: self.keyframe_due.remove(layer),
                audio_level: None,
                arrival: Millis(at),
            })
            .unwrap();
            *seq = seq.wrapping_add(1);
        }
        self.ts = self.ts.wrapping_add(3_000);
    }

    fn hear(&mut self, outputs: &[Output]) {
        for output in outputs {
            if let Output::RequestKeyframe { track, rid } = output
                && *track == self.track
                && self.answers_pli
            {
                self.keyframe_due.insert(*rid);
            }
        }
    }
}

/// Runs the cameras at 30 frames/s from `from` to `to` ms, with the timer; keyframe requests
/// are answered on the next frame. Returns every output, including those queued before.
fn run(f: &mut Forwarder, cameras: &mut [&mut Camera], from: u64, to: u64) -> Vec<Output> {
    let mut all = Vec::new();
    let mut heard = drain(f);
    for at in (from..to).step_by(33) {
        for camera in cameras.iter_mut() {
            camera.hear(&heard);
        }
        all.append(&mut heard);
        for camera in cameras.iter_mut() {
            camera.send(f, at);
        }
        f.handle_timeout(Millis(at));
        heard = drain(f);
    }
    for camera in cameras.iter_mut() {
        camera.hear(&heard);
    }
    all.extend(heard);
    all
}

fn forwards(outputs: &[Output], to: ParticipantId, of: TrackId) -> Vec<(u16, u32)> {
    let pick = |o: &Output| match *o {
        Output::Forward {
            subscriber,
            track,
            seq,
            timestamp,
        } if subscriber == to && track == of => Some((seq, timestamp)),
        _ => None,
    };
    outputs.iter().filter_map(pick).collect()
}

fn layer_changes(outputs: &[Output], to: ParticipantId, of: TrackId) -> Vec<Option<Rid>> {
    let pick = |o: &Output| match *o {
        Output::LayerChanged {
            subscriber,
            track,
            rid,
        } if subscriber == to && track == of => Some(rid),
        _ => None,
    };
    outputs.iter().filter_map(pick).collect()
}

fn keyframe_requests(outputs: &[Output], of: TrackId) -> Vec<Option<Rid>> {
    let pick = |o: &Output| match *o {
        Output::RequestKeyframe { track, rid } if track == of => Some(rid),
        _ => None,
    };
    outputs.iter().filter_map(pick).collect()
}

/// No gap, no duplicate, timestamps never going back (all modulo wraparound).
fn assert_continuous(packets: &[(u16, u32)]) {
    assert!(!packets.is_empty());
    for pair in packets.windows(2) {
        let ((a, ta), (b, tb)) = (pair[0], pair[1]);
        assert_eq!(b, a.wrapping_add(1), "sequence {a} then {b}");
        assert!(tb.wrapping_sub(ta) as i32 >= 0, "timestamp {ta} then {tb}");
    }
}
