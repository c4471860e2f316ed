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
