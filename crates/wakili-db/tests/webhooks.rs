//! The webhook outbox on every backend: audit entries queue deliveries in their own
//! transaction, only to enabled endpoints subscribed to the event; one consultation's
//! deliveries to one endpoint are claimed one at a time, in order; leases keep two workers
//! apart; failures in a row disable an endpoint; a redelivery goes again with the same id.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use wakili_core::{
    delivery::Outcome,
    model::webhook::{
        AttemptRecord, EndpointPatch, EndpointSource, NewEndpoint, WebhookDeliveryFilter,
        WebhookDeliveryStatus,
    },
    webhook::Filter,
};
use wakili_db::{Backend, Db, PoolOptions, connect, models::NewAuditEvent};
use wakili_testkit::db::TestDatabase;

fn t(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
}

fn endpoint(id: &str, events: &[&str]) -> NewEndpoint {
    NewEndpoint {
        id: id.into(),
        url: format!("https://{id}.example.com/hook"),
        events: Filter::parse(events).unwrap().stored(),
        description: String::new(),
        source: EndpointSource::Api,
        secret: wakili_core::webhook::endpoint::secret_from(&[1; 32]),
    }
}

fn audit(consultation: &str, action: &'static str) -> NewAuditEvent {
    NewAuditEvent {
        consultation_id: Some(consultation.into()),
        actor_id: Some("l1".into()),
        action,
        detail: json!({"participantId": "p1", "role": "lawyer", "from": "scheduled", "to": "in_progress"}),
    }
}

fn done(id: &str) -> AttemptRecord {
    AttemptRecord {
        id: id.into(),
        outcome: Outcome::Done {
            receipt: "200".into(),
        },
        status: Some(200),
        gone: false,
    }
}

fn failed(id: &str, at: DateTime<Utc>) -> AttemptRecord {
    AttemptRecord {
        id: id.into(),
        outcome: Outcome::Retry {
            at,
            error: Some("HTTP 500".into()),
            attempted: true,
        },
        status: Some(500),
        gone: false,
    }
}

