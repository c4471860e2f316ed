//! The HTTP listener's accept loop and connections, in place of `axum::serve`, which sets
//! neither `TCP_NODELAY` nor any timeout or cap:
//!
//! - every accepted socket gets `TCP_NODELAY` (small Socket.IO frames otherwise wait for Nagle
//!   and the peer's delayed ACK, ~40 ms);
//! - connections are capped in total and per client address ([`caps`]); a connection over a cap
//!   is closed right after the accept (a 503 written when the socket takes it), counted, and
//!   logged at most once per [`LOG_EVERY`];
//! - a connection that does not deliver a request head within `http.header_read_timeout`, or stays
//!   idle between requests beyond `http.idle_timeout`, is closed ([`phase`]); upgraded
//!   (WebSocket) connections are exempt from the timeouts but keep their slot until they close;
//! - the listener it is given comes from `wakili_net::listen`, which queues
//!   `http.listen_backlog` connections for the accept loop, not tokio's 128;
//! - accept errors (`EMFILE` …) pause accepting briefly instead of spinning;
//! - on shutdown: no new connections, idle ones close, open requests finish.

pub mod caps;
pub mod phase;

use std::{
    convert::Infallible,
    future::Future,
    io,
    net::SocketAddr,
    pin::{Pin, pin},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    Router,
    body::Body,
    extract::{ConnectInfo, Request},
    http::StatusCode,
    response::Response,
};
use bytes::Bytes;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{Notify, watch},
    time::Instant,
};

use self::{
    caps::{Caps, ClientKey, Refusal, Table, Throttle},
    phase::{Expiry, Phase, Timeouts},
};

/// At most one log line per this for refused connections, and one for accept errors.
pub const LOG_EVERY: Duration = Duration::from_secs(10);
/// Pause after an accept error that is not about one connection (`EMFILE`, `ENFILE`, `ENOMEM`):
/// long enough not to spin, short enough to resume as soon as descriptors free up.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Written to a connection refused at a cap, when the socket takes it without waiting.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 5\r\nconnection: close\r\ncontent-length: 82\r\n\r\n{\"error\":{\"code\":\"unavailable\",\"message\":\"too many connections; try again later\"}}";

/// Connection figures for `/metrics`, counted as they happen.
#[derive(Debug, Default)]
pub struct Counters {
    open: AtomicU64,
    accepted: AtomicU64,
    refused_total: AtomicU64,
    refused_per_ip: AtomicU64,
    header_timeouts: AtomicU64,
    idle_timeouts: AtomicU64,
    accept_errors: AtomicU64,
}

/// A reading of [`Counters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountersSnapshot {
    /// Connections open now (WebSockets included).
    pub open: u64,
    /// Connections accepted and served since start.
    pub accepted: u64,
    /// Connections refused at `http.max_connections`.
    pub refused_total: u64,
    /// Connections refused at `http.max_connections_per_ip`.
    pub refused_per_ip: u64,
    /// Connections closed for not sending a request head in time.
    pub header_timeouts: u64,
    /// Keep-alive connections closed for idling.
    pub idle_timeouts: u64,
    /// Failed `accept` calls other than a client giving up (`EMFILE` …).
    pub accept_errors: u64,
}

impl Counters {
    /// The figures now.
    pub fn snapshot(&self) -> CountersSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CountersSnapshot {
            open: get(&self.open),
            accepted: get(&self.accepted),
            refused_total: get(&self.refused_total),
            refused_per_ip: get(&self.refused_per_ip),
            header_timeouts: get(&self.header_timeouts),
            idle_timeouts: get(&self.idle_timeouts),
            accept_errors: get(&self.accept_errors),
        }
    }

    fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// How connections are limited (from `[http]`).
#[derive(Debug, Clone)]
pub struct Policy {
    /// Header and idle timeouts.
    pub timeouts: Timeouts,
    /// Caps in total and per client.
    pub caps: Caps,
}

impl Policy {
    /// The policy `[http]` describes.
    pub fn from_settings(http: &wakili_settings::HttpSettings) -> Self {
        Self {
            timeouts: Timeouts {
                header: http.header_read_timeout,
                idle: http.idle_timeout,
            },
            caps: Caps {
                total: http.max_connections,
                per_ip: http.max_connections_per_ip,
                exempt: http.per_ip_exempt.clone(),
            },
        }
    }
}

/// The open-connection table shared by the accept loop and every connection's [`Slot`].
#[derive(Clone)]
struct Slots {
    table: Arc<Mutex<Table>>,
    counters: Arc<Counters>,
}

