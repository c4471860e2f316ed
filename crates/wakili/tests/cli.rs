//! The `wakili` binary as a newcomer and an operator use it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};

mod common;
use common::{Server, run, stdout, token, wakili};
use wakili_testkit::server::metric_at;

async fn post(base: &str, token: &str, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{base}/api/v1/consultations"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

fn booking() -> Value {
    let at = chrono::Utc::now() + chrono::Duration::days(3);
    json!({"clientId": "c1", "scheduledAt": at, "durationMinutes": 45})
}

#[tokio::test]
async fn serve_runs_on_embedded_defaults() {
    let cwd = tempfile::tempdir().unwrap();
    let server = Server::start(cwd.path(), &[]);
    let health = reqwest::get(format!("{}/healthz", server.base))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let ready: Value = reqwest::get(format!("{}/readyz", server.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["database"], "sqlite");

    // Everything lives under ./data, created on first start; the secret is private to the owner.
    let data = cwd.path().join("data");
    assert!(data.join("wakili.db").is_file());
    assert!(data.join("recordings").is_dir());
    let key = data.join("secrets/jwt-hs256.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let secret = std::fs::read_to_string(&key).unwrap();

    // `wakili token` signs with that secret: a lawyer books, a client may not.
    let lawyer = token(cwd.path(), "l1", "lawyer");
    let (status, body) = post(&server.base, &lawyer, booking()).await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = post(&server.base, &token(cwd.path(), "c1", "client"), booking()).await;
    assert_eq!(status, 403);

    let (status, printed) = server.terminate();
    assert!(status.success(), "clean exit on SIGTERM: {status}");
    assert!(
        !printed.join("\n").contains(secret.trim()),
        "the secret is never printed"
    );

    // A restart reuses the generated secret: earlier tokens still work.
    let server = Server::start(cwd.path(), &[]);
    let (status, body) = post(&server.base, &lawyer, booking()).await;
    assert_eq!(status, 201, "{body}");
    server.terminate();
}

/// `worker_threads` sizes the runtime (three nodes sharing two cores run one thread each);
/// unset, it has one per core.
#[tokio::test]
async fn worker_threads_size_the_runtime() {
    async fn workers(server: &Server) -> Option<f64> {
        metric_at(&server.base, "wakili_runtime_worker_threads").await
    }
    let cwd = tempfile::tempdir().unwrap();
    let server = Server::start_with_env(cwd.path(), &[], &[("WAKILI_WORKER_THREADS", "3")]);
    assert_eq!(workers(&server).await, Some(3.0));
    server.terminate();
    let server = Server::start(cwd.path(), &[]);
    let cores = std::thread::available_parallelism().unwrap().get();
    assert_eq!(workers(&server).await, Some(cores as f64));
    server.terminate();
}

/// Transparent huge pages are off in the server (a join storm cost about 30 % more CPU with
/// them), unless mimalloc's own option is set.
#[tokio::test]
async fn the_server_runs_without_transparent_huge_pages() {
    let cwd = tempfile::tempdir().unwrap();
    let server = Server::start(cwd.path(), &[]);
    assert_eq!(server.status_field("THP_enabled").as_deref(), Some("0"));
    server.terminate();
    let server = Server::start_with_env(cwd.path(), &[], &[("MIMALLOC_ALLOW_THP", "1")]);
    assert_eq!(server.status_field("THP_enabled").as_deref(), Some("1"));
    server.terminate();
}

#[tokio::test]
async fn json_logs_carry_request_fields() {
    let cwd = tempfile::tempdir().unwrap();
    let server = Server::start(cwd.path(), &["--log-format", "json"]);
    let lawyer = token(cwd.path(), "lawyer-7", "lawyer");
    let (status, _) = post(&server.base, &lawyer, booking()).await;
    assert_eq!(status, 201);
    let (_, lines) = server.terminate();
    let records: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let booked = records
        .iter()
        .find(|r| r["fields"]["message"] == "consultation booked")
        .unwrap_or_else(|| panic!("no booking log in {lines:#?}"));
    let span = &booked["span"];
    assert_eq!(span["user_id"], "lawyer-7");
    assert!(
        span["request_id"].as_str().is_some_and(|id| id.len() == 36),
        "{booked}"
    );
    assert!(span["consultation_id"].is_string(), "{booked}");
    assert!(
        !lines.join("\n").contains(&lawyer),
        "tokens are never logged"
    );
}

#[test]
fn config_masks_secrets_and_prints_the_default_file() {
    let cwd = tempfile::tempdir().unwrap();
    let secret = "a-very-long-shared-secret-for-hs256-tokens";
    let printed = stdout(&run(wakili(cwd.path())
        .arg("config")
        .env("WAKILI_AUTH__SECRET", secret)
        .env(
            "WAKILI_DATABASE_URL",
            "postgres://wakili:pg-password@db.internal/wakili",
        )));
    assert!(
        !printed.contains(secret) && !printed.contains("pg-password"),
        "{printed}"
    );
    assert!(printed.contains("secret = \"********\""), "{printed}");
    assert!(
        printed.contains("postgres://wakili:********@db.internal/wakili"),
        "{printed}"
    );

    let default = stdout(&run(wakili(cwd.path()).args(["config", "--default"])));
    assert!(default.contains("listen = \"127.0.0.1:8080\""));
    // The printed default file is a working configuration file.
    std::fs::write(
        cwd.path().join("custom.toml"),
        default.replace("8080", "9999"),
    )
    .unwrap();
    let effective = stdout(&run(wakili(cwd.path()).args([
        "--config",
        "custom.toml",
        "config",
    ])));
    assert!(
        effective.contains("listen = \"127.0.0.1:9999\""),
        "{effective}"
    );
    // A flag beats the file.
    let effective = stdout(&run(wakili(cwd.path()).args([
        "--config",
        "custom.toml",
        "--data-dir",
        "/srv/w",
        "config",
    ])));
    assert!(effective.contains("data_dir = \"/srv/w\""), "{effective}");
}

#[test]
fn mistakes_are_named_with_their_fix() {
    let cwd = tempfile::tempdir().unwrap();
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec!["config"],
            vec![("WAKILI_LISTEN", "nonsense")],
            "LISTEN",
        ),
        (
            vec!["config"],
            vec![("WAKILI_AUTH__ALGORITHM", "RS256")],
            "auth.public_key_file: required",
        ),
        (
            vec!["config"],
            vec![("WAKILI_AUTH__SECRET", "short")],
            "openssl rand",
        ),
        (
            vec!["config"],
            vec![("WAKILI_DATABSE_URL", "x")],
            "databse_url",
        ),
        (
            vec!["config"],
            vec![("WAKILI_TURN__LISTEN", "0.0.0.0:3478")],
            "turn.external_ip: required",
        ),
        (
            vec!["config"],
            vec![("WAKILI_TURN__ENABLED", "false")],
            "ice.turn_servers",
        ),
        (
            vec!["config"],
            vec![("WAKILI_MEDIA__DEFAULT_PROFILE", "ultra")],
            "media.default_profile",
        ),
        (
            vec!["config"],
            vec![("WAKILI_WORKER_THREADS", "5000")],
            "worker_threads",
        ),
        (
            vec!["--config", "missing.toml", "config"],
            vec![],
            "missing.toml",
        ),
        (
            vec!["token", "--sub", "u1", "--role", "root"],
            vec![],
            "--role",
        ),
        (
            vec!["token", "--sub", "u 1", "--role", "client"],
            vec![],
            "--sub",
        ),
        (
            vec!["token", "--sub", "u1", "--role", "client", "--ttl", "90d"],
            vec![],
            "--ttl",
        ),
    ];
    for (args, env, needle) in cases {
        let output = run(wakili(cwd.path()).args(&args).envs(env.clone()));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} {env:?} should fail");
        assert!(stderr.contains(needle), "{args:?} {env:?}: {stderr}");
    }
}

#[test]
fn migrate_prepares_a_fresh_database() {
    let cwd = tempfile::tempdir().unwrap();
    let printed = stdout(&run(wakili(cwd.path()).args([
        "migrate",
        "--data-dir",
        "state",
    ])));
    assert!(printed.contains("sqlite://state/wakili.db"), "{printed}");
    assert!(cwd.path().join("state/wakili.db").is_file());
    // Idempotent.
    stdout(&run(wakili(cwd.path()).args([
        "migrate",
        "--data-dir",
        "state",
    ])));
}
