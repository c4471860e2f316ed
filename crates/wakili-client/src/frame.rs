//! Engine.IO v4 / Socket.IO v5 text packets over WebSocket, sans IO: one WebSocket text frame is
//! one Engine.IO packet, and an Engine.IO `message` (`4`) carries one Socket.IO packet.
//!
//! Only what a client of namespace `/` needs is understood: open, ping, close, and the Socket.IO
//! CONNECT, DISCONNECT, EVENT, ACK and CONNECT_ERROR packets. Binary packets and other namespaces
//! parse as [`Packet::Ignored`]. Payloads are borrowed from the frame as [`RawValue`]s: nothing
//! past the event name is parsed.

use std::{borrow::Cow, fmt, time::Duration};

use serde::{
    Deserialize, Deserializer, Serialize,
    de::{IgnoredAny, SeqAccess, Visitor},
};
use serde_json::value::RawValue;

/// Engine.IO `pong`: the answer to the server's `ping` (`2`).
pub const PONG: &str = "3";
/// Socket.IO DISCONNECT for namespace `/`.
pub const DISCONNECT: &str = "41";

/// A packet received from the server.
#[derive(Debug)]
pub enum Packet<'a> {
    /// Engine.IO `open` (`0{…}`): the session's heartbeat settings.
    Open(Handshake),
    /// Engine.IO `close` (`1`).
    Close,
    /// Engine.IO `ping` (`2`): answer with [`PONG`].
    Ping,
    /// Socket.IO CONNECT (`40…`): the namespace accepted the connection.
    Connected,
    /// Socket.IO DISCONNECT (`41`): the server ended the namespace connection.
    Disconnected,
    /// Socket.IO EVENT (`42[…]` or `42<id>[…]`).
    Event {
        /// The acknowledgement id the server expects an answer for, if any. Wakili never asks
        /// a client for one, so the client reads it only in tests.
        #[allow(dead_code)]
        ack: Option<u64>,
        /// The event name.
        name: Cow<'a, str>,
        /// The first argument after the name; `None` when the event has none.
        data: Option<&'a RawValue>,
    },
    /// Socket.IO ACK (`43<id>[…]`).
    Ack {
        /// The id of the event it answers.
        id: u64,
        /// The first argument; `None` when the ack has none.
        data: Option<&'a RawValue>,
    },
    /// Socket.IO CONNECT_ERROR (`44{"message":…}`): the namespace refused the connection.
    ConnectError {
        /// The server's reason, e.g. `unauthorized`.
        message: String,
    },
    /// Anything else a client may receive and ignore: Engine.IO `noop`/`upgrade`/`pong`, binary
    /// packets, other namespaces.
    Ignored,
}

/// The heartbeat settings of the Engine.IO `open` packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handshake {
    /// How often the server pings.
    pub ping_interval: Duration,
    /// How long the server waits for the pong; a client gives up after interval + timeout
    /// without a ping.
    pub ping_timeout: Duration,
}

impl Handshake {
    /// How long without a ping before the connection counts as dead.
    pub fn liveness(&self) -> Duration {
        self.ping_interval + self.ping_timeout
    }
}

/// A text frame that is not a packet this client understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

fn bad(reason: impl Into<String>) -> FrameError {
    FrameError {
        reason: reason.into(),
    }
}

/// Parses one WebSocket text frame.
pub fn parse(text: &str) -> Result<Packet<'_>, FrameError> {
    let mut chars = text.chars();
    match chars.next() {
        Some('0') => parse_open(&text[1..]).map(Packet::Open),
        Some('1') => Ok(Packet::Close),
        Some('2') => Ok(Packet::Ping),
        Some('4') => parse_socket_io(&text[1..]),
        Some('3' | '5' | '6') => Ok(Packet::Ignored),
        Some(c) => Err(bad(format!("unknown Engine.IO packet type {c:?}"))),
        None => Err(bad("empty frame")),
    }
}

fn parse_open(json: &str) -> Result<Handshake, FrameError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Open {
        ping_interval: u64,
        ping_timeout: u64,
    }
    let open: Open =
        serde_json::from_str(json).map_err(|e| bad(format!("Engine.IO open packet: {e}")))?;
    Ok(Handshake {
        ping_interval: Duration::from_millis(open.ping_interval),
        ping_timeout: Duration::from_millis(open.ping_timeout),
    })
}

