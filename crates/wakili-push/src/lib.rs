//! Wakili's mobile push: FCM HTTP v1 notifications for incoming calls, reminders and
//! consultation changes.
//!
//! Sans-IO parts, tested without clocks or sockets:
//! - [`message`]: notifications and the FCM v1 messages they become (`android`, `apns`,
//!   `webpush` blocks, string-only data, the 4 KiB limit);
//! - [`verdict`]: what FCM's answer means (`error.details[].errorCode`, `Retry-After`);
//! - [`retry`]: exponential backoff with jitter and the per-device rate limit;
//! - [`schedule`]: when reminders are due.
//!
//! IO parts:
//! - [`oauth`]: service-account keys and the OAuth2 JWT-bearer grant, tokens cached and renewed;
//! - [`FcmSender`]: `messages:send` over HTTP/2;
//! - [`PushService`]: the outbox (every notification is a row first, leased by one worker at a
//!   time), the reminders worker and the silent-device sweep.

pub mod error;
pub mod message;
pub mod oauth;
pub mod retry;
pub mod schedule;
mod sender;
mod service;
pub mod verdict;

pub use error::PushError;
pub use message::{Kind, MessageOptions, Notification, Platform};
pub use sender::FcmSender;
pub use service::{Outcomes, Pass, PushConfig, PushService, sender_from_settings};