impl Slots {
    fn acquire(&self, ip: std::net::IpAddr) -> Result<Slot, Refusal> {
        let key = self
            .table
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .admit(ip)?;
        self.counters.open.fetch_add(1, Ordering::Relaxed);
        Ok(Slot {
            slots: self.clone(),
            key,
        })
    }
}

/// One admitted connection's place in the table, given back when dropped: it lives in the
/// connection's I/O, so an upgraded WebSocket keeps it until the socket closes.
struct Slot {
    slots: Slots,
    key: ClientKey,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots
            .table
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .release(self.key);
        self.slots.counters.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves `router` on `listener` under `policy` until `signal` completes, then stops accepting,
/// lets open requests finish and returns once every (non-upgraded) connection has closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    policy: Policy,
    counters: Arc<Counters>,
    signal: impl Future<Output = ()>,
) {
    warn_about_the_file_limit(&policy.caps);
    let slots = Slots {
        table: Arc::new(Mutex::new(Table::new(policy.caps.clone()))),
        counters: Arc::clone(&counters),
    };
    // Connection tasks hold `open_rx`; `open_tx.closed()` resolves once all have ended.
    let (open_tx, open_rx) = watch::channel(());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut refusals = Throttle::new(LOG_EVERY);
    let mut errors = Throttle::new(LOG_EVERY);
    let mut signal = pin!(signal);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut signal => break,
        };
        let (stream, remote) = match accepted {
            Ok(accepted) => accepted,
            // The client gave up between its connect and our accept: nothing to do.
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                Counters::add(&counters.accept_errors);
                if let Some(n) = errors.hit(Instant::now()) {
                    tracing::error!(
                        error = %e,
                        errors = n,
                        pause_ms = ACCEPT_BACKOFF.as_millis() as u64,
                        "accept error (open files: see http.max_connections); pausing new connections"
                    );
                }
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let slot = match slots.acquire(remote.ip()) {
            Ok(slot) => slot,
            Err(refusal) => {
                Counters::add(match refusal {
                    Refusal::Total => &counters.refused_total,
                    Refusal::PerIp => &counters.refused_per_ip,
                });
                if let Some(n) = refusals.hit(Instant::now()) {
                    let snapshot = counters.snapshot();
                    tracing::warn!(
                        refused = n,
                        open = snapshot.open,
                        refused_at_max_connections = snapshot.refused_total,
                        refused_at_max_connections_per_ip = snapshot.refused_per_ip,
                        last_client = %remote.ip(),
                        "refusing new HTTP connections: at http.max_connections or http.max_connections_per_ip"
                    );
                }
                refuse(stream);
                continue;
            }
        };
        // Small frames (Socket.IO) must not wait for Nagle × the peer's delayed ACK.
        let _ = stream.set_nodelay(true);
        Counters::add(&counters.accepted);
        tokio::spawn(connection(
            stream,
            remote,
            slot,
            router.clone(),
            policy.timeouts,
            Arc::clone(&counters),
            (stop_rx.clone(), open_rx.clone()),
        ));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(open_rx);
    open_tx.closed().await;
}

