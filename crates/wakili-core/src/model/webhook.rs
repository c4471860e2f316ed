//! Webhook endpoints and deliveries, as the database keeps them and admins see them.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Where a delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum WebhookDeliveryStatus {
    /// Waiting for its turn, its time or a retry.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Given up: the endpoint is gone (410).
    Failed,
    /// Retried for the whole window (24 h by default) without success.
    Expired,
}

named!(WebhookDeliveryStatus, field "status", "delivery status" {
    Pending => "pending",
    Delivered => "delivered",
    Failed => "failed",
    Expired => "expired",
});

/// Where an endpoint comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum EndpointSource {
    /// `[[webhooks.endpoints]]` in the settings (updated from them at start).
    Config,
    /// Created by an admin through the API.
    Api,
}

named!(EndpointSource, field "source", "endpoint source" {
    Config => "config",
    Api => "api",
});

/// A webhook endpoint, as admins see it: never its secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct WebhookEndpoint {
    /// Its id.
    pub id: String,
    /// Where events are POSTed.
    pub url: String,
    /// The events it receives.
    #[cfg_attr(feature = "sqlx", sqlx(try_from = "String"))]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub events: EventList,
    /// What it is for.
    pub description: String,
    /// Settings or API.
    #[cfg_attr(feature = "sqlx", sqlx(try_from = "String"))]
    pub source: EndpointSource,
    /// Whether events are sent to it.
    pub enabled: bool,
    /// Why it was disabled (by an admin, or after failing too often).
    pub disabled_reason: Option<String>,
    /// Failed attempts in a row.
    #[cfg_attr(feature = "sqlx", sqlx(try_from = "i64"))]
    pub consecutive_failures: u32,
    /// Until when the secret before the last rotation still signs (alongside the new one).
    pub previous_secret_until: Option<DateTime<Utc>>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// Event names, read from their stored form (`Filter::stored`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct EventList(pub Vec<String>);

impl From<String> for EventList {
    fn from(stored: String) -> Self {
        Self(crate::webhook::Filter::from_stored(&stored).names())
    }
}

/// Where and with which secrets a delivery is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct EndpointTarget {
    /// The endpoint.
    pub id: String,
    /// Its URL.
    pub url: String,
    /// Its secret (`whsec_…`).
    pub secret: String,
    /// The secret before the last rotation, while it still signs.
    pub previous_secret: Option<String>,
    /// Until when.
    pub previous_secret_until: Option<DateTime<Utc>>,
}

impl EndpointTarget {
    /// The secrets that sign a message sent at `now`: the current one, and the previous one
    /// during a rotation.
    pub fn secrets(&self, now: DateTime<Utc>) -> Vec<&str> {
        let mut out = vec![self.secret.as_str()];
        if let (Some(previous), Some(until)) = (&self.previous_secret, self.previous_secret_until)
            && now < until
        {
            out.push(previous);
        }
        out
    }
}

/// One event to one endpoint, as the outbox holds it and admins see it in the delivery log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct WebhookDelivery {
    /// Its id.
    pub id: String,
    /// The event's id: the `webhook-id` header, the same on every attempt.
    pub event_id: String,
    /// The endpoint.
    pub endpoint_id: String,
    /// The event.
    pub event_type: String,
    /// The consultation it concerns.
    pub consultation_id: Option<String>,
    /// Its place in the consultation's order.
    #[serde(skip)]
    pub seq: i64,
    /// The body sent (JSON).
    #[serde(skip)]
    pub payload: String,
    /// Where it is.
    #[cfg_attr(feature = "sqlx", sqlx(try_from = "String"))]
    pub status: WebhookDeliveryStatus,
    /// Attempts so far.
    #[cfg_attr(feature = "sqlx", sqlx(try_from = "i64"))]
    pub attempts: u32,
    /// When it is (next) due.
    pub next_attempt_at: DateTime<Utc>,
    /// Retries stop at this plus the retry window.
    #[serde(skip)]
    pub retry_from: DateTime<Utc>,
    /// The receiver's last HTTP status.
    pub last_status: Option<i64>,
    /// The last failure.
    pub last_error: Option<String>,
    /// The last attempt.
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// Queued.
    pub created_at: DateTime<Utc>,
    /// Delivered.
    pub delivered_at: Option<DateTime<Utc>>,
}

/// Which deliveries to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookDeliveryFilter {
    /// Only to this endpoint.
    pub endpoint_id: Option<String>,
    /// Only this status.
    pub status: Option<WebhookDeliveryStatus>,
    /// Only about this consultation.
    pub consultation_id: Option<String>,
    /// Only ids below this one (the previous page's last id).
    pub before: Option<String>,
    /// Page size.
    pub limit: u32,
}

/// An endpoint to create or to update from the settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEndpoint {
    /// Its id.
    pub id: String,
    /// Where events are POSTed.
    pub url: String,
    /// Stored filter (`Filter::stored`).
    pub events: String,
    /// What it is for.
    pub description: String,
    /// Settings or API.
    pub source: EndpointSource,
    /// `whsec_…`.
    pub secret: String,
}

/// Changes to an endpoint; `None` leaves a field alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointPatch {
    /// New URL.
    pub url: Option<String>,
    /// New stored filter.
    pub events: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// Enable (resetting the failure count) or disable, with the reason.
    pub enabled: Option<(bool, Option<String>)>,
}

/// One attempt's outcome, as the webhook outbox records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    /// The delivery.
    pub id: String,
    /// What became of it.
    pub outcome: crate::delivery::Outcome,
    /// The receiver's HTTP status, when it answered.
    pub status: Option<u16>,
    /// The endpoint said it is gone (410): disable it.
    pub gone: bool,
}
