//! Webhook delivery as an [`Outbox`]: the `webhook_deliveries` rows of `wakili-db`, each POSTed
//! signed to its endpoint.

use std::{collections::HashMap, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use rand::Rng;
use wakili_core::{
    Clock,
    model::webhook::{AttemptRecord, EndpointTarget, WebhookDelivery},
    net::AddressPolicy,
    webhook::{Verdict, judge},
};
use wakili_db::WebhookStore;
use wakili_outbox::{Delivered, Failure, Outbox, Outcome, RetryPolicy};

use crate::{WebhookError, guard, metrics::Counters, sign};

/// What one attempt learned beyond its outcome: the receiver's status, and whether it said
/// the endpoint is gone.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Learned {
    status: Option<u16>,
    gone: bool,
}

/// A leased delivery and where it goes.
pub(crate) struct Item {
    delivery: WebhookDelivery,
    target: Option<Arc<EndpointTarget>>,
}

/// The webhook outbox.
pub(crate) struct WebhookOutbox {
    pub(crate) store: Arc<dyn WebhookStore>,
    pub(crate) client: reqwest::Client,
    pub(crate) policy: AddressPolicy,
    pub(crate) clock: Clock,
    pub(crate) retry: RetryPolicy,
    /// How long a delivery is retried, from its `retry_from`.
    pub(crate) retry_for: Duration,
    pub(crate) disable_after: u32,
    pub(crate) counters: Arc<Counters>,
}

impl Outbox for WebhookOutbox {
    type Item = Item;
    type Prune = Learned;
    type Error = WebhookError;

    async fn claim(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Item>, WebhookError> {
        let deliveries = self
            .store
            .claim_webhook_deliveries(owner, now, until, limit)
            .await?;
        if deliveries.is_empty() {
            return Ok(Vec::new());
        }
        let mut ids: Vec<String> = deliveries.iter().map(|d| d.endpoint_id.clone()).collect();
        ids.sort();
        ids.dedup();
        let targets: HashMap<String, Arc<EndpointTarget>> = self
            .store
            .endpoint_targets(&ids)
            .await?
            .into_iter()
            .map(|t| (t.id.clone(), Arc::new(t)))
            .collect();
        Ok(deliveries
            .into_iter()
            .map(|delivery| Item {
                target: targets.get(&delivery.endpoint_id).cloned(),
                delivery,
            })
            .collect())
    }

    async fn deliver(&self, item: Item) -> Delivered<Learned> {
        let (outcome, learned) = self.attempt(&item).await;
        Delivered {
            id: item.delivery.id,
            outcome,
            prune: Some(learned),
        }
    }

    async fn record(
        &self,
        owner: &str,
        chunk: Vec<Delivered<Learned>>,
        now: DateTime<Utc>,
    ) -> Result<(), WebhookError> {
        let attempts: Vec<AttemptRecord> = chunk
            .into_iter()
            .map(|d| {
                let learned = d.prune.unwrap_or_default();
                AttemptRecord {
                    id: d.id,
                    outcome: d.outcome,
                    status: learned.status,
                    gone: learned.gone,
                }
            })
            .collect();
        let recorded = self
            .store
            .record_webhook_attempts(owner, &attempts, self.disable_after, now)
            .await?;
        for endpoint in recorded.disabled {
            self.counters.endpoint_disabled();
            tracing::warn!(endpoint = %endpoint, "webhook endpoint disabled: it kept failing or is gone");
        }
        Ok(())
    }

    async fn release(&self, owner: &str) -> Result<(), WebhookError> {
        Ok(self.store.release_webhook_deliveries(owner).await?)
    }
}

impl WebhookOutbox {
    /// One attempt: sign, POST, judge.
    async fn attempt(&self, item: &Item) -> (Outcome, Learned) {
        let d = &item.delivery;
        let now = self.clock.now();
        let result = match &item.target {
            Some(target) => self.post(target, d, now).await,
            None => Err(WebhookError::NotFound("endpoint")),
        };
        let (status, retry_after, error) = match result {
            Ok(answer) => (Some(answer.status), answer.retry_after, None),
            Err(e) => (None, None, Some(e.to_string())),
        };
        let verdict = judge(status, error.as_deref(), retry_after.as_deref(), now);
        self.counters.attempt(status);
        let learned = Learned {
            status,
            gone: verdict == Verdict::Gone,
        };
        let outcome = match verdict {
            Verdict::Delivered => Outcome::Done {
                receipt: status.map(|s| s.to_string()).unwrap_or_default(),
            },
            Verdict::Gone => Outcome::Failed {
                error: "HTTP 410: the endpoint is gone".into(),
            },
            Verdict::Retry {
                reason,
                retry_after,
            } => {
                let window = chrono::Duration::from_std(self.retry_for).unwrap_or_default();
                let failure = Failure {
                    attempts: d.attempts,
                    expires_at: Some(d.retry_from + window),
                    retry_after,
                    reason,
                };
                self.retry.after(failure, now, rand::rng().random())
            }
        };
        (outcome, learned)
    }

    /// POSTs the delivery's body, signed, to `target`.
    async fn post(
        &self,
        target: &EndpointTarget,
        d: &WebhookDelivery,
        now: DateTime<Utc>,
    ) -> Result<Answer, WebhookError> {
        // reqwest connects to an IP literal without resolving it: judge it here.
        if let guard::Host::Ip(ip) = guard::host(&target.url)? {
            guard::literal(ip, self.policy)?;
        }
        let signed = sign::sign(
            &d.event_id,
            now.timestamp(),
            &d.payload,
            &target.secrets(now),
        )
        .ok_or_else(|| WebhookError::Invalid("secret: does not decode".into()))?;
        let response = self
            .client
            .post(&target.url)
            .header("content-type", "application/json")
            .header("webhook-id", signed.id)
            .header("webhook-timestamp", signed.timestamp.to_string())
            .header("webhook-signature", signed.signature)
            .body(d.payload.clone())
            .send()
            .await
            .map_err(|e| WebhookError::Unreachable(describe(&e)))?;
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(Answer {
            status: response.status().as_u16(),
            retry_after,
        })
    }
}

/// A receiver's answer.
struct Answer {
    status: u16,
    retry_after: Option<String>,
}

/// A reqwest error, with the cause the delivery log needs (timeout, refused, the guard).
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".into();
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
