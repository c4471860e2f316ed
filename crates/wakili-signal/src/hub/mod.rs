//! The Socket.IO service: authentication, one ordered worker per connection, and the effects of
//! room changes (deliveries, audit entries, consent records, consultation status).
//!
//! **Why a worker per connection.** socketioxide spawns a task per incoming event, so two events
//! of one connection may be handled out of order — fatal for an offer followed by its ICE
//! candidates. It does run extractors inline, in arrival order, so our `intake::Intake` extractor
//! rate-limits each event and queues it for the connection's worker, which handles them one by
//! one. Every handler is registered inside the connect middleware, which completes before the
//! client gets its CONNECT ack, so no event can arrive before its handler exists (the lost-join
//! race in DEVELOPERS.md).

use std::{sync::Arc, time::Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use socketioxide::{
    ParserConfig, SocketIo,
    adapter::{Adapter, Emitter, LocalAdapter},
    extract::SocketRef,
    handler::ConnectHandler,
    layer::SocketIoLayer,
};
use socketioxide_redis::{RedisAdapter, RedisAdapterCtr};
use wakili_auth::Verifier;
use wakili_core::{
    Caller, Clock,
    quality::{Hysteresis, Tracker},
    room::{Outbound, RecordingView, Room, RoomPolicy},
};
use wakili_db::{
    AuditStore, ConsentStore, ConsultationStore, Db, DbError, GuestStore, QualityStore,
};
use wakili_settings::SignalingSettings;

use crate::{
    RoomStore, SignalError,
    expiry::TokenLife,
    limits::{SocketPermit, UserSockets},
    protocol::{CallAnswered, ProfileChanged, Refusal, ServerEvent},
    store::NodeMessage,
};

mod calls;
mod effects;
mod intake;
mod media;
mod media_route;
mod relay;
mod token;
mod worker;

/// The stores signaling uses, and nothing more.
#[derive(Clone)]
pub struct Stores {
    /// Consultations: who may join, and their status changes.
    pub consultations: Arc<dyn ConsultationStore>,
    /// Guests: who was invited to join, and as what.
    pub guests: Arc<dyn GuestStore>,
    /// The audit log.
    pub audit: Arc<dyn AuditStore>,
    /// Recording consent decisions.
    pub consents: Arc<dyn ConsentStore>,
    /// Quality samples.
    pub quality: Arc<dyn QualityStore>,
}

impl Stores {
    /// Signaling's part of the whole repository.
    pub fn of(db: &Db) -> Self {
        Self {
            consultations: db.clone(),
            guests: db.clone(),
            audit: db.clone(),
            consents: db.clone(),
            quality: db.clone(),
        }
    }
}

/// What signaling needs from the rest of the server.
pub struct Deps {
    /// The stores signaling reads and writes.
    pub stores: Stores,
    /// Verifies the handshake's JWT.
    pub verifier: Verifier,
    /// `[signaling]`.
    pub settings: SignalingSettings,
    /// Quality profile of consultations that have none set.
    pub default_profile: String,
    /// The server's clock.
    pub clock: Clock,
    /// What this node counts (connections, joins, signals, seated participants).
    pub telemetry: Arc<crate::Telemetry>,
    /// The embedded SFU, when it runs (`media:publish` is refused otherwise).
    pub sfu: Option<wakili_sfu::SfuHandle>,
    /// Records consultations through the SFU; `None`: browsers record.
    pub recorder: Option<Arc<dyn ServerRecorder>>,
}

/// Records consultations on the server (the SFU's recorder): told what each room decided after
/// every change that matters to it.
#[async_trait::async_trait]
pub trait ServerRecorder: Send + Sync {
    /// Makes `consultation`'s server recording `plan` (`None`: none). Idempotent.
    async fn apply(&self, consultation: &str, plan: Option<wakili_core::room::ServerRecording>);

    /// Whether it records `consultation` now (who comes and goes then matters to it).
    async fn records(&self, consultation: &str) -> bool;
}

/// Someone joined or left a consultation's call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceChange {
    /// The consultation.
    pub consultation_id: String,
    /// Who.
    pub user_id: String,
    /// Their display name.
    pub name: String,
    /// Joined (`true`) or left / lost the connection (`false`).
    pub joined: bool,
    /// The users connected to the call after the change (in the room or its waiting room).
    pub connected: Vec<String>,
}

/// Told about every [`PresenceChange`] (push rings the other party's phone). Called in order per
/// connection; it must not block.
pub trait PresenceObserver: Send + Sync + 'static {
    /// One change.
    fn changed(&self, change: PresenceChange);
}

