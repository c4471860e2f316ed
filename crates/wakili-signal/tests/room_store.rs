//! Room state under concurrent writers: in memory, and in real Redis from two "nodes".

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use chrono::Duration;
use wakili_core::{
    ParticipantRole,
    room::{Admission, Input, RoomPolicy},
};
use wakili_signal::RoomStore;

fn redis_url() -> String {
    std::env::var("WAKILI_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn policy() -> RoomPolicy {
    RoomPolicy {
        grace: Duration::seconds(30),
        admission: Admission::OnLawyerJoin,
        notice_version: "1".into(),
        server_recording: false,
    }
}

fn join(user: &str, role: ParticipantRole) -> Input {
    Input::Join {
        user_id: user.into(),
        role,
        name: user.into(),
        resume_token: None,
        participant_id: format!("p-{user}"),
        new_resume_token: format!("t-{user}"),
        connection: format!("s-{user}"),
        media_mode: wakili_core::media::MediaMode::Auto,
    }
}

/// A client waiting on `a`, admitted by a lawyer joining on `b`.
async fn call_across(a: &RoomStore, b: &RoomStore, consultation: &str) {
    let now = chrono::Utc::now();
    a.update(consultation, |room| {
        room.join(join("client", ParticipantRole::Client), &policy(), now)
            .map(|_| ())
    })
    .await
    .unwrap()
    .unwrap();
    b.update(consultation, |room| {
        room.join(join("lawyer", ParticipantRole::Lawyer), &policy(), now)
            .map(|_| ())
    })
    .await
    .unwrap()
    .unwrap();
}

/// Whether the client may signal the lawyer, as `store` sees it.
async fn may_signal(store: &RoomStore, consultation: &str) -> bool {
    store
        .check(consultation, |room| {
            room.ok_or(wakili_core::room::RoomError::NoParticipant)?
                .check_signal("p-client", "p-lawyer")
                .map(|_| ())
        })
        .await
        .unwrap()
        .is_ok()
}

/// Two nodes (two stores) each join `per_node` participants to one consultation at once.
async fn concurrent_joins(nodes: [Arc<RoomStore>; 2], per_node: usize) -> usize {
    let consultation = format!("c-{}", uuid::Uuid::now_v7());
    let mut tasks = Vec::new();
    for (n, store) in nodes.iter().enumerate() {
        for i in 0..per_node {
            let (store, consultation) = (Arc::clone(store), consultation.clone());
            tasks.push(tokio::spawn(async move {
                store
                    .update(&consultation, |room| {
                        let join = Input::Join {
                            user_id: format!("u{n}-{i}"),
                            role: ParticipantRole::Admin,
                            name: "n".into(),
                            resume_token: None,
                            participant_id: format!("p{n}-{i}"),
                            new_resume_token: format!("t{n}-{i}"),
                            connection: format!("s{n}-{i}"),
                            media_mode: wakili_core::media::MediaMode::Auto,
                        };
                        room.join(join, &policy(), chrono::Utc::now()).map(|_| ())
                    })
                    .await
                    .unwrap()
                    .unwrap();
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    let room = nodes[0].get(&consultation).await.unwrap().unwrap();
    // Clean up: ending the room deletes it.
    nodes[1]
        .update(&consultation, |room| {
            room.ended = true;
        })
        .await
        .unwrap();
    assert!(
        nodes[0].get(&consultation).await.unwrap().is_none(),
        "ended rooms are deleted"
    );
    room.members.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_update_is_lost_in_memory() {
    let store = Arc::new(RoomStore::memory());
    assert_eq!(
        concurrent_joins([Arc::clone(&store), store], 100).await,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_update_is_lost_across_nodes_in_redis() {
    let a = Arc::new(
        RoomStore::redis(&redis_url())
            .await
            .expect("Redis at 127.0.0.1:6379 (scripts/services starts it)"),
    );
    let b = Arc::new(RoomStore::redis(&redis_url()).await.unwrap());
    assert_eq!(concurrent_joins([a, b], 100).await, 200);
}

#[tokio::test]
async fn a_room_seen_from_another_node_is_the_same_room() {
    let a = RoomStore::redis(&redis_url()).await.unwrap();
    let b = RoomStore::redis(&redis_url()).await.unwrap();
    let consultation = format!("c-{}", uuid::Uuid::now_v7());
    let now = chrono::Utc::now();
    // The client waits on node A; the lawyer joins on node B and admits them.
    let waiting = a
        .update(&consultation, |room| {
            room.join(join("client", ParticipantRole::Client), &policy(), now)
                .map(|(j, _)| j.waiting)
        })
        .await
        .unwrap()
        .unwrap();
    assert!(waiting);
    let admitted = b
        .update(&consultation, |room| {
            room.join(join("lawyer", ParticipantRole::Lawyer), &policy(), now)
                .map(|(_, out)| {
                    out.outbound
                        .iter()
                        .any(|o| o.name == "consultation:admitted")
                })
        })
        .await
        .unwrap()
        .unwrap();
    assert!(admitted);
    assert!(may_signal(&a, &consultation).await);
    b.update(&consultation, |room| room.ended = true)
        .await
        .unwrap();
}

#[tokio::test]
async fn relayed_signals_are_authorized_without_a_redis_command_on_either_node() {
    let a = RoomStore::redis(&redis_url()).await.unwrap();
    let b = RoomStore::redis(&redis_url()).await.unwrap();
    let consultation = format!("c-{}", uuid::Uuid::now_v7());
    call_across(&a, &b, &consultation).await;
    // The first check may read the room once (the admission may not be announced yet).
    assert!(may_signal(&a, &consultation).await);
    assert!(may_signal(&b, &consultation).await);
    let before = (a.redis_commands(), b.redis_commands());
    for _ in 0..1000 {
        assert!(may_signal(&a, &consultation).await);
        assert!(may_signal(&b, &consultation).await);
    }
    assert_eq!((a.redis_commands(), b.redis_commands()), before);
    // A change on one node reaches the other through the feed, not a read.
    b.update(&consultation, |room| {
        room.handle(
            Input::Leave {
                participant_id: "p-lawyer".into(),
            },
            &policy(),
            chrono::Utc::now(),
        )
        .map(|_| ())
    })
    .await
    .unwrap()
    .unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    let a_before = a.redis_commands();
    while a
        .read(&consultation, |room| {
            room.is_some_and(|r| r.members.contains_key("p-lawyer"))
        })
        .await
        .unwrap()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the leave never reached node A"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(a.redis_commands(), a_before, "learned from the feed");
    assert!(!may_signal(&a, &consultation).await, "the lawyer left");
    a.update(&consultation, |room| room.ended = true)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_on_another_node_a_moment_ago_is_never_refused() {
    let a = RoomStore::redis(&redis_url()).await.unwrap();
    let b = RoomStore::redis(&redis_url()).await.unwrap();
    for _ in 0..50 {
        let consultation = format!("c-{}", uuid::Uuid::now_v7());
        // Node A holds the room with the client alone before the lawyer joins on B.
        call_across(&a, &b, &consultation).await;
        assert!(
            may_signal(&a, &consultation).await,
            "refused on a stale view of the room"
        );
        b.update(&consultation, |room| room.ended = true)
            .await
            .unwrap();
    }
}
