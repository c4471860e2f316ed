//! Wakili's test kit: stand-ins for the services Wakili talks to that have no local equivalent,
//! for tests and benchmarks only. No product crate depends on it (the release `wakili` binary
//! cannot link it); only dev-dependencies and `wakili-bench` do.
//!
//! - [`fcm`]: a faithful local Firebase Cloud Messaging (HTTP v1 send and OAuth2 token
//!   endpoints).
//! - [`clock`]: a clock the test moves by hand, given to the server as its `Clock`.
//! - [`db`]: a throw-away SQLite or PostgreSQL database per test.

pub mod clock;
pub mod db;
pub mod fcm;
