//! The HTTP listener's connections, through the real server's accept path: small frames are not
//! held back by Nagle, slow and idle connections are closed, connections are capped in total and
//! per client address while those already open are still served, WebSockets included.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    net::{IpAddr, SocketAddr},
    time::{Duration, Instant},
};

use common::*;
use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
};
use wakili_client::{Client, Config};
use wakili_core::Role;
use wakili_db::Backend;

/// A raw connection from `from` (any loopback address: each acts as its own client on Linux).
async fn connect_from(addr: SocketAddr, from: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(from.parse().unwrap(), 0))
        .unwrap();
    socket.connect(addr).await.unwrap()
}

/// Sends `GET path` on a keep-alive connection and reads the answer: status and body, or `None`
/// when the server closed the connection instead of answering.
async fn get(stream: &mut TcpStream, path: &str) -> Option<(u16, String)> {
    let request = format!("GET {path} HTTP/1.1\r\nhost: wakili\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    read_response(stream).await
}

async fn read_response(stream: &mut TcpStream) -> Option<(u16, String)> {
    let mut data = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_string();
            let status = head.split(' ').nth(1)?.parse().ok()?;
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .expect("responses carry content-length");
            while data.len() < end + 4 + length {
                let n = stream.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                data.extend_from_slice(&chunk[..n]);
            }
            let body = String::from_utf8_lossy(&data[end + 4..end + 4 + length]).to_string();
            return Some((status, body));
        }
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .expect("an answer or a close within 10 s")
            .ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&chunk[..n]);
    }
}

/// Whether the server closes `stream` within `limit` (reads until EOF or a reset).
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 1024];
    tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// A connection opened now must not be served: the server closes it or answers 503.
async fn assert_refused(stream: &mut TcpStream, what: &str) {
    match get(stream, "/healthz").await {
        None => {}
        Some((status, body)) => {
            assert_eq!(status, 503, "{what}: {body}");
            assert!(body.contains("unavailable"), "{what}: {body}");
            assert!(
                closed_within(stream, Duration::from_secs(2)).await,
                "{what}"
            );
        }
    }
}

/// `name{labels} value` from the server's /metrics, read on `stream`.
async fn metric(stream: &mut TcpStream, series: &str) -> f64 {
    let (status, text) = get(stream, "/metrics").await.expect("metrics answered");
    assert_eq!(status, 200);
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{series} not in /metrics:\n{text}"))
}

/// Lets the test harness's own connections (readiness polling) close.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(500)).await;
}

