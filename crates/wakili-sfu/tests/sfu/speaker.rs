//! The active speaker.

use wakili_sfu::SfuEvent;

use crate::{
    client::Publish,
    harness::{Harness, wait_all_flowing},
};

fn speaker_is(name: &str) -> impl Fn(&SfuEvent) -> bool + '_ {
    move |e| matches!(e, SfuEvent::ActiveSpeaker { participant, .. } if participant == name)
}

#[tokio::test]
async fn the_loudest_participant_becomes_the_active_speaker() {
    let h = Harness::start().await;
    let alice = h.join("alice", Publish::camera_and_mic()).await.unwrap();
    let bob = h.join("bob", Publish::camera_and_mic()).await.unwrap();
    let carol = h.join("carol", Publish::camera_and_mic()).await.unwrap();
    wait_all_flowing(&[&alice, &bob, &carol]).await;
    // Everyone is quiet (level 100) until bob speaks up.
    bob.set_level(20).await;
    h.wait_event("bob speaking", speaker_is("bob")).await;
    // Carol takes over.
    bob.set_level(100).await;
    carol.set_level(10).await;
    h.wait_event("carol speaking", speaker_is("carol")).await;
    assert!(
        !h.events().iter().any(speaker_is("alice")),
        "alice never spoke"
    );
    let stats = h.sfu.stats(crate::harness::ROOM).await.unwrap();
    assert_eq!(stats.active_speaker.as_deref(), Some("carol"));
}
