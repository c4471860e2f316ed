//! Notifications and the FCM HTTP v1 messages they become (sans-IO).
//!
//! A [`Notification`] (from [`wakili_core::notification`]) is what the outbox stores: what to
//! say, independent of the device. [`check`] refuses what FCM would refuse before it is queued;
//! at send time [`fcm_message`] turns it into the `{"message": …}` body of `messages:send` for
//! one device, with the `android`, `apns` and `webpush` blocks its kind needs.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};

pub use wakili_core::{
    model::push::Platform,
    notification::{Kind, Notification, clip},
};

use crate::PushError;

/// FCM's limit on a message's payload (notification and data), in bytes.
pub const MAX_PAYLOAD_BYTES: usize = 4096;

/// How a message is shaped for one kind.
struct Shape {
    urgent: bool,
    apns_category: Option<&'static str>,
    call_actions: bool,
}

fn shape(kind: Kind) -> Shape {
    match kind {
        Kind::IncomingCall => Shape {
            urgent: true,
            apns_category: Some("INCOMING_CALL"),
            call_actions: true,
        },
        Kind::CallCancelled => Shape {
            urgent: true,
            apns_category: None,
            call_actions: false,
        },
        Kind::Reminder => Shape {
            urgent: true,
            apns_category: Some("CONSULTATION_REMINDER"),
            call_actions: false,
        },
        Kind::ConsultationCancelled | Kind::ConsultationRescheduled => Shape {
            urgent: false,
            apns_category: Some("CONSULTATION_UPDATE"),
            call_actions: false,
        },
    }
}

/// Device-independent settings of the messages.
#[derive(Debug, Clone)]
pub struct MessageOptions {
    /// Android notification channel.
    pub android_channel: String,
}

/// Checks the content FCM would refuse: non-empty title when visible and a payload within
/// [`MAX_PAYLOAD_BYTES`] (measured as FCM counts it, notification plus data, with room for the
/// `notificationId` added at send time).
pub fn check(n: &Notification) -> Result<(), PushError> {
    if n.title.as_deref().is_some_and(str::is_empty) {
        return Err(PushError::Invalid("empty title".into()));
    }
    if n.data.keys().any(|k| reserved_key(k)) {
        return Err(PushError::Invalid(
            "a data key is reserved by FCM (from, gcm.*, google.*, message_type, collapse_key)"
                .into(),
        ));
    }
    let size =
        payload_bytes(n) + r#","notificationId":"00000000-0000-0000-0000-000000000000""#.len();
    if size > MAX_PAYLOAD_BYTES {
        return Err(PushError::Invalid(format!(
            "payload is {size} bytes; FCM accepts at most {MAX_PAYLOAD_BYTES}"
        )));
    }
    Ok(())
}

/// Bytes of the notification and data parts as JSON.
pub fn payload_bytes(n: &Notification) -> usize {
    let notification = match (&n.title, &n.body) {
        (None, None) => Value::Null,
        (title, body) => json!({ "title": title, "body": body }),
    };
    serde_json::to_vec(&json!({ "notification": notification, "data": n.data }))
        .map_or(usize::MAX, |v| v.len())
}

fn reserved_key(key: &str) -> bool {
    key == "from"
        || key == "message_type"
        || key == "collapse_key"
        || key.starts_with("google.")
        || key.starts_with("gcm.")
}

/// The `messages:send` body for `notification` to the device with `token` on `platform`, as a
/// JSON value (see [`fcm_body`] for the bytes the sender posts).
pub fn fcm_message(
    notification: &Notification,
    id: &str,
    token: &str,
    platform: Platform,
    options: &MessageOptions,
    now: DateTime<Utc>,
) -> Value {
    serde_json::to_value(body(notification, id, token, platform, options, now))
        .unwrap_or(Value::Null)
}

/// The `messages:send` body for `notification` to the device with `token` on `platform`,
/// serialized. `id` (the outbox row) travels as data `notificationId` so the app can
/// deduplicate; `now` dates the APNs expiration. Written straight from typed parts (no
/// intermediate JSON tree): this runs once per message.
pub fn fcm_body(
    notification: &Notification,
    id: &str,
    token: &str,
    platform: Platform,
    options: &MessageOptions,
    now: DateTime<Utc>,
) -> Result<Vec<u8>, PushError> {
    serde_json::to_vec(&body(notification, id, token, platform, options, now))
        .map_err(|e| PushError::Invalid(e.to_string()))
}

