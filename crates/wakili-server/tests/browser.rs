#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The reference web client in a real browser: two headless Chromium contexts (Debian's
//! `/usr/bin/chromium` with fake camera and microphone, driven by playwright-core from
//! `tests/node/browser-call.mjs`) hold a consultation through this server, once direct and once
//! forced through the embedded TURN relay. The script checks what users see; this test then
//! checks the recording they made on the server: completed, and its download plays for about
//! 10 seconds according to ffprobe. Screenshots of every step are kept under
//! `<target>/tmp/test-artifacts/browser/`.

mod common;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wakili_core::Role;
use wakili_db::Backend;

const SCRIPT_TIMEOUT: Duration = Duration::from_secs(200);
const LAWYER: &str = "lawyer-1";
const CLIENT: &str = "client-1";

fn artifacts() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("test-artifacts/browser")
}

/// Runs the browser script and returns its `RESULT` line.
async fn run_browser(input: &Value) -> Value {
    eprintln!("screenshots: {}", artifacts().display());
    run_browser_script("browser-call.mjs", input, SCRIPT_TIMEOUT).await
}

/// The media's length in seconds: the last packet's end, as ffprobe reads it (MediaRecorder's
/// WebM carries no duration in its header).
fn ffprobe_seconds(file: &Path) -> f64 {
    let output = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "packet=pts_time,duration_time",
        ])
        .args(["-of", "csv=p=0"])
        .arg(file)
        .output()
        .expect("ffprobe (Debian ffmpeg) is needed: scripts/install-test-tools installs it");
    assert!(
        output.status.success(),
        "ffprobe cannot read the recording: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let mut parts = line.split(',');
            let pts: f64 = parts.next()?.parse().ok()?;
            let duration: f64 = parts.next().and_then(|d| d.parse().ok()).unwrap_or(0.0);
            Some(pts + duration)
        })
        .fold(0.0, f64::max)
}

fn p50(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_browsers_hold_a_consultation_direct_and_through_the_relay_and_record_it() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        // Both browsers and the relay share this machine's loopback.
        s.turn.allow_loopback_peers = true;
    })
    .await;
    let lawyer = token(LAWYER, Role::Lawyer);
    let client = token(CLIENT, Role::Client);
    // Peer to peer, recorded by the lawyer's browser.
    let direct = app.book_in(&lawyer, CLIENT, &day(1, 10), "p2p").await;
    let relay = app.book_in(&lawyer, CLIENT, &day(1, 11), "p2p").await;
    let (status, config) = app
        .call(
            Method::GET,
            &format!(
                "/api/v1/webrtc/config?consultationId={}",
                direct["id"].as_str().unwrap()
            ),
            &lawyer,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{config}");
    let _ = std::fs::remove_dir_all(artifacts());
    let result = run_browser(&json!({
        "url": app.url(""),
        "direct": {"consultationId": direct["id"]},
        "relay": {"consultationId": relay["id"]},
        "tokens": {"lawyer": lawyer, "client": client},
        "artifacts": artifacts(),
        "lowProfile": {"maxBitrate": config["qualityProfiles"]["low"]["maxBitrate"]},
    }))
    .await;

    let times: Vec<f64> = result["joinToFirstFrameMs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    eprintln!(
        "join to first remote frame: {times:.0?} ms, p50 {:.0} ms (target < 500 ms on loopback)",
        p50(&times)
    );
    assert_eq!(result["relay"]["client"]["local"], "relay");
    assert!(
        result["quality"]["score"].as_f64().unwrap() > 0.0,
        "{result}"
    );

    // The recording the browsers made: completed on the server, and it plays for ~10 s.
    let recording_id = result["recording"]["id"].as_str().unwrap();
    let (status, recording) = app
        .call(
            Method::GET,
            &format!("/api/v1/recordings/{recording_id}"),
            &client,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{recording}");
    assert_eq!(recording["status"], "completed", "{recording}");
    let (status, link) = app
        .call(
            Method::POST,
            &format!("/api/v1/recordings/{recording_id}/download-url"),
            &client,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{link}");
    let url = link["url"].as_str().unwrap();
    let media = app
        .http
        .get(app.url(&url[url.find("/api/v1/").unwrap()..]))
        .send()
        .await
        .unwrap();
    assert_eq!(media.status(), StatusCode::OK);
    let bytes = media.bytes().await.unwrap();
    let file = artifacts().join("recording.webm");
    std::fs::write(&file, &bytes).unwrap();
    let seconds = ffprobe_seconds(&file);
    eprintln!(
        "recording: {} bytes, ffprobe {seconds:.1} s, kept at {}",
        bytes.len(),
        file.display()
    );
    assert!(
        (8.0..=14.0).contains(&seconds),
        "the 10-second recording plays for {seconds:.1} s"
    );
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_client_renews_an_expiring_token_from_its_opener_and_stays_in_the_call() {
    // A lawyer token of 15 s, warned 12 s before it expires.
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.signaling.expiry_warning = Duration::from_secs(12);
    })
    .await;
    let booked = app
        .book(&token(LAWYER, Role::Lawyer), CLIENT, &day(1, 10))
        .await;
    let now = chrono::Utc::now();
    let ttl = Duration::from_secs(15);
    let input = json!({
        "url": app.url(""),
        "consultationId": booked["id"],
        "tokens": {
            "shortLawyer": token_at(LAWYER, Role::Lawyer, now, ttl),
            "longLawyer": token(LAWYER, Role::Lawyer),
        },
        "shortExpiresAtMs": (now.timestamp() + 15) * 1000,
    });
    run_node(
        "browser-token.mjs",
        &input,
        "playwright-core",
        &[("WAKILI_TEST_VERBOSE", "1")],
        SCRIPT_TIMEOUT,
    )
    .await;
    app.stop().await.unwrap();
}
