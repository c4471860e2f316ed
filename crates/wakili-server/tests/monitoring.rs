//! Monitoring against the real server: `/metrics` after real traffic passes `promtool check
//! metrics` and its values move; the optional bearer token; a consultation's quality timeline
//! and who may read it; the dashboard snapshot (admins only).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{collections::BTreeMap, io::Write, process::Stdio, time::Duration};

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wakili_client::Client;
use wakili_core::Role;
use wakili_db::Backend;
use wakili_settings::Secret;

/// Samples of `text` (Prometheus exposition): "name{labels}" → value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            Some((key.to_owned(), value.parse().ok()?))
        })
        .collect()
}

fn value(samples: &BTreeMap<String, f64>, key: &str) -> f64 {
    *samples
        .get(key)
        .unwrap_or_else(|| panic!("{key} missing from /metrics"))
}

async fn scrape(app: &TestApp) -> String {
    let response = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    response.text().await.unwrap()
}

/// Runs the real `promtool check metrics` on `text`.
fn promtool(text: &str) {
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; scripts/install-test-tools installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n--- exposition ---\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn report(rtt: f64, loss: f64, kbps: f64, candidate: &str) -> Value {
    json!({
        "rttMs": rtt, "jitterMs": 3.0, "packetLossPct": loss, "outboundKbps": kbps,
        "inboundKbps": kbps, "frameRate": 30.0, "width": 1280, "height": 720,
        "candidateType": candidate
    })
}

/// Lawyer and client joined to a fresh consultation over Socket.IO.
struct Call {
    id: String,
    lawyer: Client,
    client: Client,
    lawyer_pid: String,
    client_pid: String,
}

async fn call(app: &TestApp, lawyer: &str, client: &str) -> Call {
    let booked = app
        .book(&token(lawyer, Role::Lawyer), client, &day(1, 10))
        .await;
    let id = booked["id"].as_str().unwrap().to_owned();
    let base = app.url("");
    let (l, _le) = Client::connect(&base, &token(lawyer, Role::Lawyer))
        .await
        .unwrap();
    let (c, mut ce) = Client::connect(&base, &token(client, Role::Client))
        .await
        .unwrap();
    let join = json!({"consultationId": id});
    let lawyer_pid = l.call_ok("consultation:join", &join).await.unwrap()["participantId"]
        .as_str()
        .unwrap()
        .to_owned();
    let client_pid = c.call_ok("consultation:join", &join).await.unwrap()["participantId"]
        .as_str()
        .unwrap()
        .to_owned();
    l.call_ok(
        "signal",
        &json!({"to": client_pid, "type": "offer", "payload": {"sdp": "v=0"}}),
    )
    .await
    .unwrap();
    ce.wait_for("signal", Duration::from_secs(5)).await.unwrap();
    Call {
        id,
        lawyer: l,
        client: c,
        lawyer_pid,
        client_pid,
    }
}

#[tokio::test]
async fn metrics_pass_promtool_and_move_with_traffic() {
    let app = spawn_app(Backend::Sqlite).await;
    let before = scrape(&app).await;
    promtool(&before);
    let s0 = samples(&before);
    // Every family is there from the start, push included (counted by whoever sends push).
    for key in [
        "wakili_push_sent_total",
        "wakili_push_failed_total",
        "wakili_push_queued",
        "wakili_joins_total",
        "wakili_socketio_connections",
        "wakili_recording_ingested_bytes_total",
        "wakili_recording_replication_backlog",
        "wakili_db_pool_connections",
        "wakili_turn_allocations",
        "wakili_turn_relayed_bytes_total{direction=\"to_peers\"}",
        "wakili_turn_refusals_total{reason=\"quota\"}",
        "wakili_sfu_dropped_datagrams_total",
        "wakili_sfu_send_failures_total",
        "wakili_sfu_sessions",
        "wakili_signals_relayed_total{type=\"offer\"}",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
    ] {
        assert!(s0.contains_key(key), "{key} missing from the first scrape");
    }
    assert_eq!(value(&s0, "wakili_joins_total"), 0.0);

    let c = call(&app, "m-lawyer", "m-client").await;
    c.client
        .call_ok("quality:report", &report(40.0, 0.0, 1500.0, "host"))
        .await
        .unwrap();
    let (status, _) = app
        .call(
            Method::GET,
            &format!("/api/v1/consultations/{}", c.id),
            &token("m-lawyer", Role::Lawyer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .call(Method::GET, "/api/v1/me", "not-a-token", None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let missing = app.http.get(app.url("/no/such/page")).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let during = scrape(&app).await;
    promtool(&during);
    let s1 = samples(&during);
    assert_eq!(value(&s1, "wakili_joins_total"), 2.0);
    assert_eq!(value(&s1, "wakili_socketio_connections"), 2.0);
    assert_eq!(value(&s1, "wakili_active_consultations"), 1.0);
    assert_eq!(value(&s1, "wakili_active_participants"), 2.0);
    assert_eq!(
        value(&s1, "wakili_signals_relayed_total{type=\"offer\"}"),
        1.0
    );
    assert_eq!(value(&s1, "wakili_quality_reports_total"), 1.0);
    assert_eq!(value(&s1, "wakili_join_duration_seconds_count"), 2.0);
    assert_eq!(
        value(
            &s1,
            "wakili_http_requests_total{method=\"POST\",route=\"/api/v1/consultations\",status=\"201\"}"
        ),
        1.0
    );
    assert_eq!(
        value(
            &s1,
            "wakili_http_requests_total{method=\"GET\",route=\"/api/v1/consultations/{id}\",status=\"200\"}"
        ),
        1.0
    );
    assert_eq!(
        value(
            &s1,
            "wakili_http_request_duration_seconds_count{method=\"GET\",route=\"/api/v1/me\",status=\"401\"}"
        ),
        1.0
    );
    assert_eq!(
        value(
            &s1,
            "wakili_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"}"
        ),
        1.0
    );
    assert!(value(&s1, "process_cpu_seconds_total") > 0.0);
    assert!(value(&s1, "wakili_db_pool_connections") >= 1.0);

    c.client
        .call_ok("consultation:leave", &json!({}))
        .await
        .unwrap();
    c.client.close().await;
    c.lawyer.close().await;
    let mut settled = BTreeMap::new();
    for _ in 0..50 {
        settled = samples(&scrape(&app).await);
        if value(&settled, "wakili_socketio_connections") == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(value(&settled, "wakili_socketio_connections"), 0.0);
    assert_eq!(value(&settled, "wakili_active_participants"), 0.0);
    assert_eq!(value(&settled, "wakili_active_consultations"), 0.0);
    // The scrapes themselves are counted.
    assert!(
        value(
            &settled,
            "wakili_http_requests_total{method=\"GET\",route=\"/metrics\",status=\"200\"}"
        ) >= 3.0
    );
}

#[tokio::test]
async fn a_metrics_token_is_required_when_configured() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.metrics.token = Some(Secret::new("scrape-me-please"));
    })
    .await;
    let bare = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(bare.status(), StatusCode::UNAUTHORIZED);
    let (status, body) = read(
        app.http
            .get(app.url("/metrics"))
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!body.to_string().contains("scrape-me-please"));
    let good = app
        .http
        .get(app.url("/metrics"))
        .bearer_auth("scrape-me-please")
        .send()
        .await
        .unwrap();
    assert_eq!(good.status(), StatusCode::OK);
    promtool(&good.text().await.unwrap());

    let off = spawn_app_with(Backend::Sqlite, |s| s.metrics.enabled = false).await;
    let response = off.http.get(off.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn quality_timelines_belong_to_participants_and_admins() {
    let app = spawn_app(Backend::Sqlite).await;
    let c = call(&app, "q-lawyer", "q-client").await;
    c.lawyer
        .call_ok("quality:report", &report(30.0, 0.0, 2000.0, "host"))
        .await
        .unwrap();
    c.client
        .call_ok("quality:report", &report(350.0, 12.0, 300.0, "relay"))
        .await
        .unwrap();
    c.client
        .call_ok(
            "signal",
            &json!({"to": c.lawyer_pid, "type": "restart", "payload": {}}),
        )
        .await
        .unwrap();
    let path = format!("/api/v1/consultations/{}/quality", c.id);
    let (status, body) = app
        .call(Method::GET, &path, &token("q-client", Role::Client), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["consultationId"], c.id.as_str());
    let participants = body["participants"].as_array().unwrap();
    assert_eq!(participants.len(), 2, "{body}");
    let of = |pid: &str| {
        participants
            .iter()
            .find(|p| p["participantId"] == pid)
            .unwrap_or_else(|| panic!("{pid} in {body}"))
    };
    let lawyer = of(&c.lawyer_pid);
    let client = of(&c.client_pid);
    assert_eq!(lawyer["userId"], "q-lawyer");
    assert_eq!(lawyer["timeline"][0]["rttMs"], 30.0);
    assert_eq!(lawyer["timeline"][0]["level"], "high");
    assert_eq!(lawyer["summary"]["candidateTypes"]["host"], 1);
    assert_eq!(client["timeline"][0]["level"], "low");
    assert_eq!(client["summary"]["packetLossPct"]["max"], 12.0);
    assert_eq!(client["summary"]["iceRestarts"], 1);
    assert_eq!(client["summary"]["reconnects"], 0);
    assert_eq!(client["summary"]["candidateTypes"]["relay"], 1);
    assert!(body["bandwidth"]["outboundKbps"].as_f64().unwrap() >= 2300.0);

    for (who, role) in [("q-lawyer", Role::Lawyer), ("q-admin", Role::Admin)] {
        let (status, _) = app.call(Method::GET, &path, &token(who, role), None).await;
        assert_eq!(status, StatusCode::OK, "{who}");
    }
    let (status, body) = app
        .call(Method::GET, &path, &token("stranger", Role::Lawyer), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _) = app
        .call(
            Method::GET,
            &path,
            &token("other-client", Role::Client),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.call(Method::GET, &path, "forged", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = app
        .call(
            Method::GET,
            "/api/v1/consultations/not%20an%20id/quality",
            &token("q-admin", Role::Admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

#[tokio::test]
async fn the_performance_snapshot_is_for_admins() {
    let app = spawn_app(Backend::Sqlite).await;
    let c = call(&app, "s-lawyer", "s-client").await;
    c.client
        .call_ok("quality:report", &report(50.0, 0.5, 1200.0, "srflx"))
        .await
        .unwrap();
    let admin = token("s-admin", Role::Admin);
    let (status, snap) = app
        .call(Method::GET, "/api/v1/performance/metrics", &admin, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{snap}");
    assert_eq!(snap["signaling"]["connectionsOpen"], 2);
    assert_eq!(snap["signaling"]["joins"], 2);
    assert_eq!(snap["signalsRelayed"], 1);
    assert_eq!(snap["joinLatencyMs"]["count"], 2);
    assert!(snap["joinLatencyMs"]["p95"].as_f64().unwrap() > 0.0);
    assert_eq!(snap["push"]["sent"], 0);
    assert!(snap["processResidentBytes"].as_u64().unwrap() > 0);
    let consultations = snap["consultations"].as_array().unwrap();
    assert_eq!(consultations.len(), 1);
    assert_eq!(consultations[0]["consultationId"], c.id.as_str());
    let client = consultations[0]["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["participantId"] == c.client_pid.as_str())
        .unwrap();
    assert_eq!(client["role"], "client");
    assert_eq!(client["quality"]["candidateType"], "srflx");
    assert_eq!(snap["bandwidthKbps"], 2400.0);

    for (who, role) in [("s-lawyer", Role::Lawyer), ("s-client", Role::Client)] {
        let (status, body) = app
            .call(
                Method::GET,
                "/api/v1/performance/metrics",
                &token(who, role),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    }
    let response = app
        .http
        .get(app.url("/api/v1/performance/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_tests_from_the_api_are_bounded_and_one_at_a_time() {
    let app = spawn_app_with(Backend::Sqlite, |s| s.metrics.load_tests = true).await;
    let admin = token("lt-admin", Role::Admin);
    let path = "/api/v1/performance/load-tests";
    let (status, _) = app.call(Method::GET, path, &admin, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "none yet");
    let small = json!({
        "participants": 4, "roomSize": 2, "rampUp": "200ms", "duration": "2s",
        "messageInterval": "200ms", "joinInterval": "50ms"
    });
    for (body, field) in [
        (
            json!({"participants": 100_000, "rampUp": "1s", "duration": "1s", "messageInterval": "1s", "joinInterval": "1s"}),
            "participants",
        ),
        (
            json!({"participants": 10, "rampUp": "1s", "duration": "2h", "messageInterval": "1s", "joinInterval": "1s"}),
            "duration",
        ),
        (
            json!({"participants": 10, "rampUp": "1s", "duration": "1s", "messageInterval": "1ms", "joinInterval": "1s"}),
            "messageInterval",
        ),
        (
            json!({"participants": 10, "roomSize": 50, "rampUp": "1s", "duration": "1s", "messageInterval": "1s", "joinInterval": "1s"}),
            "roomSize",
        ),
    ] {
        let (status, err) = app.call(Method::POST, path, &admin, Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
        assert!(
            err["error"]["message"].as_str().unwrap().contains(field),
            "{err}"
        );
    }
    let (status, err) = app
        .call(
            Method::POST,
            path,
            &admin,
            Some(json!({"participants": "many"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    let (status, _) = app
        .call(
            Method::POST,
            path,
            &token("lt-lawyer", Role::Lawyer),
            Some(small.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, started) = app
        .call(Method::POST, path, &admin, Some(small.clone()))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    assert_eq!(started["state"], "running");
    let (status, err) = app
        .call(Method::POST, path, &admin, Some(small.clone()))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");

    let mut last = Value::Null;
    for _ in 0..200 {
        let (status, body) = app.call(Method::GET, path, &admin, None).await;
        assert_eq!(status, StatusCode::OK);
        last = body;
        if last["state"] == "finished" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(last["state"], "finished", "{last}");
    let report = &last["report"];
    assert_eq!(report["errorCount"], 0, "{report}");
    assert_eq!(report["joined"], 4, "{report}");
    assert!(report["signalsReceived"].as_u64().unwrap() > 4, "{report}");
    assert_eq!(report["signalsReceived"], report["signalsSent"]);
    assert!(report["qualityReports"].as_u64().unwrap() >= 4, "{report}");
    // The test went through the real server: its counters moved.
    let (_, snap) = app
        .call(Method::GET, "/api/v1/performance/metrics", &admin, None)
        .await;
    assert_eq!(snap["signaling"]["joins"], 4, "{snap}");
    // Finished: another may start.
    let (status, _) = app.call(Method::POST, path, &admin, Some(small)).await;
    assert_eq!(status, StatusCode::ACCEPTED);

    let off = spawn_app(Backend::Sqlite).await;
    let (status, err) = off
        .call(
            Method::POST,
            path,
            &admin,
            Some(json!({"participants": 2, "rampUp": "0s", "duration": "1s", "messageInterval": "1s", "joinInterval": "0s"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{err}");
}

#[tokio::test]
async fn the_dashboard_is_served_with_a_strict_policy() {
    let app = spawn_app(Backend::Sqlite).await;
    for (path, kind, needle) in [
        ("/dashboard", "text/html", "Admin token"),
        (
            "/dashboard/app.js",
            "text/javascript",
            "/api/v1/performance/metrics",
        ),
        ("/dashboard/app.css", "text/css", "canvas"),
    ] {
        let response = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers().clone();
        assert!(headers["content-type"].to_str().unwrap().starts_with(kind));
        assert!(
            headers["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("script-src 'self'")
        );
        assert!(response.text().await.unwrap().contains(needle), "{path}");
    }
}
