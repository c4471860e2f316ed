//! The recording bookkeeping story, run against every backend, each in a fresh database.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, Duration, Utc};
use wakili_core::{
    ParticipantRole, UserId,
    consultation::NewConsultation,
    recording::{RecordingKind, RecordingStatus, TrackKind, TrackMeta},
};
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

async fn consultation(db: &Db, t0: DateTime<Utc>) -> wakili_db::models::VideoConsultation {
    db.create_consultation(ConsultationInsert {
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
    .unwrap()
}

async fn story(backend: Backend) {
    let test_db = TestDatabase::new(backend).await;
    let db: Db = connect(&test_db.url, &PoolOptions::default())
        .await
        .unwrap();
    let t0 = at("2026-11-25T09:00:00Z");
    let consultation = consultation(&db, t0).await;
    let new = NewRecording {
        id: "r1".into(),
        consultation_id: consultation.id.clone(),
        started_by: "l1".into(),
        wrapped_key: "d3JhcHBlZA==".into(),
        key_id: "k1".into(),
        nonce_prefix: "bm9uY2U=".into(),
        kind: RecordingKind::Upload,
        parent_id: None,
        track: None,
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

fn recording(
    id: &str,
    consultation_id: &str,
    kind: RecordingKind,
    now: DateTime<Utc>,
) -> NewRecording {
    NewRecording {
        id: id.into(),
        consultation_id: consultation_id.into(),
        started_by: "l1".into(),
        wrapped_key: "d3JhcHBlZA==".into(),
        key_id: "k1".into(),
        nonce_prefix: "bm9uY2U=".into(),
        kind,
        parent_id: None,
        track: None,
        now,
    }
}

fn meta(participant: &str, kind: TrackKind, label: &str, offset_ms: i64) -> TrackMeta {
    TrackMeta {
        participant_id: participant.into(),
        user_id: "c1".into(),
        role: ParticipantRole::Client,
        kind,
        label: label.into(),
        codec: if kind == TrackKind::Audio {
            "opus"
        } else {
            "vp8"
        }
        .into(),
        started_at: at("2026-11-25T09:00:01.5Z"),
        start_offset_ms: offset_ms,
    }
}

/// A server-made session with its tracks: they keep their metadata, are listed under the session
/// and not beside it, a paused track is kept alive by touching it, and a session whose tracks are
/// still receiving is not taken for abandoned.
async fn sessions(backend: Backend) {
    let test_db = TestDatabase::new(backend).await;
    let db: Db = connect(&test_db.url, &PoolOptions::default())
        .await
        .unwrap();
    let t0 = at("2026-11-25T09:00:00Z");
    let consultation = consultation(&db, t0).await;
    let upload = recording("up-1", &consultation.id, RecordingKind::Upload, t0);
    db.create_recording(&upload, audit("recording.created"))
        .await
        .unwrap();
    let (session, created) = db
        .create_recording(
            &recording(
                "s1",
                &consultation.id,
                RecordingKind::Session,
                t0 + Duration::seconds(1),
            ),
            audit("recording.created"),
        )
        .await
        .unwrap();
    assert!(created);
    assert!(session.is_session() && !session.is_track());
    assert_eq!(
        (session.parent_id.as_deref(), session.track.as_ref()),
        (None, None)
    );

    let t1 = t0 + Duration::seconds(2);
    let audio = meta("p-1", TrackKind::Audio, "audio", 1500);
    let screen = meta("p-1", TrackKind::Video, "screen", 2000);
    for (id, meta, when) in [
        ("t-audio", &audio, t1),
        ("t-screen", &screen, t1 + Duration::seconds(1)),
    ] {
        let new = NewRecording {
            parent_id: Some("s1".into()),
            track: Some(meta.clone()),
            ..recording(id, &consultation.id, RecordingKind::Track, when)
        };
        let (track, created) = db
            .create_recording(&new, audit("recording.track_started"))
            .await
            .unwrap();
        assert!(created);
        assert!(track.is_track());
        assert_eq!(
            track.track.as_ref(),
            Some(meta),
            "the metadata comes back as stored"
        );
    }
    let tracks = db.tracks("s1").await.unwrap();
    assert_eq!(
        tracks.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        ["t-audio", "t-screen"]
    );
    assert_eq!(tracks[0].parent_id.as_deref(), Some("s1"));
    assert_eq!(tracks[1].track.as_ref().unwrap().label, "screen");
    assert_eq!(
        db.recording("t-screen").await.unwrap().unwrap().track,
        Some(screen)
    );
    assert!(db.tracks("up-1").await.unwrap().is_empty());
    // People see the upload and the session; the tracks are shown inside the session.
    assert_eq!(
        db.recordings_of(&consultation.id)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.id.as_str(), r.kind))
            .collect::<Vec<_>>(),
        [
            ("up-1", RecordingKind::Upload),
            ("s1", RecordingKind::Session)
        ]
    );

    // Ten minutes later, with abandonment after five: the audio track kept receiving (its chunk
    // touched it), the screen share paused but was kept alive, the upload went silent.
    let t2 = t0 + Duration::minutes(10);
    db.claim_chunk(&chunk("t-audio", 0, "aa"), t2)
        .await
        .unwrap();
    assert!(
        db.chunk_stored(&chunk("t-audio", 0, "aa"), &["disk".into()], t2)
            .await
            .unwrap()
    );
    assert_eq!(
        db.touch_recordings(&["t-screen".into(), "up-1-unknown".into()], t2)
            .await
            .unwrap(),
        1
    );
    assert_eq!(db.touch_recordings(&[], t2).await.unwrap(), 0);
    assert_eq!(
        db.recording("t-screen")
            .await
            .unwrap()
            .unwrap()
            .last_activity_at,
        Some(t2)
    );
    let before = t2 - Duration::minutes(5);
    // The session itself was silent since t0, but its tracks are live: only the upload is swept.
    assert_eq!(
        db.claim_abandoned(before, t2, 16).await.unwrap(),
        vec!["up-1".to_owned()]
    );

    // The recorder finishes the audio track; the screen share is taken as incomplete by the
    // session's finalization; then the session, silent, is claimed by the sweep.
    assert!(db.abandon_recording("t-screen", t2).await.unwrap());
    assert!(
        !db.abandon_recording("t-screen", t2).await.unwrap(),
        "only once"
    );
    assert_eq!(
        db.recording("t-screen").await.unwrap().unwrap().status,
        RecordingStatus::Finalizing
    );
    assert!(db.begin_finalizing("t-audio", "{}", t2, t2).await.unwrap());
    assert_eq!(
        db.touch_recordings(&["t-audio".into()], t2).await.unwrap(),
        0,
        "a finalizing track is not uploading any more"
    );
    let t3 = t2 + Duration::minutes(6);
    let swept = db
        .claim_abandoned(t3 - Duration::minutes(5), t3, 16)
        .await
        .unwrap();
    assert!(swept.contains(&"s1".to_owned()), "{swept:?}");
    assert!(
        !swept.contains(&"t-audio".to_owned()),
        "a kept completion is retried, not swept"
    );
}

#[tokio::test]
async fn sessions_on_sqlite() {
    sessions(Backend::Sqlite).await;
}

#[tokio::test]
async fn sessions_on_postgres() {
    sessions(Backend::Postgres).await;
}
