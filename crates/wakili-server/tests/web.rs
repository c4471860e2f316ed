#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The web client's pages and files over HTTP, and the development login: off by default, and
//! when on, its tokens are accepted by the API. (The pages themselves are driven in a real browser
//! by `browser.rs`.)

mod common;

use common::*;
use reqwest::{Method, StatusCode, header};
use serde_json::json;
use wakili_db::Backend;

#[tokio::test]
async fn the_call_page_and_its_files_are_served_with_a_strict_policy() {
    let app = spawn_app(Backend::Sqlite).await;
    let page = app
        .http
        .get(app.url("/c/01900000-0000-7000-8000-000000000001"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(
        page.headers()[header::CONTENT_TYPE],
        "text/html; charset=utf-8"
    );
    let csp = page.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(page.headers()[header::REFERRER_POLICY], "no-referrer");
    let html = page.text().await.unwrap();
    assert!(
        html.contains(
            r#"content='{"devLogin":false,"qualityReportSeconds":5,"recordingChunkSeconds":2}'"#
        ),
        "{html}"
    );
    assert!(html.contains(r#"<script type="module" src="/web/call.js">"#));

    for (file, kind) in [
        ("call.js", "text/javascript; charset=utf-8"),
        ("login.js", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
    ] {
        let response = app
            .http
            .get(app.url(&format!("/web/{file}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{file}");
        assert_eq!(response.headers()[header::CONTENT_TYPE], kind, "{file}");
        let body = response.text().await.unwrap();
        assert!(!body.is_empty());
        if file == "call.js" {
            // The bundle of web/src on the SDK, with the official socket.io-client inside.
            assert!(
                body.contains("__WAKILI_DEVTOOLS__"),
                "call.js is not web/src's bundle"
            );
            assert!(body.contains("socket.io"), "call.js lacks socket.io-client");
        }
    }
    for missing in [
        "/web/../Cargo.toml",
        "/web/nope.js",
        // The hand-written Socket.IO client and the modules the SDK replaced are gone.
        "/web/sio.js",
        "/web/sfu.js",
        "/c/bad%20id%3Cscript%3E",
        "/login",
    ] {
        let response = app.http.get(app.url(missing)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{missing}");
    }
    app.stop().await.unwrap();
}

#[tokio::test]
async fn the_development_login_is_off_unless_asked_for_and_its_tokens_work() {
    let app = spawn_app(Backend::Sqlite).await;
    let response = app
        .http
        .post(app.url("/api/v1/dev/token"))
        .json(&json!({"userId": "lawyer-1", "role": "lawyer"}))
        .send()
        .await
        .unwrap();
    let (status, body) = read(response).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("--dev"));
    app.stop().await.unwrap();

    let app = spawn_app_with(Backend::Sqlite, |s| s.web.dev_login = true).await;
    let login = app.http.get(app.url("/login")).send().await.unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    for (request, field) in [
        (json!({"userId": "lawyer-1", "role": "judge"}), "role"),
        (json!({"userId": "bad id!", "role": "lawyer"}), "userId"),
        (
            json!({"userId": "lawyer-1", "role": "lawyer", "name": ""}),
            "name",
        ),
    ] {
        let response = app
            .http
            .post(app.url("/api/v1/dev/token"))
            .json(&request)
            .send()
            .await
            .unwrap();
        let (status, body) = read(response).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{request}: {body}"
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with(field),
            "{body}"
        );
    }
    let response = app
        .http
        .post(app.url("/api/v1/dev/token"))
        .json(&json!({"userId": "lawyer-7", "role": "lawyer", "name": "Amina Odhiambo"}))
        .send()
        .await
        .unwrap();
    let (status, minted) = read(response).await;
    assert_eq!(status, StatusCode::OK, "{minted}");
    let (status, me) = app
        .call(
            Method::GET,
            "/api/v1/me",
            minted["token"].as_str().unwrap(),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        me,
        json!({"id": "lawyer-7", "role": "lawyer", "name": "Amina Odhiambo"})
    );
    app.stop().await.unwrap();
}
