//! Which peers the relay may talk to. Sans-IO.
//!
//! A TURN relay that forwards to any address is an open door into the network it runs in: a
//! participant could reach the operator's databases, metadata services or admin panels through
//! it. Only public unicast addresses are allowed unless the operator says otherwise.

use std::net::IpAddr;

/// The relay's peer-address policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PeerPolicy {
    /// Allow 127.0.0.0/8 and ::1.
    pub allow_loopback: bool,
    /// Allow RFC 1918, carrier-grade NAT (100.64/10), unique-local (fc00::/7) and link-local.
    pub allow_private: bool,
}

impl PeerPolicy {
    /// Whether relaying to `ip` is allowed.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        if ip.is_loopback() {
            return self.allow_loopback;
        }
        if ip.is_unspecified() || ip.is_multicast() {
            return false;
        }
        match ip {
            IpAddr::V4(v4) => {
                let [a, b, ..] = v4.octets();
                if v4.is_broadcast() || a == 0 || a >= 240 {
                    return false;
                }
                let private = v4.is_private()
                    || v4.is_link_local()
                    || (a == 100 && (b & 0xc0) == 64)
                    || (a == 192 && b == 0 && v4.octets()[2] == 0);
                !private || self.allow_private
            }
            IpAddr::V6(v6) => {
                let first = v6.segments()[0];
                let private = (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80;
                !private || self.allow_private
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn public_peers_only_by_default() {
        let p = PeerPolicy::default();
        for ok in ["8.8.8.8", "203.0.113.7", "2001:db8::1", "2606:4700::1111"] {
            assert!(p.allows(ip(ok)), "{ok}");
        }
        for refused in [
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "10.0.0.1",
            "172.16.5.5",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::",
            "224.0.0.1",
            "255.255.255.255",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.1.1",
            "240.0.0.1",
            "192.0.0.8",
        ] {
            assert!(!p.allows(ip(refused)), "{refused}");
        }
    }

    #[test]
    fn loopback_and_private_can_be_allowed_separately() {
        let loopback = PeerPolicy {
            allow_loopback: true,
            allow_private: false,
        };
        assert!(loopback.allows(ip("127.0.0.1")) && loopback.allows(ip("::ffff:127.0.0.1")));
        assert!(!loopback.allows(ip("10.0.0.1")));
        let private = PeerPolicy {
            allow_loopback: false,
            allow_private: true,
        };
        assert!(private.allows(ip("10.0.0.1")) && private.allows(ip("fd00::1")));
        assert!(!private.allows(ip("127.0.0.1")));
        assert!(!private.allows(ip("0.0.0.0")), "never unspecified");
    }
}
