//! Refused Socket.IO handshakes leave nothing behind in the `wakili` process: an attacker without
//! a token opens Engine.IO sessions (polling and WebSocket), sends CONNECT with a bad token, reads
//! the refusal, and walks away: over polling it just stops, over WebSocket it either closes the
//! connection or leaves it open without answering. The server closes those sessions itself
//! within its connect timeout (socketioxide's default of 45 s let them pile up), and repeated
//! rounds of refusals do not grow its memory (VmRSS of the child process).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::Server;
use futures_util::{SinkExt, StreamExt, stream};
use tokio_tungstenite::tungstenite::Message;

/// Refusals per transport.
const REFUSALS: usize = 1_000;
/// At once.
const CONCURRENCY: usize = 50;
/// How long the server may take to close a refused session (its connect timeout, with margin).
const CLOSED_WITHIN: Duration = Duration::from_secs(20);

fn rss_kib(server: &Server) -> u64 {
    let rss = server.status_field("VmRSS");
    rss.expect("VmRSS in /proc/<pid>/status").parse().unwrap()
}

/// Handshake, CONNECT with a bad token, read the refusal; returns the session id, left open.
async fn refused_over_polling(http: &reqwest::Client, base: &str) -> String {
    let url = format!("{base}/socket.io/?EIO=4&transport=polling");
    let open = http.get(&url).send().await.unwrap().text().await.unwrap();
    let json = open.strip_prefix('0').expect("an Engine.IO open packet");
    let sid = serde_json::from_str::<serde_json::Value>(json).unwrap()["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let session = format!("{url}&sid={sid}");
    let posted = http
        .post(&session)
        .body(r#"40{"token":"not-a-valid-token"}"#)
        .send()
        .await
        .unwrap();
    assert!(posted.status().is_success(), "POST 40: {}", posted.status());
    // The first poll may bring the server's first ping instead; the refusal follows.
    for _ in 0..3 {
        let answer = http
            .get(&session)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if answer.contains(r#"44{"message":"unauthorized"}"#) {
            return session;
        }
        assert!(answer.split('\u{1e}').all(|p| p == "2"), "{answer}");
    }
    panic!("no connect error for {session}");
}

/// The same over WebSocket. `hold`: keep the connection open (not answering pings) until the
/// server closes it, and return how long that took; otherwise close it after the refusal.
async fn refused_over_websocket(addr: &str, hold: bool) -> Duration {
    let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(url, tcp).await.unwrap();
    ws.send(Message::text(r#"40{"token":"not-a-valid-token"}"#))
        .await
        .unwrap();
    let refused_at = Instant::now();
    let mut refused = false;
    let closed = tokio::time::timeout(CLOSED_WITHIN, async {
        while let Some(Ok(message)) = ws.next().await {
            match message {
                Message::Text(text) if text.starts_with("44") => {
                    refused = true;
                    if !hold {
                        break;
                    }
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
    })
    .await;
    assert!(refused, "the CONNECT was answered with a connect error");
    assert!(
        closed.is_ok(),
        "the server did not close a refused WebSocket session within {CLOSED_WITHIN:?}"
    );
    refused_at.elapsed()
}

/// `n` refusals over polling and `n` over WebSocket (walking away), plus `n / 10` WebSocket
/// connections held open; returns the polling sessions once the held ones were closed.
async fn round(http: &reqwest::Client, base: &str, addr: &str, n: usize) -> Vec<String> {
    let held = tokio::spawn({
        let addr = addr.to_owned();
        async move {
            stream::iter(0..n / 10)
                .map(|_| refused_over_websocket(&addr, true))
                .buffer_unordered(n / 10)
                .collect::<Vec<Duration>>()
                .await
        }
    });
    let sessions: Vec<String> = stream::iter(0..n)
        .map(|_| refused_over_polling(http, base))
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    stream::iter(0..n)
        .map(|_| refused_over_websocket(addr, false))
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<Duration>>()
        .await;
    let waits = held.await.unwrap();
    let longest = waits.iter().max().copied().unwrap_or_default();
    eprintln!(
        "{} refused WebSocket sessions left open were closed by the server, the last after {longest:?}",
        waits.len()
    );
    sessions
}

/// Every polling session is gone: the server no longer knows its id.
async fn all_closed(http: &reqwest::Client, sessions: &[String]) {
    let deadline = Instant::now() + CLOSED_WITHIN;
    for session in sessions {
        loop {
            let status = http.get(session).send().await.unwrap().status();
            if status.is_client_error() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "a refused polling session is still open after {CLOSED_WITHIN:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_handshakes_are_closed_and_leave_no_memory_behind() {
    let cwd = tempfile::tempdir().unwrap();
    // One malloc arena: glibc otherwise keeps a high-water mark per thread arena, and RSS would
    // measure where the runtime's threads happened to free memory rather than what is live.
    let server = Server::start_with_env(
        cwd.path(),
        &[],
        &[("GLIBC_TUNABLES", "glibc.malloc.arena_max=1")],
    );
    let base = server.base.clone();
    let addr = base.trim_start_matches("http://").to_owned();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    // Two rounds set the high-water mark (allocator, buffers, thread pools); a third must not
    // add to it. A session left behind would cost about 14 KiB: 28 MiB for this round.
    for _ in 0..2 {
        let warm = round(&http, &base, &addr, REFUSALS).await;
        all_closed(&http, &warm).await;
    }
    let before = rss_kib(&server);
    let sessions = round(&http, &base, &addr, REFUSALS).await;
    all_closed(&http, &sessions).await;
    let after = rss_kib(&server);
    let grown = after.saturating_sub(before);
    eprintln!(
        "VmRSS {before} KiB → {after} KiB after {REFUSALS} refusals over polling and {REFUSALS} over WebSocket"
    );
    assert!(
        grown < 6 * 1024,
        "{} refused handshakes grew VmRSS by {grown} KiB ({before} → {after})",
        2 * REFUSALS
    );
    // And the server is healthy.
    let health = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
}
