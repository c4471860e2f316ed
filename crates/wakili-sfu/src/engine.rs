//! The one task that owns every session: it reads the sockets, routes each datagram to the
//! session it belongs to, runs commands from handles, drives timers, and sends what the rooms
//! produce.

use std::{
    collections::HashMap,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use str0m::{
    Input,
    net::{DatagramRecv, Protocol, Receive, Transmit},
};
use tokio::{
    net::UdpSocket,
    sync::{broadcast, mpsc},
};
use wakili_forward::ParticipantId;

use crate::{
    SfuError, SfuEvent,
    context::Context,
    handle::Command,
    net::{self, TcpEvent},
    room::{Effects, Room, Tap},
};

/// A deadline this close is handled at once instead of slept for: tokio's timers tick in
/// milliseconds, and str0m asks for a timeout a microsecond after every packet it sends.
/// Waiting for the tick there was most of the forwarding latency.
const TIMER_SLACK: Duration = Duration::from_micros(500);

/// Inbound datagrams handled before what they produced is drained and sent: at 50,000
/// forwarded packets/s, 8 took a fifth off the CPU per packet and halved the p99 against 1
/// (`wakili-bench sfu`); 32 saved a little more CPU for no better p99. Since a drain releases
/// everything the pacer holds (bandwidth estimation on, the default), 16 beat 8 in rooms of
/// eight: p99 1.92-3.65 ms (median 2.2) against 2.94-4.86 (median 3.6) over six interleaved
/// pairs, 8.6-10.4 against 9.2-12.4 µs per packet; 4 was worse than 8.
const DATAGRAM_BATCH: usize = 16;
/// Most datagrams read in one turn of the engine before timers and commands get theirs.
const DATAGRAMS_PER_WAKE: usize = 32 * DATAGRAM_BATCH;

/// Counters readable from any handle.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Datagrams (and ICE-TCP frames) no session accepted, or that were not STUN/DTLS/RTP.
    pub(crate) dropped: AtomicU64,
    /// Datagrams the socket could not take (buffer full, unreachable).
    pub(crate) send_failures: AtomicU64,
    /// Sessions in all rooms, after the latest command or timeout.
    pub(crate) sessions: AtomicU64,
    /// Packets a recorder had no room for (shared with every [`Tap`]).
    pub(crate) recorder_dropped: Arc<AtomicU64>,
}

/// Where a remote address's traffic goes, once a session accepted it.
type Route = (String, ParticipantId);

pub(crate) struct Engine {
    pub(crate) ctx: Context,
    pub(crate) socket: UdpSocket,
    pub(crate) commands: mpsc::Receiver<Command>,
    pub(crate) events: broadcast::Sender<SfuEvent>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) tcp: Option<mpsc::Receiver<TcpEvent>>,
    pub(crate) rooms: HashMap<String, Room>,
    /// Recorded rooms' taps, kept while the room has no session yet.
    pub(crate) taps: HashMap<String, Tap>,
    pub(crate) routes: HashMap<SocketAddr, Route>,
    pub(crate) tcp_writers: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>,
}

