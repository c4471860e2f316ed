use std::time::Duration;

use chrono::TimeZone;
use serde_json::json;

use super::*;

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 5, 10, 0, 0).unwrap()
}

fn message(action: &str, actor: Option<&str>, detail: Value) -> Option<Message> {
    Message::from_audit(AuditFacts {
        id: "0193a",
        consultation_id: Some("c1"),
        actor_id: actor,
        action,
        detail: &detail,
        at: at(),
    })
}

#[test]
fn every_event_has_a_name_that_parses_back() {
    for event in EventType::ALL {
        assert_eq!(event.as_str().parse::<EventType>().unwrap(), event);
        assert_eq!(
            serde_json::to_value(event).unwrap(),
            Value::String(event.as_str().to_owned())
        );
    }
    assert!("recording.finished".parse::<EventType>().is_err());
}

#[test]
fn audit_actions_name_their_events_and_duplicates_report_once() {
    let none = json!({});
    let e = |action: &str, detail: &Value| EventType::from_audit(action, detail);
    assert_eq!(
        e("consultation.created", &none),
        Some(EventType::ConsultationBooked)
    );
    assert_eq!(
        e("recording.active", &none),
        Some(EventType::RecordingStarted)
    );
    assert_eq!(
        e("recording.consent_refused", &none),
        Some(EventType::ConsentRefused)
    );
    // The room writes `consultation.ended` when the lawyer ends the call; the status change
    // that follows writes it again, with `to`: that one is the event.
    assert_eq!(e("consultation.ended", &json!({"via": "signaling"})), None);
    assert_eq!(
        e(
            "consultation.ended",
            &json!({"from": "in_progress", "to": "ended"})
        ),
        Some(EventType::ConsultationEnded)
    );
    // A server recording's tracks complete one by one; the session is the event.
    assert_eq!(e("recording.completed", &json!({"kind": "track"})), None);
    assert_eq!(
        e("recording.completed", &json!({"kind": "session"})),
        Some(EventType::RecordingReady)
    );
    assert_eq!(
        e("recording.incomplete", &json!({"kind": "upload"})),
        Some(EventType::RecordingIncomplete)
    );
    // Not everything audited is news for the platform's backend.
    assert_eq!(e("recording.downloaded", &none), None);
    assert_eq!(e("participant.ice_restart", &none), None);
}

#[test]
fn a_message_has_a_stable_id_and_the_standard_layout() {
    let m = message(
        "participant.joined",
        Some("client-1"),
        json!({"participantId": "p-1", "role": "client", "via": "signaling"}),
    )
    .unwrap();
    assert_eq!(m.id, "evt_0193a");
    assert_eq!(m.event, EventType::ParticipantJoined);
    assert_eq!(m.consultation_id.as_deref(), Some("c1"));
    assert_eq!(
        m.body,
        json!({
            "type": "participant.joined",
            "timestamp": "2026-12-05T10:00:00.000Z",
            "data": {
                "consultationId": "c1",
                "participantId": "p-1",
                "userId": "client-1",
                "role": "client",
            }
        })
    );
}

#[test]
fn data_is_picked_field_by_field_so_nothing_else_leaks() {
    let m = message(
        "consultation.created",
        Some("lawyer-1"),
        json!({
            "lawyerId": "lawyer-1",
            "clientId": "client-1",
            "scheduledAt": "2026-12-06T09:00:00Z",
            "durationMinutes": 45,
            "mediaMode": "auto",
            "title": "Custody hearing preparation",
            "notes": "privileged",
        }),
    )
    .unwrap();
    let data = &m.body["data"];
    assert_eq!(data["lawyerId"], "lawyer-1");
    assert_eq!(data["scheduledAt"], "2026-12-06T09:00:00Z");
    assert_eq!(data["durationMinutes"], 45);
    assert!(data.get("title").is_none() && data.get("notes").is_none());
}

