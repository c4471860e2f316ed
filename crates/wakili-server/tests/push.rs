//! Mobile push end to end: the real server with the local FCM (`wakili_testkit::fcm`, which
//! verifies the OAuth2 assertion and checks every message), a clock the test moves, and real
//! signaling clients. Reminders and calls run on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{sync::OnceLock, time::Duration};

use chrono::{DateTime, SubsecRound, Utc};
use common::{Launch, TestServer, error_code, read, token_at};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wakili_core::Role;
use wakili_db::Backend;
use wakili_settings::Secret;
use wakili_testkit::db::TestDatabase;
use wakili_testkit::{
    clock::ManualClock,
    fcm::{FakeFcm, TestAccount},
};

fn account() -> TestAccount {
    static ACCOUNT: OnceLock<TestAccount> = OnceLock::new();
    ACCOUNT
        .get_or_init(|| TestAccount::generate("wakili-test"))
        .clone()
}

struct App {
    base: String,
    http: reqwest::Client,
    fcm: FakeFcm,
    clock: ManualClock,
    t0: DateTime<Utc>,
    server: TestServer,
    _db: TestDatabase,
}

impl App {
    async fn start(backend: Backend) -> Self {
        let db = TestDatabase::new(backend).await;
        let fcm = FakeFcm::start(&account()).await.unwrap();
        let t0 = Utc::now().trunc_subsecs(0);
        let clock = ManualClock::at(t0);
        let prepared = Launch::new()
            .clock(clock.clock())
            .prepare(&db.url, |settings| {
                settings.push.credentials_json = Some(Secret::new(account().json));
                settings.push.token_url = Some(fcm.token_url());
                settings.push.fcm_base_url = fcm.base_url();
                settings.push.poll_interval = Duration::from_millis(50);
            })
            .await;
        assert!(prepared.state.push.enabled());
        let server = prepared.serve().await;
        Self {
            base: server.url(""),
            http: reqwest::Client::new(),
            fcm,
            clock,
            t0,
            server,
            _db: db,
        }
    }

    /// A token valid for the whole (simulated) test.
    fn token(&self, sub: &str, role: Role) -> String {
        token_at(sub, role, self.t0, Duration::from_secs(30 * 86_400))
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        if response.status() == StatusCode::NO_CONTENT {
            return (StatusCode::NO_CONTENT, Value::Null);
        }
        read(response).await
    }

