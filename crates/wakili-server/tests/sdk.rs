#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The TypeScript SDK (`sdk/`) against the real server: the test starts the server (manual
//! admission, so the SDK's `admit` is what lets the client in), books a consultation, mints
//! tokens and runs the SDK's integration tests (`sdk/test/integration`, vitest) with those inputs
//! in the JSON file `WAKILI_TEST_FILE` names. They cover REST through the generated client,
//! joining and the waiting room, typed acknowledgements, a dropped connection resumed with its
//! resume token while emits wait in the queue, and the end. Needs Node.js 20.19+ and the npm
//! workspace installed (`scripts/install-test-tools`).

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use wakili_core::Role;
use wakili_db::Backend;
use wakili_settings::Admission;

const LAWYER: &str = "lawyer-1";
const CLIENT: &str = "client-1";

/// Longer than vitest's own timeouts, which say what they waited for.
const RUN_TIMEOUT: Duration = Duration::from_secs(180);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_sdk_books_joins_admits_resumes_and_ends_a_consultation() {
    require_npm_package("vitest");
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.signaling.admission = Admission::Manual;
        s.signaling.resume_grace = Duration::from_secs(30);
    })
    .await;
    let booked = app
        .book(&token(LAWYER, Role::Lawyer), CLIENT, &day(1, 10))
        .await;
    let input = json!({
        "url": app.url(""),
        "consultationId": booked["id"],
        "tokens": {
            "lawyer": token(LAWYER, Role::Lawyer),
            "client": token(CLIENT, Role::Client),
            "admin": token("admin-1", Role::Admin),
        },
        "users": {"lawyer": LAWYER, "client": CLIENT},
    });
    let inputs = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(inputs.path(), input.to_string()).unwrap();

    let root = repo_dir();
    let mut command = tokio::process::Command::new("node");
    command
        .arg(root.join("node_modules/vitest/vitest.mjs"))
        .args(["run", "--config", "vitest.integration.config.ts"])
        .current_dir(root.join("sdk"))
        .env("WAKILI_TEST_FILE", inputs.path())
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = match tokio::time::timeout(RUN_TIMEOUT, command.output()).await {
        Err(_) => panic!("the SDK's integration tests did not finish within {RUN_TIMEOUT:?}"),
        Ok(Err(e)) => panic!("cannot run node (Node.js 20.19+ must be on PATH): {e}"),
        Ok(Ok(output)) => output,
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the SDK's integration tests failed ({})\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    eprint!("{stdout}");
    app.stop().await.unwrap();
}

/// The SDK's browser bundle in headless Chromium (`tests/node/sdk-browser.mjs`): real WebRTC with
/// fake camera and microphone, once peer to peer and once through the SFU.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_sdk_carries_a_call_in_chromium_peer_to_peer_and_through_the_sfu() {
    require_npm_package("esbuild");
    let app = spawn_app_with(Backend::Sqlite, |_| {}).await;
    let lawyer = token(LAWYER, Role::Lawyer);
    let p2p = app.book_in(&lawyer, CLIENT, &day(1, 10), "p2p").await;
    let sfu = app.book_in(&lawyer, CLIENT, &day(1, 12), "sfu").await;
    let input = json!({
        "url": app.url(""),
        "p2p": {"consultationId": p2p["id"]},
        "sfu": {"consultationId": sfu["id"]},
        "tokens": {"lawyer": lawyer, "client": token(CLIENT, Role::Client)},
    });
    let result = run_browser_script("sdk-browser.mjs", &input, RUN_TIMEOUT).await;
    for mode in ["p2p", "sfu"] {
        for side in ["lawyerSees", "clientSees"] {
            assert!(
                result[mode][side]["width"].as_u64().unwrap() > 0,
                "{mode}: {side} {}",
                result[mode]
            );
        }
        let score = result[mode]["sample"]["score"].as_f64().unwrap();
        assert!((1.0..=5.0).contains(&score), "{mode}: score {score}");
    }
    assert_ne!(
        result["p2p"]["iceRestart"]["before"], result["p2p"]["iceRestart"]["after"],
        "the ICE restart gave the connection new credentials"
    );
    app.stop().await.unwrap();
}
