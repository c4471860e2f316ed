#![allow(clippy::unwrap_used, clippy::expect_used)]
//! What a connection may not do, spoken by `wakili-client` (and a raw WebSocket where the client
//! would not misbehave) against the real server: outlive its token, hold more connections than
//! `signaling.max_sockets_per_user`, send binary attachments, or signal itself. Token expiry is
//! driven by a controllable clock where it can be; one test uses real, short-lived tokens for the
//! `auth:expiring` → `auth:refresh` round trip.

mod common;

use std::{net::SocketAddr, time::Duration};

use chrono::{DateTime, Utc};
use common::*;
use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use wakili_client::{Client, ClientError, Config, Events, TokenSource};
use wakili_core::Role;
use wakili_db::Backend;
use wakili_testkit::clock::ManualClock;

const LAWYER: &str = "lawyer-1";
const CLIENT: &str = "client-1";
const WAIT: Duration = Duration::from_secs(5);

/// The server on SQLite with a [`ManualClock`] (starting at the real time) and the test
/// defaults of `common` (HS256 with `SECRET`, no leeway).
struct ClockedApp {
    app: TestApp,
    clock: ManualClock,
}

impl ClockedApp {
    async fn start() -> Self {
        let clock = ManualClock::at(Utc::now());
        let app = Launch::new()
            .clock(clock.clock())
            .app(Backend::Sqlite, |_| {})
            .await;
        Self { app, clock }
    }

    fn url(&self, path: &str) -> String {
        self.app.url(path)
    }

    /// A token for `sub` issued now on the server's clock, valid for `ttl`.
    fn token(&self, sub: &str, role: Role, ttl: Duration) -> String {
        token_at(sub, role, self.clock.now(), ttl)
    }

    async fn book(&self) -> String {
        let response = self
            .app
            .http
            .post(self.url("/api/v1/consultations"))
            .bearer_auth(self.token(LAWYER, Role::Lawyer, Duration::from_secs(60)))
            .json(&json!({"clientId": CLIENT, "scheduledAt": day(1, 10), "durationMinutes": 45}))
            .send()
            .await
            .unwrap();
        let (status, body) = read(response).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }
}

/// Connects with `token` and joins `consultation`; returns the participant id too.
async fn join(base: &str, token: &str, consultation: &str) -> (Client, Events, String) {
    join_with(base, token, consultation, &Config::default()).await
}

async fn join_with(
    base: &str,
    token: &str,
    consultation: &str,
    config: &Config,
) -> (Client, Events, String) {
    let (client, events) = Client::connect_with(base, token, config).await.unwrap();
    let joined = client
        .call_ok(
            "consultation:join",
            &json!({"consultationId": consultation}),
        )
        .await
        .unwrap();
    let id = joined["participantId"].as_str().unwrap().to_owned();
    (client, events, id)
}

fn offer(to: &str, n: u32) -> Value {
    json!({"to": to, "type": "offer", "payload": {"sdp": "v=0", "n": n}})
}

fn rejected(result: Result<Value, ClientError>) -> String {
    match result {
        Err(ClientError::Rejected { code, .. }) => code,
        other => panic!("expected an error ack, got {other:?}"),
    }
}

/// The next `signal` carries `n`.
async fn receives(events: &mut Events, n: u32) {
    let signal: Value = events
        .wait_for("signal", WAIT)
        .await
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(signal["payload"]["n"], n, "{signal}");
}

