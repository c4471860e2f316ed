//! Connection caps: how many connections may be open in total and per client address. Decisions
//! only (no sockets, no clock): [`Table`] admits or refuses, [`Throttle`] decides when a refusal
//! or accept error is worth a log line.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv6Addr},
    time::Duration,
};

use tokio::time::Instant;

/// The caps in effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caps {
    /// Most connections open at once.
    pub total: u32,
    /// Most connections open at once from one client (IPv6: one /64); 0: no cap.
    pub per_ip: u32,
    /// Addresses the per-client cap does not apply to (reverse proxies, this host).
    pub exempt: Vec<IpAddr>,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `http.max_connections` are open.
    Total,
    /// `http.max_connections_per_ip` are open from this client.
    PerIp,
}

/// What a connection counts against: the client key, or `None` when the client is exempt from
/// the per-client cap.
pub type ClientKey = Option<IpAddr>;

/// The key `ip` counts under: IPv4 addresses as they are, IPv6 addresses by their /64 (one
/// subscriber's prefix: a client with a /64 must not get 2^64 separate allowances), IPv4-mapped
/// IPv6 as IPv4; `None` for exempt addresses.
pub fn client_key(ip: IpAddr, exempt: &[IpAddr]) -> ClientKey {
    let ip = ip.to_canonical();
    if exempt.iter().any(|e| e.to_canonical() == ip) {
        return None;
    }
    Some(match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !(u128::MAX >> 64))),
    })
}

/// Open connections, in total and per client.
#[derive(Debug)]
pub struct Table {
    caps: Caps,
    open: u32,
    per_client: HashMap<IpAddr, u32>,
}

impl Table {
    /// No connection open yet.
    pub fn new(caps: Caps) -> Self {
        Self {
            caps,
            open: 0,
            per_client: HashMap::new(),
        }
    }

    /// Counts a new connection from `ip` when the caps allow it; the key must be handed back to
    /// [`Table::release`] when the connection closes.
    pub fn admit(&mut self, ip: IpAddr) -> Result<ClientKey, Refusal> {
        if self.open >= self.caps.total {
            return Err(Refusal::Total);
        }
        let key = client_key(ip, &self.caps.exempt);
        if let Some(client) = key
            && self.caps.per_ip > 0
        {
            let n = self.per_client.entry(client).or_insert(0);
            if *n >= self.caps.per_ip {
                return Err(Refusal::PerIp);
            }
            *n += 1;
        }
        self.open += 1;
        Ok(key)
    }

    /// A connection admitted under `key` closed.
    pub fn release(&mut self, key: ClientKey) {
        self.open = self.open.saturating_sub(1);
        if let Some(client) = key
            && let Some(n) = self.per_client.get_mut(&client)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_client.remove(&client);
            }
        }
    }

    /// Connections open now.
    pub fn open(&self) -> u32 {
        self.open
    }

    /// Clients with at least one connection counted against the per-client cap.
    pub fn clients(&self) -> usize {
        self.per_client.len()
    }
}

/// Lets one log line through per `every`, counting what it held back: a flood of refused
/// connections gives one line every few seconds, not one per connection.
#[derive(Debug)]
pub struct Throttle {
    every: Duration,
    last: Option<Instant>,
    held: u64,
}

impl Throttle {
    /// At most one line per `every`.
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            last: None,
            held: 0,
        }
    }

    /// One more event at `now`: `Some(n)` when a line should be written now, covering `n` events
    /// (this one and those held back since the last line).
    pub fn hit(&mut self, now: Instant) -> Option<u64> {
        self.held += 1;
        match self.last {
            Some(last) if now.saturating_duration_since(last) < self.every => None,
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.held))
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn caps(total: u32, per_ip: u32) -> Caps {
        Caps {
            total,
            per_ip,
            exempt: vec![ip("127.0.0.1"), ip("::1")],
        }
    }

    #[test]
    fn the_total_cap_refuses_the_next_connection_until_one_closes() {
        let mut table = Table::new(caps(3, 0));
        let keys: Vec<_> = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
            .iter()
            .map(|a| table.admit(ip(a)).unwrap())
            .collect();
        assert_eq!(table.admit(ip("10.0.0.4")), Err(Refusal::Total));
        assert_eq!(table.open(), 3);
        table.release(keys[0]);
        assert!(table.admit(ip("10.0.0.4")).is_ok());
        assert_eq!(table.open(), 3);
    }

    #[test]
    fn the_per_client_cap_counts_each_address_apart() {
        let mut table = Table::new(caps(100, 2));
        let a1 = table.admit(ip("192.0.2.1")).unwrap();
        table.admit(ip("192.0.2.1")).unwrap();
        assert_eq!(table.admit(ip("192.0.2.1")), Err(Refusal::PerIp));
        // Another client is not affected, nor is the refused one counted.
        table.admit(ip("192.0.2.2")).unwrap();
        assert_eq!(table.open(), 3);
        table.release(a1);
        assert!(table.admit(ip("192.0.2.1")).is_ok());
        // A cap of 0 means none.
        let mut open = Table::new(caps(100, 0));
        for _ in 0..50 {
            open.admit(ip("192.0.2.1")).unwrap();
        }
        assert_eq!(open.clients(), 0);
    }

    #[test]
    fn exempt_addresses_skip_the_per_client_cap_but_not_the_total() {
        let mut table = Table::new(caps(5, 1));
        for _ in 0..5 {
            assert_eq!(table.admit(ip("127.0.0.1")), Ok(None));
        }
        assert_eq!(table.admit(ip("127.0.0.1")), Err(Refusal::Total));
        // 127.0.0.2 is not in the list: an ordinary client.
        let mut table = Table::new(caps(5, 1));
        table.admit(ip("127.0.0.2")).unwrap();
        assert_eq!(table.admit(ip("127.0.0.2")), Err(Refusal::PerIp));
        // An IPv4-mapped IPv6 address (a dual-stack listener) is the IPv4 client.
        assert_eq!(table.admit(ip("::ffff:127.0.0.2")), Err(Refusal::PerIp));
        assert_eq!(table.admit(ip("::ffff:127.0.0.1")), Ok(None));
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_slash_64() {
        let mut table = Table::new(caps(100, 2));
        table.admit(ip("2001:db8:1:2::1")).unwrap();
        table.admit(ip("2001:db8:1:2:ffff::9")).unwrap();
        assert_eq!(table.admit(ip("2001:db8:1:2::77")), Err(Refusal::PerIp));
        assert!(table.admit(ip("2001:db8:1:3::1")).is_ok());
        assert_eq!(
            client_key(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), &[]),
            Some(ip("2001:db8:1:2::"))
        );
    }

    #[test]
    fn the_throttle_writes_one_line_per_period_with_the_count() {
        let start = Instant::now();
        let mut throttle = Throttle::new(Duration::from_secs(10));
        assert_eq!(throttle.hit(start), Some(1));
        for i in 1..=500 {
            assert_eq!(throttle.hit(start + Duration::from_millis(i * 10)), None);
        }
        assert_eq!(throttle.hit(start + Duration::from_secs(10)), Some(501));
        assert_eq!(throttle.hit(start + Duration::from_secs(11)), None);
        assert_eq!(throttle.hit(start + Duration::from_secs(30)), Some(2));
    }
}
