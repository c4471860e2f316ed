//! What a room tells its participants. Each [`Event`] variant is one Socket.IO event: its name and
//! its payload type are declared together here, once, and the server, `docs/signaling.md` and the
//! JSON Schema the clients are generated from all read them from this list.

use serde::Serialize;

use super::{MediaState, MemberView};

/// Declares [`Event`] with its variants' event names, so that a name and its payload cannot be
/// declared apart.
macro_rules! events {
    ($( $(#[$doc:meta])* $name:literal => $variant:ident($payload:ty), )*) => {
        /// An event for participants. It serializes as its payload; [`Event::name`] is the
        /// Socket.IO event name.
        #[derive(Debug, Clone, PartialEq, Eq, Serialize)]
        #[serde(untagged)]
        pub enum Event {
            $( $(#[$doc])* $variant($payload), )*
        }

        impl Event {
            /// Every event name a room sends, in declaration order.
            pub const NAMES: &[&str] = &[$($name),*];

            /// The Socket.IO event name.
            #[must_use]
            pub fn name(&self) -> &'static str {
                match self {
                    $( Self::$variant(_) => $name, )*
                }
            }

            /// Each event name with the JSON Schema of its payload.
            #[cfg(feature = "schema")]
            pub fn schemas(
                generator: &mut schemars::SchemaGenerator,
            ) -> Vec<(&'static str, schemars::Schema)> {
                vec![$( ($name, generator.subschema_for::<$payload>()), )*]
            }
        }
    };
}

events! {
    /// Someone entered the call or its waiting room; to the others.
    "participant:joined" => Joined(MemberView),
    /// Someone left for good; to the others.
    "participant:left" => Left(Left),
    /// Someone's connection dropped; they may resume within the grace period. To the others.
    "participant:reconnecting" => Reconnecting(ParticipantRef),
    /// Someone came back within the grace period; to the others.
    "participant:resumed" => Resumed(ParticipantRef),
    /// The lawyer let someone in from the waiting room; to the others.
    "participant:admitted" => Admitted(ParticipantRef),
    /// You were let in from the waiting room; to the admitted participant.
    "consultation:admitted" => YouWereAdmitted(ParticipantRef),
    /// Someone's camera, microphone or screen share changed; to the others.
    "participant:media" => Media(MediaChange),
    /// A recording asks for your consent; to each participant who must answer.
    "recording:consent-request" => ConsentRequest(ConsentRequest),
    /// Recording started, paused or stopped; to everyone.
    "recording:state" => RecordingState(RecordingState),
    /// Someone refused consent; to the lawyer.
    "recording:consent-refused" => ConsentRefused(ConsentNotice),
    /// Someone must still consent before recording can start; to the lawyer.
    "recording:consent-needed" => ConsentNeeded(ConsentNotice),
    /// The consultation ended; to everyone.
    "consultation:ended" => Ended(Ended),
    /// Media now travels another way (peer to peer, or through the SFU); to everyone.
    "media:topology" => Topology(TopologyChange),
}

/// `media:topology`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct TopologyChange {
    /// `p2p`: each participant connects to each other one (`signal`); `sfu`: each connects once
    /// to the server (`media:publish`).
    pub topology: crate::media::Topology,
}

/// `participant:left`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Left {
    /// Who.
    pub participant_id: String,
    /// Why: `left`, `timeout`, `replaced` or `ended`.
    pub reason: &'static str,
}

/// An event about one participant (`participant:reconnecting`, `participant:resumed`,
/// `participant:admitted`, `consultation:admitted`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ParticipantRef {
    /// Who.
    pub participant_id: String,
}

/// `participant:media`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct MediaChange {
    /// Who.
    pub participant_id: String,
    /// Their new state.
    #[serde(flatten)]
    pub media: MediaState,
}

/// `recording:consent-request`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ConsentRequest {
    /// Version of the notice to show before asking.
    pub notice_version: String,
    /// The recording asking.
    pub recording_id: String,
}

/// `recording:state`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct RecordingState {
    /// Whether recording is on.
    pub active: bool,
    /// The recording.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recording_id: Option<String>,
    /// The participant who started it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// Why it is not (or no longer) active.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// The server records it (through the SFU): browsers record nothing themselves.
    pub server: bool,
}

/// `recording:consent-refused` and `recording:consent-needed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ConsentNotice {
    /// Who refused, or who must still consent.
    pub participant_id: String,
    /// Their user id.
    pub user_id: String,
}

/// `consultation:ended`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Ended {
    /// The user id of who ended it.
    pub by: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_follow_the_variant() {
        let mut names = Event::NAMES.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Event::NAMES.len());
        let ended = Event::Ended(Ended { by: "u".into() });
        assert_eq!(ended.name(), "consultation:ended");
        let admitted = Event::YouWereAdmitted(ParticipantRef {
            participant_id: "p".into(),
        });
        assert_eq!(admitted.name(), "consultation:admitted");
    }
}
