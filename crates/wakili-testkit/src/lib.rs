//! Wakili's test kit: launchers and stand-ins for the services Wakili talks to, for tests and
//! benchmarks only. No product crate depends on it (the release `wakili` binary cannot link it:
//! `cargo tree -p wakili -e normal` does not show it); only dev-dependencies and `wakili-bench`
//! do.
//!
//! - [`server`] (feature `server`): the real Wakili server on port 0 over a throw-away database,
//!   with test tokens, optionally on a clock the test moves; `wakili-server`'s integration tests
//!   start every server through it.
//! - [`s3`]: a real S3 API (`s3s-fs` over a temporary directory, checking SigV4) to store
//!   recordings in, that a test can stop, resume and freeze.
//! - [`fcm`]: a faithful local Firebase Cloud Messaging (HTTP v1 send and OAuth2 token
//!   endpoints).
//! - [`clock`]: a clock the test moves by hand, given to the server as its `Clock`.
//! - [`db`]: a throw-away SQLite or PostgreSQL database per test.
//! - [`haproxy`] (feature `server`): HAProxy with the shipped `deploy/haproxy/haproxy.cfg` in
//!   front of three nodes.
//! - [`receiver`] (feature `server`): the platform's webhook receiver, verifying signatures
//!   with the npm `standardwebhooks` package.
//! - [`webrtc`] (feature `webrtc`): a str0m "browser" that publishes synthetic VP8 simulcast and
//!   Opus to the SFU and records what it receives.
//!
//! The `server` feature is off by default, so the crates the server is built from (and
//! `wakili-bench`) can use the rest of the kit without compiling the server.

pub mod clock;
pub mod db;
pub mod fcm;
#[cfg(feature = "server")]
pub mod haproxy;
pub mod probe;
#[cfg(feature = "server")]
pub mod receiver;
pub mod s3;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "webrtc")]
pub mod webrtc;