    async fn register(&self, token: &str, device: &str, platform: &str) {
        let (status, body) = self
            .call(
                Method::POST,
                "/api/v1/devices",
                token,
                Some(json!({ "token": device, "platform": platform, "appVersion": "2.1.0", "locale": "sw-KE" })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    async fn book(&self, lawyer: &str, at: DateTime<Utc>) -> String {
        let (status, body) = self
            .call(
                Method::POST,
                "/api/v1/consultations",
                lawyer,
                Some(json!({ "clientId": "client-1", "scheduledAt": at, "durationMinutes": 30, "title": "Land dispute" })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    /// Messages the local FCM accepted, as `(token, kind, data)`.
    fn messages(&self) -> Vec<(String, String, Value)> {
        self.fcm
            .received()
            .into_iter()
            .map(|r| {
                let m = r.message;
                (
                    m["token"].as_str().unwrap().to_owned(),
                    m["data"]["kind"].as_str().unwrap().to_owned(),
                    m["data"].clone(),
                )
            })
            .collect()
    }

    /// Waits until the local FCM has accepted `n` messages in all.
    async fn wait_for(&self, n: usize) -> Vec<(String, String, Value)> {
        for _ in 0..200 {
            if self.fcm.received().len() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let got = self.messages();
        assert_eq!(got.len(), n, "messages: {got:#?}");
        got
    }

    /// Asserts that nothing more than `n` messages arrive for a while.
    async fn still(&self, n: usize) {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let got = self.messages();
        assert_eq!(got.len(), n, "unexpected messages: {got:#?}");
    }

    async fn stop(self) {
        self.server.stop().await.unwrap();
    }
}

fn secs(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n)
}

wakili_testkit::both_backends!(
    reminders_fire_on_time_follow_a_reschedule_and_stop_on_cancel,
    a_call_rings_the_absent_party_and_stops_when_answered_or_abandoned,
);

async fn reminders_fire_on_time_follow_a_reschedule_and_stop_on_cancel(backend: Backend) {
    let app = App::start(backend).await;
    let lawyer = app.token("lawyer-1", Role::Lawyer);
    let client = app.token("client-1", Role::Client);
    app.register(&lawyer, "lawyer-phone", "android").await;
    app.register(&client, "client-phone", "ios").await;
    let t0 = app.t0;
    let at = t0 + chrono::Duration::days(2);
    let id = app.book(&lawyer, at).await;
    app.still(0).await;

    // One second before the 24-hour reminder: nothing.
    app.clock.set(at - chrono::Duration::days(1) - secs(1));
    app.still(0).await;
    // On time: both parties, once.
    app.clock.set(at - chrono::Duration::days(1));
    let got = app.wait_for(2).await;
    for (token, kind, data) in &got {
        assert!(token == "lawyer-phone" || token == "client-phone");
        assert_eq!(kind, "reminder");
        assert_eq!(data["consultationId"], id.as_str());
        assert_eq!(data["offsetSeconds"], "86400");
    }
    let titles: Vec<_> = app
        .fcm
        .received()
        .iter()
        .map(|r| {
            r.message["notification"]["title"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(titles, ["Consultation in 1 day", "Consultation in 1 day"]);
    app.still(2).await;

    // Moved a day later: the client hears of it, the 15-minute reminder moves.
    let later = at + chrono::Duration::days(1);
    let (status, body) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/consultations/{id}"),
            &lawyer,
            Some(json!({ "scheduledAt": later })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let got = app.wait_for(3).await;
    assert_eq!(
        (got[2].0.as_str(), got[2].1.as_str()),
        ("client-phone", "consultation_rescheduled")
    );
    // The old 15-minute mark passes quietly…
    app.clock.set(at - chrono::Duration::minutes(15));
    app.still(3).await;
    // …the 24-hour reminder of the new time fires…
    app.clock.set(later - chrono::Duration::days(1));
    let got = app.wait_for(5).await;
    assert!(got[3..].iter().all(|(_, kind, _)| kind == "reminder"));

    // Cancelled by the client: the lawyer hears of it and no 15-minute reminder comes.
    let (status, body) = app
        .call(
            Method::POST,
            &format!("/api/v1/consultations/{id}/cancel"),
            &client,
            Some(json!({ "reason": "settled" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let got = app.wait_for(6).await;
    assert_eq!(
        (got[5].0.as_str(), got[5].1.as_str()),
        ("lawyer-phone", "consultation_cancelled")
    );
    app.clock.set(later - chrono::Duration::minutes(15));
    app.still(6).await;

    // The delivery log shows all of it to an admin.
    let admin = app.token("admin-1", Role::Admin);
    let (status, page) = app
        .call(
            Method::GET,
            &format!("/api/v1/notifications/deliveries?consultationId={id}&status=sent"),
            &admin,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["items"].as_array().unwrap().len(), 6);
    assert!(
        page["items"][0].get("deviceToken").is_none(),
        "tokens are not listed"
    );
    app.stop().await;
}

async fn a_call_rings_the_absent_party_and_stops_when_answered_or_abandoned(backend: Backend) {
    let app = App::start(backend).await;
    let lawyer = app.token("lawyer-1", Role::Lawyer);
    let client = app.token("client-1", Role::Client);
    app.register(&client, "client-phone", "android").await;
    app.register(&client, "client-browser", "web").await;
    app.register(&lawyer, "lawyer-phone", "ios").await;
    let id = app.book(&lawyer, app.t0 + chrono::Duration::hours(1)).await;
    let join = json!({ "consultationId": id });

    // The lawyer joins alone: both of the client's devices ring.
    let (l, mut l_events) = wakili_client::Client::connect(&app.base, &lawyer)
        .await
        .unwrap();
    l.call_ok("consultation:join", &join).await.unwrap();
    let got = app.wait_for(2).await;
    for (token, kind, data) in &got {
        assert!(token.starts_with("client-"), "{token}");
        assert_eq!(kind, "incoming_call");
        assert_eq!(data["action"], "join_call");
        assert_eq!(data["consultationId"], id.as_str());
        assert_eq!(data["callerName"], "lawyer-1 name");
        assert_eq!(data["callType"], "video");
    }
    // /metrics counts what the outbox sent.
    let mut sent = 0.0;
    for _ in 0..100 {
        let text = app
            .http
            .get(format!("{}/metrics", app.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        sent = text
            .lines()
            .find_map(|l| l.strip_prefix("wakili_push_sent_total "))
            .map_or(0.0, |v| v.trim().parse().unwrap());
        if sent >= 2.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(sent >= 2.0, "wakili_push_sent_total {sent}");
    let ring = app.fcm.received()[0].message.clone();
    let collapse = format!("call-{id}");
    assert!(
        ring["android"]["collapse_key"] == collapse.as_str()
            || ring["webpush"]["headers"]["Topic"].is_string(),
        "{ring}"
    );

    // The lawyer hangs up: the ringing stops.
    l.call_ok("consultation:leave", &json!({})).await.unwrap();
    let got = app.wait_for(4).await;
    for (token, kind, data) in &got[2..] {
        assert!(token.starts_with("client-"));
        assert_eq!(kind, "call_cancelled");
        assert_eq!(data["reason"], "caller_left");
    }

    // Calls again; the client answers by joining: ringing stops on the client's devices.
    l.call_ok("consultation:join", &join).await.unwrap();
    app.wait_for(6).await;
    let (c, _c_events) = wakili_client::Client::connect(&app.base, &client)
        .await
        .unwrap();
    c.call_ok("consultation:join", &join).await.unwrap();
    let got = app.wait_for(8).await;
    for (token, kind, data) in &got[6..] {
        assert!(token.starts_with("client-"));
        assert_eq!(kind, "call_cancelled");
        assert_eq!(data["reason"], "answered");
    }
    // Nobody rings the lawyer, who is there.
    app.still(8).await;
    c.call_ok("consultation:leave", &json!({})).await.unwrap();
    l.call_ok("consultation:leave", &json!({})).await.unwrap();
    app.still(8).await;

    // Rings again; this time the client declines from the notification: the lawyer hears it
    // over signaling and the client's devices stop ringing.
    l.call_ok("consultation:join", &join).await.unwrap();
    app.wait_for(10).await;
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/notifications/call-response",
            &client,
            Some(json!({ "consultationId": id, "action": "decline" })),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let declined = l_events
        .wait_for("call:declined", Duration::from_secs(5))
        .await
        .unwrap();
    let declined: Value = declined.parse().unwrap();
    assert_eq!(declined["by"], "client-1");
    assert_eq!(declined["consultationId"], id.as_str());
    let got = app.wait_for(12).await;
    for (_, kind, data) in &got[10..] {
        assert_eq!(kind, "call_cancelled");
        assert_eq!(data["reason"], "declined");
    }
    // Someone else cannot answer.
    let stranger = app.token("client-2", Role::Client);
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/notifications/call-response",
            &stranger,
            Some(json!({ "consultationId": id, "action": "accept" })),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "not_found")
    );
    assert_eq!(app.fcm.refused(), 0, "every message had a valid shape");
    app.stop().await;
}

#[tokio::test]
async fn device_and_notification_endpoints_validate_and_authorize() {
    let app = App::start(Backend::Sqlite).await;
    let client = app.token("client-1", Role::Client);
    let other = app.token("client-2", Role::Client);
    let admin = app.token("admin-1", Role::Admin);
    let post = |token: String, body: Value| {
        let app = &app;
        async move {
            app.call(Method::POST, "/api/v1/devices", &token, Some(body))
                .await
        }
    };

    // Apps learn that push is on.
    let (status, config) = app
        .call(Method::GET, "/api/v1/mobile/config", &client, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{config}");
    assert_eq!(config["push"]["enabled"], true);

    // Registration: 201, then 200 for the same token (an upsert).
    let device = json!({ "token": "fcm-token-1", "platform": "android", "appVersion": "2.1.0" });
    let (status, body) = post(client.clone(), device.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["isActive"], true);
    assert_eq!(body["platform"], "android");
    let (status, _) = post(client.clone(), device.clone()).await;
    assert_eq!(status, StatusCode::OK);

    // Bad input is a 4xx with a message.
    for (bad, want) in [
        (
            json!({ "token": "", "platform": "android", "appVersion": "1" }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({ "token": "a b", "platform": "android", "appVersion": "1" }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({ "token": "t", "platform": "symbian", "appVersion": "1" }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({ "token": "t", "platform": "ios", "appVersion": "" }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({ "token": "t", "platform": "ios", "appVersion": "1", "locale": "en US!" }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({ "token": "t", "platform": "ios" }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({ "token": "t", "platform": "ios", "appVersion": "1", "extra": 1 }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({ "token": "x".repeat(5000), "platform": "ios", "appVersion": "1" }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let (status, body) = post(client.clone(), bad.clone()).await;
        assert!(status.is_client_error(), "{bad} → {status}");
        assert_eq!(status.as_u16() / 100, want.as_u16() / 100, "{bad}");
        error_code(&body);
    }
    let (status, _) = app
        .call(
            Method::POST,
            "/api/v1/devices",
            "not-a-jwt",
            Some(device.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Lists are per user; a token moves with a new registration.
    let (_, mine) = app
        .call(Method::GET, "/api/v1/devices", &client, None)
        .await;
    assert_eq!(mine.as_array().unwrap().len(), 1);
    let (_, theirs) = app.call(Method::GET, "/api/v1/devices", &other, None).await;
    assert_eq!(theirs.as_array().unwrap().len(), 0);
    let (status, _) = app
        .call(
            Method::POST,
            "/api/v1/devices/fcm-token-1/heartbeat",
            &other,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = post(other.clone(), device.clone()).await;
    assert_eq!(status, StatusCode::OK);
    let (_, mine) = app
        .call(Method::GET, "/api/v1/devices", &client, None)
        .await;
    assert_eq!(mine.as_array().unwrap().len(), 0);

    // Heartbeat and delete.
    app.clock.set(app.t0 + secs(60));
    let (status, seen) = app
        .call(
            Method::POST,
            "/api/v1/devices/fcm-token-1/heartbeat",
            &other,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{seen}");
    assert_eq!(
        seen["lastSeenAt"].as_str().unwrap(),
        (app.t0 + secs(60)).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
    );
    let (status, _) = app
        .call(Method::DELETE, "/api/v1/devices/fcm-token-1", &client, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .call(Method::DELETE, "/api/v1/devices/fcm-token-1", &other, None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // The delivery log is for admins, with checked filters.
    let (status, body) = app
        .call(
            Method::GET,
            "/api/v1/notifications/deliveries",
            &client,
            None,
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    let (status, body) = app
        .call(
            Method::GET,
            "/api/v1/notifications/deliveries",
            &admin,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for bad in ["?limit=0", "?limit=9999", "?status=lost", "?sort=id"] {
        let (status, body) = app
            .call(
                Method::GET,
                &format!("/api/v1/notifications/deliveries{bad}"),
                &admin,
                None,
            )
            .await;
        assert!(status.is_client_error(), "{bad} → {status}");
        error_code(&body);
    }
    // A call response needs a real consultation and a valid action.
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/notifications/call-response",
            &client,
            Some(json!({ "consultationId": "nope", "action": "accept" })),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let (status, _) = app
        .call(
            Method::POST,
            "/api/v1/notifications/call-response",
            &client,
            Some(json!({ "consultationId": "x", "action": "maybe" })),
        )
        .await;
    assert!(status.is_client_error());
    app.stop().await;
}

#[tokio::test]
async fn silent_devices_are_deactivated_and_a_heartbeat_revives_them() {
    let app = App::start(Backend::Sqlite).await;
    let client = app.token("client-1", Role::Client);
    app.register(&client, "quiet-phone", "android").await;
    // 61 days later (the default is 60), the hourly sweep finds it on the next start; here the
    // service's sweep is called as the worker does.
    app.clock.set(app.t0 + chrono::Duration::days(61));
    let state_db = wakili_db::connect(&app._db.url, &wakili_db::PoolOptions::default())
        .await
        .unwrap();
    let push = wakili_push::PushService::new(
        wakili_push::Stores::of(&state_db),
        None,
        wakili_push::PushConfig::from_settings(&wakili_settings::PushSettings::default()),
        app.clock.clock(),
    );
    assert_eq!(push.deactivate_silent().await.unwrap(), 1);
    let client = token_at(
        "client-1",
        Role::Client,
        app.t0 + chrono::Duration::days(61),
        Duration::from_secs(3600),
    );
    let (_, list) = app
        .call(Method::GET, "/api/v1/devices", &client, None)
        .await;
    assert_eq!(list[0]["isActive"], false);
    assert_eq!(list[0]["deactivatedReason"], "silent");
    let (status, seen) = app
        .call(
            Method::POST,
            "/api/v1/devices/quiet-phone/heartbeat",
            &client,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(seen["isActive"], true);
    app.stop().await;
}
