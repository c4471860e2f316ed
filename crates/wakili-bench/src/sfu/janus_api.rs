//! A small client of the Janus HTTP API: one session, a handle per peer attached to the
//! VideoRoom plugin, requests whose answers come back on the session's long poll, and
//! trickled candidates routed to the peer of their handle.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};
use tokio::{sync::oneshot, task::JoinHandle};

use super::peer::PeerLink;

/// How long an asynchronous plugin request may take.
const EVENT_LIMIT: Duration = Duration::from_secs(20);
/// Events fetched per long poll.
const MAX_EVENTS: u32 = 32;

type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<Value>>>>;
type Trickles = Arc<Mutex<HashMap<u64, PeerLink>>>;

/// A Janus session with its long-poll task.
pub struct JanusApi {
    http: reqwest::Client,
    /// `http://HOST:PORT/janus/SESSION`.
    session_url: String,
    pending: Pending,
    trickles: Trickles,
    next: AtomicU64,
    poller: JoinHandle<()>,
}

impl Drop for JanusApi {
    fn drop(&mut self) {
        self.poller.abort();
    }
}

/// A plugin's answer: its `data` and the JSEP that came with it.
pub struct PluginReply {
    /// `plugindata.data`.
    pub data: Value,
    /// `jsep.sdp`, if any.
    pub sdp: Option<String>,
}

impl JanusApi {
    /// Creates a session on the Janus at `url` (`http://127.0.0.1:PORT/janus`).
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?;
        let created = post(
            &http,
            url,
            json!({"janus": "create", "transaction": "create"}),
        )
        .await?;
        let session = created["data"]["id"]
            .as_u64()
            .with_context(|| format!("create: no session id in {created}"))?;
        let session_url = format!("{url}/{session}");
        let pending: Pending = Arc::default();
        let trickles: Trickles = Arc::default();
        let poller = tokio::spawn(poll(
            http.clone(),
            session_url.clone(),
            pending.clone(),
            trickles.clone(),
        ));
        Ok(Self {
            http,
            session_url,
            pending,
            trickles,
            next: AtomicU64::new(1),
            poller,
        })
    }

    fn transaction(&self) -> String {
        format!("t{}", self.next.fetch_add(1, Ordering::Relaxed))
    }

    /// Attaches a new handle to the VideoRoom plugin.
    pub async fn attach(&self) -> anyhow::Result<u64> {
        let body = json!({
            "janus": "attach",
            "plugin": "janus.plugin.videoroom",
            "transaction": self.transaction(),
        });
        let attached = post(&self.http, &self.session_url, body).await?;
        attached["data"]["id"]
            .as_u64()
            .with_context(|| format!("attach: no handle id in {attached}"))
    }

    /// Sends trickled candidates for `handle` to `peer` from now on.
    pub fn route_trickle(&self, handle: u64, peer: PeerLink) {
        if let Ok(mut routes) = self.trickles.lock() {
            routes.insert(handle, peer);
        }
    }

    /// Sends `body` (and an SDP of `jsep_type`) to the plugin through `handle`; waits for the
    /// plugin's answer, immediate or as an event on the long poll.
    pub async fn message(
        &self,
        handle: u64,
        body: Value,
        jsep: Option<Value>,
    ) -> anyhow::Result<PluginReply> {
        let transaction = self.transaction();
        let (reply, event) = oneshot::channel();
        self.pending
            .lock()
            .map_err(|_| anyhow!("poisoned"))?
            .insert(transaction.clone(), reply);
        let mut message = json!({"janus": "message", "transaction": transaction, "body": body});
        if let Some(jsep) = jsep {
            message["jsep"] = jsep;
        }
        let request = body_request(&message);
        let url = format!("{}/{handle}", self.session_url);
        let answer = post(&self.http, &url, message).await;
        let answer = match answer {
            Ok(answer) if answer["janus"] == "ack" => tokio::time::timeout(EVENT_LIMIT, event)
                .await
                .map_err(|_| anyhow!("{request}: no event within {EVENT_LIMIT:?}"))?
                .map_err(|_| anyhow!("{request}: the long poll ended"))?,
            other => {
                if let Ok(mut pending) = self.pending.lock() {
                    pending.remove(&transaction);
                }
                other?
            }
        };
        let data = answer["plugindata"]["data"].clone();
        if let Some(error) = data.get("error") {
            bail!("{request}: {error} (code {})", data["error_code"]);
        }
        if answer["janus"] == "error" {
            bail!("{request}: {}", answer["error"]);
        }
        Ok(PluginReply {
            data,
            sdp: answer["jsep"]["sdp"].as_str().map(str::to_owned),
        })
    }
}

fn body_request(message: &Value) -> String {
    message["body"]["request"]
        .as_str()
        .unwrap_or("request")
        .to_owned()
}

/// POSTs `body`; fails on transport errors and on `{"janus": "error"}`.
async fn post(http: &reqwest::Client, url: &str, body: Value) -> anyhow::Result<Value> {
    let what = body["janus"].as_str().unwrap_or("request").to_owned();
    let response = http
        .post(url)
        .json(&body)
        .send()
        .await
        .with_context(|| format!("POST {url} ({what})"))?;
    let answer: Value = response
        .json()
        .await
        .with_context(|| format!("POST {url} ({what}): not JSON"))?;
    if answer["janus"] == "error" {
        bail!("{what}: {}", answer["error"]);
    }
    Ok(answer)
}

/// The session's long poll: hands each event to whoever waits for its transaction, and
/// trickled candidates to their peer.
async fn poll(http: reqwest::Client, session_url: String, pending: Pending, trickles: Trickles) {
    let url = format!("{session_url}?maxev={MAX_EVENTS}");
    loop {
        let events = match http.get(&url).send().await {
            Ok(response) => response.json::<Value>().await.ok(),
            Err(_) => None,
        };
        let Some(events) = events else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let events = match events {
            Value::Array(events) => events,
            event => vec![event],
        };
        for event in events {
            dispatch(event, &pending, &trickles).await;
        }
    }
}

async fn dispatch(event: Value, pending: &Pending, trickles: &Trickles) {
    if event["janus"] == "trickle" {
        let Some(handle) = event["sender"].as_u64() else {
            return;
        };
        let candidate = event["candidate"]["candidate"].as_str().map(str::to_owned);
        let peer = trickles.lock().ok().and_then(|t| t.get(&handle).cloned());
        if let (Some(candidate), Some(peer)) = (candidate, peer) {
            peer.add_remote_candidate(candidate).await;
        }
        return;
    }
    let waiter = event["transaction"]
        .as_str()
        .and_then(|t| pending.lock().ok()?.remove(t));
    if let Some(waiter) = waiter {
        let _ = waiter.send(event);
    }
}
