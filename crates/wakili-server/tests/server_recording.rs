//! Server-side recording through the SFU, as clients drive it over Socket.IO: a consultation
//! booked `sfu`, its lawyer, client and an invited interpreter publishing synthetic VP8
//! simulcast and Opus; the lawyer records with everyone's consent, the interpreter leaves and
//! comes back (asked to consent again), the lawyer stops. The server recorded every
//! participant's tracks, one file each across the interruption, sealed and listed in a signed
//! manifest; each track downloads (with Range) and ffprobe reads it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{media::*, *};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wakili_core::Role;
use wakili_db::Backend;
use wakili_testkit::probe::{longest_gap, packet_times, streams};

/// `PUT /consultations/{id}/participants/{user}`, as the lawyer.
async fn invite(app: &TestApp, lawyer: &str, consultation: &str, user: &str, role: &str) {
    let path = format!("/api/v1/consultations/{consultation}/participants/{user}");
    let (status, body) = app
        .call(Method::PUT, &path, lawyer, Some(json!({ "role": role })))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// Waits for `name` with `matches`, failing after 10 s.
async fn wait(events: &mut wakili_client::Events, name: &str, matches: impl Fn(&Value) -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let event = events.wait_for(name, left).await.unwrap();
        if matches(&event.parse::<Value>().unwrap()) {
            return;
        }
    }
}