impl Engine {
    pub(crate) async fn run(mut self, shutdown: Pin<Box<dyn Future<Output = ()> + Send>>) {
        let mut shutdown = shutdown;
        let mut buf = vec![0u8; 2000];
        loop {
            let deadline = self.next_deadline();
            let mut fx = Effects::default();
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                command = self.commands.recv() => match command {
                    Some(command) => self.on_command(command, &mut fx),
                    None => break,
                },
                // Before the socket: under load it is always readable, and a due timer (str0m's
                // feedback, retransmissions, pacing) must not wait for it to run dry.
                () = until(deadline) => self.on_timeout(deadline, &mut fx),
                received = self.socket.recv_from(&mut buf) => match received {
                    Ok((n, source)) => {
                        self.on_datagram(Protocol::Udp, source, &buf[..n], &mut fx);
                        // Take what else is queued before waiting again, a few datagrams at a
                        // time: what they produced is drained and sent together (one str0m
                        // timeout per subscriber for all of them), then the next few are read.
                        // Few, because one inbound packet fans out to many subscribers and
                        // the first of a batch waits for the others. The last batch goes out
                        // below, with whatever else this turn produced.
                        for taken in 1..DATAGRAMS_PER_WAKE {
                            if taken % DATAGRAM_BATCH == 0 {
                                self.flush(&mut fx);
                                self.apply(std::mem::take(&mut fx));
                            }
                            let Ok((n, source)) = self.socket.try_recv_from(&mut buf) else {
                                break;
                            };
                            self.on_datagram(Protocol::Udp, source, &buf[..n], &mut fx);
                        }
                    }
                    Err(error) => tracing::debug!(%error, "UDP receive failed"),
                },
                Some(event) = recv_tcp(&mut self.tcp) => self.on_tcp(event, &mut fx),
            }
            self.flush(&mut fx);
            self.apply(fx);
        }
        let mut fx = Effects::default();
        self.flush(&mut fx);
        for room in self.rooms.values_mut() {
            room.close(&mut fx);
        }
        self.apply(fx);
        tracing::info!("SFU stopped");
    }

    /// Drains every room's subscribers that packets were written to, sending each one's
    /// packets as soon as they are released (see [`Room::flush`]).
    fn flush(&mut self, fx: &mut Effects) {
        let now = Instant::now();
        let Self {
            ctx,
            socket,
            counters,
            rooms,
            tcp_writers,
            ..
        } = self;
        let mut send = |transmits: &mut Vec<Transmit>| {
            send_transmits(socket, tcp_writers, counters, transmits);
        };
        for room in rooms.values_mut() {
            room.flush(ctx, now, fx, &mut send);
        }
        // A room a failure emptied here is forgotten at its next timeout (within its tick),
        // not here: that walks every route, and this runs for every few datagrams.
    }

    /// The earliest time a room has work; at most a second away.
    fn next_deadline(&self) -> Instant {
        let cap = Instant::now() + Duration::from_secs(1);
        self.rooms
            .values()
            .map(|room| room.next_timeout(&self.ctx))
            .fold(cap, Instant::min)
    }

    /// The timer for `deadline` fired (or it is within [`TIMER_SLACK`]: then it counts as now).
    fn on_timeout(&mut self, deadline: Instant, fx: &mut Effects) {
        let now = Instant::now().max(deadline);
        for room in self.rooms.values_mut() {
            if room.next_timeout(&self.ctx) <= now {
                room.handle_timeout(&self.ctx, now, fx);
            }
        }
        self.forget_empty_rooms();
    }

    fn on_datagram(&mut self, proto: Protocol, source: SocketAddr, data: &[u8], fx: &mut Effects) {
        let now = Instant::now();
        let Ok(contents) = DatagramRecv::try_from(data) else {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto,
                source,
                destination: self.ctx.local,
                contents,
            },
        );
        // The known route first (without copying the room's name: this runs per datagram).
        if let Some((name, id)) = self.routes.get(&source)
            && let Some(room) = self.rooms.get_mut(name)
            && room.accepts(*id, &input)
        {
            room.receive(*id, input, &self.ctx, now, fx);
            return;
        }
        let found = self
            .rooms
            .iter()
            .find_map(|(name, room)| room.find(&input).map(|id| (name.clone(), id)));
        if let Some(route) = &found {
            self.routes.insert(source, route.clone());
        }
        let Some((room, id)) = found else {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::trace!(%source, "datagram from an unknown address dropped");
            return;
        };
        if let Some(room) = self.rooms.get_mut(&room) {
            room.receive(id, input, &self.ctx, now, fx);
        }
    }

    fn on_tcp(&mut self, event: TcpEvent, fx: &mut Effects) {
        match event {
            TcpEvent::Opened { peer, writer } => {
                self.tcp_writers.insert(peer, writer);
            }
            TcpEvent::Frame { peer, data } => self.on_datagram(Protocol::Tcp, peer, &data, fx),
            TcpEvent::Closed { peer } => {
                self.tcp_writers.remove(&peer);
                self.routes.remove(&peer);
            }
        }
    }

    fn on_command(&mut self, command: Command, fx: &mut Effects) {
        let now = Instant::now();
        let ctx = &self.ctx;
        match command {
            Command::Join {
                room,
                participant,
                offer,
                may_publish,
                reply,
            } => {
                let tap = self.taps.get(&room).cloned();
                let entry = self.rooms.entry(room.clone());
                let room = entry.or_insert_with(|| Room::new(room, tap, ctx, now));
                let joined = room.join(&participant, &offer, may_publish, ctx, now, fx);
                let _ = reply.send(joined);
            }
            Command::Answer {
                room,
                participant,
                sdp,
                reply,
            } => {
                let result = find_room(&mut self.rooms, &room)
                    .and_then(|r| r.answer(&participant, &sdp, ctx, now, fx));
                let _ = reply.send(result);
            }
            Command::Leave {
                room,
                participant,
                reply,
            } => {
                let result = find_room(&mut self.rooms, &room)
                    .and_then(|r| r.leave(&participant, ctx, now, fx));
                let _ = reply.send(result);
            }
            Command::Pause {
                room,
                subscriber,
                track,
                paused,
                reply,
            } => {
                let result = find_room(&mut self.rooms, &room)
                    .and_then(|r| r.pause(&subscriber, track, paused, ctx, now, fx));
                let _ = reply.send(result);
            }
            Command::ForceLayer {
                room,
                subscriber,
                rid,
                reply,
            } => {
                let result = find_room(&mut self.rooms, &room)
                    .and_then(|r| r.force_layer(&subscriber, rid, ctx, now, fx));
                let _ = reply.send(result);
            }
            Command::QualityCap {
                room,
                subscriber,
                cap,
                reply,
            } => {
                let result = find_room(&mut self.rooms, &room)
                    .and_then(|r| r.set_quality_cap(&subscriber, cap, ctx, now, fx));
                let _ = reply.send(result);
            }
            Command::Stats { room, reply } => {
                let _ = reply.send(find_room(&mut self.rooms, &room).map(|r| r.stats()));
            }
            Command::Record {
                room,
                sender,
                reply,
            } => {
                let tap = sender.map(|sender| Tap {
                    sender,
                    dropped: self.counters.recorder_dropped.clone(),
                });
                if let Some(r) = self.rooms.get_mut(&room) {
                    r.set_tap(tap.clone());
                }
                match tap {
                    Some(tap) => self.taps.insert(room, tap),
                    None => self.taps.remove(&room),
                };
                let _ = reply.send(Ok(()));
            }
            Command::RecorderKeyframe { room, track, reply } => {
                let result =
                    find_room(&mut self.rooms, &room).and_then(|r| r.recorder_keyframe(track, fx));
                let _ = reply.send(result);
            }
            Command::Close { room, reply } => {
                let result = find_room(&mut self.rooms, &room).map(|r| r.close(fx));
                let _ = reply.send(result);
            }
        }
        self.forget_empty_rooms();
    }

    fn forget_empty_rooms(&mut self) {
        self.rooms.retain(|_, room| !room.is_empty());
        let sessions: usize = self.rooms.values().map(Room::len).sum();
        let before = self
            .counters
            .sessions
            .swap(sessions as u64, Ordering::Relaxed);
        if before == sessions as u64 {
            // No session came or went (a leave and a join in one step leave a stale route
            // behind until the next change: harmless, a route is checked before it is used).
            return;
        }
        let rooms = &self.rooms;
        self.routes
            .retain(|_, (room, id)| rooms.get(room).is_some_and(|r| r.has(*id)));
    }

    /// Sends what the rooms produced and publishes their events.
    fn apply(&mut self, mut fx: Effects) {
        send_transmits(
            &self.socket,
            &self.tcp_writers,
            &self.counters,
            &mut fx.transmits,
        );
        for event in fx.events {
            tracing::debug!(?event, "SFU event");
            // Nobody listening is fine.
            let _ = self.events.send(event);
        }
    }
}

