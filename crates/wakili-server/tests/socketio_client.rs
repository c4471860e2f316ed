#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The signaling protocol of `docs/signaling.md`, spoken by the official `socket.io-client` from
//! npm (pinned in the workspace's `package-lock.json`) against the real server: each test starts the
//! server, books a consultation, mints tokens and runs one scenario script of `tests/node/` with
//! its inputs as JSON in `WAKILI_TEST`. The script exits 0 when every check held. Needs Node.js
//! 20+ and `npm ci` at the repository root (`scripts/install-test-tools` does it); two nodes also need
//! PostgreSQL and Redis (`scripts/services`).

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use wakili_auth::{Minter, TokenRequest};
use wakili_core::{Role, UserId};
use wakili_db::Backend;
use wakili_settings::{Admission, Settings};

/// Longer than any script's own watchdog, which reports what it was waiting for.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(150);

const LAWYER: &str = "lawyer-1";
const CLIENT: &str = "client-1";

/// Runs `tests/node/<script>`; panics with its output unless it exits 0.
async fn run_script(script: &str, input: &Value) {
    run_node(script, input, "socket.io-client", &[], SCRIPT_TIMEOUT).await;
}

/// A token for `sub` signed with a key the server does not trust.
fn foreign_token(sub: &str, role: Role) -> String {
    Minter::hs256(b"another-secret-another-secret-another-secret-0123")
        .unwrap()
        .mint(
            &TokenRequest {
                user_id: UserId::parse(sub).unwrap(),
                role,
                name: format!("{sub} name"),
                ttl: Duration::from_secs(3600),
            },
            chrono::Utc::now(),
        )
        .unwrap()
}

/// Tokens for every part a scenario may play.
fn tokens() -> Value {
    let two_hours_ago = chrono::Utc::now() - chrono::Duration::hours(2);
    json!({
        "lawyer": token(LAWYER, Role::Lawyer),
        "client": token(CLIENT, Role::Client),
        "admin": token("admin-1", Role::Admin),
        "stranger": token("client-2", Role::Client),
        "strangerLawyer": token("lawyer-2", Role::Lawyer),
        "expired": token_at(CLIENT, Role::Client, two_hours_ago, Duration::from_secs(3600)),
        "badSignature": foreign_token(CLIENT, Role::Client),
        "garbage": "not-a-jwt",
    })
}

/// Books a consultation of `LAWYER` with `CLIENT` (tomorrow) and returns its id.
async fn book(app: &TestApp) -> String {
    let booked = app
        .book(&token(LAWYER, Role::Lawyer), CLIENT, &day(1, 10))
        .await;
    booked["id"].as_str().unwrap().to_owned()
}

