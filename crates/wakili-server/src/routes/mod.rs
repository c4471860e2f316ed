//! HTTP handlers, one module per resource.

pub mod consultations;
pub mod health;
pub mod me;
pub mod performance;
pub mod recordings;
pub mod web;
pub mod webrtc;
