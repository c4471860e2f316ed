//! A listen-only participant (an observer) receives everyone and can send nothing.

use str0m::{format::Codec, media::MediaKind};
use wakili_sfu::SfuError;

use crate::{
    client::{self, Publish},
    harness::{Harness, ROOM, wait_all_flowing, wait_for},
};

#[tokio::test]
async fn an_observer_receives_every_track_and_publishes_none() {
    let h = Harness::start().await;
    let alice = h.join("alice", Publish::camera_and_mic()).await.unwrap();
    let bob = h.join("bob", Publish::camera_and_mic()).await.unwrap();
    wait_all_flowing(&[&alice, &bob]).await;
    let olive = h.listen("olive").await.unwrap();
    for speaker in ["alice", "bob"] {
        for kind in [MediaKind::Audio, MediaKind::Video] {
            wait_for("the observer to receive", || {
                olive.seen(|s| s.packets(speaker, kind)) > 10
            })
            .await;
        }
    }
    assert!(
        h.tracks_of("olive", wakili_sfu::MediaKind::Audio)
            .is_empty()
    );
    assert!(
        h.tracks_of("olive", wakili_sfu::MediaKind::Video)
            .is_empty()
    );
}

#[tokio::test]
async fn a_listen_only_offer_that_sends_media_is_refused() {
    let h = Harness::start().await;
    let alice = h.join("alice", Publish::camera_and_mic()).await.unwrap();
    let sending = client::offer(
        &Publish::camera_and_mic(),
        "mallory",
        &[Codec::Vp8, Codec::Opus],
    );
    assert_eq!(
        h.sfu.listen(ROOM, "mallory", &sending.sdp).await,
        Err(SfuError::ListenOnly { offered: 2 })
    );
    let stats = h.sfu.stats(ROOM).await.unwrap();
    assert_eq!(
        stats
            .participants
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>(),
        ["alice"],
        "nothing changed"
    );
    drop(alice);
}