/// A server configured by `configure`, one booked consultation, and the script's inputs.
async fn single_node(backend: Backend, configure: impl FnOnce(&mut Settings)) -> (TestApp, Value) {
    let app = spawn_app_with(backend, configure).await;
    let id = book(&app).await;
    let input = json!({
        "url": app.url(""),
        "consultationId": id,
        "unknownConsultationId": "01900000-0000-7000-8000-00000000dead",
        "tokens": tokens(),
        "users": {"lawyer": LAWYER, "client": CLIENT},
    });
    (app, input)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_call_relays_signals_intact_and_in_order_and_ends_for_everyone() {
    let (app, input) = single_node(Backend::Sqlite, |_| {}).await;
    run_script("call.mjs", &input).await;
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_before_the_lawyer_waits_and_is_admitted_when_the_lawyer_joins() {
    let (app, input) = single_node(Backend::Sqlite, |s| {
        s.signaling.admission = Admission::OnLawyerJoin;
    })
    .await;
    run_script("waiting-room.mjs", &input).await;
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_manual_admission_the_lawyer_admits_the_client() {
    let (app, input) = single_node(Backend::Sqlite, |s| {
        s.signaling.admission = Admission::Manual;
    })
    .await;
    run_script("manual-admission.mjs", &input).await;
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_client_resumes_within_the_grace_period_without_leaving() {
    let (app, input) = single_node(Backend::Sqlite, |s| {
        s.signaling.resume_grace = Duration::from_secs(30);
    })
    .await;
    run_script("resume.mjs", &input).await;
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_grace_period_a_dropped_client_has_left_and_its_token_is_spent() {
    let grace = Duration::from_secs(1);
    let (app, mut input) = single_node(Backend::Sqlite, |s| {
        s.signaling.resume_grace = grace;
    })
    .await;
    input["graceMs"] = json!(grace.as_secs() * 1000);
    run_script("resume-timeout.mjs", &input).await;
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_waits_for_consent_and_every_decision_is_audited() {
    let notice = "notice-for-tests-7";
    let (app, mut input) = single_node(Backend::Postgres, |s| {
        s.signaling.notice_version = notice.into();
    })
    .await;
    input["noticeVersion"] = json!(notice);
    run_script("consent.mjs", &input).await;
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_strangers_malformed_events_and_floods_are_refused_without_harm() {
    let max_packet_bytes = 128 * 1024;
    let (app, mut input) = single_node(Backend::Sqlite, |s| {
        s.signaling.rate_per_second = 50;
        s.signaling.rate_burst = 200;
        s.signaling.max_packet_bytes = max_packet_bytes;
    })
    .await;
    input["maxPacketBytes"] = json!(max_packet_bytes);
    let cancelled = book(&app).await;
    let (status, body) = app
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/consultations/{cancelled}/cancel"),
            &token(LAWYER, Role::Lawyer),
            None,
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    input["cancelledConsultationId"] = json!(cancelled);
    run_script("refusals.mjs", &input).await;
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_sharing_postgres_and_redis_run_one_call_and_resume_across_nodes() {
    let redis = std::env::var("WAKILI_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let shared = |s: &mut Settings| {
        s.signaling.redis_url = Some(redis.clone());
        s.signaling.resume_grace = Duration::from_secs(30);
    };
    let node1 = spawn_app_with(Backend::Postgres, shared).await;
    let node2 = spawn_node_with(&node1.db.url, shared).await;
    let id = book(&node1).await;
    let input = json!({
        "url": node1.url(""),
        "url2": node2.url(""),
        "consultationId": id,
        "tokens": tokens(),
        "users": {"lawyer": LAWYER, "client": CLIENT},
    });
    run_script("two-nodes.mjs", &input).await;
    node2.stop().await.unwrap();
    node1.stop().await.unwrap();
}

/// `wakili_room_redis_commands_total` of the node at `base`.
async fn room_commands(base: &str) -> f64 {
    metric_at(base, "wakili_room_redis_commands_total")
        .await
        .expect("wakili_room_redis_commands_total is exported")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_to_another_node_costs_one_redis_command_and_the_receiving_node_none() {
    let redis = std::env::var("WAKILI_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let shared = |s: &mut Settings| s.signaling.redis_url = Some(redis.clone());
    let node1 = spawn_app_with(Backend::Postgres, shared).await;
    let node2 = spawn_node_with(&node1.db.url, shared).await;
    let id = book(&node1).await;
    let (base1, base2) = (node1.url(""), node2.url(""));
    let join = async |base: &str, role, user| {
        let (socket, events) = wakili_client::Client::connect(base, &token(user, role))
            .await
            .unwrap();
        let ack = socket
            .call_ok("consultation:join", &json!({ "consultationId": id }))
            .await
            .unwrap();
        (
            socket,
            events,
            ack["participantId"].as_str().unwrap().to_owned(),
        )
    };
    // The client waits on node 2; the lawyer joins on node 1 and admits it.
    let (client, mut client_events, client_id) = join(&base2, Role::Client, CLIENT).await;
    let (lawyer, _lawyer_events, lawyer_id) = join(&base1, Role::Lawyer, LAWYER).await;
    client_events
        .wait_for("consultation:admitted", Duration::from_secs(5))
        .await
        .unwrap();
    // The first signal each way may read the room once (its last change may not have reached
    // this node's copy yet).
    let signal =
        |to: &str, seq: u32| json!({"to": to, "type": "candidate", "payload": {"seq": seq}});
    lawyer
        .call_ok("signal", &signal(&client_id, 0))
        .await
        .unwrap();
    client
        .call_ok("signal", &signal(&lawyer_id, 0))
        .await
        .unwrap();
    client_events
        .wait_for("signal", Duration::from_secs(5))
        .await
        .unwrap();
    let before = (room_commands(&base1).await, room_commands(&base2).await);
    const N: u32 = 50;
    for seq in 1..=N {
        lawyer
            .call_ok("signal", &signal(&client_id, seq))
            .await
            .unwrap();
    }
    for seq in 1..=N {
        let got = client_events
            .wait_for("signal", Duration::from_secs(5))
            .await
            .unwrap();
        let got: Value = serde_json::from_str(got.data.get()).unwrap();
        assert_eq!(got["payload"]["seq"], seq, "in order");
    }
    let after = (room_commands(&base1).await, room_commands(&base2).await);
    assert_eq!(
        after.0 - before.0,
        f64::from(N),
        "one PUBLISH per signal on the sender's node, no room read"
    );
    assert_eq!(after.1, before.1, "nothing on the receiving node");
    node2.stop().await.unwrap();
    node1.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_connections_per_second_joining_at_once_lose_no_join() {
    const PAIRS: usize = 750;
    // One lawyer holds all 750 lawyer connections.
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.signaling.max_sockets_per_user = 1000;
    })
    .await;
    let lawyer = token(LAWYER, Role::Lawyer);
    let mut pairs = Vec::with_capacity(PAIRS);
    for i in 0..PAIRS {
        let client = format!("storm-client-{i}");
        let booked = app.book(&lawyer, &client, &day(1, 10)).await;
        pairs.push(json!({
            "consultationId": booked["id"],
            "lawyer": lawyer,
            "client": token(&client, Role::Client),
        }));
    }
    let input = json!({ "url": app.url(""), "ratePerSecond": 1000, "pairs": pairs });
    run_script("join-storm.mjs", &input).await;
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_refreshes_its_expiring_token_stays_in_the_call() {
    // Client tokens of 8 s, warned 6 s before they expire.
    let (app, mut input) = single_node(Backend::Sqlite, |s| {
        s.signaling.expiry_warning = Duration::from_secs(6);
    })
    .await;
    let now = chrono::Utc::now();
    let short = Duration::from_secs(8);
    input["tokens"]["shortClient"] = json!(token_at(CLIENT, Role::Client, now, short));
    input["tokens"]["shortClientAgain"] = json!(token_at(CLIENT, Role::Client, now, short));
    input["tokens"]["longClient"] = json!(token(CLIENT, Role::Client));
    input["tokens"]["shortLawyerOtherUser"] = json!(token("lawyer-2", Role::Lawyer));
    run_script("token-refresh.mjs", &input).await;
    app.stop().await.unwrap();
}
