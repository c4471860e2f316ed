//! Pausing a track for one subscriber.

use std::time::Duration;

use str0m::media::MediaKind;

use crate::{
    client::{Client, Publish},
    harness::{Harness, ROOM, wait_all_flowing, wait_for},
};

fn packets(receiver: &Client, kind: MediaKind) -> u64 {
    receiver.seen(|s| s.packets("alice", kind))
}

#[tokio::test]
async fn a_paused_track_stops_reaching_its_subscriber_and_resumes_in_sequence() {
    let h = Harness::start().await;
    let alice = h.join("alice", Publish::camera_and_mic()).await.unwrap();
    let bob = h.join("bob", Publish::camera_and_mic()).await.unwrap();
    let carol = h.join("carol", Publish::camera_and_mic()).await.unwrap();
    wait_all_flowing(&[&alice, &bob, &carol]).await;
    let camera = h.tracks_of("alice", wakili_sfu::MediaKind::Video)[0];
    let mic = h.tracks_of("alice", wakili_sfu::MediaKind::Audio)[0];

    h.sfu.pause(ROOM, "bob", camera, true).await.unwrap();
    h.sfu.pause(ROOM, "bob", mic, true).await.unwrap();
    // Whatever was in flight lands; then nothing more.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (video, audio) = (
        packets(&bob, MediaKind::Video),
        packets(&bob, MediaKind::Audio),
    );
    let carol_video = packets(&carol, MediaKind::Video);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(packets(&bob, MediaKind::Video), video, "paused video");
    assert_eq!(packets(&bob, MediaKind::Audio), audio, "paused audio");
    assert!(
        packets(&carol, MediaKind::Video) > carol_video + 5,
        "others unaffected"
    );
    assert!(bob.seen(|s| s.packets("carol", MediaKind::Video)) > 0);
    let stats = h.sfu.stats(ROOM).await.unwrap();
    let bob_stats = stats.participants.iter().find(|p| p.name == "bob").unwrap();
    let sub = bob_stats
        .subscriptions
        .iter()
        .find(|s| s.track == camera)
        .unwrap();
    assert!(sub.paused && sub.layer.is_none(), "{sub:?}");

    h.sfu.pause(ROOM, "bob", camera, false).await.unwrap();
    h.sfu.pause(ROOM, "bob", mic, false).await.unwrap();
    wait_for("video again", || {
        packets(&bob, MediaKind::Video) > video + 10
    })
    .await;
    wait_for("audio again", || {
        packets(&bob, MediaKind::Audio) > audio + 10
    })
    .await;
    bob.seen(|s| {
        for stream in s
            .from("alice", MediaKind::Video)
            .into_iter()
            .chain(s.from("alice", MediaKind::Audio))
        {
            assert!(stream.missing.is_empty(), "sequence continues: {stream:?}");
        }
        assert_eq!(s.from("alice", MediaKind::Video)[0].picture_id_jumps, 0);
    });

    // Pausing is for others' tracks only.
    assert_eq!(
        h.sfu.pause(ROOM, "alice", camera, true).await,
        Err(wakili_sfu::SfuError::OwnTrack(camera))
    );
}
