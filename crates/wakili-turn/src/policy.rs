//! Which peers the relay may talk to. Sans-IO.
//!
//! A TURN relay that forwards to any address is an open door into the network it runs in: a
//! participant could reach the operator's databases, metadata services or admin panels through
//! it. Only globally reachable unicast addresses are allowed unless the operator says otherwise.
//!
//! "Globally reachable" is the IANA special-purpose address registries' column of that name
//! (RFC 6890 and its updates), as classified by the `ip_network` crate, not a hand-kept list:
//! benchmarking (198.18.0.0/15), the TEST-NETs, 192.0.0.0/24, reserved, documentation and
//! discard-only prefixes are all refused, and so is multicast (a relay only sends unicast).
//! IPv6 forms that carry an IPv4 address (NAT64, 6to4) are judged by that address. Two groups
//! can be opened separately: loopback, and private networks (RFC 1918, shared address space
//! 100.64.0.0/10, unique-local fc00::/7, link-local).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ip_network::{Ipv4Network, Ipv6Network};

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

/// What kind of address a peer is, as far as the policy cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Global,
    Loopback,
    Private,
    /// Anything else that is not globally reachable: never relayed to.
    Special,
}

fn classify_v4(v4: Ipv4Addr) -> Class {
    let [a, b, ..] = v4.octets();
    if v4.is_loopback() {
        Class::Loopback
    } else if v4.is_multicast() {
        Class::Special
    } else if v4.is_private() || v4.is_link_local() || (a == 100 && (b & 0xc0) == 64) {
        Class::Private
    } else if Ipv4Network::from(v4).is_global() {
        Class::Global
    } else {
        Class::Special
    }
}

fn classify_v6(v6: Ipv6Addr) -> Class {
    let [first, second, ..] = v6.segments();
    let [.., a, b, c, d] = v6.octets();
    if v6.is_loopback() {
        Class::Loopback
    } else if v6.is_multicast() {
        Class::Special
    } else if (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80 {
        Class::Private
    } else if first == 0x64 && second == 0xff9b && v6.segments()[2..6] == [0, 0, 0, 0] {
        // NAT64 (RFC 6052): the packet ends up at the IPv4 address it carries.
        classify_v4(Ipv4Addr::new(a, b, c, d))
    } else if first == 0x2002 {
        // 6to4 (RFC 3056): likewise, the IPv4 address is in bits 16–48.
        let [_, _, a, b, c, d, ..] = v6.octets();
        classify_v4(Ipv4Addr::new(a, b, c, d))
    } else if Ipv6Network::from(v6).is_global() && !v6_special_purpose(first, second) {
        Class::Global
    } else {
        Class::Special
    }
}

/// IPv6 special-purpose blocks that `ip_network` (which follows std's older rules) still calls
/// global: discard-only 100::/64, IETF protocol assignments 2001::/23 (Teredo, benchmarking,
/// ORCHID; the few anycast services in it are not peers) and local-use NAT64 64:ff9b:1::/48.
fn v6_special_purpose(first: u16, second: u16) -> bool {
    (first == 0x0100 && second == 0)
        || (first == 0x2001 && second < 0x0200)
        || (first == 0x64 && second == 0xff9b)
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

    /// Whether relaying to `ip` is allowed by its class. IPv4-mapped IPv6 addresses are judged
    /// as IPv4.
    fn allows_class(&self, ip: IpAddr) -> bool {
        let class = match ip {
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map_or_else(|| classify_v6(v6), classify_v4),
            IpAddr::V4(v4) => classify_v4(v4),
        };
        match class {
            Class::Global => true,
            Class::Loopback => self.allow_loopback,
            Class::Private => self.allow_private,
            Class::Special => false,
        }
    }
}

/// The same address, an IPv4-mapped IPv6 form included.
fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    let canonical = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    };
    canonical(a) == canonical(b)
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
        for ok in [
            "8.8.8.8",
            "1.1.1.1",
            "81.2.69.160",
            "192.0.0.9",
            "2606:4700::1111",
            "2a00:1450:4001:80b::200e",
            "::ffff:8.8.8.8",
        ] {
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
            "0.1.2.3",
            "::",
            "224.0.0.1",
            "239.255.255.250",
            "255.255.255.255",
            "fd00::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.1.1",
            "::ffff:198.18.0.1",
            "240.0.0.1",
            "192.0.0.8",
        ] {
            assert!(!p.allows(ip(refused)), "{refused}");
        }
    }

    /// The special-purpose ranges a hand-kept list missed (issue 15): benchmarking, the
    /// TEST-NETs, IETF protocol assignments, documentation and discard-only prefixes.
    #[test]
    fn special_purpose_ranges_are_refused_even_with_everything_allowed() {
        let open = PeerPolicy {
            allow_loopback: true,
            allow_private: true,
            sfu: None,
        };
        for refused in [
            "198.18.0.1",
            "198.19.255.254",
            "192.0.2.10",
            "198.51.100.7",
            "203.0.113.7",
            "192.0.0.1",
            "192.0.0.170",
            "2001:db8::1",
            "100::1",
            "2001:2::1",
            "64:ff9b:1::1",
            "2001::1",
            "2001:10::1",
        ] {
            assert!(!open.allows(ip(refused)), "{refused}");
        }
    }

    /// IPv6 forms that carry an IPv4 address are judged by it: a NAT64 or 6to4 address could
    /// otherwise smuggle a loopback or private peer past the policy.
    #[test]
    fn ipv6_forms_carrying_ipv4_are_judged_by_the_ipv4_address() {
        let p = PeerPolicy::default();
        for refused in [
            "64:ff9b::7f00:1",
            "64:ff9b::a00:1",
            "2002:7f00:1::1",
            "2002:c0a8:101::1",
        ] {
            assert!(!p.allows(ip(refused)), "{refused}");
        }
        for ok in ["64:ff9b::808:808", "2002:808:808::1"] {
            assert!(p.allows(ip(ok)), "{ok}");
        }
        let loopback = PeerPolicy {
            allow_loopback: true,
            allow_private: false,
            sfu: None,
        };
        assert!(loopback.allows(ip("64:ff9b::7f00:1")));
    }

    #[test]
    fn loopback_and_private_can_be_allowed_separately() {
        let loopback = PeerPolicy {
            allow_loopback: true,
            allow_private: false,
            sfu: None,
        };
        assert!(loopback.allows(ip("127.0.0.1")) && loopback.allows(ip("::ffff:127.0.0.1")));
        assert!(!loopback.allows(ip("10.0.0.1")));
        let private = PeerPolicy {
            allow_loopback: false,
            allow_private: true,
            sfu: None,
        };
        assert!(private.allows(ip("10.0.0.1")) && private.allows(ip("fd00::1")));
        assert!(private.allows(ip("100.64.0.1")) && private.allows(ip("fe80::1")));
        assert!(!private.allows(ip("127.0.0.1")));
        assert!(!private.allows(ip("0.0.0.0")), "never unspecified");
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