#[test]
fn a_ready_recording_says_where_to_fetch_it() {
    let m = message(
        "recording.completed",
        None,
        json!({
            "recordingId": "r1",
            "kind": "session",
            "server": true,
            "bytes": 1234,
            "tracks": [{"trackId": "t1", "status": "completed", "bytes": 1000}],
        }),
    )
    .unwrap();
    let data: RecordingFinishedData = serde_json::from_value(m.body["data"].clone()).unwrap();
    assert_eq!(data.recording_id, "r1");
    assert_eq!(data.bytes, Some(1234));
    assert_eq!(data.tracks[0].track_id, "t1");
    assert_eq!(data.links.manifest, "/api/v1/recordings/r1/manifest");
    assert_eq!(
        data.links.download_url,
        "/api/v1/recordings/r1/download-url"
    );
}

#[test]
fn a_pruned_device_belongs_to_no_consultation() {
    let detail = json!({"userId": "u1", "platform": "android", "reason": "unregistered"});
    let m = Message::from_audit(AuditFacts {
        id: "x",
        consultation_id: None,
        actor_id: None,
        action: "device.pruned",
        detail: &detail,
        at: at(),
    })
    .unwrap();
    assert_eq!(m.consultation_id, None);
    assert_eq!(m.body["data"]["reason"], "unregistered");
}

#[test]
fn filters_take_names_groups_and_everything() {
    let all = Filter::parse::<&str>(&[]).unwrap();
    assert_eq!(all, Filter::all());
    let f = Filter::parse(&["recording.*", "consent.given"]).unwrap();
    assert!(f.matches(EventType::RecordingReady) && f.matches(EventType::RecordingDeleted));
    assert!(f.matches(EventType::ConsentGiven));
    assert!(!f.matches(EventType::ConsentRefused));
    assert_eq!(Filter::from_stored(&f.stored()), f);
    assert!(f.stored().contains(",recording.ready,"));
    assert_eq!(Filter::parse(&["*"]).unwrap(), Filter::all());
    let err = Filter::parse(&["recordings.*"]).unwrap_err().to_string();
    assert!(err.contains("recordings.*"), "{err}");
    let err = Filter::parse(&["recording.finished"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("recording.ready"), "lists the names: {err}");
}

#[test]
fn only_a_2xx_delivers_and_every_failure_but_gone_is_retried() {
    let now = at();
    assert_eq!(judge(Some(204), None, None, now), Verdict::Delivered);
    assert_eq!(judge(Some(410), None, None, now), Verdict::Gone);
    for code in [400, 401, 404, 429, 500, 503] {
        assert!(
            matches!(judge(Some(code), None, None, now), Verdict::Retry { .. }),
            "{code}"
        );
    }
    assert_eq!(
        judge(None, Some("timed out after 10s"), None, now),
        Verdict::Retry {
            reason: "timed out after 10s".into(),
            retry_after: None
        }
    );
}

#[test]
fn retry_after_is_read_as_seconds_or_a_date_and_capped_at_a_day() {
    let now = at();
    let wait = |h: &str| match judge(Some(503), None, Some(h), now) {
        Verdict::Retry { retry_after, .. } => retry_after,
        other => panic!("{other:?}"),
    };
    assert_eq!(wait("120"), Some(Duration::from_secs(120)));
    assert_eq!(
        wait("Sat, 05 Dec 2026 10:05:00 GMT"),
        Some(Duration::from_secs(300))
    );
    assert_eq!(wait("Sat, 05 Dec 2026 09:00:00 GMT"), Some(Duration::ZERO));
    assert_eq!(wait("999999"), Some(Duration::from_secs(86_400)));
    assert_eq!(wait("soon"), None);
}

#[test]
fn an_endpoint_is_disabled_after_the_configured_failures_in_a_row() {
    let d = Disabling { after_failures: 3 };
    assert!(!d.disables(2));
    assert!(d.disables(3));
    assert!(!Disabling { after_failures: 0 }.disables(10_000));
}
