//! What participants get to set up media: ICE servers with working TURN credentials, profiles,
//! and the mobile start-up configuration.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wakili_core::Role;
use wakili_db::Backend;

async fn webrtc_config(app: &TestApp, token: &str, consultation: &str) -> (StatusCode, Value) {
    app.call(
        Method::GET,
        &format!("/api/v1/webrtc/config?consultationId={consultation}"),
        token,
        None,
    )
    .await
}

#[tokio::test]
async fn participants_get_ice_servers_with_working_turn_credentials() {
    let app = spawn_app(Backend::Sqlite).await;
    let lawyer = token("lawyer-1", Role::Lawyer);
    let client = token("client-1", Role::Client);
    let booked = app.book(&lawyer, "client-1", &day(1, 9)).await;
    let id = booked["id"].as_str().unwrap();

    let response = app
        .request(
            Method::GET,
            &format!("/api/v1/webrtc/config?consultationId={id}"),
            &client,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["cache-control"], "no-store");
    let (status, config) = read(response).await;
    assert_eq!(status, StatusCode::OK, "{config}");
    let servers = config["iceServers"].as_array().unwrap();
    let (udp, tcp) = app.turn_ports();
    assert!(udp != 0 && tcp != 0, "the embedded server listens");
    assert_eq!(
        servers[0],
        json!({"urls": [format!("stun:127.0.0.1:{udp}")]})
    );
    let turn = &servers[1];
    assert_eq!(
        turn["urls"],
        json!([
            format!("turn:127.0.0.1:{udp}?transport=udp"),
            format!("turn:127.0.0.1:{tcp}?transport=tcp")
        ])
    );
    // The TURN REST API: <expiry>:<user>, base64(HMAC-SHA1(secret, username)).
    let username = turn["username"].as_str().unwrap();
    let (expiry, user) = username.split_once(':').unwrap();
    assert_eq!(user, "client-1");
    let expiry: i64 = expiry.parse().unwrap();
    let left = expiry - chrono::Utc::now().timestamp();
    assert!((1800..=3600).contains(&left), "valid for 30–60 min: {left}");
    assert_eq!(
        config["expiresAt"],
        json!(chrono::DateTime::from_timestamp(expiry, 0).unwrap())
    );
    let accepted = wakili_core::turn::verify(
        TURN_SECRET.as_bytes(),
        username,
        chrono::Utc::now(),
        std::time::Duration::ZERO,
    )
    .unwrap();
    assert_eq!(
        turn["credential"].as_str(),
        Some(accepted.password.as_str())
    );
    assert!(
        !config.to_string().contains(TURN_SECRET),
        "the secret never leaves the server"
    );

    assert_eq!(config["iceTransportPolicy"], "all");
    assert_eq!(config["defaultProfile"], "medium");
    assert_eq!(config["qualityProfiles"]["low"]["maxBitrate"], 300_000);
    assert_eq!(config["simulcast"]["enabled"], true);
    assert_eq!(
        config["simulcast"]["encodings"].as_array().unwrap().len(),
        3
    );
    assert_eq!(config["audio"]["dtx"], true);
    assert_eq!(config["screenShare"]["contentHint"], "detail");

    // Strangers learn nothing; bad requests say why.
    let (status, _) = webrtc_config(&app, &token("lawyer-2", Role::Lawyer), id).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = webrtc_config(&app, &token("admin-1", Role::Admin), id).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app
        .call(Method::GET, "/api/v1/webrtc/config", &client, None)
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_query")
    );
    let (status, _) = app
        .http
        .get(app.url(&format!("/api/v1/webrtc/config?consultationId={id}")))
        .send()
        .await
        .map(|r| (r.status(), ()))
        .unwrap();
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The lawyer picks the profile; the config follows; nobody else may.
    let profile_url = format!("/api/v1/consultations/{id}/quality-profile");
    let (status, _) = app
        .call(
            Method::PUT,
            &profile_url,
            &client,
            Some(json!({"profile": "low"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = app
        .call(
            Method::PUT,
            &profile_url,
            &lawyer,
            Some(json!({"profile": "ultra"})),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("high, low, medium"),
        "{body}"
    );
    let (status, updated) = app
        .call(
            Method::PUT,
            &profile_url,
            &lawyer,
            Some(json!({"profile": "low"})),
        )
        .await;
    assert_eq!(
        (status, &updated["qualityProfile"]),
        (StatusCode::OK, &json!("low"))
    );
    let (_, config) = webrtc_config(&app, &client, id).await;
    assert_eq!(config["defaultProfile"], "low");
    assert_eq!(
        config["simulcast"],
        json!({"enabled": false, "encodings": []}),
        "360p sends one layer"
    );
    let (_, log) = app
        .call(
            Method::GET,
            &format!("/api/v1/consultations/{id}/audit"),
            &lawyer,
            None,
        )
        .await;
    assert_eq!(
        log.as_array().unwrap().last().unwrap()["detail"]["qualityProfile"],
        "low"
    );

    // Once over, there is nothing to configure.
    app.call(
        Method::POST,
        &format!("/api/v1/consultations/{id}/start"),
        &lawyer,
        None,
    )
    .await;
    app.call(
        Method::POST,
        &format!("/api/v1/consultations/{id}/end"),
        &lawyer,
        None,
    )
    .await;
    let (status, body) = webrtc_config(&app, &client, id).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "consultation_closed")
    );
    let (status, _) = app
        .call(
            Method::PUT,
            &profile_url,
            &lawyer,
            Some(json!({"profile": "high"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn relay_only_and_external_servers_are_configurable() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.ice.transport_policy = wakili_core::webrtc::IceTransportPolicy::Relay;
        s.turn.enabled = false;
        s.ice.turn_servers = vec![wakili_settings::ExternalTurn {
            urls: vec!["turns:turn.example.com:5349?transport=tcp".into()],
            auth: wakili_settings::ExternalTurnAuth::Rest,
            username: None,
            credential: None,
        }];
    })
    .await;
    let lawyer = token("lawyer-1", Role::Lawyer);
    let booked = app.book(&lawyer, "client-1", &day(1, 9)).await;
    let (status, config) = webrtc_config(&app, &lawyer, booked["id"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(config["iceTransportPolicy"], "relay");
    let servers = config["iceServers"].as_array().unwrap();
    assert_eq!(servers.len(), 1, "no embedded server: {servers:?}");
    assert_eq!(
        servers[0]["urls"],
        json!(["turns:turn.example.com:5349?transport=tcp"])
    );
    assert!(
        servers[0]["username"]
            .as_str()
            .unwrap()
            .ends_with(":lawyer-1")
    );
}

#[tokio::test]
async fn mobile_config_is_versioned_with_etags() {
    let app = spawn_app(Backend::Sqlite).await;
    let client = token("client-1", Role::Client);
    let response = app
        .request(Method::GET, "/api/v1/mobile/config", &client)
        .send()
        .await
        .unwrap();
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    let (status, config) = read(response).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        config["minVersions"],
        json!({"android": "1.0.0", "ios": "1.0.0"})
    );
    assert_eq!(config["features"]["recording"], true);
    assert_eq!(config["push"]["enabled"], false);
    assert!(
        config["webrtc"]["iceServers"][1]["username"]
            .as_str()
            .unwrap()
            .ends_with(":client-1")
    );
    let server_time: chrono::DateTime<chrono::Utc> =
        config["serverTime"].as_str().unwrap().parse().unwrap();
    assert!((chrono::Utc::now() - server_time).num_seconds().abs() < 5);

    // Unchanged: 304 without a body, for the plain and the weak form of the tag.
    for tag in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"other\", {etag}"),
    ] {
        let response = app
            .request(Method::GET, "/api/v1/mobile/config", &client)
            .header("if-none-match", tag.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED, "{tag}");
        assert_eq!(response.headers()["etag"].to_str().unwrap(), etag);
        assert!(response.bytes().await.unwrap().is_empty());
    }
    // Another user's config carries other credentials, so another tag.
    let other = app
        .request(
            Method::GET,
            "/api/v1/mobile/config",
            &token("client-2", Role::Client),
        )
        .header("if-none-match", etag.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::OK);
    assert_ne!(other.headers()["etag"].to_str().unwrap(), etag);
}

/// Runs coturn's `turnutils_uclient` with the credentials a participant got, against `port`,
/// relaying to a `turnutils_peer` on loopback. `extra`: transport flags (`-t`, `-S -E ca.pem`).
async fn relay_with(username: &str, credential: &str, port: u16, extra: &[&str]) -> String {
    use tokio::process::Command;
    let peer_port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _peer = Command::new("turnutils_peer")
        .args(["-L", "127.0.0.1", "-p", &peer_port.to_string()])
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("turnutils_peer (Debian package coturn; scripts/test installs it)");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (peer, port) = (peer_port.to_string(), port.to_string());
    let mut args = vec![
        "-u",
        username,
        "-w",
        credential,
        "-e",
        "127.0.0.1",
        "-r",
        &peer,
        "-p",
        &port,
        "-n",
        "50",
        "-m",
        "1",
        "-c",
    ];
    args.extend(extra);
    args.push("127.0.0.1");
    let output = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        Command::new("turnutils_uclient")
            .args(&args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("uclient finishes")
    .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test]
async fn handed_out_credentials_work_on_the_embedded_relay() {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.turn.allow_loopback_peers = true;
        s.turn.tls_listen = "127.0.0.1:0".parse().unwrap();
        s.turn.tls_cert_file = Some(cert.clone());
        s.turn.tls_key_file = Some(key.clone());
    })
    .await;
    let lawyer = token("lawyer-1", Role::Lawyer);
    let booked = app.book(&lawyer, "client-1", &day(1, 9)).await;
    let (_, config) = webrtc_config(&app, &lawyer, booked["id"].as_str().unwrap()).await;
    let turn = &config["iceServers"][1];
    let (username, credential) = (
        turn["username"].as_str().unwrap(),
        turn["credential"].as_str().unwrap(),
    );
    let urls: Vec<&str> = turn["urls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap())
        .collect();
    let port_of = |scheme: &str, transport: &str| -> u16 {
        let url = urls
            .iter()
            .find(|u| u.starts_with(scheme) && u.ends_with(transport))
            .unwrap_or_else(|| panic!("{scheme}…{transport} in {urls:?}"));
        let port = url.rsplit(':').next().unwrap();
        port.split('?').next().unwrap().parse().unwrap()
    };
    let udp = port_of("turn:", "transport=udp");
    let tcp = port_of("turn:", "transport=tcp");
    let tls = port_of("turns:", "transport=tcp");
    let ca = dir.path().join("cert.pem").display().to_string();
    for (port, flags) in [
        (udp, vec![]),
        (tcp, vec!["-t"]),
        (tls, vec!["-t", "-S", "-E", &ca]),
    ] {
        let output = relay_with(username, credential, port, &flags).await;
        assert!(
            output.contains("Total lost packets 0 (0.000000%)"),
            "{flags:?}: {output}"
        );
    }
    // A forged credential for the same username is refused.
    let output = relay_with(username, "Zm9yZ2VkLWNyZWRlbnRpYWw=", udp, &[]).await;
    assert!(output.contains("Cannot complete Allocation"), "{output}");

    // What the relay did is counted, for admins only.
    let (status, _) = app
        .call(Method::GET, "/api/v1/turn/stats", &lawyer, None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, stats) = app
        .call(
            Method::GET,
            "/api/v1/turn/stats",
            &token("admin-1", Role::Admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        stats["allocationsCreated"].as_u64().unwrap() >= 3,
        "{stats}"
    );
    assert!(
        stats["relayedPacketsToPeers"].as_u64().unwrap() >= 150,
        "{stats}"
    );
    assert!(
        stats["relayedBytesFromPeers"].as_u64().unwrap() > 0,
        "{stats}"
    );
    assert!(
        stats["rejectedAuth"].as_u64().unwrap() >= 1,
        "the forged attempt: {stats}"
    );
}

/// Issue 15: TURN accepted credentials up to 29 s after they expired, because it borrowed the
/// JWT leeway. Expired is expired now (`turn.credential_leeway` defaults to 0), whatever
/// `auth.leeway` says.
#[tokio::test]
async fn turn_credentials_are_refused_right_after_they_expire() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.turn.allow_loopback_peers = true;
        s.auth.leeway = std::time::Duration::from_secs(30);
    })
    .await;
    let (udp, _) = app.turn_ports();
    let user = wakili_core::UserId::parse("client-1").unwrap();
    let mint = |issued: chrono::DateTime<chrono::Utc>, ttl: u64| {
        wakili_core::turn::mint(
            TURN_SECRET.as_bytes(),
            &user,
            issued,
            std::time::Duration::from_secs(ttl),
        )
        .unwrap()
    };
    let now = chrono::Utc::now();
    let lapsed = mint(now - chrono::Duration::seconds(65), 60);
    let output = relay_with(&lapsed.username, &lapsed.credential, udp, &[]).await;
    assert!(
        output.contains("Cannot complete Allocation"),
        "expired 5 s ago: {output}"
    );
    let valid = mint(now, 600);
    let output = relay_with(&valid.username, &valid.credential, udp, &[]).await;
    assert!(
        output.contains("Total lost packets 0 (0.000000%)"),
        "{output}"
    );
}

