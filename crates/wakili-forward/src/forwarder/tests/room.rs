//! Audio, the active speaker, limits and removal.

use super::*;

#[test]
fn pausing_and_resuming_audio_continues_the_sequence() {
    let mut f = room();
    f.subscribe(PATIENT, MIC, Millis(0)).unwrap();
    let mut outputs = Vec::new();
    for i in 0..60u16 {
        let at = u64::from(i) * 20;
        if i == 20 {
            f.pause(PATIENT, MIC, Millis(at)).unwrap();
        }
        if i == 40 {
            f.resume(PATIENT, MIC, Millis(at)).unwrap();
        }
        let packet = InboundPacket {
            track: MIC,
            rid: None,
            seq: 7_000 + i,
            timestamp: u32::from(i) * 960,
            is_keyframe: false,
            audio_level: Some(90),
            arrival: Millis(at),
        };
        f.handle_packet(packet).unwrap();
        outputs.extend(drain(&mut f));
    }
    let packets = forwards(&outputs, PATIENT, MIC);
    assert_eq!(packets.len(), 40);
    assert_continuous(&packets);
    // 420 ms of pause at 48 kHz between the last packet before and the first after.
    assert_eq!(packets[20].1 - packets[19].1, 420 * 48);
}

#[test]
fn the_loudest_participant_becomes_the_active_speaker_once() {
    let mut f = room();
    f.add_track(PATIENT, PATIENT_MIC, TrackKind::Audio, &[])
        .unwrap();
    f.add_subscriber(DOCTOR);
    f.subscribe(DOCTOR, PATIENT_MIC, Millis(0)).unwrap();
    let mut outputs = Vec::new();
    for i in 0..150u16 {
        let at = Millis(u64::from(i) * 20);
        for (track, level) in [(MIC, 127), (PATIENT_MIC, 30)] {
            let packet = InboundPacket {
                track,
                rid: None,
                seq: i,
                timestamp: u32::from(i) * 960,
                is_keyframe: false,
                audio_level: Some(level),
                arrival: at,
            };
            f.handle_packet(packet).unwrap();
        }
        outputs.extend(drain(&mut f));
    }
    let speakers: Vec<_> = outputs
        .iter()
        .filter(|o| matches!(o, Output::ActiveSpeaker { .. }))
        .collect();
    assert_eq!(
        speakers,
        [&Output::ActiveSpeaker {
            participant: PATIENT
        }]
    );
    assert_eq!(f.active_speaker(), Some(PATIENT));
    assert_eq!(forwards(&outputs, DOCTOR, PATIENT_MIC).len(), 150);
}

#[test]
fn limits_and_unknown_ids_are_refused_with_clear_errors() {
    let mut f = room();
    f.add_track(DOCTOR, SCREEN, TrackKind::Screen, &[Rid::Q, Rid::H])
        .unwrap();
    f.add_track(DOCTOR, TrackId(13), TrackKind::Audio, &[])
        .unwrap();
    let fifth = f.add_track(DOCTOR, TrackId(14), TrackKind::Video, &[]);
    assert_eq!(
        fifth,
        Err(ForwardError::TooManyTracks {
            publisher: DOCTOR,
            max: 4
        })
    );
    assert_eq!(
        fifth.unwrap_err().to_string(),
        "participant 1 already publishes 4 tracks, the most allowed"
    );
    let now = Millis(0);
    assert_eq!(
        f.add_track(PATIENT, CAM, TrackKind::Video, &[]),
        Err(ForwardError::DuplicateTrack(CAM))
    );
    assert_eq!(
        f.add_track(PATIENT, TrackId(30), TrackKind::Audio, &[Rid::Q]),
        Err(ForwardError::AudioLayers(TrackId(30)))
    );
    assert_eq!(
        f.subscribe(PATIENT, TrackId(99), now),
        Err(ForwardError::UnknownTrack(TrackId(99)))
    );
    assert_eq!(
        f.subscribe(ParticipantId(99), CAM, now),
        Err(ForwardError::UnknownSubscriber(ParticipantId(99)))
    );
    f.add_subscriber(DOCTOR);
    let own = f.subscribe(DOCTOR, CAM, now);
    assert_eq!(
        own,
        Err(ForwardError::OwnTrack {
            subscriber: DOCTOR,
            track: CAM
        })
    );
    assert_eq!(
        own.unwrap_err().to_string(),
        "participant 1 cannot subscribe to its own track 11"
    );
    assert_eq!(
        f.pause(PATIENT, CAM, now),
        Err(ForwardError::NotSubscribed {
            subscriber: PATIENT,
            track: CAM
        })
    );
    f.subscribe(PATIENT, SCREEN, now).unwrap();
    assert_eq!(
        f.force_layer(PATIENT, SCREEN, Some(Rid::F), now),
        Err(ForwardError::UnknownLayer {
            track: SCREEN,
            rid: Some(Rid::F)
        })
    );
    let packet = |track, rid| InboundPacket {
        track,
        rid,
        seq: 1,
        timestamp: 1,
        is_keyframe: true,
        audio_level: None,
        arrival: now,
    };
    assert_eq!(
        f.handle_packet(packet(TrackId(99), None)),
        Err(ForwardError::UnknownTrack(TrackId(99)))
    );
    for (track, rid) in [(CAM, None), (SCREEN, Some(Rid::F)), (MIC, Some(Rid::Q))] {
        assert_eq!(
            f.handle_packet(packet(track, rid)),
            Err(ForwardError::UnknownLayer { track, rid })
        );
    }
}

#[test]
fn a_removed_track_or_participant_leaves_nothing_behind() {
    let mut f = room();
    let mut cam = Camera::simulcast(CAM);
    cam.answers_pli = false;
    run(&mut f, &mut [&mut cam], 0, 1_000);
    f.subscribe(PATIENT, CAM, Millis(1_000)).unwrap();
    f.subscribe(PATIENT, MIC, Millis(1_000)).unwrap();
    assert_eq!(keyframe_requests(&drain(&mut f), CAM), [Some(Rid::Q)]);
    f.remove_track(CAM, Millis(1_100)).unwrap();
    f.handle_timeout(Millis(5_000));
    assert!(drain(&mut f).is_empty(), "no request for a removed track");
    assert_eq!(f.poll_timeout(), None);
    assert_eq!(
        f.unsubscribe(PATIENT, CAM, Millis(5_000)),
        Err(ForwardError::NotSubscribed {
            subscriber: PATIENT,
            track: CAM
        })
    );
    f.remove_participant(DOCTOR, Millis(5_000));
    assert_eq!(
        f.unsubscribe(PATIENT, MIC, Millis(5_000)),
        Err(ForwardError::NotSubscribed {
            subscriber: PATIENT,
            track: MIC
        })
    );
    // The doctor may publish a full set again on rejoining.
    for id in 40..44 {
        f.add_track(DOCTOR, TrackId(id), TrackKind::Video, &[])
            .unwrap();
    }
}
