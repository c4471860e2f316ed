//! The connection: connect, emit, call with acknowledgement, incoming events, close.
//!
//! Over 600 lines because the connection's state machine (Engine.IO handshake, Socket.IO
//! namespace, acks, pings and token renewal) lives on one task and reads best in one place.

use std::{
    fmt,
    future::Future,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use futures_util::{
    SinkExt, StreamExt,
    stream::{SplitSink, SplitStream},
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::value::RawValue;
use tokio::{
    net::{TcpSocket, TcpStream},
    sync::{mpsc, oneshot},
    task::AbortHandle,
    time::Instant,
};
use tokio_tungstenite::{
    WebSocketStream, client_async_with_config,
    tungstenite::{Message, Utf8Bytes, protocol::WebSocketConfig},
};

use crate::{
    ClientError,
    endpoint::Endpoint,
    frame::{self, Handshake, Packet},
};

type Ws = WebSocketStream<TcpStream>;

/// Largest WebSocket message or frame accepted from the server (Wakili's own packet limit is
/// 128 KiB by default).
const MAX_MESSAGE_BYTES: usize = 1 << 20;
/// Read buffer per connection. tungstenite's default is 128 KiB, allocated eagerly: 2.3 GB for
/// 18,000 connections. Signaling frames are a few hundred bytes.
const READ_BUFFER_BYTES: usize = 4 * 1024;
/// Frames buffered while the socket cannot take them, before a send fails.
const MAX_WRITE_BUFFER_BYTES: usize = 1 << 20;

/// How a [`Client`] behaves.
#[derive(Debug, Clone)]
pub struct Config {
    /// How long [`Client::call`] waits for the acknowledgement.
    pub ack_timeout: Duration,
    /// How long connecting may take: TCP, WebSocket handshake, Engine.IO open, Socket.IO CONNECT.
    pub connect_timeout: Duration,
    /// The local address to connect from (`None`: the system's choice).
    ///
    /// For load generators: Linux picks the source port of `connect()` from the even half of the
    /// ephemeral range first, so past ~14,000 connections from one address to one server every
    /// connect scans for a port and stalls. Spreading connections over loopback addresses
    /// (127.0.0.2, 127.0.0.3, …) gives each its own port range.
    pub local_address: Option<IpAddr>,
    /// Where to get a new token when the server warns that the connection's token expires
    /// soon (`auth:expiring`): the client then sends `auth:refresh` with it by itself, so the
    /// connection (and the call) outlives the token. `None`: the connection is closed when its
    /// token expires (`session:closed {reason: "token_expired"}`).
    pub token_source: Option<TokenSource>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            ack_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            local_address: None,
            token_source: None,
        }
    }
}

type TokenFuture = Pin<Box<dyn Future<Output = Option<String>> + Send>>;

/// Supplies fresh tokens for [`Config::token_source`] (e.g. from the platform's token endpoint).
/// `None` means no new token now; the connection then ends when its token expires.
#[derive(Clone)]
pub struct TokenSource(Arc<dyn Fn() -> TokenFuture + Send + Sync>);

impl TokenSource {
    /// A source that calls `fetch` for each new token.
    pub fn new<F, Fut>(fetch: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Option<String>> + Send + 'static,
    {
        Self(Arc::new(move || Box::pin(fetch()) as TokenFuture))
    }

    fn fetch(&self) -> TokenFuture {
        (self.0)()
    }
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSource")
    }
}

/// An event the server sent.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// The event name, e.g. `signal`.
    pub name: String,
    /// Its first argument, unparsed (`null` when it had none).
    pub data: Box<RawValue>,
}

impl Incoming {
    /// Parses the data into `T`.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ClientError> {
        Ok(serde_json::from_str(self.data.get())?)
    }
}

/// The events the server sends on one connection, in order.
///
/// Unbounded: events wait here until read, so read them (or drop this) in a long run.
#[derive(Debug)]
pub struct Events {
    rx: mpsc::UnboundedReceiver<Incoming>,
}

