//! Rooms in Redis, shared by every node, with each node's [`RoomCache`] kept current by a change
//! feed.
//!
//! **Consistency.** A room is one key. A change is a compare-and-set script that checks the key
//! still holds what the node based its change on, writes the new state under the next number
//! of a global sequence (`wakili:room-seq`) and publishes it on `wakili:rooms` — atomically, so
//! the feed carries every change in commit order. When another node changed the room first the
//! script answers with the current state and the change is computed again on it. A node bases
//! its change on the state it holds, so a change to a room it serves costs one round trip; reads
//! (the authorization of every relayed signal) cost none while the feed is up.
//!
//! **Signals to another node.** Each node also listens on a channel of its own,
//! `wakili:node:<id>`; a participant's connection is recorded as `<node id>/<socket id>`, so a
//! signal to a participant on another node is one `PUBLISH` that only that node receives.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::StreamExt;
use redis::{AsyncCommands, Script, aio::ConnectionManager};
use wakili_core::room::Room;

use super::{
    SignalError,
    cache::{RoomCache, Versioned, parse_announcement},
    is_empty,
    node_channel::NodeMessage,
};

/// How long an untouched room survives in Redis (a crashed node cannot leak rooms forever).
const ROOM_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long an emptied room's tombstone stays (it orders late reads against the emptying).
const TOMBSTONE_TTL: Duration = Duration::from_secs(3600);
/// How long a node trusts a held room without news of it (well inside the tombstone's life).
const CACHE_MAX_AGE: Duration = Duration::from_secs(600);
/// Attempts before an update gives up under contention.
const MAX_ATTEMPTS: u32 = 100;
/// The change feed's channel.
const CHANNEL: &str = "wakili:rooms";
/// The global sequence of room changes.
const SEQUENCE: &str = "wakili:room-seq";
/// Followed by a node id: the channel of events for that node's sockets.
const NODE_CHANNEL: &str = "wakili:node:";

