//! How the SFU runs: where it listens, what it advertises, its limits and codecs.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    time::Duration,
};

use wakili_forward::ForwarderConfig;

use crate::SfuError;

/// Settings of an [`Sfu`](crate::Sfu).
#[derive(Debug, Clone)]
pub struct SfuConfig {
    /// The UDP address every session's media goes through (port 0: any free port).
    pub bind: SocketAddr,
    /// The address advertised as the host candidate. Default: the bound IP; when that is
    /// unspecified (`0.0.0.0`/`::`), the address of the interface that routes to the
    /// internet, found without sending anything.
    pub public_ip: Option<IpAddr>,
    /// Also accept ICE over TCP (RFC 6544 passive candidate, RFC 4571 framing) on the same
    /// port number, for networks that block UDP. Default: on.
    pub ice_tcp: bool,
    /// Most participants in one room. Default 8.
    pub max_participants_per_room: usize,
    /// Most tracks (m-lines sending media) one participant may publish. Default 4.
    pub max_tracks_per_participant: usize,
    /// Codecs offered and accepted.
    pub codecs: Codecs,
    /// Starting downlink bandwidth estimate per subscriber (bits/s), refined by str0m's
    /// TWCC-based estimator; `None` disables bandwidth estimation (layers then follow caps and
    /// overrides only, starting on the lowest). Default 1 Mbit/s.
    pub initial_estimate_bps: Option<u64>,
    /// A participant whose ICE+DTLS connection is not up within this time after joining is
    /// dropped (and reported [`Disconnected`](crate::SfuEvent::Disconnected)). Default 30 s.
    pub connect_timeout: Duration,
    /// Layer choice, keyframe pacing and speaker detection (the forwarder's own settings; its
    /// `max_tracks_per_publisher` is replaced by [`max_tracks_per_participant`](Self::max_tracks_per_participant)).
    pub forwarder: ForwarderConfig,
    /// ICE-TCP connections queued for the accept loop ([`wakili_net::listen`]). Default 4096.
    pub listen_backlog: u32,
}

impl Default for SfuConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
            public_ip: None,
            ice_tcp: true,
            max_participants_per_room: 8,
            max_tracks_per_participant: 4,
            codecs: Codecs::default(),
            initial_estimate_bps: Some(1_000_000),
            connect_timeout: Duration::from_secs(30),
            forwarder: ForwarderConfig::default(),
            listen_backlog: wakili_net::DEFAULT_BACKLOG,
        }
    }
}

impl SfuConfig {
    /// A configuration for tests: loopback, any port, defaults otherwise.
    pub fn loopback() -> Self {
        Self {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            ..Self::default()
        }
    }

    /// Refuses settings that cannot work.
    pub(crate) fn validate(&self) -> Result<(), SfuError> {
        let invalid = |reason: &str| Err(SfuError::InvalidConfig(reason.to_owned()));
        if self.max_participants_per_room < 2 {
            return invalid("max_participants_per_room must be at least 2");
        }
        if self.max_tracks_per_participant == 0 {
            return invalid("max_tracks_per_participant must be at least 1");
        }
        if self.connect_timeout.is_zero() {
            return invalid("connect_timeout must not be zero");
        }
        if let Some(ip) = self.public_ip
            && ip.is_unspecified()
        {
            return invalid("public_ip must be a concrete address");
        }
        Ok(())
    }

    /// The IP written into host candidates, given the address actually bound.
    pub(crate) fn advertised_ip(&self, bound: SocketAddr) -> Result<IpAddr, SfuError> {
        if let Some(ip) = self.public_ip {
            return Ok(ip);
        }
        if !bound.ip().is_unspecified() {
            return Ok(bound.ip());
        }
        route_ip(bound.is_ipv6()).ok_or(SfuError::NoPublicIp)
    }
}

/// The local address the kernel would use to reach the internet: a UDP socket is "connected"
/// (no packet is sent) and asked for its own address.
fn route_ip(v6: bool) -> Option<IpAddr> {
    let (local, remote): (SocketAddr, SocketAddr) = if v6 {
        (
            "[::]:0".parse().ok()?,
            "[2001:4860:4860::8888]:80".parse().ok()?,
        )
    } else {
        ("0.0.0.0:0".parse().ok()?, "8.8.8.8:80".parse().ok()?)
    };
    let socket = std::net::UdpSocket::bind(local).ok()?;
    socket.connect(remote).ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_unspecified()).then_some(ip)
}

/// Which codecs sessions negotiate. VP8 is always on: it is the codec every browser sends
/// simulcast in, and the one whose keyframes and picture ids this SFU reads most closely.
/// Opus is the only audio codec (without RED, which RTP-mode forwarding would pass through
/// unparsed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Codecs {
    /// Opus audio. Default on; without it no audio is accepted.
    pub opus: bool,
    /// VP9 video. Default on.
    pub vp9: bool,
    /// H.264 video. Default on.
    pub h264: bool,
    /// AV1 video. Default on.
    pub av1: bool,
}

impl Default for Codecs {
    fn default() -> Self {
        Self {
            opus: true,
            vp9: true,
            h264: true,
            av1: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_that_cannot_work_are_refused() {
        let cases = [
            SfuConfig {
                max_participants_per_room: 1,
                ..SfuConfig::loopback()
            },
            SfuConfig {
                max_tracks_per_participant: 0,
                ..SfuConfig::loopback()
            },
            SfuConfig {
                connect_timeout: Duration::ZERO,
                ..SfuConfig::loopback()
            },
            SfuConfig {
                public_ip: Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
                ..SfuConfig::loopback()
            },
        ];
        for config in cases {
            assert!(
                matches!(config.validate(), Err(SfuError::InvalidConfig(_))),
                "{config:?}"
            );
        }
        assert_eq!(SfuConfig::default().validate(), Ok(()));
    }

    #[test]
    fn the_advertised_address_is_the_public_ip_else_the_bound_one() {
        let bound: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        assert_eq!(
            SfuConfig::loopback().advertised_ip(bound),
            Ok(IpAddr::V4(Ipv4Addr::LOCALHOST))
        );
        let public = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));
        let config = SfuConfig {
            public_ip: Some(public),
            ..SfuConfig::default()
        };
        assert_eq!(
            config.advertised_ip("0.0.0.0:4000".parse().unwrap()),
            Ok(public)
        );
    }
}