impl Events {
    /// The next event; `None` once the connection is closed and every event was read.
    pub async fn next(&mut self) -> Option<Incoming> {
        self.rx.recv().await
    }

    /// Waits for the next event called `name`, dropping the others that arrive before it.
    pub async fn wait_for(
        &mut self,
        name: &str,
        timeout: Duration,
    ) -> Result<Incoming, ClientError> {
        let wanted = async {
            while let Some(event) = self.next().await {
                if event.name == name {
                    return Ok(event);
                }
            }
            Err(ClientError::Closed)
        };
        tokio::time::timeout(timeout, wanted)
            .await
            .unwrap_or_else(|_| {
                Err(ClientError::Timeout {
                    event: name.to_owned(),
                    after: timeout,
                })
            })
    }
}

/// One Socket.IO connection to namespace `/`, authenticated with a token.
///
/// Cheap to clone: clones share the connection. Sending writes the frame from the caller's task
/// (no writer task, no channel); one reader task per connection answers pings, resolves
/// acknowledgements and delivers events. Dropping the last clone closes the connection.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    shared: Arc<Shared>,
    reader: AbortHandle,
    ack_timeout: Duration,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// What the reader task and the senders share.
#[derive(Debug)]
struct Shared {
    /// `None` once closed.
    sink: tokio::sync::Mutex<Option<SplitSink<Ws, Message>>>,
    pending: Mutex<Pending>,
    next_id: AtomicU64,
}

/// Calls waiting for their acknowledgement. Usually zero or one per connection, so a list.
#[derive(Debug, Default)]
struct Pending {
    closed: bool,
    waiting: Vec<(u64, oneshot::Sender<Box<RawValue>>)>,
}

impl Shared {
    fn pending(&self) -> MutexGuard<'_, Pending> {
        // A panic while holding this lock leaves the list consistent; keep going.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends `event` and waits at most `after` for its acknowledgement.
    async fn call_raw<T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
        after: Duration,
    ) -> Result<Box<RawValue>, ClientError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let text = frame::event(event, Some(id), data)?;
        // Registered before sending: the answer may come back before `send` returns.
        let answer = self.register(id)?;
        if let Err(e) = self.send(text.into()).await {
            self.take(id);
            return Err(e);
        }
        match tokio::time::timeout(after, answer).await {
            Ok(Ok(data)) => Ok(data),
            Ok(Err(_)) => Err(ClientError::Closed),
            Err(_) => {
                self.take(id);
                Err(ClientError::Timeout {
                    event: event.to_owned(),
                    after,
                })
            }
        }
    }

    /// `auth:refresh` with a token from `source`; the answer must be `{ok: true}`.
    async fn refresh(&self, source: &TokenSource, after: Duration) -> Result<(), ClientError> {
        let Some(token) = source.fetch().await else {
            return Err(ClientError::Rejected {
                code: "no_token".into(),
                message: "the token source had no new token".into(),
            });
        };
        let answer = self
            .call_raw(
                "auth:refresh",
                &serde_json::json!({ "token": token }),
                after,
            )
            .await?;
        check_ok(serde_json::from_str(answer.get())?).map(drop)
    }

    async fn send(&self, text: Utf8Bytes) -> Result<(), ClientError> {
        let mut sink = self.sink.lock().await;
        let Some(sink) = sink.as_mut() else {
            return Err(ClientError::Closed);
        };
        sink.send(Message::Text(text)).await.map_err(Into::into)
    }

    fn register(&self, id: u64) -> Result<oneshot::Receiver<Box<RawValue>>, ClientError> {
        let mut pending = self.pending();
        if pending.closed {
            return Err(ClientError::Closed);
        }
        let (tx, rx) = oneshot::channel();
        pending.waiting.push((id, tx));
        Ok(rx)
    }

    fn take(&self, id: u64) -> Option<oneshot::Sender<Box<RawValue>>> {
        let mut pending = self.pending();
        let at = pending.waiting.iter().position(|(i, _)| *i == id)?;
        Some(pending.waiting.swap_remove(at).1)
    }

    /// Marks the connection closed: waiting calls end with [`ClientError::Closed`].
    fn shut(&self) {
        let mut pending = self.pending();
        pending.closed = true;
        pending.waiting.clear();
    }
}

