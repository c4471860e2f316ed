//! Putting the load on a server: every room's publishers join and publish, then its
//! subscribers join and receive; the same peers for Wakili and Janus, only the signaling
//! differs.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use serde_json::json;
use tokio::{sync::mpsc, task::JoinHandle};

use super::{
    args::SfuArgs,
    janus_api::{JanusApi, PluginReply},
    media,
    peer::{PeerHandle, PeerLink, Role, Session},
    tally::Window,
    wakili::{Offer, WakiliSfu},
};

/// One room's peers.
pub struct RoomPeers {
    /// Publisher number (unique in the run) and peer.
    pub publishers: Vec<(u16, PeerHandle)>,
    /// Subscribers.
    pub subscribers: Vec<PeerHandle>,
}

impl RoomPeers {
    /// The streams each subscriber of the room should receive: audio and `layer` of every
    /// publisher.
    pub fn expected_streams(&self, layer: usize) -> Vec<u16> {
        self.streams(|l| l.is_none_or(|l| l == layer))
    }

    /// The video layers other than `layer` of every publisher of the room.
    pub fn other_layers(&self, layer: usize) -> Vec<u16> {
        self.streams(|l| l.is_some_and(|l| l != layer))
    }

    /// Every publisher's streams whose layer (`None`: audio) `keep` accepts.
    fn streams(&self, keep: impl Fn(Option<usize>) -> bool) -> Vec<u16> {
        let layers = std::iter::once(None).chain((0..media::RIDS.len()).map(Some));
        self.publishers
            .iter()
            .flat_map(|(index, _)| layers.clone().map(|l| (*index, l)))
            .filter(|(_, l)| keep(*l))
            .map(|(index, l)| media::stream_id(index, l))
            .collect()
    }
}

fn publisher_index(args: &SfuArgs, room: u32, publisher: u32) -> u16 {
    (room * args.publishers + publisher) as u16
}

/// The names of a room's publishers (`p0`…) and subscribers (`s0`…).
pub fn participant_names(args: &SfuArgs) -> (Vec<String>, Vec<String>) {
    (
        (0..args.publishers).map(|p| format!("p{p}")).collect(),
        (0..args.subscribers).map(|s| format!("s{s}")).collect(),
    )
}

/// Joins every peer to Wakili's SFU, room `r` named `rooms[r]`. Offers for subscribers are
/// answered by a task (returned); those for publishers are left unanswered, so publishers
/// receive nothing, as in Janus.
pub async fn join_wakili(
    args: &SfuArgs,
    sfu: &Arc<WakiliSfu>,
    mut offers: mpsc::UnboundedReceiver<Offer>,
    ip: IpAddr,
    window: &Arc<Window>,
    rooms_named: &[String],
) -> anyhow::Result<(Vec<RoomPeers>, JoinHandle<()>)> {
    let (publisher_names, subscriber_names) = participant_names(args);
    let links: Arc<Mutex<HashMap<String, PeerLink>>> = Arc::default();
    let router = {
        let (links, sfu) = (links.clone(), sfu.clone());
        tokio::spawn(async move {
            while let Some(offer) = offers.recv().await {
                let key = format!("{}/{}", offer.room, offer.participant);
                let Some(link) = links.lock().ok().and_then(|l| l.get(&key).cloned()) else {
                    continue;
                };
                let sfu = sfu.clone();
                tokio::spawn(async move {
                    let answered = match link.accept_offer(offer.sdp).await {
                        Ok(answer) => sfu.answer(&offer.room, &offer.participant, answer).await,
                        Err(e) => Err(e),
                    };
                    if let Err(e) = answered {
                        eprintln!("[wakili] {key}: offer not answered: {e:#}");
                    }
                });
            }
        })
    };
    let layers = args.layers();
    let mut rooms = Vec::new();
    for (r, room) in (0..args.rooms).zip(rooms_named) {
        let mut publishers = Vec::new();
        for (p, name) in (0..args.publishers).zip(&publisher_names) {
            let mut session = Session::new(ip)?;
            let (offer, pending) = session.offer_publish(name)?;
            let answer = sfu
                .join(room, name, offer, None)
                .await
                .with_context(|| format!("{room}/{name} joins"))?;
            session.accept_answer(pending, &answer)?;
            let index = publisher_index(args, r, p);
            let role = Role::Publisher(index, layers);
            publishers.push((
                index,
                session.spawn(format!("{room}/{name}"), role, window.clone())?,
            ));
        }
        rooms.push(RoomPeers {
            publishers,
            subscribers: Vec::new(),
        });
    }
    wait_connected(&rooms, args.connect_timeout).await?;
    for (peers, room) in rooms.iter_mut().zip(rooms_named) {
        for name in &subscriber_names {
            let key = format!("{room}/{name}");
            let mut session = Session::new(ip)?;
            let (offer, pending) = session.offer_receive()?;
            // Routed before joining: the SFU's offers may come as soon as the session connects.
            if let Ok(mut links) = links.lock() {
                links.insert(key.clone(), session.link(&key));
            }
            let answer = sfu
                .join(room, name, offer, Some(args.layer.rid()))
                .await
                .with_context(|| format!("{key} joins"))?;
            session.accept_answer(pending, &answer)?;
            let peer = session.spawn(key, Role::Subscriber, window.clone())?;
            peers.subscribers.push(peer);
        }
    }
    Ok((rooms, router))
}

