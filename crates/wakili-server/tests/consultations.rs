//! The consultations API as lawyers, clients, strangers and admins use it, on SQLite and on
//! PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;
use wakili_core::{Role, media::MediaMode};
use wakili_db::Backend;

async fn lifecycle(backend: Backend) {
    let app = spawn_app(backend).await;
    let lawyer = token("lawyer-1", Role::Lawyer);
    let client = token("client-1", Role::Client);
    let stranger = token("lawyer-2", Role::Lawyer);
    let admin = token("admin-1", Role::Admin);

    // The lawyer books; the response points at the new consultation.
    let response = app
        .request(Method::POST, "/api/v1/consultations", &lawyer)
        .json(&json!({"clientId": "client-1", "scheduledAt": day(10, 9),
                      "durationMinutes": 30, "title": "  Lease dispute ", "notes": "privileged"}))
        .send()
        .await
        .unwrap();
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let (status, booked) = read(response).await;
    assert_eq!(status, StatusCode::CREATED, "{booked}");
    let id = booked["id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/api/v1/consultations/{id}"));
    assert_eq!(booked["status"], "scheduled");
    assert_eq!(booked["lawyerId"], "lawyer-1");
    assert_eq!(booked["title"], "Lease dispute");

    // The lawyer and the client see it; the client never sees the lawyer's notes.
    let (status, seen) = app.call(Method::GET, &location, &lawyer, None).await;
    assert_eq!(
        (status, &seen["notes"]),
        (StatusCode::OK, &json!("privileged"))
    );
    let (status, seen) = app.call(Method::GET, &location, &client, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(seen.get("notes").is_none(), "{seen}");

    // A stranger cannot tell it exists: the same 404 as for an unknown id.
    let (status, body) = app.call(Method::GET, &location, &stranger, None).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let (status, unknown) = app
        .call(
            Method::GET,
            "/api/v1/consultations/0000-nope",
            &stranger,
            None,
        )
        .await;
    assert_eq!((status, &unknown), (StatusCode::NOT_FOUND, &body));
    for action in ["start", "end", "cancel", "audit"] {
        let method = if action == "audit" {
            Method::GET
        } else {
            Method::POST
        };
        let (status, _) = app
            .call(method, &format!("{location}/{action}"), &stranger, None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "stranger {action}");
    }

    // A client cannot book, start, end or edit.
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/consultations",
            &client,
            Some(json!({"clientId": "client-1", "scheduledAt": day(10, 9), "durationMinutes": 30})),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    let (status, _) = app
        .call(Method::POST, &format!("{location}/start"), &client, None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .call(
            Method::PATCH,
            &location,
            &client,
            Some(json!({"title": "mine"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Reschedule and edit while scheduled; null clears a text.
    let (status, edited) = app
        .call(
            Method::PATCH,
            &location,
            &lawyer,
            Some(json!({"scheduledAt": day(11, 9), "durationMinutes": 60, "notes": null})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!(edited["scheduledAt"], json!(day(11, 9)));
    assert_eq!(edited["durationMinutes"], 60);
    assert!(edited.get("notes").is_none());

    // Ending before starting names the current state.
    let (status, body) = app
        .call(Method::POST, &format!("{location}/end"), &lawyer, None)
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "invalid_transition")
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("scheduled"),
        "{body}"
    );

    let (status, started) = app
        .call(Method::POST, &format!("{location}/start"), &lawyer, None)
        .await;
    assert_eq!(
        (status, &started["status"]),
        (StatusCode::OK, &json!("in_progress"))
    );
    assert!(started["startedAt"].is_string());
    let (status, body) = app
        .call(
            Method::PATCH,
            &location,
            &lawyer,
            Some(json!({"durationMinutes": 90})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "no rescheduling a running call: {body}"
    );
    let (status, body) = app
        .call(Method::POST, &format!("{location}/cancel"), &client, None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, ended) = app
        .call(Method::POST, &format!("{location}/end"), &lawyer, None)
        .await;
    assert_eq!(
        (status, &ended["status"]),
        (StatusCode::OK, &json!("ended"))
    );
    let (status, body) = app
        .call(Method::POST, &format!("{location}/start"), &lawyer, None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        body["error"]["message"].as_str().unwrap().contains("ended"),
        "{body}"
    );

    // Every change is in the audit log, for the lawyer and admins, not the client.
    let (status, log) = app
        .call(Method::GET, &format!("{location}/audit"), &lawyer, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let actions: Vec<_> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "consultation.created",
            "consultation.rescheduled",
            "consultation.started",
            "consultation.ended"
        ]
    );
    assert_eq!(log[2]["actorId"], "lawyer-1");
    let (status, _) = app
        .call(Method::GET, &format!("{location}/audit"), &client, None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .call(Method::GET, &format!("{location}/audit"), &admin, None)
        .await;
    assert_eq!(status, StatusCode::OK);

    // The client may cancel a scheduled one, with a reason.
    let second = app.book(&lawyer, "client-1", &day(20, 9)).await;
    let second_url = format!("/api/v1/consultations/{}", second["id"].as_str().unwrap());
    let (status, cancelled) = app
        .call(
            Method::POST,
            &format!("{second_url}/cancel"),
            &client,
            Some(json!({"reason": "ill"})),
        )
        .await;
    assert_eq!(
        (status, &cancelled["status"]),
        (StatusCode::OK, &json!("cancelled"))
    );
    assert_eq!(cancelled["cancelledBy"], "client-1");
    assert_eq!(cancelled["cancellationReason"], "ill");

    // Admins book for a named lawyer; clients cannot be booked as lawyers' clients twice over.
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/consultations",
            &admin,
            Some(json!({"clientId": "client-2", "scheduledAt": day(30, 9), "durationMinutes": 30})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "lawyerId is required: {body}"
    );
    let (status, body) = app
        .call(Method::POST, "/api/v1/consultations", &admin,
            Some(json!({"lawyerId": "lawyer-2", "clientId": "client-2", "scheduledAt": day(30, 9), "durationMinutes": 30})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/consultations",
            &lawyer,
            Some(json!({"clientId": "lawyer-2", "scheduledAt": day(30, 9), "durationMinutes": 30})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a known lawyer is not a client: {body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("clientId")
    );
}

async fn listing(backend: Backend) {
    let app = spawn_app(backend).await;
    let lawyer = token("lawyer-1", Role::Lawyer);
    let other = token("lawyer-2", Role::Lawyer);
    let admin = token("admin-1", Role::Admin);
    let mut ids = Vec::new();
    for n in [3, 1, 2] {
        let c = app.book(&lawyer, "client-1", &day(n, 9)).await;
        ids.push((n, c["id"].as_str().unwrap().to_owned()));
    }
    app.book(&other, "client-9", &day(1, 10)).await;
    ids.sort();
    let expected: Vec<_> = ids.iter().map(|(_, id)| id.clone()).collect();

    // Two pages of two and one, in schedule order, only the lawyer's own.
    let (status, page1) = app
        .call(Method::GET, "/api/v1/consultations?limit=2", &lawyer, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let cursor = page1["nextCursor"].as_str().unwrap();
    let (_, page2) = app
        .call(
            Method::GET,
            &format!("/api/v1/consultations?limit=2&cursor={cursor}"),
            &lawyer,
            None,
        )
        .await;
    assert!(page2.get("nextCursor").is_none());
    let seen: Vec<_> = page1["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(page2["items"].as_array().unwrap())
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(seen, expected);

    // The client sees the three booked with them; admins see everything.
    let (_, mine) = app
        .call(
            Method::GET,
            "/api/v1/consultations",
            &token("client-1", Role::Client),
            None,
        )
        .await;
    assert_eq!(mine["items"].as_array().unwrap().len(), 3);
    let (_, all) = app
        .call(Method::GET, "/api/v1/consultations", &admin, None)
        .await;
    assert_eq!(all["items"].as_array().unwrap().len(), 4);

    // Filters: time range and status.
    let (_, range) = app
        .call(
            Method::GET,
            &format!("/api/v1/consultations?from={}&to={}", day(2, 0), day(3, 0)),
            &lawyer,
            None,
        )
        .await;
    assert_eq!(range["items"].as_array().unwrap().len(), 1);
    app.call(
        Method::POST,
        &format!("/api/v1/consultations/{}/cancel", expected[0]),
        &lawyer,
        None,
    )
    .await;
    let (_, cancelled) = app
        .call(
            Method::GET,
            "/api/v1/consultations?status=cancelled",
            &lawyer,
            None,
        )
        .await;
    assert_eq!(cancelled["items"][0]["id"], json!(expected[0]));
    assert_eq!(cancelled["items"].as_array().unwrap().len(), 1);
    let (status, body) = app
        .call(
            Method::GET,
            &format!("/api/v1/consultations?from={}&to={}", day(3, 0), day(2, 0)),
            &lawyer,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}

/// A consultation's media mode is fixed at booking: the lawyer's choice, else the server's
/// `media.mode`; it is shown with the consultation and in its WebRTC config.
async fn media_mode(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.media.mode = MediaMode::Sfu).await;
    let lawyer = token("lawyer-1", Role::Lawyer);
    let book = |mode: Option<&str>| {
        let mut body =
            json!({"clientId": "client-1", "scheduledAt": day(10, 9), "durationMinutes": 30});
        if let Some(mode) = mode {
            body["mediaMode"] = json!(mode);
        }
        body
    };
    let (status, default) = app
        .call(
            Method::POST,
            "/api/v1/consultations",
            &lawyer,
            Some(book(None)),
        )
        .await;
    assert_eq!(
        (status, &default["mediaMode"]),
        (StatusCode::CREATED, &json!("sfu")),
        "{default}"
    );
    let (status, chosen) = app
        .call(
            Method::POST,
            "/api/v1/consultations",
            &lawyer,
            Some(book(Some("p2p"))),
        )
        .await;
    assert_eq!(
        (status, &chosen["mediaMode"]),
        (StatusCode::CREATED, &json!("p2p")),
        "{chosen}"
    );
    let id = chosen["id"].as_str().unwrap();
    let (_, seen) = app
        .call(
            Method::GET,
            &format!("/api/v1/consultations/{id}"),
            &lawyer,
            None,
        )
        .await;
    assert_eq!(seen["mediaMode"], "p2p");
    let (status, config) = app
        .call(
            Method::GET,
            &format!("/api/v1/webrtc/config?consultationId={id}"),
            &lawyer,
            None,
        )
        .await;
    assert_eq!(
        (status, &config["mediaMode"]),
        (StatusCode::OK, &json!("p2p")),
        "{config}"
    );
    let (_, audit) = app
        .call(
            Method::GET,
            &format!("/api/v1/consultations/{id}/audit"),
            &lawyer,
            None,
        )
        .await;
    assert_eq!(audit[0]["detail"]["mediaMode"], "p2p", "{audit}");

    // An unknown mode is refused, naming the field; nothing is booked.
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/consultations",
            &lawyer,
            Some(book(Some("mesh"))),
        )
        .await;
    assert!(status.is_client_error(), "{status} {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("mediaMode"),
        "{body}"
    );
    let (_, list) = app
        .call(Method::GET, "/api/v1/consultations", &lawyer, None)
        .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2, "{list}");
}

#[tokio::test]
async fn media_mode_on_sqlite() {
    media_mode(Backend::Sqlite).await;
}

#[tokio::test]
async fn media_mode_on_postgres() {
    media_mode(Backend::Postgres).await;
}

#[tokio::test]
async fn lifecycle_on_sqlite() {
    lifecycle(Backend::Sqlite).await;
}

#[tokio::test]
async fn lifecycle_on_postgres() {
    lifecycle(Backend::Postgres).await;
}

#[tokio::test]
async fn listing_on_sqlite() {
    listing(Backend::Sqlite).await;
}

#[tokio::test]
async fn listing_on_postgres() {
    listing(Backend::Postgres).await;
}
