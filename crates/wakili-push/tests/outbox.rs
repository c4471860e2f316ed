//! The outbox against the local FCM (`wakili_testkit::fcm`), on SQLite and PostgreSQL: success,
//! token renewal, UNREGISTERED pruning, 429 with Retry-After, 503 backoff, an outage that loses
//! nothing but drops stale calls, and two nodes restarting mid-queue without losing or
//! repeating a message.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, OnceLock},
    time::Duration,
};

use chrono::{DateTime, Utc};
use wakili_db::{Backend, Db, DeliveryFilter, DeliveryStatus, NewDevice, NewNotification};
use wakili_push::{
    FcmSender, Kind, MessageOptions, Notification, PushConfig, PushService,
    oauth::{ServiceAccount, TokenSource},
    retry::Backoff,
};
use wakili_testkit::{
    clock::ManualClock,
    db::TestDatabase,
    fcm::{FakeFcm, Fault, TestAccount},
};

fn account() -> TestAccount {
    static ACCOUNT: OnceLock<TestAccount> = OnceLock::new();
    ACCOUNT
        .get_or_init(|| TestAccount::generate("wakili-test"))
        .clone()
}

struct Setup {
    _db: TestDatabase,
    db: Db,
    fcm: FakeFcm,
    clock: ManualClock,
}

async fn setup(backend: Backend) -> Setup {
    let test_db = TestDatabase::new(backend).await;
    let db = wakili_db::connect(&test_db.url, &wakili_db::PoolOptions::default())
        .await
        .unwrap();
    let fcm = FakeFcm::start(&account()).await.unwrap();
    Setup {
        _db: test_db,
        db,
        fcm,
        clock: ManualClock::starting_now(),
    }
}

fn config() -> PushConfig {
    PushConfig {
        reminders: vec![Duration::from_secs(86_400), Duration::from_secs(900)],
        call_ttl: Duration::from_secs(30),
        deactivate_after: Duration::from_secs(60 * 86_400),
        poll_interval: Duration::from_millis(20),
        max_attempts: 50,
        backoff: Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(300),
        },
        per_device_per_minute: 1000,
        concurrency: 8,
        lease: Duration::from_secs(60),
        options: MessageOptions {
            android_channel: "consultations".into(),
        },
    }
}

fn sender(fcm: &FakeFcm, clock: wakili_core::Clock) -> FcmSender {
    let account = ServiceAccount::from_json(&account().json).unwrap();
    let tokens = TokenSource::new(account, Some(fcm.token_url()), Duration::from_secs(5)).unwrap();
    FcmSender::new(
        &fcm.base_url(),
        "wakili-test",
        Arc::new(tokens),
        Duration::from_secs(5),
        clock,
    )
    .unwrap()
}

fn service(s: &Setup, config: PushConfig) -> PushService {
    service_via(s, &s.fcm, config)
}

/// A service sending through `fcm` (a node with its own connection to the provider).
fn service_via(s: &Setup, fcm: &FakeFcm, config: PushConfig) -> PushService {
    PushService::new(
        wakili_push::Stores::of(&s.db),
        Some(sender(fcm, s.clock.clock())),
        config,
        s.clock.clock(),
    )
}

async fn device(db: &Db, user: &str, token: &str, platform: &str, now: DateTime<Utc>) {
    db.upsert_device(
        &NewDevice {
            id: wakili_core::new_id(),
            user_id: user.into(),
            token: token.into(),
            platform: platform.into(),
            app_version: "1.0.0".into(),
            locale: None,
        },
        now,
    )
    .await
    .unwrap();
}

fn reminder() -> Notification {
    Notification {
        kind: Kind::Reminder,
        title: Some("Consultation in 15 minutes".into()),
        body: Some("Your video consultation starts at 10:00 UTC".into()),
        data: BTreeMap::from([("action".into(), "open_consultation".into())]),
        ttl_seconds: 3600,
        collapse_key: Some("reminder-x".into()),
    }
}

fn call() -> Notification {
    Notification {
        kind: Kind::IncomingCall,
        title: Some("Incoming video consultation".into()),
        body: Some("Amina is calling you".into()),
        data: BTreeMap::from([("action".into(), "join_call".into())]),
        ttl_seconds: 30,
        collapse_key: Some("call-x".into()),
    }
}