/// Joins every peer to Janus's VideoRoom: a room per room, publishers `join` + `configure`
/// with their offer (simulcast by RID, listed low to high), subscribers `join` to every feed
/// of their room at the chosen substream and `start` with their answer.
pub async fn join_janus(
    args: &SfuArgs,
    api: &JanusApi,
    ip: IpAddr,
    window: &Arc<Window>,
) -> anyhow::Result<Vec<RoomPeers>> {
    let admin = api.attach().await?;
    let layers = args.layers();
    let mut rooms = Vec::new();
    for r in 0..args.rooms {
        let room_id = 1000 + u64::from(r);
        let create = json!({
            "request": "create",
            "room": room_id,
            "publishers": args.publishers,
            "audiocodec": "opus",
            "videocodec": "vp8",
        });
        let created = api
            .message(admin, create, None)
            .await
            .with_context(|| format!("create room {room_id}"))?;
        expect(&created, "created", &format!("create room {room_id}"))?;
        let mut publishers = Vec::new();
        for p in 0..args.publishers {
            let name = format!("r{r}/p{p}");
            let handle = api.attach().await?;
            let join = json!({
                "request": "join", "ptype": "publisher", "room": room_id,
                "id": u64::from(p) + 1, "display": name,
            });
            let joined = api
                .message(handle, join, None)
                .await
                .with_context(|| format!("{name} joins"))?;
            expect(&joined, "joined", &format!("{name} joins"))?;
            let mut session = Session::new(ip)?;
            api.route_trickle(handle, session.link(&name));
            let (offer, pending) = session.offer_publish(&format!("p{p}"))?;
            let jsep = json!({"type": "offer", "sdp": offer, "rid_order": "lmh"});
            let reply = api
                .message(handle, json!({"request": "configure"}), Some(jsep))
                .await
                .with_context(|| format!("{name} publishes"))?;
            let answer = reply
                .sdp
                .with_context(|| format!("{name}: no answer from Janus"))?;
            session.accept_answer(pending, &answer)?;
            let index = publisher_index(args, r, p);
            let peer = session.spawn(name, Role::Publisher(index, layers), window.clone())?;
            publishers.push((index, peer));
        }
        rooms.push(RoomPeers {
            publishers,
            subscribers: Vec::new(),
        });
    }
    wait_connected(&rooms, args.connect_timeout).await?;
    let substream = args.layer.index();
    for (r, peers) in rooms.iter_mut().enumerate() {
        let room_id = 1000 + r as u64;
        let streams: Vec<_> = (0..args.publishers)
            .map(|p| json!({"feed": u64::from(p) + 1, "substream": substream}))
            .collect();
        for s in 0..args.subscribers {
            let name = format!("r{r}/s{s}");
            let handle = api.attach().await?;
            let mut session = Session::new(ip)?;
            api.route_trickle(handle, session.link(&name));
            let join = json!({
                "request": "join", "ptype": "subscriber", "room": room_id, "streams": streams,
            });
            let reply = api
                .message(handle, join, None)
                .await
                .with_context(|| format!("{name} subscribes"))?;
            let offer = reply
                .sdp
                .with_context(|| format!("{name}: no offer from Janus"))?;
            let answer = session.accept_offer(&offer)?;
            let peer = session.spawn(name.clone(), Role::Subscriber, window.clone())?;
            let jsep = json!({"type": "answer", "sdp": answer});
            api.message(handle, json!({"request": "start"}), Some(jsep))
                .await
                .with_context(|| format!("{name} starts"))?;
            peers.subscribers.push(peer);
        }
    }
    Ok(rooms)
}

