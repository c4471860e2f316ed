//! Simulcast layer choice as a subscriber sees it.

use str0m::media::MediaKind;
use wakili_sfu::{Quality, Rid, SfuEvent};

use crate::{
    client::{Client, Publish},
    harness::{Harness, ROOM, wait_all_flowing, wait_for},
};

/// The layer (`q`/`h`/`f` byte) the last video packet from `publisher` came from.
fn receiving(receiver: &Client, publisher: &str) -> Option<u8> {
    receiver.seen(|s| {
        s.from(publisher, MediaKind::Video)
            .first()
            .and_then(|i| i.layers.last().copied())
    })
}

#[tokio::test]
async fn forcing_a_subscribers_layer_down_and_back_up_switches_what_it_receives() {
    let h = Harness::start().await;
    let alice = h.join("alice", Publish::camera_and_mic()).await.unwrap();
    let bob = h.join("bob", Publish::camera_and_mic()).await.unwrap();
    wait_all_flowing(&[&alice, &bob]).await;
    let camera = h.tracks_of("alice", wakili_sfu::MediaKind::Video)[0];

    h.sfu.force_layer(ROOM, "bob", Some(Rid::Q)).await.unwrap();
    wait_for("bob on q", || receiving(&bob, "alice") == Some(b'q')).await;
    // Up again: f once the estimate covers it (at 1 Mbit/s it would be h for good).
    h.sfu.force_layer(ROOM, "bob", Some(Rid::F)).await.unwrap();
    wait_for("bob on f", || receiving(&bob, "alice") == Some(b'f')).await;
    let stats = h.sfu.stats(ROOM).await.unwrap();
    let bob_stats = stats.participants.iter().find(|p| p.name == "bob").unwrap();
    let sub = bob_stats
        .subscriptions
        .iter()
        .find(|s| s.track == camera)
        .unwrap();
    assert_eq!(sub.layer, Some(Rid::F));
    h.wait_event("LayerChanged to f", |e| {
        matches!(e, SfuEvent::LayerChanged { subscriber, track, rid: Some(Rid::F), .. }
            if subscriber == "bob" && *track == camera)
    })
    .await;

    // The quality engine's cap wins over the automatic choice, not over a forced layer.
    h.sfu.force_layer(ROOM, "bob", None).await.unwrap();
    h.sfu
        .set_quality_cap(ROOM, "bob", Quality::Low)
        .await
        .unwrap();
    wait_for("bob capped to q", || receiving(&bob, "alice") == Some(b'q')).await;

    // One continuous stream through every switch: no gap, picture ids numbered on.
    bob.seen(|s| {
        let video = s.from("alice", MediaKind::Video)[0];
        assert!(video.missing.is_empty(), "{video:?}");
        assert_eq!(video.picture_id_jumps, 0, "{video:?}");
        // Forced back up, bob may pass through h while his estimate grows to cover f (a
        // forced layer is held to the estimate).
        let ends = |tail: &[u8]| video.layers.ends_with(tail);
        assert!(ends(b"qfq") || ends(b"qhfq"), "{:?}", video.layers);
    });
    // Alice, not forced, still receives bob's video.
    let before = alice.seen(|s| s.packets("bob", MediaKind::Video));
    wait_for("alice still receiving", || {
        alice.seen(|s| s.packets("bob", MediaKind::Video)) > before + 10
    })
    .await;
}
