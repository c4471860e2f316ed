//! A simulated browser: one str0m session in RTP mode on its own UDP socket, driven by one
//! tokio task. Publishers send Opus and three VP8 simulcast layers; subscribers record what
//! arrives (distinct packets per stream, latency) for the packets sent in the window.

use std::{
    collections::HashMap,
    io::{self, IoSliceMut},
    net::{IpAddr, SocketAddr},
    os::fd::AsRawFd,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, anyhow};
use nix::sys::{
    socket::{ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg, setsockopt, sockopt},
    time::TimeSpec,
};
use str0m::{
    Candidate, Event, Input, Output, Rtc, RtcConfig,
    change::{SdpAnswer, SdpOffer, SdpPendingOffer},
    media::{Direction, MediaKind, Mid, Simulcast, SimulcastLayer},
    net::{Protocol, Receive},
    rtp::RtpPacket,
};
use tokio::{
    io::Interest,
    net::UdpSocket,
    sync::{mpsc, oneshot},
    task::JoinHandle,
};

use super::{
    media::{self, LayerSpec, Marker},
    sender::Sender,
    slow::SlowPacket,
    tally::{Tally, Window, clock_us},
};

/// Due timeouts handled in a row before yielding to the socket and the timers.
const MAX_IMMEDIATE: u32 = 8;

/// A session and its socket, before its task runs.
pub struct Session {
    rtc: Rtc,
    socket: std::net::UdpSocket,
    local: SocketAddr,
    /// The audio and video m-lines a publisher sends on.
    sends: Option<(Mid, Mid)>,
    commands: (mpsc::Sender<Command>, mpsc::Receiver<Command>),
}

/// What a peer does.
pub enum Role {
    /// Sends media: publisher number (unique in the run) and its layers.
    Publisher(u16, [LayerSpec; 3]),
    /// Receives.
    Subscriber,
}

/// How often a subscriber tells the orchestrator that a stream is still arriving.
pub const SEEN_REFRESH: Duration = Duration::from_millis(50);

/// What the orchestrator reads while the peer runs.
#[derive(Debug, Default)]
pub struct Shared {
    /// ICE and DTLS are up.
    pub connected: AtomicBool,
    /// When each stream last arrived (subscriber), refreshed at most every
    /// [`SEEN_REFRESH`].
    pub streams_seen: Mutex<HashMap<u16, Instant>>,
    /// Why the session ended early.
    pub failure: Mutex<Option<String>>,
}

enum Command {
    AcceptOffer(String, oneshot::Sender<anyhow::Result<String>>),
    RemoteCandidate(String),
    Stop,
}

/// A running peer.
pub struct PeerHandle {
    /// Its name (participant / display name).
    pub name: String,
    /// What it reports while running.
    pub shared: Arc<Shared>,
    commands: mpsc::Sender<Command>,
    task: JoinHandle<Tally>,
}

/// What signaling needs of a running peer: answering offers, trickled candidates.
#[derive(Clone)]
pub struct PeerLink {
    name: Arc<str>,
    commands: mpsc::Sender<Command>,
}

impl Session {
    /// A session on a fresh UDP socket on `ip`, VP8 and Opus only, in RTP mode.
    pub fn new(ip: IpAddr) -> anyhow::Result<Self> {
        let socket = std::net::UdpSocket::bind((ip, 0))
            .with_context(|| format!("cannot bind a UDP socket on {ip}"))?;
        socket.set_nonblocking(true)?;
        setsockopt(&socket, sockopt::ReceiveTimestampns, &true)
            .context("cannot ask for receive timestamps")?;
        let local = socket.local_addr()?;
        let mut rtc = RtcConfig::new()
            .set_rtp_mode(true)
            .clear_codecs()
            .enable_vp8(true)
            .enable_opus(true, false)
            .build(Instant::now());
        let candidate = Candidate::host(local, "udp").context("host candidate")?;
        rtc.add_local_candidate(candidate);
        Ok(Self {
            rtc,
            socket,
            local,
            sends: None,
            commands: mpsc::channel(16),
        })
    }

