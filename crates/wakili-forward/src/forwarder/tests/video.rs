//! Layer choice, switching and keyframe requests as a subscriber sees them.

use super::*;

#[test]
fn a_subscriber_sees_one_continuous_stream_across_layer_switches() {
    let mut f = room();
    let mut cam = Camera::simulcast(CAM);
    f.set_estimate(PATIENT, 2_000_000, Millis(0)).unwrap();
    f.subscribe(PATIENT, CAM, Millis(0)).unwrap();
    // Starts on q (the first layer seen), climbs to f once the surplus has lasted 3 s.
    let mut outputs = run(&mut f, &mut [&mut cam], 0, 4_000);
    assert_eq!(f.forwarded_layer(PATIENT, CAM), Some(Rid::F));
    // The estimate collapses: straight down to q at its next keyframe.
    f.set_estimate(PATIENT, 400_000, Millis(4_000)).unwrap();
    outputs.extend(run(&mut f, &mut [&mut cam], 4_000, 6_000));
    assert_eq!(
        layer_changes(&outputs, PATIENT, CAM),
        [Some(Rid::Q), Some(Rid::F), Some(Rid::Q)]
    );
    assert_eq!(
        keyframe_requests(&outputs, CAM),
        [Some(Rid::F), Some(Rid::Q)]
    );
    let packets = forwards(&outputs, PATIENT, CAM);
    assert_continuous(&packets);
    assert!(packets.iter().any(|(seq, _)| *seq == 0), "wrapped around");
}

#[test]
fn a_new_subscription_requests_a_keyframe_and_waits_for_it() {
    let mut f = room();
    let mut cam = Camera::simulcast(CAM);
    // Subscribed before the first packet: the first frame is a keyframe, nothing to ask.
    f.subscribe(PATIENT, CAM, Millis(0)).unwrap();
    let outputs = run(&mut f, &mut [&mut cam], 0, 2_000);
    assert!(keyframe_requests(&outputs, CAM).is_empty());
    assert!(!forwards(&outputs, PATIENT, CAM).is_empty());
    // The observer joins mid-stream: the publisher is asked, nothing flows until it answers.
    cam.answers_pli = false;
    f.subscribe(OBSERVER, CAM, Millis(2_000)).unwrap();
    let waiting = run(&mut f, &mut [&mut cam], 2_000, 2_500);
    assert_eq!(keyframe_requests(&waiting, CAM), [Some(Rid::Q)]);
    assert!(forwards(&waiting, OBSERVER, CAM).is_empty());
    cam.keyframe_due.insert(Some(Rid::Q));
    let flowing = run(&mut f, &mut [&mut cam], 2_500, 3_000);
    assert_eq!(layer_changes(&flowing, OBSERVER, CAM), [Some(Rid::Q)]);
    assert_continuous(&forwards(&flowing, OBSERVER, CAM));
}

#[test]
fn a_missing_keyframe_is_requested_again_every_second() {
    let mut f = room();
    let mut cam = Camera::simulcast(CAM);
    cam.answers_pli = false;
    run(&mut f, &mut [&mut cam], 0, 2_000);
    f.subscribe(PATIENT, CAM, Millis(2_000)).unwrap();
    let unanswered = run(&mut f, &mut [&mut cam], 2_000, 4_100);
    assert_eq!(keyframe_requests(&unanswered, CAM), [Some(Rid::Q); 3]);
    assert_eq!(f.poll_timeout(), Some(Millis(5_046)));
    // A keyframe finally comes: no more asking.
    cam.keyframe_due.insert(Some(Rid::Q));
    let answered = run(&mut f, &mut [&mut cam], 4_100, 7_000);
    assert!(keyframe_requests(&answered, CAM).is_empty());
    assert_eq!(f.poll_timeout(), None);
}

#[test]
fn a_keyframe_nobody_waits_for_any_more_is_not_requested_again() {
    let mut f = room();
    let mut cam = Camera::simulcast(CAM);
    cam.answers_pli = false;
    run(&mut f, &mut [&mut cam], 0, 2_000);
    f.subscribe(PATIENT, CAM, Millis(2_000)).unwrap();
    assert_eq!(keyframe_requests(&drain(&mut f), CAM), [Some(Rid::Q)]);
    // The patient pauses before the keyframe came: the request is not repeated.
    f.pause(PATIENT, CAM, Millis(2_100)).unwrap();
    let paused = run(&mut f, &mut [&mut cam], 2_100, 5_000);
    assert!(keyframe_requests(&paused, CAM).is_empty());
    assert_eq!(f.poll_timeout(), None);
}

#[test]
fn subscribers_switching_together_share_one_keyframe_request() {
    let mut f = room();
    let mut cam = Camera::simulcast(CAM);
    run(&mut f, &mut [&mut cam], 0, 2_000);
    f.subscribe(PATIENT, CAM, Millis(2_000)).unwrap();
    f.subscribe(OBSERVER, CAM, Millis(2_010)).unwrap();
    let outputs = run(&mut f, &mut [&mut cam], 2_020, 3_000);
    assert_eq!(keyframe_requests(&outputs, CAM), [Some(Rid::Q)]);
    for subscriber in [PATIENT, OBSERVER] {
        assert_eq!(layer_changes(&outputs, subscriber, CAM), [Some(Rid::Q)]);
    }
}

