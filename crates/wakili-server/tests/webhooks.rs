//! Webhooks end to end: the real server on SQLite and on PostgreSQL, and the platform's receiver
//! in Node (`tests/node/webhook-receiver.mjs`) verifying every signature with the npm
//! `standardwebhooks` package. A whole consultation with a recording arrives in order and
//! signed; a receiver that is down, then failing, then back gets everything once per id; an
//! endpoint that keeps failing is disabled; admins manage endpoints, rotate secrets (both
//! signatures verify during the overlap) and redeliver from the log.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{collections::BTreeSet, time::Duration};

use common::{TestApp, error_code, read, spawn_app_with, token};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use wakili_core::{Role, webhook::endpoint::secret_from};
use wakili_db::Backend;
use wakili_settings::{EndpointSettings, Secret, Settings};
use wakili_testkit::receiver::{Received, Receiver};

const WAIT: Duration = Duration::from_secs(20);

fn secret(n: u8) -> String {
    secret_from(&[n; 32])
}

/// Fast retries, loopback receivers allowed, and `endpoint` configured.
fn configure(s: &mut Settings, endpoint: Option<(&str, &str)>) {
    let w = &mut s.webhooks;
    w.allow_loopback = true;
    w.initial_backoff = Duration::from_millis(100);
    w.max_backoff = Duration::from_millis(400);
    w.poll_interval = Duration::from_millis(50);
    w.request_timeout = Duration::from_secs(2);
    if let Some((url, secret)) = endpoint {
        w.endpoints = vec![EndpointSettings {
            id: "platform".into(),
            url: url.into(),
            events: vec!["*".into()],
            secret: Secret::new(secret),
            description: "the platform's backend".into(),
        }];
    }
}

async fn app_with_receiver(backend: Backend, receiver: &Receiver) -> TestApp {
    let url = receiver.url();
    let secret = receiver.secrets()[0].clone();
    spawn_app_with(backend, |s| configure(s, Some((&url, &secret)))).await
}

fn kinds(received: &[Received], consultation: &str) -> Vec<String> {
    received
        .iter()
        .filter(|r| r.data["consultationId"] == consultation)
        .map(|r| r.kind.clone())
        .collect()
}

fn position(kinds: &[String], kind: &str) -> usize {
    kinds
        .iter()
        .position(|k| k == kind)
        .unwrap_or_else(|| panic!("{kind} in {kinds:?}"))
}

