//! A server recording survives `kill -9` of the server: every chunk sealed before the kill is
//! there after the restart, the session ends `incomplete` (with its tracks), and its manifest
//! and track files verify offline with `wakili verify-recording`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Server, book, run, stdout, token, wakili};
use serde_json::{Value, json};
use wakili_client::{Client, ClientError, Events};
use wakili_testkit::webrtc::{Client as Browser, Publish};

const WAIT: Duration = Duration::from_secs(10);

async fn call(method: reqwest::Method, base: &str, token: &str, path: &str) -> Value {
    reqwest::Client::new()
        .request(method, format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn get(base: &str, token: &str, path: &str) -> Value {
    call(reqwest::Method::GET, base, token, path).await
}

/// Joins over signaling; the socket, its events and the participant id.
async fn join(base: &str, token: &str, consultation: &str) -> (Client, Events, String) {
    let (socket, events) = Client::connect(base, token).await.unwrap();
    let ack = socket
        .call_ok(
            "consultation:join",
            &json!({ "consultationId": consultation }),
        )
        .await
        .unwrap();
    let id = ack["participantId"].as_str().unwrap().to_owned();
    (socket, events, id)
}

/// Publishes camera and microphone to the SFU through `media:publish`.
async fn publish(server: &Server, socket: &Client, name: &str) -> Browser {
    Browser::connect(
        server.sfu.unwrap(),
        name,
        Publish::camera_and_mic(),
        async |sdp| {
            let ack = socket
                .call_ok("media:publish", &json!({ "sdp": sdp }))
                .await?;
            Ok::<_, ClientError>(ack["sdp"].as_str().unwrap().to_owned())
        },
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn a_server_recording_cut_by_kill_9_keeps_every_sealed_chunk_and_ends_incomplete() {
    let cwd = tempfile::tempdir().unwrap();
    let server = Server::start_with_env(cwd.path(), &[], &[("WAKILI_SFU__RECORD_CHUNK", "1s")]);
    let lawyer = token(cwd.path(), "l1", "lawyer");
    let client = token(cwd.path(), "c1", "client");
    let at = chrono::Utc::now() + chrono::Duration::days(1);
    let body =
        json!({"clientId": "c1", "scheduledAt": at, "durationMinutes": 45, "mediaMode": "sfu"});
    let consultation = book(&server.base, &lawyer, &body).await;

    let (l, mut l_events, l_id) = join(&server.base, &lawyer, &consultation).await;
    let (c, mut c_events, c_id) = join(&server.base, &client, &consultation).await;
    let started = l.call_ok("recording:start", &json!({})).await.unwrap();
    let rid = started["recordingId"].as_str().unwrap().to_owned();
    c_events
        .wait_for("recording:consent-request", WAIT)
        .await
        .unwrap();
    c.call_ok("recording:consent", &json!({ "granted": true }))
        .await
        .unwrap();
    loop {
        let state: Value = l_events
            .wait_for("recording:state", WAIT)
            .await
            .unwrap()
            .parse()
            .unwrap();
        if state["active"] == true {
            assert_eq!(state["server"], true, "{state}");
            break;
        }
    }
    let _lb = publish(&server, &l, &l_id).await;
    let _cb = publish(&server, &c, &c_id).await;
    tokio::time::sleep(Duration::from_secs(5)).await;

    // kill -9 while recording.
    drop(server);
    drop((l, c));

    // Restarted with a short abandonment timeout: what was sealed is there, and stays.
    let server =
        Server::start_with_env(cwd.path(), &[], &[("WAKILI_STORAGE__ABANDON_AFTER", "10s")]);
    let session = get(&server.base, &lawyer, &format!("/api/v1/recordings/{rid}")).await;
    assert_eq!(session["status"], "uploading", "{session}");
    let mut sealed = Vec::new();
    for t in session["tracks"].as_array().unwrap() {
        let id = t["id"].as_str().unwrap().to_owned();
        let track = get(&server.base, &lawyer, &format!("/api/v1/recordings/{id}")).await;
        let chunks = track["chunkCount"].as_u64().unwrap();
        assert!(chunks >= 2, "{track}");
        sealed.push((id, chunks));
    }
    assert_eq!(sealed.len(), 4, "{session}");

    let mut finalized = Value::Null;
    for _ in 0..60 {
        finalized = get(&server.base, &client, &format!("/api/v1/recordings/{rid}")).await;
        if finalized["status"] == "incomplete" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(finalized["status"], "incomplete", "{finalized}");
    let manifest = get(
        &server.base,
        &client,
        &format!("/api/v1/recordings/{rid}/manifest"),
    )
    .await;
    let listed = manifest["manifest"]["tracks"].as_array().unwrap();
    let dir = cwd.path();
    let mut args: Vec<String> = vec![
        "verify-recording".into(),
        "--manifest".into(),
        dir.join("session.json").display().to_string(),
        "--key".into(),
        dir.join("key.pem").display().to_string(),
    ];
    for (id, chunks) in &sealed {
        let entry = listed
            .iter()
            .find(|t| t["recordingId"] == id.as_str())
            .unwrap();
        assert_eq!(entry["status"], "incomplete", "{entry}");
        assert_eq!(
            entry["chunks"].as_array().unwrap().len() as u64,
            *chunks,
            "every chunk sealed before the kill, and nothing else: {entry}"
        );
        let link = call(
            reqwest::Method::POST,
            &server.base,
            &client,
            &format!("/api/v1/recordings/{id}/download-url"),
        )
        .await;
        let url = link["url"].as_str().unwrap();
        let media = reqwest::get(format!(
            "{}{}",
            server.base,
            &url[url.find("/api/v1/").unwrap()..]
        ))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
        let path = dir.join(format!("{id}.webm"));
        std::fs::write(&path, &media).unwrap();
        args.push("--track".into());
        args.push(format!("{id}={}", path.display()));
    }
    std::fs::write(dir.join("session.json"), manifest.to_string()).unwrap();
    let key: Value = reqwest::get(format!("{}/api/v1/recordings/signing-key", server.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    std::fs::write(dir.join("key.pem"), key["publicKeyPem"].as_str().unwrap()).unwrap();
    let text = stdout(&run(wakili(dir).args(&args)));
    assert!(text.contains("tracks        4"), "{text}");
}