    /// An offer sending audio and simulcast video (q, h, f), as `name`.
    pub fn offer_publish(&mut self, name: &str) -> anyhow::Result<(String, SdpPendingOffer)> {
        let mut change = self.rtc.sdp_api();
        let audio = change.add_media(
            MediaKind::Audio,
            Direction::SendOnly,
            Some(name.into()),
            None,
            None,
        );
        let mut simulcast = Simulcast::new();
        for rid in media::RIDS {
            simulcast.add_send_layer(SimulcastLayer {
                rid: rid.into(),
                attributes: None,
            });
        }
        let video = change.add_media(
            MediaKind::Video,
            Direction::SendOnly,
            Some(name.into()),
            None,
            Some(simulcast),
        );
        let (offer, pending) = change.apply().context("str0m made no offer")?;
        self.sends = Some((audio, video));
        Ok((offer.to_sdp_string(), pending))
    }

    /// An offer that only receives audio (what a viewer without camera or microphone sends).
    pub fn offer_receive(&mut self) -> anyhow::Result<(String, SdpPendingOffer)> {
        let mut change = self.rtc.sdp_api();
        change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        let (offer, pending) = change.apply().context("str0m made no offer")?;
        Ok((offer.to_sdp_string(), pending))
    }

    /// Applies the server's answer to our offer.
    pub fn accept_answer(&mut self, pending: SdpPendingOffer, sdp: &str) -> anyhow::Result<()> {
        let answer = SdpAnswer::from_sdp_string(sdp).context("the answer does not parse")?;
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .context("str0m refused the answer")
    }

    /// Answers the server's offer.
    pub fn accept_offer(&mut self, sdp: &str) -> anyhow::Result<String> {
        accept_offer(&mut self.rtc, sdp)
    }

    /// Signaling's way to the peer, usable before it runs (commands wait until it does).
    pub fn link(&self, name: &str) -> PeerLink {
        PeerLink {
            name: name.into(),
            commands: self.commands.0.clone(),
        }
    }

    /// Starts the peer's task.
    pub fn spawn(
        self,
        name: String,
        role: Role,
        window: Arc<Window>,
    ) -> anyhow::Result<PeerHandle> {
        let socket = UdpSocket::from_std(self.socket)?;
        let shared = Arc::new(Shared::default());
        let (commands, receiver) = self.commands;
        let sender = match role {
            Role::Publisher(index, specs) => {
                let mids = self
                    .sends
                    .context("a publisher needs offer_publish first")?;
                Some(Sender::new(index, specs, mids))
            }
            Role::Subscriber => None,
        };
        let peer = Peer {
            rtc: self.rtc,
            socket,
            local: self.local,
            shared: shared.clone(),
            window,
            sender,
            tally: Tally::default(),
            seen: HashMap::new(),
            arrived: Instant::now(),
        };
        let task = tokio::spawn(peer.run(receiver));
        Ok(PeerHandle {
            name,
            shared,
            commands,
            task,
        })
    }
}

fn accept_offer(rtc: &mut Rtc, sdp: &str) -> anyhow::Result<String> {
    let offer = SdpOffer::from_sdp_string(sdp).context("the offer does not parse")?;
    let answer = rtc
        .sdp_api()
        .accept_offer(offer)
        .context("str0m refused the offer")?;
    Ok(answer.to_sdp_string())
}

impl PeerLink {
    /// Answers an offer the server sent.
    pub async fn accept_offer(&self, sdp: String) -> anyhow::Result<String> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::AcceptOffer(sdp, reply))
            .await
            .map_err(|_| anyhow!("{} has stopped", self.name))?;
        answer
            .await
            .map_err(|_| anyhow!("{} has stopped", self.name))?
    }

    /// Adds a trickled ICE candidate (SDP `candidate:` line).
    pub async fn add_remote_candidate(&self, candidate: String) {
        let _ = self
            .commands
            .send(Command::RemoteCandidate(candidate))
            .await;
    }
}

impl PeerHandle {
    /// Why the session ended, if it did.
    pub fn failure(&self) -> Option<String> {
        self.shared.failure.lock().ok()?.clone()
    }

