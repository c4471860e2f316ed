//! Bad requests are refused with a clear error, and the call goes on.

use str0m::{format::Codec, media::MediaKind};
use tokio::net::UdpSocket;
use wakili_sfu::{SfuError, TrackId};

use crate::{
    client::{self, Client, Publish},
    harness::{Harness, ROOM, wait_all_flowing, wait_for},
};

/// Both keep receiving each other's media.
async fn still_flowing(a: &Client, b: &Client) {
    for (receiver, sender) in [(a, b), (b, a)] {
        let before = receiver.seen(|s| s.packets(&sender.name, MediaKind::Video));
        wait_for("media to go on", || {
            receiver.seen(|s| s.packets(&sender.name, MediaKind::Video)) > before + 3
        })
        .await;
    }
}

fn offer(publish: Publish) -> String {
    client::offer(&publish, "mallory", &[Codec::Vp8, Codec::Opus]).sdp
}

#[tokio::test]
async fn bad_input_is_refused_and_the_others_keep_receiving() {
    let h = Harness::start().await;
    let alice = h.join("alice", Publish::camera_and_mic()).await.unwrap();
    let bob = h.join("bob", Publish::camera_and_mic()).await.unwrap();
    wait_all_flowing(&[&alice, &bob]).await;
    let sfu = &h.sfu;

    let malformed = sfu
        .join(ROOM, "mallory", "v=0\r\nthis is not SDP\r\n")
        .await;
    assert!(
        matches!(malformed, Err(SfuError::InvalidSdp(_))),
        "{malformed:?}"
    );
    still_flowing(&alice, &bob).await;

    let pcmu_h265 = client::offer(
        &Publish::camera_and_mic(),
        "mallory",
        &[Codec::PCMU, Codec::H265],
    );
    let unsupported = sfu.join(ROOM, "mallory", &pcmu_h265.sdp).await;
    assert!(
        matches!(unsupported, Err(SfuError::NoSupportedCodec { .. })),
        "{unsupported:?}"
    );
    still_flowing(&alice, &bob).await;

    let five = Publish {
        extra_video: 3,
        ..Publish::camera_and_mic()
    };
    assert_eq!(
        sfu.join(ROOM, "mallory", &offer(five)).await,
        Err(SfuError::TooManyTracks { offered: 5, max: 4 })
    );
    still_flowing(&alice, &bob).await;
    let odd_layers = Publish {
        layers: vec!["lo", "hi"],
        ..Publish::camera_and_mic()
    };
    assert_eq!(
        sfu.join(ROOM, "mallory", &offer(odd_layers)).await,
        Err(SfuError::UnsupportedLayer("lo".into()))
    );
    let valid = offer(Publish::camera_and_mic());
    assert!(matches!(
        sfu.join(ROOM, "mal lory", &valid).await,
        Err(SfuError::InvalidName {
            what: "participant",
            ..
        })
    ));
    assert!(matches!(
        sfu.pause(ROOM, "nobody", TrackId(1), true).await,
        Err(SfuError::UnknownParticipant { .. })
    ));
    assert_eq!(
        sfu.stats("nowhere").await,
        Err(SfuError::UnknownRoom("nowhere".into()))
    );
    assert_eq!(
        sfu.answer(ROOM, "bob", &valid).await,
        Err(SfuError::NoPendingOffer)
    );
    assert_eq!(
        sfu.pause(ROOM, "bob", TrackId(999), true).await,
        Err(SfuError::UnknownTrack(TrackId(999)))
    );
    still_flowing(&alice, &bob).await;

    // Six more (who never connect) fill the room to 8; a ninth is refused.
    let mic_only = Publish {
        layers: vec![],
        ..Publish::camera_and_mic()
    };
    for i in 0..6 {
        sfu.join(ROOM, &format!("listener{i}"), &offer(mic_only.clone()))
            .await
            .unwrap();
    }
    assert_eq!(
        sfu.join(ROOM, "ninth", &valid).await,
        Err(SfuError::RoomFull {
            room: ROOM.into(),
            max: 8
        })
    );
    // A member rejoining (a reload) is not a ninth participant.
    sfu.join(ROOM, "listener0", &offer(mic_only)).await.unwrap();
    still_flowing(&alice, &bob).await;

    // Datagrams from strangers: junk, and RTP-looking bytes.
    let before = sfu.dropped_datagrams();
    let stranger = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    stranger.send_to(b"hello", sfu.local_addr()).await.unwrap();
    let mut rtp = vec![0x80, 0x60, 0x00, 0x01];
    rtp.extend([0; 40]);
    stranger.send_to(&rtp, sfu.local_addr()).await.unwrap();
    wait_for("strangers dropped", || {
        sfu.dropped_datagrams() >= before + 2
    })
    .await;
    still_flowing(&alice, &bob).await;
    assert_eq!(sfu.stats(ROOM).await.unwrap().participants.len(), 8);
}
