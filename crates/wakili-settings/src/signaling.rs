//! The `[signaling]` section: Socket.IO rooms, waiting room, resume and limits.

use std::time::Duration;

use serde::{Deserialize, Serialize};
pub use wakili_core::room::Admission;

/// Signaling over Socket.IO (`[signaling]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SignalingSettings {
    /// Redis shared by every node (`redis://host:6379`). Unset: one node, rooms in memory.
    pub redis_url: Option<String>,
    /// How long a dropped participant may come back with its resume token.
    #[serde(with = "humantime_serde")]
    pub resume_grace: Duration,
    /// `on_lawyer_join`: waiting clients enter when the lawyer does; `manual`: the lawyer admits.
    pub admission: Admission,
    /// Version of the recording notice participants consent to (stored with each decision).
    pub notice_version: String,
    /// Events per second one connection may send on average…
    pub rate_per_second: u32,
    /// …and in a burst.
    pub rate_burst: u32,
    /// Largest Socket.IO packet; a bigger one closes the connection.
    pub max_packet_bytes: u64,
    /// Least time between two stored quality samples of one participant.
    #[serde(with = "humantime_serde")]
    pub quality_sample_interval: Duration,
    /// Connections one user may hold open on this node at once; one more is refused at connect.
    pub max_sockets_per_user: u32,
    /// How long before its token expires a connection is sent `auth:expiring`, so that the
    /// client can send `auth:refresh` with a new token in time.
    #[serde(with = "humantime_serde")]
    pub expiry_warning: Duration,
}

impl Default for SignalingSettings {
    fn default() -> Self {
        Self {
            redis_url: None,
            resume_grace: Duration::from_secs(30),
            admission: Admission::OnLawyerJoin,
            notice_version: "2026-01".into(),
            rate_per_second: 50,
            rate_burst: 200,
            max_packet_bytes: 128 * 1024,
            quality_sample_interval: Duration::from_secs(5),
            max_sockets_per_user: 10,
            expiry_warning: Duration::from_secs(60),
        }
    }
}

impl SignalingSettings {
    /// Problems, each naming the setting.
    pub(crate) fn problems(&self) -> Vec<String> {
        let mut bad = Vec::new();
        if let Some(url) = &self.redis_url
            && !(url.starts_with("redis://") || url.starts_with("rediss://"))
        {
            bad.push("signaling.redis_url: must start with redis:// or rediss://".into());
        }
        if self.resume_grace < Duration::from_secs(1)
            || self.resume_grace > Duration::from_secs(3600)
        {
            bad.push("signaling.resume_grace: must be between 1s and 1h".into());
        }
        if self.notice_version.trim().is_empty() || self.notice_version.len() > 64 {
            bad.push("signaling.notice_version: must be 1 to 64 characters".into());
        }
        if self.rate_per_second == 0 || self.rate_burst < self.rate_per_second {
            bad.push(
                "signaling.rate_per_second / rate_burst: rate must be positive and the burst at least the rate".into(),
            );
        }
        if !(70 * 1024..=16 * 1024 * 1024).contains(&self.max_packet_bytes) {
            bad.push(
                "signaling.max_packet_bytes: must be between 71680 (a 64 KiB signal fits) and 16777216".into(),
            );
        }
        if !(1..=100_000).contains(&self.max_sockets_per_user) {
            bad.push("signaling.max_sockets_per_user: must be between 1 and 100000".into());
        }
        if self.expiry_warning > Duration::from_secs(3600) {
            bad.push("signaling.expiry_warning: must be at most 1h".into());
        }
        bad
    }
}