#[test]
fn pausing_and_resuming_video_continues_the_sequence() {
    let mut f = room();
    let mut cam = Camera::simulcast(CAM);
    f.subscribe(PATIENT, CAM, Millis(0)).unwrap();
    let mut outputs = run(&mut f, &mut [&mut cam], 0, 1_000);
    f.pause(PATIENT, CAM, Millis(1_000)).unwrap();
    let paused = run(&mut f, &mut [&mut cam], 1_000, 2_000);
    assert!(forwards(&paused, PATIENT, CAM).is_empty());
    f.resume(PATIENT, CAM, Millis(2_000)).unwrap();
    outputs.extend(paused);
    outputs.extend(run(&mut f, &mut [&mut cam], 2_000, 3_000));
    assert_eq!(
        layer_changes(&outputs, PATIENT, CAM),
        [Some(Rid::Q), None, Some(Rid::Q)]
    );
    assert_eq!(
        keyframe_requests(&outputs, CAM),
        [Some(Rid::Q)],
        "on resume"
    );
    assert_continuous(&forwards(&outputs, PATIENT, CAM));
}

#[test]
fn the_quality_cap_limits_the_layer_whatever_the_estimate() {
    let mut f = room();
    let mut cam = Camera::simulcast(CAM);
    run(&mut f, &mut [&mut cam], 0, 500);
    f.set_estimate(PATIENT, 5_000_000, Millis(500)).unwrap();
    f.subscribe(PATIENT, CAM, Millis(500)).unwrap();
    let mut outputs = run(&mut f, &mut [&mut cam], 500, 1_000);
    f.set_quality_cap(PATIENT, Quality::Low, Millis(1_000))
        .unwrap();
    outputs.extend(run(&mut f, &mut [&mut cam], 1_000, 8_000));
    assert_eq!(
        layer_changes(&outputs, PATIENT, CAM),
        [Some(Rid::F), Some(Rid::Q)]
    );
    assert_continuous(&forwards(&outputs, PATIENT, CAM));
}

#[test]
fn a_forced_layer_is_held_to_the_estimate() {
    let mut f = room();
    let mut cam = Camera::simulcast(CAM);
    run(&mut f, &mut [&mut cam], 0, 500);
    // 700 kbit/s covers h, not f: forcing f gives h, the best layer that fits.
    f.set_estimate(PATIENT, 700_000, Millis(500)).unwrap();
    f.subscribe(PATIENT, CAM, Millis(500)).unwrap();
    f.force_layer(PATIENT, CAM, Some(Rid::F), Millis(500))
        .unwrap();
    let mut outputs = run(&mut f, &mut [&mut cam], 500, 1_000);
    assert_eq!(layer_changes(&outputs, PATIENT, CAM), [Some(Rid::H)]);
    // The estimate grows past f's bitrate × 1.2: f once that has lasted 3 s.
    f.set_estimate(PATIENT, 2_000_000, Millis(1_000)).unwrap();
    outputs.extend(run(&mut f, &mut [&mut cam], 1_000, 3_900));
    assert_eq!(f.forwarded_layer(PATIENT, CAM), Some(Rid::H));
    outputs.extend(run(&mut f, &mut [&mut cam], 3_900, 4_500));
    assert_eq!(f.forwarded_layer(PATIENT, CAM), Some(Rid::F));
    // Forced to q, q whatever the estimate; lifted, the estimate decides again.
    f.force_layer(PATIENT, CAM, Some(Rid::Q), Millis(4_500))
        .unwrap();
    outputs.extend(run(&mut f, &mut [&mut cam], 4_500, 5_000));
    assert_eq!(f.forwarded_layer(PATIENT, CAM), Some(Rid::Q));
    f.force_layer(PATIENT, CAM, None, Millis(5_000)).unwrap();
    outputs.extend(run(&mut f, &mut [&mut cam], 5_000, 5_500));
    assert_eq!(f.forwarded_layer(PATIENT, CAM), Some(Rid::F));
    assert_eq!(
        layer_changes(&outputs, PATIENT, CAM),
        [Some(Rid::H), Some(Rid::F), Some(Rid::Q), Some(Rid::F)]
    );
    assert_continuous(&forwards(&outputs, PATIENT, CAM));
}

