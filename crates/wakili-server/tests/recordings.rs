//! Recording storage end to end: the real server, two real S3 servers (`s3s-fs`, checking SigV4,
//! launched by `wakili_testkit::s3`) playing S3 and R2, and a local disk, with consent given over real signaling.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use common::{TestApp, error_code, read, spawn_app_with, token};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use wakili_core::Role;
use wakili_db::Backend;
use wakili_settings::{ProviderKind, ProviderSettings};
use wakili_testkit::s3::S3Server;

/// Appears in every chunk's plaintext, so a plaintext leak at rest is found by a byte search.
const MARKER: &[u8] = b"PRIVILEGED-CONSULTATION-MEDIA";

/// Every regular file under `dir`.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn chunk_files(dir: &Path, recording: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = files(dir)
        .into_iter()
        .filter(|p| {
            let text = p.to_string_lossy();
            text.contains(recording) && !text.contains("/end-") && !text.ends_with(".json")
        })
        .collect();
    found.sort();
    found
}

fn chunk_body(seq: usize, len: usize) -> Vec<u8> {
    let mut body = Vec::with_capacity(len);
    let mut state = 0x9e37_79b9_u32.wrapping_mul(seq as u32 + 1);
    while body.len() < len {
        if body.len() % 50_000 == 0 {
            body.extend_from_slice(MARKER);
        }
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        body.extend_from_slice(&state.to_le_bytes());
    }
    body.truncate(len);
    body
}

fn hex_sha(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

struct Call {
    consultation: String,
    recording: String,
    lawyer: String,
    client: String,
    _sockets: Vec<wakili_client::Client>,
}

/// Books a consultation, joins lawyer and client over signaling and records with consent.
async fn consented_recording(app: &TestApp) -> Call {
    let lawyer = token("lawyer-1", Role::Lawyer);
    let client = token("client-1", Role::Client);
    // Peer to peer: the lawyer's browser records and uploads.
    let consultation = app
        .book_in(&lawyer, "client-1", &common::day(1, 10), "p2p")
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let base = format!("http://{}", app.addr);
    let (l, _l_events) = wakili_client::Client::connect(&base, &lawyer)
        .await
        .unwrap();
    let (c, mut c_events) = wakili_client::Client::connect(&base, &client)
        .await
        .unwrap();
    l.call_ok(
        "consultation:join",
        &json!({ "consultationId": consultation }),
    )
    .await
    .unwrap();
    c.call_ok(
        "consultation:join",
        &json!({ "consultationId": consultation }),
    )
    .await
    .unwrap();

    // Before consent, nothing can be stored.
    let (status, body) = app
        .call(
            Method::POST,
            &format!("/api/v1/consultations/{consultation}/recordings"),
            &lawyer,
            Some(json!({})),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "recording_not_active")
    );

    l.call_ok("recording:start", &json!({})).await.unwrap();
    c_events
        .wait_for("recording:consent-request", Duration::from_secs(5))
        .await
        .unwrap();
    c.call_ok("recording:consent", &json!({ "granted": true }))
        .await
        .unwrap();
    c_events
        .wait_for("recording:state", Duration::from_secs(5))
        .await
        .unwrap();

    // The client may not upload; the lawyer may.
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/api/v1/consultations/{consultation}/recordings"),
            &client,
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, created) = app
        .call(
            Method::POST,
            &format!("/api/v1/consultations/{consultation}/recordings"),
            &lawyer,
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert!(created["maxChunkBytes"].as_u64().unwrap() >= 1024 * 1024);
    Call {
        consultation,
        recording: created["recordingId"].as_str().unwrap().to_owned(),
        lawyer,
        client,
        _sockets: vec![l, c],
    }
}

async fn put_chunk(app: &TestApp, call: &Call, seq: usize, body: &[u8]) -> (StatusCode, Value) {
    let response = app
        .request(
            Method::PUT,
            &format!("/api/v1/recordings/{}/chunks/{seq}", call.recording),
            &call.lawyer,
        )
        .header("x-content-sha256", hex_sha(body))
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    read(response).await
}

