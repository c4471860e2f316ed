//! Three nodes behind HAProxy, configured by `deploy/haproxy/haproxy.cfg` exactly as shipped
//! (addresses from the environment), on PostgreSQL and Redis: a long-polling client and a
//! WebSocket lawyer hold a call across two nodes through the balancer (stickiness by cookie),
//! then the client's node drains (`shutdown_drain`: `/readyz` 503) and both resume through the
//! balancer on the nodes still in rotation. First, a lawyer and a client that name their
//! consultation in the connection's query (as the SDK does) land on one node and stay on it.
//! Scenario: `tests/node/load-balancer.mjs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use wakili_core::Role;
use wakili_db::Backend;
use wakili_testkit::{
    db::TestDatabase,
    haproxy::{self, Balancer},
};

const LAWYER: &str = "lb-lawyer";
const CLIENT: &str = "lb-client";
/// Longer than HAProxy needs to take a failing node out (2 checks 2 s apart) plus the resume
/// phase, so that nobody reaching the draining node could be explained by it being gone.
const DRAIN: Duration = Duration::from_secs(12);

/// One phase of `tests/node/load-balancer.mjs`; its output.
async fn scenario(input: &Value) -> String {
    let limit = Duration::from_secs(60);
    run_node("load-balancer.mjs", input, "socket.io-client", &[], limit).await
}

fn result_line(stdout: &str) -> Value {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("no RESULT line in:\n{stdout}"));
    serde_json::from_str(line).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_behind_haproxy_hold_a_call_and_move_it_off_a_draining_node() {
    let redis = std::env::var("WAKILI_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let db = TestDatabase::new(Backend::Postgres).await;
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(Some(
            spawn_node_with(&db.url, |s| {
                s.signaling.redis_url = Some(redis.clone());
                s.signaling.resume_grace = Duration::from_secs(60);
                s.shutdown_drain = DRAIN;
            })
            .await,
        ));
    }
    let urls: Vec<String> = nodes.iter().map(|n| n.as_ref().unwrap().url("")).collect();

    let addr = |i: usize| urls[i].trim_start_matches("http://").to_owned();
    let balancer = Balancer::start([&addr(0), &addr(1), &addr(2)]).await;
    let lb = balancer.url().to_owned();
    let http = reqwest::Client::new();

    let book = async |hour: u32| -> Value {
        http.post(format!("{lb}/api/v1/consultations"))
            .bearer_auth(token(LAWYER, Role::Lawyer))
            .json(&json!({"clientId": CLIENT, "scheduledAt": day(1, hour), "durationMinutes": 30}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    };
    let booked = book(10).await;
    let affinity = book(11).await;
    let mut input = json!({
        "phase": "affinity",
        "url": lb,
        "lb": lb,
        "nodes": urls,
        "consultationId": booked["id"],
        "affinityId": affinity["id"],
        "tokens": {"lawyer": token(LAWYER, Role::Lawyer), "client": token(CLIENT, Role::Client)},
    });
    scenario(&input).await;
    input = json!({
        "phase": "call",
        "url": lb,
        "lb": lb,
        "nodes": urls,
        "consultationId": booked["id"],
        "tokens": {"lawyer": token(LAWYER, Role::Lawyer), "client": token(CLIENT, Role::Client)},
    });
    let call = result_line(&scenario(&input).await);

    // The client's node stops as systemd stops it: it drains first.
    let draining = call["clientNode"].as_u64().unwrap() as usize;
    let node = nodes[draining].take().unwrap();
    let stopping = tokio::spawn(node.stop());
    // HAProxy takes it out after two failed checks 2 s apart.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let readyz = http
        .get(format!("{}/readyz", urls[draining]))
        .send()
        .await
        .unwrap();
    assert_eq!(readyz.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    input["phase"] = json!("resume");
    input["previous"] = call;
    scenario(&input).await;
    assert!(
        !stopping.is_finished(),
        "the drained node was still up during the resume: the balancer, not a refused connection, moved the clients"
    );
    stopping.await.unwrap().unwrap();
    for node in nodes.into_iter().flatten() {
        node.stop().await.unwrap();
    }
    drop(balancer);
}

/// Runs `program args` in `deploy/` with `env`; panics with its output unless it succeeds.
fn check(program: &str, args: &[&str], env: &[(&str, &str)]) {
    let output = std::process::Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(repo_dir().join("deploy"))
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {program} (scripts/install-test-tools installs it): {e}")
        });
    assert!(
        output.status.success(),
        "{program} {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_deploy_examples_check_out_and_every_alert_fires_on_its_situation() {
    check(
        haproxy::binary(),
        &["-c", "-f", "haproxy/haproxy.cfg"],
        &[
            ("WAKILI_LB_BIND", "127.0.0.1:8000"),
            ("WAKILI_NODE1", "10.0.0.11:8080"),
            ("WAKILI_NODE2", "10.0.0.12:8080"),
            ("WAKILI_NODE3", "10.0.0.13:8080"),
        ],
    );
    check(
        "promtool",
        &["check", "config", "prometheus/prometheus.yml"],
        &[],
    );
    check(
        "promtool",
        &["check", "rules", "prometheus/wakili-alerts.yml"],
        &[],
    );
    // Each alert fires on the situation it names and stays quiet before it.
    check(
        "promtool",
        &["test", "rules", "prometheus/wakili-alerts.test.yml"],
        &[],
    );
}