/// The embedded relay judges credential expiry on the server's clock, the one that minted them,
/// not on its own reading of the system time (it used to call `Utc::now` itself).
#[tokio::test]
async fn the_relay_keeps_the_servers_time() {
    let db = wakili_testkit::db::TestDatabase::new(Backend::Sqlite).await;
    // The server's clock, three hours behind the real one (a test can move a server's time; the
    // relay must move with it).
    let clock = wakili_server::Clock::from_fn(|| chrono::Utc::now() - chrono::Duration::hours(3));
    // Prepared only: the embedded TURN server runs, no HTTP is needed.
    let prepared = Launch::new()
        .clock(clock.clone())
        .prepare(&db.url, |settings| {
            settings.turn.allow_loopback_peers = true
        })
        .await;
    let udp = prepared.state.ice.embedded().unwrap().udp_port;
    // What `/webrtc/config` hands out at the server's time: an hour-long credential that, by the
    // machine's own clock, expired at least 90 minutes ago.
    let issued = wakili_core::turn::mint(
        TURN_SECRET.as_bytes(),
        &wakili_core::UserId::parse("client-1").unwrap(),
        clock.now(),
        std::time::Duration::from_secs(3600),
    )
    .unwrap();
    let output = relay_with(&issued.username, &issued.credential, udp, &[]).await;
    assert!(
        output.contains("Total lost packets 0 (0.000000%)"),
        "{output}"
    );
    drop(prepared);
}
