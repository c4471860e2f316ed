//! Media reaches everyone else, continuously.

use str0m::media::MediaKind;

use crate::{
    client::Publish,
    harness::{Harness, ROOM, wait_all_flowing, wait_for},
};

#[tokio::test]
async fn three_participants_receive_each_others_audio_and_video() {
    let h = Harness::start().await;
    let alice = h.join("alice", Publish::camera_and_mic()).await.unwrap();
    let bob = h.join("bob", Publish::camera_and_mic()).await.unwrap();
    wait_all_flowing(&[&alice, &bob]).await;
    // Carol comes late: her video from the others starts at keyframes they are asked for.
    let carol = h.join("carol", Publish::camera_and_mic()).await.unwrap();
    let everyone = [&alice, &bob, &carol];
    wait_all_flowing(&everyone).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    for receiver in everyone {
        receiver.seen(|seen| {
            assert_eq!(
                seen.incoming.len(),
                4,
                "{}: two tracks from each other",
                receiver.name
            );
            for incoming in seen.incoming.values() {
                assert!(incoming.packets > 10, "{}: {incoming:?}", receiver.name);
                assert!(
                    incoming.missing.is_empty(),
                    "{}: gap in {incoming:?}",
                    receiver.name
                );
                if incoming.kind == MediaKind::Video {
                    assert_eq!(
                        incoming.picture_id_jumps, 0,
                        "{}: {incoming:?}",
                        receiver.name
                    );
                }
            }
        });
    }
    // Subscribers tell tracks apart by their msid: "<publisher> t<track id>".
    for (publisher, kind) in [("alice", MediaKind::Audio), ("bob", MediaKind::Video)] {
        let sfu_kind = match kind {
            MediaKind::Audio => wakili_sfu::MediaKind::Audio,
            _ => wakili_sfu::MediaKind::Video,
        };
        let id = h.tracks_of(publisher, sfu_kind)[0];
        carol.seen(|s| assert_eq!(s.from(publisher, kind)[0].track, format!("t{}", id.0)));
    }
    for publisher in [&alice, &bob] {
        assert!(
            publisher.seen(|s| s.keyframe_requests) > 0,
            "{} asked for a keyframe",
            publisher.name
        );
    }
    let stats = h.sfu.stats(ROOM).await.unwrap();
    assert_eq!(stats.participants.len(), 3);
    for p in &stats.participants {
        assert!(p.connected);
        assert!(
            p.estimate_bps.is_some(),
            "str0m's estimate reaches the forwarder"
        );
        assert_eq!(p.published.len(), 2);
        assert!(p.published.iter().all(|t| t.received_packets > 0));
        assert_eq!(p.subscriptions.len(), 4);
        for sub in &p.subscriptions {
            assert!(
                sub.negotiated && !sub.paused && sub.forwarded_packets > 0,
                "{sub:?}"
            );
        }
        let layers = p.subscriptions.iter().filter(|s| s.layer.is_some()).count();
        assert_eq!(layers, 2, "a layer chosen for each video: {p:?}");
    }
    assert_eq!(h.sfu.dropped_datagrams(), 0);
}

#[tokio::test]
async fn packets_lost_on_the_way_to_a_subscriber_are_resent_from_the_sfus_buffer() {
    let h = Harness::start().await;
    let alice = h.join("alice", Publish::camera_and_mic()).await.unwrap();
    let lossy = Publish {
        drop_every: Some(15),
        ..Publish::camera_and_mic()
    };
    let bob = h.join("bob", lossy).await.unwrap();
    wait_all_flowing(&[&alice, &bob]).await;
    wait_for("some loss and a while", || {
        bob.seen(|s| s.dropped > 15 && s.packets("alice", MediaKind::Video) > 60)
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    bob.seen(|s| {
        let video = s.from("alice", MediaKind::Video)[0];
        // Whatever was dropped was NACKed and came back by RTX, except perhaps the last
        // few still on their way.
        let recent = video
            .missing
            .range(video.packets.saturating_sub(0)..)
            .count();
        let _ = recent;
        assert!(
            video.missing.len() <= 2,
            "unrecovered: {:?} of {} received",
            video.missing,
            video.packets
        );
    });
}
