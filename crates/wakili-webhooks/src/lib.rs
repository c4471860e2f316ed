//! Signed webhooks to the platform's backend.
//!
//! **What is sent.** Every change worth a webhook writes an audit entry; the database queues one
//! delivery per subscribed endpoint in that same transaction (`wakili_core::webhook` decides the
//! event and its body, `wakili-db` queues). So a change that is stored is reported, even if the
//! node dies right after, and nothing is reported that was not stored.
//!
//! **How.** A [`wakili_outbox::Worker`] drains the deliveries: each is signed the Standard
//! Webhooks way (`webhook-id`, `-timestamp`, `-signature`, HMAC-SHA256 over
//! `id.timestamp.body`, through the `standardwebhooks` crate; two signatures while a rotated
//! secret still overlaps) and POSTed within a deadline. Any answer but 2xx, a timeout or a
//! refused connection is retried with exponential backoff and jitter (no sooner than the
//! receiver's `Retry-After`) for the retry window, 24 h by default; 410 Gone stops at once. The
//! event id is stable across attempts and redeliveries, so receivers dedupe by it, and one
//! consultation's deliveries to one endpoint go strictly in order. An endpoint that fails too
//! often in a row is disabled, audited and counted.
//!
//! **Where to.** URLs whose host resolves to loopback, private, link-local or special-purpose
//! addresses are refused (when configured and at every connection, against DNS rebinding),
//! unless the settings open loopback or private networks; redirects are not followed.

mod error;
mod guard;
mod metrics;
mod outbox;
pub mod sign;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use wakili_core::{
    Clock,
    model::webhook::{
        EndpointPatch, EndpointSource, NewEndpoint, WebhookDelivery, WebhookDeliveryFilter,
        WebhookEndpoint,
    },
    net::AddressPolicy,
    new_id,
    webhook::{Filter, endpoint},
};
use wakili_db::WebhookStore;
use wakili_outbox::{Backoff, RetryPolicy, Worker, WorkerConfig};
use wakili_settings::WebhookSettings;

pub use error::WebhookError;
pub use metrics::Snapshot;

use crate::{metrics::Counters, outbox::WebhookOutbox};

/// After a wake-up for queued deliveries, when the worker looks once more (the write that
/// woke it may have been committing): well above a commit's time, well below the poll interval.
const RECHECK: std::time::Duration = std::time::Duration::from_millis(100);

/// An endpoint as an admin creates it.
#[derive(Debug, Clone)]
pub struct EndpointRequest {
    /// Where events are POSTed.
    pub url: String,
    /// Event names, groups (`recording.*`) or `*`; empty: all.
    pub events: Vec<String>,
    /// What it is for.
    pub description: String,
    /// `whsec_…`, chosen by the admin (the server never shows a secret).
    pub secret: String,
}

/// Changes an admin makes to an endpoint.
#[derive(Debug, Clone, Default)]
pub struct EndpointChange {
    /// New URL.
    pub url: Option<String>,
    /// New events.
    pub events: Option<Vec<String>>,
    /// New description.
    pub description: Option<String>,
    /// Enable or disable it.
    pub enabled: Option<bool>,
    /// Why it is disabled.
    pub reason: Option<String>,
}

/// Webhooks: the endpoints and the delivery worker. Cheap to clone.
#[derive(Clone)]
pub struct Webhooks {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn WebhookStore>,
    settings: WebhookSettings,
    policy: AddressPolicy,
    clock: Clock,
    worker: Worker<WebhookOutbox>,
    counters: Arc<Counters>,
}

