//! A connection's way in: the handshake's token, the connect middleware that registers every
//! handler and starts the worker, and the [`Intake`] extractor that rate-limits each event and
//! queues it for the worker in arrival order (closing a connection that floods).

use std::{
    convert::Infallible,
    sync::{Arc, Mutex, PoisonError, atomic::AtomicBool, atomic::Ordering},
    time::Instant,
};

use serde::Deserialize;
use socketioxide::{
    SocketIo,
    adapter::Adapter,
    extract::{AckSender, Extension, SocketRef, State, TryData},
    handler::FromMessageParts,
    socket::Socket,
};
use socketioxide_core::Value;
use tokio::sync::mpsc;
use wakili_core::{Caller, quality::Tracker};

use super::{Hub, Worker};
use crate::{
    expiry::TokenLife,
    limiter::{Limiter, Verdict},
    limits::TooManySockets,
    protocol::{self, CloseReason, Refusal, ServerEvent, SessionClosed},
};

/// The handshake's `auth` object.
#[derive(Deserialize)]
pub(super) struct Handshake {
    token: String,
}

/// Why a connection is refused; its text is the client's `connect_error` message.
#[derive(Debug, thiserror::Error)]
pub(super) enum Refused {
    /// No token, or one the verifier refuses.
    #[error("unauthorized")]
    Unauthorized,
    /// The user holds `signaling.max_sockets_per_user` connections already.
    #[error(transparent)]
    TooManySockets(#[from] TooManySockets),
}

/// One connection's intake: rate limit and queue, shared with the [`Intake`] extractor.
pub(super) struct Conn<A: Adapter> {
    queue: mpsc::Sender<Item<A>>,
    rate: u32,
    limiter: Mutex<Limiter>,
    closing: AtomicBool,
}

pub(super) enum Item<A: Adapter> {
    Event {
        text: socketioxide_core::Str,
        ack: AckSender<A>,
        received: Instant,
    },
    Closed,
}

/// Connect middleware: verifies the token, then registers every handler and starts the
/// connection's worker — all before the CONNECT ack goes out.
pub(super) async fn authenticate<A: Adapter>(
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
        degradation: Default::default(),
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
        let notice = SessionClosed {
            reason: CloseReason::RateLimited,
            message: "too many events; the connection is closed",
        };
        let _ = socket.emit(notice.name(), &notice);
        tokio::time::sleep(FLOOD_DRAIN).await;
        let _ = socket.disconnect();
    });
}