/// Shared by every connection of this node.
struct Hub {
    observer: std::sync::OnceLock<Arc<dyn PresenceObserver>>,
    /// This node's id: rooms record a participant's connection as `<node>/<socket id>`.
    node: String,
    store: RoomStore,
    stores: Stores,
    verifier: Verifier,
    settings: SignalingSettings,
    policy: RoomPolicy,
    default_profile: String,
    hysteresis: Hysteresis,
    clock: Clock,
    telemetry: Arc<crate::Telemetry>,
    /// Connections per user on this node.
    sockets: Arc<UserSockets>,
    /// The embedded SFU, when it runs.
    sfu: Option<wakili_sfu::SfuHandle>,
    /// The server's recorder, when the SFU records.
    recorder: Option<Arc<dyn ServerRecorder>>,
    /// Calls to other nodes' media servers awaiting replies.
    calls: media_route::Calls,
}

/// The running signaling service: lets the REST side tell rooms about changes.
#[derive(Clone)]
pub struct Signaling {
    hub: Arc<Hub>,
    io: Io,
}

#[derive(Clone)]
enum Io {
    Local(SocketIo<LocalAdapter>),
    Redis(SocketIo<RedisAdapter<Emitter>>),
}

/// The tower layer that serves `/socket.io/` in front of the REST router.
#[derive(Clone)]
pub enum SignalLayer {
    /// One node.
    Local(SocketIoLayer<LocalAdapter>),
    /// Many nodes through Redis.
    Redis(SocketIoLayer<RedisAdapter<Emitter>>),
}

impl SignalLayer {
    /// Puts Socket.IO in front of `router`.
    pub fn wrap<S: Clone + Send + Sync + 'static>(
        self,
        router: axum::Router<S>,
    ) -> axum::Router<S> {
        match self {
            Self::Local(layer) => router.layer(layer),
            Self::Redis(layer) => router.layer(layer),
        }
    }
}

/// How long a new Engine.IO session may take to join the namespace (see `start`).
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Starts signaling: rooms in Redis and Socket.IO over the Redis adapter when
/// `settings.redis_url` is set, in memory otherwise.
pub async fn start(deps: Deps) -> Result<(Signaling, SignalLayer), SignalError> {
    let settings = deps.settings;
    let node = uuid::Uuid::new_v4().simple().to_string();
    let store = match &settings.redis_url {
        Some(url) => RoomStore::redis_node(url, &node, deps.telemetry.room_commands()).await?,
        None => RoomStore::memory(),
    };
    let hub = Arc::new(Hub {
        observer: std::sync::OnceLock::new(),
        node,
        store,
        stores: deps.stores,
        verifier: deps.verifier,
        policy: RoomPolicy {
            grace: chrono::Duration::from_std(settings.resume_grace)
                .unwrap_or(chrono::Duration::seconds(30)),
            admission: settings.admission,
            notice_version: settings.notice_version.clone(),
            server_recording: deps.recorder.is_some(),
        },
        default_profile: deps.default_profile,
        hysteresis: Hysteresis::default(),
        clock: deps.clock,
        telemetry: deps.telemetry,
        sockets: UserSockets::new(settings.max_sockets_per_user),
        sfu: deps.sfu,
        recorder: deps.recorder,
        calls: media_route::Calls::default(),
        settings,
    });
    let max_payload = hub.settings.max_packet_bytes;
    let builder = SocketIo::builder()
        // The protocol has no binary attachments: a binary packet that announces any closes
        // the connection at once, instead of being buffered until its attachments arrive.
        .with_parser(
            ParserConfig::common()
                .max_incoming_binaries(0)
                .max_incoming_binary_buf_size(0),
        )
        // An Engine.IO session that has not joined the namespace this long after opening is
        // closed. A refused CONNECT (bad token) leaves its session open for another try, and
        // socketioxide gives no way to close it from the middleware: this bounds how long
        // refused sessions hold memory (the default, 45 s, let an unauthenticated client pile
        // them up). A client sends CONNECT right after the open packet.
        .connect_timeout(CONNECT_TIMEOUT)
        .max_payload(max_payload)
        // Room for bursts of signals to a slow receiver (the default is 128 packets).
        .max_buffer_size(1024)
        // `max_payload` bounds HTTP long-polling bodies; WebSocket messages have their own limit.
        .ws_max_message_size(usize::try_from(max_payload).unwrap_or(usize::MAX))
        .ws_max_frame_size(usize::try_from(max_payload).unwrap_or(usize::MAX));
    match hub.settings.redis_url.clone() {
        None => {
            let (layer, io) = builder.with_state(Arc::clone(&hub)).build_layer();
            io.ns(
                "/",
                (async |_: SocketRef<LocalAdapter>| {}).with(intake::authenticate),
            );
            if let Some(sfu) = hub.sfu.clone() {
                tokio::spawn(media::pump(io.clone(), sfu));
            }
            let io = Io::Local(io);
            Ok((Signaling { hub, io }, SignalLayer::Local(layer)))
        }
        Some(url) => {
            // The adapter needs RESP3 push messages, whatever protocol the URL asks for.
            let client = redis::Client::open(with_resp3(&url).as_str())?;
            let adapter = RedisAdapterCtr::new_with_redis(&client).await?;
            let (layer, io) = builder
                .with_adapter::<RedisAdapter<Emitter>>(adapter)
                .with_state(Arc::clone(&hub))
                .build_layer();
            io.ns(
                "/",
                (async |_: SocketRef<RedisAdapter<Emitter>>| {}).with(intake::authenticate),
            )
            .await
            .map_err(|e| SignalError::Adapter(e.to_string()))?;
            if let Some(sfu) = hub.sfu.clone() {
                tokio::spawn(media::pump(io.clone(), sfu));
            }
            let (to, weak) = (io.clone(), Arc::downgrade(&hub));
            hub.store.on_message(Box::new(move |message| match message {
                NodeMessage::Event(event) => relay::deliver(&to, event),
                NodeMessage::Call { from, id, body } => {
                    if let Some(hub) = weak.upgrade() {
                        media_route::answer(hub, from, id, body);
                    }
                }
                NodeMessage::Reply { id, body } => {
                    if let Some(hub) = weak.upgrade() {
                        hub.calls.answered(id, body);
                    }
                }
            }));
            let io = Io::Redis(io);
            Ok((Signaling { hub, io }, SignalLayer::Redis(layer)))
        }
    }
}