/// One signal each way between two joined parties, numbered `n` and `n + 1`, both delivered.
async fn signals_flow_both_ways(
    (lawyer, lawyer_id, lawyer_events): (&Client, &str, &mut Events),
    (client, client_id, client_events): (&Client, &str, &mut Events),
    n: u32,
) {
    lawyer
        .call_ok("signal", &offer(client_id, n))
        .await
        .unwrap();
    receives(client_events, n).await;
    client
        .call_ok("signal", &offer(lawyer_id, n + 1))
        .await
        .unwrap();
    receives(lawyer_events, n + 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_addressed_to_oneself_is_refused() {
    let app = spawn_app_with(Backend::Sqlite, |_| {}).await;
    let id = app
        .book(&token(LAWYER, Role::Lawyer), CLIENT, &day(1, 10))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let base = app.url("");
    let (lawyer, mut lawyer_events, lawyer_id) =
        join(&base, &token(LAWYER, Role::Lawyer), &id).await;
    let (client, mut client_events, client_id) =
        join(&base, &token(CLIENT, Role::Client), &id).await;

    let to_self = lawyer.call_ok("signal", &offer(&lawyer_id, 1)).await;
    assert_eq!(rejected(to_self), "bad_request");
    let to_self = client.call_ok("signal", &offer(&client_id, 2)).await;
    assert_eq!(rejected(to_self), "bad_request");

    // Signals to the other party still flow, and nobody got the refused ones.
    signals_flow_both_ways(
        (&lawyer, &lawyer_id, &mut lawyer_events),
        (&client, &client_id, &mut client_events),
        3,
    )
    .await;
    app.stop().await.unwrap();
}

/// A raw Engine.IO/Socket.IO connection over WebSocket, CONNECTed with `token`.
async fn raw_socket(
    addr: SocketAddr,
    token: &str,
) -> tokio_tungstenite::WebSocketStream<tokio::net::TcpStream> {
    let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(url, tcp).await.unwrap();
    let open = next_text(&mut ws).await.unwrap();
    assert!(open.starts_with('0'), "{open}");
    ws.send(Message::text(format!("40{}", json!({"token": token}))))
        .await
        .unwrap();
    loop {
        let answer = next_text(&mut ws).await.unwrap();
        if answer == "2" {
            // The server's first ping may come before the CONNECT answer.
            ws.send(Message::text("3")).await.unwrap();
            continue;
        }
        assert!(answer.starts_with("40"), "CONNECT answered {answer}");
        return ws;
    }
}

/// The next text frame; `None` once the connection is closed.
async fn next_text<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> Option<String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => return Some(text.to_string()),
            Some(Ok(Message::Close(_)) | Err(_)) | None => return None,
            Some(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binary_packet_announcing_attachments_closes_the_connection_at_once() {
    let app = spawn_app_with(Backend::Sqlite, |_| {}).await;
    let token = token(LAWYER, Role::Lawyer);
    for header in [
        // One attachment announced, none sent.
        r#"451-["signal",{"to":"p","type":"offer","payload":{"_placeholder":true,"num":0}}]"#,
        // A hundred announced, one sent.
        r#"45100-["signal",{"to":"p","type":"offer","payload":{"_placeholder":true,"num":0}}]"#,
    ] {
        let mut ws = raw_socket(app.addr, &token).await;
        ws.send(Message::text(header)).await.unwrap();
        // An attachment frame (Engine.IO binary message).
        let _ = ws.send(Message::binary(vec![7u8; 64 * 1024])).await;
        let ended = tokio::time::timeout(WAIT, async {
            while let Some(text) = next_text(&mut ws).await {
                // A close packet ("1") may come first; anything else is unexpected here.
                assert!(text == "1" || text.starts_with('2'), "got {text:?}");
            }
        })
        .await;
        assert!(
            ended.is_ok(),
            "the connection stays open after {header} (attachments are buffered)"
        );
    }
    // The server keeps serving: the same user connects and is answered.
    let (client, _events) = Client::connect(&app.url(""), &token).await.unwrap();
    let answer = client.call("no:such-event", &json!({})).await.unwrap();
    assert_eq!(answer["error"]["code"], "unknown_event");
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_holds_at_most_max_sockets_per_user_connections() {
    let app = spawn_app_with(Backend::Sqlite, |s| s.signaling.max_sockets_per_user = 3).await;
    let base = app.url("");
    let token = token(LAWYER, Role::Lawyer);
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(Client::connect(&base, &token).await.unwrap());
    }
    match Client::connect(&base, &token).await {
        Err(ClientError::Refused(message)) => assert!(
            message.starts_with("too many connections"),
            "connect_error message: {message}"
        ),
        Ok(_) => panic!("a fourth connection of one user was accepted"),
        Err(e) => panic!("expected a refusal, got {e}"),
    }
    // Other users are not affected.
    let (other, _) = Client::connect(&base, &token_for_other()).await.unwrap();
    assert!(!other.is_closed());
    // Closing one frees its place.
    let (first, _) = open.remove(0);
    first.close().await;
    let mut again = None;
    for _ in 0..50 {
        match Client::connect(&base, &token).await {
            Ok(c) => {
                again = Some(c);
                break;
            }
            Err(ClientError::Refused(_)) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(
        again.is_some(),
        "a place freed by a closed connection is given again"
    );
    app.stop().await.unwrap();
}

fn token_for_other() -> String {
    token("lawyer-2", Role::Lawyer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_socket_is_refused_and_closed() {
    let app = ClockedApp::start().await;
    let first = app.book().await;
    let second = app.book().await;
    let base = app.url("");
    let hour = Duration::from_secs(3600);
    let lawyer_token = app.token(LAWYER, Role::Lawyer, hour);
    let (lawyer, mut lawyer_events, _) = join(&base, &lawyer_token, &first).await;
    let (client, mut client_events, client_id) =
        join(&base, &app.token(CLIENT, Role::Client, 3 * hour), &first).await;
    lawyer
        .call_ok("signal", &offer(&client_id, 1))
        .await
        .unwrap();
    receives(&mut client_events, 1).await;

    // An hour and two seconds later (no leeway) the API refuses the token…
    app.clock.advance(Duration::from_secs(3602));
    let me = app
        .app
        .http
        .get(app.url("/api/v1/me"))
        .bearer_auth(&lawyer_token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
    // …and so does the socket: no joining another consultation, no signals, no recording.
    let join_other = lawyer
        .call_ok("consultation:join", &json!({"consultationId": second}))
        .await;
    assert_eq!(rejected(join_other), "token_expired");
    let closed: Value = lawyer_events
        .wait_for("session:closed", WAIT)
        .await
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(closed["reason"], "token_expired", "{closed}");
    for (event, data) in [
        ("signal", offer(&client_id, 2)),
        ("recording:start", json!(null)),
    ] {
        match lawyer.call_ok(event, &data).await {
            Err(ClientError::Closed) => {}
            Err(ClientError::Rejected { code, .. }) => assert_eq!(code, "token_expired"),
            other => panic!("{event} after expiry: {other:?}"),
        }
    }
    // The server closed the connection; the other party sees the lawyer reconnecting.
    let end = tokio::time::timeout(WAIT, async {
        while lawyer_events.next().await.is_some() {}
    });
    assert!(end.await.is_ok(), "the expired connection is closed");
    assert!(lawyer.is_closed());
    client_events
        .wait_for("participant:reconnecting", WAIT)
        .await
        .unwrap();
    // A new token connects again (and the client, whose token is valid, was never touched).
    let fresh = app.token(LAWYER, Role::Lawyer, hour);
    let (again, _, _) = join(&base, &fresh, &second).await;
    assert!(!again.is_closed() && !client.is_closed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_refreshed_before_it_expires_keeps_the_call() {
    let app = ClockedApp::start().await;
    let id = app.book().await;
    let base = app.url("");
    let hour = Duration::from_secs(3600);
    let (lawyer, mut lawyer_events, lawyer_id) =
        join(&base, &app.token(LAWYER, Role::Lawyer, hour), &id).await;
    let (client, mut client_events, client_id) =
        join(&base, &app.token(CLIENT, Role::Client, 4 * hour), &id).await;

    // Refusals leave the old token in force.
    let other_user = lawyer
        .refresh_token(&app.token("lawyer-2", Role::Lawyer, 3 * hour))
        .await;
    assert_eq!(rejected(other_user), "forbidden");
    let other_role = lawyer
        .refresh_token(&app.token(LAWYER, Role::Admin, 3 * hour))
        .await;
    assert_eq!(rejected(other_role), "forbidden");
    assert_eq!(
        rejected(lawyer.refresh_token("not-a-jwt").await),
        "unauthorized"
    );
    let expired = token_at(
        LAWYER,
        Role::Lawyer,
        app.clock.now() - chrono::Duration::hours(2),
        hour,
    );
    assert_eq!(
        rejected(lawyer.refresh_token(&expired).await),
        "unauthorized"
    );
    let bad = lawyer
        .call("auth:refresh", &json!({"tok": "x"}))
        .await
        .unwrap();
    assert_eq!(bad["error"]["code"], "bad_request");

    let fresh = app.token(LAWYER, Role::Lawyer, 3 * hour);
    let answer = lawyer.refresh_token(&fresh).await.unwrap();
    let expires_at: DateTime<Utc> = answer["expiresAt"].as_str().unwrap().parse().unwrap();
    assert!(expires_at > app.clock.now() + chrono::Duration::hours(2));

    // Two hours on, past the first token's expiry: still in the call, signals both ways.
    app.clock.advance(Duration::from_secs(2 * 3600));
    signals_flow_both_ways(
        (&lawyer, &lawyer_id, &mut lawyer_events),
        (&client, &client_id, &mut client_events),
        1,
    )
    .await;
    lawyer
        .call_ok(
            "media:state",
            &json!({"audio": true, "video": false, "screen": false}),
        )
        .await
        .unwrap();
    client_events
        .wait_for("participant:media", WAIT)
        .await
        .unwrap();
    assert!(!lawyer.is_closed());

    // The new token's own expiry still holds.
    app.clock.advance(Duration::from_secs(3602));
    let late = lawyer.call_ok("signal", &offer(&client_id, 3)).await;
    assert_eq!(rejected(late), "token_expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_expiring_makes_the_client_refresh_by_itself_and_the_call_goes_on() {
    // Real time: tokens of a few seconds, a warning 3 s before expiry.
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.signaling.expiry_warning = Duration::from_secs(3);
    })
    .await;
    let id = app
        .book(&token(LAWYER, Role::Lawyer), CLIENT, &day(1, 10))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let base = app.url("");
    let short = |sub: &str, role| token_at(sub, role, Utc::now(), Duration::from_secs(4));
    let refreshing = Config {
        token_source: Some(TokenSource::new(|| async {
            Some(token_at(
                CLIENT,
                Role::Client,
                Utc::now(),
                Duration::from_secs(3600),
            ))
        })),
        ..Config::default()
    };
    let (lawyer, mut lawyer_events, lawyer_id) =
        join(&base, &token(LAWYER, Role::Lawyer), &id).await;
    let (client, mut client_events, client_id) =
        join_with(&base, &short(CLIENT, Role::Client), &id, &refreshing).await;
    // The same short token without a token source: closed at expiry.
    let (plain, mut plain_events) = Client::connect(&base, &short(CLIENT, Role::Client))
        .await
        .unwrap();

    let warning: Value = client_events
        .wait_for("auth:expiring", WAIT)
        .await
        .unwrap()
        .parse()
        .unwrap();
    assert!(warning["expiresAt"].is_string(), "{warning}");
    assert!(
        warning["closesInSeconds"].as_i64().unwrap() <= 5,
        "{warning}"
    );
    let closed: Value = plain_events
        .wait_for("session:closed", Duration::from_secs(10))
        .await
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(closed["reason"], "token_expired");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        plain.is_closed(),
        "the connection without a new token is closed"
    );

    // The refreshed connection is still in the call, past its first token's expiry.
    assert!(!client.is_closed());
    signals_flow_both_ways(
        (&lawyer, &lawyer_id, &mut lawyer_events),
        (&client, &client_id, &mut client_events),
        1,
    )
    .await;
    app.stop().await.unwrap();
}
