//! What operators rely on: a complete API description, readiness that tracks the database, and a
//! clean shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use common::*;
use reqwest::StatusCode;
use sqlx::{Connection, Executor};
use wakili_db::Backend;
use wakili_testkit::db::postgres_admin_url;

#[tokio::test]
async fn openapi_describes_every_route() {
    let app = spawn_app(Backend::Sqlite).await;
    let (status, doc) = read(
        app.http
            .get(app.url("/api/v1/openapi.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let mut operations = BTreeSet::new();
    let mut operation_ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            operations.insert(format!("{} {path}", method.to_uppercase()));
            // Links and generated clients address operations by id.
            let id = op["operationId"].as_str().unwrap();
            assert!(
                operation_ids.insert(id.to_owned()),
                "operationId {id} is unique"
            );
            let responses = op["responses"].as_object().unwrap();
            if op["requestBody"]["content"]
                .get("application/json")
                .is_some()
            {
                for status in ["400", "413", "415"] {
                    assert!(
                        responses.contains_key(status),
                        "{method} {path} reads JSON, so documents {status}"
                    );
                }
            }
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{method} {path} has a success response"
            );
            // The manifest signing key is public; a signed download URL is its own credential.
            // The development login mints tokens, so it cannot need one (and is off by default).
            let public = path == "/api/v1/recordings/signing-key"
                || path == "/api/v1/recordings/{id}/media"
                || path == "/api/v1/dev/token";
            if path.starts_with("/api/") && !public {
                assert_eq!(
                    op["security"][0]["bearer"],
                    serde_json::json!([]),
                    "{method} {path} needs a token"
                );
                assert!(
                    responses.contains_key("401"),
                    "{method} {path} documents 401"
                );
            }
        }
    }
    let expected: BTreeSet<String> = [
        "GET /healthz",
        "GET /readyz",
        "GET /api/v1/me",
        "POST /api/v1/devices",
        "GET /api/v1/devices",
        "DELETE /api/v1/devices/{token}",
        "POST /api/v1/devices/{token}/heartbeat",
        "POST /api/v1/notifications/call-response",
        "GET /api/v1/notifications/deliveries",
        "GET /api/v1/consultations",
        "POST /api/v1/consultations",
        "GET /api/v1/consultations/{id}",
        "PATCH /api/v1/consultations/{id}",
        "POST /api/v1/consultations/{id}/cancel",
        "POST /api/v1/consultations/{id}/start",
        "POST /api/v1/consultations/{id}/end",
        "GET /api/v1/consultations/{id}/audit",
        "PUT /api/v1/consultations/{id}/quality-profile",
        "GET /api/v1/consultations/{id}/participants",
        "PUT /api/v1/consultations/{id}/participants/{userId}",
        "DELETE /api/v1/consultations/{id}/participants/{userId}",
        "GET /api/v1/webrtc/config",
        "GET /api/v1/mobile/config",
        "GET /api/v1/turn/stats",
        "GET /api/v1/consultations/{id}/recordings",
        "POST /api/v1/consultations/{id}/recordings",
        "GET /api/v1/recordings/{id}",
        "DELETE /api/v1/recordings/{id}",
        "PUT /api/v1/recordings/{id}/chunks/{seq}",
        "POST /api/v1/recordings/{id}/complete",
        "GET /api/v1/recordings/{id}/manifest",
        "GET /api/v1/recordings/signing-key",
        "POST /api/v1/recordings/{id}/download-url",
        "GET /api/v1/recordings/{id}/media",
        "PUT /api/v1/recordings/{id}/legal-hold",
        "GET /api/v1/storage/usage",
        "POST /api/v1/dev/token",
        "GET /metrics",
        "GET /api/v1/consultations/{id}/quality",
        "GET /api/v1/performance/metrics",
        "POST /api/v1/performance/load-tests",
        "GET /api/v1/performance/load-tests",
        "POST /api/v1/webhooks/endpoints",
        "GET /api/v1/webhooks/endpoints",
        "GET /api/v1/webhooks/endpoints/{id}",
        "PATCH /api/v1/webhooks/endpoints/{id}",
        "POST /api/v1/webhooks/endpoints/{id}/rotate-secret",
        "GET /api/v1/webhooks/deliveries",
        "POST /api/v1/webhooks/deliveries/{id}/redeliver",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(operations, expected);
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for schema in [
        "Consultation",
        "CreateConsultation",
        "UpdateConsultation",
        "ErrorBody",
        "ConsultationStatus",
    ] {
        assert!(schemas.contains_key(schema), "schema {schema}");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    // Every webhook event is documented (OpenAPI 3.1 `webhooks`), with its body and the
    // signature headers.
    let webhooks = doc["webhooks"].as_object().expect("a webhooks section");
    assert_eq!(webhooks.len(), wakili_core::webhook::EventType::ALL.len());
    for event in wakili_core::webhook::EventType::ALL {
        let op = &webhooks[event.as_str()]["post"];
        let body = &op["requestBody"]["content"]["application/json"]["schema"];
        assert_eq!(body["properties"]["type"]["enum"][0], event.as_str());
        let data = body["properties"]["data"]["$ref"].as_str().unwrap();
        let name = data.trim_start_matches("#/components/schemas/");
        assert!(schemas.contains_key(name), "{event}: schema {name}");
        let headers: Vec<&str> = op["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            headers,
            ["webhook-id", "webhook-timestamp", "webhook-signature"]
        );
    }
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
}

#[tokio::test]
async fn readiness_follows_the_database() {
    let app = spawn_app(Backend::Postgres).await;
    let (status, body) = read(app.http.get(app.url("/readyz")).send().await.unwrap()).await;
    assert_eq!(
        (status, &body["database"]),
        (StatusCode::OK, &serde_json::json!("postgres"))
    );

    // The database goes away: readiness says so (liveness does not), and API calls get a 503
    // JSON error rather than a hang or a crash.
    let name = app.db.url.rsplit('/').next().unwrap().to_owned();
    let mut admin = sqlx::PgConnection::connect(&postgres_admin_url())
        .await
        .unwrap();
    admin
        .execute(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE {name} WITH (FORCE)"
        )))
        .await
        .unwrap();
    let (status, body) = read(app.http.get(app.url("/readyz")).send().await.unwrap()).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    );
    let status = app
        .http
        .get(app.url("/healthz"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app
        .call(
            reqwest::Method::GET,
            "/api/v1/consultations",
            &token("l1", wakili_core::Role::Lawyer),
            None,
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    );
}

#[tokio::test]
async fn shutdown_is_graceful() {
    let app = spawn_app(Backend::Sqlite).await;
    let addr = app.addr;
    app.stop().await.unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
}

#[tokio::test]
async fn a_stopping_server_drains_first_failing_readiness_while_everything_else_works() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.shutdown_drain = std::time::Duration::from_millis(1500);
    })
    .await;
    let (addr, http) = (app.addr, app.http.clone());
    let url = |path: &str| format!("http://{addr}{path}");
    let (status, _) = read(http.get(url("/readyz")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);

    let started = std::time::Instant::now();
    let stopping = tokio::spawn(app.stop());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (status, body) = read(http.get(url("/readyz")).send().await.unwrap()).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("draining")
    );
    // Still serving while the balancer moves new clients away.
    let me = http
        .get(url("/api/v1/me"))
        .bearer_auth(token("l1", wakili_core::Role::Lawyer))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);

    stopping.await.unwrap().unwrap();
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(1500),
        "the drain lasted its configured time"
    );
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "then the listener is closed"
    );
}
