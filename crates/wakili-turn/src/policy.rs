//! Which peers the relay may talk to. Sans-IO.
//!
//! Peers are judged by their address class ([`wakili_core::net::AddressPolicy`]: globally
//! reachable unicast only, unless loopback or private networks are opened), with one exception:
//! the embedded SFU's own address, so a client that can only reach the relay still reaches the
//! SFU.

use std::net::{IpAddr, SocketAddr};

use wakili_core::net::{AddressPolicy, same_ip};

/// The relay's peer-address policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PeerPolicy {
    /// Allow 127.0.0.0/8 and ::1.
    pub allow_loopback: bool,
    /// Allow RFC 1918, shared address space (100.64/10), unique-local (fc00::/7) and link-local.
    pub allow_private: bool,
    /// One address always allowed, whatever its class: the embedded SFU's, so a client that can
    /// only reach the relay still reaches the SFU while other loopback and private peers stay
    /// refused. Permissions are granted for its IP; data flows to and from that address only.
    pub sfu: Option<SocketAddr>,
}

impl PeerPolicy {
    /// Whether a permission for `ip` may be installed (CreatePermission, ChannelBind): its class
    /// allows it, or it is the SFU's IP.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.sfu.is_some_and(|sfu| same_ip(sfu.ip(), ip)) || self.allows_class(ip)
    }

    /// Whether data may be relayed to or from `peer`: its class allows it, or it is exactly the
    /// SFU's address (another port of the SFU's IP is judged by its class).
    pub fn allows_addr(&self, peer: SocketAddr) -> bool {
        self.sfu
            .is_some_and(|sfu| same_ip(sfu.ip(), peer.ip()) && sfu.port() == peer.port())
            || self.allows_class(peer.ip())
    }

    /// Whether relaying to `ip` is allowed by its class ([`AddressPolicy`]).
    fn allows_class(&self, ip: IpAddr) -> bool {
        AddressPolicy {
            allow_loopback: self.allow_loopback,
            allow_private: self.allow_private,
        }
        .allows(ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Relaying to the embedded SFU works even on a loopback or private address, and only to
    /// it: the rest of loopback and private space stays refused.
    #[test]
    fn the_sfu_is_reachable_through_the_relay_and_nothing_else_on_its_network() {
        let policy = PeerPolicy {
            sfu: Some("127.0.0.1:3479".parse().unwrap()),
            ..PeerPolicy::default()
        };
        let addr = |a: &str| a.parse::<SocketAddr>().unwrap();
        assert!(
            policy.allows(ip("127.0.0.1")),
            "a permission for the SFU's IP"
        );
        assert!(policy.allows(ip("::ffff:127.0.0.1")));
        assert!(policy.allows_addr(addr("127.0.0.1:3479")));
        assert!(policy.allows_addr(addr("[::ffff:127.0.0.1]:3479")));
        assert!(
            !policy.allows_addr(addr("127.0.0.1:5432")),
            "another port: PostgreSQL"
        );
        assert!(!policy.allows(ip("127.0.0.2")) && !policy.allows(ip("10.0.0.1")));
        assert!(!policy.allows_addr(addr("10.0.0.1:3479")));
        assert!(
            policy.allows_addr(addr("8.8.8.8:53")),
            "global peers as before"
        );
    }
}
