//! Settings for media: ICE delivery, the embedded STUN/TURN server and the mobile start-up config.

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};
use wakili_core::webrtc::IceTransportPolicy;

use crate::Secret;

/// How ICE servers are handed out (`[ice]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IceSettings {
    /// `all` (direct when possible) or `relay` (always through TURN).
    pub transport_policy: IceTransportPolicy,
    /// Lifetime of the TURN credentials in each config.
    #[serde(with = "humantime_serde")]
    pub credential_ttl: Duration,
    /// Extra STUN servers (`stun:host:port`).
    pub stun_urls: Vec<String>,
    /// External TURN servers (a coturn fleet, a TURN service).
    pub turn_servers: Vec<ExternalTurn>,
}

/// An external TURN server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalTurn {
    /// `turn:`/`turns:` URLs.
    pub urls: Vec<String>,
    /// `rest`: ephemeral credentials from `turn.secret` (coturn `use-auth-secret`);
    /// `static`: the fixed `username` / `credential` below.
    pub auth: ExternalTurnAuth,
    /// Static username.
    #[serde(default)]
    pub username: Option<String>,
    /// Static password.
    #[serde(default)]
    pub credential: Option<Secret>,
}

/// How an external TURN server authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExternalTurnAuth {
    /// TURN REST API credentials minted per participant.
    Rest,
    /// One fixed username and password.
    Static,
}

/// The embedded STUN/TURN server (`[turn]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TurnSettings {
    /// Run the embedded server (turn it off when an external TURN fleet is used).
    pub enabled: bool,
    /// UDP and TCP listen address (flag `--turn-listen`).
    pub listen: SocketAddr,
    /// TURN-over-TLS listen address, served when a certificate and key are configured.
    pub tls_listen: SocketAddr,
    /// PEM certificate chain for TURN over TLS.
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key for TURN over TLS.
    pub tls_key_file: Option<PathBuf>,
    /// Authentication realm.
    pub realm: String,
    /// Shared secret for REST credentials (coturn `static-auth-secret`). Empty: generated into
    /// `<data_dir>/secrets/`.
    pub secret: Option<Secret>,
    /// Public IP to advertise as the relay address (behind NAT, in the cloud).
    pub external_ip: Option<std::net::IpAddr>,
    /// Host name clients use in `turn:` URLs; default: `external_ip`, else the listen address.
    pub public_host: Option<String>,
    /// Allow relaying to 127.0.0.0/8 and ::1 (tests, single-machine demos).
    pub allow_loopback_peers: bool,
    /// Allow relaying to RFC 1918 / unique-local / link-local peers (private networks only).
    pub allow_private_peers: bool,
    /// Most simultaneous allocations one user may hold.
    pub max_allocations_per_user: u32,
    /// How long after its expiry a TURN credential is still accepted. Zero by default: the
    /// embedded relay checks credentials on the same clock that minted them. Raise it only when
    /// nodes minting and checking credentials disagree about the time.
    #[serde(with = "humantime_serde")]
    pub credential_leeway: Duration,
}

/// What mobile apps learn at start-up (`[mobile]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MobileSettings {
    /// Oldest app version allowed, per platform (`ios`, `android`, `web`); older apps must update.
    pub min_versions: BTreeMap<String, String>,
    /// Feature flags by name.
    pub features: BTreeMap<String, bool>,
}

impl Default for IceSettings {
    fn default() -> Self {
        Self {
            transport_policy: IceTransportPolicy::All,
            credential_ttl: Duration::from_secs(3600),
            stun_urls: Vec::new(),
            turn_servers: Vec::new(),
        }
    }
}

impl Default for TurnSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 3478)),
            tls_listen: SocketAddr::from(([127, 0, 0, 1], 5349)),
            tls_cert_file: None,
            tls_key_file: None,
            realm: "wakili".into(),
            secret: None,
            external_ip: None,
            public_host: None,
            allow_loopback_peers: false,
            allow_private_peers: false,
            max_allocations_per_user: 10,
            credential_leeway: Duration::ZERO,
        }
    }
}

