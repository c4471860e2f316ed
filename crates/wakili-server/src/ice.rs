//! Which ICE servers participants get, with their credentials.

use chrono::{DateTime, Utc};
use wakili_core::{CoreError, UserId, turn, webrtc::IceServer};
use wakili_settings::{ExternalTurnAuth, Settings};

/// Where the embedded STUN/TURN server is reachable, once it listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddedTurn {
    /// Host clients put in URLs.
    pub host: String,
    /// UDP port.
    pub udp_port: u16,
    /// TCP port.
    pub tcp_port: u16,
    /// TURN-over-TLS port, when TLS is configured.
    pub tls_port: Option<u16>,
}

impl EmbeddedTurn {
    /// `stun:` URL.
    pub fn stun_urls(&self) -> Vec<String> {
        vec![format!("stun:{}:{}", self.host, self.udp_port)]
    }

    /// `turn:`/`turns:` URLs.
    pub fn turn_urls(&self) -> Vec<String> {
        let mut urls = vec![
            format!("turn:{}:{}?transport=udp", self.host, self.udp_port),
            format!("turn:{}:{}?transport=tcp", self.host, self.tcp_port),
        ];
        if let Some(port) = self.tls_port {
            urls.push(format!("turns:{}:{port}?transport=tcp", self.host));
        }
        urls
    }
}

/// The host name clients use to reach the embedded TURN server.
pub fn advertised_host(settings: &Settings, bound: std::net::IpAddr) -> String {
    let host = if let Some(host) = settings
        .turn
        .public_host
        .as_deref()
        .filter(|h| !h.is_empty())
    {
        host.to_owned()
    } else if let Some(ip) = settings.turn.external_ip {
        ip.to_string()
    } else if !bound.is_unspecified() {
        bound.to_string()
    } else {
        // Bound to every interface with nothing configured: the host of the public URL.
        let url = settings.public_url();
        let authority = url.split("://").nth(1).unwrap_or("127.0.0.1");
        let authority = authority.split('/').next().unwrap_or(authority);
        match authority.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host.to_owned(),
            _ => authority.to_owned(),
        }
    };
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host
    }
}

/// Builds each participant's `iceServers`.
#[derive(Clone)]
pub struct IceDirectory {
    embedded: Option<EmbeddedTurn>,
    stun_urls: Vec<String>,
    external: Vec<wakili_settings::ExternalTurn>,
    secret: Vec<u8>,
    ttl: std::time::Duration,
}

impl std::fmt::Debug for IceDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceDirectory")
            .field("embedded", &self.embedded)
            .field("stun_urls", &self.stun_urls)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl IceDirectory {
    /// A directory for `settings`, with the embedded server where it listens (if it runs).
    pub fn new(settings: &Settings, embedded: Option<EmbeddedTurn>, secret: Vec<u8>) -> Self {
        Self {
            embedded,
            stun_urls: settings.ice.stun_urls.clone(),
            external: settings.ice.turn_servers.clone(),
            secret,
            ttl: settings.ice.credential_ttl,
        }
    }

    /// The embedded server's addresses, if it runs.
    pub fn embedded(&self) -> Option<&EmbeddedTurn> {
        self.embedded.as_ref()
    }

    /// `iceServers` for `user` at `now`, and when its credentials expire. Credentials are minted
    /// on aligned windows, so repeated calls return the same ones for a while.
    pub fn servers(
        &self,
        user: &UserId,
        now: DateTime<Utc>,
    ) -> Result<(Vec<IceServer>, DateTime<Utc>), CoreError> {
        let credential = turn::mint_aligned(&self.secret, user, now, self.ttl)?;
        let rest = |urls: Vec<String>| IceServer {
            urls,
            username: Some(credential.username.clone()),
            credential: Some(credential.credential.clone()),
        };
        let mut servers = Vec::new();
        let mut stun = self
            .embedded
            .as_ref()
            .map(EmbeddedTurn::stun_urls)
            .unwrap_or_default();
        stun.extend(self.stun_urls.iter().cloned());
        if !stun.is_empty() {
            servers.push(IceServer {
                urls: stun,
                username: None,
                credential: None,
            });
        }
        if let Some(embedded) = &self.embedded {
            servers.push(rest(embedded.turn_urls()));
        }
        for external in &self.external {
            servers.push(match external.auth {
                ExternalTurnAuth::Rest => rest(external.urls.clone()),
                ExternalTurnAuth::Static => IceServer {
                    urls: external.urls.clone(),
                    username: external.username.clone(),
                    credential: external.credential.as_ref().map(|c| c.expose().to_owned()),
                },
            });
        }
        Ok((servers, credential.expires_at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_and_external_servers_with_credentials() {
        let mut settings = Settings::default();
        settings.ice.stun_urls = vec!["stun:stun.example.com:3478".into()];
        settings.ice.turn_servers = vec![
            wakili_settings::ExternalTurn {
                urls: vec!["turns:fleet.example.com:5349?transport=tcp".into()],
                auth: ExternalTurnAuth::Rest,
                username: None,
                credential: None,
            },
            wakili_settings::ExternalTurn {
                urls: vec!["turn:relay.example.net:3478".into()],
                auth: ExternalTurnAuth::Static,
                username: Some("wakili".into()),
                credential: Some(wakili_settings::Secret::new("static-pass")),
            },
        ];
        let embedded = EmbeddedTurn {
            host: "turn.example.com".into(),
            udp_port: 3478,
            tcp_port: 3478,
            tls_port: Some(5349),
        };
        let dir = IceDirectory::new(&settings, Some(embedded), b"rest-secret".to_vec());
        let now: DateTime<Utc> = "2026-11-25T12:00:00Z".parse().unwrap();
        let (servers, expires) = dir.servers(&UserId::parse("u1").unwrap(), now).unwrap();
        assert_eq!(
            servers[0].urls,
            ["stun:turn.example.com:3478", "stun:stun.example.com:3478"]
        );
        assert_eq!(
            servers[1].urls,
            [
                "turn:turn.example.com:3478?transport=udp",
                "turn:turn.example.com:3478?transport=tcp",
                "turns:turn.example.com:5349?transport=tcp"
            ]
        );
        let username = servers[1].username.as_deref().unwrap();
        assert_eq!(username, format!("{}:u1", expires.timestamp()));
        let accepted =
            turn::verify(b"rest-secret", username, now, std::time::Duration::ZERO).unwrap();
        assert_eq!(
            servers[1].credential.as_deref(),
            Some(accepted.password.as_str())
        );
        assert_eq!(
            servers[2].username, servers[1].username,
            "the fleet shares the secret"
        );
        assert_eq!(servers[3].username.as_deref(), Some("wakili"));
        assert_eq!(servers[3].credential.as_deref(), Some("static-pass"));
    }

    #[test]
    fn advertised_host_prefers_configuration() {
        let mut s = Settings::default();
        let any: std::net::IpAddr = "0.0.0.0".parse().unwrap();
        assert_eq!(
            advertised_host(&s, "127.0.0.1".parse().unwrap()),
            "127.0.0.1"
        );
        assert_eq!(advertised_host(&s, any), "127.0.0.1", "from public_url");
        s.public_url = Some("https://consult.example.com".into());
        assert_eq!(advertised_host(&s, any), "consult.example.com");
        s.turn.external_ip = Some("2001:db8::1".parse().unwrap());
        assert_eq!(advertised_host(&s, any), "[2001:db8::1]");
        s.turn.public_host = Some("turn.example.com".into());
        assert_eq!(advertised_host(&s, any), "turn.example.com");
    }
}
