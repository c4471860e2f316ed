//! HTTP handlers, one module per resource.

/// One file of the web client's bundle, which `build.rs` makes from `web/` into `OUT_DIR/web`.
macro_rules! built {
    ($file:literal) => {
        include_str!(concat!(env!("OUT_DIR"), "/web/", $file))
    };
}

pub mod consultations;
pub mod dashboard;
pub mod devices;
pub mod health;
pub mod load_tests;
pub mod me;
pub mod notifications;
pub mod participants;
pub mod performance;
mod recording_download;
mod recording_upload;
pub mod recordings;
pub mod web;
pub mod webhooks;
pub mod webrtc;
