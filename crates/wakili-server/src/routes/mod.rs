//! HTTP handlers, one module per resource.

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