fn parse_socket_io(packet: &str) -> Result<Packet<'_>, FrameError> {
    let Some(kind) = packet.chars().next() else {
        return Err(bad("empty Socket.IO packet"));
    };
    let mut rest = &packet[kind.len_utf8()..];
    // A namespace other than "/" is written `/name,` after the type.
    if rest.starts_with('/') {
        let (namespace, after) = rest.split_once(',').unwrap_or((rest, ""));
        if namespace != "/" {
            return Ok(Packet::Ignored);
        }
        rest = after;
    }
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let id = if digits == 0 {
        None
    } else {
        Some(
            rest[..digits]
                .parse::<u64>()
                .map_err(|_| bad("acknowledgement id out of range"))?,
        )
    };
    let body = &rest[digits..];
    match kind {
        '0' => Ok(Packet::Connected),
        '1' => Ok(Packet::Disconnected),
        '2' => {
            let args: EventArgs<'_> =
                serde_json::from_str(body).map_err(|e| bad(format!("EVENT packet: {e}")))?;
            Ok(Packet::Event {
                ack: id,
                name: args.name,
                data: args.data,
            })
        }
        '3' => {
            let id = id.ok_or_else(|| bad("ACK packet without an id"))?;
            let args: AckArgs<'_> =
                serde_json::from_str(body).map_err(|e| bad(format!("ACK packet: {e}")))?;
            Ok(Packet::Ack {
                id,
                data: args.data,
            })
        }
        '4' => Ok(Packet::ConnectError {
            message: connect_error_message(body),
        }),
        // BINARY_EVENT, BINARY_ACK: not used by Wakili.
        '5' | '6' => Ok(Packet::Ignored),
        c => Err(bad(format!("unknown Socket.IO packet type {c:?}"))),
    }
}

/// `{"message": "…"}` (Socket.IO v5); any other shape is returned as it came.
fn connect_error_message(body: &str) -> String {
    #[derive(Deserialize)]
    struct Body<'a> {
        #[serde(borrow)]
        message: Cow<'a, str>,
    }
    match serde_json::from_str::<Body<'_>>(body) {
        Ok(b) => b.message.into_owned(),
        Err(_) => match serde_json::from_str::<String>(body) {
            Ok(s) => s,
            Err(_) => body.to_owned(),
        },
    }
}

/// `["name", data?, …]`: the name and the first argument, borrowed; further arguments skipped.
struct EventArgs<'a> {
    name: Cow<'a, str>,
    data: Option<&'a RawValue>,
}

/// `[data?, …]`: the first argument, borrowed.
struct AckArgs<'a> {
    data: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Name<'a>(#[serde(borrow)] Cow<'a, str>);

impl<'de> Deserialize<'de> for EventArgs<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = EventArgs<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array starting with the event name")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let Name(name) = seq
                    .next_element()?
                    .ok_or_else(|| serde::de::Error::invalid_length(0, &self))?;
                let data = seq.next_element::<&'de RawValue>()?;
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(EventArgs { name, data })
            }
        }
        deserializer.deserialize_seq(V)
    }
}

impl<'de> Deserialize<'de> for AckArgs<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = AckArgs<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of acknowledgement arguments")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let data = seq.next_element::<&'de RawValue>()?;
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(AckArgs { data })
            }
        }
        deserializer.deserialize_seq(V)
    }
}

/// Socket.IO CONNECT to namespace `/` with `{"token": token}` as the auth payload.
pub fn connect(token: &str) -> Result<String, serde_json::Error> {
    #[derive(Serialize)]
    struct Auth<'a> {
        token: &'a str,
    }
    let mut out = String::with_capacity(token.len() + 16);
    out.push_str("40");
    out.push_str(&serde_json::to_string(&Auth { token })?);
    Ok(out)
}

