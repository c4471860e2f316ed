#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The reference web client through the embedded SFU in a real browser: three headless Chromium
//! contexts (a lawyer, a client and an admin; Debian's `/usr/bin/chromium` with fake camera and
//! microphone, driven by playwright-core from `tests/node/browser-sfu.mjs`) in a consultation
//! booked `auto`. The lawyer and the client start peer to peer; when the admin joins all three
//! move to the SFU. The script checks that everyone decodes the others' video and hears their
//! audio, that a forced low simulcast layer lowers the received frame width and releasing it
//! raises it again, that a reload rejoins the same participant with media, and that the active
//! speaker is highlighted, and (direct) that an invited observer sees and hears all three while
//! sending nothing. It reports the freeze on the move (from `media:topology` to each
//! publisher's first frame through the SFU). A second run forces every page through the embedded
//! TURN relay, booked `sfu` (see below why it cannot start peer to peer here). Screenshots go to
//! `<target>/tmp/test-artifacts/browser-sfu/`.

mod common;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use common::*;
use reqwest::Method;
use serde_json::{Value, json};
use wakili_core::Role;
use wakili_db::Backend;

const SCRIPT_TIMEOUT: Duration = Duration::from_secs(200);

fn artifacts() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("test-artifacts/browser-sfu")
}

/// Books a consultation of lawyer-1 with client-1 in media mode `mode`; its id.
async fn book(app: &TestApp, lawyer: &str, at: &str, mode: &str) -> Value {
    let body = json!({"clientId": "client-1", "scheduledAt": at, "durationMinutes": 45,
                      "mediaMode": mode});
    let (status, body) = app
        .call(Method::POST, "/api/v1/consultations", lawyer, Some(body))
        .await;
    assert!(status.is_success(), "{body}");
    assert_eq!(body["mediaMode"], mode, "{body}");
    body["id"].clone()
}

fn numbers(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_browsers_move_from_peer_to_peer_to_the_sfu_direct_and_through_the_relay() {
    // No `turn.allow_loopback_peers`: the relayed run reaches the SFU on loopback through the
    // relay's exception for the SFU's own address. Other loopback peers stay refused, among them
    // another browser's relay address, so here a relayed call cannot start peer to peer: the
    // relayed run is booked `sfu` (with `allow_loopback_peers` it passes booked `auto` too).
    let app = spawn_app_with(Backend::Sqlite, |_| {}).await;
    let lawyer = token("lawyer-1", Role::Lawyer);
    let client = token("client-1", Role::Client);
    let admin = token("admin-1", Role::Admin);
    let observer = token("trainee-1", Role::Lawyer);
    let direct = book(&app, &lawyer, &day(1, 10), "auto").await;
    let relay = book(&app, &lawyer, &day(1, 11), "sfu").await;
    let invite = format!(
        "/api/v1/consultations/{}/participants/trainee-1",
        direct.as_str().unwrap()
    );
    let (status, body) = app
        .call(
            Method::PUT,
            &invite,
            &lawyer,
            Some(json!({"role": "observer"})),
        )
        .await;
    assert!(status.is_success(), "{body}");
    let _ = std::fs::remove_dir_all(artifacts());
    eprintln!("screenshots: {}", artifacts().display());
    let input = json!({
        "url": app.url(""),
        "runs": [
            {"name": "direct", "consultationId": direct, "query": "", "mode": "auto"},
            {"name": "relay", "consultationId": relay, "query": "?relay=1", "mode": "sfu"},
        ],
        "tokens": {"lawyer": lawyer, "client": client, "admin": admin, "observer": observer},
        "artifacts": artifacts(),
    });
    let result = run_browser_script("browser-sfu.mjs", &input, SCRIPT_TIMEOUT).await;

    let freeze = &result["freezeMs"];
    eprintln!(
        "freeze on the move to the SFU: p50 {} ms, max {} ms, all {}",
        freeze["p50"], freeze["max"], freeze["all"]
    );
    // Two pages that were peer to peer, two publishers each, in the `auto` run.
    assert_eq!(numbers(&freeze["all"]).len(), 4, "{result}");
    for (name, run) in result["runs"].as_object().unwrap() {
        let layers = &run["layers"];
        eprintln!(
            "{name}: received widths before {}, with q {}, released {}; the lawyer sends {}; \
             speaker {}; {} s",
            layers["before"],
            layers["q"],
            layers["after"],
            run["sentLayers"],
            run["speaking"],
            run["seconds"]
        );
        for (id, before) in layers["before"].as_object().unwrap() {
            let (before, q, after) = (
                before.as_f64().unwrap(),
                layers["q"][id].as_f64().unwrap(),
                layers["after"][id].as_f64().unwrap(),
            );
            assert!(
                q <= before / 2.0 && after > q,
                "{name}: {id} {before} → {q} → {after}"
            );
        }
        let relayed = name == "relay";
        for (who, pair) in run["candidates"].as_object().unwrap() {
            assert_eq!(
                pair["local"] == "relay",
                relayed,
                "{name}: {who}'s candidate pair {pair}"
            );
        }
        assert!(run["quality"]["score"].as_f64().unwrap() > 0.0, "{run}");
    }
    let observed = &result["runs"]["direct"]["observer"];
    assert_eq!(
        observed["receivedFrom"], 3,
        "the observer sees everyone: {result}"
    );
    app.stop().await.unwrap();
}
