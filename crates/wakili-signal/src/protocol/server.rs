//! What the server sends besides room events: each payload type knows its event name
//! ([`ServerEvent::name`]), and [`schemas`] lists them with the room's events
//! (`wakili_core::room::Event`) for the JSON Schema.

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::value::RawValue;
use wakili_core::{quality::Recommendation, room::Event};

use super::client::SignalType;
use crate::expiry::Expiring;

/// A payload the server sends on its own (not decided by a room).
pub trait ServerEvent: Serialize {
    /// The Socket.IO event name it goes out as.
    fn name(&self) -> &'static str;
}

/// `signal` as delivered.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SignalOut<'a> {
    /// Sender participant id.
    pub from: &'a str,
    /// Kind of signal.
    #[serde(rename = "type")]
    pub kind: SignalType,
    /// The sender's payload, unchanged.
    #[schemars(with = "serde_json::Value")]
    pub payload: &'a RawValue,
}

impl ServerEvent for SignalOut<'_> {
    fn name(&self) -> &'static str {
        "signal"
    }
}

/// `quality:recommendation`: switch to another quality profile, to the reporter.
impl ServerEvent for Recommendation {
    fn name(&self) -> &'static str {
        "quality:recommendation"
    }
}

/// `quality-profile:changed`: the lawyer changed the consultation's profile over the API.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ProfileChanged<'a> {
    /// The new profile.
    pub profile: &'a str,
    /// The user id of who changed it.
    pub by: &'a str,
}

impl ServerEvent for ProfileChanged<'_> {
    fn name(&self) -> &'static str {
        "quality-profile:changed"
    }
}

/// `call:accepted` or `call:declined`: the callee answered a push call notification.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallAnswered<'a> {
    /// The consultation called about.
    pub consultation_id: &'a str,
    /// The user id of who answered.
    pub by: &'a str,
    /// Their display name.
    pub name: &'a str,
    /// Accepted (`call:accepted`) or declined (`call:declined`); not sent.
    #[serde(skip)]
    pub accepted: bool,
}

impl ServerEvent for CallAnswered<'_> {
    fn name(&self) -> &'static str {
        if self.accepted {
            "call:accepted"
        } else {
            "call:declined"
        }
    }
}

/// `auth:expiring`: send `auth:refresh` with a new token.
impl ServerEvent for Expiring {
    fn name(&self) -> &'static str {
        "auth:expiring"
    }
}

/// Why the server closes a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// It kept sending events over the rate limit.
    RateLimited,
    /// The same participant joined from another connection.
    Replaced,
    /// Its token expired without an `auth:refresh`.
    TokenExpired,
    /// The lawyer withdrew this guest's invitation, or gave them another role (join again to
    /// take part with it).
    Dismissed,
}

/// `session:closed`: sent to a connection right before the server closes it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SessionClosed {
    /// Why.
    pub reason: CloseReason,
    /// What to tell the user.
    pub message: &'static str,
}

impl ServerEvent for SessionClosed {
    fn name(&self) -> &'static str {
        "session:closed"
    }
}

/// `media:offer`: the SFU renegotiates (someone published or removed a track); answer with
/// `media:answer`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct MediaOffer {
    /// SDP offer.
    pub sdp: String,
}

impl ServerEvent for MediaOffer {
    fn name(&self) -> &'static str {
        "media:offer"
    }
}

/// `media:track`: a participant's track reached the SFU or went away; to everyone in the call.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MediaTrack {
    /// The publisher (also the `msid` stream id of the track in `media:offer`s).
    pub participant_id: String,
    /// The track id (`t<id>` is the `msid` track id).
    pub track_id: u64,
    /// `audio` or `video` (absent when it went away).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    /// Its simulcast layers (`q`, `h`, `f`), low to high; empty without simulcast.
    pub layers: Vec<&'static str>,
    /// Published (`true`) or gone (`false`).
    pub active: bool,
}

impl MediaTrack {
    /// `participant_id`'s track `track_id` went away.
    pub fn removed(participant_id: String, track_id: u64) -> Self {
        Self {
            participant_id,
            track_id,
            kind: None,
            layers: Vec::new(),
            active: false,
        }
    }
}

impl ServerEvent for MediaTrack {
    fn name(&self) -> &'static str {
        "media:track"
    }
}

