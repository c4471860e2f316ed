//! Webhook endpoints and their delivery outbox (the types are `wakili_core::model::webhook`).
//!
//! Deliveries are not queued through this store: every audit entry that reports a webhook
//! event queues one delivery per subscribed endpoint in its own transaction
//! (`sql_audit::insert_audit`), so a change and the news of it are stored together.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
pub use wakili_core::model::webhook::{
    AttemptRecord, EndpointPatch, EndpointSource, EndpointTarget, NewEndpoint, WebhookDelivery,
    WebhookDeliveryFilter, WebhookDeliveryStatus, WebhookEndpoint,
};

use crate::DbError;

/// What recording a batch of attempts changed beyond the deliveries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttemptsRecorded {
    /// Deliveries updated (those whose lease the caller still held).
    pub updated: u64,
    /// Endpoints disabled by this batch: after too many failures in a row, or gone (410).
    pub disabled: Vec<String>,
}

/// Endpoints and deliveries.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Notified when this node's writes queued deliveries, so the worker delivers them now
    /// rather than at its next poll. A write may notify just before it commits: a worker that
    /// finds nothing on waking should look again a moment later. Other nodes' writes do not
    /// notify; their deliveries wait for the poll.
    fn deliveries_queued(&self) -> std::sync::Arc<tokio::sync::Notify>;

    /// Creates an endpoint (enabled).
    async fn create_endpoint(
        &self,
        new: &NewEndpoint,
        now: DateTime<Utc>,
    ) -> Result<WebhookEndpoint, DbError>;

    /// Creates or updates an endpoint of the settings. A changed secret keeps the old one
    /// signing until `previous_until`; an admin's disabling stays.
    async fn sync_config_endpoint(
        &self,
        new: &NewEndpoint,
        previous_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<WebhookEndpoint, DbError>;

    /// Every endpoint, oldest first.
    async fn endpoints(&self) -> Result<Vec<WebhookEndpoint>, DbError>;

    /// One endpoint.
    async fn endpoint(&self, id: &str) -> Result<Option<WebhookEndpoint>, DbError>;

    /// Changes an endpoint, with its audit entry (`webhook.endpoint_updated`, or
    /// `webhook.endpoint_disabled` / `_enabled`); `None` when there is no such endpoint.
    async fn update_endpoint(
        &self,
        id: &str,
        patch: &EndpointPatch,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<WebhookEndpoint>, DbError>;

    /// Replaces an endpoint's secret; the old one keeps signing until `previous_until`.
    async fn rotate_secret(
        &self,
        id: &str,
        secret: &str,
        previous_until: DateTime<Utc>,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<WebhookEndpoint>, DbError>;

    /// Where and how to send to these endpoints.
    async fn endpoint_targets(&self, ids: &[String]) -> Result<Vec<EndpointTarget>, DbError>;

    /// Leases up to `limit` deliveries due by `now` for `owner` until `until`: only to enabled
    /// endpoints, and of each consultation's deliveries to one endpoint only the first still
    /// pending, so they arrive in order.
    async fn claim_webhook_deliveries(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>, DbError>;

    /// Records attempts on deliveries `owner` leased, in one transaction: the deliveries,
    /// the endpoints' failure counts, and the disabling (with its audit entry) of endpoints
    /// that reached `disable_after` failures in a row (0: never) or are gone.
    async fn record_webhook_attempts(
        &self,
        owner: &str,
        attempts: &[AttemptRecord],
        disable_after: u32,
        now: DateTime<Utc>,
    ) -> Result<AttemptsRecorded, DbError>;

    /// Releases `owner`'s leases without an outcome (shutdown).
    async fn release_webhook_deliveries(&self, owner: &str) -> Result<(), DbError>;

    /// One page of the delivery log, newest first.
    async fn webhook_deliveries(
        &self,
        filter: &WebhookDeliveryFilter,
    ) -> Result<Vec<WebhookDelivery>, DbError>;

    /// Sends a delivery again (same event id), now, with a fresh retry window and its audit
    /// entry; `None` when there is no such delivery.
    async fn redeliver(
        &self,
        id: &str,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<WebhookDelivery>, DbError>;

    /// Deliveries waiting (`pending`), for `/metrics`.
    async fn pending_webhook_deliveries(&self) -> Result<u64, DbError>;
}
