//! The recorder's tap: packets of every published track (of a simulcast track, its highest
//! flowing layer) reach the recorder's feed, track ends are told, and its keyframe requests reach the
//! publisher.

use std::{collections::HashSet, time::Duration};

use tokio::sync::mpsc;
use wakili_sfu::{MediaKind, RecorderFeed};

use crate::{
    client::Publish,
    harness::{Harness, ROOM, wait_all_flowing},
};

/// Feed items until `until` says it has seen enough (or 10 s pass).
async fn collect(
    feed: &mut mpsc::Receiver<RecorderFeed>,
    mut until: impl FnMut(&[RecorderFeed]) -> bool,
) -> Vec<RecorderFeed> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !until(&seen) {
        match tokio::time::timeout_at(deadline, feed.recv()).await {
            Ok(Some(item)) => seen.push(item),
            _ => panic!("the feed went quiet after {} items", seen.len()),
        }
    }
    seen
}

/// How many of `participant`'s tracks the feed said ended.
fn ended(items: &[RecorderFeed], participant: &str) -> usize {
    items
        .iter()
        .filter(
            |f| matches!(f, RecorderFeed::TrackEnded { participant: p, .. } if p == participant),
        )
        .count()
}

#[tokio::test]
async fn a_recorded_room_feeds_the_top_layer_of_every_track_and_tells_when_tracks_end() {
    let h = Harness::start().await;
    let (tx, mut feed) = mpsc::channel(4096);
    // Recording may start before anyone's media reaches the SFU.
    h.sfu.record(ROOM, tx).await.unwrap();
    let alice = h.join("alice", Publish::camera_and_mic()).await.unwrap();
    let bob = h.join("bob", Publish::camera_and_mic()).await.unwrap();
    wait_all_flowing(&[&alice, &bob]).await;

    let labelled = |items: &[RecorderFeed]| -> HashSet<(String, String)> {
        items
            .iter()
            .filter_map(|f| match f {
                RecorderFeed::Packet(p) => Some((p.participant.to_string(), p.label.to_string())),
                RecorderFeed::TrackEnded { .. } => None,
            })
            .collect()
    };
    let items = collect(&mut feed, |items| labelled(items).len() == 4).await;
    let mut top_since: std::collections::HashMap<String, bool> = Default::default();
    for item in &items {
        let RecorderFeed::Packet(p) = item else {
            continue;
        };
        match p.kind {
            MediaKind::Video => {
                assert_eq!(p.label.as_ref(), "video");
                // The highest layer flowing: while starting, the first layer to arrive, then f.
                let top = top_since.entry(p.participant.to_string()).or_default();
                *top |= p.payload[5] == b'f';
                if *top {
                    assert_eq!(p.payload[5], b'f', "once f flows, only f is recorded");
                }
                assert_eq!(p.clock_rate, 90_000);
            }
            MediaKind::Audio => {
                assert_eq!(p.label.as_ref(), "audio");
                assert_eq!(p.clock_rate, 48_000);
            }
        }
    }

    // The recorder wants a keyframe: the publisher is asked for one.
    let video = items
        .iter()
        .find_map(|f| match f {
            RecorderFeed::Packet(p) if &*p.participant == "alice" && p.kind == MediaKind::Video => {
                Some(p.track)
            }
            _ => None,
        })
        .unwrap();
    let before = alice.seen(|s| s.keyframe_requests);
    h.sfu.recorder_keyframe(ROOM, video).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while alice.seen(|s| s.keyframe_requests) == before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no PLI reached alice"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Bob leaves: the recorder hears his tracks end.
    h.sfu.leave(ROOM, "bob").await.unwrap();
    collect(&mut feed, |items| ended(items, "bob") == 2).await;

    // Not recorded any more: the feed closes once the SFU lets go of it.
    h.sfu.stop_recording(ROOM).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, feed.recv()).await {
            Ok(Some(_)) => continue,
            Ok(None) => break,
            Err(_) => panic!("the SFU still holds the recorder's feed"),
        }
    }
    assert_eq!(h.sfu.recorder_dropped(), 0);
}

#[tokio::test]
async fn a_full_feed_drops_packets_and_counts_them_but_not_track_ends_and_never_stalls_the_call() {
    let h = Harness::start().await;
    let (tx, mut feed) = mpsc::channel(8);
    h.sfu.record(ROOM, tx).await.unwrap();
    let alice = h.join("alice", Publish::camera_and_mic()).await.unwrap();
    let bob = h.join("bob", Publish::camera_and_mic()).await.unwrap();
    wait_all_flowing(&[&alice, &bob]).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while h.sfu.recorder_dropped() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "nothing counted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Forwarding goes on regardless.
    let count = || bob.seen(|s| s.packets("alice", str0m::media::MediaKind::Video));
    let before = count();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while count() < before + 30 {
        assert!(tokio::time::Instant::now() < deadline, "forwarding stalled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Bob leaves while the feed is full: his tracks' ends still reach the recorder once it
    // reads again, and none of his packets after them.
    h.sfu.leave(ROOM, "bob").await.unwrap();
    let items = collect(&mut feed, |items| ended(items, "bob") == 2).await;
    let mut gone = HashSet::new();
    for item in &items {
        match item {
            RecorderFeed::TrackEnded { participant, track } if participant == "bob" => {
                gone.insert(*track);
            }
            RecorderFeed::Packet(p) => assert!(
                !gone.contains(&p.track),
                "a packet of a track after its end"
            ),
            RecorderFeed::TrackEnded { .. } => {}
        }
    }
}