/// Queues `n` for `token`, as the service does; returns the row id.
async fn queue(
    db: &Db,
    n: &Notification,
    token: &str,
    platform: &str,
    now: DateTime<Utc>,
    expires: Option<DateTime<Utc>>,
) -> String {
    let id = wakili_core::new_id();
    db.enqueue(
        &[NewNotification {
            id: id.clone(),
            user_id: "client-1".into(),
            device_token: token.into(),
            platform: platform.into(),
            kind: n.kind.as_str().into(),
            consultation_id: None,
            payload: serde_json::to_string(n).unwrap(),
            due_at: now,
            expires_at: expires,
        }],
        now,
    )
    .await
    .unwrap();
    id
}

async fn status(db: &Db, id: &str) -> (DeliveryStatus, u32, DateTime<Utc>) {
    let all = db
        .deliveries(&DeliveryFilter {
            limit: 10_000,
            ..DeliveryFilter::default()
        })
        .await
        .unwrap();
    let row = all.into_iter().find(|r| r.id == id).unwrap();
    (row.status, row.attempts, row.next_attempt_at)
}

wakili_testkit::both_backends!(
    delivers_to_every_platform_and_renews_tokens,
    unregistered_tokens_deactivate_their_device,
    quota_exceeded_waits_for_retry_after,
    unavailable_backs_off_and_an_outage_loses_nothing,
    two_nodes_restarting_mid_queue_send_each_message_once,
    a_node_killed_mid_queue_loses_nothing_and_repeats_only_its_unrecorded_sends,
    leases_are_exclusive_and_a_lost_lease_changes_nothing,
    a_reminder_moved_while_leased_is_not_sent_for_its_old_time,
);