/// Socket.IO EVENT `42[<ack>]["event",data]`.
pub fn event<T: Serialize + ?Sized>(
    name: &str,
    ack: Option<u64>,
    data: &T,
) -> Result<String, serde_json::Error> {
    let mut out = Vec::with_capacity(64 + name.len());
    out.extend_from_slice(b"42");
    if let Some(id) = ack {
        out.extend_from_slice(id.to_string().as_bytes());
    }
    out.push(b'[');
    serde_json::to_writer(&mut out, name)?;
    out.push(b',');
    serde_json::to_writer(&mut out, data)?;
    out.push(b']');
    // serde_json writes UTF-8 only.
    String::from_utf8(out).map_err(|e| serde::ser::Error::custom(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(packet: &Packet<'_>) -> Option<String> {
        match packet {
            Packet::Event { data, .. } | Packet::Ack { data, .. } => {
                data.map(|d| d.get().to_owned())
            }
            _ => None,
        }
    }

    #[test]
    fn open_packet_gives_the_heartbeat() {
        let p = parse(r#"0{"sid":"abc","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":100000}"#)
            .unwrap();
        let Packet::Open(h) = p else { panic!("{p:?}") };
        assert_eq!(
            h,
            Handshake {
                ping_interval: Duration::from_secs(25),
                ping_timeout: Duration::from_secs(20),
            }
        );
        assert_eq!(h.liveness(), Duration::from_secs(45));
        assert!(parse("0{}").is_err());
    }

    #[test]
    fn engine_io_control_packets() {
        assert!(matches!(parse("1").unwrap(), Packet::Close));
        assert!(matches!(parse("2").unwrap(), Packet::Ping));
        assert!(matches!(parse("3").unwrap(), Packet::Ignored));
        assert!(matches!(parse("6").unwrap(), Packet::Ignored));
        assert!(parse("").is_err());
        assert!(parse("9").is_err());
    }

    #[test]
    fn connect_ack_and_disconnect() {
        assert!(matches!(
            parse(r#"40{"sid":"x1"}"#).unwrap(),
            Packet::Connected
        ));
        assert!(matches!(parse("40").unwrap(), Packet::Connected));
        assert!(matches!(parse("41").unwrap(), Packet::Disconnected));
    }

    #[test]
    fn connect_error_message() {
        assert!(matches!(
            parse(r#"44{"message":"unauthorized"}"#).unwrap(),
            Packet::ConnectError { message } if message == "unauthorized"
        ));
        assert!(matches!(
            parse(r#"44"plain""#).unwrap(),
            Packet::ConnectError { message } if message == "plain"
        ));
    }

    #[test]
    fn event_without_and_with_ack_id() {
        let p = parse(r#"42["signal",{"from":"p1","payload":{"a":[1,2]}}]"#).unwrap();
        assert!(matches!(&p, Packet::Event { ack: None, name, .. } if name == "signal"));
        assert_eq!(
            raw(&p).as_deref(),
            Some(r#"{"from":"p1","payload":{"a":[1,2]}}"#)
        );

        let p = parse(r#"4217["ask",1,"extra",{"x":2}]"#).unwrap();
        assert!(matches!(&p, Packet::Event { ack: Some(17), name, .. } if name == "ask"));
        assert_eq!(raw(&p).as_deref(), Some("1"));

        let p = parse(r#"42["bare"]"#).unwrap();
        assert!(matches!(&p, Packet::Event { data: None, name, .. } if name == "bare"));
    }

    #[test]
    fn event_name_with_escapes_is_unescaped() {
        let p = parse(r#"42["a\"b",null]"#).unwrap();
        assert!(matches!(&p, Packet::Event { name, .. } if name == "a\"b"));
    }

    #[test]
    fn malformed_events_are_errors() {
        assert!(parse("42").is_err());
        assert!(parse("42[]").is_err());
        assert!(parse("42[1,2]").is_err());
        assert!(parse(r#"42["x",{]"#).is_err());
        assert!(parse("4299999999999999999999[\"x\"]").is_err());
    }

    #[test]
    fn acks_carry_their_id_and_first_argument() {
        let p = parse(r#"435[{"ok":true,"participantId":"p"}]"#).unwrap();
        assert!(matches!(p, Packet::Ack { id: 5, .. }));
        assert_eq!(
            raw(&p).as_deref(),
            Some(r#"{"ok":true,"participantId":"p"}"#)
        );
        assert!(matches!(
            parse("430[]").unwrap(),
            Packet::Ack { id: 0, data: None }
        ));
        assert!(parse("43[1]").is_err());
    }

    #[test]
    fn other_namespaces_and_binary_are_ignored() {
        assert!(matches!(
            parse(r#"42/admin,["x",1]"#).unwrap(),
            Packet::Ignored
        ));
        assert!(matches!(
            parse(r#"40/admin,{"sid":"s"}"#).unwrap(),
            Packet::Ignored
        ));
        assert!(matches!(
            parse(r#"42/,3["x",1]"#).unwrap(),
            Packet::Event { ack: Some(3), .. }
        ));
        assert!(matches!(
            parse(r#"451-["x",{"_placeholder":true,"num":0}]"#).unwrap(),
            Packet::Ignored
        ));
    }

    #[test]
    fn encodes_connect_and_events() {
        assert_eq!(connect("a\"b").unwrap(), r#"40{"token":"a\"b"}"#);
        assert_eq!(
            event("signal", None, &serde_json::json!({"to": "p2"})).unwrap(),
            r#"42["signal",{"to":"p2"}]"#
        );
        assert_eq!(
            event(
                "consultation:join",
                Some(12),
                &serde_json::json!({"consultationId": "c"})
            )
            .unwrap(),
            r#"4212["consultation:join",{"consultationId":"c"}]"#
        );
        assert_eq!(event("x", Some(0), &()).unwrap(), r#"420["x",null]"#);
    }

    #[test]
    fn encoded_events_parse_back() {
        let text = event("n", Some(9), &serde_json::json!([1, {"k": "v"}])).unwrap();
        let p = parse(&text).unwrap();
        assert!(matches!(&p, Packet::Event { ack: Some(9), name, .. } if name == "n"));
        assert_eq!(raw(&p).as_deref(), Some(r#"[1,{"k":"v"}]"#));
    }
}
