//! A running SFU on 127.0.0.1 port 0, a signaling stand-in that delivers its offers to the
//! clients and their answers back, and waiting helpers.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::sync::{broadcast::error::RecvError, oneshot};
use wakili_sfu::{MediaKind, Sfu, SfuConfig, SfuError, SfuEvent, SfuHandle, TrackId};

use crate::client::{Client, OfferSink, Publish};

pub const ROOM: &str = "consultation";

pub struct Harness {
    pub sfu: SfuHandle,
    events: Arc<Mutex<Vec<SfuEvent>>>,
    sinks: Arc<Mutex<HashMap<String, OfferSink>>>,
    stop: Option<oneshot::Sender<()>>,
}

impl Harness {
    pub async fn start() -> Harness {
        Self::with(SfuConfig::loopback()).await
    }

    pub async fn with(config: SfuConfig) -> Harness {
        let (stop, stopped) = oneshot::channel::<()>();
        let sfu = Sfu::start(config, async {
            let _ = stopped.await;
        })
        .await
        .expect("SFU starts");
        let events = Arc::new(Mutex::new(Vec::new()));
        let sinks: Arc<Mutex<HashMap<String, OfferSink>>> = Arc::default();
        let mut receiver = sfu.events();
        let (log, offers_to, handle) = (events.clone(), sinks.clone(), sfu.clone());
        tokio::spawn(async move {
            loop {
                let event = match receiver.recv().await {
                    Ok(event) => event,
                    Err(RecvError::Lagged(n)) => panic!("signaling lagged {n} events"),
                    Err(RecvError::Closed) => return,
                };
                log.lock().expect("not poisoned").push(event.clone());
                if let SfuEvent::Offer {
                    room,
                    participant,
                    sdp,
                } = event
                {
                    let sink = offers_to
                        .lock()
                        .expect("not poisoned")
                        .get(&participant)
                        .cloned();
                    let Some(sink) = sink else { continue };
                    let handle = handle.clone();
                    // Answer off the event loop, as a real signaling round trip would.
                    tokio::spawn(async move {
                        if let Some(answer) = sink.accept(sdp).await {
                            handle
                                .answer(&room, &participant, &answer)
                                .await
                                .expect("answer accepted");
                        }
                    });
                }
            }
        });
        Harness {
            sfu,
            events,
            sinks,
            stop: Some(stop),
        }
    }

    /// `name` joins the room publishing `publish`; its offers are answered from now on.
    pub async fn join(&self, name: &str, publish: Publish) -> Result<Client, SfuError> {
        self.enter(name, publish, true).await
    }

    /// `name` joins the room listen-only (an observer), publishing nothing.
    pub async fn listen(&self, name: &str) -> Result<Client, SfuError> {
        self.enter(name, Publish::nothing(), false).await
    }

    async fn enter(&self, name: &str, publish: Publish, speaks: bool) -> Result<Client, SfuError> {
        let sfu = self.sfu.clone();
        let client = Client::connect(self.sfu.local_addr(), name, publish, async |sdp: String| {
            let answer = if speaks {
                sfu.join(ROOM, name, &sdp).await
            } else {
                sfu.listen(ROOM, name, &sdp).await
            };
            answer.map(|answer| answer.sdp)
        })
        .await?;
        self.sinks
            .lock()
            .expect("not poisoned")
            .insert(name.to_owned(), client.offers());
        Ok(client)
    }

    /// Shuts the SFU down.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Every event so far.
    pub fn events(&self) -> Vec<SfuEvent> {
        self.events.lock().expect("not poisoned").clone()
    }

    /// The tracks `publisher` published of `kind`, latest last.
    pub fn tracks_of(&self, publisher: &str, kind: MediaKind) -> Vec<TrackId> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                SfuEvent::TrackPublished {
                    participant, track, ..
                } if participant == publisher && track.kind == kind => Some(track.id),
                _ => None,
            })
            .collect()
    }

    /// Waits until `done` holds for the events so far.
    pub async fn wait_event(&self, what: &str, done: impl Fn(&SfuEvent) -> bool) {
        wait_for(what, || self.events().iter().any(&done)).await;
    }
}

/// Polls `done` every 20 ms, for at most 10 s.
pub async fn wait_for(what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until every client receives both audio and video from every other one.
pub async fn wait_all_flowing(clients: &[&Client]) {
    for receiver in clients {
        for sender in clients {
            if receiver.name == sender.name {
                continue;
            }
            wait_for(
                &format!("{} to receive {}", receiver.name, sender.name),
                || {
                    receiver.seen(|s| {
                        s.packets(&sender.name, str0m::media::MediaKind::Audio) > 10
                            && s.packets(&sender.name, str0m::media::MediaKind::Video) > 10
                    })
                },
            )
            .await;
        }
    }
}
