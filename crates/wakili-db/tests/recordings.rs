//! The recording bookkeeping story, run against every backend, each in a fresh database.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, Duration, Utc};
use wakili_core::{UserId, consultation::NewConsultation, recording::RecordingStatus};
use wakili_db::{
    Backend, Db, PoolOptions, connect,
    models::{
        Chunk, ChunkState, ConsultationInsert, FinalizedRecording, NewAuditEvent, NewRecording,
    },
};
use wakili_testkit::db::TestDatabase;

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn audit(action: &'static str) -> NewAuditEvent {
    NewAuditEvent {
        consultation_id: None,
        actor_id: Some("l1".into()),
        action,
        detail: serde_json::json!({}),
    }
}

fn chunk(rid: &str, seq: u32, sha: &str) -> Chunk {
    Chunk {
        recording_id: rid.into(),
        seq,
        sha256: sha.into(),
        size: 100,
        object_size: 116,
        state: ChunkState::Pending,
        object_key: format!("recordings/{rid}/{seq}-{sha}"),
        providers: Vec::new(),
    }
}

async fn story(backend: Backend) {
    let test_db = TestDatabase::new(backend).await;
    let db: Db = connect(&test_db.url, &PoolOptions::default())
        .await
        .unwrap();
    let t0 = at("2026-11-25T09:00:00Z");
    let consultation = db
        .create_consultation(ConsultationInsert {
            booking: NewConsultation {
                lawyer_id: UserId::parse("l1").unwrap(),
                client_id: UserId::parse("c1").unwrap(),
                scheduled_at: t0,
                duration_minutes: 30,
                title: None,
                notes: None,
                media_mode: None,
            },
            created_by: "l1".into(),
            now: t0,
        })
        .await
        .unwrap();
    let new = NewRecording {
        id: "r1".into(),
        consultation_id: consultation.id.clone(),
        started_by: "l1".into(),
        wrapped_key: "d3JhcHBlZA==".into(),
        key_id: "k1".into(),
        nonce_prefix: "bm9uY2U=".into(),
        now: t0,
    };
    let (recording, created) = db
        .create_recording(&new, audit("recording.created"))
        .await
        .unwrap();
    assert!(created);
    assert_eq!(recording.status, RecordingStatus::Uploading);
    assert_eq!(recording.last_activity_at, Some(t0));
    // Creating it again returns the same recording, unchanged.
    let (again, created) = db
        .create_recording(&new, audit("recording.created"))
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(again, recording);
    assert_eq!(
        db.recordings_of(&consultation.id).await.unwrap(),
        vec![recording.clone()]
    );

    // Key rotation: a data key wrapped by another master key is found and re-wrapped once.
    assert_eq!(
        db.keys_to_rewrap("k2", 10).await.unwrap(),
        vec![("r1".to_owned(), "d3JhcHBlZA==".to_owned(), "k1".to_owned())]
    );
    assert_eq!(db.keys_to_rewrap_count("k1").await.unwrap(), 0);
    assert!(
        db.rewrap_key("r1", "d3JhcHBlZA==", "bmV3", "k2")
            .await
            .unwrap()
    );
    assert!(
        !db.rewrap_key("r1", "d3JhcHBlZA==", "b3RoZXI=", "k3")
            .await
            .unwrap(),
        "stale"
    );
    assert_eq!(db.keys_to_rewrap_count("k2").await.unwrap(), 0);
    let rewrapped = db.recording("r1").await.unwrap().unwrap();
    assert_eq!(
        (
            rewrapped.wrapped_key.as_deref(),
            rewrapped.key_id.as_deref()
        ),
        (Some("bmV3"), Some("k2"))
    );

    // A position is claimed with its hash; a second claim sees the first.
    let claimed = db.claim_chunk(&chunk("r1", 1, "aa"), t0).await.unwrap();
    assert_eq!(claimed.state, ChunkState::Pending);
    let other = db.claim_chunk(&chunk("r1", 1, "bb"), t0).await.unwrap();
    assert_eq!(other.sha256, "aa");
    // A claim whose body did not match can be given up, and only by its own hash.
    db.release_chunk("r1", 1, "bb").await.unwrap();
    assert_eq!(
        db.claim_chunk(&chunk("r1", 1, "bb"), t0)
            .await
            .unwrap()
            .sha256,
        "aa"
    );
    db.release_chunk("r1", 1, "aa").await.unwrap();
    assert_eq!(
        db.claim_chunk(&chunk("r1", 1, "aa"), t0)
            .await
            .unwrap()
            .sha256,
        "aa"
    );
    let t1 = t0 + Duration::seconds(5);
    assert!(
        db.chunk_stored(&chunk("r1", 1, "aa"), &["s3".to_owned()], t1)
            .await
            .unwrap()
    );
    db.claim_chunk(&chunk("r1", 0, "cc"), t1).await.unwrap();
    assert!(
        db.chunk_stored(&chunk("r1", 0, "cc"), &["r2".to_owned()], t1)
            .await
            .unwrap()
    );
    db.add_copy("r1", 0, "s3", t1).await.unwrap();
    db.add_copy("r1", 0, "s3", t1).await.unwrap(); // idempotent
    let chunks = db.chunks("r1").await.unwrap();
    assert_eq!(
        chunks
            .iter()
            .map(|c| (c.seq, c.state, c.providers.clone()))
            .collect::<Vec<_>>(),
        vec![
            (
                0,
                ChunkState::Stored,
                vec!["r2".to_owned(), "s3".to_owned()]
            ),
            (1, ChunkState::Stored, vec!["s3".to_owned()]),
        ]
    );
    assert_eq!(
        db.recording("r1").await.unwrap().unwrap().last_activity_at,
        Some(t1)
    );

    // Replication: with s3 and r2 wanted, chunk 1 lacks r2.
    let wanted = vec!["s3".to_owned(), "r2".to_owned()];
    let work = db.under_replicated(&wanted, 10, 0).await.unwrap();
    assert_eq!(work.iter().map(|c| c.seq).collect::<Vec<_>>(), vec![1]);
    assert_eq!(work[0].providers, vec!["s3".to_owned()]);
    assert!(
        db.under_replicated(&wanted, 10, 1)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(db.replication_backlog(&wanted).await.unwrap(), 1);
    db.add_copy("r1", 1, "r2", t1).await.unwrap();
    assert_eq!(db.replication_backlog(&wanted).await.unwrap(), 0);
    db.drop_copy("r1", 1, "r2").await.unwrap();
    assert_eq!(db.replication_backlog(&wanted).await.unwrap(), 1);
    db.add_copy("r1", 1, "r2", t1).await.unwrap();
    let usage = db.storage_usage().await.unwrap();
    assert_eq!(
        usage
            .iter()
            .map(|u| (u.provider.as_str(), u.recordings, u.objects, u.bytes))
            .collect::<Vec<_>>(),
        vec![("r2", 1, 2, 232), ("s3", 1, 2, 232)]
    );

    // Finalizing stops uploads: a chunk stored after that is refused.
    let lease = t1 + Duration::seconds(60);
    assert!(
        db.begin_finalizing("r1", "{\"n\":2}", lease, t1)
            .await
            .unwrap()
    );
    assert!(!db.begin_finalizing("r1", "{}", lease, t1).await.unwrap());
    // The kept request is retried by one claimer at a time, after the lease or backoff.
    assert_eq!(db.claim_finalization("r1", lease, t1).await.unwrap(), None);
    assert!(
        db.claim_finalizations(lease, t1, 10)
            .await
            .unwrap()
            .is_empty()
    );
    db.finalization_failed("r1", t1 + Duration::seconds(2))
        .await
        .unwrap();
    let t1b = t1 + Duration::seconds(3);
    assert_eq!(
        db.claim_finalizations(lease, t1b, 10).await.unwrap(),
        vec![("r1".to_owned(), "{\"n\":2}".to_owned(), 2)]
    );
    assert_eq!(
        db.claim_finalization("r1", lease, t1b).await.unwrap(),
        None,
        "leased"
    );
    assert_eq!(
        db.claim_finalization("r1", lease, lease)
            .await
            .unwrap()
            .as_deref(),
        Some("{\"n\":2}")
    );
    // A sweep leaves recordings with a kept request to the retries.
    assert!(
        db.claim_abandoned(t1 + Duration::days(1), t1, 10)
            .await
            .unwrap()
            .is_empty()
    );
    db.claim_chunk(&chunk("r1", 2, "dd"), t1).await.unwrap();
    assert!(
        !db.chunk_stored(&chunk("r1", 2, "dd"), &["s3".to_owned()], t1)
            .await
            .unwrap()
    );
    db.reopen_recording("r1", t1).await.unwrap();
    assert!(
        db.chunk_stored(&chunk("r1", 2, "dd"), &["s3".to_owned()], t1)
            .await
            .unwrap()
    );

    // A silent upload is claimed by exactly one sweep.
    let t2 = t1 + Duration::minutes(20);
    let before = t2 - Duration::minutes(10);
    assert_eq!(
        db.claim_abandoned(before, t2, 10).await.unwrap(),
        vec!["r1".to_owned()]
    );
    assert!(db.claim_abandoned(before, t2, 10).await.unwrap().is_empty());
    assert_eq!(
        db.recording("r1").await.unwrap().unwrap().status,
        RecordingStatus::Finalizing
    );

    let done = db
        .finalize_recording(
            &FinalizedRecording {
                id: "r1".into(),
                status: RecordingStatus::Incomplete,
                format: Some("webm".into()),
                codec: None,
                resolution: None,
                duration_seconds: Some(12.5),
                file_size_bytes: 300,
                chunk_count: 3,
                sha256: "ff".into(),
                manifest: "a.b.c".into(),
                now: t2,
            },
            audit("recording.incomplete"),
        )
        .await
        .unwrap();
    assert_eq!(done.status, RecordingStatus::Incomplete);
    assert_eq!(done.manifest.as_deref(), Some("a.b.c"));
    assert_eq!(done.completed_at, Some(t2));

    // Legal hold blocks shredding; without it the key goes first.
    let held = db
        .set_legal_hold(
            "r1",
            true,
            Some("case 42".into()),
            audit("recording.legal_hold_set"),
            t2,
        )
        .await
        .unwrap()
        .unwrap();
    assert!(held.legal_hold);
    assert!(
        !db.shred_recording("r1", t2, audit("recording.deleted"))
            .await
            .unwrap()
    );
    db.set_legal_hold("r1", false, None, audit("recording.legal_hold_cleared"), t2)
        .await
        .unwrap();
    assert!(
        db.shred_recording("r1", t2, audit("recording.deleted"))
            .await
            .unwrap()
    );
    let shredded = db.recording("r1").await.unwrap().unwrap();
    assert_eq!(shredded.status, RecordingStatus::Deleted);
    assert_eq!(shredded.wrapped_key, None);
    assert_eq!(shredded.deleted_at, Some(t2));
    assert!(
        db.under_replicated(&wanted, 10, 0)
            .await
            .unwrap()
            .is_empty()
    );
    // Its objects are queued for deletion everywhere, and the deletes retried until done.
    assert_eq!(
        db.shredded_with_chunks(10).await.unwrap(),
        vec!["r1".to_owned()]
    );
    db.queue_object_deletes("r1", &wanted, t2).await.unwrap();
    db.queue_object_deletes("r1", &wanted, t2).await.unwrap(); // idempotent
    assert!(db.chunks("r1").await.unwrap().is_empty());
    assert!(db.shredded_with_chunks(10).await.unwrap().is_empty());
    assert_eq!(db.pending_delete_count().await.unwrap(), 6);
    let queued = db.pending_deletes(100).await.unwrap();
    assert_eq!(queued.len(), 6);
    let (provider, key) = queued[0].clone();
    db.delete_attempted(&provider, &key, false).await.unwrap();
    assert_ne!(
        db.pending_deletes(1).await.unwrap()[0],
        (provider.clone(), key.clone()),
        "least tried first"
    );
    db.delete_attempted(&provider, &key, true).await.unwrap();
    assert_eq!(db.pending_delete_count().await.unwrap(), 5);
    assert!(
        db.set_legal_hold("r1", true, None, audit("x"), t2)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn recordings_on_sqlite() {
    story(Backend::Sqlite).await;
}

#[tokio::test]
async fn recordings_on_postgres() {
    story(Backend::Postgres).await;
}
