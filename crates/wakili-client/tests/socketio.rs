#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The client against a real Socket.IO server (socketioxide) started in each test: token
//! refusal, acknowledgements, events in order, heartbeat, timeouts and both ways of closing.

use std::time::Duration;

use serde_json::{Value, json};
use socketioxide::{
    SocketIo,
    extract::{AckSender, Data, SocketRef, TryData},
    handler::ConnectHandler,
};
use wakili_client::{Client, ClientError, Config};

const GOOD_TOKEN: &str = "good-token";

#[derive(Debug)]
struct Unauthorized;

impl std::fmt::Display for Unauthorized {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("unauthorized")
    }
}

/// Checks the token and registers every handler before the CONNECT ack (DEVELOPERS.md: an
/// event sent right after the ack must find its handler).
async fn authenticate(
    socket: SocketRef,
    TryData(auth): TryData<Value>,
) -> Result<(), Unauthorized> {
    match auth {
        Ok(auth) if auth["token"] == GOOD_TOKEN => {}
        _ => return Err(Unauthorized),
    }
    socket.on("echo", async |Data(data): Data<Value>, ack: AckSender| {
        let _ = ack.send(&json!({"ok": true, "echo": data}));
    });
    socket.on("deny", async |ack: AckSender| {
        let _ =
            ack.send(&json!({"ok": false, "error": {"code": "forbidden", "message": "not yours"}}));
    });
    socket.on("silent", async || {});
    socket.on(
        "push",
        async |socket: SocketRef, Data(data): Data<Value>| {
            for i in 0..3 {
                let _ = socket.emit("pushed", &json!({"i": i, "data": data}));
            }
            let _ = socket.emit("bare", &());
        },
    );
    socket.on("kick", async |socket: SocketRef| {
        let _ = socket.disconnect();
    });
    Ok(())
}

async fn start_server(ping: Option<Duration>) -> String {
    let mut builder = SocketIo::builder();
    if let Some(every) = ping {
        builder = builder.ping_interval(every).ping_timeout(every);
    }
    let (layer, io) = builder.build_layer();
    io.ns("/", (async || {}).with(authenticate));
    let app = axum::Router::new().layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}")
}