#[test]
fn a_layer_the_publisher_stops_sending_is_replaced_within_a_second() {
    let mut f = room();
    let mut cam = Camera::simulcast(CAM);
    run(&mut f, &mut [&mut cam], 0, 500);
    f.set_estimate(PATIENT, 5_000_000, Millis(500)).unwrap();
    f.subscribe(PATIENT, CAM, Millis(500)).unwrap();
    let mut outputs = run(&mut f, &mut [&mut cam], 500, 1_000);
    assert_eq!(f.forwarded_layer(PATIENT, CAM), Some(Rid::F));
    // The publisher's uplink suffers: its browser drops f.
    cam.stopped.insert(Some(Rid::F));
    let later = run(&mut f, &mut [&mut cam], 1_000, 3_000);
    let first_h = later
        .iter()
        .position(|o| {
            matches!(
                o,
                Output::RequestKeyframe {
                    rid: Some(Rid::H),
                    ..
                }
            )
        })
        .unwrap();
    assert!(
        forwards(&later[..first_h], PATIENT, CAM).is_empty(),
        "f has stopped"
    );
    outputs.extend(later);
    assert_eq!(
        layer_changes(&outputs, PATIENT, CAM),
        [Some(Rid::F), Some(Rid::H)]
    );
    assert_continuous(&forwards(&outputs, PATIENT, CAM));
}

#[test]
fn the_estimate_is_shared_by_a_subscribers_video_tracks() {
    let mut f = room();
    f.add_track(DOCTOR, SCREEN, TrackKind::Screen, &Rid::ALL)
        .unwrap();
    let (mut cam, mut screen) = (Camera::simulcast(CAM), Camera::simulcast(SCREEN));
    run(&mut f, &mut [&mut cam, &mut screen], 0, 500);
    for subscriber in [PATIENT, OBSERVER] {
        f.set_estimate(subscriber, 1_600_000, Millis(500)).unwrap();
        f.subscribe(subscriber, CAM, Millis(500)).unwrap();
    }
    f.subscribe(OBSERVER, SCREEN, Millis(500)).unwrap();
    run(&mut f, &mut [&mut cam, &mut screen], 500, 1_500);
    // 1.6 Mbit/s carries f alone, or h twice.
    assert_eq!(f.forwarded_layer(PATIENT, CAM), Some(Rid::F));
    assert_eq!(f.forwarded_layer(OBSERVER, CAM), Some(Rid::H));
    assert_eq!(f.forwarded_layer(OBSERVER, SCREEN), Some(Rid::H));
    // Without the screen share, the camera gets it all (after the usual hold).
    f.pause(OBSERVER, SCREEN, Millis(1_500)).unwrap();
    f.set_estimate(OBSERVER, 2_000_000, Millis(1_500)).unwrap();
    run(&mut f, &mut [&mut cam, &mut screen], 1_500, 5_000);
    assert_eq!(f.forwarded_layer(OBSERVER, CAM), Some(Rid::F));
}

#[test]
fn a_screen_share_without_simulcast_is_forwarded_as_one_layer() {
    let mut f = room();
    f.add_track(DOCTOR, SCREEN, TrackKind::Screen, &[]).unwrap();
    let mut screen = Camera::single(SCREEN);
    f.subscribe(PATIENT, SCREEN, Millis(0)).unwrap();
    let mut outputs = run(&mut f, &mut [&mut screen], 0, 1_000);
    f.pause(PATIENT, SCREEN, Millis(1_000)).unwrap();
    let paused = run(&mut f, &mut [&mut screen], 1_000, 1_500);
    assert!(forwards(&paused, PATIENT, SCREEN).is_empty());
    f.resume(PATIENT, SCREEN, Millis(1_500)).unwrap();
    outputs.extend(run(&mut f, &mut [&mut screen], 1_500, 2_000));
    assert_eq!(keyframe_requests(&outputs, SCREEN), [None, None]);
    assert!(layer_changes(&outputs, PATIENT, SCREEN).is_empty());
    assert_eq!(f.forwarded_layer(PATIENT, SCREEN), None);
    assert_continuous(&forwards(&outputs, PATIENT, SCREEN));
}

#[test]
fn a_subscribers_picture_loss_asks_for_its_layer_within_the_rate_limit() {
    let mut f = room();
    let mut cam = Camera::simulcast(CAM);
    cam.answers_pli = false;
    f.subscribe(PATIENT, CAM, Millis(0)).unwrap();
    f.subscribe(OBSERVER, MIC, Millis(0)).unwrap();
    run(&mut f, &mut [&mut cam], 0, 1_000);
    assert_eq!(f.forwarded_layer(PATIENT, CAM), Some(Rid::Q));
    // The patient's decoder lost a picture: the publisher is asked for a q keyframe.
    f.request_keyframe(PATIENT, CAM, Millis(1_000)).unwrap();
    assert_eq!(keyframe_requests(&drain(&mut f), CAM), [Some(Rid::Q)]);
    // A burst of PLIs within the interval makes no more requests.
    f.request_keyframe(PATIENT, CAM, Millis(1_100)).unwrap();
    assert!(keyframe_requests(&drain(&mut f), CAM).is_empty());
    // Audio has no keyframes; unknown subscriptions are refused.
    f.request_keyframe(OBSERVER, MIC, Millis(1_200)).unwrap();
    assert!(drain(&mut f).is_empty());
    assert_eq!(
        f.request_keyframe(OBSERVER, CAM, Millis(1_200)),
        Err(ForwardError::NotSubscribed {
            subscriber: OBSERVER,
            track: CAM
        })
    );
}