    /// Stops the task and returns its counts.
    pub async fn stop(self) -> Tally {
        let _ = self.commands.send(Command::Stop).await;
        self.task.await.unwrap_or_default()
    }
}

struct Peer {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    shared: Arc<Shared>,
    window: Arc<Window>,
    sender: Option<Sender>,
    tally: Tally,
    /// When each stream last arrived, as last told to [`Shared::streams_seen`].
    seen: HashMap<u16, Instant>,
    /// When the kernel queued the datagram being handled on the socket.
    arrived: Instant,
}

impl Peer {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) -> Tally {
        let mut buf = vec![0u8; 2048];
        let mut control = nix::cmsg_space!(TimeSpec);
        loop {
            let timeout = match self.drain() {
                Ok(at) => at,
                Err(e) => return self.fail(e),
            };
            let wake = self
                .sender
                .as_ref()
                .map_or(timeout, |s| timeout.min(s.next_tick()));
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::AcceptOffer(sdp, reply)) => {
                        let _ = reply.send(accept_offer(&mut self.rtc, &sdp));
                    }
                    Some(Command::RemoteCandidate(line)) => {
                        if let Ok(candidate) = Candidate::from_sdp_string(&line) {
                            self.rtc.add_remote_candidate(candidate);
                        }
                    }
                    Some(Command::Stop) | None => return self.tally,
                },
                ready = self.socket.readable() => {
                    if ready.is_err() {
                        continue;
                    }
                    // What is queued, up to a batch, before sleeping again.
                    for _ in 0..33 {
                        let Ok((n, source, arrived)) = recv_stamped(&self.socket, &mut buf, &mut control) else {
                            break;
                        };
                        self.arrived = arrived;
                        if let Err(e) = self.receive(source, &buf[..n]) {
                            return self.fail(e);
                        }
                    }
                }
                () = tokio::time::sleep_until(wake.into()) => {
                    let now = Instant::now();
                    if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
                        return self.fail(e.into());
                    }
                    if let Err(e) = self.send_media(now) {
                        return self.fail(e);
                    }
                }
            }
        }
    }

    fn fail(mut self, error: anyhow::Error) -> Tally {
        if let Ok(mut failure) = self.shared.failure.lock() {
            *failure = Some(format!("{error:#}"));
        }
        std::mem::take(&mut self.tally)
    }

    fn receive(&mut self, source: SocketAddr, data: &[u8]) -> anyhow::Result<()> {
        let Ok(contents) = data.try_into() else {
            return Ok(());
        };
        // Arrival as the kernel stamped it, as a browser's network thread would see it: the
        // generator's own tasks, sharing two cores with the server, read late and in bursts,
        // and that lag in the TWCC feedback would read as congestion to the server's
        // bandwidth estimator.
        let input = Input::Receive(
            self.arrived,
            Receive {
                proto: Protocol::Udp,
                source,
                destination: self.local,
                contents,
            },
        );
        self.rtc.handle_input(input)?;
        self.drain().map(|_| ())
    }

    /// Sends what str0m queued and handles its events; returns its next timeout.
    ///
    /// A timeout already due is handled here rather than by sleeping: str0m releases newly
    /// written RTP only after a timeout input, and a tokio timer would add up to a
    /// millisecond to every packet's latency.
    fn drain(&mut self) -> anyhow::Result<Instant> {
        let mut immediate = 0;
        loop {
            match self.rtc.poll_output()? {
                Output::Timeout(at) => {
                    let now = Instant::now();
                    if at > now || immediate == MAX_IMMEDIATE {
                        return Ok(at);
                    }
                    immediate += 1;
                    self.rtc.handle_input(Input::Timeout(now))?;
                }
                Output::Transmit(t) => {
                    // A full socket buffer drops the datagram, as a browser's would.
                    let _ = self.socket.try_send_to(&t.contents, t.destination);
                }
                Output::Event(event) => self.on_event(event),
            }
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Connected => self.shared.connected.store(true, Ordering::Relaxed),
            Event::RtpPacket(packet) => self.record(&packet),
            Event::KeyframeRequest(request) => {
                self.tally.keyframe_requests += 1;
                if let Some(sender) = &mut self.sender {
                    sender.keyframe_requested(request.rid.as_deref());
                }
            }
            _ => {}
        }
    }

    fn record(&mut self, packet: &RtpPacket) {
        let Some(marker) = Marker::read(&packet.payload) else {
            return;
        };
        let at = self.arrived;
        let stale = self
            .seen
            .get(&marker.stream)
            .is_none_or(|last| at.saturating_duration_since(*last) >= SEEN_REFRESH);
        if stale {
            self.seen.insert(marker.stream, at);
            if let Ok(mut seen) = self.shared.streams_seen.lock() {
                seen.insert(marker.stream, at);
            }
        }
        if !self.window.contains(marker.sent_us) {
            return;
        }
        let fresh = self
            .tally
            .received
            .entry(marker.stream)
            .or_default()
            .insert(marker.seq);
        if fresh {
            // Now, not `packet.timestamp`: str0m was given the kernel's arrival time.
            let latency = clock_us(Instant::now()).saturating_sub(marker.sent_us);
            self.tally.latency.record(latency);
            let arrival = clock_us(self.arrived).saturating_sub(marker.sent_us);
            self.tally.arrival.record(arrival);
            self.tally.slow.note(SlowPacket {
                sent_us: marker.sent_us,
                latency_us: arrival,
                stream: marker.stream,
            });
        } else {
            self.tally.duplicates += 1;
        }
    }

    /// Sends the audio packet and the video frame that are due.
    fn send_media(&mut self, now: Instant) -> anyhow::Result<()> {
        let Some(sender) = &mut self.sender else {
            return Ok(());
        };
        if now < sender.next_tick() {
            return Ok(());
        }
        if !self.rtc.is_connected() {
            sender.hold(now + Duration::from_millis(20));
            return Ok(());
        }
        for packet in sender.due(now, &self.rtc) {
            if let Some(tx) = self
                .rtc
                .direct_api()
                .stream_tx_by_mid(packet.mid, packet.rid)
            {
                tx.write_rtp(packet.write);
                if self.window.contains(packet.marker.sent_us) {
                    *self.tally.sent.entry(packet.marker.stream).or_default() += 1;
                }
            }
        }
        self.drain().map(|_| ())
    }
}