async fn outbox(backend: Backend) {
    let test_db = TestDatabase::new(backend).await;
    let db: Db = connect(&test_db.url, &PoolOptions::default())
        .await
        .unwrap();
    db.create_endpoint(&endpoint("all", &["*"]), t(0))
        .await
        .unwrap();
    db.create_endpoint(&endpoint("recordings", &["recording.*"]), t(0))
        .await
        .unwrap();

    // Two changes of c1, one of c2, one that is not news (an ICE restart).
    db.append_audits(
        vec![
            audit("c1", "participant.joined"),
            audit("c1", "consultation.started"),
            audit("c1", "participant.ice_restart"),
            audit("c2", "participant.joined"),
        ],
        t(1),
    )
    .await
    .unwrap();
    let all = WebhookDeliveryFilter {
        limit: 100,
        ..Default::default()
    };
    let queued = db.webhook_deliveries(&all).await.unwrap();
    assert_eq!(
        queued.len(),
        3,
        "only to the endpoint subscribed: {queued:?}"
    );
    assert!(queued.iter().all(|d| d.endpoint_id == "all"));
    assert_eq!(db.pending_webhook_deliveries().await.unwrap(), 3);

    // Of c1 only its first delivery is claimable; c2's goes alongside.
    let claimed = db
        .claim_webhook_deliveries("node-a", t(2), t(60), 10)
        .await
        .unwrap();
    let kinds: Vec<(&str, &str)> = claimed
        .iter()
        .map(|d| (d.consultation_id.as_deref().unwrap(), d.event_type.as_str()))
        .collect();
    assert_eq!(kinds.len(), 2, "{kinds:?}");
    assert!(kinds.contains(&("c1", "participant.joined")));
    assert!(kinds.contains(&("c2", "participant.joined")));
    // Leased: another node gets nothing, not even c1's second.
    assert!(
        db.claim_webhook_deliveries("node-b", t(3), t(60), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let body: serde_json::Value = serde_json::from_str(&claimed[0].payload).unwrap();
    assert_eq!(body["type"], claimed[0].event_type.as_str());
    assert!(claimed[0].event_id.starts_with("evt_"));

    // c1's first fails: its second still waits behind it.
    let c1_first = claimed
        .iter()
        .find(|d| d.consultation_id.as_deref() == Some("c1"))
        .unwrap();
    let c2 = claimed
        .iter()
        .find(|d| d.consultation_id.as_deref() == Some("c2"))
        .unwrap();
    let recorded = db
        .record_webhook_attempts(
            "node-a",
            &[failed(&c1_first.id, t(10)), done(&c2.id)],
            0,
            t(4),
        )
        .await
        .unwrap();
    assert_eq!(recorded.updated, 2);
    assert!(
        db.claim_webhook_deliveries("node-a", t(5), t(60), 10)
            .await
            .unwrap()
            .is_empty(),
        "c1's first is backing off until t(10), its second waits"
    );
    let retry = db
        .claim_webhook_deliveries("node-a", t(10), t(60), 10)
        .await
        .unwrap();
    assert_eq!(retry.len(), 1);
    assert_eq!(retry[0].id, c1_first.id);
    assert_eq!(retry[0].attempts, 1);
    // An outcome from a node that lost its lease changes nothing.
    let stale = db
        .record_webhook_attempts("node-b", &[done(&c1_first.id)], 0, t(11))
        .await
        .unwrap();
    assert_eq!(stale.updated, 0);
    db.record_webhook_attempts("node-a", &[done(&c1_first.id)], 0, t(11))
        .await
        .unwrap();
    let next = db
        .claim_webhook_deliveries("node-a", t(12), t(60), 10)
        .await
        .unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].event_type, "consultation.started");
    db.record_webhook_attempts("node-a", &[done(&next[0].id)], 0, t(13))
        .await
        .unwrap();
    assert_eq!(db.pending_webhook_deliveries().await.unwrap(), 0);

    // Three failures in a row disable the endpoint, with an audit entry; nothing more is
    // claimed until an admin enables it again.
    for i in 0..3 {
        db.append_audit(audit("c3", "participant.left"), t(20 + i))
            .await
            .unwrap();
    }
    let mut disabled = Vec::new();
    for round in 0..3 {
        let now = t(30 + round * 10);
        let claimed = db
            .claim_webhook_deliveries("node-a", now, now + Duration::seconds(60), 10)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1, "one at a time for c3");
        let r = db
            .record_webhook_attempts("node-a", &[failed(&claimed[0].id, now)], 3, now)
            .await
            .unwrap();
        disabled.extend(r.disabled);
    }
    assert_eq!(disabled, ["all"]);
    let all_endpoint = db.endpoint("all").await.unwrap().unwrap();
    assert!(!all_endpoint.enabled);
    assert_eq!(all_endpoint.consecutive_failures, 3);
    assert!(
        all_endpoint
            .disabled_reason
            .unwrap()
            .contains("3 failed attempts in a row")
    );
    assert!(
        db.claim_webhook_deliveries("node-a", t(100), t(160), 10)
            .await
            .unwrap()
            .is_empty()
    );
    // While disabled, new events are not queued for it.
    db.append_audit(audit("c4", "participant.joined"), t(101))
        .await
        .unwrap();
    let c4 = WebhookDeliveryFilter {
        consultation_id: Some("c4".into()),
        limit: 10,
        ..Default::default()
    };
    assert!(db.webhook_deliveries(&c4).await.unwrap().is_empty());
    let enabled = db
        .update_endpoint(
            "all",
            &EndpointPatch {
                enabled: Some((true, None)),
                ..Default::default()
            },
            "admin-1",
            t(110),
        )
        .await
        .unwrap()
        .unwrap();
    assert!(enabled.enabled && enabled.consecutive_failures == 0);
    assert_eq!(
        db.claim_webhook_deliveries("node-a", t(111), t(170), 10)
            .await
            .unwrap()
            .len(),
        1,
        "c3's head again"
    );

    // A delivered message can be sent again: same event id, pending, a fresh retry window.
    let delivered = db
        .webhook_deliveries(&WebhookDeliveryFilter {
            status: Some(WebhookDeliveryStatus::Delivered),
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    let again = db
        .redeliver(&delivered[0].id, "admin-1", t(200))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.event_id, delivered[0].event_id);
    assert_eq!(again.status, WebhookDeliveryStatus::Pending);
    assert_eq!(again.retry_from, t(200));
    assert!(
        db.redeliver("nope", "admin-1", t(200))
            .await
            .unwrap()
            .is_none()
    );

    // Admin actions are audited (and are not webhook events themselves).
    let log = db.audit_log("c1").await.unwrap();
    assert!(log.iter().any(|e| e.action == "consultation.started"));

    // Rotation keeps the old secret for the overlap; targets carry both.
    db.rotate_secret(
        "recordings",
        &wakili_core::webhook::endpoint::secret_from(&[2; 32]),
        t(400),
        "admin-1",
        t(300),
    )
    .await
    .unwrap()
    .unwrap();
    let target = db
        .endpoint_targets(&["recordings".into()])
        .await
        .unwrap()
        .remove(0);
    assert_eq!(target.secrets(t(350)).len(), 2);
    assert_eq!(target.secrets(t(401)).len(), 1, "the overlap ended");

    // A device FCM dropped is news too, with no consultation.
    db.create_endpoint(&endpoint("devices", &["device.pruned"]), t(500))
        .await
        .unwrap();
    db.upsert_device(
        &wakili_db::NewDevice {
            id: "d1".into(),
            user_id: "c1".into(),
            token: "fcm-token-1".into(),
            platform: "android".into(),
            app_version: "1.0".into(),
            locale: None,
        },
        t(500),
    )
    .await
    .unwrap();
    assert!(
        db.deactivate_device("fcm-token-1", "unregistered", t(501))
            .await
            .unwrap()
    );
    let pruned = db
        .webhook_deliveries(&WebhookDeliveryFilter {
            endpoint_id: Some("devices".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(pruned.len(), 1);
    let body: serde_json::Value = serde_json::from_str(&pruned[0].payload).unwrap();
    assert_eq!(body["type"], "device.pruned");
    assert_eq!(body["data"]["reason"], "unregistered");
    assert_eq!(body["data"]["platform"], "android");
}

#[tokio::test]
async fn outbox_on_sqlite() {
    outbox(Backend::Sqlite).await;
}

#[tokio::test]
async fn outbox_on_postgres() {
    outbox(Backend::Postgres).await;
}
