//! Media through the embedded SFU, negotiated over Socket.IO as a client would: a consultation
//! booked with media mode `sfu`, its lawyer and client joined over signaling, each publishing
//! synthetic VP8 simulcast and Opus with `media:publish` and answering the server's
//! `media:offer`s, each receiving the other's audio and video over real UDP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{media::*, *};
use reqwest::Method;
use serde_json::{Value, json};
use wakili_client::Client as Socket;
use wakili_core::Role;
use wakili_db::Backend;
use wakili_testkit::webrtc::{Client as Browser, Codec, Kind, Publish};

#[tokio::test]
async fn a_consultation_in_sfu_mode_carries_both_parties_media_through_the_server() {
    let app = spawn_app(Backend::Sqlite).await;
    let lawyer = token("lawyer-1", Role::Lawyer);
    let client = token("client-1", Role::Client);
    let id = book(&app, &lawyer, "sfu").await;

    let (l, l_events, l_ack) = join(&app, &lawyer, &id).await;
    let (c, c_events, c_ack) = join(&app, &client, &id).await;
    assert_eq!(
        (l_ack["mediaMode"].as_str(), l_ack["topology"].as_str()),
        (Some("sfu"), Some("sfu"))
    );
    assert_eq!(c_ack["topology"], "sfu");
    let l_id = l_ack["participantId"].as_str().unwrap().to_owned();
    let c_id = c_ack["participantId"].as_str().unwrap().to_owned();

    let l_browser = publish(&app, l, l_events, &l_id).await;
    let c_browser = publish(&app, c, c_events, &c_id).await;
    media_flows((&l_browser, &l_id), (&c_browser, &c_id)).await;
    assert_eq!(app.metric("wakili_sfu_sessions").await, Some(2.0));

    // The lawyer ends the call: its media sessions end with it, not seconds later.
    end_over_api(&app, &lawyer, &id).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while app.metric("wakili_sfu_sessions").await != Some(0.0) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "SFU sessions still open after the end"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Ends `consultation` over the API, as its lawyer.
async fn end_over_api(app: &TestApp, lawyer: &str, consultation: &str) {
    let path = format!("/api/v1/consultations/{consultation}/end");
    let (status, body) = app.call(Method::POST, &path, lawyer, None).await;
    assert!(status.is_success(), "{body}");
}

/// Invites `user` to `consultation` as `role` (the lawyer's token).
async fn invite(app: &TestApp, lawyer: &str, consultation: &str, user: &str, role: &str) {
    let path = format!("/api/v1/consultations/{consultation}/participants/{user}");
    let (status, body) = app
        .call(Method::PUT, &path, lawyer, Some(json!({ "role": role })))
        .await;
    assert!(status.is_success(), "{body}");
}

#[tokio::test]
async fn invited_guests_join_an_observer_only_listens_and_a_removed_guest_is_out() {
    let app = spawn_app(Backend::Sqlite).await;
    let lawyer = token("lawyer-1", Role::Lawyer);
    let client = token("client-1", Role::Client);
    let interpreter = token("interp-1", Role::Client);
    let observer = token("trainee-1", Role::Lawyer);
    let id = book(&app, &lawyer, "auto").await;

    // Not yet invited: nothing.
    let (o, _) = Socket::connect(&app.url(""), &observer).await.unwrap();
    let answer = o
        .call("consultation:join", &json!({ "consultationId": id }))
        .await
        .unwrap();
    assert_eq!(answer["error"]["code"], "forbidden", "{answer}");
    o.close().await;
    invite(&app, &lawyer, &id, "interp-1", "interpreter").await;
    invite(&app, &lawyer, &id, "trainee-1", "observer").await;

    // The lawyer and the observer alone: the observer moves even two people to the SFU.
    let (l, mut l_events, l_ack) = join(&app, &lawyer, &id).await;
    assert_eq!(l_ack["topology"], "p2p");
    let (o, o_events, o_ack) = join(&app, &observer, &id).await;
    assert_eq!(o_ack["topology"], "sfu", "{o_ack}");
    let me = o_ack["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["userId"] == "trainee-1")
        .cloned()
        .unwrap();
    assert_eq!(me["role"], "observer");
    let topology = l_events.wait_for("media:topology", WAIT).await.unwrap();
    assert_eq!(topology.parse::<Value>().unwrap()["topology"], "sfu");
    let (c, c_events, c_ack) = join(&app, &client, &id).await;
    let (i, mut i_events, i_ack) = join(&app, &interpreter, &id).await;
    assert!(
        i_ack["waiting"] == false,
        "the lawyer is there, so the interpreter enters: {i_ack}"
    );
    let l_id = l_ack["participantId"].as_str().unwrap().to_owned();
    let c_id = c_ack["participantId"].as_str().unwrap().to_owned();
    let o_id = o_ack["participantId"].as_str().unwrap().to_owned();
    let i_id = i_ack["participantId"].as_str().unwrap().to_owned();

    // An observer sends no signal, and an offer that sends media is refused.
    let answer = o
        .call(
            "signal",
            &json!({"to": l_id, "type": "offer", "payload": {"type": "offer", "sdp": "v=0"}}),
        )
        .await
        .unwrap();
    assert_eq!(answer["error"]["code"], "forbidden", "{answer}");
    let sending = wakili_testkit::webrtc::offer(
        &Publish::camera_and_mic(),
        &o_id,
        &[Codec::Vp8, Codec::Opus],
    );
    let answer = o
        .call("media:publish", &json!({ "sdp": sending.sdp }))
        .await
        .unwrap();
    assert_eq!(answer["error"]["code"], "listen_only", "{answer}");

    // Everyone else publishes; the observer receives them all, and no one receives it.
    let l_browser = publish(&app, l.clone(), l_events, &l_id).await;
    let c_browser = publish(&app, c.clone(), c_events, &c_id).await;
    let o_browser = publish_as(&app, o.clone(), o_events, &o_id, Publish::nothing()).await;
    for from in [&l_id, &c_id] {
        let video = received(&o_browser, from, Kind::Video, 20).await;
        let audio = received(&o_browser, from, Kind::Audio, 20).await;
        assert!(
            video >= 20 && audio >= 20,
            "observer got {video}/{audio} from {from}"
        );
    }
    assert!(received(&l_browser, &c_id, Kind::Audio, 20).await >= 20);
    assert_eq!(l_browser.seen(|s| s.packets(&o_id, Kind::Audio)), 0);
    assert_eq!(c_browser.seen(|s| s.packets(&o_id, Kind::Video)), 0);

    // The lawyer withdraws the interpreter's invitation: out of the call, and cannot rejoin.
    let path = format!("/api/v1/consultations/{id}/participants/interp-1");
    let (status, _) = app.call(Method::DELETE, &path, &lawyer, None).await;
    assert_eq!(status, reqwest::StatusCode::NO_CONTENT);
    let closed = i_events.wait_for("session:closed", WAIT).await.unwrap();
    assert_eq!(closed.parse::<Value>().unwrap()["reason"], "dismissed");
    let (again, _) = Socket::connect(&app.url(""), &interpreter).await.unwrap();
    let answer = again
        .call("consultation:join", &json!({ "consultationId": id }))
        .await
        .unwrap();
    assert_eq!(answer["error"]["code"], "forbidden", "{answer}");
    let audit = app
        .call(
            Method::GET,
            &format!("/api/v1/consultations/{id}/audit"),
            &lawyer,
            None,
        )
        .await
        .1;
    let left = audit
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["action"] == "participant.left" && e["detail"]["participantId"] == i_id);
    assert!(left, "the dismissal is audited: {audit}");
    drop((i, c));
}

#[tokio::test]
async fn media_is_refused_with_a_clear_error_outside_the_sfu_and_for_bad_input() {
    let app = spawn_app(Backend::Sqlite).await;
    let lawyer = token("lawyer-1", Role::Lawyer);
    let client = token("client-1", Role::Client);
    let refused = async |socket: &Socket, event: &str, data: Value| {
        let answer = socket.call(event, &data).await.unwrap();
        assert_eq!(answer["ok"], false, "{event} {data} → {answer}");
        answer["error"]["code"].as_str().unwrap().to_owned()
    };

    // Not in a consultation yet.
    let (stranger, _) = Socket::connect(&app.url(""), &client).await.unwrap();
    let offer = json!({ "sdp": "v=0\r\n" });
    assert_eq!(
        refused(&stranger, "media:publish", offer.clone()).await,
        "not_joined"
    );

    // A peer-to-peer call uses `signal`, not the SFU.
    let p2p = book(&app, &lawyer, "p2p").await;
    let (l, _l_events, ack) = join(&app, &lawyer, &p2p).await;
    assert_eq!(ack["topology"], "p2p");
    assert_eq!(
        refused(&l, "media:publish", offer.clone()).await,
        "wrong_topology"
    );
    l.close().await;

    // In an sfu call: malformed payloads and SDP are refused; the call goes on.
    let sfu = book(&app, &lawyer, "sfu").await;
    let (l, _l_events, _) = join(&app, &lawyer, &sfu).await;
    assert_eq!(refused(&l, "media:publish", json!({})).await, "bad_request");
    assert_eq!(
        refused(&l, "media:publish", json!({ "sdp": "hello" })).await,
        "bad_request"
    );
    let huge = format!("v=0\r\n{}", "a=x\r\n".repeat(13_200));
    assert_eq!(
        refused(&l, "media:publish", json!({ "sdp": huge })).await,
        "bad_request"
    );
    assert_eq!(refused(&l, "media:publish", offer).await, "media_refused");
    assert_eq!(
        refused(&l, "media:answer", json!({ "sdp": "v=0\r\n" })).await,
        "media_refused",
        "no offer awaits an answer"
    );
    assert_eq!(
        refused(
            &l,
            "media:subscription",
            json!({ "trackId": "one", "paused": true })
        )
        .await,
        "bad_request"
    );
    let answer = l
        .call(
            "quality:report",
            &json!({"rttMs": 40.0, "jitterMs": 2.0, "packetLossPct": 0.0,
            "outboundKbps": 900.0, "inboundKbps": 900.0, "frameRate": 30.0, "width": 1280,
            "height": 720, "candidateType": "host"}),
        )
        .await
        .unwrap();
    assert_eq!(answer["ok"], true, "the connection still works: {answer}");

    // Junk on the media port is dropped and counted, for operators to see.
    let junk = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let media = app.sfu.expect("the SFU runs");
    for _ in 0..3 {
        junk.send_to(b"not webrtc", media).await.unwrap();
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let dropped = app
            .metric("wakili_sfu_dropped_datagrams_total")
            .await
            .expect("wakili_sfu_dropped_datagrams_total in /metrics");
        if dropped >= 3.0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{dropped} dropped datagrams counted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the server at `base` holds `sessions` SFU sessions.
async fn wait_for_sessions(base: &str, sessions: f64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = metric_at(base, "wakili_sfu_sessions").await;
        if now == Some(sessions) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{base} holds {now:?} SFU sessions, not {sessions}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `a` and `b` receive at least 20 audio and 20 video packets from each other.
async fn media_flows(a: (&Browser, &str), b: (&Browser, &str)) {
    for ((browser, _), (_, other)) in [(a, b), (b, a)] {
        let video = received(browser, other, Kind::Video, 20).await;
        let audio = received(browser, other, Kind::Audio, 20).await;
        assert!(
            video >= 20 && audio >= 20,
            "{} got {video} video and {audio} audio packets from {other}",
            browser.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consultations_media_lives_on_one_node_and_moves_when_that_node_goes() {
    let redis = std::env::var("WAKILI_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let shared = |s: &mut wakili_settings::Settings| {
        s.signaling.redis_url = Some(redis.clone());
        s.signaling.resume_grace = Duration::from_secs(30);
    };
    let node1 = spawn_app_with(Backend::Postgres, shared).await;
    let node2 = spawn_node_with(&node1.db.url, shared).await;
    let (base1, base2) = (node1.url(""), node2.url(""));
    let (sfu1, sfu2) = (node1.sfu.unwrap(), node2.sfu.unwrap());
    let lawyer = token("lawyer-1", Role::Lawyer);
    let client = token("client-1", Role::Client);
    let id = book(&node1, &lawyer, "sfu").await;

    // The lawyer is connected to node 1, the client to node 2.
    let (l, l_events, l_ack) = join_at(&base1, &lawyer, json!({ "consultationId": id })).await;
    let (c, c_events, c_ack) = join_at(&base2, &client, json!({ "consultationId": id })).await;
    let l_id = l_ack["participantId"].as_str().unwrap().to_owned();
    let c_id = c_ack["participantId"].as_str().unwrap().to_owned();

    // The client publishes first, through node 2: node 2 serves the consultation's media. The
    // lawyer's offer, answer and the server's offers to it go through node 1 to node 2.
    let c_browser = publish_to(sfu2, c, c_events, &c_id, Publish::camera_and_mic()).await;
    let l_browser = publish_to(sfu2, l, l_events, &l_id, Publish::camera_and_mic()).await;
    media_flows((&l_browser, &l_id), (&c_browser, &c_id)).await;
    wait_for_sessions(&base2, 2.0).await;
    assert_eq!(metric_at(&base1, "wakili_sfu_sessions").await, Some(0.0));

    // Node 2 goes. Both parties come back on node 1 as themselves and publish again: node 1
    // finds node 2 gone and takes the media over.
    node2.stop().await.unwrap();
    drop((c_browser, l_browser));
    let resume = |ack: &Value| json!({"consultationId": id, "resumeToken": ack["resumeToken"]});
    let (c, c_events, c_again) = join_at(&base1, &client, resume(&c_ack)).await;
    let (l, l_events, l_again) = join_at(&base1, &lawyer, resume(&l_ack)).await;
    assert_eq!(
        (
            c_again["participantId"].as_str(),
            l_again["participantId"].as_str()
        ),
        (Some(c_id.as_str()), Some(l_id.as_str()))
    );
    let c_browser = publish_to(sfu1, c, c_events, &c_id, Publish::camera_and_mic()).await;
    let l_browser = publish_to(sfu1, l, l_events, &l_id, Publish::camera_and_mic()).await;
    media_flows((&l_browser, &l_id), (&c_browser, &c_id)).await;
    wait_for_sessions(&base1, 2.0).await;

    // Ending the call ends its media on the node that serves it.
    end_over_api(&node1, &lawyer, &id).await;
    wait_for_sessions(&base1, 0.0).await;
    node1.stop().await.unwrap();
}