/// Reads one datagram with when the kernel queued it on the socket (`SO_TIMESTAMPNS`): the
/// moment it reached this subscriber, before the generator's own tasks got to it. The
/// generator shares the machine's cores with the server, so its queue is not the server's.
/// `control` holds the timestamp's control message (`cmsg_space!(TimeSpec)`), reused.
fn recv_stamped(
    socket: &UdpSocket,
    buf: &mut [u8],
    control: &mut [u8],
) -> io::Result<(usize, SocketAddr, Instant)> {
    socket.try_io(Interest::READABLE, || {
        let mut iov = [IoSliceMut::new(buf)];
        let fd = socket.as_raw_fd();
        let msg = recvmsg::<SockaddrStorage>(fd, &mut iov, Some(&mut *control), MsgFlags::empty())?;
        let source = msg
            .address
            .and_then(|a| {
                a.as_sockaddr_in()
                    .map(|v4| SocketAddr::from(*v4))
                    .or_else(|| a.as_sockaddr_in6().map(|v6| SocketAddr::from(*v6)))
            })
            .ok_or_else(|| io::Error::other("a datagram without an IP source"))?;
        let stamp = msg.cmsgs()?.find_map(|cmsg| match cmsg {
            ControlMessageOwned::ScmTimestampns(ts) => Some(ts),
            _ => None,
        });
        Ok((msg.bytes, source, stamp.map_or_else(Instant::now, arrival)))
    })
}

/// The monotonic instant of a kernel timestamp (wall clock): now less its age.
fn arrival(stamp: TimeSpec) -> Instant {
    let stamped = Duration::new(stamp.tv_sec() as u64, stamp.tv_nsec() as u32);
    let now = SystemTime::now();
    let wall = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let instant = Instant::now();
    instant
        .checked_sub(wall.saturating_sub(stamped))
        .unwrap_or(instant)
}