impl Client {
    /// Connects to `base_url` (`http://host:port`, the server's address) with the default
    /// [`Config`], authenticating with `token` (`auth: {token}`).
    ///
    /// Fails with [`ClientError::Refused`] when the server refuses the token.
    pub async fn connect(base_url: &str, token: &str) -> Result<(Client, Events), ClientError> {
        Self::connect_with(base_url, token, &Config::default()).await
    }

    /// [`Client::connect`] with a chosen [`Config`].
    pub async fn connect_with(
        base_url: &str,
        token: &str,
        config: &Config,
    ) -> Result<(Client, Events), ClientError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let client = Self::connect_with_handler(base_url, token, config, move |name, data| {
            // A dropped `Events` just means nobody listens.
            let _ = tx.send(Incoming {
                name: name.to_owned(),
                data: data.to_owned(),
            });
        })
        .await?;
        Ok((client, Events { rx }))
    }

    /// Connects and hands every incoming event to `handler` (name, first argument), called on
    /// the connection's reader task in arrival order, instead of queueing it for [`Events`].
    ///
    /// For load generators: no allocation and no task switch per event. `handler` must not
    /// block; it cannot await, so spawn a task to answer from it.
    pub async fn connect_with_handler<F>(
        base_url: &str,
        token: &str,
        config: &Config,
        handler: F,
    ) -> Result<Client, ClientError>
    where
        F: FnMut(&str, &RawValue) + Send + 'static,
    {
        let (ws, handshake) = tokio::time::timeout(
            config.connect_timeout,
            open(base_url, token, config.local_address),
        )
        .await
        .map_err(|_| ClientError::ConnectTimeout(config.connect_timeout))??;
        let (sink, stream) = ws.split();
        let shared = Arc::new(Shared {
            sink: tokio::sync::Mutex::new(Some(sink)),
            pending: Mutex::default(),
            next_id: AtomicU64::new(0),
        });
        let refresh = config
            .token_source
            .clone()
            .map(|source| (source, config.ack_timeout));
        let reader = tokio::spawn(read(
            stream,
            Arc::clone(&shared),
            handshake,
            refresh,
            handler,
        ));
        Ok(Client {
            inner: Arc::new(Inner {
                shared,
                reader: reader.abort_handle(),
                ack_timeout: config.ack_timeout,
            }),
        })
    }

    /// Sends `event` with `data` as its argument, without asking for an acknowledgement.
    pub async fn emit<T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
    ) -> Result<(), ClientError> {
        let text = frame::event(event, None, data)?;
        self.inner.shared.send(text.into()).await
    }

    /// Sends `event` with `data` and waits (at most [`Config::ack_timeout`]) for the server's
    /// acknowledgement; returns its first argument, parsed.
    pub async fn call<T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
    ) -> Result<serde_json::Value, ClientError> {
        let raw = self.call_raw(event, data).await?;
        Ok(serde_json::from_str(raw.get())?)
    }

    /// [`Client::call`], turning `{ok: false, error: {code, message}}` into
    /// [`ClientError::Rejected`]; returns the whole answer when `ok` is true.
    pub async fn call_ok<T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
    ) -> Result<serde_json::Value, ClientError> {
        check_ok(self.call(event, data).await?)
    }

    /// [`Client::call`] without parsing the answer (`null` when the acknowledgement had no
    /// argument).
    pub async fn call_raw<T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
    ) -> Result<Box<RawValue>, ClientError> {
        self.inner
            .shared
            .call_raw(event, data, self.inner.ack_timeout)
            .await
    }

    /// Replaces the connection's token (`auth:refresh`): `token` must be valid and for the same
    /// user and role. [`Config::token_source`] does this by itself on `auth:expiring`.
    pub async fn refresh_token(&self, token: &str) -> Result<serde_json::Value, ClientError> {
        self.call_ok("auth:refresh", &serde_json::json!({ "token": token }))
            .await
    }

    /// Whether the connection has ended (closed by either side or lost).
    pub fn is_closed(&self) -> bool {
        self.inner.shared.pending().closed
    }

    /// Leaves the namespace (Socket.IO DISCONNECT) and closes the WebSocket. Calls still waiting
    /// end with [`ClientError::Closed`]; [`Events`] ends once the server has confirmed.
    pub async fn close(&self) {
        let shared = &self.inner.shared;
        let sink = shared.sink.lock().await.take();
        shared.shut();
        if let Some(mut sink) = sink {
            // Best effort: the server may be gone already.
            let _ = sink
                .send(Message::Text(Utf8Bytes::from_static(frame::DISCONNECT)))
                .await;
            let _ = sink.close().await;
        }
    }
}

