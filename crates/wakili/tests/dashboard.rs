//! The dashboard in headless Chromium against the real binary: `tests/node/dashboard.mjs`
//! (playwright-core, Debian's chromium) loads it with an admin token, starts a load test from its
//! form and checks that the live numbers, the charts and the consultation list move, then saves
//! a screenshot under `<target>/test-artifacts/dashboard.png`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{path::PathBuf, process::Stdio, time::Duration};

use common::*;

fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"),
        PathBuf::from,
    );
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_dashboard_shows_live_numbers_while_a_load_test_runs() {
    let node_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/node");
    // The npm workspace installs its packages at the repository root.
    let node_modules = node_dir.join("../../node_modules");
    assert!(
        node_modules.join("playwright-core").is_dir(),
        "playwright-core is not installed in {}: run scripts/install-test-tools",
        node_modules.display()
    );
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "chromium is missing: run scripts/install-test-tools"
    );
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_env(dir.path(), &[], &[("WAKILI_METRICS__LOAD_TESTS", "true")]);
    let admin = token(dir.path(), "dashboard-admin", "admin");
    let screenshot = artifacts_dir().join("dashboard.png");
    let _ = std::fs::remove_file(&screenshot);
    let mut child = std::process::Command::new("node")
        .arg("dashboard.mjs")
        .current_dir(&node_dir)
        .env("WAKILI_BASE", &server.base)
        .env("WAKILI_ADMIN_TOKEN", &admin)
        .env("WAKILI_SCREENSHOT", &screenshot)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node (Node.js 18+) on PATH");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("dashboard.mjs did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "dashboard.mjs failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    eprint!("{stdout}");
    let size = std::fs::metadata(&screenshot).unwrap().len();
    assert!(size > 20_000, "screenshot of {size} bytes");
    eprintln!("dashboard screenshot: {}", screenshot.display());
}
