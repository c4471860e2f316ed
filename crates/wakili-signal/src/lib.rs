//! Wakili's signaling: consultation rooms over Socket.IO, on one node (rooms in memory) or many
//! (rooms in Redis, deliveries through the socketioxide Redis adapter).
//!
//! - [`protocol`]: reading and checking client events, ack shapes (sans-IO).
//! - [`limiter`]: the per-connection rate limit (sans-IO).
//! - [`limits`]: connections per user (sans-IO).
//! - [`expiry`]: a connection lives as long as its token; `auth:refresh` (sans-IO).
//! - [`RoomStore`]: where room state lives, with optimistic concurrency.
//! - [`start`]: the Socket.IO service and the [`Signaling`] handle the REST side uses.
//!
//! The room rules themselves (waiting room, resume, consent) are `wakili_core::room`.

pub mod expiry;
mod hub;
pub mod limiter;
pub mod limits;
pub mod protocol;
mod store;
pub mod telemetry;

pub use hub::{
    Deps, PresenceChange, PresenceObserver, ServerRecorder, SignalLayer, Signaling, Stores, start,
};
pub use store::{RoomStore, SignalError};
pub use telemetry::Telemetry;
