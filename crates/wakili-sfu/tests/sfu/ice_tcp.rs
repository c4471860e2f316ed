//! A participant on a network that blocks UDP: ICE over TCP.

use crate::{
    client::Publish,
    harness::{Harness, ROOM, wait_all_flowing},
};

#[tokio::test]
async fn a_participant_can_connect_over_ice_tcp() {
    let h = Harness::start().await;
    let alice = h.join("alice", Publish::camera_and_mic()).await.unwrap();
    let tcp = Publish {
        tcp: true,
        ..Publish::camera_and_mic()
    };
    let bob = h.join("bob", tcp).await.unwrap();
    wait_all_flowing(&[&alice, &bob]).await;
    let stats = h.sfu.stats(ROOM).await.unwrap();
    assert!(stats.participants.iter().all(|p| p.connected));
    bob.seen(|s| assert!(s.incoming.values().all(|i| i.missing.is_empty())));
}