/// `{ok: true, …}` passes; `{ok: false, error: {code, message}}` becomes
/// [`ClientError::Rejected`]; anything else is a protocol error.
pub fn check_ok(answer: serde_json::Value) -> Result<serde_json::Value, ClientError> {
    match answer.get("ok") {
        Some(serde_json::Value::Bool(true)) => Ok(answer),
        Some(serde_json::Value::Bool(false)) => {
            let error = answer.get("error");
            let field = |name: &str| {
                error
                    .and_then(|e| e.get(name))
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            Err(ClientError::Rejected {
                code: field("code"),
                message: field("message"),
            })
        }
        _ => Err(ClientError::Protocol(format!(
            "an acknowledgement without a boolean `ok`: {answer}"
        ))),
    }
}

fn websocket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        // Write every frame at once: one syscall per message, no latency added.
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_WRITE_BUFFER_BYTES)
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_MESSAGE_BYTES))
}

/// TCP, WebSocket, Engine.IO open, Socket.IO CONNECT with the token.
async fn open(
    base_url: &str,
    token: &str,
    local: Option<IpAddr>,
) -> Result<(Ws, Handshake), ClientError> {
    let endpoint = Endpoint::parse(base_url)?;
    let connect_error = |source| ClientError::Connect {
        address: endpoint.address.clone(),
        source,
    };
    let tcp = match local {
        None => TcpStream::connect(&endpoint.address)
            .await
            .map_err(connect_error)?,
        Some(local) => connect_from(local, &endpoint.address)
            .await
            .map_err(connect_error)?,
    };
    tcp.set_nodelay(true).map_err(connect_error)?;
    let (mut ws, _) =
        client_async_with_config(endpoint.url.as_str(), tcp, Some(websocket_config())).await?;

    let text = next_text(&mut ws).await?;
    let handshake = match frame::parse(&text) {
        Ok(Packet::Open(handshake)) => handshake,
        Ok(other) => {
            return Err(ClientError::Protocol(format!(
                "expected the Engine.IO open packet, got {other:?}"
            )));
        }
        Err(e) => return Err(ClientError::Protocol(e.reason)),
    };
    ws.send(Message::Text(frame::connect(token)?.into()))
        .await?;
    loop {
        let text = next_text(&mut ws).await?;
        match frame::parse(&text) {
            Ok(Packet::Connected) => return Ok((ws, handshake)),
            Ok(Packet::ConnectError { message }) => return Err(ClientError::Refused(message)),
            Ok(Packet::Ping) => {
                ws.send(Message::Text(Utf8Bytes::from_static(frame::PONG)))
                    .await?;
            }
            Ok(Packet::Ignored) => {}
            Ok(Packet::Close | Packet::Disconnected) => return Err(ClientError::Closed),
            Ok(other) => {
                return Err(ClientError::Protocol(format!(
                    "expected the Socket.IO CONNECT answer, got {other:?}"
                )));
            }
            Err(e) => return Err(ClientError::Protocol(e.reason)),
        }
    }
}

