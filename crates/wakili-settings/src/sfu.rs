//! The embedded SFU (`[sfu]`): where its media port listens and what it advertises.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

/// The embedded SFU (`[sfu]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SfuSettings {
    /// Run the SFU. Off: every call is peer to peer, whatever its media mode.
    pub enabled: bool,
    /// The one UDP port every media session uses (and ICE-TCP on the same TCP port).
    pub listen: SocketAddr,
    /// The address advertised to browsers as the SFU's candidate. Default: `turn.external_ip`,
    /// else the listen address, else (listening on every interface) the interface that routes
    /// to the internet.
    pub public_ip: Option<IpAddr>,
    /// Also accept ICE over TCP, for networks that block UDP.
    pub ice_tcp: bool,
    /// Most participants whose media one consultation routes.
    pub max_participants: usize,
    /// Most tracks one participant may publish (microphone, camera, screen…).
    pub max_tracks_per_participant: usize,
    /// The SFU records consultations (every participant's tracks) when their media mode allows
    /// it; off: the lawyer's browser records.
    pub record: bool,
    /// Media per stored chunk of a server recording (what a crash may lose at most).
    #[serde(with = "humantime_serde")]
    pub record_chunk: std::time::Duration,
    /// Memory for recording chunks waiting for storage, all recordings together (MiB).
    pub record_memory_mib: u64,
    /// Spool space for recording chunks waiting for storage once that memory is full (MiB).
    pub record_spool_mib: u64,
}

impl Default for SfuSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 3479)),
            public_ip: None,
            ice_tcp: true,
            max_participants: 8,
            max_tracks_per_participant: 4,
            record: true,
            record_chunk: std::time::Duration::from_secs(4),
            record_memory_mib: 64,
            record_spool_mib: 2048,
        }
    }
}

impl SfuSettings {
    /// What is wrong, one line each.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !(2..=64).contains(&self.max_participants) {
            problems.push("sfu.max_participants: 2–64".into());
        }
        if !(1..=16).contains(&self.max_tracks_per_participant) {
            problems.push("sfu.max_tracks_per_participant: 1–16".into());
        }
        if !(1..=30).contains(&self.record_chunk.as_secs()) {
            problems.push("sfu.record_chunk: 1s–30s".into());
        }
        if !(1..=65_536).contains(&self.record_memory_mib) {
            problems.push("sfu.record_memory_mib: 1–65536".into());
        }
        if self.record_spool_mib > 1 << 24 {
            problems.push("sfu.record_spool_mib: at most 16777216 (16 TiB)".into());
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_limits_are_checked() {
        assert!(SfuSettings::default().problems().is_empty());
        let bad = SfuSettings {
            max_participants: 1,
            max_tracks_per_participant: 0,
            ..SfuSettings::default()
        };
        let problems = bad.problems().join("\n");
        assert!(problems.contains("sfu.max_participants"), "{problems}");
        assert!(
            problems.contains("sfu.max_tracks_per_participant"),
            "{problems}"
        );
    }
}