async fn delivers_to_every_platform_and_renews_tokens(backend: Backend) {
    let s = setup(backend).await;
    let push = service(&s, config());
    let now = s.clock.now();
    let mut ids = Vec::new();
    for (token, platform) in [("tok-a", "android"), ("tok-i", "ios"), ("tok-w", "web")] {
        ids.push(
            queue(
                &s.db,
                &call(),
                token,
                platform,
                now,
                Some(now + chrono::Duration::seconds(30)),
            )
            .await,
        );
    }
    let pass = push.deliver_due().await.unwrap();
    assert_eq!((pass.claimed, pass.sent), (3, 3), "{pass:?}");
    assert_eq!(s.fcm.refused(), 0);
    let received = s.fcm.received();
    assert_eq!(received.len(), 3);
    let by_token: HashMap<_, _> = received
        .iter()
        .map(|r| {
            (
                r.message["token"].as_str().unwrap().to_owned(),
                r.message.clone(),
            )
        })
        .collect();
    assert_eq!(by_token["tok-a"]["android"]["priority"], "HIGH");
    assert_eq!(by_token["tok-i"]["apns"]["headers"]["apns-priority"], "10");
    assert_eq!(by_token["tok-w"]["webpush"]["headers"]["Urgency"], "high");
    for id in &ids {
        let (st, attempts, _) = status(&s.db, id).await;
        assert_eq!((st, attempts), (DeliveryStatus::Sent, 1));
    }
    // One token for all of that; FCM's name for each message is kept.
    assert_eq!(s.fcm.grants(), 1);
    let rows =
        s.db.deliveries(&DeliveryFilter {
            limit: 10,
            ..DeliveryFilter::default()
        })
        .await
        .unwrap();
    let mut names: Vec<_> = rows.iter().filter_map(|r| r.message_name.clone()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(
        names
            .iter()
            .all(|n| n.starts_with("projects/wakili-test/messages/"))
    );

    // Short-lived tokens are renewed before they expire: no request is refused.
    s.fcm.set_token_lifetime(Duration::from_secs(2));
    s.fcm.revoke_tokens();
    queue(&s.db, &reminder(), "tok-a", "android", now, None).await;
    assert_eq!(push.deliver_due().await.unwrap().sent, 1);
    // The revoked token was refused once, then a new one was fetched and used.
    assert_eq!(s.fcm.unauthenticated(), 1);
    assert_eq!(s.fcm.grants(), 2);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    queue(&s.db, &reminder(), "tok-i", "ios", now, None).await;
    assert_eq!(push.deliver_due().await.unwrap().sent, 1);
    assert_eq!(s.fcm.grants(), 3, "renewed at half its 2 s life");
    assert_eq!(
        s.fcm.unauthenticated(),
        1,
        "the renewed token was never refused"
    );
}

async fn unregistered_tokens_deactivate_their_device(backend: Backend) {
    let s = setup(backend).await;
    let push = service(&s, config());
    let now = s.clock.now();
    device(&s.db, "client-1", "tok-gone", "android", now).await;
    device(&s.db, "client-1", "tok-live", "ios", now).await;
    s.fcm.unregister("tok-gone");
    let gone = queue(&s.db, &reminder(), "tok-gone", "android", now, None).await;
    let live = queue(&s.db, &reminder(), "tok-live", "ios", now, None).await;
    let pass = push.deliver_due().await.unwrap();
    assert_eq!((pass.sent, pass.failed), (1, 1));
    assert_eq!(status(&s.db, &gone).await.0, DeliveryStatus::Failed);
    assert_eq!(status(&s.db, &live).await.0, DeliveryStatus::Sent);
    let devices = s.db.devices_of("client-1").await.unwrap();
    let gone = devices.iter().find(|d| d.token == "tok-gone").unwrap();
    assert!(!gone.is_active);
    assert_eq!(gone.deactivated_reason.as_deref(), Some("unregistered"));
    assert!(
        devices
            .iter()
            .find(|d| d.token == "tok-live")
            .unwrap()
            .is_active
    );
    let active = s.db.active_devices(&["client-1".into()]).await.unwrap();
    assert_eq!(active.len(), 1);
    // A heartbeat does not revive a token FCM dropped; registering again does.
    let touched =
        s.db.touch_device("client-1", "tok-gone", now)
            .await
            .unwrap()
            .unwrap();
    assert!(!touched.is_active);
    device(&s.db, "client-1", "tok-gone", "android", now).await;
    assert_eq!(
        s.db.active_devices(&["client-1".into()])
            .await
            .unwrap()
            .len(),
        2
    );
}

async fn quota_exceeded_waits_for_retry_after(backend: Backend) {
    let s = setup(backend).await;
    let push = service(&s, config());
    let now = s.clock.now();
    let id = queue(&s.db, &reminder(), "tok-a", "android", now, None).await;
    s.fcm.fail_next(&[Fault::Quota(Some(30))]);
    let pass = push.deliver_due().await.unwrap();
    assert_eq!(pass.retried, 1);
    let (st, attempts, next) = status(&s.db, &id).await;
    assert_eq!((st, attempts), (DeliveryStatus::Pending, 1));
    assert!(
        next >= now + chrono::Duration::seconds(30),
        "{next} vs {now}"
    );
    // Not before Retry-After…
    s.clock.advance(Duration::from_secs(29));
    assert_eq!(push.deliver_due().await.unwrap().claimed, 0);
    // …then it goes.
    s.clock.advance(Duration::from_secs(2));
    assert_eq!(push.deliver_due().await.unwrap().sent, 1);
    assert_eq!(status(&s.db, &id).await.0, DeliveryStatus::Sent);
    assert_eq!(s.fcm.accepted(), 1);
}

async fn unavailable_backs_off_and_an_outage_loses_nothing(backend: Backend) {
    let s = setup(backend).await;
    let push = service(&s, config());
    let start = s.clock.now();
    let id = queue(&s.db, &reminder(), "tok-a", "android", start, None).await;
    // Exponential: the delays grow (with jitter, between half and all of 1, 2, 4, 8 s…).
    s.fcm.go_down(Fault::Unavailable);
    let mut delays = Vec::new();
    for _ in 0..5 {
        let before = s.clock.now();
        assert_eq!(push.deliver_due().await.unwrap().retried, 1);
        let (_, _, next) = status(&s.db, &id).await;
        delays.push((next - before).num_milliseconds());
        s.clock.advance((next - before).to_std().unwrap());
    }
    for (i, d) in delays.iter().enumerate() {
        let full = 1000i64 << i;
        assert!(
            *d >= full / 2 && *d <= full,
            "attempt {i}: {d} ms not in [{}, {full}]",
            full / 2
        );
    }
    // A call queued during the outage…
    let now = s.clock.now();
    let ring = queue(
        &s.db,
        &call(),
        "tok-b",
        "ios",
        now,
        Some(now + chrono::Duration::seconds(30)),
    )
    .await;
    assert_eq!(push.deliver_due().await.unwrap().claimed, 2);
    // …an hour of outage later:
    for _ in 0..20 {
        s.clock.advance(Duration::from_secs(180));
        push.deliver_due().await.unwrap();
    }
    assert_eq!(status(&s.db, &ring).await.0, DeliveryStatus::Expired);
    assert_eq!(status(&s.db, &id).await.0, DeliveryStatus::Pending);
    s.fcm.recover();
    s.clock.advance(Duration::from_secs(300));
    assert_eq!(push.deliver_due().await.unwrap().sent, 1);
    assert_eq!(status(&s.db, &id).await.0, DeliveryStatus::Sent);
    let received = s.fcm.received();
    assert_eq!(received.len(), 1, "the stale call was never delivered");
    assert_eq!(received[0].message["data"]["notificationId"], id.as_str());
}

async fn two_nodes_restarting_mid_queue_send_each_message_once(backend: Backend) {
    let s = setup(backend).await;
    s.fcm.set_delay(Duration::from_millis(5));
    let total = 300;
    let ids = queue_reminders(&s, total).await;
    let run = |push: PushService| {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(push.run_background(async move {
            let _ = rx.await;
        }));
        (tx, task)
    };
    let mut small = config();
    small.concurrency = 4;
    let (stop_a, a) = run(service(&s, small.clone()));
    let (stop_b, b) = run(service(&s, small.clone()));
    // Node A stops mid-queue and comes back; node B keeps going.
    while s.fcm.accepted() < 60 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop_a.send(()).unwrap();
    a.await.unwrap();
    let at_stop = s.fcm.accepted();
    assert!(at_stop < total as u64, "stopped mid-queue ({at_stop})");
    let (stop_a, a) = run(service(&s, small));
    wait_drained(&s).await;
    stop_a.send(()).unwrap();
    stop_b.send(()).unwrap();
    a.await.unwrap();
    b.await.unwrap();
    let seen = sends_per_id(&[&s.fcm]);
    assert_eq!(seen.len(), total, "nothing lost");
    assert!(
        seen.values().all(|n| *n == 1),
        "nothing twice: {:?}",
        seen.values().filter(|n| **n > 1).count()
    );
    for id in &ids {
        assert_eq!(status(&s.db, id).await.0, DeliveryStatus::Sent);
    }
}

/// Queues `total` reminders due now, one per token `tok-<i>`; their row ids.
async fn queue_reminders(s: &Setup, total: usize) -> Vec<String> {
    let now = s.clock.now();
    let mut ids = Vec::new();
    for i in 0..total {
        let token = format!("tok-{i}");
        ids.push(queue(&s.db, &reminder(), &token, "android", now, None).await);
    }
    ids
}

/// Whether any row is still pending.
async fn any_pending(s: &Setup) -> bool {
    let pending =
        s.db.deliveries(&DeliveryFilter {
            status: Some(DeliveryStatus::Pending),
            limit: 1,
            ..DeliveryFilter::default()
        })
        .await
        .unwrap();
    !pending.is_empty()
}

/// Waits until no row is pending (within 60 s).
async fn wait_drained(s: &Setup) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if !any_pending(s).await {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "queue did not drain"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How many times FCM accepted each row (by its `notificationId`), across `fakes`.
fn sends_per_id(fakes: &[&FakeFcm]) -> HashMap<String, u32> {
    let mut seen: HashMap<String, u32> = HashMap::new();
    for r in fakes.iter().flat_map(|f| f.received()) {
        *seen
            .entry(
                r.message["data"]["notificationId"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
            .or_default() += 1;
    }
    seen
}

/// A node dies (its task aborted mid-send, as under SIGKILL: nothing released, nothing
/// recorded) while another keeps going. The rows it held wait out their lease and go through
/// the survivor; the only repeats are messages FCM accepted from the dead node before it could
/// record them, each with the same `notificationId` and collapse key for the app to fold.
///
/// The dead node reaches FCM through its own connection, which stops answering (each message
/// accepted, no reply) just before the kill, so the node dies holding a batch and with sends
/// FCM took but it never recorded, however the two nodes' passes happen to interleave.
async fn a_node_killed_mid_queue_loses_nothing_and_repeats_only_its_unrecorded_sends(
    backend: Backend,
) {
    let s = setup(backend).await;
    let fcm_a = FakeFcm::start(&account()).await.unwrap();
    s.fcm.set_delay(Duration::from_millis(5));
    fcm_a.set_delay(Duration::from_millis(5));
    let total = 300;
    queue_reminders(&s, total).await;
    let mut small = config();
    small.concurrency = 4;
    let (stop_b, rx) = tokio::sync::oneshot::channel::<()>();
    let b = tokio::spawn(service(&s, small.clone()).run_background(async move {
        let _ = rx.await;
    }));
    let a = tokio::spawn(
        service_via(&s, &fcm_a, small.clone()).run_background(std::future::pending::<()>()),
    );
    while fcm_a.accepted() < 30 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    fcm_a.hang();
    let hung_from = fcm_a.accepted();
    while fcm_a.accepted() == hung_from {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // Let the rest of its in-flight sends reach FCM too.
    tokio::time::sleep(Duration::from_millis(100)).await;
    a.abort();
    let _ = a.await;
    let unrecorded = fcm_a.accepted() - hung_from;
    // The survivor sends everything it can reach; the dead node's rows stay leased.
    let mut last = s.fcm.accepted();
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = s.fcm.accepted();
        if now == last {
            break;
        }
        last = now;
    }
    assert!(
        any_pending(&s).await,
        "the dead node held rows when it died"
    );
    // Its leases run out.
    s.clock.advance(small.lease + Duration::from_secs(1));
    wait_drained(&s).await;
    stop_b.send(()).unwrap();
    b.await.unwrap();
    let seen = sends_per_id(&[&s.fcm, &fcm_a]);
    assert_eq!(seen.len(), total, "nothing lost");
    assert!(
        seen.values().all(|n| *n <= 2),
        "a row is repeated at most once"
    );
    // Exactly the sends FCM took from the dead node without a reply: at most its 4 in flight.
    let repeated = seen.values().filter(|n| **n > 1).count() as u64;
    assert_eq!(repeated, unrecorded, "only the unrecorded sends repeat");
    assert!((1..=4).contains(&repeated), "{repeated} rows sent twice");
}

async fn leases_are_exclusive_and_a_lost_lease_changes_nothing(backend: Backend) {
    let s = setup(backend).await;
    let now = s.clock.now();
    for i in 0..10 {
        queue(
            &s.db,
            &reminder(),
            &format!("tok-{i}"),
            "android",
            now,
            None,
        )
        .await;
    }
    let until = now + chrono::Duration::seconds(60);
    let (a, b) = tokio::join!(
        s.db.claim_notifications("node-a", now, until, 6),
        s.db.claim_notifications("node-b", now, until, 6),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(
        a.iter().all(|r| !b.iter().any(|x| x.id == r.id)),
        "disjoint leases"
    );
    assert!(a.len() + b.len() <= 10);
    // Nothing is left for a third node while the leases last, beyond what A and B did not take.
    let c =
        s.db.claim_notifications("node-c", now, until, 10)
            .await
            .unwrap();
    assert_eq!(a.len() + b.len() + c.len(), 10);
    // A's lease expires; D takes its rows over; A's late outcome is ignored.
    let later = until + chrono::Duration::seconds(1);
    let d =
        s.db.claim_notifications("node-d", later, later + chrono::Duration::seconds(60), 10)
            .await
            .unwrap();
    assert_eq!(d.len(), 10, "every expired lease is taken over");
    let outcomes: Vec<_> = a
        .iter()
        .map(|r| {
            (
                r.id.clone(),
                wakili_db::Outcome::Done {
                    receipt: "late".into(),
                },
            )
        })
        .collect();
    assert_eq!(
        s.db.finish_notifications("node-a", &outcomes, later)
            .await
            .unwrap(),
        0
    );
    let outcomes: Vec<_> = d
        .iter()
        .map(|r| {
            (
                r.id.clone(),
                wakili_db::Outcome::Done {
                    receipt: "on time".into(),
                },
            )
        })
        .collect();
    assert_eq!(
        s.db.finish_notifications("node-d", &outcomes, later)
            .await
            .unwrap(),
        10
    );
    // Finished rows are never leased again.
    assert!(
        s.db.claim_notifications(
            "node-e",
            later + chrono::Duration::days(1),
            later + chrono::Duration::days(2),
            10
        )
        .await
        .unwrap()
        .is_empty()
    );
}

async fn a_reminder_moved_while_leased_is_not_sent_for_its_old_time(backend: Backend) {
    use wakili_core::{Role, UserId, consultation::NewConsultation};
    use wakili_db::models::{ConsultationInsert, UserClaims};
    let s = setup(backend).await;
    let now = s.clock.now();
    for (id, role) in [("l1", Role::Lawyer), ("c1", Role::Client)] {
        s.db.upsert_user(
            &UserClaims {
                id: id.into(),
                role,
                name: id.into(),
            },
            now,
        )
        .await
        .unwrap();
    }
    let at = now + chrono::Duration::days(2);
    let c =
        s.db.create_consultation(ConsultationInsert {
            booking: NewConsultation {
                lawyer_id: UserId::parse("l1").unwrap(),
                client_id: UserId::parse("c1").unwrap(),
                scheduled_at: at,
                duration_minutes: 30,
                title: None,
                notes: None,
                media_mode: None,
            },
            created_by: "l1".into(),
            now,
        })
        .await
        .unwrap();
    let due = at - chrono::Duration::days(1);
    s.db.replace_reminders(&c.id, &[(86_400, due)], now)
        .await
        .unwrap();
    let until = due + chrono::Duration::seconds(60);
    // Not due yet.
    assert!(
        s.db.claim_reminders("a", now, until, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let leased = s.db.claim_reminders("a", due, until, 10).await.unwrap();
    assert_eq!(leased.len(), 1);
    assert!(
        s.db.claim_reminders("b", due, until, 10)
            .await
            .unwrap()
            .is_empty(),
        "one holder"
    );
    // Rescheduled while node A holds it: A's completion queues nothing.
    s.db.replace_reminders(&c.id, &[(86_400, due + chrono::Duration::hours(3))], due)
        .await
        .unwrap();
    let row = NewNotification {
        id: wakili_core::new_id(),
        user_id: "c1".into(),
        device_token: "tok".into(),
        platform: "ios".into(),
        kind: "reminder".into(),
        consultation_id: Some(c.id.clone()),
        payload: serde_json::to_string(&reminder()).unwrap(),
        due_at: due,
        expires_at: None,
    };
    assert!(
        !s.db
            .complete_reminder(&leased[0], "a", std::slice::from_ref(&row), due)
            .await
            .unwrap()
    );
    assert!(
        s.db.deliveries(&DeliveryFilter {
            limit: 10,
            ..DeliveryFilter::default()
        })
        .await
        .unwrap()
        .is_empty()
    );
    // At its new time it is due once, and done once.
    let later = due + chrono::Duration::hours(3);
    let leased =
        s.db.claim_reminders("b", later, later + chrono::Duration::seconds(60), 10)
            .await
            .unwrap();
    assert_eq!(leased.len(), 1);
    assert!(
        s.db.complete_reminder(&leased[0], "b", std::slice::from_ref(&row), later)
            .await
            .unwrap()
    );
    assert!(
        !s.db
            .complete_reminder(&leased[0], "b", std::slice::from_ref(&row), later)
            .await
            .unwrap()
    );
    assert_eq!(
        s.db.deliveries(&DeliveryFilter {
            limit: 10,
            ..DeliveryFilter::default()
        })
        .await
        .unwrap()
        .len(),
        1
    );
    assert!(s.db.pending_reminders(&c.id).await.unwrap().is_empty());
}
