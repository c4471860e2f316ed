//! Guests over the API: the lawyer invites an interpreter, a second lawyer or an observer,
//! changes a role and withdraws an invitation; guests see the consultation but change nothing,
//! and everyone else is refused. On SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wakili_core::Role;
use wakili_db::Backend;

async fn put(app: &TestApp, token: &str, id: &str, user: &str, role: &str) -> (StatusCode, Value) {
    let path = format!("/api/v1/consultations/{id}/participants/{user}");
    app.call(Method::PUT, &path, token, Some(json!({ "role": role })))
        .await
}

async fn delete(app: &TestApp, token: &str, id: &str, user: &str) -> (StatusCode, Value) {
    let path = format!("/api/v1/consultations/{id}/participants/{user}");
    app.call(Method::DELETE, &path, token, None).await
}

/// `(userId, role)` of everyone entitled to take part, in the order `token` is given them.
async fn roster(app: &TestApp, token: &str, id: &str) -> Vec<(String, String)> {
    let path = format!("/api/v1/consultations/{id}/participants");
    let (status, body) = app.call(Method::GET, &path, token, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let field = |name: &str| p[name].as_str().unwrap().to_owned();
            (field("userId"), field("role"))
        })
        .collect()
}

async fn guests(backend: Backend) {
    let app = spawn_app(backend).await;
    let lawyer = token("lawyer-1", Role::Lawyer);
    let client = token("client-1", Role::Client);
    let interpreter = token("interp-1", Role::Client);
    let stranger = token("lawyer-2", Role::Lawyer);
    let admin = token("admin-1", Role::Admin);
    let booked = app.book(&lawyer, "client-1", &day(3, 10)).await;
    let id = booked["id"].as_str().unwrap();
    let location = format!("/api/v1/consultations/{id}");

    // Only the lawyer (or an admin) invites; a stranger cannot tell the consultation exists.
    let (status, body) = put(&app, &client, id, "interp-1", "interpreter").await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    let (status, _) = put(&app, &stranger, id, "interp-1", "interpreter").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.call(Method::GET, &location, &interpreter, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not invited yet");

    // Invited: 201 with the guest; the same again is a 200 that changes nothing.
    let (status, guest) = put(&app, &lawyer, id, "interp-1", "interpreter").await;
    assert_eq!(status, StatusCode::CREATED, "{guest}");
    assert_eq!(
        (&guest["userId"], &guest["role"], &guest["invitedBy"]),
        (
            &json!("interp-1"),
            &json!("interpreter"),
            &json!("lawyer-1")
        )
    );
    let (status, _) = put(&app, &lawyer, id, "interp-1", "interpreter").await;
    assert_eq!(status, StatusCode::OK);

    // The guest sees the consultation (never the notes), lists it, and changes nothing.
    let (status, seen) = app.call(Method::GET, &location, &interpreter, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(seen.get("notes").is_none(), "{seen}");
    let (_, list) = app
        .call(Method::GET, "/api/v1/consultations", &interpreter, None)
        .await;
    assert_eq!(list["items"][0]["id"], id, "{list}");
    assert!(list["items"][0].get("notes").is_none());
    let (status, _) = app
        .call(
            Method::PATCH,
            &location,
            &interpreter,
            Some(json!({"title": "mine"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .call(
            Method::GET,
            &format!("{location}/audit"),
            &interpreter,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = put(&app, &interpreter, id, "friend-1", "observer").await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    let (status, recordings) = app
        .call(
            Method::GET,
            &format!("{location}/recordings"),
            &interpreter,
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "recordings are the parties': {recordings}"
    );
    let (status, config) = app
        .call(
            Method::GET,
            &format!("/api/v1/webrtc/config?consultationId={id}"),
            &interpreter,
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a guest needs ICE servers: {config}"
    );

    // A role change; the roster: the parties, then the guests.
    let (status, changed) = put(&app, &admin, id, "interp-1", "counsel").await;
    assert_eq!(
        (status, &changed["role"]),
        (StatusCode::OK, &json!("counsel"))
    );
    let mut everyone = roster(&app, &client, id).await;
    assert_eq!(everyone.pop(), Some(("interp-1".into(), "counsel".into())));
    everyone.sort();
    assert_eq!(
        everyone,
        [
            ("client-1".into(), "client".into()),
            ("lawyer-1".into(), "lawyer".into()),
        ]
    );

    // Refusals, each with its reason.
    let (status, body) = put(&app, &lawyer, id, "client-1", "observer").await;
    assert_eq!((status, error_code(&body)), (StatusCode::CONFLICT, "party"));
    let (status, body) = put(&app, &lawyer, id, "x-1", "judge").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = put(&app, &lawyer, id, "x-1", "observer").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    for n in 2..=5 {
        let (status, body) = put(&app, &lawyer, id, &format!("x-{n}"), "observer").await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, body) = put(&app, &lawyer, id, "x-6", "observer").await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "too_many_guests"),
        "six guests at most: {body}"
    );
    let p2p = app
        .call(
            Method::POST,
            "/api/v1/consultations",
            &lawyer,
            Some(json!({"clientId": "client-1", "scheduledAt": day(4, 10),
                        "durationMinutes": 30, "mediaMode": "p2p"})),
        )
        .await
        .1;
    let p2p = p2p["id"].as_str().unwrap();
    let (status, body) = put(&app, &lawyer, p2p, "x-1", "observer").await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "observer_needs_sfu")
    );
    let (status, body) = put(&app, &lawyer, p2p, "interp-1", "interpreter").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Withdrawn: the guest is a stranger again.
    let (status, _) = delete(&app, &client, id, "interp-1").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = delete(&app, &lawyer, id, "client-1").await;
    assert_eq!((status, error_code(&body)), (StatusCode::CONFLICT, "party"));
    let (status, _) = delete(&app, &lawyer, id, "interp-1").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = delete(&app, &lawyer, id, "interp-1").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.call(Method::GET, &location, &interpreter, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The audit log tells the story.
    let (_, audit) = app
        .call(Method::GET, &format!("{location}/audit"), &lawyer, None)
        .await;
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["detail"]["userId"] == "interp-1")
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "participant.invited",
            "participant.role_changed",
            "participant.uninvited"
        ]
    );

    // Nothing more once it is over.
    let (status, _) = app
        .call(Method::POST, &format!("{location}/cancel"), &lawyer, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = put(&app, &lawyer, id, "late-1", "interpreter").await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "consultation_closed")
    );
}

#[tokio::test]
async fn guests_on_sqlite() {
    guests(Backend::Sqlite).await;
}

#[tokio::test]
async fn guests_on_postgres() {
    guests(Backend::Postgres).await;
}