/// Takes what other nodes send this node: events for its sockets, calls to its media server
/// and replies to its own calls.
pub type Receiver = Box<dyn Fn(NodeMessage<'_>) + Send + Sync>;

/// `KEYS[1]` the room, `KEYS[2]` the sequence; `ARGV`: the state the change is based on (empty:
/// absent), the new room JSON (empty: emptied), its TTL, the tombstone TTL, the channel, the
/// consultation. Answers `{1, seq}` when written, `{0, current}` when the room moved on.
const CHANGE: &str = r"
local current = redis.call('GET', KEYS[1])
if current == false then current = '' end
if current ~= ARGV[1] then return {0, current} end
local seq = redis.call('INCR', KEYS[2])
local stored = seq .. '|' .. ARGV[2]
if ARGV[2] == '' then
  redis.call('SET', KEYS[1], stored, 'EX', ARGV[4])
else
  redis.call('SET', KEYS[1], stored, 'EX', ARGV[3])
end
redis.call('PUBLISH', ARGV[5], ARGV[6] .. '|' .. stored)
return {1, tostring(seq)}
";

/// `KEYS[1]` the node serving a consultation's media; `ARGV`: this node, the owner this node
/// found gone (empty: none), the key's TTL. Takes the media when nobody serves it, or when its
/// owner is the one found gone; answers whoever serves it then.
const CLAIM: &str = r"
local owner = redis.call('GET', KEYS[1])
if owner == false or owner == ARGV[2] then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
  return ARGV[1]
end
return owner
";

/// `KEYS[1]` as in [`CLAIM`]; `ARGV[1]` the node letting the media go (only its own claim).
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// Rooms in Redis with this node's view of them.
pub struct RedisRooms {
    conn: ConnectionManager,
    change: Script,
    claim: Script,
    release: Script,
    cache: Arc<Mutex<RoomCache>>,
    /// Commands this node sent for rooms (reads, change scripts, relayed signals).
    commands: Arc<AtomicU64>,
    /// Ends the feed with the store.
    feed: tokio::task::AbortHandle,
    /// Takes what other nodes relay to this node's sockets.
    receiver: Arc<Mutex<Option<Receiver>>>,
    /// One change at a time per room from this node: its writers queue here instead of
    /// racing each other in Redis, so a round of contention has one writer per node.
    writers: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Drop for RedisRooms {
    fn drop(&mut self) {
        self.feed.abort();
    }
}

fn lock(cache: &Mutex<RoomCache>) -> std::sync::MutexGuard<'_, RoomCache> {
    cache.lock().unwrap_or_else(PoisonError::into_inner)
}

impl RedisRooms {
    /// Connects to Redis at `url` as node `node`, and starts following the change feed and
    /// the node's channel.
    /// Its commands are counted in `commands`.
    pub async fn connect(
        url: &str,
        node: &str,
        commands: Arc<AtomicU64>,
    ) -> Result<Self, SignalError> {
        let client = redis::Client::open(url)?;
        let conn = ConnectionManager::new(client.clone()).await?;
        let cache = Arc::new(Mutex::new(RoomCache::new(CACHE_MAX_AGE)));
        let receiver: Arc<Mutex<Option<Receiver>>> = Arc::new(Mutex::new(None));
        let channels = [CHANNEL.to_owned(), format!("{NODE_CHANNEL}{node}")];
        let feed = tokio::spawn(follow(
            client,
            channels,
            Arc::clone(&cache),
            Arc::clone(&receiver),
        ))
        .abort_handle();
        Ok(Self {
            conn,
            change: Script::new(CHANGE),
            claim: Script::new(CLAIM),
            release: Script::new(RELEASE),
            cache,
            commands,
            feed,
            receiver,
            writers: Mutex::new(HashMap::new()),
        })
    }

    /// Hands what other nodes send this node to `receiver`, called on the feed's task as each
    /// arrives (so it must not block).
    pub fn on_message(&self, receiver: Receiver) {
        *self.receiver.lock().unwrap_or_else(PoisonError::into_inner) = Some(receiver);
    }

    /// Sends `message` ([`NodeMessage`]) to node `node` (one `PUBLISH`); `false` when no
    /// node listens there (it is gone).
    pub async fn send(&self, node: &str, message: Vec<u8>) -> Result<bool, SignalError> {
        self.commands.fetch_add(1, Ordering::Relaxed);
        let receivers: u64 = self
            .conn
            .clone()
            .publish(format!("{NODE_CHANNEL}{node}"), message)
            .await?;
        Ok(receivers > 0)
    }

    /// The node serving `consultation`'s media, if one does.
    pub async fn media_owner(&self, consultation: &str) -> Result<Option<String>, SignalError> {
        self.commands.fetch_add(1, Ordering::Relaxed);
        Ok(self.conn.clone().get(media_key(consultation)).await?)
    }

    /// Makes `node` serve `consultation`'s media unless another node does (one that is not
    /// `gone`); answers the node that serves it.
    pub async fn claim_media(
        &self,
        consultation: &str,
        node: &str,
        gone: Option<&str>,
    ) -> Result<String, SignalError> {
        self.commands.fetch_add(1, Ordering::Relaxed);
        Ok(self
            .claim
            .key(media_key(consultation))
            .arg(node)
            .arg(gone.unwrap_or(""))
            .arg(ROOM_TTL.as_secs())
            .invoke_async(&mut self.conn.clone())
            .await?)
    }

    /// `node` no longer serves `consultation`'s media (its sessions ended).
    pub async fn release_media(&self, consultation: &str, node: &str) -> Result<(), SignalError> {
        self.commands.fetch_add(1, Ordering::Relaxed);
        let _: i64 = self
            .release
            .key(media_key(consultation))
            .arg(node)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    /// Stops following the feed (shutdown): nothing is relayed to this node any more, and the
    /// receiver (which holds the Socket.IO service) is let go.
    pub fn close(&self) {
        self.feed.abort();
        self.receiver
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }

    /// Commands sent to Redis for rooms so far.
    pub fn commands(&self) -> u64 {
        self.commands.load(Ordering::Relaxed)
    }

    /// The room as held, or as Redis has it now.
    pub async fn current(&self, consultation: &str) -> Result<Arc<Versioned>, SignalError> {
        if let Some(held) = lock(&self.cache).get_or_begin(consultation, Instant::now()) {
            return Ok(held);
        }
        self.fetch(consultation).await
    }

    /// The room as Redis has it now (kept unless something newer arrived meanwhile).
    pub async fn fetch(&self, consultation: &str) -> Result<Arc<Versioned>, SignalError> {
        let epoch = lock(&self.cache).epoch();
        self.commands.fetch_add(1, Ordering::Relaxed);
        let stored: Option<String> = self.conn.clone().get(key(consultation)).await?;
        let state = Versioned::parse(stored.as_deref().unwrap_or(""))?;
        lock(&self.cache).learn(consultation, state.clone(), epoch, Instant::now());
        Ok(Arc::new(state))
    }

    /// Applies `change` to the room and writes it; see the module's consistency note.
    pub async fn update<R>(
        &self,
        consultation: &str,
        mut change: impl FnMut(&mut Room) -> R,
    ) -> Result<R, SignalError> {
        let queue = Queue {
            rooms: self,
            consultation,
            turn: self.writer(consultation),
        };
        let _turn = queue.turn.lock().await;
        self.write(consultation, &mut change).await
    }

    /// The queue of this node's writers to `consultation`.
    fn writer(&self, consultation: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut writers = self.writers.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(writers.entry(consultation.to_owned()).or_default())
    }

    /// One change, in this node's turn: compare-and-set until it lands.
    async fn write<R>(
        &self,
        consultation: &str,
        change: &mut impl FnMut(&mut Room) -> R,
    ) -> Result<R, SignalError> {
        let key = key(consultation);
        let mut conn = self.conn.clone();
        // Based on what this node holds; a room it does not hold is most likely new.
        let (epoch, held) = {
            let mut cache = lock(&self.cache);
            (
                cache.epoch(),
                cache.get_or_begin(consultation, Instant::now()),
            )
        };
        let mut base = held.map_or_else(Versioned::absent, |held| (*held).clone());
        for attempt in 0..MAX_ATTEMPTS {
            let mut room = base.room.as_deref().cloned().unwrap_or_default();
            let result = change(&mut room);
            let (json, room) = if is_empty(&room) {
                (String::new(), None)
            } else {
                (serde_json::to_string(&room)?, Some(room))
            };
            self.commands.fetch_add(1, Ordering::Relaxed);
            let (written, answer): (i64, String) = self
                .change
                .key(&key)
                .key(SEQUENCE)
                .arg(&*base.stored)
                .arg(&json)
                .arg(ROOM_TTL.as_secs())
                .arg(TOMBSTONE_TTL.as_secs())
                .arg(CHANNEL)
                .arg(consultation)
                .invoke_async(&mut conn)
                .await?;
            if written == 1 {
                let seq = answer.parse().unwrap_or(0);
                let state = Versioned::written(seq, &json, room);
                lock(&self.cache).learn(consultation, state, epoch, Instant::now());
                return Ok(result);
            }
            base = Versioned::parse(&answer)?;
            lock(&self.cache).learn(consultation, base.clone(), epoch, Instant::now());
            if attempt > 3 {
                tokio::time::sleep(Duration::from_millis(u64::from(attempt.min(20)))).await;
            } else {
                tokio::task::yield_now().await;
            }
        }
        Err(SignalError::Contended(consultation.to_owned()))
    }
}

/// A writer's place in its room's queue; leaving it (even by a cancelled update) forgets the
/// queue once nobody else waits in it.
struct Queue<'a> {
    rooms: &'a RedisRooms,
    consultation: &'a str,
    turn: Arc<tokio::sync::Mutex<()>>,
}

impl Drop for Queue<'_> {
    fn drop(&mut self) {
        let mut writers = self
            .rooms
            .writers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Held by the map and by this writer only (new writers clone it under the same lock).
        if writers
            .get(self.consultation)
            .is_some_and(|queue| Arc::strong_count(queue) == 2 && Arc::ptr_eq(queue, &self.turn))
        {
            writers.remove(self.consultation);
        }
    }
}

