//! What clients send: each event's name, its payload type and the fields of its ack, declared
//! together in [`client_events!`]. The worker parses a packet once into a [`ClientEvent`] and
//! matches on it; `docs/signaling.md` and `docs/signaling.schema.json` are checked against the
//! same list.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use wakili_core::{
    media::MediaMode,
    quality::{Level, QualityReport},
    room::Joined,
};

use super::{Refusal, check_id, decode, short};

/// Largest `signal` payload, in bytes of JSON.
pub const MAX_SIGNAL_PAYLOAD: usize = 64 * 1024;
/// Longest token accepted by `auth:refresh`.
pub(crate) const MAX_TOKEN: usize = 8 * 1024;

/// A client event's payload: read from the packet's first argument and checked.
pub trait Payload<'a>: Sized {
    /// Reads and checks `data`, naming `event` in a refusal.
    fn read(event: &str, data: Option<&'a RawValue>) -> Result<Self, Refusal>;
}

/// Events that carry nothing: whatever the client sends is ignored.
impl Payload<'_> for () {
    fn read(_: &str, _: Option<&RawValue>) -> Result<Self, Refusal> {
        Ok(())
    }
}

/// Declares [`EventName`] and [`ClientEvent`] from one list of `name => Variant(Payload) -> Ack`.
macro_rules! client_events {
    ($( $(#[$doc:meta])* $name:literal => $variant:ident($payload:ty) -> $ack:ty, )*) => {
        /// The name of an event a client may send.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum EventName {
            $( $(#[$doc])* $variant, )*
        }

        impl EventName {
            /// Every client event, in declaration order.
            pub const ALL: &[Self] = &[$(Self::$variant),*];

            /// The name on the wire.
            #[must_use]
            pub fn as_str(self) -> &'static str {
                match self {
                    $( Self::$variant => $name, )*
                }
            }

            /// The event called `name`, or `unknown_event`.
            pub fn parse(name: &str) -> Result<Self, Refusal> {
                match name {
                    $( $name => Ok(Self::$variant), )*
                    other => Err(Refusal::new(
                        "unknown_event",
                        format!("unknown event {:?}", truncate(other)),
                    )),
                }
            }
        }

        /// A client event with its payload read and checked.
        #[derive(Debug)]
        pub enum ClientEvent<'a> {
            $( $(#[$doc])* $variant($payload), )*
        }

        impl<'a> ClientEvent<'a> {
            /// Reads the payload of the event `name`.
            pub fn parse(name: EventName, data: Option<&'a RawValue>) -> Result<Self, Refusal> {
                match name {
                    $( EventName::$variant => {
                        <$payload as Payload<'a>>::read($name, data).map(Self::$variant)
                    } )*
                }
            }
        }

        /// Each client event name with the JSON Schemas of its payload and of its ack's fields.
        // `'a` names the lifetime of borrowing payloads (`SignalRequest<'a>`) in the body.
        #[allow(clippy::extra_unused_lifetimes)]
        pub fn schemas<'a>(
            generator: &mut schemars::SchemaGenerator,
        ) -> Vec<(&'static str, schemars::Schema, schemars::Schema)> {
            vec![$( (
                $name,
                generator.subschema_for::<$payload>(),
                generator.subschema_for::<$ack>(),
            ), )*]
        }
    };
}

client_events! {
    /// Enter a consultation's call (or its waiting room), or resume after a dropped connection.
    "consultation:join" => Join(JoinRequest) -> JoinAck,
    /// Leave the call for good.
    "consultation:leave" => Leave(()) -> NoFields,
    /// End the consultation for everyone (the lawyer or an admin).
    "consultation:end" => End(()) -> NoFields,
    /// Let a participant in from the waiting room (the lawyer or an admin).
    "participant:admit" => Admit(AdmitRequest) -> NoFields,
    /// A WebRTC offer, answer, ICE candidate or restart for one other participant.
    "signal" => Signal(SignalRequest<'a>) -> NoFields,
    /// Camera, microphone and screen share on or off.
    "media:state" => Media(MediaRequest) -> NoFields,
    /// Connection statistics from `getStats`, scored by the server.
    "quality:report" => Quality(QualityReport) -> QualityAck,
    /// Ask everyone present to consent to a recording (the lawyer).
    "recording:start" => RecordingStart(()) -> RecordingStartAck,
    /// Stop the recording (the lawyer).
    "recording:stop" => RecordingStop(()) -> NoFields,
    /// Grant or refuse consent to the recording that asked.
    "recording:consent" => Consent(ConsentRequest) -> NoFields,
    /// Replace the connection's token before it expires.
    "auth:refresh" => Refresh(RefreshRequest) -> RefreshAck,
    /// Connect your media to the SFU (topology `sfu`): your SDP offer in, the server's answer back.
    "media:publish" => Publish(SdpRequest) -> SdpAck,
    /// Your answer to a `media:offer` from the server.
    "media:answer" => MediaAnswer(SdpRequest) -> NoFields,
    /// Stop or resume receiving one track you do not show.
    "media:subscription" => Subscription(SubscriptionRequest) -> NoFields,
    /// Receive every video in this simulcast layer (`q`, `h`, `f`) whatever the bandwidth, or
    /// `null` to let the server choose again (a grid of small tiles asks for `q`).
    "media:layer-preference" => LayerPreference(LayerPreference) -> NoFields,
}

/// `media:layer-preference`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LayerPreference {
    /// `q`, `h` or `f`; `null`: the server chooses from the bandwidth estimate.
    pub rid: Option<String>,
}

impl Payload<'_> for LayerPreference {
    fn read(event: &str, data: Option<&RawValue>) -> Result<Self, Refusal> {
        let request: Self = decode(event, data)?;
        if request
            .rid
            .as_deref()
            .is_some_and(|rid| !["q", "h", "f"].contains(&rid))
        {
            return Err(Refusal::bad_request(format!(
                "{event}: rid must be q, h, f or null"
            )));
        }
        Ok(request)
    }
}

/// Longest SDP accepted (a browser's offer with simulcast is a few KiB).
pub const MAX_SDP_BYTES: usize = 64 * 1024;

/// `media:publish` and `media:answer`: a session description.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SdpRequest {
    /// SDP text (`RTCSessionDescription.sdp`), up to 64 KiB, starting `v=0`.
    #[schemars(length(min = 3, max = 65536))]
    pub sdp: String,
}

