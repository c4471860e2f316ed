//! A wrapper around each listener that refuses, before the protocol library sees them, requests
//! the library would mishandle: bad credentials (it answers 400; coturn and clients expect 401),
//! peers the policy forbids (403) and allocations over the per-user cap (486). It also notices
//! successful allocations in the responses going out.

use std::{net::SocketAddr, sync::Arc};

use async_trait::async_trait;
use stun::{
    attributes::{ATTR_NONCE, ATTR_REALM, ATTR_USERNAME, ATTR_XOR_PEER_ADDRESS},
    error_code::{
        CODE_ALLOC_QUOTA_REACHED, CODE_FORBIDDEN, CODE_UNAUTHORIZED, ErrorCode, ErrorCodeAttribute,
    },
    integrity::MessageIntegrity,
    message::{
        CLASS_ERROR_RESPONSE, Getter, METHOD_ALLOCATE, METHOD_CHANNEL_BIND,
        METHOD_CREATE_PERMISSION, Message, MessageType, Setter,
    },
    textattrs::TextAttribute,
    xoraddr::XorMappedAddress,
};
use util::Conn;

use crate::{shared::Shared, stats::TurnStats};

/// The Allocate method (RFC 8656 §17).
const ALLOCATE: u16 = 0x003;
/// The ChannelBind method.
const CHANNEL_BIND: u16 = 0x009;
/// The CHANNEL-NUMBER attribute.
const ATTR_CHANNEL_NUMBER: u16 = 0x000c;

/// The client whose packet a listener last handed to the library. The library handles one
/// packet at a time per listener, so while it creates a relay socket for an Allocate, this is the
/// client asking.
#[derive(Clone, Default)]
pub(crate) struct Current(Arc<std::sync::Mutex<Option<SocketAddr>>>);