impl Signaling {
    /// Registers the one presence observer (a second call is ignored).
    pub fn observe(&self, observer: Arc<dyn PresenceObserver>) {
        let _ = self.hub.observer.set(observer);
    }

    /// Tells the consultation's call that `by` answered a call notification: `call:accepted`
    /// or `call:declined`, so a caller waiting alone learns of a decline.
    pub async fn call_response(&self, consultation: &str, by: &str, name: &str, accepted: bool) {
        let event = CallAnswered {
            consultation_id: consultation,
            by,
            name,
            accepted,
        };
        self.emit(consultation, &event).await;
    }

    /// Tells everyone in the consultation that the lawyer changed its quality profile.
    pub async fn profile_changed(&self, consultation: &str, profile: &str, by: &str) {
        self.emit(consultation, &ProfileChanged { profile, by })
            .await;
    }

    /// Sends `event` to everyone in the consultation's call.
    async fn emit(&self, consultation: &str, event: &impl ServerEvent) {
        let room = consultation_room(consultation);
        match &self.io {
            Io::Local(io) => emit_event(io, room, event).await,
            Io::Redis(io) => emit_event(io, room, event).await,
        }
    }

    /// The consultation was ended or cancelled over the API: everyone in the call is told and the
    /// room closes.
    pub async fn closed(&self, consultation: &str, by: &str) {
        let outcome = self
            .hub
            .store
            .update(consultation, |room| room.close(by))
            .await;
        match outcome {
            Ok(outcome) => match &self.io {
                Io::Local(io) => self.hub.deliver(io, consultation, outcome.outbound).await,
                Io::Redis(io) => self.hub.deliver(io, consultation, outcome.outbound).await,
            },
            Err(e) => {
                tracing::error!(consultation_id = consultation, error = %e, "closing the room failed")
            }
        }
    }