/// Connects to `address` from `local` (any port), trying each of its resolved addresses of the
/// same family.
async fn connect_from(local: IpAddr, address: &str) -> std::io::Result<TcpStream> {
    let mut last = None;
    for remote in tokio::net::lookup_host(address).await? {
        if remote.is_ipv4() != local.is_ipv4() {
            continue;
        }
        let socket = if local.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.bind(SocketAddr::new(local, 0))?;
        match socket.connect(remote).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::AddrNotAvailable,
            format!("{address} has no address of the local address's family"),
        )
    }))
}

/// The next text frame, skipping WebSocket control and binary frames.
async fn next_text(ws: &mut Ws) -> Result<Utf8Bytes, ClientError> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => return Ok(text),
            Some(Ok(Message::Close(_))) | None => return Err(ClientError::Closed),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
        }
    }
}

/// The reader task: pongs, acknowledgements, events, until the connection ends or no ping came
/// for the server's interval + timeout. With a token source, `auth:expiring` starts a refresh.
async fn read<F>(
    mut stream: SplitStream<Ws>,
    shared: Arc<Shared>,
    handshake: Handshake,
    refresh: Option<(TokenSource, Duration)>,
    mut handler: F,
) where
    F: FnMut(&str, &RawValue),
{
    let liveness = handshake.liveness();
    let deadline = tokio::time::sleep(liveness);
    tokio::pin!(deadline);
    loop {
        let message = tokio::select! {
            biased;
            message = stream.next() => message,
            () = &mut deadline => break,
        };
        let text = match message {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(_)) | Err(_)) | None => break,
            Some(Ok(_)) => continue,
        };
        match frame::parse(&text) {
            Ok(Packet::Event { name, data, .. }) => {
                if name == "auth:expiring"
                    && let Some((source, after)) = &refresh
                {
                    // Off the reader task: the answer comes through this task.
                    let (shared, source, after) = (Arc::clone(&shared), source.clone(), *after);
                    tokio::spawn(async move {
                        // A failed refresh leaves the connection to end at expiry, with
                        // `session:closed {reason: "token_expired"}` telling the caller why.
                        let _ = shared.refresh(&source, after).await;
                    });
                }
                // Wakili never asks a client for an acknowledgement; such a request is ignored.
                handler(&name, data.unwrap_or(RawValue::NULL));
            }
            Ok(Packet::Ack { id, data }) => {
                if let Some(waiting) = shared.take(id) {
                    // The caller may have given up (timeout) meanwhile.
                    let _ = waiting.send(data.unwrap_or(RawValue::NULL).to_owned());
                }
            }
            Ok(Packet::Ping) => {
                deadline.as_mut().reset(Instant::now() + liveness);
                if shared
                    .send(Utf8Bytes::from_static(frame::PONG))
                    .await
                    .is_err()
                {
                    break;
                }
            }
            Ok(Packet::Close | Packet::Disconnected) => break,
            // Nothing a client must act on; a malformed frame is skipped rather than fatal.
            Ok(_) | Err(_) => {}
        }
    }
    shared.shut();
    // Release the socket now rather than when the last `Client` goes.
    drop(stream);
    shared.sink.lock().await.take();
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ok_answers_pass_and_refusals_are_typed() {
        let ok = json!({"ok": true, "participantId": "p"});
        assert_eq!(check_ok(ok.clone()).unwrap(), ok);
        match check_ok(json!({"ok": false, "error": {"code": "forbidden", "message": "no"}})) {
            Err(ClientError::Rejected { code, message }) => {
                assert_eq!((code.as_str(), message.as_str()), ("forbidden", "no"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            check_ok(json!({"participantId": "p"})),
            Err(ClientError::Protocol(_))
        ));
        assert!(matches!(
            check_ok(json!(null)),
            Err(ClientError::Protocol(_))
        ));
    }

    #[test]
    fn incoming_parses_on_demand() {
        let incoming = Incoming {
            name: "signal".into(),
            data: RawValue::from_string(r#"{"from":"a"}"#.into()).unwrap(),
        };
        let v: serde_json::Value = incoming.parse().unwrap();
        assert_eq!(v["from"], "a");
        assert!(incoming.parse::<u32>().is_err());
    }
}