#[tokio::test]
async fn answers_written_back_to_back_are_not_held_back_by_nagle() {
    // The pattern of a call: B sends a signal and gets its ack; A answers at once, so the server
    // writes A's answer to B a moment after the ack. B sends as often as it receives, so its
    // TCP stack delays ACKs to piggyback them (Linux: 40 ms). Without TCP_NODELAY on the
    // server's socket, the answer waits for the ACK of the ack: about 40 ms per round trip.
    let app = spawn_app(Backend::Sqlite).await;
    let booked = app
        .book(&token("lawyer-n", Role::Lawyer), "client-n", &day(1, 10))
        .await;
    let join = json!({"consultationId": booked["id"]});
    let base = app.url("");
    let (a, mut a_events) = Client::connect(&base, &token("lawyer-n", Role::Lawyer))
        .await
        .unwrap();
    let (b, mut b_events) = Client::connect(&base, &token("client-n", Role::Client))
        .await
        .unwrap();
    let a_id = a.call_ok("consultation:join", &join).await.unwrap()["participantId"].clone();
    let b_id = b.call_ok("consultation:join", &join).await.unwrap()["participantId"].clone();
    let candidate = "candidate:1 1 udp 2122260223 192.0.2.1 54321 typ host";
    let answering = tokio::spawn(async move {
        while let Ok(signal) = a_events.wait_for("signal", Duration::from_secs(30)).await {
            let signal: serde_json::Value = signal.parse().unwrap();
            let answer = json!({"to": b_id, "type": "candidate",
                "payload": {"candidate": candidate, "seq": signal["payload"]["seq"]}});
            a.emit("signal", &answer).await.unwrap();
        }
    });
    const ROUNDS: usize = 40;
    let mut round_trips = Vec::new();
    for seq in 0..ROUNDS {
        let started = Instant::now();
        let signal = json!({"to": a_id, "type": "candidate",
            "payload": {"candidate": candidate, "seq": seq}});
        b.call_ok("signal", &signal).await.unwrap();
        let answer = b_events
            .wait_for("signal", Duration::from_secs(10))
            .await
            .unwrap();
        round_trips.push(started.elapsed());
        let answer: serde_json::Value = answer.parse().unwrap();
        assert_eq!(answer["payload"]["seq"], seq);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    answering.abort();
    round_trips.sort();
    let p50 = round_trips[ROUNDS / 2];
    let slow = round_trips
        .iter()
        .filter(|d| **d > Duration::from_millis(25))
        .count();
    eprintln!(
        "round trips: p50 {p50:?}, max {:?}, over 25 ms: {slow} of {ROUNDS}",
        round_trips[ROUNDS - 1]
    );
    // Nagle shows as most round trips near 40 ms; scheduling noise on a busy machine as a few.
    assert!(
        slow <= ROUNDS / 4,
        "{slow} of {ROUNDS} round trips took over 25 ms (p50 {p50:?})"
    );
}

#[tokio::test]
async fn slow_header_connections_are_closed_within_the_header_timeout() {
    let timeout = Duration::from_secs(1);
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.http.header_read_timeout = timeout;
    })
    .await;
    let addr = app.addr;
    let started = Instant::now();
    // 40 slowloris connections: a request line, then one header byte every 200 ms.
    let slow: Vec<_> = (0..40)
        .map(|_| {
            tokio::spawn(async move {
                let mut stream = TcpStream::connect(addr).await.unwrap();
                let opened = Instant::now();
                stream
                    .write_all(b"GET /healthz HTTP/1.1\r\nhost: wakili\r\nx-slow: ")
                    .await
                    .unwrap();
                let mut buf = [0u8; 64];
                loop {
                    tokio::select! {
                        read = stream.read(&mut buf) => match read {
                            Ok(0) | Err(_) => return Some(opened.elapsed()),
                            Ok(_) => panic!("a slow request was answered"),
                        },
                        () = tokio::time::sleep(Duration::from_millis(200)) => {
                            if stream.write_all(b"a").await.is_err() {
                                return Some(opened.elapsed());
                            }
                            if opened.elapsed() > Duration::from_secs(10) {
                                return None;
                            }
                        }
                    }
                }
            })
        })
        .collect();
    // Meanwhile the server answers others.
    let status = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(status.status(), 200);
    let mut lifetimes = Vec::new();
    for task in slow {
        lifetimes.push(task.await.unwrap().expect("closed within 10 s"));
    }
    let longest = lifetimes.iter().max().unwrap();
    let shortest = lifetimes.iter().min().unwrap();
    eprintln!("slow connections lived {shortest:?} to {longest:?}");
    assert!(
        *shortest >= timeout - Duration::from_millis(50),
        "{shortest:?}"
    );
    assert!(
        *longest < timeout + Duration::from_millis(1500),
        "{longest:?} for a {timeout:?} header timeout (all done {:?} after start)",
        started.elapsed()
    );
    let mut probe = TcpStream::connect(addr).await.unwrap();
    let closed = metric(
        &mut probe,
        "wakili_http_connections_timed_out_total{limit=\"header_read_timeout\"}",
    )
    .await;
    assert!(closed >= 40.0, "{closed}");
}

#[tokio::test]
async fn idle_keep_alive_connections_close_while_websockets_stay() {
    let idle = Duration::from_secs(1);
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.http.idle_timeout = idle;
    })
    .await;
    let (socket, _events) = Client::connect(&app.url(""), &token("lawyer-i", Role::Lawyer))
        .await
        .unwrap();
    let mut idle_conn = TcpStream::connect(app.addr).await.unwrap();
    let mut busy_conn = TcpStream::connect(app.addr).await.unwrap();
    assert_eq!(get(&mut idle_conn, "/healthz").await.unwrap().0, 200);
    let answered = Instant::now();
    // A connection with a request every 400 ms outlives the idle timeout several times over.
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(
            get(&mut busy_conn, "/healthz").await.map(|r| r.0),
            Some(200),
            "a connection in use is kept"
        );
    }
    // The idle one was closed after about a second.
    assert!(closed_within(&mut idle_conn, Duration::from_millis(10)).await);
    assert!(answered.elapsed() >= idle);
    // The Socket.IO WebSocket sent nothing for over three idle timeouts and still works.
    assert!(!socket.is_closed());
    let answer = socket
        .call("consultation:join", &json!({"consultationId": "nope"}))
        .await
        .unwrap();
    assert_eq!(answer["ok"], false, "{answer}");
    let closed = metric(
        &mut busy_conn,
        "wakili_http_connections_timed_out_total{limit=\"idle_timeout\"}",
    )
    .await;
    assert!(closed >= 1.0, "{closed}");
}

