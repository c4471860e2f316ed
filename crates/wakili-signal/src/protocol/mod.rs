//! The wire protocol, sans-IO: reading client packets, checking them, and shaping acks. The
//! events themselves are declared once, in [`client`] (what clients send, with their acks) and
//! [`server`] (what the server sends besides the room's events); [`schema`] turns those lists
//! into the JSON Schema that `docs/signaling.md` points to.

use schemars::JsonSchema;
use serde::{Serialize, de::DeserializeOwned};
use serde_json::value::RawValue;
use wakili_core::room::RoomError;

pub mod client;
pub mod schema;
pub mod server;

pub use client::{
    AdmitRequest, ClientEvent, ConsentRequest, EventName, JoinAck, JoinRequest, LayerPreference,
    MAX_SIGNAL_PAYLOAD, MediaRequest, NoFields, QualityAck, RecordingStartAck, RefreshAck,
    RefreshRequest, SdpAck, SdpRequest, SignalRequest, SignalType, SubscriptionRequest,
};
pub use server::{
    CallAnswered, CloseReason, ProfileChanged, ServerEvent, SessionClosed, SignalOut,
};

/// Longest id a client may send (consultation, participant, recording).
const MAX_ID: usize = 64;

/// Why an event was refused: the `error` of an `{ok: false}` ack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Refusal {
    /// Stable code clients branch on (see docs/signaling.md, Errors).
    pub code: &'static str,
    /// What went wrong, for people.
    pub message: String,
}

impl Refusal {
    /// A refusal with `code`.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The payload does not fit the event.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new("bad_request", message)
    }
}

impl From<RoomError> for Refusal {
    fn from(e: RoomError) -> Self {
        Self::new(e.code(), e.to_string())
    }
}

/// `{ok: true, …fields}`.
#[derive(Debug, Serialize)]
pub struct Ok<T: Serialize> {
    ok: bool,
    #[serde(flatten)]
    fields: T,
}

/// `{ok: false, error: {code, message}}`.
#[derive(Debug, Serialize)]
pub struct Failed<'a> {
    ok: bool,
    error: &'a Refusal,
}

/// A success ack with `fields` (a struct or map) merged in.
pub fn ok<T: Serialize>(fields: T) -> Ok<T> {
    Ok { ok: true, fields }
}

/// A success ack with nothing more to say.
pub fn done() -> Ok<serde_json::Map<String, serde_json::Value>> {
    ok(serde_json::Map::new())
}

/// A failure ack.
pub fn failed(refusal: &Refusal) -> Failed<'_> {
    Failed {
        ok: false,
        error: refusal,
    }
}

/// One client event: its name and first argument, still unparsed.
#[derive(Debug)]
pub struct Packet<'a> {
    /// Event name.
    pub event: String,
    /// First argument, if any.
    pub data: Option<&'a RawValue>,
}

/// Reads the JSON array of a Socket.IO EVENT packet (`["name", data, …]`).
pub fn parse_packet(text: &str) -> Result<Packet<'_>, Refusal> {
    let parts: Vec<&RawValue> = serde_json::from_str(text)
        .map_err(|e| Refusal::bad_request(format!("unreadable event: {}", short(&e))))?;
    let Some(name) = parts.first() else {
        return Err(Refusal::bad_request("event without a name"));
    };
    let event: String = serde_json::from_str(name.get())
        .map_err(|_| Refusal::bad_request("the event name must be a string"))?;
    Ok(Packet {
        event,
        data: parts.get(1).copied(),
    })
}