#[tokio::test]
async fn a_wrong_token_is_refused_with_the_servers_reason() {
    let url = start_server(None).await;
    match Client::connect(&url, "forged").await {
        Err(ClientError::Refused(message)) => assert_eq!(message, "unauthorized"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn call_returns_the_acknowledgement_and_call_ok_types_refusals() {
    let url = start_server(None).await;
    let (client, _events) = Client::connect(&url, GOOD_TOKEN).await.unwrap();

    let answer = client.call("echo", &json!({"n": 1})).await.unwrap();
    assert_eq!(answer, json!({"ok": true, "echo": {"n": 1}}));
    let answer = client.call_ok("echo", &"text").await.unwrap();
    assert_eq!(answer["echo"], "text");
    let raw = client.call_raw("echo", &[1, 2]).await.unwrap();
    assert_eq!(raw.get(), r#"{"echo":[1,2],"ok":true}"#);

    match client.call_ok("deny", &()).await {
        Err(ClientError::Rejected { code, message }) => {
            assert_eq!(
                (code.as_str(), message.as_str()),
                ("forbidden", "not yours")
            );
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    client.close().await;
}

#[tokio::test]
async fn concurrent_calls_on_one_connection_each_get_their_own_answer() {
    let url = start_server(None).await;
    let (client, _events) = Client::connect(&url, GOOD_TOKEN).await.unwrap();
    let calls = (0..100).map(|i| {
        let client = client.clone();
        tokio::spawn(async move { (i, client.call_ok("echo", &i).await.unwrap()) })
    });
    for call in calls {
        let (i, answer) = call.await.unwrap();
        assert_eq!(answer["echo"], i);
    }
}

#[tokio::test]
async fn events_arrive_in_order_and_wait_for_skips_others() {
    let url = start_server(None).await;
    let (client, mut events) = Client::connect(&url, GOOD_TOKEN).await.unwrap();
    client.emit("push", &"hello").await.unwrap();
    for i in 0..3 {
        let event = events.next().await.unwrap();
        assert_eq!(event.name, "pushed");
        let data: Value = event.parse().unwrap();
        assert_eq!(data, json!({"i": i, "data": "hello"}));
    }
    let bare = events.next().await.unwrap();
    assert_eq!((bare.name.as_str(), bare.data.get()), ("bare", "null"));

    client.emit("push", &"again").await.unwrap();
    let bare = events
        .wait_for("bare", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(bare.name, "bare");
    match events.wait_for("never", Duration::from_millis(100)).await {
        Err(ClientError::Timeout { event, .. }) => assert_eq!(event, "never"),
        other => panic!("expected a timeout, got {other:?}"),
    }
}

#[tokio::test]
async fn a_handler_sees_events_on_the_reader_task() {
    let url = start_server(None).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let client =
        Client::connect_with_handler(&url, GOOD_TOKEN, &Config::default(), move |name, data| {
            tx.send((name.to_owned(), data.get().to_owned())).unwrap();
        })
        .await
        .unwrap();
    client.emit("push", &1).await.unwrap();
    let (name, data) = rx.recv().await.unwrap();
    assert_eq!(name, "pushed");
    assert_eq!(data, r#"{"data":1,"i":0}"#);
}

#[tokio::test]
async fn pings_are_answered_so_the_server_keeps_the_connection() {
    // The server drops a client that misses one pong: after 100 ms + 100 ms.
    let url = start_server(Some(Duration::from_millis(100))).await;
    let (client, _events) = Client::connect(&url, GOOD_TOKEN).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(!client.is_closed());
    assert_eq!(client.call_ok("echo", &5).await.unwrap()["echo"], 5);
}

#[tokio::test]
async fn an_unanswered_call_times_out() {
    let url = start_server(None).await;
    let config = Config {
        ack_timeout: Duration::from_millis(200),
        ..Config::default()
    };
    let (client, _events) = Client::connect_with(&url, GOOD_TOKEN, &config)
        .await
        .unwrap();
    match client.call("silent", &()).await {
        Err(ClientError::Timeout { event, after }) => {
            assert_eq!(event, "silent");
            assert_eq!(after, Duration::from_millis(200));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    // The connection is still usable.
    assert!(client.call_ok("echo", &0).await.is_ok());
}

#[tokio::test]
async fn a_server_disconnect_ends_events_and_later_calls() {
    let url = start_server(None).await;
    let (client, mut events) = Client::connect(&url, GOOD_TOKEN).await.unwrap();
    client.emit("kick", &()).await.unwrap();
    let end = tokio::time::timeout(Duration::from_secs(5), events.next()).await;
    assert!(matches!(end, Ok(None)), "{end:?}");
    assert!(client.is_closed());
    assert!(matches!(
        client.call("echo", &1).await,
        Err(ClientError::Closed)
    ));
}

#[tokio::test]
async fn close_ends_the_connection_for_both_sides() {
    let url = start_server(None).await;
    let (client, mut events) = Client::connect(&url, GOOD_TOKEN).await.unwrap();
    client.close().await;
    assert!(client.is_closed());
    assert!(matches!(
        client.emit("echo", &1).await,
        Err(ClientError::Closed)
    ));
    let end = tokio::time::timeout(Duration::from_secs(5), events.next()).await;
    assert!(matches!(end, Ok(None)), "{end:?}");
}

#[tokio::test]
async fn connections_can_come_from_a_chosen_local_address() {
    let url = start_server(None).await;
    let config = Config {
        local_address: Some("127.0.0.2".parse().unwrap()),
        ..Config::default()
    };
    let (client, _events) = Client::connect_with(&url, GOOD_TOKEN, &config)
        .await
        .unwrap();
    assert_eq!(client.call_ok("echo", &7).await.unwrap()["echo"], 7);
}

#[tokio::test]
async fn unreachable_servers_and_bad_urls_are_reported() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    assert!(matches!(
        Client::connect(&format!("http://127.0.0.1:{port}"), GOOD_TOKEN).await,
        Err(ClientError::Connect { .. })
    ));
    assert!(matches!(
        Client::connect("https://127.0.0.1:1", GOOD_TOKEN).await,
        Err(ClientError::Url { .. })
    ));
}
