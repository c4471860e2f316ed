//! Starting and stopping.

use std::time::Duration;

use tokio::sync::oneshot;
use wakili_sfu::{Sfu, SfuConfig, SfuError};

use crate::{
    client::Publish,
    harness::{Harness, ROOM, wait_all_flowing},
};

#[tokio::test]
async fn the_sfu_stops_on_shutdown_and_refuses_what_cannot_work() {
    let (stop, stopped) = oneshot::channel::<()>();
    let config = SfuConfig {
        ice_tcp: false,
        ..SfuConfig::loopback()
    };
    let sfu = Sfu::start(config.clone(), async {
        let _ = stopped.await;
    })
    .await
    .unwrap();
    assert_eq!(
        sfu.stats(ROOM).await,
        Err(SfuError::UnknownRoom(ROOM.into()))
    );

    // Its port is taken.
    let taken = SfuConfig {
        bind: sfu.local_addr(),
        ..config.clone()
    };
    let refused = Sfu::start(taken, std::future::pending()).await;
    assert!(matches!(refused, Err(SfuError::Bind { .. })), "{refused:?}");
    let nonsense = SfuConfig {
        max_participants_per_room: 0,
        ..config
    };
    assert!(matches!(
        Sfu::start(nonsense, std::future::pending()).await,
        Err(SfuError::InvalidConfig(_))
    ));

    stop.send(()).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while sfu.stats(ROOM).await != Err(SfuError::Stopped) {
        assert!(tokio::time::Instant::now() < deadline, "still running");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn media_stops_when_the_sfu_does() {
    let mut h = Harness::start().await;
    let alice = h.join("alice", Publish::camera_and_mic()).await.unwrap();
    let bob = h.join("bob", Publish::camera_and_mic()).await.unwrap();
    wait_all_flowing(&[&alice, &bob]).await;
    h.stop();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let received = bob.seen(|s| s.incoming.values().map(|i| i.packets).sum::<u64>());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        bob.seen(|s| s.incoming.values().map(|i| i.packets).sum::<u64>()),
        received
    );
    assert_eq!(
        h.sfu.join(ROOM, "carol", "v=0").await,
        Err(SfuError::Stopped)
    );
}
