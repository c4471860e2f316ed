//! What a mobile notification says, independent of the device and of the push service that
//! carries it (sans-IO).
//!
//! [`crate::notify`] decides which notifications go out; the push crate stores them in its
//! outbox as JSON and shapes each into an FCM message at send time.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Someone is calling: ring (short TTL, collapsed per consultation, accept/decline).
    IncomingCall,
    /// Stop ringing (the caller left or the callee answered elsewhere).
    CallCancelled,
    /// A consultation is coming up.
    Reminder,
    /// A consultation was called off.
    ConsultationCancelled,
    /// A consultation moved.
    ConsultationRescheduled,
}

impl Kind {
    /// Every kind, in declaration order.
    pub const ALL: [Self; 5] = [
        Self::IncomingCall,
        Self::CallCancelled,
        Self::Reminder,
        Self::ConsultationCancelled,
        Self::ConsultationRescheduled,
    ];

    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::IncomingCall => "incoming_call",
            Self::CallCancelled => "call_cancelled",
            Self::Reminder => "reminder",
            Self::ConsultationCancelled => "consultation_cancelled",
            Self::ConsultationRescheduled => "consultation_rescheduled",
        }
    }

    /// Reads the stored form; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// A notification as the outbox keeps it (its `payload` column, as JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// What it is.
    pub kind: Kind,
    /// Visible title; `None` for a data-only message (`call_cancelled`).
    pub title: Option<String>,
    /// Visible text.
    pub body: Option<String>,
    /// Data for the app: string values only, as FCM requires.
    pub data: BTreeMap<String, String>,
    /// Time to live on the push service's side.
    pub ttl_seconds: u32,
    /// Later messages with the same key replace earlier ones on the device.
    pub collapse_key: Option<String>,
}

/// `text` cut to `max` characters (names and titles going into notifications).
pub fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_read_back_their_stored_form() {
        for kind in Kind::ALL {
            assert_eq!(Kind::parse(kind.as_str()), Some(kind));
            let json = serde_json::to_string(&kind).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
        assert_eq!(Kind::parse("webhook"), None);
    }

    #[test]
    fn the_stored_json_is_camel_case() {
        let n = Notification {
            kind: Kind::CallCancelled,
            title: None,
            body: None,
            data: BTreeMap::new(),
            ttl_seconds: 30,
            collapse_key: Some("call-c1".into()),
        };
        let json = serde_json::to_value(&n).unwrap_or_default();
        assert_eq!(json["kind"], "call_cancelled");
        assert_eq!(json["ttlSeconds"], 30);
        assert_eq!(json["collapseKey"], "call-c1");
    }

    #[test]
    fn clipping_keeps_short_text() {
        assert_eq!(clip("Amina", 10), "Amina");
        assert_eq!(clip("abcdef", 3), "abc…");
    }
}
