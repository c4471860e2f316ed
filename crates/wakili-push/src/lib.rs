//! Wakili's mobile push: FCM HTTP v1 notifications for incoming calls, reminders and
//! consultation changes.
//!
//! Who is told what and when (ringing, reminders, consultation changes) is decided by the
//! sans-IO rules of [`wakili_core::notify`]; this crate queues and sends what they decide.
//!
//! Sans-IO parts, tested without clocks or sockets:
//! - [`message`]: the FCM v1 messages notifications become (`android`, `apns`, `webpush`
//!   blocks, string-only data, the 4 KiB limit);
//! - [`verdict`]: what FCM's answer means (`error.details[].errorCode`, `Retry-After`);
//! - [`retry`]: the per-device rate limit (backoff is [`wakili_outbox::Backoff`]).
//!
//! IO parts:
//! - [`oauth`]: service-account keys and the OAuth2 JWT-bearer grant, tokens cached and renewed;
//! - [`FcmSender`]: `messages:send` over HTTP/2;
//! - [`PushService`]: events into outbox rows, the outbox (a [`wakili_outbox::Worker`] over
//!   FCM: every notification is a row first, leased by one worker at a time), the reminders
//!   worker and the silent-device sweep.

mod config;
pub mod error;
mod fcm_outbox;
pub mod message;
pub mod oauth;
pub mod retry;
pub mod schedule;
mod sender;
mod service;
pub mod verdict;

pub use config::{PushConfig, sender_from_settings};
pub use error::PushError;
pub use message::{Kind, MessageOptions, Notification, Platform};
pub use sender::FcmSender;
pub use service::{PushService, Stores};
pub use wakili_outbox::{Outcomes, Pass};
