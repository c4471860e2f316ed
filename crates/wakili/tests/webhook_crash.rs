//! Webhooks survive `kill -9`: changes made while the receiver was down, and queued when the
//! server was killed, are all delivered (signed, verified by the npm `standardwebhooks`
//! package) once the server is back and the receiver answers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{collections::BTreeSet, time::Duration};

use common::{Server, book, token};
use serde_json::json;
use wakili_core::webhook::endpoint::secret_from;
use wakili_testkit::receiver::Receiver;

#[tokio::test]
async fn webhooks_queued_before_a_kill_9_are_delivered_after_the_restart() {
    let cwd = tempfile::tempdir().unwrap();
    let secret = secret_from(&[9; 32]);
    // A port for the receiver, which is down for now: connections are refused.
    let receiver = Receiver::start(&[&secret], 0).await;
    let port = receiver.port();
    receiver.stop().await;
    std::fs::write(
        cwd.path().join("wakili.toml"),
        format!(
            "[webhooks]\nallow_loopback = true\ninitial_backoff = \"100ms\"\n\
             max_backoff = \"300ms\"\npoll_interval = \"50ms\"\nrequest_timeout = \"1s\"\n\n\
             [[webhooks.endpoints]]\nid = \"platform\"\nurl = \"http://127.0.0.1:{port}/hook\"\n\
             secret = \"{secret}\"\n"
        ),
    )
    .unwrap();
    let server = Server::start(cwd.path(), &[]);
    let lawyer = token(cwd.path(), "l1", "lawyer");
    let mut booked = BTreeSet::new();
    for days in 1..=5 {
        let at = chrono::Utc::now() + chrono::Duration::days(days);
        let body = json!({"clientId": "c1", "scheduledAt": at, "durationMinutes": 30});
        booked.insert(book(&server.base, &lawyer, &body).await);
    }
    // Attempts fail (refused) and back off; then the node dies without a word.
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(server);

    let receiver = Receiver::start(&[&secret], port).await;
    let server = Server::start(cwd.path(), &[]);
    // Deliveries the dead node held mid-attempt stay leased until the lease runs out (3 ×
    // request_timeout + 30 s = 33 s here); the rest go at once.
    let received = receiver
        .wait_for(Duration::from_secs(50), |r| {
            booked.iter().all(|id| {
                r.iter().any(|m| {
                    m.kind == "consultation.booked" && m.data["consultationId"] == id.as_str()
                })
            })
        })
        .await;
    let (_, rejected) = receiver.received().await;
    assert_eq!(rejected, 0, "every signature verified");
    let ids: BTreeSet<&str> = received.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(
        ids.len(),
        booked.len(),
        "one event per booking: {received:?}"
    );
    drop(server);
}
