//! HTTP handlers, one module per resource.

pub mod consultations;
pub mod devices;
pub mod health;
pub mod me;
pub mod notifications;
pub mod recordings;
pub mod webrtc;