#[tokio::test]
async fn at_the_total_cap_new_connections_are_refused_and_open_ones_served() {
    const CAP: usize = 4;
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.http.max_connections = CAP as u32;
        s.http.max_connections_per_ip = 0;
    })
    .await;
    settle().await;
    // A Socket.IO WebSocket holds one of the slots.
    let (socket, _events) = Client::connect(&app.url(""), &token("lawyer-c", Role::Lawyer))
        .await
        .unwrap();
    let mut open = Vec::new();
    for _ in 1..CAP {
        let mut stream = TcpStream::connect(app.addr).await.unwrap();
        assert_eq!(get(&mut stream, "/healthz").await.unwrap().0, 200);
        open.push(stream);
    }
    let started = Instant::now();
    let mut extra = TcpStream::connect(app.addr).await.unwrap();
    assert_refused(&mut extra, "connection over the cap").await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "refused promptly"
    );
    // Those already connected are served.
    assert_eq!(get(&mut open[0], "/healthz").await.unwrap().0, 200);
    let answer = socket
        .call("consultation:join", &json!({"consultationId": "nope"}))
        .await
        .unwrap();
    assert_eq!(answer["ok"], false);
    let refused = metric(
        &mut open[1],
        "wakili_http_connections_refused_total{cap=\"max_connections\"}",
    )
    .await;
    assert_eq!(refused, 1.0);
    // Once one closes, a new one gets in.
    socket.close().await;
    drop(socket);
    let mut admitted = false;
    for _ in 0..40 {
        let mut next = TcpStream::connect(app.addr).await.unwrap();
        if get(&mut next, "/healthz").await.map(|r| r.0) == Some(200) {
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(admitted, "a freed slot is reused");
}

#[tokio::test]
async fn per_address_cap_refuses_one_client_and_not_the_others() {
    const CAP: usize = 3;
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.http.max_connections_per_ip = CAP as u32;
    })
    .await;
    // 127.0.0.2: a WebSocket and two keep-alive connections fill its allowance.
    let config = Config {
        local_address: Some("127.0.0.2".parse::<IpAddr>().unwrap()),
        ..Config::default()
    };
    let (socket, _events) =
        Client::connect_with(&app.url(""), &token("lawyer-p", Role::Lawyer), &config)
            .await
            .unwrap();
    let mut mine = Vec::new();
    for _ in 1..CAP {
        let mut stream = connect_from(app.addr, "127.0.0.2").await;
        assert_eq!(get(&mut stream, "/healthz").await.unwrap().0, 200);
        mine.push(stream);
    }
    let mut extra = connect_from(app.addr, "127.0.0.2").await;
    assert_refused(&mut extra, "a fourth connection from 127.0.0.2").await;
    // Its open connections are still served, and other clients are not affected.
    assert_eq!(get(&mut mine[0], "/healthz").await.unwrap().0, 200);
    assert!(!socket.is_closed());
    let mut others = Vec::new();
    for _ in 0..CAP {
        let mut stream = connect_from(app.addr, "127.0.0.3").await;
        assert_eq!(get(&mut stream, "/healthz").await.unwrap().0, 200);
        others.push(stream);
    }
    // 127.0.0.1 (this host, exempt by default) is not capped per address.
    for _ in 0..CAP + 2 {
        let mut stream = connect_from(app.addr, "127.0.0.1").await;
        assert_eq!(get(&mut stream, "/healthz").await.unwrap().0, 200);
        others.push(stream);
    }
    let refused = metric(
        &mut others[0],
        "wakili_http_connections_refused_total{cap=\"max_connections_per_ip\"}",
    )
    .await;
    assert_eq!(refused, 1.0);
}
