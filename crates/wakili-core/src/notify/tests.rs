//! The notification rules' decisions, at fixed instants: no clock, no database.

use super::*;

fn t(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

fn rules() -> Rules {
    Rules {
        reminders: vec![Duration::from_secs(86_400), Duration::from_secs(900)],
        call_ttl: Duration::from_secs(30),
    }
}

fn consultation() -> Consultation {
    Consultation {
        id: "c1".into(),
        lawyer_id: "lawyer".into(),
        client_id: "client".into(),
        title: Some("Lease review".into()),
        scheduled_at: t("2026-12-02T10:00:00Z"),
        duration_minutes: 30,
        status: ConsultationStatus::Scheduled,
    }
}

fn connected(users: &[&str]) -> Vec<String> {
    users.iter().map(|u| (*u).to_owned()).collect()
}

fn ringing(callee: &str, until: DateTime<Utc>) -> LastCall {
    LastCall {
        kind: Kind::IncomingCall,
        callee: callee.into(),
        expires_at: Some(until),
    }
}

#[test]
fn both_default_reminders_when_booked_early() {
    let offsets = [Duration::from_secs(86_400), Duration::from_secs(900)];
    let r = reminders(
        t("2026-12-02T10:00:00Z"),
        &offsets,
        t("2026-11-25T10:00:00Z"),
    );
    assert_eq!(
        r,
        vec![
            (86_400, t("2026-12-01T10:00:00Z")),
            (900, t("2026-12-02T09:45:00Z"))
        ]
    );
    assert_eq!(
        rules().reminders(t("2026-12-02T10:00:00Z"), t("2026-11-25T10:00:00Z")),
        r
    );
}

#[test]
fn passed_reminders_are_left_out() {
    let offsets = [Duration::from_secs(86_400), Duration::from_secs(900)];
    let r = reminders(
        t("2026-11-25T11:00:00Z"),
        &offsets,
        t("2026-11-25T10:00:00Z"),
    );
    assert_eq!(r, vec![(900, t("2026-11-25T10:45:00Z"))]);
    assert!(
        reminders(
            t("2026-11-25T10:10:00Z"),
            &offsets,
            t("2026-11-25T10:00:00Z")
        )
        .is_empty()
    );
}

#[test]
fn lead_times_read_naturally() {
    assert_eq!(lead_time(86_400), "in 1 day");
    assert_eq!(lead_time(7_200), "in 2 hours");
    assert_eq!(lead_time(900), "in 15 minutes");
}

#[test]
fn a_reminder_goes_to_both_parties_until_the_consultation_ends() {
    let now = t("2026-12-02T09:45:00Z");
    let r = rules().reminder(&consultation(), 900, now);
    let Some(r) = r else {
        panic!("a scheduled consultation is reminded of");
    };
    assert_eq!(r.users, connected(&["lawyer", "client"]));
    assert_eq!((r.due, r.expires), (now, Some(t("2026-12-02T10:30:00Z"))));
    let n = &r.notification;
    assert_eq!(n.kind, Kind::Reminder);
    assert_eq!(n.title.as_deref(), Some("Consultation in 15 minutes"));
    assert_eq!(
        n.body.as_deref(),
        Some("\u{201c}Lease review\u{201d} starts at 10:00 UTC on Wed  2 Dec")
    );
    assert_eq!(n.ttl_seconds, 45 * 60);
    assert_eq!(n.collapse_key.as_deref(), Some("reminder-c1"));
    assert_eq!(n.data["offsetSeconds"], "900");
    assert_eq!(n.data["action"], "open_consultation");
}

#[test]
fn reminder_ttls_stay_between_a_minute_and_28_days() {
    let c = consultation();
    let late = rules().reminder(&c, 900, t("2026-12-02T10:29:50Z"));
    assert_eq!(late.map(|r| r.notification.ttl_seconds), Some(60));
    let early = rules().reminder(&c, 86_400 * 60, t("2026-09-01T10:00:00Z"));
    assert_eq!(
        early.map(|r| i64::from(r.notification.ttl_seconds)),
        Some(MAX_TTL_SECONDS)
    );
}

#[test]
fn no_reminder_once_the_consultation_is_not_scheduled() {
    for status in [
        ConsultationStatus::InProgress,
        ConsultationStatus::Ended,
        ConsultationStatus::Cancelled,
    ] {
        let c = Consultation {
            status,
            ..consultation()
        };
        assert_eq!(rules().reminder(&c, 900, t("2026-12-02T09:45:00Z")), None);
    }
}

#[test]
fn a_move_tells_the_others_than_the_actor() {
    let now = t("2026-11-25T10:00:00Z");
    let o = rules().rescheduled(&consultation(), "lawyer", now);
    assert_eq!(o.users, connected(&["client"]));
    assert_eq!((o.due, o.expires), (now, None));
    let n = &o.notification;
    assert_eq!(n.kind, Kind::ConsultationRescheduled);
    assert_eq!(n.title.as_deref(), Some("Consultation moved"));
    assert_eq!(
        n.body.as_deref(),
        Some("\u{201c}Lease review\u{201d} is now on Wed  2 Dec 2026, 10:00 UTC")
    );
    assert_eq!(n.data["action"], "consultation_rescheduled");
    assert_eq!(n.data["scheduledAt"], "2026-12-02T10:00:00+00:00");
    assert_eq!(n.collapse_key.as_deref(), Some("consultation-c1"));
    assert_eq!(n.ttl_seconds, 86_400);
    // An admin acting tells both parties.
    let o = rules().rescheduled(&consultation(), "admin", now);
    assert_eq!(o.users, connected(&["lawyer", "client"]));
}

#[test]
fn a_cancellation_expires_when_the_consultation_would_have_ended_or_in_an_hour() {
    let c = Consultation {
        title: None,
        ..consultation()
    };
    let now = t("2026-11-25T10:00:00Z");
    let o = rules().cancelled(&c, "client", now);
    assert_eq!(o.users, connected(&["lawyer"]));
    assert_eq!(o.expires, Some(t("2026-12-02T10:30:00Z")));
    assert_eq!(
        o.notification.body.as_deref(),
        Some("Your video consultation on Wed  2 Dec 2026, 10:00 UTC was cancelled")
    );
    assert_eq!(o.notification.kind, Kind::ConsultationCancelled);
    // Cancelled as it ends: still an hour to hear of it.
    let now = t("2026-12-02T10:25:00Z");
    let o = rules().cancelled(&c, "client", now);
    assert_eq!(o.expires, Some(t("2026-12-02T11:25:00Z")));
}

#[test]
fn joining_rings_the_other_party_for_the_call_ttl() {
    let now = t("2026-12-02T10:00:00Z");
    let j = rules().joined(
        &consultation(),
        "lawyer",
        "Amina",
        &connected(&["lawyer"]),
        now,
    );
    let Some(ring) = j.ring else {
        panic!("the client is rung");
    };
    assert_eq!(ring.users, connected(&["client"]));
    assert_eq!(
        (ring.due, ring.expires),
        (now, Some(t("2026-12-02T10:00:30Z")))
    );
    let n = &ring.notification;
    assert_eq!(n.kind, Kind::IncomingCall);
    assert_eq!(n.title.as_deref(), Some("Incoming video consultation"));
    assert_eq!(n.body.as_deref(), Some("Amina is calling you"));
    assert_eq!(n.data["callerName"], "Amina");
    assert_eq!(n.data["action"], "join_call");
    assert_eq!(n.ttl_seconds, 30);
    assert_eq!(n.collapse_key.as_deref(), Some("call-c1"));
    // The client rings the lawyer the same way.
    let j = rules().joined(&consultation(), "client", "Baraka", &[], now);
    assert_eq!(j.ring.map(|r| r.users), Some(connected(&["lawyer"])));
}

#[test]
fn long_caller_names_are_clipped() {
    let name = "N".repeat(100);
    let j = rules().joined(
        &consultation(),
        "lawyer",
        &name,
        &[],
        t("2026-12-02T10:00:00Z"),
    );
    let caller = j.ring.map(|r| r.notification.data["callerName"].clone());
    assert_eq!(caller, Some(format!("{}…", "N".repeat(60))));
}

#[test]
fn nobody_is_rung_who_is_connected_nor_by_an_admin_nor_in_a_closed_consultation() {
    let now = t("2026-12-02T10:00:00Z");
    let c = consultation();
    let j = rules().joined(
        &c,
        "lawyer",
        "Amina",
        &connected(&["lawyer", "client"]),
        now,
    );
    assert_eq!(j.ring, None);
    assert!(j.stop.is_some(), "a connected callee's ringing still stops");
    let j = rules().joined(&c, "admin", "Admin", &connected(&["admin"]), now);
    assert_eq!(j.ring, None);
    for status in [ConsultationStatus::Ended, ConsultationStatus::Cancelled] {
        let closed = Consultation {
            status,
            ..consultation()
        };
        assert_eq!(
            rules().joined(&closed, "lawyer", "Amina", &[], now),
            Joined::default()
        );
    }
}

#[test]
fn joining_answers_a_ringing_phone_of_whoever_joined_or_is_connected() {
    let now = t("2026-12-02T10:00:10Z");
    let until = t("2026-12-02T10:00:30Z");
    let j = rules().joined(
        &consultation(),
        "client",
        "Baraka",
        &connected(&["client"]),
        now,
    );
    let Some(stop) = j.stop else {
        panic!("joining may stop a ringing phone");
    };
    assert_eq!(stop.reason(), "answered");
    let o = stop.decide(Some(&ringing("client", until)), now);
    let Some(o) = o else {
        panic!("the client's phone stops ringing");
    };
    assert_eq!(o.users, connected(&["client"]));
    assert_eq!((o.due, o.expires), (now, Some(t("2026-12-02T10:00:40Z"))));
    let n = &o.notification;
    assert_eq!(n.kind, Kind::CallCancelled);
    assert_eq!((n.title.as_deref(), n.body.as_deref()), (None, None));
    assert_eq!(n.data["reason"], "answered");
    assert_eq!(n.data["consultationId"], "c1");
    assert_eq!(n.collapse_key.as_deref(), Some("call-c1"));
    // The lawyer's phone rings for someone not connected: joining does not stop it…
    assert_eq!(stop.decide(Some(&ringing("lawyer", until)), now), None);
    // …unless the lawyer is connected too.
    let j = rules().joined(
        &consultation(),
        "client",
        "Baraka",
        &connected(&["client", "lawyer"]),
        now,
    );
    let stopped = j
        .stop
        .and_then(|s| s.decide(Some(&ringing("lawyer", until)), now));
    assert_eq!(stopped.map(|o| o.users), Some(connected(&["lawyer"])));
}

#[test]
fn only_a_phone_still_ringing_is_stopped() {
    let now = t("2026-12-02T10:00:10Z");
    let stop = rules().answered("c1", "client", "declined");
    assert_eq!(stop.decide(None, now), None);
    // Its TTL ran out.
    assert_eq!(stop.decide(Some(&ringing("client", now)), now), None);
    // It was stopped already.
    let cancelled = LastCall {
        kind: Kind::CallCancelled,
        ..ringing("client", t("2026-12-02T10:00:30Z"))
    };
    assert_eq!(stop.decide(Some(&cancelled), now), None);
    let o = stop.decide(Some(&ringing("client", t("2026-12-02T10:00:30Z"))), now);
    assert_eq!(
        o.map(|o| o.notification.data["reason"].clone()),
        Some("declined".into())
    );
}

#[test]
fn answering_stops_only_the_answerers_own_phone() {
    let now = t("2026-12-02T10:00:10Z");
    let until = t("2026-12-02T10:00:30Z");
    let stop = rules().answered("c1", "client", "accepted");
    assert_eq!(stop.consultation_id(), "c1");
    assert_eq!(stop.decide(Some(&ringing("lawyer", until)), now), None);
    assert!(stop.decide(Some(&ringing("client", until)), now).is_some());
}

#[test]
fn a_caller_leaving_alone_stops_the_phone_they_ring() {
    let now = t("2026-12-02T10:00:10Z");
    let until = t("2026-12-02T10:00:30Z");
    // Someone else is still there calling: nothing stops.
    assert_eq!(rules().left("c1", "lawyer", &connected(&["admin"])), None);
    let Some(stop) = rules().left("c1", "lawyer", &[]) else {
        panic!("the last one out stops the ringing");
    };
    assert_eq!(stop.reason(), "caller_left");
    let o = stop.decide(Some(&ringing("client", until)), now);
    assert_eq!(o.map(|o| o.users), Some(connected(&["client"])));
    // Their own ringing phone is not theirs to stop by leaving.
    assert_eq!(stop.decide(Some(&ringing("lawyer", until)), now), None);
    // Still counted as connected themselves (a second tab): the same.
    assert!(
        rules()
            .left("c1", "lawyer", &connected(&["lawyer"]))
            .is_some()
    );
}