impl Payload<'_> for SdpRequest {
    fn read(event: &str, data: Option<&RawValue>) -> Result<Self, Refusal> {
        let request: Self = decode(event, data)?;
        if request.sdp.len() > MAX_SDP_BYTES || !request.sdp.starts_with("v=0") {
            return Err(Refusal::bad_request(format!(
                "{event}: sdp must be a session description (v=0…) of at most {MAX_SDP_BYTES} bytes"
            )));
        }
        Ok(request)
    }
}

/// The ack of `media:publish`: the server's answer.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SdpAck {
    /// SDP answer; the SFU's candidates are in it (ICE-lite, no trickle).
    pub sdp: String,
}

/// `media:subscription`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubscriptionRequest {
    /// The track, as `media:track` announced it.
    pub track_id: u64,
    /// Stop (`true`) or resume (`false`) receiving it.
    pub paused: bool,
}

impl Payload<'_> for SubscriptionRequest {
    fn read(event: &str, data: Option<&RawValue>) -> Result<Self, Refusal> {
        decode(event, data)
    }
}

/// At most 64 characters of `text`, for messages that quote the client.
fn truncate(text: &str) -> &str {
    match text.char_indices().nth(64) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

/// An ack with nothing besides `ok`.
#[derive(Debug, Default, Serialize, JsonSchema)]
pub struct NoFields {}

/// `consultation:join`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JoinRequest {
    /// The consultation.
    #[schemars(length(min = 1, max = 64))]
    pub consultation_id: String,
    /// Token from an earlier join, to resume.
    #[serde(default)]
    #[schemars(length(min = 1, max = 128))]
    pub resume_token: Option<String>,
}