/// Sends `transmits` (UDP on the socket, ICE-TCP frames to their connection's writer) and
/// empties it; what could not be sent is counted.
fn send_transmits(
    socket: &UdpSocket,
    tcp_writers: &HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>,
    counters: &Counters,
    transmits: &mut Vec<Transmit>,
) {
    if transmits.is_empty() {
        return;
    }
    let mut failed = 0;
    transmits.retain(|transmit| match transmit.proto {
        Protocol::Udp => true,
        _ => {
            // An ICE-TCP frame to its connection's writer.
            let sent = transmit.proto == Protocol::Tcp
                && tcp_writers
                    .get(&transmit.destination)
                    .is_some_and(|writer| writer.try_send(transmit.contents.to_vec()).is_ok());
            failed += usize::from(!sent);
            false
        }
    });
    failed += net::send_udp(socket, transmits);
    transmits.clear();
    if failed > 0 {
        counters
            .send_failures
            .fetch_add(failed as u64, Ordering::Relaxed);
    }
}

fn find_room<'a>(
    rooms: &'a mut HashMap<String, Room>,
    name: &str,
) -> Result<&'a mut Room, SfuError> {
    rooms
        .get_mut(name)
        .ok_or_else(|| SfuError::UnknownRoom(name.to_owned()))
}

/// Waits for `deadline`; returns at once when it is within [`TIMER_SLACK`], as tokio would
/// only wake at its next millisecond tick.
async fn until(deadline: Instant) {
    if deadline > Instant::now() + TIMER_SLACK {
        tokio::time::sleep_until(deadline.into()).await;
    }
}

/// The next ICE-TCP event, or never when ICE-TCP is off.
async fn recv_tcp(tcp: &mut Option<mpsc::Receiver<TcpEvent>>) -> Option<TcpEvent> {
    match tcp {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
    }
}
