//! A lean Socket.IO client for Wakili signaling (docs/signaling.md), used by integration tests,
//! `wakili-bench signal` and the load tester.
//!
//! It speaks Engine.IO v4 / Socket.IO v5 over WebSocket only
//! (`ws://host:port/socket.io/?EIO=4&transport=websocket`), namespace `/`, with the JWT as the
//! CONNECT auth payload `{"token": …}`:
//!
//! ```no_run
//! # async fn demo(token: &str) -> Result<(), wakili_client::ClientError> {
//! use std::time::Duration;
//! use wakili_client::Client;
//!
//! let (client, mut events) = Client::connect("http://127.0.0.1:8080", token).await?;
//! let joined = client
//!     .call_ok("consultation:join", &serde_json::json!({"consultationId": "c1"}))
//!     .await?;
//! println!("I am {}", joined["participantId"]);
//! let signal = events.wait_for("signal", Duration::from_secs(5)).await?;
//! println!("{} says {}", signal.name, signal.data);
//! client.close().await;
//! # Ok(()) }
//! ```
//!
//! # Tokens that expire during a call
//!
//! The server closes a connection when its token expires, after warning it with
//! `auth:expiring`. Give [`Config::token_source`] and the client answers the warning with
//! `auth:refresh` and a new token by itself; [`Client::refresh_token`] does it by hand.
//!
//! # Why the framing is written here
//!
//! The protocol subset a Wakili client needs is small (open, ping/pong, CONNECT, EVENT, ACK,
//! CONNECT_ERROR, DISCONNECT: a couple of hundred lines, see [Framing](#framing)), and the benchmark
//! holds ~18,000 connections on two cores shared with the server, so per-connection memory and
//! CPU must be minimal. `rust_socketio` 0.6 (the common Rust Socket.IO client) was read,
//! not measured, and did not fit:
//! - its async acknowledgements are callbacks, not awaitable answers, with ids drawn at random
//!   from 0..999, so two calls in flight on one connection can collide;
//! - every event is parsed whole into `serde_json::Value`, and callbacks run while the client's
//!   builder is write-locked, behind several `RwLock`s per message;
//! - reconnection machinery, a polling-first handshake by default, and `native-tls` come with
//!   every connection or build.
//!
//! This client instead keeps payloads unparsed ([`RawValue`]),
//! writes frames from the sending task (no writer task or channel), runs one reader task per
//! connection, and shrinks tungstenite's buffers (128 KiB read buffer by default → 4 KiB).
//! Measured in `wakili-bench signal`: 18,000 joined connections took 177–181 MiB in the load
//! generator (about 10 KiB each, everything included), and relaying 50,000 signals/s cost the
//! generator about 0.6 of a core for sending and receiving them.
//!
//! # Framing
//!
//! Parsing and encoding are sans-IO functions in a private module, unit-tested on their own.
//! Binary packets and namespaces other than `/` are ignored; TLS is not supported (connect to
//! the plain listener, as the tests and benchmarks do).

mod client;
mod endpoint;
mod error;
mod frame;
pub mod histogram;

pub use client::{Client, Config, Events, Incoming, TokenSource, check_ok};
pub use error::ClientError;
pub use serde_json::value::RawValue;
