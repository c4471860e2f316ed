//! What nodes send each other on their own channels (`wakili:node:<id>`): events for a socket
//! connected to the receiving node, and calls to the media server of the node that serves a
//! consultation's media, with their replies. A message is a tag line, fields on lines of their
//! own, then a JSON body written straight after them (one buffer, read in place on arrival).

use serde_json::value::RawValue;

/// A message on a node's channel, read in place.
#[derive(Debug, Clone, Copy)]
pub enum NodeMessage<'a> {
    /// An event for one of the receiving node's sockets.
    Event(Relayed<'a>),
    /// A call to the receiving node's media server; answer with [`NodeMessage::reply`] on
    /// `from`'s channel.
    Call {
        /// The calling node.
        from: &'a str,
        /// The call's number on the calling node.
        id: u64,
        /// What to do, JSON.
        body: &'a RawValue,
    },
    /// The answer to a call this node made.
    Reply {
        /// The call's number.
        id: u64,
        /// The result, JSON.
        body: &'a RawValue,
    },
}

/// An event another node relayed to a socket of this one.
#[derive(Debug, Clone, Copy)]
pub struct Relayed<'a> {
    /// The socket (its Socket.IO id).
    pub sid: &'a str,
    /// The participant it serves (if the socket is gone, the participant's room gets it).
    pub participant: &'a str,
    /// The event's name.
    pub event: &'a str,
    /// Its payload, JSON.
    pub payload: &'a RawValue,
}

fn message(
    tag: &str,
    fields: &[&str],
    body: &impl serde::Serialize,
) -> Result<Vec<u8>, serde_json::Error> {
    let length: usize = fields.iter().map(|f| f.len() + 1).sum();
    let mut message = Vec::with_capacity(tag.len() + 1 + length + 256);
    for field in std::iter::once(tag).chain(fields.iter().copied()) {
        message.extend_from_slice(field.as_bytes());
        message.push(b'\n');
    }
    serde_json::to_writer(&mut message, body)?;
    Ok(message)
}

impl<'a> NodeMessage<'a> {
    /// An event for socket `sid` of participant `participant`.
    pub fn event(
        sid: &str,
        participant: &str,
        event: &str,
        payload: &impl serde::Serialize,
    ) -> Result<Vec<u8>, serde_json::Error> {
        message("e", &[sid, participant, event], payload)
    }

    /// Call number `id` from node `from`.
    pub fn call(
        from: &str,
        id: u64,
        body: &impl serde::Serialize,
    ) -> Result<Vec<u8>, serde_json::Error> {
        message("c", &[from, &id.to_string()], body)
    }

    /// The reply to call number `id`.
    pub fn reply(id: u64, body: &impl serde::Serialize) -> Result<Vec<u8>, serde_json::Error> {
        message("r", &[&id.to_string()], body)
    }

    /// Reads a message (`None`: not one of ours).
    pub fn decode(message: &'a str) -> Option<Self> {
        let (tag, rest) = message.split_once('\n')?;
        match tag {
            "e" => {
                let mut fields = rest.splitn(4, '\n');
                Some(Self::Event(Relayed {
                    sid: fields.next()?,
                    participant: fields.next()?,
                    event: fields.next()?,
                    payload: serde_json::from_str(fields.next()?).ok()?,
                }))
            }
            "c" => {
                let mut fields = rest.splitn(3, '\n');
                Some(Self::Call {
                    from: fields.next()?,
                    id: fields.next()?.parse().ok()?,
                    body: serde_json::from_str(fields.next()?).ok()?,
                })
            }
            "r" => {
                let (id, body) = rest.split_once('\n')?;
                Some(Self::Reply {
                    id: id.parse().ok()?,
                    body: serde_json::from_str(body).ok()?,
                })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use serde_json::json;

    use super::NodeMessage;

    fn read(message: &[u8]) -> NodeMessage<'_> {
        NodeMessage::decode(std::str::from_utf8(message).unwrap()).unwrap()
    }

    #[test]
    fn relayed_events_cross_the_channel_intact() {
        let payload = json!({"from": "p2", "payload": {"sdp": "v=0\r\na=x\n"}});
        let message = NodeMessage::event("s1", "p1", "signal", &payload).unwrap();
        let NodeMessage::Event(event) = read(&message) else {
            panic!("not an event")
        };
        assert_eq!(
            (event.sid, event.participant, event.event),
            ("s1", "p1", "signal")
        );
        let back: serde_json::Value = serde_json::from_str(event.payload.get()).unwrap();
        assert_eq!(back, payload);
    }

    #[test]
    fn calls_and_replies_carry_their_number_and_body() {
        let body = json!({"room": "c1", "sdp": "v=0\r\n"});
        let call = NodeMessage::call("node-a", 42, &body).unwrap();
        let NodeMessage::Call {
            from,
            id,
            body: read_body,
        } = read(&call)
        else {
            panic!("not a call")
        };
        assert_eq!((from, id), ("node-a", 42));
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(read_body.get()).unwrap(),
            body
        );
        let reply = NodeMessage::reply(42, &json!({"Ok": "v=0"})).unwrap();
        let NodeMessage::Reply { id, body } = read(&reply) else {
            panic!("not a reply")
        };
        assert_eq!((id, body.get()), (42, r#"{"Ok":"v=0"}"#));
    }

    #[test]
    fn garbage_is_not_read_as_a_message() {
        for text in [
            "e\ns1\np1",
            "e\ns1\np1\nsignal\n{not json",
            "c\nnode\nnot-a-number\n{}",
            "r\n7",
            "x\n1\n{}",
            "",
        ] {
            assert!(NodeMessage::decode(text).is_none(), "{text:?}");
        }
    }
}
