//! The `[webhooks]` section: the platform's endpoints, delivery retries and the address policy.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Secret;

/// Signed webhooks to the platform's backend (`[webhooks]`). Endpoints come from here
/// (`[[webhooks.endpoints]]`) and from admins through the API.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookSettings {
    /// Endpoints kept in step with this file at every start.
    pub endpoints: Vec<EndpointSettings>,
    /// Allow endpoints on loopback addresses (127.0.0.0/8, ::1): development only.
    pub allow_loopback: bool,
    /// Allow endpoints on private networks (RFC 1918, fc00::/7, link-local): a backend on the
    /// same private network as the server.
    pub allow_private: bool,
    /// Longest one delivery attempt may take.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// How long a delivery is retried before it is given up as expired.
    #[serde(with = "humantime_serde")]
    pub retry_for: Duration,
    /// First retry delay; doubled per attempt (with jitter) up to `max_backoff`.
    #[serde(with = "humantime_serde")]
    pub initial_backoff: Duration,
    /// Longest retry delay (a receiver's `Retry-After` wins when longer, up to a day).
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
    /// Failed attempts in a row after which an endpoint is disabled (0: never).
    pub disable_after_failures: u32,
    /// How long the secret before a rotation keeps signing beside the new one.
    #[serde(with = "humantime_serde")]
    pub rotation_overlap: Duration,
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// How often the worker looks for due deliveries.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            endpoints: Vec::new(),
            allow_loopback: false,
            allow_private: false,
            request_timeout: Duration::from_secs(10),
            retry_for: Duration::from_secs(24 * 3600),
            initial_backoff: Duration::from_secs(5),
            max_backoff: Duration::from_secs(3600),
            disable_after_failures: 500,
            rotation_overlap: Duration::from_secs(24 * 3600),
            concurrency: 32,
            poll_interval: Duration::from_millis(500),
        }
    }
}

/// One endpoint of `[[webhooks.endpoints]]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointSettings {
    /// A stable name for it (the endpoint's id in the API and the delivery log).
    pub id: String,
    /// Where events are POSTed (`https://…`; `http://` too, for a receiver on the same host).
    pub url: String,
    /// The events it receives: names (`recording.ready`), groups (`recording.*`) or `*`.
    #[serde(default = "all_events")]
    pub events: Vec<String>,
    /// The signing secret, `whsec_` and base64 of 24 to 64 random bytes (the format Standard
    /// Webhooks libraries take). Changing it here starts a rotation: the old one keeps signing
    /// for `rotation_overlap`.
    pub secret: Secret,
    /// What it is for.
    #[serde(default)]
    pub description: String,
}

fn all_events() -> Vec<String> {
    vec!["*".to_owned()]
}

impl WebhookSettings {
    /// What is wrong with the section, each naming its setting.
    pub(crate) fn problems(&self) -> Vec<String> {
        use wakili_core::webhook::{Filter, endpoint};
        let why = |e: wakili_core::CoreError| match e {
            wakili_core::CoreError::Invalid { message, .. } => message,
            other => other.to_string(),
        };
        let mut bad = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for (i, e) in self.endpoints.iter().enumerate() {
            let at = format!("webhooks.endpoints[{i}]");
            if let Err(err) = endpoint::check_id(&e.id) {
                bad.push(format!("{at}.id: {}", why(err)));
            } else if !seen.insert(e.id.as_str()) {
                bad.push(format!("{at}.id: {:?} is used twice", e.id));
            }
            if let Err(err) = endpoint::check_url(&e.url) {
                bad.push(format!("{at}.url: {}", why(err)));
            }
            match Filter::parse(&e.events) {
                Ok(f) if f.is_empty() => bad.push(format!("{at}.events: names no event")),
                Ok(_) => {}
                Err(err) => bad.push(format!("{at}.events: {}", why(err))),
            }
            if endpoint::check_secret(e.secret.expose()).is_err() {
                bad.push(format!(
                    "{at}.secret: whsec_ followed by the base64 of 24 to 64 random bytes \
                     (e.g. `echo whsec_$(openssl rand -base64 32)`)"
                ));
            }
        }
        for (name, value) in [
            ("request_timeout", self.request_timeout),
            ("retry_for", self.retry_for),
            ("initial_backoff", self.initial_backoff),
            ("max_backoff", self.max_backoff),
            ("poll_interval", self.poll_interval),
        ] {
            if value.is_zero() {
                bad.push(format!("webhooks.{name}: must be positive"));
            }
        }
        if self.initial_backoff > self.max_backoff {
            bad.push("webhooks.initial_backoff: must not exceed max_backoff".into());
        }
        if !(1..=1024).contains(&self.concurrency) {
            bad.push("webhooks.concurrency: must be between 1 and 1024".into());
        }
        bad
    }
}