fn body<'a>(
    n: &'a Notification,
    id: &'a str,
    token: &'a str,
    platform: Platform,
    options: &'a MessageOptions,
    now: DateTime<Utc>,
) -> Body<'a> {
    let shape = shape(n.kind);
    let visible = n.title.is_some();
    let ttl = n.ttl_seconds;
    let collapse = n.collapse_key.as_deref();
    let mut message = Message {
        token,
        data: Data {
            base: &n.data,
            id,
            kind: n.kind.as_str(),
        },
        notification: visible.then_some(Visible {
            title: n.title.as_deref(),
            body: n.body.as_deref(),
        }),
        android: None,
        apns: None,
        webpush: None,
    };
    match platform {
        Platform::Android => {
            message.android = Some(Android {
                priority: if shape.urgent { "HIGH" } else { "NORMAL" },
                ttl: format!("{ttl}s"),
                collapse_key: collapse,
                notification: visible.then_some(AndroidNotification {
                    channel_id: &options.android_channel,
                    click_action: click_action(n.kind),
                    tag: collapse,
                }),
            });
        }
        Platform::Ios => {
            message.apns = Some(Apns {
                headers: ApnsHeaders {
                    // Apple allows priority 10 only for alerts; a background push must be 5.
                    priority: if visible && shape.urgent { "10" } else { "5" },
                    push_type: if visible { "alert" } else { "background" },
                    expiration: (now.timestamp() + i64::from(ttl)).to_string(),
                    collapse_id: collapse,
                },
                payload: ApnsPayload {
                    aps: if visible {
                        Aps {
                            mutable_content: Some(1),
                            sound: Some("default"),
                            category: shape.apns_category,
                            content_available: None,
                        }
                    } else {
                        Aps {
                            mutable_content: None,
                            sound: None,
                            category: None,
                            content_available: Some(1),
                        }
                    },
                },
            });
        }
        Platform::Web => {
            message.webpush = Some(Webpush {
                headers: WebHeaders {
                    urgency: if shape.urgent { "high" } else { "normal" },
                    ttl: ttl.to_string(),
                    topic: collapse.map(web_topic),
                },
                notification: visible.then_some(WebNotification {
                    title: n.title.as_deref(),
                    body: n.body.as_deref(),
                    require_interaction: shape.call_actions,
                    tag: collapse,
                    actions: shape.call_actions.then_some([
                        WebAction {
                            action: "accept",
                            title: "Accept",
                        },
                        WebAction {
                            action: "decline",
                            title: "Decline",
                        },
                    ]),
                }),
            });
        }
    }
    Body { message }
}

#[derive(Serialize)]
struct Body<'a> {
    message: Message<'a>,
}

#[derive(Serialize)]
struct Message<'a> {
    token: &'a str,
    data: Data<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    notification: Option<Visible<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    android: Option<Android<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    apns: Option<Apns<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    webpush: Option<Webpush<'a>>,
}

/// The notification's data plus `notificationId` and `kind`, all strings.
struct Data<'a> {
    base: &'a BTreeMap<String, String>,
    id: &'a str,
    kind: &'static str,
}

impl Serialize for Data<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        for (k, v) in self.base {
            if k != "notificationId" && k != "kind" {
                map.serialize_entry(k, v)?;
            }
        }
        map.serialize_entry("notificationId", self.id)?;
        map.serialize_entry("kind", self.kind)?;
        map.end()
    }
}

#[derive(Serialize)]
struct Visible<'a> {
    title: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<&'a str>,
}

#[derive(Serialize)]
struct Android<'a> {
    priority: &'static str,
    ttl: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    collapse_key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    notification: Option<AndroidNotification<'a>>,
}

#[derive(Serialize)]
struct AndroidNotification<'a> {
    channel_id: &'a str,
    click_action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tag: Option<&'a str>,
}

#[derive(Serialize)]
struct Apns<'a> {
    headers: ApnsHeaders<'a>,
    payload: ApnsPayload,
}

#[derive(Serialize)]
struct ApnsHeaders<'a> {
    #[serde(rename = "apns-priority")]
    priority: &'static str,
    #[serde(rename = "apns-push-type")]
    push_type: &'static str,
    #[serde(rename = "apns-expiration")]
    expiration: String,
    #[serde(rename = "apns-collapse-id", skip_serializing_if = "Option::is_none")]
    collapse_id: Option<&'a str>,
}

#[derive(Serialize)]
struct ApnsPayload {
    aps: Aps,
}

#[derive(Serialize)]
struct Aps {
    #[serde(rename = "mutable-content", skip_serializing_if = "Option::is_none")]
    mutable_content: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sound: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    category: Option<&'static str>,
    #[serde(rename = "content-available", skip_serializing_if = "Option::is_none")]
    content_available: Option<u8>,
}

#[derive(Serialize)]
struct Webpush<'a> {
    headers: WebHeaders,
    #[serde(skip_serializing_if = "Option::is_none")]
    notification: Option<WebNotification<'a>>,
}

#[derive(Serialize)]
struct WebHeaders {
    #[serde(rename = "Urgency")]
    urgency: &'static str,
    #[serde(rename = "TTL")]
    ttl: String,
    #[serde(rename = "Topic", skip_serializing_if = "Option::is_none")]
    topic: Option<String>,
}

#[derive(Serialize)]
struct WebNotification<'a> {
    title: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<&'a str>,
    #[serde(rename = "requireInteraction")]
    require_interaction: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    tag: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    actions: Option<[WebAction; 2]>,
}

#[derive(Serialize)]
struct WebAction {
    action: &'static str,
    title: &'static str,
}

