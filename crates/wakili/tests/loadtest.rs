//! `wakili loadtest` against the real `wakili serve` binary: a CI-sized run from this process
//! ends with every participant joined, every signal delivered and no errors; the table output;
//! the admin-token mode that has the server run the test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

fn secret_file(dir: &std::path::Path) -> String {
    dir.join("data/secrets/jwt-hs256.key")
        .to_string_lossy()
        .into_owned()
}

#[test]
fn a_ci_sized_load_test_ends_with_zero_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let output = run(wakili(dir.path()).args([
        "loadtest",
        "--url",
        &server.base,
        "--participants",
        "200",
        "--ramp-up",
        "4s",
        "--duration",
        "4s",
        "--message-interval",
        "500ms",
        "--join-interval",
        "100ms",
        "--token-secret-file",
        &secret_file(dir.path()),
        "--json",
    ]));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("joined"),
        "progress lines on stderr: {stderr}"
    );
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    eprintln!("{report:#}");
    assert_eq!(report["errorCount"], 0, "{report}");
    assert_eq!(report["participants"], 200);
    assert_eq!(report["rooms"], 100);
    assert_eq!(report["joined"], 200, "{report}");
    let sent = report["signalsSent"].as_u64().unwrap();
    // Offer + answer per room, then a candidate each way every 500 ms for ~4 s.
    assert!(sent >= 100 * 2 + 200 * 4, "{report}");
    assert_eq!(report["signalsReceived"].as_u64().unwrap(), sent);
    assert!(
        report["qualityReports"].as_u64().unwrap() >= 200 * 4,
        "{report}"
    );
    assert!(report["joinMs"]["p99"].as_f64().unwrap() > 0.0);
    assert!(report["signalMs"]["count"].as_u64().unwrap() == sent);
    assert!(report["messagesPerS"].as_f64().unwrap() > 100.0, "{report}");
    assert!(report["joinsPerS"].as_f64().unwrap() > 10.0, "{report}");

    // The table, on a small run.
    let output = run(wakili(dir.path()).args([
        "loadtest",
        "--url",
        &server.base,
        "--participants",
        "4",
        "--ramp-up",
        "0s",
        "--duration",
        "1s",
        "--join-interval",
        "0s",
        "--token-secret-file",
        &secret_file(dir.path()),
    ]));
    let table = stdout(&output);
    for row in [
        "joins/s",
        "join latency",
        "signal latency",
        "messages/s",
        "errors",
    ] {
        assert!(table.contains(row), "{row} in\n{table}");
    }
}

#[test]
fn failures_are_counted_by_kind_and_fail_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let output = run(wakili(dir.path()).args([
        "loadtest",
        "--url",
        &server.base,
        "--participants",
        "2",
        "--ramp-up",
        "0s",
        "--duration",
        "1s",
        "--token-secret",
        "not-the-servers-secret-not-the-servers-secret",
        "--json",
    ]));
    assert!(!output.status.success());
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["errors"]["booking:401"], 2, "{report}");
    assert_eq!(report["joined"], 0);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("2 failures"), "{stderr}");
}

#[test]
fn with_an_admin_token_the_server_runs_the_test() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_env(dir.path(), &[], &[("WAKILI_METRICS__LOAD_TESTS", "true")]);
    let admin = token(dir.path(), "ops-admin", "admin");
    let output = run(wakili(dir.path()).args([
        "loadtest",
        "--url",
        &server.base,
        "--participants",
        "20",
        "--ramp-up",
        "1s",
        "--duration",
        "2s",
        "--message-interval",
        "200ms",
        "--join-interval",
        "50ms",
        "--admin-token",
        &admin,
        "--json",
    ]));
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(report["errorCount"], 0, "{report}");
    assert_eq!(report["joined"], 20, "{report}");
    assert!(report["signalsReceived"].as_u64().unwrap() > 20);
}
