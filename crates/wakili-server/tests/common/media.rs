//! Calls with media through the SFU, as a client drives them over Socket.IO: booking with a
//! media mode, joining, publishing the str0m test "browser" with `media:publish` and answering
//! the server's `media:offer`s.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wakili_client::{Client as Socket, ClientError, Events};
use wakili_testkit::webrtc::{Client as Browser, Kind, Publish};

use super::*;

pub const WAIT: Duration = Duration::from_secs(10);

pub async fn book(app: &TestApp, lawyer: &str, mode: &str) -> String {
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/consultations",
            lawyer,
            Some(json!({"clientId": "client-1", "scheduledAt": day(1, 9),
                        "durationMinutes": 30, "mediaMode": mode})),
        )
        .await;
    assert!(status.is_success(), "{body}");
    body["id"].as_str().unwrap().to_owned()
}

/// Joins `consultation` over signaling; the join ack.
pub async fn join(app: &TestApp, token: &str, consultation: &str) -> (Socket, Events, Value) {
    join_at(
        &app.url(""),
        token,
        json!({ "consultationId": consultation }),
    )
    .await
}

/// Joins over signaling at the server at `base` with `request` (`consultation:join`'s
/// fields); the join ack.
pub async fn join_at(base: &str, token: &str, request: Value) -> (Socket, Events, Value) {
    let (socket, events) = Socket::connect(base, token).await.unwrap();
    let ack = socket.call_ok("consultation:join", &request).await.unwrap();
    (socket, events, ack)
}

/// Publishes over `media:publish` and answers every `media:offer` until the socket closes.
pub async fn publish(app: &TestApp, socket: Socket, events: Events, name: &str) -> Browser {
    publish_as(app, socket, events, name, Publish::camera_and_mic()).await
}

/// [`publish`] with what the client sends (nothing, for an observer).
pub async fn publish_as(
    app: &TestApp,
    socket: Socket,
    events: Events,
    name: &str,
    sends: Publish,
) -> Browser {
    publish_to(app.sfu.expect("the SFU runs"), socket, events, name, sends).await
}

/// [`publish_as`], the "browser" connecting its media to the SFU at `server`.
pub async fn publish_to(
    server: std::net::SocketAddr,
    socket: Socket,
    mut events: Events,
    name: &str,
    sends: Publish,
) -> Browser {
    let browser = Browser::connect(server, name, sends, async |sdp| {
        let ack = socket
            .call_ok("media:publish", &json!({ "sdp": sdp }))
            .await?;
        Ok::<_, ClientError>(ack["sdp"].as_str().unwrap().to_owned())
    })
    .await
    .unwrap();
    let offers = browser.offers();
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            if event.name != "media:offer" {
                continue;
            }
            let offer: Value = event.parse().unwrap();
            let sdp = offer["sdp"].as_str().unwrap().to_owned();
            if let Some(answer) = offers.accept(sdp).await {
                socket
                    .call_ok("media:answer", &json!({ "sdp": answer }))
                    .await
                    .unwrap();
            }
        }
    });
    browser
}

pub async fn received(browser: &Browser, from: &str, kind: Kind, at_least: u64) -> u64 {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let packets = browser.seen(|s| s.packets(from, kind));
        if packets >= at_least || tokio::time::Instant::now() > deadline {
            return packets;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Downloads recording `id` through a signed link (as `token` asks for it), optionally a byte
/// range: the status and the body.
pub async fn download(
    app: &TestApp,
    token: &str,
    id: &str,
    range: Option<&str>,
) -> (StatusCode, Vec<u8>) {
    let (status, link) = app
        .call(
            Method::POST,
            &format!("/api/v1/recordings/{id}/download-url"),
            token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{link}");
    let url = link["url"].as_str().unwrap();
    let mut request = app.http.get(app.url(&url[url.find("/api/v1/").unwrap()..]));
    if let Some(range) = range {
        request = request.header("range", range);
    }
    let response = request.send().await.unwrap();
    (response.status(), response.bytes().await.unwrap().to_vec())
}
