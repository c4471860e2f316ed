//! What every test binary of this crate shares: the server launcher and test tokens of
//! `wakili_testkit::server`, and running the Node scenario scripts under `tests/node`.

#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used)]

pub mod media;

use std::time::Duration;

use serde_json::Value;

pub use wakili_testkit::server::{
    Launch, SECRET, TURN_SECRET, TestApp, TestServer, day, error_code, metric_at, read, spawn_app,
    spawn_app_with, spawn_node_with, token, token_at,
};

/// Another node of the same deployment (what [`spawn_node_with`] starts).
pub type TestNode = TestServer;

/// `tests/node`, where the scenario scripts live.
pub fn node_dir() -> std::path::PathBuf {
    repo_dir().join("tests/node")
}

/// The repository root: its `node_modules` holds the npm workspace's packages (`tests/node` and
/// `sdk`), installed by `npm ci` there (`scripts/install-test-tools`).
pub fn repo_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Panics with the fix unless the npm `package` is installed in the workspace.
pub fn require_npm_package(package: &str) {
    let dir = repo_dir().join("node_modules");
    assert!(
        dir.join(package).is_dir(),
        "{package} is not installed in {}: run scripts/install-test-tools (npm ci at the repository root)",
        dir.display()
    );
}

/// Runs `tests/node/<script>` with `input` in the file `WAKILI_TEST_FILE` names (and `env`);
/// panics with its output unless it exits 0 within `timeout`; returns its stdout. `package` is
/// the npm package the script needs, checked first for a clear message.
pub async fn run_node(
    script: &str,
    input: &Value,
    package: &str,
    env: &[(&str, &str)],
    timeout: Duration,
) -> String {
    let dir = node_dir();
    require_npm_package(package);
    // In a file: a storm's tokens exceed what one environment variable may hold.
    let inputs = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(inputs.path(), input.to_string()).unwrap();
    let mut command = tokio::process::Command::new("node");
    command
        .arg(script)
        .current_dir(&dir)
        .env("WAKILI_TEST_FILE", inputs.path())
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = match tokio::time::timeout(timeout, command.output()).await {
        Err(_) => panic!("node {script} did not finish within {timeout:?} (killed)"),
        Ok(Err(e)) => panic!("cannot run `node {script}` (Node.js 18+ must be on PATH): {e}"),
        Ok(Ok(output)) => output,
    };
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "node {script} failed ({})\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    eprint!("{stdout}");
    stdout
}

/// Runs the playwright script `tests/node/<script>` in Debian's Chromium with `input` and returns
/// what it printed on its `RESULT ` line, parsed.
pub async fn run_browser_script(script: &str, input: &Value, timeout: Duration) -> Value {
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "Debian's chromium is needed (scripts/install-test-tools installs it)"
    );
    let stdout = run_node(
        script,
        input,
        "playwright-core",
        &[("WAKILI_TEST_VERBOSE", "1")],
        timeout,
    )
    .await;
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .expect("the script prints RESULT");
    serde_json::from_str(line).unwrap()
}
