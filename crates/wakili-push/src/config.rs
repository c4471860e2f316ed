//! How the push service is set up: `[push]` read into [`PushConfig`], and the FCM sender.

use std::{sync::Arc, time::Duration};

use wakili_core::{Clock, notify::Rules};
use wakili_outbox::{RetryPolicy, WorkerConfig};
use wakili_settings::PushSettings;

use crate::{
    FcmSender, PushError,
    message::MessageOptions,
    oauth::{ServiceAccount, TokenSource},
    retry::Backoff,
};

/// How the service behaves (from `[push]`).
#[derive(Debug, Clone)]
pub struct PushConfig {
    /// Reminder offsets before a consultation.
    pub reminders: Vec<Duration>,
    /// How long a call rings.
    pub call_ttl: Duration,
    /// Devices silent this long are deactivated.
    pub deactivate_after: Duration,
    /// Worker poll interval.
    pub poll_interval: Duration,
    /// Attempts before giving up.
    pub max_attempts: u32,
    /// Retry delays.
    pub backoff: Backoff,
    /// Per-device rate limit.
    pub per_device_per_minute: u32,
    /// Requests in flight.
    pub concurrency: usize,
    /// How long a worker holds leased rows before another may take them.
    pub lease: Duration,
    /// Message options.
    pub options: MessageOptions,
}

impl PushConfig {
    /// From `[push]`.
    pub fn from_settings(s: &PushSettings) -> Self {
        Self {
            reminders: s.reminders.clone(),
            call_ttl: s.call_ttl,
            deactivate_after: s.deactivate_after,
            poll_interval: s.poll_interval,
            max_attempts: s.max_attempts,
            backoff: Backoff {
                initial: s.initial_backoff,
                max: s.max_backoff,
            },
            per_device_per_minute: s.per_device_per_minute,
            concurrency: s.concurrency,
            // Well beyond one request's timeout, so a lease never runs out mid-send.
            lease: s.request_timeout * 3 + Duration::from_secs(30),
            options: MessageOptions {
                android_channel: s.android_channel.clone(),
            },
        }
    }

    /// The notification rules (reminder offsets, call TTL).
    pub fn rules(&self) -> Rules {
        Rules {
            reminders: self.reminders.clone(),
            call_ttl: self.call_ttl,
        }
    }

    /// When a failed send is tried again.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts,
            backoff: self.backoff,
        }
    }

    /// How the outbox worker paces itself. Each send is bounded by the sender's own request
    /// timeout (a timed-out send is retried with backoff); the worker's deadline is only a
    /// backstop at the lease's length, past which the row would be another node's anyway.
    pub fn worker(&self) -> WorkerConfig {
        WorkerConfig {
            concurrency: self.concurrency,
            lease: self.lease,
            deadline: self.lease,
            poll_interval: self.poll_interval,
        }
    }
}

/// The FCM sender configured by `[push]`, or `None` when push is off.
pub fn sender_from_settings(
    s: &PushSettings,
    clock: Clock,
) -> Result<Option<FcmSender>, PushError> {
    let account = match (&s.credentials_file, &s.credentials_json) {
        (Some(path), _) => ServiceAccount::from_file(path)?,
        (None, Some(json)) => ServiceAccount::from_json(json.expose())?,
        (None, None) => return Ok(None),
    };
    let project = s
        .project_id
        .clone()
        .or_else(|| account.project_id.clone())
        .ok_or_else(|| {
            PushError::Credentials(
                "no project: set push.project_id (the key has no project_id)".into(),
            )
        })?;
    let tokens = Arc::new(TokenSource::new(
        account,
        s.token_url.clone(),
        s.request_timeout,
    )?);
    Ok(Some(FcmSender::new(
        &s.fcm_base_url,
        &project,
        tokens,
        s.request_timeout,
        clock,
    )?))
}