impl JoinRequest {
    /// Reads and checks the payload.
    pub fn parse(data: Option<&RawValue>) -> Result<Self, Refusal> {
        let request: Self = decode("consultation:join", data)?;
        check_id("consultationId", &request.consultation_id)?;
        if let Some(token) = &request.resume_token
            && (token.is_empty() || token.len() > 128)
        {
            return Err(Refusal::bad_request(
                "resumeToken: must be 1 to 128 characters",
            ));
        }
        Ok(request)
    }
}

impl Payload<'_> for JoinRequest {
    fn read(_: &str, data: Option<&RawValue>) -> Result<Self, Refusal> {
        Self::parse(data)
    }
}

/// The ack of `consultation:join`: the room as the joiner finds it.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JoinAck {
    /// The participant, the room and the recording.
    #[serde(flatten)]
    pub joined: Joined,
    /// The consultation's quality profile.
    pub quality_profile: String,
    /// How the consultation's media travels (`p2p`, `sfu` or `auto`).
    pub media_mode: MediaMode,
}

/// What a `signal` carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SignalType {
    /// SDP offer.
    Offer,
    /// SDP answer.
    Answer,
    /// ICE candidate.
    Candidate,
    /// ICE restart request.
    Restart,
}

/// `signal`: the envelope is read, the payload is not.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignalRequest<'a> {
    /// Recipient participant id.
    #[schemars(length(min = 1, max = 64))]
    pub to: String,
    /// Kind of signal.
    #[serde(rename = "type")]
    pub kind: SignalType,
    /// Opaque payload (at most 64 KiB of JSON), forwarded byte for byte.
    #[serde(borrow)]
    #[schemars(with = "serde_json::Value")]
    pub payload: &'a RawValue,
}

impl<'a> SignalRequest<'a> {
    /// Reads and checks the envelope.
    pub fn parse(data: Option<&'a RawValue>) -> Result<Self, Refusal> {
        let text = data.map_or("null", RawValue::get);
        let request: Self = serde_json::from_str(text)
            .map_err(|e| Refusal::bad_request(format!("signal: {}", short(&e))))?;
        check_id("to", &request.to)?;
        let size = request.payload.get().len();
        if size > MAX_SIGNAL_PAYLOAD {
            return Err(Refusal::new(
                "payload_too_large",
                format!("signal payload is {size} bytes; the limit is {MAX_SIGNAL_PAYLOAD}"),
            ));
        }
        Ok(request)
    }

    /// Refuses a signal addressed to its own sender (`from`): a peer connection needs two peers.
    pub fn check_sender(&self, from: &str) -> Result<(), Refusal> {
        if self.to == from {
            return Err(Refusal::bad_request(
                "signal: `to` is your own participant id; address another participant",
            ));
        }
        Ok(())
    }
}

impl<'a> Payload<'a> for SignalRequest<'a> {
    fn read(_: &str, data: Option<&'a RawValue>) -> Result<Self, Refusal> {
        Self::parse(data)
    }
}

/// `auth:refresh`: a new token for a connection whose token expires soon.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The new token (same user and role as the connection's).
    #[schemars(length(min = 1, max = 8192))]
    pub token: String,
}

impl RefreshRequest {
    /// Reads and checks the payload.
    pub fn parse(data: Option<&RawValue>) -> Result<Self, Refusal> {
        let request: Self = decode("auth:refresh", data)?;
        if request.token.is_empty() || request.token.len() > MAX_TOKEN {
            return Err(Refusal::bad_request(format!(
                "token: must be 1 to {MAX_TOKEN} characters"
            )));
        }
        Ok(request)
    }
}

impl Payload<'_> for RefreshRequest {
    fn read(_: &str, data: Option<&RawValue>) -> Result<Self, Refusal> {
        Self::parse(data)
    }
}

/// The ack of `auth:refresh`.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefreshAck {
    /// When the new token expires.
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// `participant:admit`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdmitRequest {
    /// The waiting participant.
    #[schemars(length(min = 1, max = 64))]
    pub participant_id: String,
}

