//! One repository story, run against every backend, each in a fresh database.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, Duration, Utc};
use wakili_core::{
    GuestRole, ParticipantRole, Role, UserId, audit_chain,
    consultation::{Action, ConsultationStatus, NewConsultation},
};
use wakili_db::{
    Backend, Db, PoolOptions, connect,
    models::{
        ConsentRecord, ConsultationFilter, ConsultationInsert, GuestChange, NewAuditEvent,
        QualitySample, UserClaims,
    },
};
use wakili_testkit::db::TestDatabase;

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn booking(lawyer: &str, client: &str, when: &str) -> ConsultationInsert {
    ConsultationInsert {
        booking: NewConsultation {
            lawyer_id: UserId::parse(lawyer).unwrap(),
            client_id: UserId::parse(client).unwrap(),
            scheduled_at: at(when),
            duration_minutes: 30,
            title: Some(format!("{lawyer} with {client}")),
            notes: None,
            media_mode: None,
        },
        created_by: lawyer.into(),
        now: at("2026-11-25T09:00:00.000001Z"),
    }
}

async fn story(backend: Backend) {
    let test_db = TestDatabase::new(backend).await;
    let db: Db = connect(&test_db.url, &PoolOptions::default())
        .await
        .unwrap();
    assert_eq!(db.backend(), backend);
    db.ping().await.unwrap();
    // Migrations are idempotent: a second start on the same database is fine.
    drop(
        connect(&test_db.url, &PoolOptions::default())
            .await
            .unwrap(),
    );

    // Users are upserted from claims: the name follows the newest token, the first sighting stays.
    let t0 = at("2026-11-25T08:00:00Z");
    let first = db
        .upsert_user(
            &UserClaims {
                id: "l1".into(),
                role: Role::Lawyer,
                name: "Amina".into(),
            },
            t0,
        )
        .await
        .unwrap();
    let again = db
        .upsert_user(
            &UserClaims {
                id: "l1".into(),
                role: Role::Lawyer,
                name: "Amina W.".into(),
            },
            t0 + Duration::minutes(5),
        )
        .await
        .unwrap();
    assert_eq!(again.name, "Amina W.");
    assert_eq!(again.created_at, first.created_at);
    assert_eq!(db.user("l1").await.unwrap(), Some(again));
    assert_eq!(db.user("nobody").await.unwrap(), None);

    // Bookings, with their participants and an audit entry each.
    let c1 = db
        .create_consultation(booking("l1", "c1", "2026-12-01T10:00:00.123456Z"))
        .await
        .unwrap();
    let c2 = db
        .create_consultation(booking("l1", "c2", "2026-12-01T09:00:00Z"))
        .await
        .unwrap();
    let c3 = db
        .create_consultation(booking("l2", "c1", "2026-12-02T09:00:00Z"))
        .await
        .unwrap();
    assert_eq!(c1.status, ConsultationStatus::Scheduled);
    assert_eq!(
        c1.scheduled_at,
        at("2026-12-01T10:00:00.123456Z"),
        "microseconds survive"
    );
    let fetched = db.consultation(&c1.id).await.unwrap().unwrap();
    assert_eq!(fetched, c1);
    let parties = db.participants(&c1.id).await.unwrap();
    let parties: Vec<_> = parties
        .iter()
        .map(|p| (p.user_id.as_str(), p.role))
        .collect();
    assert!(
        parties.contains(&("l1", ParticipantRole::Lawyer))
            && parties.contains(&("c1", ParticipantRole::Client))
    );

    // Guests: invited, given a new role, listed, found by the listing, withdrawn; the parties
    // are never guests.
    let now = at("2026-11-25T09:30:00Z");
    let invite = |user: &'static str, role| db.put_guest(&c3.id, user, role, "l2", now);
    assert_eq!(
        invite("i1", GuestRole::Interpreter).await.unwrap(),
        GuestChange::Invited
    );
    assert_eq!(
        invite("i1", GuestRole::Interpreter).await.unwrap(),
        GuestChange::Unchanged
    );
    assert_eq!(
        invite("i1", GuestRole::Observer).await.unwrap(),
        GuestChange::RoleChanged
    );
    assert!(matches!(
        invite("c1", GuestRole::Counsel).await,
        Err(wakili_db::DbError::NotAGuest(_))
    ));
    assert_eq!(
        db.invitation(&c3.id, "i1").await.unwrap(),
        Some(GuestRole::Observer)
    );
    assert_eq!(db.invitation(&c3.id, "c1").await.unwrap(), None, "a party");
    assert_eq!(db.invitation(&c2.id, "i1").await.unwrap(), None);
    let guest = db
        .participants(&c3.id)
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.user_id == "i1")
        .unwrap();
    assert_eq!(
        (guest.role, guest.invited_by.as_deref()),
        (ParticipantRole::Observer, Some("l2"))
    );
    let theirs = db
        .list_consultations(&ConsultationFilter {
            participant: Some("i1".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        theirs.items.iter().map(|c| &c.id).collect::<Vec<_>>(),
        [&c3.id],
        "a guest lists the consultations they are invited to"
    );
    assert!(!db.remove_guest(&c3.id, "c1", "l2", now).await.unwrap());
    assert!(db.remove_guest(&c3.id, "i1", "l2", now).await.unwrap());
    assert!(!db.remove_guest(&c3.id, "i1", "l2", now).await.unwrap());
    assert_eq!(db.invitation(&c3.id, "i1").await.unwrap(), None);
    let trail: Vec<String> = db
        .audit_log(&c3.id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .filter(|a| a.starts_with("participant."))
        .collect();
    assert_eq!(
        trail,
        [
            "participant.invited",
            "participant.role_changed",
            "participant.uninvited"
        ]
    );

    // Listing: own consultations only, in schedule order, page by page.
    let mut filter = ConsultationFilter {
        participant: Some("l1".into()),
        limit: 1,
        ..Default::default()
    };
    let page1 = db.list_consultations(&filter).await.unwrap();
    assert_eq!(
        page1.items.iter().map(|c| &c.id).collect::<Vec<_>>(),
        [&c2.id]
    );
    filter.after = page1.next.clone();
    let page2 = db.list_consultations(&filter).await.unwrap();
    assert_eq!(
        page2.items.iter().map(|c| &c.id).collect::<Vec<_>>(),
        [&c1.id]
    );
    assert!(page2.next.is_none(), "l1 has exactly two");
    let client_view = db
        .list_consultations(&ConsultationFilter {
            participant: Some("c1".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(client_view.items.len(), 2);
    let all_on_dec_2 = db
        .list_consultations(&ConsultationFilter {
            from: Some(at("2026-12-02T00:00:00Z")),
            to: Some(at("2026-12-03T00:00:00Z")),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        all_on_dec_2.items.iter().map(|c| &c.id).collect::<Vec<_>>(),
        [&c3.id]
    );

    // Saving is optimistic: a stale version is refused and writes nothing.
    let now = at("2026-12-01T10:01:00Z");
    let mut started = c1.clone();
    started.status = started.status.apply(Action::Start).unwrap();
    started.started_at = Some(now);
    started.updated_at = now;
    started.quality_profile = Some("low".into());
    let audit = |action| NewAuditEvent {
        consultation_id: Some(c1.id.clone()),
        actor_id: Some("l1".into()),
        action,
        detail: serde_json::json!({"from": "scheduled"}),
    };
    let saved = db
        .save_consultation(&started, audit("consultation.started"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(saved.status, ConsultationStatus::InProgress);
    assert_eq!(saved.quality_profile.as_deref(), Some("low"));
    assert_eq!(
        c1.quality_profile, None,
        "new consultations use the default profile"
    );
    assert_eq!(saved.version, c1.version + 1);
    assert_eq!(
        db.save_consultation(&started, audit("consultation.started"))
            .await
            .unwrap(),
        None,
        "the version moved on"
    );
    let in_progress = db
        .list_consultations(&ConsultationFilter {
            status: Some(ConsultationStatus::InProgress),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(in_progress.items.len(), 1);

    // The audit log keeps order and refuses to be rewritten.
    db.append_audit(audit("consultation.note"), now)
        .await
        .unwrap();
    db.append_audits(
        vec![audit("participant.joined"), audit("participant.admitted")],
        now,
    )
    .await
    .unwrap();
    let log = db.audit_log(&c1.id).await.unwrap();
    let actions: Vec<_> = log.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "consultation.created",
            "consultation.started",
            "consultation.note",
            "participant.joined",
            "participant.admitted"
        ]
    );
    assert_eq!(log[0].detail["clientId"], "c1");
    assert_audit_is_append_only(&test_db).await;

    // Each consultation's entries form a hash chain, also when written concurrently: writers of
    // one chain take turns, so it never forks.
    let writers: Vec<_> = (0..16)
        .map(|i| {
            let db = db.clone();
            let id = c1.id.clone();
            tokio::spawn(async move {
                let event = NewAuditEvent {
                    consultation_id: Some(id),
                    actor_id: None,
                    action: "test.concurrent",
                    detail: serde_json::json!({ "writer": i }),
                };
                db.append_audit(event, now).await.unwrap();
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let log = db.audit_log(&c1.id).await.unwrap();
    assert_eq!(log.len(), 5 + 16);
    let chained: Vec<_> = log.iter().filter_map(|e| e.claimed()).collect();
    assert_eq!(chained.len(), log.len(), "every entry is chained");
    let report = audit_chain::verify(&chained, None).unwrap();
    assert_eq!(report.last.map(|h| h.seq), Some(21));

    // A storm: 288 callers over 24 consultations, two entries each, share a few transactions
    // whose rows go in multi-row statements; every chain is whole and in each caller's order.
    let storm: Vec<_> = (0..24)
        .map(|i| booking("l1", "c1", &format!("2026-12-02T{:02}:00:00Z", i % 24)))
        .collect();
    let mut ids = Vec::new();
    for b in storm {
        ids.push(db.create_consultation(b).await.unwrap().id);
    }
    let callers: Vec<_> = (0..288)
        .map(|i| {
            let db = db.clone();
            let id = ids[i % ids.len()].clone();
            tokio::spawn(async move {
                let entry = |n: u32| NewAuditEvent {
                    consultation_id: Some(id.clone()),
                    actor_id: Some(format!("caller-{i}")),
                    action: "test.storm",
                    detail: serde_json::json!({ "caller": i, "n": n }),
                };
                db.append_audits(vec![entry(0), entry(1)], now)
                    .await
                    .unwrap();
            })
        })
        .collect();
    for caller in callers {
        caller.await.unwrap();
    }
    for id in &ids {
        let log = db.audit_log(id).await.unwrap();
        assert_eq!(
            log.len(),
            1 + 2 * 288 / ids.len(),
            "created + 12 callers × 2"
        );
        let chained: Vec<_> = log.iter().filter_map(|e| e.claimed()).collect();
        assert_eq!(chained.len(), log.len(), "every entry is chained");
        let report = audit_chain::verify(&chained, None).unwrap();
        assert_eq!(report.last.map(|h| h.seq), Some(log.len() as u64));
        for pair in log[1..].chunks(2) {
            assert_eq!(
                pair[0].actor_id, pair[1].actor_id,
                "a caller's entries adjacent"
            );
            assert_eq!(
                (pair[0].detail["n"].as_u64(), pair[1].detail["n"].as_u64()),
                (Some(0), Some(1))
            );
        }
    }
    let head = db.audit_head(&ids[0]).await.unwrap().unwrap();
    assert_eq!(head.seq, 25);

    // A status change rides with audit entries in one transaction when its version is current
    // (the lawyer's first join), and writes nothing when another writer saved it first.
    let c3 = db
        .create_consultation(booking("l1", "c1", "2026-12-03T09:00:00Z"))
        .await
        .unwrap();
    let mut ended = started.clone();
    ended.status = ended.status.apply(Action::End).unwrap();
    ended.ended_at = Some(now);
    let stale = (ended, audit("consultation.ended"));
    assert!(
        !db.append_audits_after(stale, vec![audit("participant.left")], now)
            .await
            .unwrap(),
        "c1's version moved on since `started` was read"
    );
    assert_eq!(
        db.audit_log(&c1.id).await.unwrap().len(),
        21,
        "nothing written"
    );
    let mut starting = c3.clone();
    starting.status = starting.status.apply(Action::Start).unwrap();
    starting.started_at = Some(now);
    let on_c3 = |action| NewAuditEvent {
        consultation_id: Some(c3.id.clone()),
        ..audit(action)
    };
    // Several callers at once share a transaction; each chain stays whole.
    let (first, second) = tokio::join!(
        db.append_audits_after(
            (starting, on_c3("consultation.started")),
            vec![on_c3("participant.joined")],
            now
        ),
        db.append_audits(vec![audit("participant.joined")], now),
    );
    assert!(first.unwrap(), "c3 was saved at the version read");
    second.unwrap();
    let c3_now = db.consultation(&c3.id).await.unwrap().unwrap();
    assert_eq!(
        (c3_now.status, c3_now.version),
        (ConsultationStatus::InProgress, c3.version + 1)
    );
    let log = db.audit_log(&c3.id).await.unwrap();
    let actions: Vec<_> = log.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "consultation.created",
            "consultation.started",
            "participant.joined"
        ]
    );
    for id in [&c1.id, &c3.id] {
        let log = db.audit_log(id).await.unwrap();
        let chained: Vec<_> = log.iter().filter_map(|e| e.claimed()).collect();
        audit_chain::verify(&chained, None).unwrap();
    }

    // A storm of lawyer arrivals: many status changes at once, sharing group commits. Each is
    // saved at the version read; a second change of one consultation read at the same version,
    // and one read before another writer saved, write nothing (and their entries neither).
    let mut storm = Vec::new();
    for i in 0..70 {
        let c = db
            .create_consultation(booking("l9", &format!("s{i}"), "2026-12-04T09:00:00Z"))
            .await
            .unwrap();
        storm.push(c);
    }
    let stale = {
        let mut read = storm[5].clone();
        let mut renamed = read.clone();
        renamed.title = Some("renamed by the API".into());
        storm[5] = db
            .save_consultation(
                &renamed,
                NewAuditEvent {
                    consultation_id: Some(renamed.id.clone()),
                    ..audit("consultation.updated")
                },
            )
            .await
            .unwrap()
            .unwrap();
        read.status = read.status.apply(Action::Start).unwrap();
        read
    };
    let starting: Vec<_> = storm
        .iter()
        .map(|c| {
            let mut s = c.clone();
            s.status = s.status.apply(Action::Start).unwrap();
            s.started_at = Some(now);
            s
        })
        .collect();
    let arrive = |c: wakili_db::models::VideoConsultation| {
        let id = c.id.clone();
        let on = move |action| NewAuditEvent {
            consultation_id: Some(id.clone()),
            ..audit(action)
        };
        db.append_audits_after(
            (c, on("consultation.started")),
            vec![on("participant.joined")],
            now,
        )
    };
    let mut calls: Vec<_> = starting.iter().cloned().map(arrive).collect();
    calls.push(arrive(starting[0].clone()));
    calls.push(arrive(stale));
    let results: Vec<bool> = futures_util::future::join_all(calls)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let (twice, late) = (results[70], results[71]);
    assert!(!late, "storm[5] was renamed since it was read");
    assert_eq!(
        results[..70].iter().filter(|&&saved| saved).count() + usize::from(twice),
        70,
        "of storm[0]'s two changes exactly one is saved, and every other consultation's"
    );
    for c in &storm {
        let now_row = db.consultation(&c.id).await.unwrap().unwrap();
        assert_eq!(now_row.status, ConsultationStatus::InProgress, "{}", c.id);
        let log = db.audit_log(&c.id).await.unwrap();
        let actions: Vec<_> = log.iter().map(|e| e.action.as_str()).collect();
        let tail = ["consultation.started", "participant.joined"];
        assert!(actions.ends_with(&tail), "{}: {actions:?}", c.id);
        assert_eq!(
            actions.len(),
            3 + usize::from(c.id == storm[5].id),
            "{}",
            c.id
        );
        let chained: Vec<_> = log.iter().filter_map(|e| e.claimed()).collect();
        audit_chain::verify(&chained, None).unwrap();
        assert_eq!(now_row.version, c.version + 1, "{}", c.id);
    }
    assert_eq!(
        db.consultation(&storm[5].id)
            .await
            .unwrap()
            .unwrap()
            .title
            .as_deref(),
        Some("renamed by the API"),
        "the stale change did not overwrite the rename"
    );

    // Reads at once share statements of a few sizes (the last id repeated to fill one): each
    // caller still gets its own consultation, and an unknown id nothing.
    let mut wanted: Vec<String> = storm.iter().map(|c| c.id.clone()).collect();
    wanted.insert(7, "no-such-consultation".into());
    wanted.push(storm[0].id.clone());
    let reads = wanted.iter().map(|id| db.consultation(id));
    let got = futures_util::future::join_all(reads).await;
    for (id, read) in wanted.iter().zip(got) {
        match read.unwrap() {
            Some(c) => assert_eq!(&c.id, id),
            None => assert_eq!(id, "no-such-consultation"),
        }
    }

    // Consent decisions and quality samples keep their values and order.
    for (i, granted) in [(1, true), (2, false)] {
        let consent = ConsentRecord {
            id: wakili_core::new_id(),
            consultation_id: c1.id.clone(),
            recording_id: format!("r{i}"),
            user_id: "c1".into(),
            participant_id: "p1".into(),
            notice_version: "2026-01".into(),
            granted,
            decided_at: now + Duration::seconds(i),
        };
        db.record_consent(&consent).await.unwrap();
    }
    let consents = db.consents(&c1.id).await.unwrap();
    let answers: Vec<_> = consents
        .iter()
        .map(|c| (c.recording_id.as_str(), c.granted))
        .collect();
    assert_eq!(answers, [("r1", true), ("r2", false)]);
    assert_eq!(consents[1].decided_at, now + Duration::seconds(2));
    let sample = QualitySample {
        consultation_id: c1.id.clone(),
        participant_id: "p1".into(),
        user_id: "c1".into(),
        taken_at: now,
        report: wakili_core::quality::QualityReport {
            rtt_ms: 85.5,
            jitter_ms: 4.25,
            packet_loss_pct: 0.5,
            outbound_kbps: 1200.0,
            inbound_kbps: 900.0,
            frame_rate: 29.97,
            width: 1280,
            height: 720,
            candidate_type: "relay".into(),
        },
        mos: 4.1,
        level: wakili_core::quality::Level::Medium,
    };
    db.add_quality_sample(&sample).await.unwrap();
    assert_eq!(db.quality_samples(&c1.id).await.unwrap(), [sample]);
}

/// The triggers refuse rewriting history even to someone with SQL access.
async fn assert_audit_is_append_only(test_db: &TestDatabase) {
    use sqlx::{Connection, Executor};
    for sql in [
        "UPDATE audit_events SET action = 'forged'",
        "DELETE FROM audit_events",
    ] {
        let refused = match test_db.backend {
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&test_db.url).await.unwrap();
                conn.execute(sql).await.map(drop)
            }
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&test_db.url).await.unwrap();
                conn.execute(sql).await.map(drop)
            }
        };
        let err = refused.expect_err(sql).to_string();
        assert!(err.contains("append-only"), "{sql}: {err}");
    }
}

#[tokio::test]
async fn story_on_sqlite() {
    story(Backend::Sqlite).await;
}

#[tokio::test]
async fn story_on_postgres() {
    story(Backend::Postgres).await;
}

#[tokio::test]
async fn unknown_database_urls_are_refused() {
    assert!(connect("mysql://x", &PoolOptions::default()).await.is_err());
}
