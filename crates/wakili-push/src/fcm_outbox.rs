//! FCM delivery as an [`Outbox`]: the `push_outbox` rows of `wakili-db`, sent with
//! [`FcmSender`] under the per-device rate limit.

use std::sync::{Arc, Mutex};

use rand::Rng;
use wakili_core::Clock;
use wakili_db::{OutboxNotification, PushStore};
use wakili_outbox::{Delivered, Failure, Outbox, Outcome, RetryPolicy};

use crate::{
    FcmSender, PushError,
    message::{MessageOptions, Notification, Platform, fcm_body},
    retry::DeviceLimiter,
    verdict::Verdict,
};

/// A device token FCM no longer accepts, and why (`unregistered`, `invalid_token`).
pub(crate) type DroppedToken = (String, &'static str);

/// The notification outbox, delivered through FCM.
pub(crate) struct FcmOutbox {
    pub(crate) store: Arc<dyn PushStore>,
    /// `None` when push is off: nothing is claimed.
    pub(crate) sender: Option<FcmSender>,
    pub(crate) clock: Clock,
    pub(crate) limiter: Mutex<DeviceLimiter>,
    pub(crate) retry: RetryPolicy,
    pub(crate) options: MessageOptions,
}

impl Outbox for FcmOutbox {
    type Item = OutboxNotification;
    type Prune = DroppedToken;
    type Error = PushError;

    async fn claim(
        &self,
        owner: &str,
        now: chrono::DateTime<chrono::Utc>,
        until: chrono::DateTime<chrono::Utc>,
        limit: u32,
    ) -> Result<Vec<OutboxNotification>, PushError> {
        if self.sender.is_none() {
            return Ok(Vec::new());
        }
        Ok(self
            .store
            .claim_notifications(owner, now, until, limit)
            .await?)
    }

    async fn deliver(&self, row: OutboxNotification) -> Delivered<DroppedToken> {
        let (outcome, prune) = self.deliver_one(&row).await;
        Delivered {
            id: row.id,
            outcome,
            prune,
        }
    }

    /// Records the outcomes of some leased rows and deactivates the devices FCM dropped.
    async fn record(
        &self,
        owner: &str,
        chunk: Vec<Delivered<DroppedToken>>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), PushError> {
        let mut outcomes = Vec::with_capacity(chunk.len());
        for Delivered { id, outcome, prune } in chunk {
            if let Some((token, reason)) = prune
                && self.store.deactivate_device(&token, reason, now).await?
            {
                tracing::info!(reason, "device deactivated: FCM no longer knows its token");
            }
            outcomes.push((id, outcome));
        }
        self.store
            .finish_notifications(owner, &outcomes, now)
            .await?;
        Ok(())
    }

    async fn release(&self, owner: &str) -> Result<(), PushError> {
        Ok(self.store.release_notifications(owner).await?)
    }
}

impl FcmOutbox {
    async fn deliver_one(&self, row: &OutboxNotification) -> (Outcome, Option<DroppedToken>) {
        let Some(sender) = &self.sender else {
            return (failed("push is off".into()), None);
        };
        let now = self.clock.now();
        if row.expires_at.is_some_and(|e| e <= now) {
            return (Outcome::Expired, None);
        }
        let limited = self
            .limiter
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take(&row.device_token, now);
        if let Err(wait) = limited {
            let at = now + chrono::Duration::from_std(wait).unwrap_or_default();
            return (
                Outcome::Retry {
                    at,
                    error: Some("per-device rate limit".into()),
                    attempted: false,
                },
                None,
            );
        }
        let Ok(notification) = serde_json::from_str::<Notification>(&row.payload) else {
            return (failed("stored payload does not decode".into()), None);
        };
        let Ok(platform) = row.platform.parse::<Platform>() else {
            return (failed(format!("unknown platform {:?}", row.platform)), None);
        };
        let body = match fcm_body(
            &notification,
            &row.id,
            &row.device_token,
            platform,
            &self.options,
            now,
        ) {
            Ok(body) => body,
            Err(e) => return (failed(e.to_string()), None),
        };
        match sender.send(body.into()).await {
            Verdict::Delivered(message_name) => (
                Outcome::Done {
                    receipt: message_name,
                },
                None,
            ),
            Verdict::DropToken(reason) => {
                let why = if reason.contains("INVALID_ARGUMENT") {
                    "invalid_token"
                } else {
                    "unregistered"
                };
                (failed(reason), Some((row.device_token.clone(), why)))
            }
            Verdict::Rejected(reason) => (failed(reason), None),
            Verdict::Reauthenticate => (self.retry(row, None, "access token refused".into()), None),
            Verdict::Retry { after, reason } => (self.retry(row, after, reason), None),
        }
    }

    fn retry(
        &self,
        row: &OutboxNotification,
        retry_after: Option<std::time::Duration>,
        reason: String,
    ) -> Outcome {
        let unit: f64 = rand::rng().random();
        let now = self.clock.now();
        let outcome = self.retry.after(
            Failure {
                attempts: row.attempts,
                expires_at: row.expires_at,
                retry_after,
                reason,
            },
            now,
            unit,
        );
        if let Outcome::Retry {
            at,
            error: Some(reason),
            ..
        } = &outcome
        {
            let delay_ms = (*at - now).num_milliseconds();
            tracing::debug!(notification_id = %row.id, delay_ms, %reason, "FCM send will be retried");
        }
        outcome
    }
}

fn failed(error: String) -> Outcome {
    Outcome::Failed { error }
}
