//! Tokens that must be refused, and input that must get a clear 4xx, never a 500.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;
use wakili_auth::{Minter, TokenRequest};
use wakili_core::{Role, UserId};
use wakili_db::Backend;

#[tokio::test]
async fn bad_tokens_get_401() {
    let app = spawn_app(Backend::Sqlite).await;
    let list = "/api/v1/consultations";
    let exp = chrono::Utc::now().timestamp() + 600;
    let b64 = |s: &str| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    };
    let forged = Minter::hs256(b"not-the-server-secret-not-the-server-secret")
        .unwrap()
        .mint(
            &TokenRequest {
                user_id: UserId::parse("admin-1").unwrap(),
                role: Role::Admin,
                name: "Mallory".into(),
                ttl: Duration::from_secs(600),
            },
            chrono::Utc::now(),
        )
        .unwrap();
    let expired = token_at(
        "lawyer-1",
        Role::Lawyer,
        chrono::Utc::now() - chrono::Duration::hours(2),
        Duration::from_secs(3600),
    );
    let unsigned = format!(
        "{}.{}.",
        b64(r#"{"alg":"none","typ":"JWT"}"#),
        b64(&format!(
            r#"{{"sub":"admin-1","role":"admin","exp":{exp}}}"#
        ))
    );
    let cases = [
        (
            "forged signature",
            format!("Bearer {forged}"),
            "invalid token",
        ),
        ("expired", format!("Bearer {expired}"), "token expired"),
        ("alg none", format!("Bearer {unsigned}"), "invalid token"),
        ("garbage", "Bearer abc.def.ghi".to_owned(), "invalid token"),
        (
            "wrong scheme",
            format!("Basic {}", token("lawyer-1", Role::Lawyer)),
            "Bearer",
        ),
        ("empty", String::new(), "Bearer"),
    ];
    for (what, header, message) in cases {
        let response = app
            .http
            .get(app.url(list))
            .header("authorization", header)
            .send()
            .await
            .unwrap();
        let (status, body) = read(response).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
        assert_eq!(error_code(&body), "unauthorized");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(message),
            "{what}: {body}"
        );
    }
    let (status, _) = read(app.http.get(app.url(list)).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "no header at all");

    // Health and the API description are public.
    for public in ["/healthz", "/readyz", "/api/v1/openapi.json"] {
        let status = app.http.get(app.url(public)).send().await.unwrap().status();
        assert_eq!(status, StatusCode::OK, "{public}");
    }
    // A valid token works, and its claims are what the server sees.
    let (status, me) = app
        .call(
            Method::GET,
            "/api/v1/me",
            &token("lawyer-1", Role::Lawyer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        me,
        json!({"id": "lawyer-1", "role": "lawyer", "name": "lawyer-1 name"})
    );
}

