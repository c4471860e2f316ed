//! What an FCM answer means for the notification (sans-IO).
//!
//! FCM v1 errors carry a `google.rpc.Status` body whose `details` include an `FcmError` with an
//! `errorCode`: branch on that, not on the HTTP status alone.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

/// What to do after one send attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Accepted; FCM's message name.
    Delivered(String),
    /// The token is gone or belongs elsewhere: deactivate the device, do not retry.
    DropToken(String),
    /// The message itself is wrong: do not retry.
    Rejected(String),
    /// The access token was refused: fetch a new one and try again.
    Reauthenticate,
    /// Overloaded or failing: retry later, not before `after` when FCM said so.
    Retry {
        /// `Retry-After`.
        after: Option<Duration>,
        /// What happened.
        reason: String,
    },
}

#[derive(Deserialize)]
struct ErrorBody {
    error: Status,
}

#[derive(Deserialize)]
struct Status {
    #[serde(default)]
    message: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    details: Vec<Detail>,
}

#[derive(Deserialize)]
struct Detail {
    #[serde(rename = "@type", default)]
    kind: String,
    #[serde(rename = "errorCode")]
    error_code: Option<String>,
}

#[derive(Deserialize)]
struct Sent {
    name: String,
}

/// Reads FCM's answer: HTTP `status`, the `Retry-After` header if any, the body.
pub fn classify(
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Verdict {
    if (200..300).contains(&status) {
        return match serde_json::from_slice::<Sent>(body) {
            Ok(sent) => Verdict::Delivered(sent.name),
            Err(_) => Verdict::Delivered(String::new()),
        };
    }
    let after = retry_after.and_then(|v| parse_retry_after(v, now));
    let parsed = serde_json::from_slice::<ErrorBody>(body).ok();
    let message = parsed
        .as_ref()
        .map(|b| b.error.message.clone())
        .unwrap_or_default();
    let code = parsed.as_ref().and_then(|b| {
        b.error
            .details
            .iter()
            .filter(|d| d.kind.ends_with("google.firebase.fcm.v1.FcmError"))
            .find_map(|d| d.error_code.clone())
            .or_else(|| Some(b.error.status.clone()).filter(|s| !s.is_empty()))
    });
    let reason = |code: &str| {
        if message.is_empty() {
            format!("{status} {code}")
        } else {
            format!("{status} {code}: {message}")
        }
    };
    match code.as_deref() {
        Some("UNREGISTERED") => Verdict::DropToken(reason("UNREGISTERED")),
        Some("SENDER_ID_MISMATCH") => Verdict::DropToken(reason("SENDER_ID_MISMATCH")),
        Some("INVALID_ARGUMENT") => {
            // An invalid registration token is reported as INVALID_ARGUMENT too.
            if message.to_ascii_lowercase().contains("registration token") {
                Verdict::DropToken(reason("INVALID_ARGUMENT"))
            } else {
                Verdict::Rejected(reason("INVALID_ARGUMENT"))
            }
        }
        Some("QUOTA_EXCEEDED" | "UNAVAILABLE" | "INTERNAL" | "RESOURCE_EXHAUSTED") => {
            Verdict::Retry {
                after,
                reason: reason(code.as_deref().unwrap_or_default()),
            }
        }
        Some("THIRD_PARTY_AUTH_ERROR") => Verdict::Rejected(reason("THIRD_PARTY_AUTH_ERROR")),
        Some("UNAUTHENTICATED") => Verdict::Reauthenticate,
        _ => match status {
            401 => Verdict::Reauthenticate,
            429 | 500..=599 => Verdict::Retry {
                after,
                reason: reason("retryable"),
            },
            404 => Verdict::DropToken(reason("not found")),
            _ => Verdict::Rejected(reason(code.as_deref().unwrap_or("error"))),
        },
    }
}

/// `Retry-After`: seconds, or an HTTP date.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    }

    fn fcm_error(code: u16, status: &str, error_code: &str, message: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "error": {
                "code": code,
                "message": message,
                "status": status,
                "details": [{
                    "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                    "errorCode": error_code,
                }],
            }
        }))
        .unwrap_or_default()
    }

    #[test]
    fn success_carries_the_message_name() {
        let v = classify(200, None, br#"{"name":"projects/p/messages/1"}"#, now());
        assert_eq!(v, Verdict::Delivered("projects/p/messages/1".into()));
    }

    #[test]
    fn unregistered_drops_the_token() {
        let body = fcm_error(
            404,
            "NOT_FOUND",
            "UNREGISTERED",
            "Requested entity was not found.",
        );
        assert!(matches!(
            classify(404, None, &body, now()),
            Verdict::DropToken(_)
        ));
    }

    #[test]
    fn an_invalid_token_drops_it_but_a_bad_message_is_only_rejected() {
        let body = fcm_error(
            400,
            "INVALID_ARGUMENT",
            "INVALID_ARGUMENT",
            "The registration token is not a valid FCM registration token",
        );
        assert!(matches!(
            classify(400, None, &body, now()),
            Verdict::DropToken(_)
        ));
        let body = fcm_error(
            400,
            "INVALID_ARGUMENT",
            "INVALID_ARGUMENT",
            "Invalid JSON payload",
        );
        assert!(matches!(
            classify(400, None, &body, now()),
            Verdict::Rejected(_)
        ));
    }

    #[test]
    fn quota_honours_retry_after_in_seconds_and_as_a_date() {
        let body = fcm_error(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "quota");
        assert_eq!(
            classify(429, Some("7"), &body, now()),
            Verdict::Retry {
                after: Some(Duration::from_secs(7)),
                reason: "429 QUOTA_EXCEEDED: quota".into()
            }
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now()),
            Some(Duration::from_secs(30))
        );
        assert_eq!(parse_retry_after("soon", now()), None);
    }

    #[test]
    fn unavailable_and_internal_are_retried() {
        for (code, status, ec) in [
            (503, "UNAVAILABLE", "UNAVAILABLE"),
            (500, "INTERNAL", "INTERNAL"),
        ] {
            let body = fcm_error(code, status, ec, "x");
            assert!(matches!(
                classify(code, None, &body, now()),
                Verdict::Retry { after: None, .. }
            ));
        }
        // A proxy's 502 with an HTML body.
        assert!(matches!(
            classify(502, None, b"<html>", now()),
            Verdict::Retry { .. }
        ));
    }

    #[test]
    fn a_refused_access_token_asks_for_a_new_one() {
        let body = br#"{"error":{"code":401,"message":"Request had invalid authentication credentials.","status":"UNAUTHENTICATED"}}"#;
        assert_eq!(classify(401, None, body, now()), Verdict::Reauthenticate);
    }
}
