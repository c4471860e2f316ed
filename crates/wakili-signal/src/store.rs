//! Room state storage. Every change is a read–modify–write of the whole [`Room`] under
//! optimistic concurrency, so two nodes handling events for one consultation never lose each
//! other's changes.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
    time::Duration,
};

use redis::{AsyncCommands, Script, aio::ConnectionManager};
use wakili_core::room::Room;

/// How long an untouched room survives in Redis (a crashed node cannot leak rooms forever).
const ROOM_TTL: Duration = Duration::from_secs(24 * 3600);
/// Attempts before an update gives up under contention.
const MAX_ATTEMPTS: u32 = 100;

/// Compare-and-set: replace `KEYS[1]` with `ARGV[2]` (or delete it when `ARGV[2]` is empty) only
/// if it still holds `ARGV[1]` (empty: absent).
const CAS: &str = r"
local current = redis.call('GET', KEYS[1])
if (current == false and ARGV[1] == '') or current == ARGV[1] then
  if ARGV[2] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3]) end
  return 1
end
return 0
";

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
    /// Many nodes: JSON under `wakili:room:<consultation>` in Redis.
    Redis {
        /// Connection (reconnects by itself).
        conn: ConnectionManager,
        /// The compare-and-set script.
        cas: Script,
    },
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

    /// Rooms in Redis at `url`.
    pub async fn redis(url: &str) -> Result<Self, SignalError> {
        let client = redis::Client::open(url)?;
        let conn = ConnectionManager::new(client).await?;
        Ok(Self::Redis {
            conn,
            cas: Script::new(CAS),
        })
    }

    /// A copy of the room, if it has any state.
    pub async fn get(&self, consultation: &str) -> Result<Option<Room>, SignalError> {
        match self {
            Self::Memory(rooms) => Ok(rooms
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(consultation)
                .cloned()),
            Self::Redis { conn, .. } => {
                let text: Option<String> = conn.clone().get(key(consultation)).await?;
                Ok(text.map(|t| serde_json::from_str(&t)).transpose()?)
            }
        }
    }

    /// Reads the room without changing it (`None`: no such room).
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
            Self::Redis { conn, .. } => {
                let text: Option<String> = conn.clone().get(key(consultation)).await?;
                let room: Option<Room> = text.map(|t| serde_json::from_str(&t)).transpose()?;
                Ok(look(room.as_ref()))
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
            Self::Redis { conn, cas } => {
                let key = key(consultation);
                let mut conn = conn.clone();
                for attempt in 0..MAX_ATTEMPTS {
                    let before: Option<String> = conn.get(&key).await?;
                    let mut room: Room = match &before {
                        Some(text) => serde_json::from_str(text)?,
                        None => Room::default(),
                    };
                    let result = change(&mut room);
                    let after = if is_empty(&room) {
                        String::new()
                    } else {
                        serde_json::to_string(&room)?
                    };
                    let swapped: i32 = cas
                        .key(&key)
                        .arg(before.as_deref().unwrap_or(""))
                        .arg(&after)
                        .arg(ROOM_TTL.as_secs())
                        .invoke_async(&mut conn)
                        .await?;
                    if swapped == 1 {
                        return Ok(result);
                    }
                    if attempt > 3 {
                        tokio::time::sleep(Duration::from_millis(u64::from(attempt.min(20)))).await;
                    } else {
                        tokio::task::yield_now().await;
                    }
                }
                Err(SignalError::Contended(consultation.to_owned()))
            }
        }
    }
}

fn key(consultation: &str) -> String {
    format!("wakili:room:{consultation}")
}