impl Current {
    fn set(&self, client: SocketAddr) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(client);
    }

    pub fn get(&self) -> Option<SocketAddr> {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
/// The success-response class (RFC 8489 §5).
const SUCCESS: u16 = 2;

/// STUN message type of a raw packet, when it is a STUN message at all.
fn stun_type(packet: &[u8]) -> Option<u16> {
    (packet.len() >= 20 && packet[0] & 0xc0 == 0 && packet[4..8] == [0x21, 0x12, 0xa4, 0x42])
        .then(|| u16::from_be_bytes([packet[0], packet[1]]))
}

/// The class bits of a STUN type: 0 request, 1 indication, 2 success, 3 error.
fn class(t: u16) -> u16 {
    ((t >> 7) & 0x2) | ((t >> 4) & 0x1)
}

/// The method bits of a STUN type.
fn method(t: u16) -> u16 {
    (t & 0x000f) | ((t & 0x00e0) >> 1) | ((t & 0x3e00) >> 2)
}

fn error_response(
    request: &Message,
    code: ErrorCode,
    extra: Vec<Box<dyn Setter>>,
    key: Option<Vec<u8>>,
) -> Option<Vec<u8>> {
    let mut setters: Vec<Box<dyn Setter>> = vec![
        Box::new(request.transaction_id),
        Box::new(MessageType::new(request.typ.method, CLASS_ERROR_RESPONSE)),
        Box::new(ErrorCodeAttribute {
            code,
            reason: Vec::new(),
        }),
    ];
    setters.extend(extra);
    if let Some(key) = key {
        setters.push(Box::new(MessageIntegrity(key)));
    }
    let mut response = Message::new();
    response.build(&setters).ok()?;
    Some(response.raw)
}

/// A listener connection with the checks in front.
pub(crate) struct GuardConn {
    inner: Arc<dyn Conn + Send + Sync>,
    shared: Arc<Shared>,
    current: Current,
}

impl GuardConn {
    pub fn new(inner: Arc<dyn Conn + Send + Sync>, shared: Arc<Shared>, current: Current) -> Self {
        Self {
            inner,
            shared,
            current,
        }
    }

    /// Relays ChannelData on a bound channel straight from the relay socket, skipping the
    /// library's per-packet lookups. `false`: not for the fast path.
    async fn fast_path(&self, packet: &[u8], client: SocketAddr) -> bool {
        if packet.len() < 4 || packet[0] >> 6 != 1 {
            return false;
        }
        let channel = u16::from_be_bytes([packet[0], packet[1]]);
        let length = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
        let Some(data) = packet.get(4..4 + length) else {
            return false;
        };
        let Some(route) = self.shared.route(client, channel) else {
            return false;
        };
        let stats = &self.shared.stats;
        TurnStats::add(&stats.relayed_bytes_to_peers, data.len() as u64);
        TurnStats::add(&stats.relayed_packets_to_peers, 1);
        TurnStats::add(&stats.fast_path_packets, 1);
        let _ = route.relay.send_to(data, route.peer).await;
        true
    }

    /// The answer to send instead of passing the packet on, if it must be refused.
    fn refuse(&self, packet: &[u8], src: SocketAddr) -> Option<Vec<u8>> {
        // Data (ChannelData, Send indications) and responses pass untouched and unparsed.
        let t = stun_type(packet)?;
        if class(t) != 0 {
            return None;
        }
        let mut request = Message::new();
        request.raw = packet.to_vec();
        request.decode().ok()?;
        let mut username = TextAttribute::new(ATTR_USERNAME, String::new());
        if username.get_from(&request).is_err() {
            return None; // The library challenges it with 401 + realm + nonce.
        }
        let mut realm = TextAttribute::new(ATTR_REALM, String::new());
        let _ = realm.get_from(&request);
        let key = self
            .shared
            .key(&username.text, &realm.text)
            .filter(|(key, _)| {
                MessageIntegrity(key.clone())
                    .check(&mut request.clone())
                    .is_ok()
            });
        let Some((key, user)) = key else {
            TurnStats::add(&self.shared.stats.rejected_auth, 1);
            tracing::info!(client = %src, "TURN credentials refused");
            let mut nonce = TextAttribute::new(ATTR_NONCE, String::new());
            let _ = nonce.get_from(&request);
            let challenge: Vec<Box<dyn Setter>> = vec![
                Box::new(TextAttribute::new(ATTR_REALM, self.shared.realm.clone())),
                Box::new(nonce),
            ];
            return error_response(&request, CODE_UNAUTHORIZED, challenge, None);
        };
        let method = request.typ.method;
        if method == METHOD_ALLOCATE {
            if !self.shared.has_allocation(src)
                && self.shared.allocations_of(&user) >= self.shared.max_per_user
            {
                TurnStats::add(&self.shared.stats.rejected_quota, 1);
                tracing::warn!(client = %src, user, "TURN allocation quota reached");
                return error_response(&request, CODE_ALLOC_QUOTA_REACHED, Vec::new(), Some(key));
            }
            self.shared
                .allocate_pending(request.transaction_id.0, src, user);
        } else if method == METHOD_CREATE_PERMISSION || method == METHOD_CHANNEL_BIND {
            let channel = request
                .attributes
                .0
                .iter()
                .find(|a| a.typ.value() == ATTR_CHANNEL_NUMBER && a.value.len() >= 2)
                .map(|a| u16::from_be_bytes([a.value[0], a.value[1]]));
            for attribute in request
                .attributes
                .0
                .iter()
                .filter(|a| a.typ == ATTR_XOR_PEER_ADDRESS)
            {
                let mut one = Message::new();
                one.transaction_id = request.transaction_id;
                one.add(ATTR_XOR_PEER_ADDRESS, &attribute.value);
                let mut peer = XorMappedAddress::default();
                if peer.get_from_as(&one, ATTR_XOR_PEER_ADDRESS).is_err()
                    || !self.shared.policy.allows(peer.ip)
                {
                    TurnStats::add(&self.shared.stats.rejected_peer, 1);
                    tracing::warn!(client = %src, peer = %peer.ip, "TURN peer refused by policy");
                    return error_response(&request, CODE_FORBIDDEN, Vec::new(), Some(key));
                }
                if let Some(channel) = channel.filter(|_| method == METHOD_CHANNEL_BIND) {
                    let peer = SocketAddr::new(peer.ip, peer.port);
                    self.shared
                        .bind_pending(request.transaction_id.0, src, channel, peer);
                }
            }
        }
        None
    }

    /// Notes the outcome of Allocate requests in responses going out.
    fn observe(&self, packet: &[u8]) {
        let Some(t) = stun_type(packet) else { return };
        if class(t) < SUCCESS {
            return;
        }
        let mut transaction = [0u8; 12];
        transaction.copy_from_slice(&packet[8..20]);
        match method(t) {
            ALLOCATE if self.shared.has_pending() => self
                .shared
                .allocate_answered(transaction, class(t) == SUCCESS),
            CHANNEL_BIND if self.shared.has_pending_binds() => {
                self.shared.bind_answered(transaction, class(t) == SUCCESS);
            }
            _ => {}
        }
    }
}

#[async_trait]
impl Conn for GuardConn {
    async fn connect(&self, _: SocketAddr) -> util::Result<()> {
        Err(util::Error::Other(
            "a TURN listener does not connect".into(),
        ))
    }

    async fn recv(&self, _: &mut [u8]) -> util::Result<usize> {
        Err(util::Error::Other("use recv_from".into()))
    }

    async fn recv_from(&self, buf: &mut [u8]) -> util::Result<(usize, SocketAddr)> {
        loop {
            let (n, src) = self.inner.recv_from(buf).await?;
            if self.fast_path(&buf[..n], src).await {
                continue;
            }
            match self.refuse(&buf[..n], src) {
                Some(answer) => {
                    let _ = self.inner.send_to(&answer, src).await;
                }
                None => {
                    self.current.set(src);
                    return Ok((n, src));
                }
            }
        }
    }

    async fn send(&self, _: &[u8]) -> util::Result<usize> {
        Err(util::Error::Other("use send_to".into()))
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> util::Result<usize> {
        self.observe(buf);
        self.inner.send_to(buf, target).await
    }

    fn local_addr(&self) -> util::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        None
    }

    /// The library calls this when any allocation closes: the listener must stay open.
    async fn close(&self) -> util::Result<()> {
        Ok(())
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_stun_headers_without_decoding() {
        // Allocate request 0x0003, success 0x0103, error 0x0113; Binding request 0x0001.
        let header = |t: u16| {
            let mut p = vec![0u8; 20];
            p[..2].copy_from_slice(&t.to_be_bytes());
            p[4..8].copy_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
            p
        };
        assert_eq!(
            stun_type(&header(0x0003)).map(|t| (class(t), method(t))),
            Some((0, 3))
        );
        assert_eq!(
            stun_type(&header(0x0103)).map(|t| (class(t), method(t))),
            Some((2, 3))
        );
        assert_eq!(
            stun_type(&header(0x0113)).map(|t| (class(t), method(t))),
            Some((3, 3))
        );
        assert_eq!(
            stun_type(&header(0x0016)).map(class),
            Some(1),
            "Send indication"
        );
        assert_eq!(
            stun_type(&[0x40, 0x00, 0x00, 0x04, 1, 2, 3, 4]),
            None,
            "ChannelData"
        );
        assert_eq!(stun_type(&[0u8; 20]), None, "no magic cookie");
    }
}