impl Default for MobileSettings {
    fn default() -> Self {
        Self {
            min_versions: BTreeMap::from([
                ("android".into(), "1.0.0".into()),
                ("ios".into(), "1.0.0".into()),
            ]),
            features: BTreeMap::from([
                ("recording".into(), true),
                ("screenShare".into(), true),
                ("waitingRoom".into(), true),
            ]),
        }
    }
}

/// Problems in the media sections, each naming the setting.
pub(crate) fn problems(
    ice: &IceSettings,
    turn: &TurnSettings,
    mobile: &MobileSettings,
) -> Vec<String> {
    let mut problems = Vec::new();
    if !(Duration::from_secs(60)..=Duration::from_secs(7 * 24 * 3600)).contains(&ice.credential_ttl)
    {
        problems.push("ice.credential_ttl: between 1m and 7d, e.g. \"1h\"".into());
    }
    if turn.credential_leeway > Duration::from_secs(300) {
        problems.push(
            "turn.credential_leeway: at most 5m; it only covers clock skew between nodes".into(),
        );
    }
    for url in &ice.stun_urls {
        if !url.starts_with("stun:") && !url.starts_with("stuns:") {
            problems.push(format!(
                "ice.stun_urls: {url:?} must start with stun: or stuns:"
            ));
        }
    }
    for (i, server) in ice.turn_servers.iter().enumerate() {
        if server.urls.is_empty()
            || server
                .urls
                .iter()
                .any(|u| !u.starts_with("turn:") && !u.starts_with("turns:"))
        {
            problems.push(format!(
                "ice.turn_servers[{i}].urls: one or more turn:/turns: URLs"
            ));
        }
        match server.auth {
            ExternalTurnAuth::Static if server.username.is_none() || server.credential.is_none() => problems.push(
                format!("ice.turn_servers[{i}]: auth = \"static\" needs username and credential"),
            ),
            ExternalTurnAuth::Rest if server.username.is_some() || server.credential.is_some() => problems.push(
                format!("ice.turn_servers[{i}]: auth = \"rest\" mints credentials from turn.secret; remove username/credential"),
            ),
            _ => {}
        }
    }
    if !turn.enabled && ice.turn_servers.is_empty() {
        problems.push("turn.enabled = false needs at least one ice.turn_servers entry, or participants behind strict NATs cannot connect".into());
    }
    if turn.tls_cert_file.is_some() != turn.tls_key_file.is_some() {
        problems.push(
            "turn.tls_cert_file and turn.tls_key_file: give both (TURN over TLS) or neither".into(),
        );
    }
    if turn.enabled && turn.listen.ip().is_unspecified() && turn.external_ip.is_none() {
        problems.push(format!(
            "turn.external_ip: required when turn.listen ({}) binds every interface: the relay must advertise an address clients reach",
            turn.listen
        ));
    }
    if turn.realm.trim().is_empty() {
        problems.push("turn.realm: must not be empty".into());
    }
    if let Some(secret) = &turn.secret
        && secret.expose().len() < 16
    {
        problems
            .push("turn.secret: at least 16 bytes; leave it empty to use a generated one".into());
    }
    if turn.max_allocations_per_user == 0 {
        problems.push("turn.max_allocations_per_user: at least 1".into());
    }
    for (platform, version) in &mobile.min_versions {
        if !["ios", "android", "web"].contains(&platform.as_str()) {
            problems.push(format!(
                "mobile.min_versions.{platform}: platforms are ios, android, web"
            ));
        }
        if wakili_core::version::Version::parse(version).is_none() {
            problems.push(format!(
                "mobile.min_versions.{platform}: {version:?} is not MAJOR.MINOR.PATCH"
            ));
        }
    }
    problems
}