/// Fails unless the plugin answered `videoroom: <what>`.
fn expect(reply: &PluginReply, what: &str, request: &str) -> anyhow::Result<()> {
    match reply.data["videoroom"].as_str() {
        Some(answer) if answer == what => Ok(()),
        _ => bail!("{request}: Janus answered {}", reply.data),
    }
}

/// Waits until every publisher is connected.
async fn wait_connected(rooms: &[RoomPeers], limit: Duration) -> anyhow::Result<()> {
    let peers: Vec<&PeerHandle> = rooms
        .iter()
        .flat_map(|r| r.publishers.iter().map(|(_, p)| p))
        .collect();
    wait_all(&peers, limit, "connect", |p| {
        let connected = p
            .shared
            .connected
            .load(std::sync::atomic::Ordering::Relaxed);
        (!connected).then(|| "not connected".to_owned())
    })
    .await
}

/// Waits until every subscriber receives all it should, and only that: audio and layer
/// `layer` (0 q, 1 h, 2 f) of each publisher of its room arrived within [`RECENT`], and no
/// other layer did. Wakili's SFU starts a subscriber on the layer its first bandwidth estimate
/// covers and steps up to the forced one once the estimate has covered it for the hold time,
/// so a subscriber that has seen the forced layer once may still be below it; the window
/// measures forwarding once every subscriber is on it, not the estimator's ramp (the set-up
/// time shows that).
pub async fn wait_receiving(
    rooms: &[RoomPeers],
    layer: usize,
    limit: Duration,
) -> anyhow::Result<()> {
    for room in rooms {
        let want = room.expected_streams(layer);
        let others = room.other_layers(layer);
        wait_all(
            &room.subscribers.iter().collect::<Vec<_>>(),
            limit,
            "receive every publisher on the forced layer only",
            |p| {
                let Ok(seen) = p.shared.streams_seen.lock() else {
                    return Some("its counts are unreadable".to_owned());
                };
                let now = Instant::now();
                let recent = |stream: &&u16| {
                    seen.get(*stream)
                        .is_some_and(|at| now.saturating_duration_since(*at) < RECENT)
                };
                // What is wrong: wanted streams not arriving, other layers arriving.
                let wrong: Vec<String> = [("missing", &want, false), ("receiving", &others, true)]
                    .into_iter()
                    .filter_map(|(what, streams, arriving)| {
                        let names: Vec<String> = streams
                            .iter()
                            .filter(|s| recent(s) == arriving)
                            .map(|s| media::stream_name(*s))
                            .collect();
                        (!names.is_empty()).then(|| format!("{what} {}", names.join(" ")))
                    })
                    .collect();
                (!wrong.is_empty()).then(|| wrong.join(", "))
            },
        )
        .await?;
    }
    Ok(())
}

/// How lately a stream must have arrived to count as arriving (a video layer at 30 fps
/// arrives every 33 ms, audio every 20 ms).
const RECENT: Duration = Duration::from_millis(500);

async fn wait_all(
    peers: &[&PeerHandle],
    limit: Duration,
    what: &str,
    pending: impl Fn(&PeerHandle) -> Option<String>,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(failed) = peers.iter().find_map(|p| p.failure().map(|f| (p, f))) {
            bail!("{}: session failed: {}", failed.0.name, failed.1);
        }
        let waiting: Vec<(&str, String)> = peers
            .iter()
            .filter_map(|p| pending(p).map(|what| (p.name.as_str(), what)))
            .collect();
        if waiting.is_empty() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            let shown = waiting
                .iter()
                .take(5)
                .map(|(name, what)| format!("{name} ({what})"))
                .collect::<Vec<_>>()
                .join(", ");
            bail!(
                "{} peers did not {what} within {} (--connect-timeout): {shown}…",
                waiting.len(),
                humantime::format_duration(limit)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
