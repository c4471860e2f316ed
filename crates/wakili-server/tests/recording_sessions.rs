//! Server-side recording: the storage calls the SFU's recorder makes (a session, one track per
//! participant track, chunks, notes, finishing, finalizing), on the real server's store, and what
//! people then see through the API: the session with its tracks, each track downloaded with
//! Range, the session's manifest verified offline against every track file; a session abandoned
//! with a track mid-upload ends incomplete with what was sealed; nobody uploads to it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use common::{Launch, TestServer, error_code, read, token_at};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use wakili_core::{
    ParticipantRole, Role,
    recording::{RecordingStatus, TrackKind, TrackMeta},
};
use wakili_db::{Backend, models::Recording};
use wakili_storage::{
    Completion, ManifestStatus, RecordingStore, StateError, StorageError, TrackNote, verify_session,
};
use wakili_testkit::{clock::ManualClock, db::TestDatabase};

struct Rig {
    server: TestServer,
    store: RecordingStore,
    clock: ManualClock,
    http: Client,
    consultation: String,
    lawyer: String,
    client: String,
    _db: TestDatabase,
}

impl Rig {
    async fn start(backend: Backend) -> Self {
        let db = TestDatabase::new(backend).await;
        let clock = ManualClock::starting_now();
        let prepared = Launch::new()
            .clock(clock.clock())
            .prepare(&db.url, |_| {})
            .await;
        let store = prepared.state.recordings.clone();
        let server = prepared.serve().await;
        let http = Client::new();
        // On the server's clock (which the tests move by hours), valid for a day.
        let day = Duration::from_secs(86_400);
        let lawyer = token_at("lawyer-1", Role::Lawyer, clock.now(), day);
        let client = token_at("client-1", Role::Client, clock.now(), day);
        let (status, booked) = read(
            http.post(server.url("/api/v1/consultations"))
                .bearer_auth(&lawyer)
                .json(&json!({"clientId": "client-1", "scheduledAt": common::day(1, 10), "durationMinutes": 45}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{booked}");
        Self {
            server,
            store,
            clock,
            http,
            consultation: booked["id"].as_str().unwrap().to_owned(),
            lawyer,
            client,
            _db: db,
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, self.server.url(path))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        read(request.send().await.unwrap()).await
    }

    /// A track's media through a signed link, as the client: status, body.
    async fn download(&self, id: &str, range: Option<&str>) -> (StatusCode, Bytes) {
        let (status, link) = self
            .call(
                Method::POST,
                &format!("/api/v1/recordings/{id}/download-url"),
                &self.client,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{link}");
        let url = link["url"].as_str().unwrap();
        let mut request = self
            .http
            .get(self.server.url(&url[url.find("/api/v1/").unwrap()..]));
        if let Some(range) = range {
            request = request.header("range", range);
        }
        let response = request.send().await.unwrap();
        (response.status(), response.bytes().await.unwrap())
    }

    async fn track(
        &self,
        session: &Recording,
        who: &str,
        role: ParticipantRole,
        kind: TrackKind,
        label: &str,
        offset_ms: i64,
    ) -> Recording {
        let meta = TrackMeta {
            participant_id: format!("p-{who}"),
            user_id: who.into(),
            role,
            kind,
            label: label.into(),
            codec: if kind == TrackKind::Audio {
                "opus"
            } else {
                "vp8"
            }
            .into(),
            started_at: Utc::now(),
            start_offset_ms: offset_ms,
        };
        self.store.create_track(session, meta).await.unwrap()
    }
}

/// Chunk `seq` of a track: any bytes, different per track and position.
fn chunk_bytes(track: &str, seq: u32, len: usize) -> Vec<u8> {
    let seed = Sha256::digest(format!("{track}/{seq}"));
    (0..len).map(|i| seed[i % 32] ^ (i / 32) as u8).collect()
}

async fn put(store: &RecordingStore, track: &Recording, seq: u32, bytes: &[u8]) {
    let sha = hex_sha(bytes);
    let stream = futures_util::stream::iter([Ok::<_, std::convert::Infallible>(
        Bytes::copy_from_slice(bytes),
    )]);
    let receipt = store
        .put_chunk(track, seq, &sha, Some(bytes.len() as u64), stream)
        .await
        .unwrap();
    assert!(!receipt.duplicate);
}

fn hex_sha(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn a_session_records_tracks_that_download_and_verify(backend: Backend) {
    let rig = Rig::start(backend).await;
    let store = &rig.store;
    let id = wakili_core::new_id();
    let (session, created) = store
        .create_session(&id, &rig.consultation, "lawyer-1")
        .await
        .unwrap();
    assert!(created && session.is_session());
    let (again, created) = store
        .create_session(&id, &rig.consultation, "lawyer-1")
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(again.id, session.id);
    // The browser cannot take the id over as an upload.
    assert!(matches!(
        store.create(&id, &rig.consultation, "lawyer-1").await,
        Err(StorageError::State(StateError::ServerRecording))
    ));

    let audio = rig
        .track(
            &session,
            "lawyer-1",
            ParticipantRole::Lawyer,
            TrackKind::Audio,
            "audio",
            0,
        )
        .await;
    let video = rig
        .track(
            &session,
            "client-1",
            ParticipantRole::Client,
            TrackKind::Video,
            "screen",
            1200,
        )
        .await;
    let mut files = Vec::new();
    for (track, sizes) in [(&audio, vec![70_000, 1, 5_000]), (&video, vec![200_000, 3])] {
        let mut file = Vec::new();
        for (seq, len) in sizes.iter().enumerate() {
            let bytes = chunk_bytes(&track.id, seq as u32, *len);
            put(store, track, seq as u32, &bytes).await;
            file.extend_from_slice(&bytes);
        }
        files.push((track.id.clone(), file));
    }
    store
        .note_track(&video, TrackNote::Paused, json!({ "reason": "muted" }))
        .await
        .unwrap();
    store
        .note_track(&video, TrackNote::Resumed, json!({}))
        .await
        .unwrap();
    store
        .keep_alive(&[session.id.clone(), audio.id.clone(), video.id.clone()])
        .await
        .unwrap();

    // While recording, the session shows its tracks; the list shows the session, not the tracks.
    let (status, shown) = rig
        .call(
            Method::GET,
            &format!("/api/v1/recordings/{id}"),
            &rig.client,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(shown["kind"], "session");
    assert_eq!(shown["status"], "uploading");
    assert_eq!(shown["tracks"].as_array().unwrap().len(), 2);
    assert_eq!(shown["tracks"][1]["label"], "screen");
    assert_eq!(shown["tracks"][1]["startOffsetMs"], 1200);
    assert_eq!(shown["tracks"][1]["sizeBytes"], 200_003);
    assert_eq!(shown["fileSizeBytes"], 75_001 + 200_003);
    let (status, list) = rig
        .call(
            Method::GET,
            &format!("/api/v1/consultations/{}/recordings", rig.consultation),
            &rig.lawyer,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [id.as_str()],
        "tracks are listed inside their session only"
    );

    // Nobody uploads to what the server records, not even the lawyer who started it.
    let bytes = b"from a browser";
    for path in [
        format!("/api/v1/recordings/{}/chunks/3", audio.id),
        format!("/api/v1/recordings/{id}/chunks/0"),
    ] {
        let response = rig
            .http
            .put(rig.server.url(&path))
            .bearer_auth(&rig.lawyer)
            .header("x-content-sha256", hex_sha(bytes))
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        let (status, body) = read(response).await;
        assert_eq!(
            (status, error_code(&body)),
            (StatusCode::CONFLICT, "server_recording"),
            "{path}: {body}"
        );
    }
    for target in [&id, &video.id] {
        let (status, body) = rig
            .call(
                Method::POST,
                &format!("/api/v1/recordings/{target}/complete"),
                &rig.lawyer,
                Some(json!({"chunkCount": 1})),
            )
            .await;
        assert_eq!(
            (status, error_code(&body)),
            (StatusCode::CONFLICT, "server_recording"),
            "{body}"
        );
    }

    // The recorder stops and finishes both tracks, then the session.
    store
        .note_track(&audio, TrackNote::Stopped, json!({}))
        .await
        .unwrap();
    for (track, count, resolution) in [(&audio, 3, None), (&video, 2, Some("1280x720".to_owned()))]
    {
        match store
            .finish_track(track, count, Some(61.5), resolution)
            .await
            .unwrap()
        {
            Completion::Done(done) => assert_eq!(done.status, RecordingStatus::Completed),
            Completion::Retrying(r) => panic!("finalizing failed: {r:?}"),
        }
    }
    let done = store.finalize_session(&session, "lawyer-1").await.unwrap();
    assert_eq!(done.status, RecordingStatus::Completed);
    assert_eq!(done.file_size_bytes, 75_001 + 200_003);
    assert_eq!(
        store
            .finalize_session(&session, "lawyer-1")
            .await
            .unwrap()
            .status,
        RecordingStatus::Completed,
        "again: as it is"
    );
    assert!(
        store
            .create_track(
                &done,
                TrackMeta {
                    label: "late".into(),
                    ..audio.track.clone().unwrap()
                }
            )
            .await
            .is_err(),
        "a finalized session takes no tracks"
    );

    let (_, shown) = rig
        .call(
            Method::GET,
            &format!("/api/v1/recordings/{id}"),
            &rig.client,
            None,
        )
        .await;
    assert_eq!(shown["status"], "completed");
    assert_eq!(shown["tracks"][0]["status"], "completed");
    assert_eq!(shown["tracks"][0]["codec"], "opus");
    assert_eq!(shown["tracks"][0]["durationSeconds"], 61.5);
    let (_, one) = rig
        .call(
            Method::GET,
            &format!("/api/v1/recordings/{}", video.id),
            &rig.client,
            None,
        )
        .await;
    assert_eq!(
        (one["kind"].as_str(), one["sessionId"].as_str()),
        (Some("track"), Some(id.as_str()))
    );
    assert_eq!(one["resolution"], "1280x720");

    // Its tracks download, with Range (the session's own link serves them remuxed into one
    // file: tests/server_recording.rs plays it).
    let (status, body) = rig
        .call(
            Method::POST,
            &format!("/api/v1/recordings/{id}/download-url"),
            &rig.client,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut downloaded = Vec::new();
    for (track_id, file) in &files {
        let (status, whole) = rig.download(track_id, None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(&whole[..], &file[..]);
        let (status, part) = rig.download(track_id, Some("bytes=69990-70010")).await;
        assert_eq!(status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(&part[..], &file[69_990..=70_010], "a range across chunks");
        downloaded.push((track_id.clone(), whole));
    }

    // The session's manifest, checked offline against both files.
    let (status, manifest) = rig
        .call(
            Method::GET,
            &format!("/api/v1/recordings/{id}/manifest"),
            &rig.client,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{manifest}");
    assert_eq!(manifest["manifest"]["format"], "webm-tracks");
    assert_eq!(manifest["manifest"]["chunks"], json!([]));
    let listed = &manifest["manifest"]["tracks"];
    assert_eq!(listed[0]["recordingId"], audio.id.as_str());
    assert_eq!(listed[0]["chunks"].as_array().unwrap().len(), 3);
    assert_eq!(listed[1]["startOffsetMs"], 1200);
    assert_eq!(listed[1]["role"], "client");
    assert_eq!(
        listed[1]["chunks"][1]["sha256"],
        hex_sha(&chunk_bytes(&video.id, 1, 3))
    );
    let key = store.signer().verifying_key();
    let jws = manifest["jws"].as_str().unwrap();
    let verified = verify_session(
        jws,
        &key,
        downloaded.iter().map(|(id, b)| (id.clone(), &b[..])),
    )
    .unwrap();
    assert_eq!(verified.session.status, ManifestStatus::Completed);
    assert_eq!(
        verified
            .tracks
            .iter()
            .map(|(t, v)| (t.label.as_str(), v.bytes))
            .collect::<Vec<_>>(),
        [("audio", 75_001), ("screen", 200_003)]
    );
    let mut tampered = downloaded.clone();
    let mut flipped = tampered[0].1.to_vec();
    flipped[100] ^= 1;
    tampered[0].1 = Bytes::from(flipped);
    assert!(
        verify_session(
            jws,
            &key,
            tampered.iter().map(|(id, b)| (id.clone(), &b[..]))
        )
        .is_err()
    );

    // Shredding the session shreds its tracks.
    let admin = token_at(
        "admin-1",
        Role::Admin,
        rig.clock.now(),
        Duration::from_secs(3600),
    );
    let response = rig
        .http
        .delete(rig.server.url(&format!("/api/v1/recordings/{id}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        store.recording(&audio.id).await.unwrap().status,
        RecordingStatus::Deleted
    );
}

async fn an_abandoned_session_ends_incomplete_with_what_was_sealed(backend: Backend) {
    let rig = Rig::start(backend).await;
    let store = &rig.store;
    let (session, _) = store
        .create_session(&wakili_core::new_id(), &rig.consultation, "lawyer-1")
        .await
        .unwrap();
    let audio = rig
        .track(
            &session,
            "lawyer-1",
            ParticipantRole::Lawyer,
            TrackKind::Audio,
            "audio",
            0,
        )
        .await;
    let video = rig
        .track(
            &session,
            "client-1",
            ParticipantRole::Client,
            TrackKind::Video,
            "video",
            40,
        )
        .await;
    let mut files = Vec::new();
    for (track, seqs) in [(&audio, vec![0u32, 1]), (&video, vec![0, 2])] {
        let mut file = Vec::new();
        for seq in seqs {
            let bytes = chunk_bytes(&track.id, seq, 1000 + seq as usize);
            put(store, track, seq, &bytes).await;
            file.extend_from_slice(&bytes);
        }
        files.push((track.id.clone(), file));
    }
    // The audio track's sender pauses for long, but the recorder keeps it alive; the sweep
    // leaves the session alone.
    for _ in 0..3 {
        rig.clock.advance(Duration::from_secs(240));
        store
            .keep_alive(std::slice::from_ref(&audio.id))
            .await
            .unwrap();
        store.sweep_abandoned().await.unwrap();
        assert_eq!(
            store.recording(&session.id).await.unwrap().status,
            RecordingStatus::Uploading
        );
    }
    // Then the recorder dies mid-upload: nothing more arrives.
    let mut session_now = store.recording(&session.id).await.unwrap();
    for _ in 0..5 {
        rig.clock.advance(Duration::from_secs(11 * 60));
        store.sweep_abandoned().await.unwrap();
        session_now = store.recording(&session.id).await.unwrap();
        if session_now.status.is_final() {
            break;
        }
    }
    assert_eq!(session_now.status, RecordingStatus::Incomplete);
    for track in [&audio, &video] {
        assert_eq!(
            store.recording(&track.id).await.unwrap().status,
            RecordingStatus::Incomplete
        );
    }
    let manifest = wakili_storage::verify_manifest(
        session_now.manifest.as_deref().unwrap(),
        &store.signer().verifying_key(),
    )
    .unwrap();
    assert_eq!(manifest.status, ManifestStatus::Incomplete);
    assert_eq!(manifest.tracks.len(), 2);
    assert_eq!(
        manifest.tracks[0]
            .chunks
            .iter()
            .map(|c| c.seq)
            .collect::<Vec<_>>(),
        [0, 1]
    );
    assert_eq!(
        manifest.tracks[1]
            .chunks
            .iter()
            .map(|c| c.seq)
            .collect::<Vec<_>>(),
        [0, 2]
    );
    assert_eq!(manifest.tracks[1].missing, [1]);
    assert_eq!(manifest.tracks[1].start_offset_ms, 40);
    let mut downloaded = Vec::new();
    for (track_id, file) in &files {
        let (status, whole) = rig.download(track_id, None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(&whole[..], &file[..], "what was sealed downloads");
        downloaded.push((track_id.clone(), whole));
    }
    let verified = verify_session(
        session_now.manifest.as_deref().unwrap(),
        &store.signer().verifying_key(),
        downloaded.iter().map(|(id, b)| (id.clone(), &b[..])),
    )
    .unwrap();
    assert_eq!(verified.tracks[1].1.missing, [1]);
}

#[tokio::test]
async fn sessions_record_tracks_that_download_and_verify_on_sqlite() {
    a_session_records_tracks_that_download_and_verify(Backend::Sqlite).await;
}

#[tokio::test]
async fn sessions_record_tracks_that_download_and_verify_on_postgres() {
    a_session_records_tracks_that_download_and_verify(Backend::Postgres).await;
}

#[tokio::test]
async fn an_abandoned_session_ends_incomplete_on_sqlite() {
    an_abandoned_session_ends_incomplete_with_what_was_sealed(Backend::Sqlite).await;
}

#[tokio::test]
async fn an_abandoned_session_ends_incomplete_on_postgres() {
    an_abandoned_session_ends_incomplete_with_what_was_sealed(Backend::Postgres).await;
}