/// serde_json's message without the "at line 1 column 17" tail.
fn short(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.find(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// Decodes an event's payload, naming the event in the error.
pub fn decode<T: DeserializeOwned>(event: &str, data: Option<&RawValue>) -> Result<T, Refusal> {
    let text = data.map_or("null", RawValue::get);
    serde_json::from_str(text).map_err(|e| Refusal::bad_request(format!("{event}: {}", short(&e))))
}

fn check_id(field: &str, value: &str) -> Result<(), Refusal> {
    if value.is_empty() || value.len() > MAX_ID || value.chars().any(char::is_control) {
        return Err(Refusal::bad_request(format!(
            "{field}: must be 1 to {MAX_ID} printable characters"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_give_their_name_and_first_argument() {
        let p = parse_packet(r#"["signal",{"to":"p1"},"extra"]"#).unwrap();
        assert_eq!(p.event, "signal");
        assert_eq!(p.data.unwrap().get(), r#"{"to":"p1"}"#);
        let p = parse_packet(r#"["consultation:leave"]"#).unwrap();
        assert!(p.data.is_none());
        assert_eq!(parse_packet("[]").unwrap_err().code, "bad_request");
        assert_eq!(parse_packet("[42]").unwrap_err().code, "bad_request");
        assert_eq!(parse_packet("{").unwrap_err().code, "bad_request");
    }

    #[test]
    fn a_signal_payload_is_forwarded_byte_for_byte() {
        let text = r#"{"to":"p2","type":"offer","payload":{"sdp":"v=0\r\n…","n":[1, 2.50]}}"#;
        let raw: &RawValue = serde_json::from_str(text).unwrap();
        let request = SignalRequest::parse(Some(raw)).unwrap();
        assert_eq!(request.kind, SignalType::Offer);
        let out = SignalOut {
            from: "p1",
            kind: request.kind,
            payload: request.payload,
        };
        assert_eq!(
            serde_json::to_string(&out).unwrap(),
            r#"{"from":"p1","type":"offer","payload":{"sdp":"v=0\r\n…","n":[1, 2.50]}}"#
        );
    }

    #[test]
    fn signals_are_checked_without_reading_the_payload() {
        let parse = |text: &str| {
            let raw: Box<RawValue> = serde_json::from_str(text).unwrap();
            SignalRequest::parse(Some(&raw)).map(|_| ()).unwrap_err()
        };
        let e = parse(r#"{"type":"offer","payload":{}}"#);
        assert_eq!(e.code, "bad_request");
        assert!(e.message.contains("missing field `to`"), "{e:?}");
        assert!(!e.message.contains("line"), "no parser positions: {e:?}");
        let e = parse(r#"{"to":"p","type":"bye","payload":{}}"#);
        assert!(e.message.contains("unknown variant `bye`"), "{e:?}");
        let big = format!(
            r#"{{"to":"p","type":"candidate","payload":"{}"}}"#,
            "x".repeat(MAX_SIGNAL_PAYLOAD)
        );
        assert_eq!(parse(&big).code, "payload_too_large");
        assert_eq!(
            parse(r#"{"to":"","type":"offer","payload":1}"#).code,
            "bad_request"
        );
        assert_eq!(SignalRequest::parse(None).unwrap_err().code, "bad_request");
    }

    #[test]
    fn a_signal_to_oneself_is_refused() {
        let raw: Box<RawValue> =
            serde_json::from_str(r#"{"to":"p1","type":"offer","payload":{}}"#).unwrap();
        let request = SignalRequest::parse(Some(&raw)).unwrap();
        let e = request.check_sender("p1").unwrap_err();
        assert_eq!(e.code, "bad_request");
        assert!(e.message.contains("your own participant id"), "{e:?}");
        assert!(request.check_sender("p2").is_ok());
    }

    #[test]
    fn refresh_requests_are_checked() {
        let raw = |t: &str| serde_json::from_str::<Box<RawValue>>(t).unwrap();
        let ok = RefreshRequest::parse(Some(&raw(r#"{"token":"a.b.c"}"#))).unwrap();
        assert_eq!(ok.token, "a.b.c");
        for bad in ["42", r#"{"token":""}"#, r#"{"token":"t","x":1}"#, r#"{}"#] {
            let e = RefreshRequest::parse(Some(&raw(bad))).unwrap_err();
            assert_eq!(e.code, "bad_request", "{bad}");
        }
        let long = format!(r#"{{"token":"{}"}}"#, "t".repeat(client::MAX_TOKEN + 1));
        assert_eq!(
            RefreshRequest::parse(Some(&raw(&long))).unwrap_err().code,
            "bad_request"
        );
        assert_eq!(RefreshRequest::parse(None).unwrap_err().code, "bad_request");
    }

    #[test]
    fn join_requests_are_checked() {
        let raw = |t: &str| serde_json::from_str::<Box<RawValue>>(t).unwrap();
        let ok = JoinRequest::parse(Some(&raw(r#"{"consultationId":"c1","resumeToken":"t"}"#)));
        assert_eq!(ok.unwrap().resume_token.as_deref(), Some("t"));
        for bad in [
            "42",
            r#"{"consultationId":7}"#,
            r#"{"consultationId":""}"#,
            r#"{"id":"c"}"#,
        ] {
            let e = JoinRequest::parse(Some(&raw(bad))).unwrap_err();
            assert_eq!(e.code, "bad_request", "{bad}");
            assert!(
                e.message.starts_with("consultation") || e.message.starts_with("consultationId"),
                "{e:?}"
            );
        }
        assert_eq!(JoinRequest::parse(None).unwrap_err().code, "bad_request");
    }

    #[test]
    fn acks_have_one_shape() {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Fields {
            participant_id: &'static str,
        }
        let text = serde_json::to_value(ok(Fields {
            participant_id: "p",
        }))
        .unwrap();
        assert_eq!(text, serde_json::json!({"ok": true, "participantId": "p"}));
        assert_eq!(
            serde_json::to_value(done()).unwrap(),
            serde_json::json!({"ok": true})
        );
        let refusal = Refusal::new("forbidden", "no");
        assert_eq!(
            serde_json::to_value(failed(&refusal)).unwrap(),
            serde_json::json!({"ok": false, "error": {"code": "forbidden", "message": "no"}})
        );
    }
}
