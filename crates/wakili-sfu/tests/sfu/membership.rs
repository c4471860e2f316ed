//! Participants leaving, reloading, and failing to connect.

use std::time::Duration;

use str0m::media::MediaKind;
use wakili_sfu::{SfuConfig, SfuError, SfuEvent};

use crate::{
    client::{self, Client, Publish},
    harness::{Harness, ROOM, wait_all_flowing, wait_for},
};

fn packets(receiver: &Client, from: &str) -> (u64, u64) {
    receiver.seen(|s| {
        (
            s.packets(from, MediaKind::Audio),
            s.packets(from, MediaKind::Video),
        )
    })
}

/// `receiver` gets more audio and video from `from` than `before`.
async fn receives_more(receiver: &Client, from: &str, before: (u64, u64)) {
    wait_for(&format!("{} to receive {from}", receiver.name), || {
        let (audio, video) = packets(receiver, from);
        audio > before.0 + 10 && video > before.1 + 10
    })
    .await;
}

fn removed(h: &Harness, publisher: &str) -> usize {
    h.events()
        .iter()
        .filter(
            |e| matches!(e, SfuEvent::TrackRemoved { participant, .. } if participant == publisher),
        )
        .count()
}

#[tokio::test]
async fn a_participant_leaving_is_removed_and_can_rejoin() {
    let h = Harness::start().await;
    let alice = h.join("alice", Publish::camera_and_mic()).await.unwrap();
    let bob = h.join("bob", Publish::camera_and_mic()).await.unwrap();
    let carol = h.join("carol", Publish::camera_and_mic()).await.unwrap();
    wait_all_flowing(&[&alice, &bob, &carol]).await;

    h.sfu.leave(ROOM, "alice").await.unwrap();
    wait_for("alice's two tracks removed", || removed(&h, "alice") == 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (at_bob, at_carol) = (packets(&bob, "alice"), packets(&carol, "alice"));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(packets(&bob, "alice"), at_bob, "nothing more from alice");
    assert_eq!(
        packets(&carol, "alice"),
        at_carol,
        "nothing more from alice"
    );
    receives_more(&bob, "carol", packets(&bob, "carol")).await;
    // Bob's m-lines for alice's tracks were stopped in a new offer.
    h.wait_event("an offer stopping alice's m-lines", |e| {
        matches!(e, SfuEvent::Offer { participant, sdp, .. }
            if participant == "bob" && sdp.contains("m=video 0 "))
    })
    .await;
    let stats = h.sfu.stats(ROOM).await.unwrap();
    assert_eq!(stats.participants.len(), 2);
    assert!(
        stats
            .participants
            .iter()
            .all(|p| p.subscriptions.iter().all(|s| s.publisher != "alice"))
    );
    assert!(matches!(
        h.sfu.leave(ROOM, "alice").await,
        Err(SfuError::UnknownParticipant { .. })
    ));

    // Alice comes back under the same name, as a new session.
    drop(alice);
    let alice = h.join("alice", Publish::camera_and_mic()).await.unwrap();
    receives_more(&bob, "alice", at_bob).await;
    receives_more(&carol, "alice", at_carol).await;
    receives_more(&alice, "bob", (0, 0)).await;
    receives_more(&alice, "carol", (0, 0)).await;
}

#[tokio::test]
async fn a_reload_replaces_the_session_and_a_silent_join_times_out() {
    let config = SfuConfig {
        connect_timeout: Duration::from_millis(1_500),
        ..SfuConfig::loopback()
    };
    let h = Harness::with(config).await;
    let alice = h.join("alice", Publish::camera_and_mic()).await.unwrap();
    let bob = h.join("bob", Publish::camera_and_mic()).await.unwrap();
    wait_all_flowing(&[&alice, &bob]).await;

    // Bob reloads his page: a new session under the same name, without leaving first.
    let before = packets(&alice, "bob");
    let old_bob = bob;
    let bob = h.join("bob", Publish::camera_and_mic()).await.unwrap();
    wait_for("old bob's tracks removed", || removed(&h, "bob") == 2).await;
    receives_more(&alice, "bob", before).await;
    receives_more(&bob, "alice", (0, 0)).await;
    let stale = packets(&old_bob, "alice");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        packets(&old_bob, "alice"),
        stale,
        "the old session gets nothing"
    );

    // A participant whose browser never connects is dropped after the connect timeout.
    let ghost = client::offer(
        &Publish::camera_and_mic(),
        "ghost",
        &[str0m::format::Codec::Vp8],
    );
    h.sfu.join(ROOM, "ghost", &ghost.sdp).await.unwrap();
    h.wait_event(
        "ghost disconnected",
        |e| matches!(e, SfuEvent::Disconnected { participant, .. } if participant == "ghost"),
    )
    .await;
    assert_eq!(removed(&h, "ghost"), 1, "its video track");
    assert_eq!(h.sfu.stats(ROOM).await.unwrap().participants.len(), 2);
    receives_more(&alice, "bob", packets(&alice, "bob")).await;
    drop(old_bob);
}