/// `speaker:active`: the dominant speaker changed; to everyone in the call.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActiveSpeaker {
    /// Who speaks now.
    pub participant_id: String,
}

impl ServerEvent for ActiveSpeaker {
    fn name(&self) -> &'static str {
        "speaker:active"
    }
}

/// `media:layer`: the simulcast layer you receive of a track changed; to that subscriber.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LayerChanged {
    /// The track.
    pub track_id: u64,
    /// `q`, `h` or `f`; `null` when none is forwarded (paused).
    pub rid: Option<&'static str>,
}

impl ServerEvent for LayerChanged {
    fn name(&self) -> &'static str {
        "media:layer"
    }
}

/// Every event the server sends, room events first, with the JSON Schema of its payload.
pub fn schemas(generator: &mut schemars::SchemaGenerator) -> Vec<(&'static str, schemars::Schema)> {
    let mut all = Event::schemas(generator);
    let call = generator.subschema_for::<CallAnswered<'_>>();
    all.extend([
        ("signal", generator.subschema_for::<SignalOut<'_>>()),
        (
            "quality:recommendation",
            generator.subschema_for::<Recommendation>(),
        ),
        (
            "quality-profile:changed",
            generator.subschema_for::<ProfileChanged<'_>>(),
        ),
        ("call:accepted", call.clone()),
        ("call:declined", call),
        ("auth:expiring", generator.subschema_for::<Expiring>()),
        ("session:closed", generator.subschema_for::<SessionClosed>()),
        ("media:offer", generator.subschema_for::<MediaOffer>()),
        ("media:track", generator.subschema_for::<MediaTrack>()),
        ("speaker:active", generator.subschema_for::<ActiveSpeaker>()),
        ("media:layer", generator.subschema_for::<LayerChanged>()),
    ]);
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The name each payload goes out as is one the schema lists.
    #[test]
    fn every_server_event_is_in_the_schema() {
        let mut generator = schemars::SchemaGenerator::default();
        let listed: Vec<&str> = schemas(&mut generator)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        let payload: Box<RawValue> = serde_json::from_str("{}").expect("json");
        let answered = |accepted| CallAnswered {
            consultation_id: "c",
            by: "u",
            name: "n",
            accepted,
        };
        let sent: Vec<&str> = vec![
            SignalOut {
                from: "p",
                kind: SignalType::Offer,
                payload: &payload,
            }
            .name(),
            Recommendation {
                profile: "low",
                reason: "r",
            }
            .name(),
            ProfileChanged {
                profile: "p",
                by: "u",
            }
            .name(),
            answered(true).name(),
            answered(false).name(),
            Expiring {
                expires_at: chrono::DateTime::UNIX_EPOCH,
                closes_in_seconds: 0,
            }
            .name(),
            SessionClosed {
                reason: CloseReason::Replaced,
                message: "m",
            }
            .name(),
            MediaOffer { sdp: "v=0".into() }.name(),
            MediaTrack {
                participant_id: "p".into(),
                track_id: 1,
                kind: Some("video"),
                layers: vec!["q"],
                active: true,
            }
            .name(),
            ActiveSpeaker {
                participant_id: "p".into(),
            }
            .name(),
            LayerChanged {
                track_id: 1,
                rid: None,
            }
            .name(),
        ];
        for name in sent.iter().chain(Event::NAMES) {
            assert!(listed.contains(name), "{name} is missing from the schema");
        }
        assert_eq!(listed.len(), sent.len() + Event::NAMES.len());
    }

    #[test]
    fn payloads_serialize_as_documented() {
        let closed = SessionClosed {
            reason: CloseReason::RateLimited,
            message: "too many events; the connection is closed",
        };
        assert_eq!(
            serde_json::to_value(&closed).expect("json"),
            serde_json::json!({"reason": "rate_limited", "message": "too many events; the connection is closed"})
        );
        let call = CallAnswered {
            consultation_id: "c1",
            by: "u1",
            name: "Amina",
            accepted: false,
        };
        assert_eq!(call.name(), "call:declined");
        assert_eq!(
            serde_json::to_value(&call).expect("json"),
            serde_json::json!({"consultationId": "c1", "by": "u1", "name": "Amina"})
        );
    }
}
