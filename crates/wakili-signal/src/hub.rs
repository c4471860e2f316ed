//! The Socket.IO service: authentication, one ordered worker per connection, and the effects of
//! room changes (deliveries, audit entries, consent records, consultation status).
//!
//! **Why a worker per connection.** socketioxide spawns a task per incoming event, so two events
//! of one connection may be handled out of order — fatal for an offer followed by its ICE
//! candidates. It does run extractors inline, in arrival order, so our [`Intake`] extractor
//! rate-limits each event and queues it for the connection's worker, which handles them one by
//! one. Every handler is registered inside the connect middleware, which completes before the
//! client gets its CONNECT ack, so no event can arrive before its handler exists (the lost-join
//! race in DEVELOPERS.md).

use std::{
    convert::Infallible,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, value::RawValue};
use socketioxide::{
    ParserConfig, SocketIo,
    adapter::{Adapter, Emitter, LocalAdapter},
    extract::{AckSender, Extension, SocketRef, State, TryData},
    handler::{ConnectHandler, FromMessageParts},
    layer::SocketIoLayer,
    socket::Socket,
};
use socketioxide_core::Value;
use socketioxide_redis::{RedisAdapter, RedisAdapterCtr};
use tokio::sync::mpsc;
use wakili_auth::Verifier;
use wakili_core::{
    Caller, Clock, Role,
    consultation::{Access, Action},
    new_id,
    quality::{self, Hysteresis, QualityReport, Tracker},
    room::{
        Fact, Input, Outbound, Outcome, Recording, RecordingView, Room, RoomError, RoomPolicy, To,
    },
};
use wakili_db::{
    Db, DbError,
    models::{ConsentRecord, NewAuditEvent, QualitySample},
};
use wakili_settings::SignalingSettings;

mod token;

use crate::{
    RoomStore, SignalError,
    expiry::{self, TokenLife},
    limiter::{Limiter, Verdict},
    limits::{SocketPermit, TooManySockets, UserSockets},
    protocol::{
        self, AdmitRequest, ConsentRequest, JoinRequest, MediaRequest, Refusal, SignalOut,
        SignalRequest,
    },
};