impl AdmitRequest {
    /// Reads and checks the payload.
    pub fn parse(data: Option<&RawValue>) -> Result<Self, Refusal> {
        let request: Self = decode("participant:admit", data)?;
        check_id("participantId", &request.participant_id)?;
        Ok(request)
    }
}

impl Payload<'_> for AdmitRequest {
    fn read(_: &str, data: Option<&RawValue>) -> Result<Self, Refusal> {
        Self::parse(data)
    }
}

/// `recording:consent` (named `RecordingConsent` in the schema: the room's
/// `recording:consent-request` is `ConsentRequest` there).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(rename = "RecordingConsent")]
pub struct ConsentRequest {
    /// The answer.
    pub granted: bool,
    /// The recording asked about; when given it must be the current one.
    #[serde(default)]
    pub recording_id: Option<String>,
}

impl Payload<'_> for ConsentRequest {
    fn read(event: &str, data: Option<&RawValue>) -> Result<Self, Refusal> {
        decode(event, data)
    }
}

/// `media:state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MediaRequest {
    /// Microphone on.
    pub audio: bool,
    /// Camera on.
    pub video: bool,
    /// Sharing the screen.
    pub screen: bool,
}

impl Payload<'_> for MediaRequest {
    fn read(event: &str, data: Option<&RawValue>) -> Result<Self, Refusal> {
        decode(event, data)
    }
}

/// A `quality:report` is read, then refused when a value is out of range.
impl Payload<'_> for QualityReport {
    fn read(event: &str, data: Option<&RawValue>) -> Result<Self, Refusal> {
        let report: Self = decode(event, data)?;
        let problems = report.problems();
        if !problems.is_empty() {
            return Err(Refusal::bad_request(format!(
                "{event}: out of range: {}",
                problems.join(", ")
            )));
        }
        Ok(report)
    }
}

/// The ack of `quality:report`: the report's score.
#[derive(Debug, Serialize, JsonSchema)]
pub struct QualityAck {
    /// MOS-like score, 1 (bad) to 4.5 (excellent), two decimals.
    pub score: f64,
    /// The level the score falls in.
    pub level: Level,
}

/// The ack of `recording:start`.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordingStartAck {
    /// The new recording.
    pub recording_id: String,
    /// Whether it is recording already (nobody else had to consent).
    pub active: bool,
    /// Participant ids still to consent.
    pub pending: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Box<RawValue> {
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn every_name_parses_back_to_its_event() {
        for &name in EventName::ALL {
            assert_eq!(EventName::parse(name.as_str()), Ok(name));
        }
        let e = EventName::parse("Signal").unwrap_err();
        assert_eq!(e.code, "unknown_event");
        assert_eq!(e.message, r#"unknown event "Signal""#);
    }

    #[test]
    fn payloads_are_checked_when_the_event_is_parsed() {
        let bad = raw(
            r#"{"rttMs": -5, "jitterMs": 1, "packetLossPct": 0, "outboundKbps": 1, "inboundKbps": 1, "frameRate": 1, "width": 1, "height": 1, "candidateType": "host"}"#,
        );
        let e = ClientEvent::parse(EventName::Quality, Some(&bad)).unwrap_err();
        assert_eq!(e.code, "bad_request");
        assert_eq!(e.message, "quality:report: out of range: rttMs");
        let e = ClientEvent::parse(EventName::Media, Some(&raw(r#"{"audio": 1}"#))).unwrap_err();
        assert!(e.message.starts_with("media:state: "), "{e:?}");
        let ignored = raw("[1, 2]");
        let leave = ClientEvent::parse(EventName::Leave, Some(&ignored));
        assert!(matches!(leave, Ok(ClientEvent::Leave(()))), "{leave:?}");
        let signal = raw(r#"{"to": "p2", "type": "answer", "payload": {"sdp": "v=0"}}"#);
        match ClientEvent::parse(EventName::Signal, Some(&signal)) {
            Ok(ClientEvent::Signal(s)) => assert_eq!(s.payload.get(), r#"{"sdp": "v=0"}"#),
            other => panic!("{other:?}"),
        }
    }
}