fn click_action(kind: Kind) -> &'static str {
    match kind {
        Kind::IncomingCall => "INCOMING_CALL",
        Kind::CallCancelled => "CALL_CANCELLED",
        Kind::Reminder => "CONSULTATION_REMINDER",
        Kind::ConsultationCancelled | Kind::ConsultationRescheduled => "CONSULTATION_UPDATE",
    }
}

/// A Web Push `Topic` is at most 32 URL-safe base64 characters.
fn web_topic(key: &str) -> String {
    key.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(32)
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn call() -> Notification {
        Notification {
            kind: Kind::IncomingCall,
            title: Some("Incoming video consultation".into()),
            body: Some("Amina is calling you".into()),
            data: BTreeMap::from([
                ("action".into(), "join_call".into()),
                ("consultationId".into(), "c1".into()),
                ("callerName".into(), "Amina".into()),
                ("callType".into(), "video".into()),
            ]),
            ttl_seconds: 30,
            collapse_key: Some("call-c1".into()),
        }
    }

    fn options() -> MessageOptions {
        MessageOptions {
            android_channel: "consultations".into(),
        }
    }

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-25T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn a_call_on_android_rings_with_high_priority_and_a_short_ttl() {
        let m = fcm_message(&call(), "n1", "tok", Platform::Android, &options(), at());
        let a = &m["message"]["android"];
        assert_eq!(a["priority"], "HIGH");
        assert_eq!(a["ttl"], "30s");
        assert_eq!(a["collapse_key"], "call-c1");
        assert_eq!(a["notification"]["channel_id"], "consultations");
        assert_eq!(a["notification"]["click_action"], "INCOMING_CALL");
        assert_eq!(m["message"]["token"], "tok");
        assert_eq!(m["message"]["data"]["notificationId"], "n1");
        assert_eq!(m["message"]["data"]["action"], "join_call");
        assert!(m["message"].get("apns").is_none());
    }

    #[test]
    fn a_call_on_ios_is_an_alert_with_accept_decline_category() {
        let m = fcm_message(&call(), "n1", "tok", Platform::Ios, &options(), at());
        let apns = &m["message"]["apns"];
        assert_eq!(apns["headers"]["apns-priority"], "10");
        assert_eq!(apns["headers"]["apns-push-type"], "alert");
        assert_eq!(
            apns["headers"]["apns-expiration"],
            (at().timestamp() + 30).to_string()
        );
        assert_eq!(apns["headers"]["apns-collapse-id"], "call-c1");
        assert_eq!(apns["payload"]["aps"]["category"], "INCOMING_CALL");
        assert_eq!(apns["payload"]["aps"]["mutable-content"], 1);
    }

    #[test]
    fn a_call_on_the_web_has_actions_and_urgency() {
        let m = fcm_message(&call(), "n1", "tok", Platform::Web, &options(), at());
        let w = &m["message"]["webpush"];
        assert_eq!(w["headers"]["Urgency"], "high");
        assert_eq!(w["headers"]["TTL"], "30");
        assert_eq!(w["notification"]["actions"][1]["action"], "decline");
    }

    #[test]
    fn a_cancellation_is_data_only_and_background_on_ios() {
        let n = Notification {
            kind: Kind::CallCancelled,
            title: None,
            body: None,
            ..call()
        };
        let m = fcm_message(&n, "n2", "tok", Platform::Ios, &options(), at());
        assert!(m["message"].get("notification").is_none());
        assert_eq!(
            m["message"]["apns"]["headers"]["apns-push-type"],
            "background"
        );
        assert_eq!(m["message"]["apns"]["headers"]["apns-priority"], "5");
        assert_eq!(
            m["message"]["apns"]["payload"]["aps"]["content-available"],
            1
        );
        assert_eq!(m["message"]["data"]["kind"], "call_cancelled");
    }

    #[test]
    fn data_values_are_strings() {
        for platform in [Platform::Android, Platform::Ios, Platform::Web] {
            let m = fcm_message(&call(), "n1", "tok", platform, &options(), at());
            for (_, v) in m["message"]["data"].as_object().unwrap() {
                assert!(v.is_string(), "{v}");
            }
        }
    }

    #[test]
    fn payloads_over_4_kib_are_refused() {
        let mut n = call();
        assert!(check(&n).is_ok());
        n.data.insert("blob".into(), "x".repeat(4000));
        let e = check(&n).unwrap_err().to_string();
        assert!(e.contains("4096"), "{e}");
        let mut n = call();
        n.data.insert("google.x".into(), "1".into());
        assert!(check(&n).is_err());
    }

    #[test]
    fn the_posted_bytes_are_the_message() {
        for platform in [Platform::Android, Platform::Ios, Platform::Web] {
            let bytes = fcm_body(&call(), "n1", "tok", platform, &options(), at()).unwrap();
            let parsed: Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(
                parsed,
                fcm_message(&call(), "n1", "tok", platform, &options(), at())
            );
            assert_eq!(parsed["message"]["data"]["kind"], "incoming_call");
        }
    }
}
