//! The embedded server against coturn's own client tools (Debian package `coturn`):
//! `turnutils_stunclient`, `turnutils_uclient` and `turnutils_peer`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{process::Stdio, time::Duration};

use tokio::process::{Child, Command};
use wakili_turn::{PeerPolicy, RunningTurn, TurnConfig, start};

const SECRET: &str = "wakili-turn-test-secret";

async fn server(policy: PeerPolicy, cap: usize) -> RunningTurn {
    server_with_tls(policy, cap, None).await
}

async fn server_with_tls(
    policy: PeerPolicy,
    cap: usize,
    tls: Option<wakili_turn::TlsConfig>,
) -> RunningTurn {
    start(TurnConfig {
        udp: "127.0.0.1:0".parse().unwrap(),
        tcp: "127.0.0.1:0".parse().unwrap(),
        realm: "wakili".into(),
        secret: SECRET.as_bytes().to_vec(),
        leeway: Duration::ZERO,
        external_ip: None,
        policy,
        max_allocations_per_user: cap,
        clock: wakili_core::Clock::system(),
        tls,
        udp_sockets: 0,
        listen_backlog: wakili_net::DEFAULT_BACKLOG,
    })
    .await
    .unwrap()
}

const LOOPBACK: PeerPolicy = PeerPolicy {
    allow_loopback: true,
    allow_private: false,
    sfu: None,
};

fn tool(name: &str) -> Command {
    assert!(
        std::path::Path::new(&format!("/usr/bin/{name}")).exists(),
        "{name} is missing: install Debian's coturn package (scripts/test does)"
    );
    let mut cmd = Command::new(name);
    cmd.kill_on_drop(true).stdin(Stdio::null());
    cmd
}

/// `turnutils_peer` echoing on a free UDP port.
fn peer() -> (Child, u16) {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = tool("turnutils_peer")
        .args(["-L", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (child, port)
}

/// Runs `turnutils_uclient` and returns everything it printed.
async fn uclient(args: &[&str]) -> String {
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tool("turnutils_uclient").args(args).output(),
    )
    .await
    .expect("turnutils_uclient finishes")
    .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A figure from uclient's summary line `start_mclient: tot_send_msgs=N, tot_recv_msgs=M`.
fn total(output: &str, key: &str) -> u64 {
    let line = output
        .lines()
        .rev()
        .find(|l| l.contains("start_mclient: tot_send_msgs="))
        .unwrap_or_else(|| panic!("no summary in:\n{output}"));
    let value = line.split(&format!("{key}=")).nth(1).unwrap();
    value
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[derive(Clone, Copy, PartialEq)]
enum Transport {
    Udp,
    Tcp,
    Tls,
}

async fn relay_without_loss(transport: Transport) {
    // A certificate for 127.0.0.1 that uclient verifies (-E): TLS must really be TLS.
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, certified.cert.pem()).unwrap();
    let tls = (transport == Transport::Tls).then(|| wakili_turn::TlsConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        cert_chain_pem: certified.cert.pem().into_bytes(),
        key_pem: certified.signing_key.serialize_pem().into_bytes(),
    });
    let turn = server_with_tls(LOOPBACK, 100, tls).await;
    let (_peer, peer_port) = peer();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let port = match transport {
        Transport::Udp => turn.udp_addr(),
        Transport::Tcp => turn.tcp_addr(),
        Transport::Tls => turn.tls_addr().unwrap(),
    }
    .port()
    .to_string();
    let peer_port = peer_port.to_string();
    let ca = ca.display().to_string();
    let mut args = vec![
        "-W",
        SECRET,
        "-u",
        "alice",
        "-e",
        "127.0.0.1",
        "-r",
        &peer_port,
        "-p",
        &port,
        "-n",
        "100",
        "-m",
        "2",
        "-l",
        "170",
        "-c",
    ];
    match transport {
        Transport::Udp => {}
        Transport::Tcp => args.push("-t"),
        Transport::Tls => args.extend(["-t", "-S", "-E", &ca]),
    }
    args.push("127.0.0.1");
    let output = uclient(&args).await;
    assert!(
        output.contains("Total lost packets 0 (0.000000%)"),
        "{output}"
    );
    assert_eq!(total(&output, "tot_send_msgs"), 200, "{output}");
    assert_eq!(total(&output, "tot_recv_msgs"), 200, "{output}");
    let stats = turn.stats();
    assert!(stats.allocations_created >= 2, "{stats:?}");
    assert!(
        stats.relayed_packets_to_peers >= 200 && stats.relayed_packets_from_peers >= 200,
        "{stats:?}"
    );
    assert!(stats.relayed_bytes_to_peers >= 200 * 170, "{stats:?}");
    assert!(
        stats.fast_path_packets >= 150,
        "bound channels take the fast path: {stats:?}"
    );
    assert_eq!(
        (
            stats.rejected_auth,
            stats.rejected_peer,
            stats.rejected_quota
        ),
        (0, 0, 0)
    );
    turn.stop().await;
}

#[tokio::test]
async fn stun_binding_answers() {
    let turn = server(PeerPolicy::default(), 10).await;
    let output = tool("turnutils_stunclient")
        .args(["-p", &turn.udp_addr().port().to_string(), "127.0.0.1"])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("UDP reflexive addr: 127.0.0.1:"), "{text}");
}