    /// `user_id`'s invitation was withdrawn or their role changed over the API: they leave the
    /// call (`participant:left` with `reason` to the others, `session:closed` `dismissed` to
    /// them) and their connection closes.
    pub async fn dismissed(&self, consultation: &str, user_id: &str, reason: &'static str) {
        let outcome = self
            .hub
            .store
            .update(consultation, |room| room.dismiss(user_id, reason))
            .await;
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::error!(consultation_id = consultation, error = %e, "dismissing a guest failed");
                return;
            }
        };
        match &self.io {
            Io::Local(io) => self.hub.dismiss(io, consultation, outcome).await,
            Io::Redis(io) => self.hub.dismiss(io, consultation, outcome).await,
        }
    }

    /// The consultation's recording as signaling knows it: active only once everyone present
    /// consented (inactive when nobody is in the room).
    pub async fn recording(&self, consultation: &str) -> Result<RecordingView, SignalError> {
        self.hub
            .store
            .read(consultation, |room| {
                room.map_or(
                    RecordingView {
                        active: false,
                        recording_id: None,
                        server: false,
                    },
                    Room::recording_view,
                )
            })
            .await
    }

    /// What this node counts.
    pub fn telemetry(&self) -> &Arc<crate::Telemetry> {
        &self.hub.telemetry
    }

    /// Disconnects every connection on this node (shutdown): participants become
    /// "reconnecting" and may resume on another node.
    pub async fn shutdown(&self) {
        self.hub.store.close();
        match &self.io {
            Io::Local(io) => io.close().await,
            Io::Redis(io) => io.close().await,
        }
    }
}

/// `url` with `protocol=resp3` (the Socket.IO adapter subscribes through RESP3 pushes).
fn with_resp3(url: &str) -> String {
    if url.contains("protocol=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&protocol=resp3")
    } else {
        format!("{url}?protocol=resp3")
    }
}

fn consultation_room(consultation: &str) -> String {
    format!("c:{consultation}")
}

fn participant_room(participant: &str) -> String {
    format!("p:{participant}")
}

/// Sends `event` to a Socket.IO room (one participant's, or a whole consultation's).
async fn emit_event<A: Adapter>(io: &SocketIo<A>, room: String, event: &impl ServerEvent) {
    let name = event.name();
    if let Err(e) = io.to(room).emit(name, event).await {
        tracing::warn!(event = name, error = %e, "delivery failed");
    }
}

/// Where a connection sits once joined.
#[derive(Debug, Clone)]
struct Seat {
    consultation: String,
    participant: String,
}

/// What a handled event leads to: the ack's fields, then, after the ack, room deliveries and
/// events for this connection alone.
#[derive(Default)]
struct Reply {
    fields: Option<serde_json::Value>,
    deliver: Vec<Outbound>,
    direct: Option<(&'static str, serde_json::Value)>,
}

impl Reply {
    /// A reply whose ack carries `fields`.
    fn ack(fields: &impl Serialize) -> Result<Self, Refusal> {
        Ok(Self {
            fields: Some(serde_json::to_value(fields).map_err(unavailable)?),
            ..Self::default()
        })
    }

    /// Also sends `event` to this connection, after the ack.
    fn direct(&mut self, event: &impl ServerEvent) -> Result<(), Refusal> {
        self.direct = Some((
            event.name(),
            serde_json::to_value(event).map_err(unavailable)?,
        ));
        Ok(())
    }
}

/// One connection's worker: handles its events one at a time, in order.
struct Worker<A: Adapter> {
    hub: Arc<Hub>,
    io: SocketIo<A>,
    socket: SocketRef<A>,
    /// The token's lifetime: warned before, closed after.
    life: TokenLife,
    /// An `auth:refresh` moved the deadlines.
    token_renewed: bool,
    /// Closed because the token expired: every further event is refused.
    expired: bool,
    /// This connection's place in its user's count.
    _permit: SocketPermit,
    caller: Caller,
    name: String,
    seat: Option<Seat>,
    tracker: Tracker,
    /// The participant's poor-quality episode, for `quality.degraded`.
    degradation: wakili_core::quality::Degradation,
    last_sample: Option<DateTime<Utc>>,
    /// When the event being handled arrived.
    received: Instant,
}

fn unavailable(e: impl std::fmt::Display) -> Refusal {
    tracing::error!(error = %e, "signaling storage failed");
    Refusal::new("unavailable", "storage is unavailable; retry")
}

impl From<SignalError> for Refusal {
    fn from(e: SignalError) -> Self {
        unavailable(e)
    }
}

impl From<DbError> for Refusal {
    fn from(e: DbError) -> Self {
        unavailable(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_adapter_always_gets_resp3() {
        assert_eq!(
            with_resp3("redis://r:6379"),
            "redis://r:6379?protocol=resp3"
        );
        assert_eq!(
            with_resp3("redis://r:6379/1?timeout=2"),
            "redis://r:6379/1?timeout=2&protocol=resp3"
        );
        assert_eq!(
            with_resp3("redis://r/?protocol=resp3"),
            "redis://r/?protocol=resp3"
        );
    }
}