fn key(consultation: &str) -> String {
    format!("wakili:room:{consultation}")
}

fn media_key(consultation: &str) -> String {
    format!("wakili:media:{consultation}")
}

/// Follows the change feed and the node's channel for as long as the store lives,
/// resubscribing after a drop; held rooms are trusted only while it is subscribed.
async fn follow(
    client: redis::Client,
    channels: [String; 2],
    cache: Arc<Mutex<RoomCache>>,
    receiver: Arc<Mutex<Option<Receiver>>>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match subscribe(&client, &channels).await {
            Ok(pubsub) => {
                backoff = Duration::from_millis(100);
                lock(&cache).resumed();
                let mut messages = pubsub.into_on_message();
                let mut sweep = tokio::time::interval(CACHE_MAX_AGE / 4);
                loop {
                    tokio::select! {
                        message = messages.next() => {
                            let Some(message) = message else { break };
                            let Ok(text) = std::str::from_utf8(message.get_payload_bytes()) else { continue };
                            if message.get_channel_name() != CHANNEL {
                                match NodeMessage::decode(text) {
                                    Some(message) => {
                                        let receive = receiver.lock().unwrap_or_else(PoisonError::into_inner);
                                        if let Some(receive) = receive.as_ref() {
                                            receive(message);
                                        }
                                    }
                                    None => tracing::warn!("unreadable message on this node's channel"),
                                }
                                continue;
                            }
                            match parse_announcement(text) {
                                Some((consultation, Ok(state))) => {
                                    lock(&cache).announced(consultation, state, Instant::now());
                                }
                                _ => tracing::warn!("unreadable room change on {CHANNEL}"),
                            }
                        }
                        _ = sweep.tick() => lock(&cache).sweep(Instant::now()),
                    }
                }
                tracing::warn!("room change feed lost; reading rooms from Redis until it is back");
            }
            Err(e) => tracing::warn!(error = %e, "room change feed unavailable"),
        }
        lock(&cache).lost();
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

async fn subscribe(
    client: &redis::Client,
    channels: &[String; 2],
) -> Result<redis::aio::PubSub, redis::RedisError> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channels).await?;
    Ok(pubsub)
}
