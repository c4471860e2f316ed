#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Server recording from real browsers: `tests/node/browser-recording.mjs` drives three headless
//! Chromium pages (Debian's `/usr/bin/chromium`, fake camera and microphone, the reference web
//! client) through a consultation booked `sfu`: the lawyer records with everyone's consent, the
//! client reloads and shares its screen for a while, the interpreter leaves and comes back, the
//! lawyer stops. Then, through the API: every participant's tracks are there (the screen share
//! its own), each plays in ffprobe for the recording's length (gaps included; the screen share
//! for the time it was shared), their start offsets line up, the session verifies offline, and
//! the combined file decodes. Screenshots go to `<target>/tmp/test-artifacts/browser-recording/`.

mod common;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;
use wakili_core::Role;
use wakili_db::Backend;
use wakili_testkit::probe::packet_times_at;

fn artifacts() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("test-artifacts/browser-recording")
}

/// Downloads recording `id` whole through a signed link.
async fn fetch(app: &TestApp, token: &str, id: &str) -> Vec<u8> {
    let (status, body) = media::download(app, token, id, None).await;
    assert_eq!(status, StatusCode::OK);
    body
}

/// Writes `bytes` to a file in the artifacts directory; its path.
fn keep(name: &str, bytes: &[u8]) -> PathBuf {
    let path = artifacts().join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_browsers_recorded_by_the_server_through_a_reload_and_a_return() {
    let app = spawn_app_with(Backend::Sqlite, |_| {}).await;
    let lawyer = token("lawyer-1", Role::Lawyer);
    let client = token("client-1", Role::Client);
    let interpreter = token("interpreter-1", Role::Client);
    let (status, booked) = app
        .call(
            Method::POST,
            "/api/v1/consultations",
            &lawyer,
            Some(json!({"clientId": "client-1", "scheduledAt": day(1, 10),
                        "durationMinutes": 45, "mediaMode": "sfu"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{booked}");
    let id = booked["id"].as_str().unwrap().to_owned();
    let (status, body) = app
        .call(
            Method::PUT,
            &format!("/api/v1/consultations/{id}/participants/interpreter-1"),
            &lawyer,
            Some(json!({"role": "interpreter"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let _ = std::fs::remove_dir_all(artifacts());
    std::fs::create_dir_all(artifacts()).unwrap();
    let input = json!({
        "url": app.url(""),
        "consultationId": id,
        "tokens": {"lawyer": lawyer, "client": client, "interpreter": interpreter},
        "artifacts": artifacts(),
    });
    let result =
        run_browser_script("browser-recording.mjs", &input, Duration::from_secs(180)).await;
    eprintln!("browsers: {result}");
    let recording = result["recordingId"].as_str().unwrap();
    let length = result["stoppedMs"].as_f64().unwrap() / 1000.0;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let session = loop {
        let (_, body) = app
            .call(
                Method::GET,
                &format!("/api/v1/recordings/{recording}"),
                &lawyer,
                None,
            )
            .await;
        if body["status"] == "completed" || body["status"] == "incomplete" {
            break body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not finalized: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(session["status"], "completed", "{session}");
    let tracks = session["tracks"].as_array().unwrap();
    let mut who: Vec<String> = tracks
        .iter()
        .map(|t| {
            format!(
                "{} {}",
                t["userId"].as_str().unwrap(),
                t["label"].as_str().unwrap()
            )
        })
        .collect();
    who.sort();
    assert_eq!(
        who,
        [
            "client-1 audio",
            "client-1 screen",
            "client-1 video",
            "interpreter-1 audio",
            "interpreter-1 video",
            "lawyer-1 audio",
            "lawyer-1 video"
        ],
        "{session}"
    );

    let share = (
        result["shareStartedMs"].as_f64().unwrap() / 1000.0,
        result["shareStoppedMs"].as_f64().unwrap() / 1000.0,
    );
    let mut files = Vec::new();
    let mut audio_offsets = Vec::new();
    for t in tracks {
        let track = t["id"].as_str().unwrap();
        let media = fetch(&app, &client, track).await;
        let name = format!(
            "{}-{}.webm",
            t["userId"].as_str().unwrap(),
            t["label"].as_str().unwrap()
        );
        let path = keep(&name, &media);
        let offset = t["startOffsetMs"].as_f64().unwrap() / 1000.0;
        let played = offset + packet_times_at(&path).into_iter().fold(0.0, f64::max);
        eprintln!("{name}: offset {offset:.3} s, ends at {played:.3} s of {length:.3} s");
        if t["label"] == "screen" {
            // From when the share began to when it ended. The page times the share from when it
            // saw the recording start, the server from when it started it: on a busy machine
            // those two references differ by the delivery of `recording:state` (1.01 s once).
            assert!(
                (offset - share.0).abs() <= 1.5 && (played - share.1).abs() <= 1.5,
                "{name}: {offset:.3}–{played:.3} s, shared {share:?}"
            );
        } else {
            assert!(
                (played - length).abs() <= 1.0,
                "{name} plays to {played:.3} s of the recording's {length:.3} s"
            );
        }
        if t["kind"] == "audio" {
            audio_offsets.push(t["startOffsetMs"].as_i64().unwrap());
        }
        files.push((track.to_owned(), std::io::Cursor::new(media)));
    }
    let spread = audio_offsets.iter().max().unwrap() - audio_offsets.iter().min().unwrap();
    assert!(
        spread <= 100,
        "the tracks start together: audio offsets {audio_offsets:?}"
    );

    // The evidence verifies offline.
    let (_, signed) = app
        .call(
            Method::GET,
            &format!("/api/v1/recordings/{recording}/manifest"),
            &client,
            None,
        )
        .await;
    let (_, key) = app
        .call(Method::GET, "/api/v1/recordings/signing-key", &client, None)
        .await;
    let key = wakili_storage::parse_verifying_key(key["publicKeyPem"].as_str().unwrap()).unwrap();
    let verified = wakili_storage::verify_session(signed["jws"].as_str().unwrap(), &key, files);
    assert!(verified.is_ok(), "{verified:?}");

    // The one file to watch decodes.
    let combined = keep("combined.webm", &fetch(&app, &lawyer, recording).await);
    let decoded = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&combined)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(
        decoded.status.success(),
        "{}",
        String::from_utf8_lossy(&decoded.stderr)
    );
    let streams = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "csv=p=0",
        ])
        .arg(&combined)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&streams.stdout).lines().count(), 7);
    app.stop().await.unwrap();
}
