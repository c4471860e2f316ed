//! Room state storage. Every change is a read–modify–write of the whole [`Room`] under
//! optimistic concurrency, so two nodes handling events for one consultation never lose each
//! other's changes; with Redis, each node also holds the rooms it serves, kept current by a
//! change feed (`redis.rs`), so relaying a signal reads nothing from Redis.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError, atomic::AtomicU64},
};

use wakili_core::room::Room;

mod cache;
mod node_channel;
mod redis_rooms;

pub use self::node_channel::{NodeMessage, Relayed};
pub use self::redis_rooms::Receiver;
use self::redis_rooms::RedisRooms;

/// Why a room could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    /// Redis failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A stored room does not decode (written by an incompatible version?).
    #[error("stored room state is invalid: {0}")]
    Corrupt(#[from] serde_json::Error),
    /// The Socket.IO Redis adapter failed to start.
    #[error("socket.io redis adapter: {0}")]
    Adapter(String),
    /// Too many concurrent writers to one room.
    #[error("room {0} is too busy; retry")]
    Contended(String),
}

/// Where rooms live.
pub enum RoomStore {
    /// One node: a map in memory.
    Memory(Mutex<HashMap<String, Room>>),
    /// Many nodes: in Redis, each node holding the rooms it serves.
    Redis(RedisRooms),
}

/// Whether a room holds nothing worth keeping.
fn is_empty(room: &Room) -> bool {
    room.ended || (room.members.is_empty() && room.recording == wakili_core::room::Recording::Idle)
}

impl RoomStore {
    /// Rooms in this process.
    pub fn memory() -> Self {
        Self::Memory(Mutex::new(HashMap::new()))
    }

    /// Rooms in Redis at `url`, for a node of its own.
    pub async fn redis(url: &str) -> Result<Self, SignalError> {
        let node = uuid::Uuid::new_v4().simple().to_string();
        Self::redis_node(url, &node, Arc::default()).await
    }

    /// Rooms in Redis at `url` for node `node` (its channel: `wakili:node:<node>`), counting
    /// the commands it sends in `commands`.
    pub async fn redis_node(
        url: &str,
        node: &str,
        commands: Arc<AtomicU64>,
    ) -> Result<Self, SignalError> {
        Ok(Self::Redis(RedisRooms::connect(url, node, commands).await?))
    }

    /// Hands what other nodes send this node to `receiver` (not called in memory: there are
    /// no other nodes). A later call replaces it.
    pub fn on_message(&self, receiver: Receiver) {
        if let Self::Redis(rooms) = self {
            rooms.on_message(receiver);
        }
    }

    /// Sends `message` ([`NodeMessage`]) to another node (`Ok(false)`: no such node listens;
    /// in memory there are no other nodes).
    pub async fn send(&self, node: &str, message: Vec<u8>) -> Result<bool, SignalError> {
        match self {
            Self::Memory(_) => Ok(false),
            Self::Redis(rooms) => rooms.send(node, message).await,
        }
    }

    /// The node serving `consultation`'s media, if one does (in memory: `me`, the only node).
    pub async fn media_owner(
        &self,
        consultation: &str,
        me: &str,
    ) -> Result<Option<String>, SignalError> {
        match self {
            Self::Memory(_) => Ok(Some(me.to_owned())),
            Self::Redis(rooms) => rooms.media_owner(consultation).await,
        }
    }

    /// Makes `me` serve `consultation`'s media unless another node does, one that is not
    /// `gone` (a node found not listening any more); answers the node that serves it. Two
    /// nodes claiming at once agree on one.
    pub async fn claim_media(
        &self,
        consultation: &str,
        me: &str,
        gone: Option<&str>,
    ) -> Result<String, SignalError> {
        match self {
            Self::Memory(_) => Ok(me.to_owned()),
            Self::Redis(rooms) => rooms.claim_media(consultation, me, gone).await,
        }
    }

    /// `me` no longer serves `consultation`'s media (its sessions ended with the call).
    pub async fn release_media(&self, consultation: &str, me: &str) -> Result<(), SignalError> {
        match self {
            Self::Memory(_) => Ok(()),
            Self::Redis(rooms) => rooms.release_media(consultation, me).await,
        }
    }

    /// Stops listening to other nodes (shutdown).
    pub fn close(&self) {
        if let Self::Redis(rooms) = self {
            rooms.close();
        }
    }

    /// Commands sent to Redis for rooms so far (0 in memory).
    pub fn redis_commands(&self) -> u64 {
        match self {
            Self::Memory(_) => 0,
            Self::Redis(rooms) => rooms.commands(),
        }
    }

    /// A copy of the room as it is now (with Redis: read from Redis, not from what this node
    /// holds), if it has any state.
    pub async fn get(&self, consultation: &str) -> Result<Option<Room>, SignalError> {
        match self {
            Self::Memory(_) => self.read(consultation, |room| room.cloned()).await,
            Self::Redis(rooms) => Ok(rooms.fetch(consultation).await?.room.as_deref().cloned()),
        }
    }

    /// Reads the room without changing it (`None`: no such room). With Redis, the state this
    /// node holds (current as of the last change announced to it).
    pub async fn read<R>(
        &self,
        consultation: &str,
        look: impl FnOnce(Option<&Room>) -> R,
    ) -> Result<R, SignalError> {
        match self {
            Self::Memory(rooms) => Ok(look(
                rooms
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get(consultation),
            )),
            Self::Redis(rooms) => {
                let state = rooms.current(consultation).await?;
                Ok(look(state.room.as_deref()))
            }
        }
    }

    /// Checks something against the room: as [`RoomStore::read`], except that a refusal based
    /// on the state this node holds is checked again on the room as Redis has it now, so that
    /// a change made on another node a moment ago, not yet announced here, is never refused.
    pub async fn check<T, E>(
        &self,
        consultation: &str,
        check: impl Fn(Option<&Room>) -> Result<T, E>,
    ) -> Result<Result<T, E>, SignalError> {
        match self {
            Self::Memory(_) => self.read(consultation, check).await,
            Self::Redis(rooms) => {
                let held = rooms.current(consultation).await?;
                match check(held.room.as_deref()) {
                    Ok(fine) => Ok(Ok(fine)),
                    Err(_) => {
                        let now = rooms.fetch(consultation).await?;
                        Ok(check(now.room.as_deref()))
                    }
                }
            }
        }
    }

    /// Applies `change` to the room of `consultation` atomically and returns its result. Under
    /// contention (another node changed the room meanwhile) `change` runs again on the fresh
    /// state, so it must only compute: side effects belong after it returns. Rooms with nothing
    /// left in them are deleted.
    pub async fn update<R>(
        &self,
        consultation: &str,
        mut change: impl FnMut(&mut Room) -> R,
    ) -> Result<R, SignalError> {
        match self {
            Self::Memory(rooms) => {
                let mut rooms = rooms.lock().unwrap_or_else(PoisonError::into_inner);
                let room = rooms.entry(consultation.to_owned()).or_default();
                let result = change(room);
                if is_empty(room) {
                    rooms.remove(consultation);
                }
                Ok(result)
            }
            Self::Redis(rooms) => rooms.update(consultation, change).await,
        }
    }
}