/// Warns when `http.max_connections` cannot be reached before the process runs out of file
/// descriptors (then `accept` fails with `EMFILE` before the cap protects anything).
fn warn_about_the_file_limit(caps: &Caps) {
    /// Descriptors kept for the database, TURN, recordings and logs.
    const RESERVE: u64 = 1024;
    if let Ok((soft, _)) = rlimit::getrlimit(rlimit::Resource::NOFILE)
        && u64::from(caps.total) + RESERVE > soft
    {
        tracing::warn!(
            max_connections = caps.total,
            open_file_limit = soft,
            "http.max_connections plus {RESERVE} descriptors exceeds the open-file limit: raise the limit (ulimit -n, systemd LimitNOFILE=) or lower http.max_connections"
        );
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Closes a connection refused at a cap, with a 503 when it can be written without waiting.
fn refuse(stream: TcpStream) {
    // Read what already arrived (the request, usually), so the close is a FIN, not a reset that
    // could destroy the answer before the client reads it.
    let mut scratch = [0u8; 4096];
    let _ = stream.try_read(&mut scratch);
    let _ = stream.try_write(BUSY);
}

/// What the I/O, the service and the connection task share about one connection.
struct Activity {
    phase: Mutex<Phase>,
    /// Mirrors `phase.is_idle()`, so reads check it without the lock.
    idle: AtomicBool,
    /// Woken when a deadline may have moved earlier or appeared.
    changed: Notify,
}

impl Activity {
    fn new(now: Instant) -> Self {
        Self {
            phase: Mutex::new(Phase::accepted(now)),
            idle: AtomicBool::new(false),
            changed: Notify::new(),
        }
    }

    fn update<T>(&self, change: impl FnOnce(&mut Phase) -> T) -> T {
        let mut phase = self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        let out = change(&mut phase);
        self.idle.store(phase.is_idle(), Ordering::Relaxed);
        out
    }

    fn phase(&self) -> Phase {
        *self.phase.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn bytes_read(&self) {
        if self.idle.load(Ordering::Relaxed) && self.update(|p| p.bytes_read(Instant::now())) {
            self.changed.notify_one();
        }
    }

    fn request_started(&self) {
        // Only removes the deadline: the connection task finds out when its timer fires.
        self.update(Phase::request_started);
    }

    fn response_finished(&self) {
        self.update(|p| p.response_finished(Instant::now()));
        self.changed.notify_one();
    }

    fn upgraded(&self) {
        self.update(Phase::upgraded);
    }
}

/// Serves one admitted connection until it ends, upgrades, times out or the server stops.
async fn connection(
    stream: TcpStream,
    remote: SocketAddr,
    slot: Slot,
    router: Router,
    timeouts: Timeouts,
    counters: Arc<Counters>,
    (mut stop, _open): (watch::Receiver<bool>, watch::Receiver<()>),
) {
    let activity = Arc::new(Activity::new(Instant::now()));
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: Arc::clone(&activity),
        _slot: slot,
    });
    let service = Tracked {
        router,
        activity: Arc::clone(&activity),
        remote,
    };
    // No hyper timer: the timeouts are enforced below, where header and idle time differ.
    let conn = hyper::server::conn::http1::Builder::new()
        .serve_connection(io, service)
        .with_upgrades();
    let mut conn = pin!(conn);
    let mut stopping = false;
    loop {
        let changed = activity.changed.notified();
        let deadline = activity.phase().deadline(timeouts);
        let wake = deadline.map_or_else(|| Instant::now() + Duration::from_secs(86_400), |d| d.0);
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::trace!(client = %remote, error = %e, "HTTP connection ended");
                }
                return;
            }
            () = changed => {}
            () = tokio::time::sleep_until(wake), if deadline.is_some() => {
                if let Some(why) = activity.phase().expired(timeouts, Instant::now()) {
                    let (counter, limit) = match why {
                        Expiry::Header => (&counters.header_timeouts, "http.header_read_timeout"),
                        Expiry::Idle => (&counters.idle_timeouts, "http.idle_timeout"),
                    };
                    Counters::add(counter);
                    tracing::debug!(client = %remote, limit, "closing a slow or idle HTTP connection");
                    // Dropping the connection closes the socket.
                    return;
                }
            }
            changed = stop.changed(), if !stopping => {
                stopping = true;
                if changed.is_ok() {
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// The socket, noticing when bytes arrive on an idle connection; it holds the connection's slot.
struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
    _slot: Slot,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.bytes_read();
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The router as hyper's service: marks requests started and finished, and gives handlers the
/// client address (`ConnectInfo<SocketAddr>`).
#[derive(Clone)]
struct Tracked {
    router: Router,
    activity: Arc<Activity>,
    remote: SocketAddr,
}

impl hyper::service::Service<hyper::Request<Incoming>> for Tracked {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn call(&self, request: hyper::Request<Incoming>) -> Self::Future {
        use tower::ServiceExt;
        self.activity.request_started();
        let mut request: Request = request.map(Body::new);
        request.extensions_mut().insert(ConnectInfo(self.remote));
        let activity = Arc::clone(&self.activity);
        let answer = self.router.clone().oneshot(request);
        Box::pin(async move {
            let Ok(response) = answer.await;
            if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                activity.upgraded();
                return Ok(response);
            }
            Ok(response.map(|body| {
                Body::new(Finishing {
                    inner: body,
                    _done: Done(activity),
                })
            }))
        })
    }
}

/// Marks the response finished when hyper drops its body (sent, or the client went away).
struct Done(Arc<Activity>);

impl Drop for Done {
    fn drop(&mut self) {
        self.0.response_finished();
    }
}

/// A response body that reports when it is done with.
struct Finishing {
    inner: Body,
    _done: Done,
}

impl http_body::Body for Finishing {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_busy_answer_is_a_complete_503_with_the_error_shape() {
        let text = std::str::from_utf8(BUSY).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "));
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(length, body.len());
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"]["code"], "unavailable");
    }
}