/// The recording as `GET /recordings/{id}` shows it once it is final.
async fn finalized(app: &TestApp, token: &str, id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = app
            .call(
                Method::GET,
                &format!("/api/v1/recordings/{id}"),
                token,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if ["completed", "incomplete"].contains(&body["status"].as_str().unwrap()) {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never finalized: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_server_records_every_participant_through_an_interruption_into_a_signed_session() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.sfu.record_chunk = Duration::from_secs(1);
    })
    .await;
    let lawyer = token("lawyer-1", Role::Lawyer);
    let client = token("client-1", Role::Client);
    let interpreter = token("interpreter-1", Role::Client);
    let id = book(&app, &lawyer, "sfu").await;
    invite(&app, &lawyer, &id, "interpreter-1", "interpreter").await;

    let (l, mut l_events, l_ack) = join(&app, &lawyer, &id).await;
    let (c, mut c_events, c_ack) = join(&app, &client, &id).await;
    let (i, mut i_events, i_ack) = join(&app, &interpreter, &id).await;
    let name = |ack: &Value| ack["participantId"].as_str().unwrap().to_owned();
    let (l_id, c_id, i_id) = (name(&l_ack), name(&c_ack), name(&i_ack));

    // Recording: everyone else consents; the server records, so no browser uploads.
    let started = l.call_ok("recording:start", &json!({})).await.unwrap();
    let recording = started["recordingId"].as_str().unwrap().to_owned();
    for (socket, events) in [(&c, &mut c_events), (&i, &mut i_events)] {
        wait(events, "recording:consent-request", |_| true).await;
        socket
            .call_ok("recording:consent", &json!({ "granted": true }))
            .await
            .unwrap();
    }
    wait(&mut l_events, "recording:state", |s| {
        s["active"] == true && s["server"] == true
    })
    .await;
    let (l_socket, c_socket) = (l.clone(), c.clone());
    let _lb = publish(&app, l, l_events, &l_id).await;
    let _cb = publish(&app, c, c_events, &c_id).await;
    let i_browser = publish(&app, i.clone(), i_events, &i_id).await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The interpreter leaves, and comes back: asked again, recorded again, in the same file.
    i.call_ok("consultation:leave", &json!({})).await.unwrap();
    drop(i_browser);
    drop(i);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Everyone's recording pauses from the interpreter's return until it consents again.
    let returned = std::time::Instant::now();
    let (i, mut i_events, i_ack) = join(&app, &interpreter, &id).await;
    wait(&mut i_events, "recording:consent-request", |_| true).await;
    i.call_ok("recording:consent", &json!({ "granted": true }))
        .await
        .unwrap();
    let paused = returned.elapsed().as_secs_f64();
    let i_id = name(&i_ack);
    let _ib = publish(&app, i, i_events, &i_id).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let sealed = app.metric("wakili_recorder_sealed_bytes_total").await;
    assert!(sealed.is_some_and(|b| b > 0.0), "{sealed:?}");
    let packets = app.metric("wakili_recorder_packets_total").await;
    assert!(packets.is_some_and(|n| n > 100.0), "{packets:?}");

    l_socket
        .call_ok("recording:stop", &json!({}))
        .await
        .unwrap();
    let session = finalized(&app, &lawyer, &recording).await;
    drop(c_socket);
    assert_eq!(session["status"], "completed", "{session}");
    let tracks = session["tracks"].as_array().unwrap();
    let mut who: Vec<(String, String, String)> = tracks
        .iter()
        .map(|t| {
            let s = |k: &str| t[k].as_str().unwrap().to_owned();
            (s("userId"), s("role"), s("label"))
        })
        .collect();
    who.sort();
    assert_eq!(
        who,
        [
            ("client-1", "client", "audio"),
            ("client-1", "client", "video"),
            ("interpreter-1", "interpreter", "audio"),
            ("interpreter-1", "interpreter", "video"),
            ("lawyer-1", "lawyer", "audio"),
            ("lawyer-1", "lawyer", "video"),
        ]
        .map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned())),
        "one file per participant and track, the interpreter's across the interruption"
    );
    let offsets: Vec<i64> = tracks
        .iter()
        .map(|t| t["startOffsetMs"].as_i64().unwrap())
        .collect();
    let spread = offsets.iter().max().unwrap() - offsets.iter().min().unwrap();
    assert!(spread < 2_000, "tracks began together: {offsets:?}");

    // The signed manifest lists every track and calls the combined file a derivative.
    let (status, signed) = app
        .call(
            Method::GET,
            &format!("/api/v1/recordings/{recording}/manifest"),
            &client,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{signed}");
    assert_eq!(signed["manifest"]["tracks"].as_array().unwrap().len(), 6);
    assert_eq!(signed["manifest"]["derivative"]["evidence"], false);
    let (_, key) = app
        .call(Method::GET, "/api/v1/recordings/signing-key", &client, None)
        .await;
    let key = wakili_storage::parse_verifying_key(key["publicKeyPem"].as_str().unwrap()).unwrap();
    let mut files = Vec::new();

    for t in tracks {
        assert_eq!(t["status"], "completed", "{t}");
        let track = t["id"].as_str().unwrap();
        let (status, whole) = download(&app, &client, track, None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(whole.len() as u64, t["sizeBytes"].as_u64().unwrap());
        let (status, part) = download(&app, &client, track, Some("bytes=10-99")).await;
        assert_eq!(status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(part, whole[10..100]);
        files.push((track.to_owned(), std::io::Cursor::new(whole.clone())));
        let times = packet_times(&whole);
        assert!(times.len() > 20, "{t}: {} frames", times.len());
        let gap = longest_gap(&times);
        if t["userId"] == "interpreter-1" {
            assert!(gap > 1.0, "{t}: the absence shows as a gap, got {gap}");
        } else {
            // No gap but the consent pause and the wait for a keyframe after it: a keyframe
            // request is deferred up to `KeyframeConfig::min_interval` (0.5 s) after the last
            // one and repeated after `retry_after` (1 s) if lost.
            assert!(
                gap < paused + 1.5,
                "{t}: no gap beyond the {paused:.3} s consent pause, got {gap}"
            );
        }
    }

    // Offline, the downloaded tracks are exactly what the manifest signed.
    let verified = wakili_storage::verify_session(signed["jws"].as_str().unwrap(), &key, files);
    assert!(verified.is_ok(), "{verified:?}");

    // One file to watch: the session's download is every track remuxed together, in place.
    let (status, combined) = download(&app, &lawyer, &recording, None).await;
    assert_eq!(status, StatusCode::OK);
    let streams = streams(&combined);
    assert_eq!(streams.len(), 6, "{streams:?}");
    assert_eq!(
        streams.iter().filter(|(codec, _)| codec == "vp8").count(),
        3,
        "{streams:?}"
    );
    let starts: Vec<f64> = streams.iter().map(|(_, start)| *start).collect();
    let spread = starts.iter().cloned().fold(f64::MIN, f64::max)
        - starts.iter().cloned().fold(f64::MAX, f64::min);
    assert!(spread < 2.0, "tracks placed at their offsets: {streams:?}");

    // Guests see no recordings.
    let (status, _) = app
        .call(
            Method::GET,
            &format!("/api/v1/recordings/{recording}"),
            &interpreter,
            None,
        )
        .await;
    assert!(status == StatusCode::FORBIDDEN || status == StatusCode::NOT_FOUND);
}

/// `GET /storage/usage`, as an admin.
async fn usage(app: &TestApp) -> Value {
    let admin = token("admin-1", Role::Admin);
    let (status, body) = app
        .call(Method::GET, "/api/v1/storage/usage", &admin, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test]
async fn the_primary_provider_down_for_thirty_seconds_mid_recording_loses_nothing() {
    use wakili_settings::{ProviderKind, ProviderSettings};
    use wakili_testkit::s3::S3Server;

    let mut s3 = S3Server::start();
    let disk = tempfile::tempdir().unwrap();
    let s3p = s3.provider("s3", ProviderKind::S3);
    let disk_path = disk.path().to_path_buf();
    let app = spawn_app_with(Backend::Sqlite, move |s| {
        s.sfu.record_chunk = Duration::from_secs(1);
        s.storage.providers = vec![s3p, ProviderSettings::local("disk", disk_path)];
        s.storage.replication_interval = Duration::from_millis(200);
        s.storage.put_timeout = Duration::from_secs(5);
        s.storage.cooldown = Duration::from_secs(1);
    })
    .await;
    let lawyer = token("lawyer-1", Role::Lawyer);
    let client = token("client-1", Role::Client);
    let id = book(&app, &lawyer, "sfu").await;
    let (l, mut l_events, l_ack) = join(&app, &lawyer, &id).await;
    let (c, mut c_events, c_ack) = join(&app, &client, &id).await;
    let started = l.call_ok("recording:start", &json!({})).await.unwrap();
    let recording = started["recordingId"].as_str().unwrap().to_owned();
    wait(&mut c_events, "recording:consent-request", |_| true).await;
    c.call_ok("recording:consent", &json!({ "granted": true }))
        .await
        .unwrap();
    wait(&mut l_events, "recording:state", |s| s["active"] == true).await;
    let l_socket = l.clone();
    let name = |ack: &Value| ack["participantId"].as_str().unwrap().to_owned();
    let _lb = publish(&app, l, l_events, &name(&l_ack)).await;
    let _cb = publish(&app, c, c_events, &name(&c_ack)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The primary stops answering for 30 s while the recording goes on.
    s3.stop();
    tokio::time::sleep(Duration::from_secs(30)).await;
    s3.resume();
    tokio::time::sleep(Duration::from_secs(2)).await;
    l_socket
        .call_ok("recording:stop", &json!({}))
        .await
        .unwrap();

    // Nothing was lost: every track complete, every chunk there.
    let session = finalized(&app, &lawyer, &recording).await;
    assert_eq!(session["status"], "completed", "{session}");
    let (_, signed) = app
        .call(
            Method::GET,
            &format!("/api/v1/recordings/{recording}/manifest"),
            &lawyer,
            None,
        )
        .await;
    let listed = signed["manifest"]["tracks"].as_array().unwrap();
    assert_eq!(listed.len(), 4);
    for t in listed {
        assert_eq!(t["missing"], json!([]), "{t}");
        assert!(
            t["chunks"].as_array().unwrap().len() >= 30,
            "35 s of media: {t}"
        );
    }
    // And the primary catches up with what the disk took meanwhile.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let u = usage(&app).await;
        if u["replicationBacklog"] == 0
            && u["providers"][0]["objects"] == u["providers"][1]["objects"]
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "replicas never caught up: {u}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
