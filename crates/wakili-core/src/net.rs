//! Which network addresses Wakili may connect to on someone else's behalf: the TURN relay's
//! peers, webhook endpoints. Sans-IO.
//!
//! A relay or a webhook sender that reaches any address is an open door into the network it
//! runs in: a participant or an admin could reach the operator's databases, metadata services
//! or admin panels through it. Only globally reachable unicast addresses are allowed unless the
//! operator says otherwise.
//!
//! "Globally reachable" is the IANA special-purpose address registries' column of that name
//! (RFC 6890 and its updates), as classified by the `ip_network` crate, not a hand-kept list:
//! benchmarking (198.18.0.0/15), the TEST-NETs, 192.0.0.0/24, reserved, documentation and
//! discard-only prefixes are all refused, and so is multicast. IPv6 forms that carry an IPv4
//! address (NAT64, 6to4) are judged by that address. Two groups can be opened separately:
//! loopback, and private networks (RFC 1918, shared address space 100.64.0.0/10, unique-local
//! fc00::/7, link-local).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ip_network::{Ipv4Network, Ipv6Network};

/// Which addresses may be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AddressPolicy {
    /// Allow 127.0.0.0/8 and ::1.
    pub allow_loopback: bool,
    /// Allow RFC 1918, shared address space (100.64/10), unique-local (fc00::/7) and link-local.
    pub allow_private: bool,
}

/// What kind of address a peer is, as far as the policy cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Global,
    Loopback,
    Private,
    /// Anything else that is not globally reachable: never reached.
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

impl AddressPolicy {
    /// Whether `ip` may be reached. IPv4-mapped IPv6 addresses are judged as IPv4.
    pub fn allows(&self, ip: IpAddr) -> bool {
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
pub fn same_ip(a: IpAddr, b: IpAddr) -> bool {
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
        let p = AddressPolicy::default();
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
        let open = AddressPolicy {
            allow_loopback: true,
            allow_private: true,
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
        let p = AddressPolicy::default();
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
        let loopback = AddressPolicy {
            allow_loopback: true,
            allow_private: false,
        };
        assert!(loopback.allows(ip("64:ff9b::7f00:1")));
    }

    #[test]
    fn loopback_and_private_can_be_allowed_separately() {
        let loopback = AddressPolicy {
            allow_loopback: true,
            allow_private: false,
        };
        assert!(loopback.allows(ip("127.0.0.1")) && loopback.allows(ip("::ffff:127.0.0.1")));
        assert!(!loopback.allows(ip("10.0.0.1")));
        let private = AddressPolicy {
            allow_loopback: false,
            allow_private: true,
        };
        assert!(private.allows(ip("10.0.0.1")) && private.allows(ip("fd00::1")));
        assert!(private.allows(ip("100.64.0.1")) && private.allows(ip("fe80::1")));
        assert!(!private.allows(ip("127.0.0.1")));
        assert!(!private.allows(ip("0.0.0.0")), "never unspecified");
    }
}