#[tokio::test]
async fn garbage_gets_json_4xx() {
    let app = spawn_app(Backend::Sqlite).await;
    let lawyer = token("lawyer-1", Role::Lawyer);
    let booked = app.book(&lawyer, "client-1", &day(5, 9)).await;
    let one = format!("/api/v1/consultations/{}", booked["id"].as_str().unwrap());
    let valid = json!({"clientId": "client-1", "scheduledAt": day(5, 9), "durationMinutes": 30});
    let with = |key: &str, value: serde_json::Value| {
        let mut body = valid.clone();
        body[key] = value;
        body.to_string()
    };
    let cases: Vec<(&str, Method, String, String, StatusCode, &str)> = vec![
        (
            "truncated",
            Method::POST,
            "/api/v1/consultations".into(),
            r#"{"clientId": "c"#.into(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "not an object",
            Method::POST,
            "/api/v1/consultations".into(),
            "[1,2]".into(),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "null body",
            Method::POST,
            "/api/v1/consultations".into(),
            "null".into(),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "empty body",
            Method::POST,
            "/api/v1/consultations".into(),
            String::new(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "unknown field",
            Method::POST,
            "/api/v1/consultations".into(),
            with("isAdmin", json!(true)),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "wrong type",
            Method::POST,
            "/api/v1/consultations".into(),
            with("durationMinutes", json!("thirty")),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "negative",
            Method::POST,
            "/api/v1/consultations".into(),
            with("durationMinutes", json!(-5)),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "huge number",
            Method::POST,
            "/api/v1/consultations".into(),
            with("durationMinutes", json!(1e300)),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "bad date",
            Method::POST,
            "/api/v1/consultations".into(),
            with("scheduledAt", json!("next tuesday")),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "impossible date",
            Method::POST,
            "/api/v1/consultations".into(),
            with("scheduledAt", json!("2027-02-30T10:00:00Z")),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "past date",
            Method::POST,
            "/api/v1/consultations".into(),
            with("scheduledAt", json!("2001-01-01T00:00:00Z")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "bad client id",
            Method::POST,
            "/api/v1/consultations".into(),
            with("clientId", json!("../../etc/passwd")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "control chars",
            Method::POST,
            "/api/v1/consultations".into(),
            with("title", json!("a\u{0}b")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "long title",
            Method::POST,
            "/api/v1/consultations".into(),
            with("title", json!("x".repeat(201))),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "empty patch",
            Method::PATCH,
            one.clone(),
            "{}".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "patch unknown",
            Method::PATCH,
            one.clone(),
            r#"{"status":"ended"}"#.into(),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "fields in order, as an array",
            Method::POST,
            "/api/v1/consultations".into(),
            json!([null, "client-1", day(10, 9), 30, null, null, null]).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "cancel as an array",
            Method::POST,
            format!("{one}/cancel"),
            "[null]".into(),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "cancel garbage",
            Method::POST,
            format!("{one}/cancel"),
            "reason".into(),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "cancel long",
            Method::POST,
            format!("{one}/cancel"),
            json!({"reason": "x".repeat(1001)}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "oversized",
            Method::POST,
            "/api/v1/consultations".into(),
            with("notes", json!("x".repeat(2 * 1024 * 1024))),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
    ];
    for (what, method, path, body, status, code) in cases {
        let response = app
            .request(method, &path, &lawyer)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let (got, body) = read(response).await;
        assert_eq!((got, error_code(&body)), (status, code), "{what}: {body}");
    }

    let response = app
        .request(Method::POST, "/api/v1/consultations", &lawyer)
        .body(valid.to_string())
        .send()
        .await
        .unwrap();
    let (status, body) = read(response).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
    );

    for query in [
        "limit=0",
        "limit=abc",
        "limit=1000",
        "status=done",
        "cursor=%%%",
        "from=yesterday",
        "sort=asc",
    ] {
        let (status, body) = app
            .call(
                Method::GET,
                &format!("/api/v1/consultations?{query}"),
                &lawyer,
                None,
            )
            .await;
        assert!(status.is_client_error(), "{query}: {status} {body}");
        error_code(&body);
    }
    let (status, body) = app.call(Method::DELETE, &one, &lawyer, None).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
    let (status, body) = app
        .call(Method::GET, "/api/v2/anything", &lawyer, None)
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let long_id = format!("/api/v1/consultations/{}", "a".repeat(5000));
    let (status, _) = app.call(Method::GET, &long_id, &lawyer, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Nothing above changed the consultation.
    let (_, after) = app.call(Method::GET, &one, &lawyer, None).await;
    assert_eq!(after["status"], "scheduled");
    assert_eq!(after["updatedAt"], booked["updatedAt"]);
}

/// Issue 15: who the caller is was checked after the body, so a client sending a bad body to a
/// lawyers-only route learned "400: here is what is wrong" instead of "403: not yours". Every
/// route whose right depends on the caller (not on the body) now answers 403 first, whatever
/// the body (malformed, wrong type, wrong content type); the entitled caller still gets the 4xx
/// that names the problem.
#[tokio::test]
async fn callers_without_the_right_get_403_whatever_the_body() {
    let app = spawn_app(Backend::Sqlite).await;
    let lawyer = token("lawyer-1", Role::Lawyer);
    let client = token("client-1", Role::Client);
    let admin = token("admin-1", Role::Admin);
    let booked = app.book(&lawyer, "client-1", &day(5, 9)).await;
    let one = format!("/api/v1/consultations/{}", booked["id"].as_str().unwrap());
    let routes = [
        (
            Method::POST,
            "/api/v1/consultations".to_owned(),
            &client,
            &lawyer,
        ),
        (Method::PATCH, one.clone(), &client, &lawyer),
        (
            Method::PUT,
            format!("{one}/quality-profile"),
            &client,
            &lawyer,
        ),
        (
            Method::POST,
            "/api/v1/performance/load-tests".to_owned(),
            &lawyer,
            &admin,
        ),
    ];
    let bodies = [
        ("truncated", "application/json", r#"{"clientId": "c"#),
        (
            "wrong type",
            "application/json",
            r#"{"durationMinutes": "thirty", "profile": 7}"#,
        ),
        ("not JSON", "text/plain", "hello"),
    ];
    // Query strings too: the delivery log is for admins, whatever the filter says.
    let (status, _) = app
        .call(
            Method::GET,
            "/api/v1/notifications/deliveries?limit=many&colour=red",
            &lawyer,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .call(
            Method::GET,
            "/api/v1/notifications/deliveries?limit=many",
            &admin,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    for (method, path, refused, entitled) in &routes {
        for (what, content_type, body) in bodies {
            let response = app
                .request(method.clone(), path, refused)
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap();
            let (status, error) = read(response).await;
            assert_eq!(
                status,
                StatusCode::FORBIDDEN,
                "{method} {path}, {what}: {error}"
            );
            assert_eq!(error_code(&error), "forbidden", "{method} {path}, {what}");
        }
        // The entitled caller is told what is wrong with the body.
        let response = app
            .request(method.clone(), path, entitled)
            .header("content-type", "application/json")
            .body(r#"{"tit"#)
            .send()
            .await
            .unwrap();
        let (status, error) = read(response).await;
        if path.ends_with("load-tests") {
            // Load tests are off by default: refused before the body for admins too.
            assert_eq!(status, StatusCode::FORBIDDEN, "{error}");
        } else {
            assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {path}: {error}");
            assert_eq!(
                error_code(&error),
                "malformed_json",
                "{method} {path}: {error}"
            );
        }
    }
}

#[tokio::test]
async fn platform_eddsa_tokens_with_issuer_and_audience() {
    use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey, spki::der::pem::LineEnding};
    let platform = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
    let keys = tempfile::tempdir().unwrap();
    let public_file = keys.path().join("platform.pub.pem");
    std::fs::write(
        &public_file,
        platform
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap(),
    )
    .unwrap();
    let private = platform.to_pkcs8_pem(LineEnding::LF).unwrap();
    let app = spawn_app_with(Backend::Sqlite, |settings| {
        let auth = &mut settings.auth;
        auth.secret = None;
        auth.algorithm = wakili_auth::Algorithm::EdDsa;
        auth.public_key_file = Some(public_file.clone());
        auth.issuer = Some("https://platform.example".into());
        auth.audience = Some("wakili".into());
    })
    .await;
    let request = TokenRequest {
        user_id: UserId::parse("lawyer-1").unwrap(),
        role: Role::Lawyer,
        name: "Amina W.".into(),
        ttl: Duration::from_secs(600),
    };
    let mint = |issuer: Option<&str>, audience: Option<&str>| {
        Minter::from_private_pem(wakili_auth::Algorithm::EdDsa, private.as_bytes())
            .unwrap()
            .with_issuer_audience(issuer.map(Into::into), audience.map(Into::into))
            .mint(&request, chrono::Utc::now())
            .unwrap()
    };
    let good = mint(Some("https://platform.example"), Some("wakili"));
    let (status, me) = app.call(Method::GET, "/api/v1/me", &good, None).await;
    assert_eq!((status, &me["name"]), (StatusCode::OK, &json!("Amina W.")));
    for (what, token) in [
        (
            "other issuer",
            mint(Some("https://evil.example"), Some("wakili")),
        ),
        (
            "other audience",
            mint(Some("https://platform.example"), Some("other-app")),
        ),
        ("no issuer", mint(None, Some("wakili"))),
        ("HS256 token", token("lawyer-1", Role::Lawyer)),
    ] {
        let (status, body) = app.call(Method::GET, "/api/v1/me", &token, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
    }
}