/// A consultation from booking to its end, with a consented recording uploaded by the
/// lawyer's browser: every event arrives, verified, in the order the changes happened.
async fn a_whole_consultation_arrives_signed_and_in_order(backend: Backend) {
    let receiver = Receiver::start(&[&secret(1)], 0).await;
    let app = app_with_receiver(backend, &receiver).await;
    let lawyer = token("lawyer-1", Role::Lawyer);
    let client = token("client-1", Role::Client);
    let consultation = app
        .book_in(&lawyer, "client-1", &common::day(1, 10), "p2p")
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let base = app.url("");
    let (l, _l_events) = wakili_client::Client::connect(&base, &lawyer)
        .await
        .unwrap();
    let (c, mut c_events) = wakili_client::Client::connect(&base, &client)
        .await
        .unwrap();
    let join = json!({ "consultationId": consultation });
    l.call_ok("consultation:join", &join).await.unwrap();
    c.call_ok("consultation:join", &join).await.unwrap();
    l.call_ok("recording:start", &json!({})).await.unwrap();
    c_events
        .wait_for("recording:consent-request", WAIT)
        .await
        .unwrap();
    c.call_ok("recording:consent", &json!({ "granted": true }))
        .await
        .unwrap();
    c_events.wait_for("recording:state", WAIT).await.unwrap();
    let (status, created) = app
        .call(
            Method::POST,
            &format!("/api/v1/consultations/{consultation}/recordings"),
            &lawyer,
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let recording = created["recordingId"].as_str().unwrap().to_owned();
    let chunk = vec![7u8; 64 * 1024];
    let sha: String = Sha256::digest(&chunk)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let response = app
        .request(
            Method::PUT,
            &format!("/api/v1/recordings/{recording}/chunks/0"),
            &lawyer,
        )
        .header("x-content-sha256", sha)
        .body(chunk)
        .send()
        .await
        .unwrap();
    let (status, body) = read(response).await;
    assert!(status.is_success(), "{body}");
    l.call_ok("recording:stop", &json!({})).await.unwrap();
    let (status, body) = app
        .call(
            Method::POST,
            &format!("/api/v1/recordings/{recording}/complete"),
            &lawyer,
            Some(json!({"chunkCount": 1, "durationSeconds": 4.0, "format": "webm"})),
        )
        .await;
    assert!(status.is_success(), "{body}");
    c.call_ok("consultation:leave", &json!({})).await.unwrap();
    l.call_ok("consultation:end", &json!({})).await.unwrap();

    let received = receiver
        .wait_for(WAIT, |r| {
            kinds(r, &consultation).contains(&"consultation.ended".to_owned())
        })
        .await;
    let got = kinds(&received, &consultation);
    // Booked first, ended last; the rest in the order the changes happened.
    assert_eq!(got.first().map(String::as_str), Some("consultation.booked"));
    assert_eq!(got.last().map(String::as_str), Some("consultation.ended"));
    for kind in [
        "consultation.started",
        "participant.joined",
        "consent.given",
        "recording.started",
        "recording.stopped",
        "recording.ready",
        "participant.left",
    ] {
        position(&got, kind);
    }
    assert!(position(&got, "consent.given") < position(&got, "recording.started"));
    assert!(position(&got, "recording.started") < position(&got, "recording.stopped"));
    assert!(position(&got, "participant.left") < position(&got, "consultation.ended"));
    assert_eq!(
        got.iter().filter(|k| *k == "participant.joined").count(),
        2,
        "{got:?}"
    );
    // The same order as the consultation's audit log (the changes the events report).
    let (status, audit) = app
        .call(
            Method::GET,
            &format!("/api/v1/consultations/{consultation}/audit"),
            &lawyer,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{audit}");
    let ids: Vec<String> = received
        .iter()
        .filter(|r| r.data["consultationId"] == consultation)
        .map(|r| r.id.clone())
        .collect();
    let audited: Vec<String> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| format!("evt_{}", e["id"].as_str().unwrap()))
        .filter(|id| ids.contains(id))
        .collect();
    assert_eq!(ids, audited, "deliveries follow the audit chain");
    // What the events say.
    let ready = received
        .iter()
        .find(|r| r.kind == "recording.ready")
        .unwrap();
    assert_eq!(ready.data["recordingId"], recording.as_str());
    assert_eq!(
        ready.data["links"]["manifest"],
        format!("/api/v1/recordings/{recording}/manifest")
    );
    let joined = received
        .iter()
        .find(|r| r.kind == "participant.joined" && r.data["userId"] == "client-1")
        .unwrap();
    assert_eq!(joined.data["role"], "client");
    assert!(
        received.iter().all(|r| r.signatures == 1),
        "one secret, one signature"
    );
    let (_, rejected) = receiver.received().await;
    assert_eq!(rejected, 0, "every signature verified");
    // Each id once: the receiver always answered 200.
    let unique: BTreeSet<&str> = received.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(unique.len(), received.len());
}

/// The receiver is down (connections refused), then answers 500, then recovers: every event is
/// delivered, retried with the same id, none lost; a 503 with `Retry-After` is waited out.
async fn a_receiver_that_is_down_then_failing_then_back_gets_everything(backend: Backend) {
    let receiver = Receiver::start(&[&secret(2)], 0).await;
    let port = receiver.port();
    let app = app_with_receiver(backend, &receiver).await;
    let lawyer = token("lawyer-1", Role::Lawyer);
    // Down: connections refused.
    receiver.stop().await;
    let mut booked = Vec::new();
    for hour in 9..12 {
        let c = app
            .book_in(&lawyer, "client-1", &common::day(2, hour), "auto")
            .await;
        booked.push(c["id"].as_str().unwrap().to_owned());
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    // Back on the same port, failing.
    let receiver = Receiver::start(&[&secret(2)], port).await;
    receiver.answer(500, None).await;
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/api/v1/consultations/{}/cancel", booked[0]),
            &lawyer,
            Some(json!({"reason": "client asked"})),
        )
        .await;
    assert!(status.is_success());
    let failures = tokio::time::Instant::now() + WAIT;
    loop {
        let (all, _) = receiver.received().await;
        if all.iter().filter(|r| r.answered == 500).count() >= 4 {
            break;
        }
        assert!(tokio::time::Instant::now() < failures, "no retries seen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Overloaded: wait at least 1 s, it says.
    receiver.answer(503, Some("1")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    receiver.answer(200, None).await;
    let expected = booked.len() + 1;
    let accepted = receiver
        .wait_for(WAIT, |r| {
            r.iter()
                .map(|m| m.id.as_str())
                .collect::<BTreeSet<_>>()
                .len()
                >= expected
        })
        .await;
    let (all, rejected) = receiver.received().await;
    assert_eq!(rejected, 0);
    // Every failed attempt was retried with the same id until it was accepted.
    let accepted_ids: BTreeSet<&str> = accepted.iter().map(|r| r.id.as_str()).collect();
    for failed in all.iter().filter(|r| r.answered >= 500) {
        assert!(
            accepted_ids.contains(failed.id.as_str()),
            "{} retried",
            failed.id
        );
    }
    assert_eq!(accepted_ids.len(), expected);
    for c in &booked {
        assert!(
            accepted
                .iter()
                .any(|r| r.kind == "consultation.booked" && r.data["consultationId"] == c.as_str()),
            "{c} booked"
        );
    }
    // One consultation's events in order: booked before cancelled.
    let first = kinds(&accepted, &booked[0]);
    assert_eq!(first, ["consultation.booked", "consultation.cancelled"]);
    // Retry-After: the attempt after a 503 came no sooner than a second later.
    if let Some(overloaded) = all.iter().position(|r| r.answered == 503) {
        let at = all[overloaded].at_ms;
        let next = all[overloaded + 1..]
            .iter()
            .find(|r| r.id == all[overloaded].id)
            .expect("retried");
        assert!(next.at_ms >= at + 950, "{} ms later", next.at_ms - at);
    }
    // The log shows them delivered.
    let admin = token("admin-1", Role::Admin);
    let (status, log) = app
        .call(
            Method::GET,
            "/api/v1/webhooks/deliveries?endpointId=platform&status=pending",
            &admin,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{log}");
    assert_eq!(log["items"].as_array().unwrap().len(), 0, "{log}");
}

/// An endpoint that keeps failing is disabled (audited, counted); re-enabled, what waited is
/// delivered.
async fn an_endpoint_that_keeps_failing_is_disabled_then_re_enabled(backend: Backend) {
    let receiver = Receiver::start(&[&secret(3)], 0).await;
    receiver.answer(500, None).await;
    let url = receiver.url();
    let s = secret(3);
    let app = spawn_app_with(backend, |settings| {
        configure(settings, Some((&url, &s)));
        settings.webhooks.disable_after_failures = 3;
    })
    .await;
    let lawyer = token("lawyer-1", Role::Lawyer);
    let admin = token("admin-1", Role::Admin);
    app.book_in(&lawyer, "client-1", &common::day(3, 9), "auto")
        .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let endpoint = loop {
        let (status, e) = app
            .call(
                Method::GET,
                "/api/v1/webhooks/endpoints/platform",
                &admin,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{e}");
        if e["enabled"] == false {
            break e;
        }
        assert!(tokio::time::Instant::now() < deadline, "not disabled: {e}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        endpoint["disabledReason"]
            .as_str()
            .unwrap()
            .contains("3 failed attempts in a row"),
        "{endpoint}"
    );
    assert_eq!(
        app.metric("wakili_webhook_endpoints_disabled_total").await,
        Some(1.0)
    );
    // Disabled: no more attempts.
    let (before, _) = receiver.received().await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (after, _) = receiver.received().await;
    assert_eq!(before.len(), after.len(), "nothing sent while disabled");
    // Fixed and re-enabled: the event that waited arrives.
    receiver.answer(200, None).await;
    let (status, e) = app
        .call(
            Method::PATCH,
            "/api/v1/webhooks/endpoints/platform",
            &admin,
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{e}");
    assert_eq!(e["consecutiveFailures"], 0);
    receiver
        .wait_for(WAIT, |r| r.iter().any(|m| m.kind == "consultation.booked"))
        .await;
}

/// Admins create endpoints (refused on loopback without the setting, on unknown events, on bad
/// secrets; never shown the secret), rotate secrets (both verify during the overlap), read the
/// log and redeliver; nobody else may.
async fn admins_manage_endpoints_rotate_secrets_and_redeliver(backend: Backend) {
    let old = secret(4);
    let new = secret(5);
    let receiver = Receiver::start(&[&old, &new], 0).await;
    let app = spawn_app_with(backend, |s| configure(s, None)).await;
    let admin = token("admin-1", Role::Admin);
    let lawyer = token("lawyer-1", Role::Lawyer);
    let create = |body: Value| {
        let app = &app;
        let admin = admin.clone();
        async move {
            app.call(
                Method::POST,
                "/api/v1/webhooks/endpoints",
                &admin,
                Some(body),
            )
            .await
        }
    };
    // Not an admin.
    let (status, _) = app
        .call(
            Method::POST,
            "/api/v1/webhooks/endpoints",
            &lawyer,
            Some(json!({"url": receiver.url(), "secret": old})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for (body, code) in [
        (
            json!({"url": "ftp://x", "secret": old}),
            "validation_failed",
        ),
        (
            json!({"url": receiver.url(), "secret": "whsec_c2hvcnQ="}),
            "validation_failed",
        ),
        (
            json!({"url": receiver.url(), "secret": old, "events": ["recording.finished"]}),
            "validation_failed",
        ),
        (
            json!({"url": "http://169.254.169.254/latest/meta-data", "secret": old}),
            "address_refused",
        ),
        (
            json!({"url": "http://10.1.2.3/hook", "secret": old}),
            "address_refused",
        ),
    ] {
        let (status, answer) = create(body.clone()).await;
        assert_eq!(
            (status, error_code(&answer)),
            (StatusCode::UNPROCESSABLE_ENTITY, code),
            "{body} → {answer}"
        );
    }
    let (status, endpoint) = create(json!({
        "url": receiver.url(),
        "secret": old,
        "events": ["consultation.*"],
        "description": "CRM",
    }))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{endpoint}");
    assert!(!endpoint.to_string().contains("whsec_"), "no secret shown");
    assert_eq!(endpoint["events"].as_array().unwrap().len(), 5);
    let id = endpoint["id"].as_str().unwrap().to_owned();
    let (status, list) = app
        .call(Method::GET, "/api/v1/webhooks/endpoints", &admin, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(!list.to_string().contains("whsec_"), "no secret listed");

    let booked = app
        .book_in(&lawyer, "client-1", &common::day(4, 9), "auto")
        .await;
    let first = receiver
        .wait_for(WAIT, |r| r.iter().any(|m| m.kind == "consultation.booked"))
        .await;
    assert_eq!(first[0].verified_with, std::slice::from_ref(&old));

    // Rotation: both secrets sign during the overlap.
    let (status, rotated) = app
        .call(
            Method::POST,
            &format!("/api/v1/webhooks/endpoints/{id}/rotate-secret"),
            &admin,
            Some(json!({ "secret": new })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    assert!(rotated["previousSecretUntil"].is_string());
    let (status, _) = app
        .call(
            Method::POST,
            &format!(
                "/api/v1/consultations/{}/cancel",
                booked["id"].as_str().unwrap()
            ),
            &lawyer,
            Some(json!({"reason": "moved"})),
        )
        .await;
    assert!(status.is_success());
    let received = receiver
        .wait_for(WAIT, |r| {
            r.iter().any(|m| m.kind == "consultation.cancelled")
        })
        .await;
    let cancelled = received
        .iter()
        .find(|m| m.kind == "consultation.cancelled")
        .unwrap();
    assert_eq!(cancelled.signatures, 2);
    assert_eq!(cancelled.verified_with.len(), 2, "either secret verifies");

    // The delivery log, and a redelivery with the same id. The worker records the outcome once
    // the receiver's answer is back, a moment after the receiver has the message.
    let deadline = tokio::time::Instant::now() + WAIT;
    let log = loop {
        let (status, log) = app
            .call(
                Method::GET,
                &format!("/api/v1/webhooks/deliveries?endpointId={id}&limit=1"),
                &admin,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{log}");
        if log["items"][0]["status"] != "pending" || tokio::time::Instant::now() >= deadline {
            break log;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let newest = &log["items"][0];
    assert_eq!(newest["status"], "delivered");
    assert_eq!(newest["lastStatus"], 200);
    assert!(log["nextCursor"].is_string(), "two deliveries, page of one");
    let delivery = newest["id"].as_str().unwrap();
    let (status, again) = app
        .call(
            Method::POST,
            &format!("/api/v1/webhooks/deliveries/{delivery}/redeliver"),
            &admin,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{again}");
    let event = newest["eventId"].as_str().unwrap().to_owned();
    receiver
        .wait_for(WAIT, |r| r.iter().filter(|m| m.id == event).count() == 2)
        .await;
    for (path, method) in [
        ("/api/v1/webhooks/endpoints/nope", Method::GET),
        ("/api/v1/webhooks/deliveries/nope/redeliver", Method::POST),
    ] {
        let (status, _) = app.call(method, path, &admin, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    // Disabled by an admin: audited with the reason.
    let (status, off) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/webhooks/endpoints/{id}"),
            &admin,
            Some(json!({"enabled": false, "reason": "CRM migration"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(off["disabledReason"], "CRM migration");
}

/// Deliveries go out as soon as the change that queued them is stored, not at the worker's next
/// poll: with a poll interval of a minute, a booking (REST) and the lawyer's join (signaling,
/// through the group commit) each reach the receiver within seconds.
async fn deliveries_go_out_at_once_not_at_the_next_poll(backend: Backend) {
    let receiver = Receiver::start(&[&secret(3)], 0).await;
    let (url, secret) = (receiver.url(), receiver.secrets()[0].clone());
    let app = spawn_app_with(backend, |s| {
        configure(s, Some((&url, &secret)));
        s.webhooks.poll_interval = Duration::from_secs(60);
    })
    .await;
    // The worker's pass at start-up is behind it; the next poll is a minute away.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let soon = Duration::from_secs(5);
    let lawyer = token("lawyer-1", Role::Lawyer);
    let consultation = app
        .book_in(&lawyer, "client-1", &common::day(1, 10), "p2p")
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let booked = |r: &[Received]| {
        kinds(r, &consultation)
            .iter()
            .any(|k| k == "consultation.booked")
    };
    receiver.wait_for(soon, booked).await; // panics if it does not arrive in time
    let _lawyer_joined = common::media::join(&app, &lawyer, &consultation).await;
    let started = |r: &[Received]| {
        kinds(r, &consultation)
            .iter()
            .any(|k| k == "consultation.started")
    };
    receiver.wait_for(soon, started).await;
}

wakili_testkit::both_backends!(
    a_whole_consultation_arrives_signed_and_in_order,
    a_receiver_that_is_down_then_failing_then_back_gets_everything,
    an_endpoint_that_keeps_failing_is_disabled_then_re_enabled,
    admins_manage_endpoints_rotate_secrets_and_redeliver,
    deliveries_go_out_at_once_not_at_the_next_poll,
);
