//! Builds the web client and the dashboard (`web/`: TypeScript on the SDK, bundled by esbuild)
//! into `OUT_DIR/web`, where `routes/web.rs` and `routes/dashboard.rs` embed them from. So a plain
//! `cargo build` (or `cargo run -- serve`) always serves a bundle made from the sources it was
//! built with: Cargo runs this again whenever `web/`, `sdk/src/` or the npm lock file change.
//!
//! Needs Node.js 20.19+ with npm; installs the npm workspace (`npm ci`) first when it is missing
//! or older than the lock file.

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::Command,
};

fn main() {
    let manifest =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest.join("../..");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("web");
    for watched in [
        "web/src",
        "web/pages",
        "web/scripts",
        "web/package.json",
        "sdk/src",
        "package-lock.json",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    if needs_install(&root) {
        run(
            &root,
            "npm",
            &["ci", "--no-audit", "--no-fund", "--loglevel=error"],
        );
    }
    let script = root.join("web/scripts/build.mjs");
    let out_arg = out.to_string_lossy().into_owned();
    run(
        &root,
        "node",
        &[&script.to_string_lossy(), "--outdir", &out_arg],
    );
}

/// Whether `node_modules` is missing or older than the lock file (npm rewrites its own copy of
/// the lock, `node_modules/.package-lock.json`, on every install).
fn needs_install(root: &Path) -> bool {
    let modified = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
    match (
        modified(&root.join("node_modules/.package-lock.json")),
        modified(&root.join("package-lock.json")),
    ) {
        (Some(installed), Some(lock)) => installed < lock,
        _ => true,
    }
}

fn run(root: &Path, program: &str, args: &[&str]) {
    let status = Command::new(program).args(args).current_dir(root).status();
    match status {
        Ok(status) if status.success() => {}
        Ok(status) => panic!(
            "building the web client: `{program} {}` failed ({status}); see its output above",
            args.join(" ")
        ),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => panic!(
            "building the web client needs Node.js 20.19 or later with npm, and `{program}` was \
             not found. Install them (Debian: `apt-get install nodejs npm`, or from \
             https://nodejs.org), then build again."
        ),
        Err(error) => panic!("building the web client: cannot run `{program}`: {error}"),
    }
}
