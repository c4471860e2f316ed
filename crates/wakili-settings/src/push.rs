//! The `[push]` section: FCM HTTP v1 credentials and endpoints, reminders, the outbox.

use std::{path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};

use crate::Secret;

/// Mobile push (`[push]`). Off unless FCM credentials are configured.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PushSettings {
    /// Firebase service-account JSON key file.
    pub credentials_file: Option<PathBuf>,
    /// The same JSON, inline (for secret stores that inject environment variables).
    pub credentials_json: Option<Secret>,
    /// Firebase project id. Unset: the service account's `project_id`.
    pub project_id: Option<String>,
    /// Base URL of the FCM HTTP v1 API (`{fcm_base_url}/v1/projects/{id}/messages:send`).
    pub fcm_base_url: String,
    /// OAuth2 token endpoint. Unset: the service account's `token_uri`.
    pub token_url: Option<String>,
    /// Reminders before each scheduled consultation.
    #[serde(with = "durations")]
    pub reminders: Vec<Duration>,
    /// How long an incoming-call notification rings (its FCM TTL); later it is dropped.
    #[serde(with = "humantime_serde")]
    pub call_ttl: Duration,
    /// Devices without a registration or heartbeat for this long stop receiving notifications.
    #[serde(with = "humantime_serde")]
    pub deactivate_after: Duration,
    /// How often the workers look for due notifications and reminders when nothing woke them.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Attempts before a notification is given up.
    pub max_attempts: u32,
    /// First retry delay; doubled per attempt (with jitter) up to `max_backoff`.
    #[serde(with = "humantime_serde")]
    pub initial_backoff: Duration,
    /// Longest retry delay.
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
    /// Notifications per device per minute (more wait their turn).
    pub per_device_per_minute: u32,
    /// Requests to FCM in flight at once.
    pub concurrency: usize,
    /// Longest one FCM request may take.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Android notification channel of call and reminder notifications.
    pub android_channel: String,
}

impl Default for PushSettings {
    fn default() -> Self {
        Self {
            credentials_file: None,
            credentials_json: None,
            project_id: None,
            fcm_base_url: "https://fcm.googleapis.com".into(),
            token_url: None,
            reminders: vec![Duration::from_secs(24 * 3600), Duration::from_secs(15 * 60)],
            call_ttl: Duration::from_secs(30),
            deactivate_after: Duration::from_secs(60 * 24 * 3600),
            poll_interval: Duration::from_secs(1),
            max_attempts: 50,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            per_device_per_minute: 30,
            concurrency: 256,
            request_timeout: Duration::from_secs(10),
            android_channel: "consultations".into(),
        }
    }
}

impl PushSettings {
    /// Whether FCM credentials are configured (push is on).
    pub fn enabled(&self) -> bool {
        self.credentials_file.is_some() || self.credentials_json.is_some()
    }

    /// Problems, each naming the setting.
    pub(crate) fn problems(&self) -> Vec<String> {
        let mut bad = Vec::new();
        if self.credentials_file.is_some() && self.credentials_json.is_some() {
            bad.push("push.credentials_file and push.credentials_json: give only one".into());
        }
        let is_url = |u: &str| u.starts_with("https://") || u.starts_with("http://");
        if !is_url(&self.fcm_base_url) {
            bad.push("push.fcm_base_url: an http(s):// URL".into());
        }
        if let Some(url) = &self.token_url
            && !is_url(url)
        {
            bad.push("push.token_url: an http(s):// URL".into());
        }
        if self.reminders.len() > 8 {
            bad.push("push.reminders: at most 8".into());
        }
        if self
            .reminders
            .iter()
            .any(|r| *r < Duration::from_secs(60) || *r > Duration::from_secs(30 * 24 * 3600))
        {
            bad.push("push.reminders: each between 1m and 30d".into());
        }
        if self.call_ttl < Duration::from_secs(5) || self.call_ttl > Duration::from_secs(300) {
            bad.push("push.call_ttl: between 5s and 5m".into());
        }
        if self.deactivate_after < Duration::from_secs(24 * 3600) {
            bad.push("push.deactivate_after: at least 1d".into());
        }
        if self.poll_interval < Duration::from_millis(10)
            || self.poll_interval > Duration::from_secs(60)
        {
            bad.push("push.poll_interval: between 10ms and 60s".into());
        }
        if self.max_attempts == 0 {
            bad.push("push.max_attempts: at least 1".into());
        }
        if self.initial_backoff.is_zero() || self.initial_backoff > self.max_backoff {
            bad.push("push.initial_backoff: above 0 and at most max_backoff".into());
        }
        if self.per_device_per_minute == 0 {
            bad.push("push.per_device_per_minute: at least 1".into());
        }
        if !(1..=4096).contains(&self.concurrency) {
            bad.push("push.concurrency: between 1 and 4096".into());
        }
        if self.request_timeout < Duration::from_secs(1) {
            bad.push("push.request_timeout: at least 1s".into());
        }
        if self.android_channel.is_empty() {
            bad.push("push.android_channel: required".into());
        }
        bad
    }
}

/// `Vec<Duration>` as a list of humantime strings (`["24h", "15m"]`).
mod durations {
    use std::time::Duration;

    use humantime_serde::Serde;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(value: &[Duration], s: S) -> Result<S::Ok, S::Error> {
        value
            .iter()
            .map(|d| Serde::from(*d))
            .collect::<Vec<_>>()
            .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
        Ok(Vec::<Serde<Duration>>::deserialize(d)?
            .into_iter()
            .map(Serde::into_inner)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_is_off_without_credentials_and_checks_its_values() {
        let mut s = PushSettings::default();
        assert!(!s.enabled());
        assert!(s.problems().is_empty());
        s.credentials_json = Some(Secret::new(r#"{"private_key":"PEM-SECRET"}"#));
        assert!(s.enabled());
        s.credentials_file = Some("/etc/key.json".into());
        s.fcm_base_url = "fcm.googleapis.com".into();
        s.reminders = vec![Duration::from_secs(1)];
        s.call_ttl = Duration::from_secs(3600);
        let problems = s.problems().join("\n");
        for field in [
            "credentials_file and push.credentials_json",
            "fcm_base_url",
            "reminders",
            "call_ttl",
        ] {
            assert!(problems.contains(field), "{field} in {problems}");
        }
        // The key never prints.
        assert!(!format!("{s:?}").contains("PEM-SECRET"));
    }
}
