//! A recording survives `kill -9` of the server between acknowledged chunks, and an upload
//! whose uploader vanished is finalized as incomplete, never dropped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Server, book, token};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

fn sha(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn body(seq: u8) -> Vec<u8> {
    (0..200_000u32)
        .map(|i| (i.wrapping_mul(31) ^ (u32::from(seq) * 7)) as u8)
        .collect()
}

async fn put(base: &str, lawyer: &str, rid: &str, seq: u8) -> u16 {
    let bytes = body(seq);
    reqwest::Client::new()
        .put(format!("{base}/api/v1/recordings/{rid}/chunks/{seq}"))
        .bearer_auth(lawyer)
        .header("x-content-sha256", sha(&bytes))
        .body(bytes)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn get(base: &str, token: &str, path: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn acknowledged_chunks_survive_kill_9_and_a_vanished_uploader_leaves_an_incomplete_recording()
{
    let cwd = tempfile::tempdir().unwrap();
    let server = Server::start(cwd.path(), &[]);
    let lawyer = token(cwd.path(), "l1", "lawyer");
    let client = token(cwd.path(), "c1", "client");
    let http = reqwest::Client::new();
    let at = chrono::Utc::now() + chrono::Duration::days(1);
    let booking =
        json!({"clientId": "c1", "scheduledAt": at, "durationMinutes": 45, "mediaMode": "p2p"});
    let consultation = book(&server.base, &lawyer, &booking).await;

    // Consent over signaling, then the recording is created.
    let (l, _) = wakili_client::Client::connect(&server.base, &lawyer)
        .await
        .unwrap();
    let (c, mut c_events) = wakili_client::Client::connect(&server.base, &client)
        .await
        .unwrap();
    for socket in [&l, &c] {
        socket
            .call_ok(
                "consultation:join",
                &json!({ "consultationId": consultation }),
            )
            .await
            .unwrap();
    }
    l.call_ok("recording:start", &json!({})).await.unwrap();
    c_events
        .wait_for("recording:consent-request", Duration::from_secs(5))
        .await
        .unwrap();
    c.call_ok("recording:consent", &json!({ "granted": true }))
        .await
        .unwrap();
    c_events
        .wait_for("recording:state", Duration::from_secs(5))
        .await
        .unwrap();
    let created: Value = http
        .post(format!(
            "{}/api/v1/consultations/{consultation}/recordings",
            server.base
        ))
        .bearer_auth(&lawyer)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rid = created["recordingId"].as_str().unwrap().to_owned();
    for seq in 0..3 {
        assert_eq!(put(&server.base, &lawyer, &rid, seq).await, 201);
    }

    // kill -9 right after the third acknowledgement.
    drop(server);
    drop((l, c));

    // Restarted, with a short abandonment timeout: nothing acknowledged is lost.
    let server =
        Server::start_with_env(cwd.path(), &[], &[("WAKILI_STORAGE__ABANDON_AFTER", "10s")]);
    let recording = get(&server.base, &lawyer, &format!("/api/v1/recordings/{rid}")).await;
    assert_eq!(recording["status"], "uploading", "{recording}");
    assert_eq!(recording["chunkCount"], 3, "{recording}");
    assert_eq!(put(&server.base, &lawyer, &rid, 4).await, 201);

    // The uploader vanishes (chunk 3 never comes): the recording is finalized as incomplete.
    let mut finalized = Value::Null;
    for _ in 0..60 {
        finalized = get(&server.base, &client, &format!("/api/v1/recordings/{rid}")).await;
        if finalized["status"] == "incomplete" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(finalized["status"], "incomplete", "{finalized}");
    assert_eq!(finalized["incomplete"], true);
    let manifest = get(
        &server.base,
        &client,
        &format!("/api/v1/recordings/{rid}/manifest"),
    )
    .await;
    assert_eq!(manifest["manifest"]["missing"], json!([3]), "{manifest}");

    // What arrived downloads intact, in order.
    let link: Value = http
        .post(format!(
            "{}/api/v1/recordings/{rid}/download-url",
            server.base
        ))
        .bearer_auth(&client)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = link["url"].as_str().unwrap();
    let path = &url[url.find("/api/v1/").unwrap()..];
    let media = http
        .get(format!("{}{path}", server.base))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let expected: Vec<u8> = [0, 1, 2, 4].into_iter().flat_map(body).collect();
    assert_eq!(sha(&media), sha(&expected));
    assert_eq!(finalized["sha256"], sha(&expected));

    // The evidence verifies offline, the consultation's exported audit log with it; an audit
    // log edited, cut or reordered after the fact does not.
    let dir = cwd.path();
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
    std::fs::write(dir.join("media.webm"), &media).unwrap();
    let key = http
        .get(format!("{}/api/v1/recordings/signing-key", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let key: Value = serde_json::from_str(&key).unwrap();
    std::fs::write(dir.join("key.pem"), key["publicKeyPem"].as_str().unwrap()).unwrap();
    let audit = get(
        &server.base,
        &lawyer,
        &format!("/api/v1/consultations/{consultation}/audit"),
    )
    .await;
    assert!(
        manifest["manifest"]["auditHead"]["seq"].as_u64().unwrap() >= 3,
        "{manifest}"
    );
    let check = |log: &Value| {
        std::fs::write(dir.join("audit.json"), log.to_string()).unwrap();
        common::run(common::wakili(dir).args([
            "verify-recording",
            "--manifest",
            "manifest.json",
            "--key",
            "key.pem",
            "--audit",
            "audit.json",
            "media.webm",
        ]))
    };
    let ok = check(&audit);
    let out = common::stdout(&ok);
    assert!(out.contains("intact through the signed head"), "{out}");
    let entries = audit.as_array().unwrap().clone();
    let mut edited = entries.clone();
    edited[1]["detail"] = json!({"participantId": "someone else"});
    let mut cut = entries.clone();
    cut.remove(1);
    let mut reordered = entries.clone();
    reordered.swap(1, 2);
    for (what, log) in [("edited", edited), ("cut", cut), ("reordered", reordered)] {
        let refused = check(&Value::Array(log));
        let err = String::from_utf8_lossy(&refused.stderr);
        assert!(
            !refused.status.success() && err.contains("audit verification FAILED"),
            "an {what} audit log: {err}"
        );
    }
}