/// Sends `body` in pieces with chunked transfer encoding (no Content-Length).
async fn put_chunk_streamed(
    app: &TestApp,
    call: &Call,
    seq: usize,
    body: &[u8],
) -> (StatusCode, Value) {
    let pieces: Vec<Result<Vec<u8>, std::io::Error>> =
        body.chunks(40_000).map(|p| Ok(p.to_vec())).collect();
    let response = app
        .request(
            Method::PUT,
            &format!("/api/v1/recordings/{}/chunks/{seq}", call.recording),
            &call.lawyer,
        )
        .header("x-content-sha256", hex_sha(body))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            pieces,
        )))
        .send()
        .await
        .unwrap();
    read(response).await
}

/// `DELETE /recordings/{id}` (crypto-shred) as `token`: the status and the body (`null` for 204).
async fn shred(app: &TestApp, call: &Call, token: &str) -> (StatusCode, Value) {
    let path = format!("/api/v1/recordings/{}", call.recording);
    let response = app
        .request(Method::DELETE, &path, token)
        .send()
        .await
        .unwrap();
    if response.status() == StatusCode::NO_CONTENT {
        (StatusCode::NO_CONTENT, Value::Null)
    } else {
        read(response).await
    }
}

async fn usage(app: &TestApp) -> Value {
    let admin = token("admin-1", Role::Admin);
    let (status, body) = app
        .call(Method::GET, "/api/v1/storage/usage", &admin, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// The link's path on this test server (`public_url` names the default listen address).
fn local(app: &TestApp, link: &Value) -> String {
    let url = link["url"].as_str().unwrap();
    assert!(url.starts_with("http"), "{url}");
    app.url(&url[url.find("/api/v1/").unwrap()..])
}

async fn wait_for_backlog_zero(app: &TestApp) {
    for _ in 0..100 {
        if usage(app).await["replicationBacklog"] == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("replication did not catch up: {}", usage(app).await);
}

async fn download(
    app: &TestApp,
    call: &Call,
    range: Option<&str>,
) -> (StatusCode, Vec<u8>, reqwest::header::HeaderMap) {
    let (status, link) = app
        .call(
            Method::POST,
            &format!("/api/v1/recordings/{}/download-url", call.recording),
            &call.client,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{link}");
    let mut request = app.http.get(local(app, &link));
    if let Some(range) = range {
        request = request.header("range", range);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response
        .bytes()
        .await
        .map(|b| b.to_vec())
        .unwrap_or_default();
    (status, bytes, headers)
}

#[tokio::test]
async fn recordings_survive_a_provider_outage_and_come_back_intact() {
    let mut s3 = S3Server::start();
    let r2 = S3Server::start();
    let disk = tempfile::tempdir().unwrap();
    let (s3p, r2p) = (
        s3.provider("s3", ProviderKind::S3),
        r2.provider("r2", ProviderKind::R2),
    );
    let disk_path = disk.path().to_path_buf();
    let app = spawn_app_with(Backend::Sqlite, move |s| {
        s.storage.providers = vec![s3p, r2p, ProviderSettings::local("disk", disk_path)];
        s.storage.replication_interval = Duration::from_millis(200);
        s.storage.put_timeout = Duration::from_secs(5);
        s.storage.cooldown = Duration::from_secs(1);
    })
    .await;
    let call = consented_recording(&app).await;
    let chunks: Vec<Vec<u8>> = (0..6)
        .map(|i| chunk_body(i, 150_000 + i * 10_007))
        .collect();

    // Out of order, with a retry of the same bytes (accepted) and different bytes (refused).
    for seq in [1, 0, 2] {
        let (status, body) = put_chunk(&app, &call, seq, &chunks[seq]).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["size"], chunks[seq].len());
    }
    let (status, _) = put_chunk(&app, &call, 1, &chunks[1]).await;
    assert_eq!(status, StatusCode::OK, "same bytes again: accepted");
    let (status, body) = put_chunk(&app, &call, 1, &chunks[4]).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "chunk_conflict")
    );
    // A body that does not match its hash is refused, and nothing is kept for it.
    let response = app
        .request(
            Method::PUT,
            &format!("/api/v1/recordings/{}/chunks/3", call.recording),
            &call.lawyer,
        )
        .header("x-content-sha256", hex_sha(b"something else"))
        .body(chunks[3].clone())
        .send()
        .await
        .unwrap();
    let (status, body) = read(response).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_REQUEST, "sha256_mismatch")
    );
    let response = app
        .request(
            Method::PUT,
            &format!("/api/v1/recordings/{}/chunks/3", call.recording),
            &call.lawyer,
        )
        .body(chunks[3].clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        read(response).await.0,
        StatusCode::BAD_REQUEST,
        "the hash header is required"
    );

    // The replicator copies what s3 took to r2 in the background.
    wait_for_backlog_zero(&app).await;
    // The primary goes down mid-upload: the next provider takes the chunks, the client does not
    // notice.
    s3.stop();
    for (seq, chunk) in chunks.iter().enumerate().skip(3).take(2) {
        let (status, body) = put_chunk(&app, &call, seq, chunk).await;
        assert_eq!(
            status,
            StatusCode::CREATED,
            "chunk {seq} while s3 is down: {body}"
        );
    }
    // A body without Content-Length is sealed into a spool file rather than memory, and fails
    // over from there just the same; the spool file is gone afterwards.
    let (status, body) = put_chunk_streamed(&app, &call, 5, &chunks[5]).await;
    assert_eq!(status, StatusCode::CREATED, "streamed chunk 5: {body}");
    assert_eq!(body["size"], chunks[5].len());
    let spool = app.data.path().join("spool");
    assert!(spool.is_dir());
    assert_eq!(files(&spool), Vec::<PathBuf>::new());
    // Completing too early lists what is missing.
    let (status, body) = app
        .call(
            Method::POST,
            &format!("/api/v1/recordings/{}/complete", call.recording),
            &call.lawyer,
            Some(json!({"chunkCount": 7, "durationSeconds": 12.0, "format": "webm"})),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_REQUEST, "chunks_missing")
    );
    assert_eq!(body["error"]["missing"], json!([6]));
    let (status, done) = app
        .call(Method::POST, &format!("/api/v1/recordings/{}/complete", call.recording), &call.lawyer,
            Some(json!({"chunkCount": 6, "durationSeconds": 12.0, "format": "webm", "codec": "vp8,opus", "resolution": "1280x720"})))
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    let media: Vec<u8> = chunks.concat();
    assert_eq!(done["status"], "completed");
    assert_eq!(done["sha256"], hex_sha(&media));
    assert_eq!(done["chunkCount"], 6);
    assert_eq!(done["fileSizeBytes"], media.len());

    // While s3 is down, the disk stands in so every chunk has two copies.
    let mut backlog = Value::Null;
    for _ in 0..100 {
        let u = usage(&app).await;
        let disk_objects = u["providers"][2]["objects"].as_u64().unwrap();
        if disk_objects > 0 && u["providers"][0]["healthy"] == false {
            backlog = u;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        backlog["replicationBacklog"].as_u64().unwrap() > 0,
        "s3 still lacks chunks: {backlog}"
    );

    // s3 comes back: the replicator fills it.
    s3.resume();
    let mut filled = false;
    for _ in 0..150 {
        let u = usage(&app).await;
        if u["replicationBacklog"] == 0 && u["providers"][0]["objects"].as_u64().unwrap() >= 7 {
            filled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        filled,
        "the replicator did not fill s3: {}",
        usage(&app).await
    );
    let (_, one) = app
        .call(
            Method::GET,
            &format!("/api/v1/recordings/{}", call.recording),
            &call.client,
            None,
        )
        .await;
    assert_eq!(one["providers"].as_array().unwrap().len(), 3, "{one}");

    // Providers hold only ciphertext.
    for dir in [s3.dir(), r2.dir(), disk.path().to_path_buf()] {
        for file in files(&dir) {
            let bytes = std::fs::read(&file).unwrap();
            assert!(
                !bytes.windows(MARKER.len()).any(|w| w == MARKER),
                "plaintext at rest in {}",
                file.display()
            );
        }
    }

    // The download equals the upload; ranges return exactly the bytes asked for.
    let (status, body, headers) = download(&app, &call, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "video/webm");
    assert_eq!(headers["accept-ranges"], "bytes");
    assert_eq!(hex_sha(&body), hex_sha(&media));
    for (range, start, end) in [
        ("bytes=0-99", 0, 99),
        ("bytes=149990-150020", 149_990, 150_020),
        ("bytes=300000-", 300_000, media.len() - 1),
        ("bytes=-1000", media.len() - 1000, media.len() - 1),
    ] {
        let (status, body, headers) = download(&app, &call, Some(range)).await;
        assert_eq!(status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(body, media[start..=end], "{range}");
        assert_eq!(
            headers["content-range"],
            format!("bytes {start}-{end}/{}", media.len())
        );
    }
    let (status, _, headers) =
        download(&app, &call, Some(&format!("bytes={}-", media.len()))).await;
    assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(headers["content-range"], format!("bytes */{}", media.len()));

    // The manifest is signed and chains the chunk hashes.
    let (status, manifest) = app
        .call(
            Method::GET,
            &format!("/api/v1/recordings/{}/manifest", call.recording),
            &call.client,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{manifest}");
    let (_, key) = app
        .call(Method::GET, "/api/v1/recordings/signing-key", "", None)
        .await;
    let key = wakili_storage::parse_verifying_key(key["publicKeyPem"].as_str().unwrap()).unwrap();
    let verified =
        wakili_storage::verify_recording(manifest["jws"].as_str().unwrap(), &key, &media[..])
            .unwrap();
    assert_eq!(verified.chunks, 6);
    assert_eq!(manifest["manifest"]["consents"][0]["granted"], true);
    assert_eq!(manifest["manifest"]["consents"][0]["userId"], "client-1");

    // Strangers can neither list nor download; a tampered or foreign link is refused.
    let stranger = token("lawyer-9", Role::Lawyer);
    let (status, _) = app
        .call(
            Method::GET,
            &format!("/api/v1/consultations/{}/recordings", call.consultation),
            &stranger,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/api/v1/recordings/{}/download-url", call.recording),
            &stranger,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = app
        .call(
            Method::GET,
            &format!("/api/v1/consultations/{}/recordings", call.consultation),
            &call.client,
            None,
        )
        .await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    let (_, link) = app
        .call(
            Method::POST,
            &format!("/api/v1/recordings/{}/download-url", call.recording),
            &call.client,
            None,
        )
        .await;
    let url = local(&app, &link);
    let tampered = url.replace("exp=", "exp=9");
    let response = app.http.get(&tampered).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let expired = url.split("exp=").next().unwrap().to_owned() + "exp=1000&sig=AAAA";
    assert_eq!(
        app.http.get(&expired).send().await.unwrap().status(),
        StatusCode::FORBIDDEN
    );

    // A flipped ciphertext byte on the copy read first fails authentication: the download
    // reads another copy and is still byte-identical, and the corrupt copy is repaired.
    let target = chunk_files(&s3.dir(), &call.recording)
        .into_iter()
        .next()
        .expect("s3 holds the first chunk");
    let good = std::fs::read(&target).unwrap();
    let mut bytes = good.clone();
    bytes[100] ^= 0x01;
    std::fs::write(&target, &bytes).unwrap();
    let (status, body, _) = download(&app, &call, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        hex_sha(&body),
        hex_sha(&media),
        "a corrupt copy must not stop the download"
    );
    let mut repaired = false;
    for _ in 0..100 {
        if std::fs::read(&target).unwrap() == good {
            repaired = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(repaired, "the corrupt copy on s3 was not repaired");
    wait_for_backlog_zero(&app).await;
    // With every copy of a chunk corrupt, the download breaks off instead of delivering
    // altered media.
    let mut corrupted = Vec::new();
    for dir in [s3.dir(), r2.dir(), disk.path().to_path_buf()] {
        if let Some(file) = chunk_files(&dir, &call.recording).into_iter().next() {
            let mut bytes = std::fs::read(&file).unwrap();
            bytes[100] ^= 0x01;
            std::fs::write(&file, &bytes).unwrap();
            corrupted.push(file);
        }
    }
    assert!(corrupted.len() >= 2, "{corrupted:?}");
    let (_, body, _) = download(&app, &call, None).await;
    assert!(
        body.len() < media.len(),
        "altered media must not be served whole"
    );

    // Deletion: refused under legal hold; then the key is shredded and nothing is readable.
    let admin = token("admin-1", Role::Admin);
    let (status, _) = app
        .call(
            Method::PUT,
            &format!("/api/v1/recordings/{}/legal-hold", call.recording),
            &admin,
            Some(json!({"hold": true, "reason": "case 42"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = shred(&app, &call, &admin).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "legal_hold")
    );
    let (status, _) = shred(&app, &call, &call.lawyer).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "only admins delete");
    app.call(
        Method::PUT,
        &format!("/api/v1/recordings/{}/legal-hold", call.recording),
        &admin,
        Some(json!({"hold": false})),
    )
    .await;
    assert_eq!(shred(&app, &call, &admin).await.0, StatusCode::NO_CONTENT);
    assert_eq!(
        app.http.get(&url).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    assert!(
        chunk_files(&r2.dir(), &call.recording).is_empty(),
        "objects are deleted after the key"
    );
    let (_, audit) = app
        .call(
            Method::GET,
            &format!("/api/v1/consultations/{}/audit", call.consultation),
            &admin,
            None,
        )
        .await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .or(audit.as_array())
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for action in [
        "recording.created",
        "recording.completed",
        "recording.download_url_issued",
        "recording.downloaded",
        "recording.legal_hold_set",
        "recording.deleted",
    ] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
}

async fn complete(app: &TestApp, call: &Call, chunks: usize) -> (StatusCode, Value) {
    app.call(
        Method::POST,
        &format!("/api/v1/recordings/{}/complete", call.recording),
        &call.lawyer,
        Some(json!({"chunkCount": chunks, "durationSeconds": 4.0, "format": "webm"})),
    )
    .await
}

async fn recording(app: &TestApp, call: &Call) -> Value {
    let (status, body) = app
        .call(
            Method::GET,
            &format!("/api/v1/recordings/{}", call.recording),
            &call.lawyer,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// The probe's finding: with the primary frozen (SIGSTOP, so connections hang instead of
/// failing), 24 of 600 chunk PUTs got 408 after 30 s and `complete` returned 408. Now the frozen
/// provider is hedged to the next one at its recent p99, then skipped: no client error, the
/// upload takes seconds, and `complete` and downloads work from the other copies.
#[tokio::test]
async fn a_frozen_primary_costs_no_client_errors_and_complete_succeeds_during_the_freeze() {
    let s3 = S3Server::start();
    let r2 = S3Server::start();
    let disk = tempfile::tempdir().unwrap();
    let providers = vec![
        s3.provider("s3", ProviderKind::S3),
        r2.provider("r2", ProviderKind::R2),
        ProviderSettings::local("disk", disk.path()),
    ];
    let app = spawn_app_with(Backend::Sqlite, move |s| {
        s.storage.providers = providers;
        // Two copies before the acknowledgement: no chunk depends on the frozen provider alone.
        s.storage.ack_copies = 2;
        s.storage.replication_interval = Duration::from_millis(200);
        // Timeouts are the defaults (well below the 30 s request timeout).
    })
    .await;
    let call = consented_recording(&app).await;
    const CHUNKS: usize = 240;
    const FREEZE_AT: usize = 60;
    let chunks: Vec<Vec<u8>> = (0..CHUNKS).map(|i| chunk_body(i, 20_000)).collect();
    let acknowledged = std::sync::atomic::AtomicUsize::new(0);
    let started = std::time::Instant::now();
    let mut frozen_at = None;
    let statuses: Vec<(usize, StatusCode, Value, Duration)> = {
        use futures_util::StreamExt;
        let mut uploads = futures_util::stream::iter(0..CHUNKS)
            .map(|seq| {
                let (app, call, chunks, acknowledged) = (&app, &call, &chunks, &acknowledged);
                async move {
                    let sent = std::time::Instant::now();
                    let (status, body) = put_chunk(app, call, seq, &chunks[seq]).await;
                    acknowledged.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    (seq, status, body, sent.elapsed())
                }
            })
            .buffer_unordered(8);
        let mut out = Vec::new();
        while let Some(result) = uploads.next().await {
            out.push(result);
            if frozen_at.is_none() && out.len() == FREEZE_AT {
                // Frozen with uploads in flight.
                s3.freeze(true);
                frozen_at = Some(std::time::Instant::now());
            }
        }
        out
    };
    let upload_time = started.elapsed();
    let failed: Vec<_> = statuses
        .iter()
        .filter(|(_, status, _, _)| *status != StatusCode::CREATED)
        .collect();
    assert!(
        failed.is_empty(),
        "client errors during the freeze: {failed:?}"
    );
    // No upload waited for the frozen provider's timeout (put_timeout, 8 s): the slow attempt
    // was hedged to the next provider, then the provider was avoided.
    let slowest = statuses.iter().map(|(_, _, _, took)| *took).max().unwrap();
    let put_timeout = wakili_settings::StorageSettings::default().put_timeout;
    assert!(
        slowest < put_timeout / 2,
        "the slowest upload took {slowest:?}: it waited for the frozen provider"
    );
    assert!(
        upload_time < Duration::from_secs(25),
        "{CHUNKS} chunks took {upload_time:?} with the primary frozen"
    );
    eprintln!(
        "{CHUNKS} chunks, primary frozen after {FREEZE_AT}: {upload_time:?} in all, {:?} since the freeze, slowest upload {slowest:?}",
        frozen_at.unwrap().elapsed()
    );

    // Complete reads every chunk back while s3 is still frozen.
    let started = std::time::Instant::now();
    let (status, done) = complete(&app, &call, CHUNKS).await;
    let complete_time = started.elapsed();
    assert_eq!(status, StatusCode::OK, "complete during the freeze: {done}");
    assert_eq!(done["status"], "completed");
    assert!(
        complete_time < Duration::from_secs(15),
        "complete took {complete_time:?}"
    );
    let media: Vec<u8> = chunks.concat();
    assert_eq!(done["sha256"], hex_sha(&media));
    let (status, body, _) = download(&app, &call, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        hex_sha(&body),
        hex_sha(&media),
        "download during the freeze"
    );
    // The frozen provider is reported unhealthy, and its timeouts count as failures.
    let u = usage(&app).await;
    assert_eq!(u["providers"][0]["healthy"], false, "{u}");
    let mut counted = Value::Null;
    for _ in 0..150 {
        let u = usage(&app).await;
        if u["providers"][0]["consecutiveFailures"].as_u64().unwrap() >= 1 {
            counted = u;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        counted["providers"][0]["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("no answer within")),
        "a timeout is a failure: {counted}"
    );
    s3.freeze(false);
}

/// `storage.ack_copies = 2`: a chunk is acknowledged only once two providers hold it, so it
/// never has a single copy (here the replicator does not run between the upload and the check).
#[tokio::test]
async fn with_ack_copies_two_an_acknowledged_chunk_is_on_two_providers() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let providers = vec![
        ProviderSettings::local("a", a.path()),
        ProviderSettings::local("b", b.path()),
    ];
    let app = spawn_app_with(Backend::Sqlite, move |s| {
        s.storage.providers = providers;
        s.storage.ack_copies = 2;
        s.storage.replication_interval = Duration::from_secs(3600);
    })
    .await;
    let call = consented_recording(&app).await;
    // Let the replicator's first pass (at start) go by, so only the upload can make copies.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for seq in 0..3 {
        let body = chunk_body(seq, 100_000);
        let (status, stored) = put_chunk(&app, &call, seq, &body).await;
        assert_eq!(status, StatusCode::CREATED, "{stored}");
        assert_eq!(chunk_files(a.path(), &call.recording).len(), seq + 1);
        assert_eq!(chunk_files(b.path(), &call.recording).len(), seq + 1);
    }
    let view = recording(&app, &call).await;
    assert_eq!(view["providers"], json!(["a", "b"]), "{view}");
    assert_eq!(usage(&app).await["replicationBacklog"], 0);
}

/// A failed `complete` leaves the recording `finalizing`; the server retries it with backoff
/// and it becomes `completed` once the provider is back, without the uploader asking again.
#[tokio::test]
async fn a_failed_complete_is_retried_by_the_server_until_the_recording_is_ready() {
    let mut s3 = S3Server::start();
    let provider = s3.provider("s3", ProviderKind::S3);
    let app = spawn_app_with(Backend::Postgres, move |s| {
        s.storage.providers = vec![provider];
        s.storage.replication_interval = Duration::from_millis(200);
        s.storage.cooldown = Duration::from_secs(1);
    })
    .await;
    let call = consented_recording(&app).await;
    let chunks: Vec<Vec<u8>> = (0..3).map(|i| chunk_body(i, 90_000)).collect();
    for (seq, chunk) in chunks.iter().enumerate() {
        assert_eq!(
            put_chunk(&app, &call, seq, chunk).await.0,
            StatusCode::CREATED
        );
    }
    s3.stop();
    let (status, pending) = complete(&app, &call, 3).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{pending}");
    assert_eq!(pending["status"], "finalizing");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(recording(&app, &call).await["status"], "finalizing");
    s3.resume();
    let mut ready = Value::Null;
    for _ in 0..200 {
        let view = recording(&app, &call).await;
        if view["status"] == "completed" {
            ready = view;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let media: Vec<u8> = chunks.concat();
    assert_eq!(ready["sha256"], hex_sha(&media), "not completed: {ready}");
    let (status, body, _) = download(&app, &call, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, media);
    // Asking again returns the completed recording.
    let (status, again) = complete(&app, &call, 3).await;
    assert_eq!(
        (status, &again["status"]),
        (StatusCode::OK, &json!("completed"))
    );
}

/// Shredding with a provider down: its deletes are queued and retried until the provider is
/// back and holds nothing of the recording.
#[tokio::test]
async fn object_deletes_that_failed_after_shredding_are_retried() {
    let mut s3 = S3Server::start();
    let disk = tempfile::tempdir().unwrap();
    let providers = vec![
        s3.provider("s3", ProviderKind::S3),
        ProviderSettings::local("disk", disk.path()),
    ];
    let app = spawn_app_with(Backend::Sqlite, move |s| {
        s.storage.providers = providers;
        s.storage.replication_interval = Duration::from_millis(200);
        s.storage.cooldown = Duration::from_secs(1);
    })
    .await;
    let call = consented_recording(&app).await;
    for seq in 0..3 {
        let (status, _) = put_chunk(&app, &call, seq, &chunk_body(seq, 80_000)).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    assert_eq!(complete(&app, &call, 3).await.0, StatusCode::OK);
    wait_for_backlog_zero(&app).await;
    assert_eq!(chunk_files(&s3.dir(), &call.recording).len(), 3);

    s3.stop();
    let admin = token("admin-1", Role::Admin);
    assert_eq!(shred(&app, &call, &admin).await.0, StatusCode::NO_CONTENT);
    assert!(chunk_files(disk.path(), &call.recording).is_empty());
    assert_eq!(chunk_files(&s3.dir(), &call.recording).len(), 3);
    assert!(usage(&app).await["pendingDeletes"].as_u64().unwrap() >= 3);

    s3.resume();
    let mut clean = false;
    for _ in 0..150 {
        if files(&s3.dir())
            .iter()
            .all(|f| !f.to_string_lossy().contains(&call.recording))
            && usage(&app).await["pendingDeletes"] == 0
        {
            clean = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        clean,
        "s3 still holds shredded objects: {:?}",
        files(&s3.dir())
    );
}

/// Spool files a crash left behind are removed at start; a fresh one (it could belong to an
/// upload in flight on a node sharing the directory) is left alone.
#[tokio::test]
async fn spool_files_left_by_a_crash_are_removed_at_start() {
    let spool = std::sync::Arc::new(std::sync::Mutex::new(PathBuf::new()));
    let dir = std::sync::Arc::clone(&spool);
    let app = spawn_app_with(Backend::Sqlite, move |s| {
        let path = s.data_dir.join("spool");
        std::fs::create_dir_all(&path).unwrap();
        let stale = std::fs::File::create(path.join("left-by-a-crash.part")).unwrap();
        stale.set_len(1024 * 1024).unwrap();
        stale
            .set_modified(std::time::SystemTime::now() - Duration::from_secs(3600))
            .unwrap();
        std::fs::write(path.join("in-flight.part"), b"sealed bytes").unwrap();
        *dir.lock().unwrap() = path;
    })
    .await;
    let path = spool.lock().unwrap().clone();
    assert!(
        !path.join("left-by-a-crash.part").exists(),
        "stale spool file kept"
    );
    assert!(path.join("in-flight.part").exists());
    drop(app);
}

/// After a key rotation the background job re-wraps every data key under the new master key;
/// then the retired key can be removed and the recording still downloads.
#[tokio::test]
async fn data_keys_are_rewrapped_after_a_key_rotation_so_the_retired_key_can_go() {
    let keys = tempfile::tempdir().unwrap();
    let old_key = keys.path().join("old.key");
    let new_key = keys.path().join("new.key");
    std::fs::write(&old_key, "11".repeat(32)).unwrap();
    std::fs::write(&new_key, "22".repeat(32)).unwrap();
    let disk = tempfile::tempdir().unwrap();
    let provider = ProviderSettings::local("disk", disk.path());
    let (p1, k1) = (provider.clone(), old_key.clone());
    let app = spawn_app_with(Backend::Sqlite, move |s| {
        s.storage.providers = vec![p1];
        s.storage.master_key_file = Some(k1);
    })
    .await;
    let call = consented_recording(&app).await;
    let media = chunk_body(0, 120_000);
    assert_eq!(
        put_chunk(&app, &call, 0, &media).await.0,
        StatusCode::CREATED
    );
    assert_eq!(complete(&app, &call, 1).await.0, StatusCode::OK);
    let old_id = wakili_storage::MasterKey::from_file_text(&"11".repeat(32))
        .unwrap()
        .id()
        .to_owned();
    let key_id = |db: &wakili_db::Db, id: String| {
        let db = db.clone();
        async move { db.recording(&id).await.unwrap().unwrap().key_id.unwrap() }
    };
    let db = wakili_db::connect(&app.db.url, &wakili_db::PoolOptions::default())
        .await
        .unwrap();
    assert_eq!(key_id(&db, call.recording.clone()).await, old_id);

    // Rotated: the new key is current, the old one retired.
    let (p2, k2, r2) = (provider.clone(), new_key.clone(), old_key.clone());
    let rotated = common::spawn_node_with(&app.db.url, move |s| {
        s.storage.providers = vec![p2];
        s.storage.master_key_file = Some(k2);
        s.storage.retired_master_key_files = vec![r2];
    })
    .await;
    let admin = token("admin-1", Role::Admin);
    let mut left = Value::Null;
    for _ in 0..100 {
        let response = app
            .http
            .get(rotated.url("/api/v1/storage/usage"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        left = read(response).await.1["keysUnderRetiredMasterKeys"].clone();
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left, 0);
    assert_ne!(key_id(&db, call.recording.clone()).await, old_id);
    rotated.stop().await.unwrap();

    // The retired key is gone from the configuration: the recording still downloads.
    let (p3, k3) = (provider, new_key);
    let node = common::spawn_node_with(&app.db.url, move |s| {
        s.storage.providers = vec![p3];
        s.storage.master_key_file = Some(k3);
    })
    .await;
    let response = app
        .http
        .post(node.url(&format!(
            "/api/v1/recordings/{}/download-url",
            call.recording
        )))
        .bearer_auth(&call.client)
        .send()
        .await
        .unwrap();
    let (status, link) = read(response).await;
    assert_eq!(status, StatusCode::OK, "{link}");
    let url = link["url"].as_str().unwrap();
    let body = app
        .http
        .get(node.url(&url[url.find("/api/v1/").unwrap()..]))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(hex_sha(&body), hex_sha(&media));
    node.stop().await.unwrap();
}