impl Webhooks {
    /// Webhooks over `store`, configured by `settings`; [`Webhooks::run`] delivers.
    pub fn new(
        store: Arc<dyn WebhookStore>,
        settings: &WebhookSettings,
        clock: Clock,
    ) -> Result<Self, WebhookError> {
        let policy = AddressPolicy {
            allow_loopback: settings.allow_loopback,
            allow_private: settings.allow_private,
        };
        let counters = Arc::new(Counters::default());
        let outbox = WebhookOutbox {
            store: Arc::clone(&store),
            client: guard::client(policy, settings.request_timeout)?,
            policy,
            clock: clock.clone(),
            retry: RetryPolicy {
                // The retry window ends deliveries, not a count.
                max_attempts: u32::MAX,
                backoff: Backoff {
                    initial: settings.initial_backoff,
                    max: settings.max_backoff,
                },
            },
            retry_for: settings.retry_for,
            disable_after: settings.disable_after_failures,
            counters: Arc::clone(&counters),
        };
        let config = WorkerConfig {
            concurrency: settings.concurrency,
            // Well beyond one attempt, so a lease never runs out mid-attempt.
            lease: settings.request_timeout * 3 + std::time::Duration::from_secs(30),
            deadline: settings.request_timeout + std::time::Duration::from_secs(5),
            poll_interval: settings.poll_interval,
        };
        let worker = Worker::new(outbox, format!("node-{}", new_id()), config, clock.clone());
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                settings: settings.clone(),
                policy,
                clock,
                worker,
                counters,
            }),
        })
    }

    fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    fn rotation_end(&self) -> DateTime<Utc> {
        self.now()
            + chrono::Duration::from_std(self.inner.settings.rotation_overlap).unwrap_or_default()
    }

    /// Brings the endpoints of `[[webhooks.endpoints]]` into the database: new ones are
    /// created, changed ones updated (a changed secret starts a rotation). Their URLs are
    /// checked against the address policy; one that fails is logged and skipped, so a
    /// receiver that is down at start does not keep the server from starting.
    pub async fn sync_config(&self) -> Result<usize, WebhookError> {
        let mut synced = 0;
        for e in &self.inner.settings.endpoints {
            if let Err(err) = guard::check(&e.url, self.inner.policy).await {
                tracing::warn!(endpoint = %e.id, error = %err, "webhook endpoint from the settings skipped");
                continue;
            }
            let filter =
                Filter::parse(&e.events).map_err(|err| WebhookError::Invalid(err.to_string()))?;
            let new = NewEndpoint {
                id: e.id.clone(),
                url: e.url.clone(),
                events: filter.stored(),
                description: e.description.clone(),
                source: EndpointSource::Config,
                secret: e.secret.expose().to_owned(),
            };
            self.inner
                .store
                .sync_config_endpoint(&new, self.rotation_end(), self.now())
                .await?;
            synced += 1;
        }
        Ok(synced)
    }

    /// Delivers until `shutdown` completes; an attempt under way finishes first.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()> + Send) {
        // Deliveries this node queues wake the worker at once, and again a moment later for a
        // write that was still committing; the poll interval is left for other nodes' writes.
        let queued = self.inner.store.deliveries_queued();
        let worker = self.inner.worker.clone();
        let relay = tokio::spawn(async move {
            loop {
                queued.notified().await;
                worker.wake();
                tokio::time::sleep(RECHECK).await;
                worker.wake();
            }
        });
        self.inner.worker.run((), shutdown).await;
        relay.abort();
    }

    /// Looks for due deliveries now rather than at the next poll.
    pub fn wake(&self) {
        self.inner.worker.wake();
    }

    /// What the worker did since start.
    pub fn counters(&self) -> Snapshot {
        self.inner.counters.snapshot()
    }

    /// Deliveries waiting.
    pub async fn pending(&self) -> Result<u64, WebhookError> {
        Ok(self.inner.store.pending_webhook_deliveries().await?)
    }

    /// Creates an endpoint after checking its URL (form and address), events and secret.
    pub async fn create(&self, request: EndpointRequest) -> Result<WebhookEndpoint, WebhookError> {
        let filter = self.events(&request.events)?;
        endpoint::check_secret(&request.secret)
            .map_err(|e| WebhookError::Invalid(e.to_string()))?;
        description(&request.description)?;
        guard::check(&request.url, self.inner.policy).await?;
        let new = NewEndpoint {
            id: format!("wh_{}", new_id()),
            url: request.url,
            events: filter.stored(),
            description: request.description,
            source: EndpointSource::Api,
            secret: request.secret,
        };
        Ok(self.inner.store.create_endpoint(&new, self.now()).await?)
    }

    /// Every endpoint.
    pub async fn endpoints(&self) -> Result<Vec<WebhookEndpoint>, WebhookError> {
        Ok(self.inner.store.endpoints().await?)
    }

    /// One endpoint.
    pub async fn endpoint(&self, id: &str) -> Result<WebhookEndpoint, WebhookError> {
        self.inner
            .store
            .endpoint(id)
            .await?
            .ok_or(WebhookError::NotFound("endpoint"))
    }

    /// Changes an endpoint: its URL (checked like a new one's), events, description, or
    /// whether it is enabled (enabling resets its failure count).
    pub async fn update(
        &self,
        id: &str,
        change: EndpointChange,
        by: &str,
    ) -> Result<WebhookEndpoint, WebhookError> {
        if let Some(url) = &change.url {
            guard::check(url, self.inner.policy).await?;
        }
        if let Some(d) = &change.description {
            description(d)?;
        }
        let events = change
            .events
            .as_deref()
            .map(|e| self.events(e).map(|f| f.stored()))
            .transpose()?;
        let patch = EndpointPatch {
            url: change.url,
            events,
            description: change.description,
            enabled: change.enabled.map(|on| {
                let reason = (!on).then(|| {
                    change
                        .reason
                        .clone()
                        .unwrap_or_else(|| format!("disabled by {by}"))
                });
                (on, reason)
            }),
        };
        let updated = self
            .inner
            .store
            .update_endpoint(id, &patch, by, self.now())
            .await?
            .ok_or(WebhookError::NotFound("endpoint"))?;
        if updated.enabled {
            self.wake();
        }
        Ok(updated)
    }

    /// Replaces an endpoint's secret with `secret`; the old one keeps signing (a second
    /// signature) for the rotation overlap.
    pub async fn rotate(
        &self,
        id: &str,
        secret: &str,
        by: &str,
    ) -> Result<WebhookEndpoint, WebhookError> {
        endpoint::check_secret(secret).map_err(|e| WebhookError::Invalid(e.to_string()))?;
        self.inner
            .store
            .rotate_secret(id, secret, self.rotation_end(), by, self.now())
            .await?
            .ok_or(WebhookError::NotFound("endpoint"))
    }

    /// One page of the delivery log.
    pub async fn deliveries(
        &self,
        filter: &WebhookDeliveryFilter,
    ) -> Result<Vec<WebhookDelivery>, WebhookError> {
        Ok(self.inner.store.webhook_deliveries(filter).await?)
    }

    /// Sends a delivery again, now, with the same event id.
    pub async fn redeliver(&self, id: &str, by: &str) -> Result<WebhookDelivery, WebhookError> {
        let delivery = self
            .inner
            .store
            .redeliver(id, by, self.now())
            .await?
            .ok_or(WebhookError::NotFound("delivery"))?;
        self.wake();
        Ok(delivery)
    }

    fn events(&self, names: &[String]) -> Result<Filter, WebhookError> {
        let filter = Filter::parse(names).map_err(|e| WebhookError::Invalid(e.to_string()))?;
        if filter.is_empty() {
            return Err(WebhookError::Invalid("events: names no event".into()));
        }
        Ok(filter)
    }
}

/// Descriptions are short, plain text.
fn description(d: &str) -> Result<(), WebhookError> {
    if d.chars().count() > 500 || d.chars().any(char::is_control) {
        return Err(WebhookError::Invalid(
            "description: at most 500 characters, no control characters".into(),
        ));
    }
    Ok(())
}