#[tokio::test]
async fn relays_over_udp_without_loss() {
    relay_without_loss(Transport::Udp).await;
}

#[tokio::test]
async fn relays_over_tcp_without_loss() {
    relay_without_loss(Transport::Tcp).await;
}

#[tokio::test]
async fn relays_over_tls_without_loss() {
    relay_without_loss(Transport::Tls).await;
}

#[tokio::test]
async fn wrong_secret_and_expired_username_are_refused_with_401() {
    let turn = server(LOOPBACK, 100).await;
    let (_peer, peer_port) = peer();
    let port = turn.udp_addr().port().to_string();
    let peer_port = peer_port.to_string();
    let common = [
        "-e",
        "127.0.0.1",
        "-r",
        &peer_port,
        "-p",
        &port,
        "-n",
        "5",
        "-m",
        "1",
        "-c",
    ];

    let mut wrong = vec!["-W", "not-the-secret", "-u", "mallory"];
    wrong.extend(common);
    wrong.push("127.0.0.1");
    let output = uclient(&wrong).await;
    assert!(output.contains("Cannot complete Allocation"), "{output}");
    let after_wrong = turn.stats().rejected_auth;
    assert!(after_wrong > 0);

    // Genuine HMAC, but the expiry in the username has passed.
    let past = chrono::Utc::now() - chrono::Duration::hours(1);
    let expired = wakili_core::turn::mint(
        SECRET.as_bytes(),
        &wakili_core::UserId::parse("alice").unwrap(),
        past,
        Duration::from_secs(60),
    )
    .unwrap();
    let mut stale = vec!["-u", &expired.username, "-w", &expired.credential];
    stale.extend(common);
    stale.push("127.0.0.1");
    let output = uclient(&stale).await;
    assert!(output.contains("Cannot complete Allocation"), "{output}");
    assert!(turn.stats().rejected_auth > after_wrong);
    assert_eq!(turn.stats().allocations_created, 0);

    // The same kind of credentials, unexpired, work.
    let fresh = wakili_core::turn::mint(
        SECRET.as_bytes(),
        &wakili_core::UserId::parse("alice").unwrap(),
        chrono::Utc::now(),
        Duration::from_secs(600),
    )
    .unwrap();
    let mut good = vec!["-u", &fresh.username, "-w", &fresh.credential];
    good.extend(common);
    good.push("127.0.0.1");
    let output = uclient(&good).await;
    assert!(
        output.contains("Total lost packets 0 (0.000000%)"),
        "{output}"
    );
}

/// uclient as `alice` with the REST secret: `clients` sessions of 5 packets each to the peer.
async fn alice_to_peer(port: u16, peer_port: u16, clients: u32) -> String {
    let (port, peer_port, clients) = (port.to_string(), peer_port.to_string(), clients.to_string());
    uclient(&[
        "-W",
        SECRET,
        "-u",
        "alice",
        "-e",
        "127.0.0.1",
        "-r",
        &peer_port,
        "-p",
        &port,
        "-n",
        "5",
        "-m",
        &clients,
        "-c",
        "127.0.0.1",
    ])
    .await
}

#[tokio::test]
async fn loopback_peers_are_refused_by_default() {
    let turn = server(PeerPolicy::default(), 100).await;
    let (_peer, peer_port) = peer();
    let output = alice_to_peer(turn.udp_addr().port(), peer_port, 1).await;
    assert!(output.contains("403"), "{output}");
    assert!(turn.stats().rejected_peer > 0);
    assert_eq!(
        turn.stats().relayed_packets_to_peers,
        0,
        "nothing reached the peer"
    );
}

#[tokio::test]
async fn allocations_per_user_are_capped() {
    let turn = server(LOOPBACK, 1).await;
    let (_peer, peer_port) = peer();
    let output = alice_to_peer(turn.udp_addr().port(), peer_port, 3).await;
    let stats = turn.stats();
    assert_eq!(stats.allocations_created, 1, "{stats:?}\n{output}");
    assert!(stats.rejected_quota >= 1, "{stats:?}");
}