/// What signaling needs from the rest of the server.
pub struct Deps {
    /// The repository (consultations, audit log, consents, quality samples).
    pub db: Db,
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
    store: RoomStore,
    db: Db,
    verifier: Verifier,
    settings: SignalingSettings,
    policy: RoomPolicy,
    default_profile: String,
    hysteresis: Hysteresis,
    clock: Clock,
    telemetry: Arc<crate::Telemetry>,
    /// Connections per user on this node.
    sockets: Arc<UserSockets>,
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
    let store = match &settings.redis_url {
        Some(url) => RoomStore::redis(url).await?,
        None => RoomStore::memory(),
    };
    let hub = Arc::new(Hub {
        observer: std::sync::OnceLock::new(),
        store,
        db: deps.db,
        verifier: deps.verifier,
        policy: RoomPolicy {
            grace: chrono::Duration::from_std(settings.resume_grace)
                .unwrap_or(chrono::Duration::seconds(30)),
            admission: settings.admission,
            notice_version: settings.notice_version.clone(),
        },
        default_profile: deps.default_profile,
        hysteresis: Hysteresis::default(),
        clock: deps.clock,
        telemetry: deps.telemetry,
        sockets: UserSockets::new(settings.max_sockets_per_user),
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
                (async |_: SocketRef<LocalAdapter>| {}).with(authenticate),
            );
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
                (async |_: SocketRef<RedisAdapter<Emitter>>| {}).with(authenticate),
            )
            .await
            .map_err(|e| SignalError::Adapter(e.to_string()))?;
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
        let event = json!({ "consultationId": consultation, "by": by, "name": name });
        let kind = if accepted {
            "call:accepted"
        } else {
            "call:declined"
        };
        match &self.io {
            Io::Local(io) => emit_to(io, consultation_room(consultation), kind, &event).await,
            Io::Redis(io) => emit_to(io, consultation_room(consultation), kind, &event).await,
        }
    }

    /// Tells everyone in the consultation that the lawyer changed its quality profile.
    pub async fn profile_changed(&self, consultation: &str, profile: &str, by: &str) {
        let event = json!({ "profile": profile, "by": by });
        match &self.io {
            Io::Local(io) => {
                emit_to(
                    io,
                    consultation_room(consultation),
                    "quality-profile:changed",
                    &event,
                )
                .await
            }
            Io::Redis(io) => {
                emit_to(
                    io,
                    consultation_room(consultation),
                    "quality-profile:changed",
                    &event,
                )
                .await
            }
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

async fn emit_to<A: Adapter, T: Serialize + ?Sized>(
    io: &SocketIo<A>,
    room: String,
    name: &str,
    event: &T,
) {
    if let Err(e) = io.to(room).emit(name, event).await {
        tracing::warn!(event = name, error = %e, "delivery failed");
    }
}

/// The handshake's `auth` object.
#[derive(Deserialize)]
struct Handshake {
    token: String,
}

/// Why a connection is refused; its text is the client's `connect_error` message.
#[derive(Debug, thiserror::Error)]
enum Refused {
    /// No token, or one the verifier refuses.
    #[error("unauthorized")]
    Unauthorized,
    /// The user holds `signaling.max_sockets_per_user` connections already.
    #[error(transparent)]
    TooManySockets(#[from] TooManySockets),
}

/// One connection's intake: rate limit and queue, shared with the [`Intake`] extractor.
struct Conn<A: Adapter> {
    queue: mpsc::Sender<Item<A>>,
    rate: u32,
    limiter: Mutex<Limiter>,
    closing: AtomicBool,
}

enum Item<A: Adapter> {
    Event {
        text: socketioxide_core::Str,
        ack: AckSender<A>,
        received: Instant,
    },
    Closed,
}

/// Connect middleware: verifies the token, then registers every handler and starts the
/// connection's worker — all before the CONNECT ack goes out.
async fn authenticate<A: Adapter>(
    socket: SocketRef<A>,
    io: SocketIo<A>,
    State(hub): State<Arc<Hub>>,
    TryData(auth): TryData<Handshake>,
) -> Result<(), Refused> {
    let Ok(Handshake { token }) = auth else {
        hub.telemetry.refused();
        return Err(Refused::Unauthorized);
    };
    let claims = hub.verifier.verify(&token, hub.clock.now()).map_err(|e| {
        tracing::info!(reason = %e, "socket.io handshake refused");
        hub.telemetry.refused();
        Refused::Unauthorized
    })?;
    let permit = hub.sockets.acquire(claims.user_id.as_str()).map_err(|e| {
        tracing::info!(user_id = %claims.user_id, max = e.max, "socket.io handshake refused: too many connections");
        hub.telemetry.refused();
        Refused::from(e)
    })?;
    hub.telemetry.connected();
    let capacity = hub.settings.rate_burst as usize + 16;
    let (queue, inbox) = mpsc::channel(capacity);
    let conn = Arc::new(Conn {
        queue,
        rate: hub.settings.rate_per_second,
        limiter: Mutex::new(Limiter::new(
            hub.settings.rate_per_second,
            hub.settings.rate_burst,
            Instant::now(),
        )),
        closing: AtomicBool::new(false),
    });
    socket.extensions.insert(conn);
    socket.on_fallback(async |_: Intake| {});
    socket.on_disconnect(async |Extension(conn): Extension<Arc<Conn<A>>>| {
        let _ = conn.queue.send(Item::Closed).await;
    });
    let life = TokenLife::new(
        claims.expires_at,
        hub.verifier.leeway(),
        hub.settings.expiry_warning,
    );
    let worker = Worker {
        hub,
        io,
        socket,
        life,
        token_renewed: false,
        expired: false,
        _permit: permit,
        caller: Caller {
            user_id: claims.user_id,
            role: claims.role,
        },
        name: claims.name,
        seat: None,
        tracker: Tracker::default(),
        last_sample: None,
        received: Instant::now(),
    };
    tokio::spawn(worker.run(inbox));
    Ok(())
}

/// Extractor that does the real work of the fallback handler inline, in arrival order.
struct Intake;

impl<A: Adapter> FromMessageParts<A> for Intake {
    type Error = Infallible;

    fn from_message_parts(
        s: &Arc<Socket<A>>,
        v: &mut Value,
        ack_id: &Option<i64>,
    ) -> Result<Self, Infallible> {
        let Ok(ack) = AckSender::from_message_parts(s, v, ack_id);
        let Some(conn) = s.extensions.get::<Arc<Conn<A>>>() else {
            return Ok(Self);
        };
        if conn.closing.load(Ordering::Relaxed) {
            // Being closed for flooding: read and drop.
            return Ok(Self);
        }
        let (verdict, wait) = {
            let mut limiter = conn.limiter.lock().unwrap_or_else(PoisonError::into_inner);
            (limiter.check(Instant::now()), limiter.retry_after())
        };
        match verdict {
            Verdict::Allow => {}
            Verdict::Refuse => {
                let refusal = Refusal::new(
                    "rate_limited",
                    format!(
                        "more than {} events per second; retry in {} ms",
                        conn.rate,
                        wait.as_millis().max(1)
                    ),
                );
                let _ = ack.send(&protocol::failed(&refusal));
                return Ok(Self);
            }
            Verdict::Close => {
                close_flooder(s, &conn);
                return Ok(Self);
            }
        }
        let Some(text) = v.as_str().cloned() else {
            let refusal = Refusal::bad_request("binary payloads are not accepted");
            let _ = ack.send(&protocol::failed(&refusal));
            return Ok(Self);
        };
        let item = Item::Event {
            text,
            ack,
            received: Instant::now(),
        };
        if conn.queue.try_send(item).is_err() {
            close_flooder(s, &conn);
        }
        Ok(Self)
    }
}

/// How long a flooding connection's input is still read (and dropped) after it was told it is
/// closed. Closing at once, with its burst unread, makes the kernel reset the connection, and
/// the reset discards the notice before the client reads it.
const FLOOD_DRAIN: std::time::Duration = std::time::Duration::from_millis(500);

/// Tells a flooding connection why, then closes it.
fn close_flooder<A: Adapter>(s: &Arc<Socket<A>>, conn: &Conn<A>) {
    if conn.closing.swap(true, Ordering::SeqCst) {
        return;
    }
    tracing::warn!(sid = %s.id, "closing a connection that floods events");
    let socket = SocketRef::from(Arc::clone(s));
    tokio::spawn(async move {
        let _ = socket.emit(
            "session:closed",
            &json!({"reason": "rate_limited", "message": "too many events; the connection is closed"}),
        );
        tokio::time::sleep(FLOOD_DRAIN).await;
        let _ = socket.disconnect();
    });
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
    fn fields(fields: serde_json::Value) -> Self {
        Self {
            fields: Some(fields),
            ..Self::default()
        }
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

impl<A: Adapter> Worker<A> {
    async fn run(mut self, mut inbox: mpsc::Receiver<Item<A>>) {
        let timer = tokio::time::sleep(self.token_wait());
        tokio::pin!(timer);
        loop {
            let item = tokio::select! {
                biased;
                item = inbox.recv() => item,
                () = &mut timer, if !self.expired => {
                    self.token_due();
                    timer.as_mut().reset(tokio::time::Instant::now() + self.token_wait());
                    continue;
                }
            };
            let Some(item) = item else { break };
            match item {
                Item::Event {
                    text,
                    ack,
                    received,
                } => {
                    self.received = received;
                    match self.event(&text).await {
                        Ok(reply) => {
                            let sent = match reply.fields {
                                Some(fields) => ack.send(&protocol::ok(fields)),
                                None => ack.send(&protocol::done()),
                            };
                            if let Err(e) = sent {
                                tracing::debug!(error = %e, "ack not sent");
                            }
                            if let Some((name, event)) = reply.direct
                                && let Err(e) = self.socket.emit(name, &event)
                            {
                                tracing::debug!(event = name, error = %e, "event not sent");
                            }
                            if let Some(seat) = &self.seat {
                                self.hub
                                    .deliver(&self.io, &seat.consultation, reply.deliver)
                                    .await;
                            }
                        }
                        Err(refusal) => {
                            let _ = ack.send(&protocol::failed(&refusal));
                            if refusal.code == expiry::TOKEN_EXPIRED {
                                // After the ack, so that the client reads why.
                                self.close_expired();
                            }
                        }
                    }
                }
                Item::Closed => {
                    self.dropped().await;
                    break;
                }
            }
            if std::mem::take(&mut self.token_renewed) {
                timer
                    .as_mut()
                    .reset(tokio::time::Instant::now() + self.token_wait());
            }
        }
        self.hub.telemetry.disconnected();
    }

    fn seat(&self) -> Result<Seat, Refusal> {
        self.seat
            .clone()
            .ok_or_else(|| Refusal::new("not_joined", "send consultation:join first"))
    }

    async fn event(&mut self, text: &str) -> Result<Reply, Refusal> {
        self.check_token()?;
        let packet = protocol::parse_packet(text)?;
        let data = packet.data;
        match packet.event.as_str() {
            "signal" => self.signal(data).await,
            "auth:refresh" => self.refresh(data),
            "consultation:join" => {
                let joined = self.join(data).await;
                if joined.is_err() {
                    self.hub.telemetry.join_refused();
                }
                joined
            }
            "media:state" => {
                let m: MediaRequest = protocol::decode("media:state", data)?;
                let media = wakili_core::room::MediaState {
                    audio: m.audio,
                    video: m.video,
                    screen: m.screen,
                };
                let seat = self.seat()?;
                self.change(Input::Media {
                    participant_id: seat.participant,
                    media,
                })
                .await
            }
            "quality:report" => self.quality(data).await,
            "participant:admit" => {
                let request = AdmitRequest::parse(data)?;
                let seat = self.seat()?;
                self.change(Input::Admit {
                    by: seat.participant,
                    target: request.participant_id,
                })
                .await
            }
            "recording:start" => self.start_recording().await,
            "recording:stop" => {
                let seat = self.seat()?;
                self.change(Input::RecordingStop {
                    by: seat.participant,
                })
                .await
            }
            "recording:consent" => {
                let request: ConsentRequest = protocol::decode("recording:consent", data)?;
                self.consent(request).await
            }
            "consultation:leave" => {
                let seat = self.seat()?;
                let reply = self
                    .change(Input::Leave {
                        participant_id: seat.participant.clone(),
                    })
                    .await;
                self.socket.leave(consultation_room(&seat.consultation));
                self.socket.leave(participant_room(&seat.participant));
                self.hub.telemetry.left(
                    &seat.consultation,
                    &seat.participant,
                    &self.socket.id.to_string(),
                );
                self.hub
                    .presence(
                        &seat.consultation,
                        self.caller.user_id.as_str(),
                        &self.name,
                        false,
                    )
                    .await;
                // Others still hear about the leave.
                if let Ok(reply) = reply {
                    self.hub
                        .deliver(&self.io, &seat.consultation, reply.deliver)
                        .await;
                }
                self.seat = None;
                Ok(Reply::default())
            }
            "consultation:end" => {
                let seat = self.seat()?;
                self.change(Input::End {
                    by: seat.participant,
                })
                .await
            }
            other => Err(Refusal::new(
                "unknown_event",
                format!("unknown event {:?}", truncate(other)),
            )),
        }
    }

    /// Applies `change` to this connection's room and persists the facts it decided; returns
    /// the deliveries and whatever else `change` returned.
    async fn apply<R>(
        &self,
        seat: &Seat,
        change: impl FnMut(&mut Room) -> Result<(Outcome, R), RoomError>,
    ) -> Result<(Vec<Outbound>, R), Refusal> {
        let (outcome, extra) = self.hub.store.update(&seat.consultation, change).await??;
        self.hub
            .persist(
                &seat.consultation,
                outcome.facts,
                self.caller.user_id.as_str(),
                &seat.participant,
            )
            .await?;
        Ok((outcome.outbound, extra))
    }

    /// Applies `input` to the room, persists its facts and returns its deliveries.
    async fn change(&mut self, input: Input) -> Result<Reply, Refusal> {
        let seat = self.seat()?;
        let (policy, now) = (&self.hub.policy, self.hub.clock.now());
        let (deliver, ()) = self
            .apply(&seat, |room| {
                room.handle(input.clone(), policy, now).map(|out| (out, ()))
            })
            .await?;
        Ok(Reply {
            deliver,
            ..Reply::default()
        })
    }

    async fn signal(&mut self, data: Option<&RawValue>) -> Result<Reply, Refusal> {
        let request = SignalRequest::parse(data)?;
        let seat = self.seat()?;
        request.check_sender(&seat.participant)?;
        self.hub
            .store
            .read(&seat.consultation, |room| match room {
                Some(room) => room.check_signal(&seat.participant, &request.to),
                None => Err(RoomError::NoParticipant),
            })
            .await??;
        let out = SignalOut {
            from: &seat.participant,
            kind: request.kind,
            payload: request.payload,
        };
        emit_to(&self.io, participant_room(&request.to), "signal", &out).await;
        self.hub.telemetry.relayed(request.kind);
        if request.kind == protocol::SignalType::Restart {
            // Counted in the consultation's quality summary (network stability).
            let audit = NewAuditEvent {
                consultation_id: Some(seat.consultation.clone()),
                actor_id: Some(self.caller.user_id.to_string()),
                action: "participant.ice_restart",
                detail: json!({ "participantId": seat.participant, "via": "signaling" }),
            };
            if let Err(e) = self.hub.db.append_audit(audit, self.hub.clock.now()).await {
                tracing::warn!(error = %e, "ICE restart not recorded");
            }
        }
        Ok(Reply::default())
    }

    async fn join(&mut self, data: Option<&RawValue>) -> Result<Reply, Refusal> {
        if self.seat.is_some() {
            return Err(Refusal::new(
                "already_joined",
                "this connection is already in a consultation; send consultation:leave first",
            ));
        }
        let request = JoinRequest::parse(data)?;
        let hub = Arc::clone(&self.hub);
        let consultation = hub
            .db
            .consultation(&request.consultation_id)
            .await?
            .ok_or_else(|| Refusal::new("not_found", "no such consultation"))?;
        let role = match Access::of(
            &self.caller,
            &consultation.lawyer_id,
            &consultation.client_id,
        ) {
            Access::None => {
                return Err(Refusal::new(
                    "forbidden",
                    "only the consultation's lawyer, its client and admins can join",
                ));
            }
            Access::Client => Role::Client,
            Access::Lawyer => Role::Lawyer,
            Access::Admin => Role::Admin,
        };
        if consultation.status.is_closed() {
            return Err(Refusal::new(
                "consultation_closed",
                format!("the consultation is {}", consultation.status),
            ));
        }
        let input = Input::Join {
            user_id: self.caller.user_id.to_string(),
            role,
            name: self.name.clone(),
            resume_token: request.resume_token,
            participant_id: uuid::Uuid::new_v4().to_string(),
            new_resume_token: format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            ),
            connection: self.socket.id.to_string(),
        };
        let now = hub.clock.now();
        let id = consultation.id.clone();
        let (joined, outcome) = hub
            .store
            .update(&id, |room| room.join(input.clone(), &hub.policy, now))
            .await??;
        // Older connections of this participant (or of this user) go first, so they do not
        // receive what follows.
        for fact in &outcome.facts {
            if let Fact::Disconnect { participant_id } = fact {
                hub.kick(&self.io, participant_id).await;
            }
        }
        self.socket.join(consultation_room(&id));
        self.socket.join(participant_room(&joined.participant_id));
        self.seat = Some(Seat {
            consultation: id.clone(),
            participant: joined.participant_id.clone(),
        });
        hub.persist(
            &id,
            outcome.facts,
            self.caller.user_id.as_str(),
            &joined.participant_id,
        )
        .await?;
        tracing::info!(consultation_id = %id, user_id = %self.caller.user_id, participant_id = %joined.participant_id, resumed = joined.resumed, waiting = joined.waiting, "joined");
        hub.telemetry.joined(
            self.received.elapsed(),
            &id,
            &joined.participant_id,
            crate::telemetry::Seated {
                user_id: self.caller.user_id.to_string(),
                role: role.as_str().to_owned(),
                since: now,
                quality: None,
                connection: self.socket.id.to_string(),
            },
        );
        hub.presence(&id, self.caller.user_id.as_str(), &self.name, true)
            .await;
        let profile = consultation
            .quality_profile
            .unwrap_or_else(|| hub.default_profile.clone());
        let mut fields = serde_json::to_value(&joined).map_err(unavailable)?;
        if let Some(map) = fields.as_object_mut() {
            map.insert("qualityProfile".into(), profile.into());
        }
        Ok(Reply {
            fields: Some(fields),
            deliver: outcome.outbound,
            direct: None,
        })
    }

    async fn quality(&mut self, data: Option<&RawValue>) -> Result<Reply, Refusal> {
        let report: QualityReport = protocol::decode("quality:report", data)?;
        let problems = report.problems();
        if !problems.is_empty() {
            return Err(Refusal::bad_request(format!(
                "quality:report: out of range: {}",
                problems.join(", ")
            )));
        }
        let seat = self.seat()?;
        let now = self.hub.clock.now();
        let recommendation = self.tracker.observe(&report, self.hub.hysteresis, now);
        let score = quality::mos(&report);
        let (level, _) = quality::assess(&report);
        self.hub.telemetry.quality(
            &seat.consultation,
            &seat.participant,
            &report,
            (score, level, now),
        );
        let interval = chrono::Duration::from_std(self.hub.settings.quality_sample_interval)
            .unwrap_or(chrono::Duration::seconds(5));
        if recommendation.is_some() || self.last_sample.is_none_or(|at| now - at >= interval) {
            self.last_sample = Some(now);
            let sample = QualitySample {
                consultation_id: seat.consultation.clone(),
                participant_id: seat.participant.clone(),
                user_id: self.caller.user_id.to_string(),
                taken_at: now,
                rtt_ms: report.rtt_ms,
                jitter_ms: report.jitter_ms,
                packet_loss_pct: report.packet_loss_pct,
                outbound_kbps: report.outbound_kbps,
                inbound_kbps: report.inbound_kbps,
                frame_rate: report.frame_rate,
                width: i64::from(report.width),
                height: i64::from(report.height),
                candidate_type: report.candidate_type.clone(),
                mos: score,
                level: level.as_str().into(),
            };
            if let Err(e) = self.hub.db.add_quality_sample(&sample).await {
                tracing::warn!(error = %e, "quality sample not stored");
            }
        }
        let mut reply = Reply::fields(json!({
            "score": (score * 100.0).round() / 100.0,
            "level": level.as_str(),
        }));
        reply.direct = recommendation.map(|rec| {
            let event = json!({ "profile": rec.profile, "reason": rec.reason });
            ("quality:recommendation", event)
        });
        Ok(reply)
    }

    async fn start_recording(&mut self) -> Result<Reply, Refusal> {
        let seat = self.seat()?;
        let recording_id = new_id();
        let (policy, now) = (&self.hub.policy, self.hub.clock.now());
        let input = Input::RecordingStart {
            by: seat.participant.clone(),
            recording_id: recording_id.clone(),
        };
        let (deliver, recording) = self
            .apply(&seat, |room| {
                room.handle(input.clone(), policy, now)
                    .map(|out| (out, room.recording.clone()))
            })
            .await?;
        let (active, pending): (bool, Vec<String>) = match recording {
            Recording::Active { .. } => (true, Vec::new()),
            Recording::AwaitingConsent { pending, .. } => (false, pending.into_iter().collect()),
            Recording::Idle => (false, Vec::new()),
        };
        Ok(Reply {
            fields: Some(json!({
                "recordingId": recording_id,
                "active": active,
                "pending": pending,
            })),
            deliver,
            direct: None,
        })
    }

    async fn consent(&mut self, request: ConsentRequest) -> Result<Reply, Refusal> {
        let seat = self.seat()?;
        let (policy, now) = (&self.hub.policy, self.hub.clock.now());
        let input = Input::Consent {
            participant_id: seat.participant.clone(),
            granted: request.granted,
        };
        let wanted = request.recording_id.as_deref();
        let (deliver, ()) = self
            .apply(&seat, |room| {
                if let Some(wanted) = wanted
                    && room.recording_view().recording_id.as_deref() != Some(wanted)
                {
                    return Err(RoomError::Recording(
                        "that recording is no longer asking for consent",
                    ));
                }
                room.handle(input.clone(), policy, now).map(|out| (out, ()))
            })
            .await?;
        Ok(Reply {
            deliver,
            ..Reply::default()
        })
    }

    /// The connection closed: the participant may resume within the grace period.
    async fn dropped(&mut self) {
        let Some(seat) = self.seat.take() else {
            return;
        };
        self.hub.telemetry.left(
            &seat.consultation,
            &seat.participant,
            &self.socket.id.to_string(),
        );
        let hub = Arc::clone(&self.hub);
        let now = hub.clock.now();
        let input = Input::Disconnected {
            participant_id: seat.participant.clone(),
            connection: self.socket.id.to_string(),
        };
        let outcome = hub
            .store
            .update(&seat.consultation, |room| {
                room.handle(input.clone(), &hub.policy, now)
            })
            .await;
        let outcome = match outcome {
            Ok(Ok(outcome)) => outcome,
            // Already gone (left, ended, replaced): nothing to do.
            Ok(Err(_)) => return,
            Err(e) => {
                tracing::error!(error = %e, consultation_id = %seat.consultation, "could not mark a participant as reconnecting");
                return;
            }
        };
        let reconnecting = !outcome.outbound.is_empty();
        if let Err(e) = hub
            .persist(
                &seat.consultation,
                outcome.facts,
                self.caller.user_id.as_str(),
                &seat.participant,
            )
            .await
        {
            tracing::error!(error = %e, "disconnect not recorded");
        }
        hub.deliver(&self.io, &seat.consultation, outcome.outbound)
            .await;
        hub.presence(
            &seat.consultation,
            self.caller.user_id.as_str(),
            &self.name,
            false,
        )
        .await;
        if reconnecting {
            let io = self.io.clone();
            let grace = hub.settings.resume_grace;
            tokio::spawn(async move {
                tokio::time::sleep(grace + std::time::Duration::from_millis(20)).await;
                hub.expire(&io, &seat.consultation).await;
            });
        }
    }
}

fn truncate(text: &str) -> &str {
    match text.char_indices().nth(64) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

impl Hub {
    /// Tells the presence observer, if any, who is connected to the call now.
    async fn presence(&self, consultation: &str, user: &str, name: &str, joined: bool) {
        let Some(observer) = self.observer.get() else {
            return;
        };
        let connected = self
            .store
            .read(consultation, |room| {
                room.map(|room| {
                    room.members
                        .values()
                        .filter(|m| {
                            matches!(
                                m.presence,
                                wakili_core::room::Presence::Waiting
                                    | wakili_core::room::Presence::Present
                            )
                        })
                        .map(|m| m.user_id.clone())
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
            })
            .await;
        match connected {
            Ok(connected) => observer.changed(PresenceChange {
                consultation_id: consultation.to_owned(),
                user_id: user.to_owned(),
                name: name.to_owned(),
                joined,
                connected,
            }),
            Err(e) => tracing::warn!(error = %e, "presence not reported"),
        }
    }

    /// Delivers room events.
    async fn deliver<A: Adapter>(
        &self,
        io: &SocketIo<A>,
        consultation: &str,
        outbound: Vec<Outbound>,
    ) {
        for o in outbound {
            let operators = match &o.to {
                To::One(p) => io.to(participant_room(p)),
                To::AllBut(p) => io
                    .to(consultation_room(consultation))
                    .except(participant_room(p)),
                To::All => io.to(consultation_room(consultation)),
            };
            if let Err(e) = operators.emit(o.name, &o.event).await {
                tracing::warn!(event = o.name, error = %e, "delivery failed");
            }
        }
    }

    /// Closes the connections of a participant that another connection replaced.
    async fn kick<A: Adapter>(&self, io: &SocketIo<A>, participant: &str) {
        let room = participant_room(participant);
        let notice = json!({
            "reason": "replaced",
            "message": "this participant joined from another connection",
        });
        emit_to(io, room.clone(), "session:closed", &notice).await;
        if let Err(e) = io.to(room).disconnect().await {
            tracing::warn!(error = %e, "could not close a replaced connection");
        }
    }

    /// Removes participants whose grace period is over.
    async fn expire<A: Adapter>(&self, io: &SocketIo<A>, consultation: &str) {
        let now = self.clock.now();
        let outcome = self
            .store
            .update(consultation, |room: &mut Room| {
                let mut out = Outcome::default();
                room.expire(now, &mut out);
                out
            })
            .await;
        match outcome {
            Ok(outcome) => {
                // Expiry only leads to audit entries, which name their own participant.
                if let Err(e) = self.persist(consultation, outcome.facts, "", "").await {
                    tracing::error!(error = %e, "expiry not recorded");
                }
                self.deliver(io, consultation, outcome.outbound).await;
            }
            Err(e) => tracing::error!(error = %e, consultation_id = consultation, "expiry failed"),
        }
    }

    /// Stores what a room change decided: audit entries, consent decisions, status changes.
    async fn persist(
        &self,
        consultation: &str,
        facts: Vec<Fact>,
        actor: &str,
        participant: &str,
    ) -> Result<(), Refusal> {
        let now = self.clock.now();
        // Audit entries go in one transaction (one disk sync), after the facts they record.
        let mut audits = Vec::new();
        for fact in facts {
            match fact {
                Fact::Audit {
                    action,
                    participant_id,
                    user_id,
                } => audits.push(NewAuditEvent {
                    consultation_id: Some(consultation.to_owned()),
                    actor_id: Some(user_id),
                    action,
                    detail: json!({ "participantId": participant_id, "via": "signaling" }),
                }),
                Fact::Consent {
                    recording_id,
                    user_id,
                    notice_version,
                    granted,
                    at,
                } => {
                    let record = ConsentRecord {
                        id: new_id(),
                        consultation_id: consultation.to_owned(),
                        recording_id,
                        user_id,
                        participant_id: participant.to_owned(),
                        notice_version,
                        granted,
                        decided_at: at,
                    };
                    self.db.record_consent(&record).await?;
                }
                Fact::LawyerArrived => self.transition(consultation, Action::Start, actor).await?,
                Fact::Ended => self.transition(consultation, Action::End, actor).await?,
                // Handled before anything else is delivered (see `Worker::join`).
                Fact::Disconnect { .. } => {}
            }
        }
        self.db.append_audits(audits, now).await?;
        Ok(())
    }

    /// Moves the consultation to its next status, if it is not there already.
    async fn transition(&self, id: &str, action: Action, actor: &str) -> Result<(), DbError> {
        for _ in 0..5 {
            let Some(current) = self.db.consultation(id).await? else {
                return Ok(());
            };
            let Ok(status) = current.status.apply(action) else {
                return Ok(());
            };
            let now = self.clock.now();
            let mut next = current.clone();
            next.status = status;
            next.updated_at = now;
            match action {
                Action::Start => next.started_at = Some(now),
                Action::End => next.ended_at = Some(now),
                _ => {}
            }
            let audit = NewAuditEvent {
                consultation_id: Some(id.to_owned()),
                actor_id: Some(actor.to_owned()),
                action: match action {
                    Action::Start => "consultation.started",
                    _ => "consultation.ended",
                },
                detail: json!({
                    "from": current.status.as_str(),
                    "to": status.as_str(),
                    "via": "signaling",
                }),
            };
            if self.db.save_consultation(&next, audit).await?.is_some() {
                return Ok(());
            }
        }
        Ok(())
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
