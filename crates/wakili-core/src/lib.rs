//! Sans-IO domain logic for Wakili.
//!
//! Nothing in this crate reads the clock, touches a socket or a file: callers pass `now` in and get
//! decisions out, so every rule here is unit-tested at simulated speed. [`Clock`] is the type the
//! services around it read "now" from.

#[macro_use]
mod names;
pub mod audit_chain;
pub mod clock;
pub mod consultation;
pub mod delivery;
mod error;
pub mod guest;
pub mod ids;
pub mod json;
pub mod media;
pub mod model;
pub mod net;
pub mod notification;
pub mod notify;
pub mod page;
pub mod quality;
pub mod quality_timeline;
pub mod recording;
pub mod role;
pub mod room;
pub mod turn;
pub mod version;
pub mod webhook;
pub mod webrtc;

pub use clock::Clock;
pub use error::CoreError;
pub use ids::{ConsultationId, UserId, new_id};
pub use role::{Caller, GuestRole, ParticipantRole, Role};
