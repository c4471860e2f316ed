//! A "browser" for the tests: a str0m session in RTP mode on its own socket (UDP, or ICE-TCP),
//! publishing synthetic media and recording what it receives. It negotiates through whatever
//! the test gives it (the SFU's handle directly, or `media:publish` over signaling).
//!
//! Video is VP8 in three simulcast layers at ~16 frames/s, one packet per frame:
//! `[X|S, I, picture id (15 bits), VP8 frame tag (P bit: keyframe or not; its second byte is the
//! layer), a keyframe start code and size, frame number]`,
//! so the SFU can spot keyframes and the receiver can tell which layer it got. A layer sends a
//! keyframe first and then only when asked (PLI). Audio is an Opus-typed packet every 20 ms
//! with the RFC 6464 audio level extension.

use std::{
    collections::{BTreeSet, HashMap},
    future::Future,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Instant,
};

pub use str0m::format::Codec;
use str0m::{
    Candidate, Rtc, RtcConfig,
    change::{SdpAnswer, SdpPendingOffer},
    media::{Direction, MediaKind, Mid, Simulcast, SimulcastLayer},
    net::TcpType,
};
use tokio::{
    io::AsyncReadExt,
    net::{TcpStream, UdpSocket},
    sync::{mpsc, oneshot},
};

/// What a client publishes.
#[derive(Debug, Clone)]
pub struct Publish {
    /// Send a microphone (Opus with the audio-level extension).
    pub audio: bool,
    /// Simulcast RIDs of the camera; empty: no camera.
    pub layers: Vec<&'static str>,
    /// More single-layer video m-lines (to exceed the track limit).
    pub extra_video: usize,
    /// Connect over ICE-TCP instead of UDP.
    pub tcp: bool,
    /// Drop every n-th SRTP/SRTCP datagram received once connected (a lossy downlink).
    pub drop_every: Option<u64>,
}

impl Publish {
    /// A microphone and a simulcast camera, over UDP.
    pub fn camera_and_mic() -> Self {
        Self {
            audio: true,
            layers: vec!["q", "h", "f"],
            extra_video: 0,
            tcp: false,
            drop_every: None,
        }
    }

    /// Nothing: the client only receives (an observer). Its offer carries a data channel.
    pub fn nothing() -> Self {
        Self {
            audio: false,
            layers: vec![],
            ..Self::camera_and_mic()
        }
    }
}

/// One stream the client receives (one m-line the SFU offered).
#[derive(Debug, Clone)]
pub struct Incoming {
    /// Its publisher (the `msid` stream id).
    pub publisher: String,
    /// Its track (the `msid` track id).
    pub track: String,
    /// Audio or video.
    pub kind: MediaKind,
    /// RTP packets received.
    pub packets: u64,
    last_seq: Option<u64>,
    /// Sequence numbers skipped and not (yet) received.
    pub missing: BTreeSet<u64>,
    /// Video: the layers received, in order, each once per run.
    pub layers: Vec<u8>,
    /// Video: frames whose picture id did not follow the previous one.
    pub picture_id_jumps: u64,
    last_picture_id: Option<u16>,
}

/// What the client saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// ICE and DTLS are up.
    pub connected: bool,
    /// What arrives, by m-line.
    pub incoming: HashMap<Mid, Incoming>,
    /// PLIs/FIRs the server sent this client (as a publisher).
    pub keyframe_requests: u64,
    /// Datagrams dropped on purpose (see [`Publish::drop_every`]).
    pub dropped: u64,
}

impl Seen {
    /// Streams from `publisher` of `kind`.
    pub fn from(&self, publisher: &str, kind: MediaKind) -> Vec<&Incoming> {
        self.incoming
            .values()
            .filter(|i| i.publisher == publisher && i.kind == kind)
            .collect()
    }

    /// Packets received from `publisher` of `kind`, all its streams together.
    pub fn packets(&self, publisher: &str, kind: MediaKind) -> u64 {
        self.from(publisher, kind).iter().map(|i| i.packets).sum()
    }
}

mod runner;

use runner::{Link, Media, Runner};

pub use str0m::media::MediaKind as Kind;

enum Command {
    AcceptOffer(String, oneshot::Sender<String>),
    Level(u8),
}

/// A running client.
pub struct Client {
    /// Its name (the participant, and the `msid` stream id of what it sends).
    pub name: String,
    /// What it saw so far.
    pub seen: Arc<Mutex<Seen>>,
    commands: mpsc::Sender<Command>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A session with `publish`'s m-lines, and its offer.
pub struct Offered {
    /// The session.
    pub rtc: Rtc,
    /// Its offer, waiting for the answer.
    pub pending: SdpPendingOffer,
    /// The offer as SDP text.
    pub sdp: String,
    /// The m-lines it sends on.
    pub own: Vec<(Mid, MediaKind)>,
}

/// A session with `publish`'s m-lines, and its offer, in these codecs.
pub fn offer(publish: &Publish, name: &str, codecs: &[Codec]) -> Offered {
    let mut config = RtcConfig::new().set_rtp_mode(true).clear_codecs();
    for codec in codecs {
        config = match codec {
            Codec::Vp8 => config.enable_vp8(true),
            Codec::Opus => config.enable_opus(true, false),
            Codec::PCMU => config.enable_pcmu(true, false),
            Codec::H265 => config.enable_h265(true),
            other => panic!("{other:?} not set up in the test client"),
        };
    }
    let mut rtc = config.build(Instant::now());
    let mut change = rtc.sdp_api();
    let mut own = Vec::new();
    if publish.audio {
        let mid = change.add_media(
            MediaKind::Audio,
            Direction::SendOnly,
            Some(name.into()),
            None,
            None,
        );
        own.push((mid, MediaKind::Audio));
    }
    if !publish.layers.is_empty() {
        let mut simulcast = Simulcast::new();
        for rid in &publish.layers {
            simulcast.add_send_layer(SimulcastLayer {
                rid: (*rid).into(),
                attributes: None,
            });
        }
        let simulcast = (publish.layers.len() > 1).then_some(simulcast);
        let mid = change.add_media(
            MediaKind::Video,
            Direction::SendOnly,
            Some(name.into()),
            None,
            simulcast,
        );
        own.push((mid, MediaKind::Video));
    }
    for _ in 0..publish.extra_video {
        change.add_media(
            MediaKind::Video,
            Direction::SendOnly,
            Some(name.into()),
            None,
            None,
        );
    }
    if own.is_empty() && publish.extra_video == 0 {
        // Nothing to send: a data channel gives the offer its one m-line, as a browser's
        // receive-only page does.
        change.add_channel("wakili".into());
    }
    let (offer, pending) = change.apply().expect("an offer");
    Offered {
        rtc,
        pending,
        sdp: offer.to_sdp_string(),
        own,
    }
}

impl Client {
    /// Connects to the SFU at `server` as `name` and starts sending: `negotiate` takes the
    /// offer's SDP and returns the server's answer (or why it refused).
    ///
    /// # Panics
    /// When a local socket cannot be opened or the answer is not SDP.
    pub async fn connect<E, F>(
        server: SocketAddr,
        name: &str,
        publish: Publish,
        negotiate: impl FnOnce(String) -> F,
    ) -> Result<Client, E>
    where
        F: Future<Output = Result<String, E>>,
    {
        let Offered {
            mut rtc,
            pending,
            sdp,
            own,
        } = offer(&publish, name, &[Codec::Vp8, Codec::Opus]);
        let link = if publish.tcp {
            let stream = TcpStream::connect(server).await.expect("ICE-TCP connect");
            let local = stream.local_addr().expect("local address");
            let candidate = Candidate::builder()
                .tcp()
                .host(local)
                .tcptype(TcpType::Active)
                .build()
                .expect("TCP candidate");
            rtc.add_local_candidate(candidate);
            let (mut read, write) = stream.into_split();
            let (frames_in, frames) = mpsc::channel(256);
            // A task reads frames, so the client's select! never cuts one in half.
            tokio::spawn(async move {
                loop {
                    let Ok(len) = read.read_u16().await else {
                        return;
                    };
                    let mut frame = vec![0; usize::from(len)];
                    if read.read_exact(&mut frame).await.is_err()
                        || frames_in.send(frame).await.is_err()
                    {
                        return;
                    }
                }
            });
            Link::Tcp {
                write,
                frames,
                local,
            }
        } else {
            let socket = UdpSocket::bind("127.0.0.1:0").await.expect("UDP socket");
            let local = socket.local_addr().expect("local address");
            rtc.add_local_candidate(Candidate::host(local, "udp").expect("host candidate"));
            Link::Udp(socket, local)
        };
        let answer = negotiate(sdp).await?;
        let answer = SdpAnswer::from_sdp_string(&answer).expect("answer parses");
        rtc.sdp_api()
            .accept_answer(pending, answer)
            .expect("answer accepted");
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (commands, receiver) = mpsc::channel(16);
        let runner = Runner {
            rtc,
            own,
            server,
            seen: seen.clone(),
            commands: receiver,
            level: 100,
            media: Media::new(&publish),
            drop_every: publish.drop_every,
            received: 0,
        };
        let task = tokio::spawn(runner.run(link));
        Ok(Client {
            name: name.to_owned(),
            seen,
            commands,
            task,
        })
    }

    /// The commands channel, for the harness that answers offers.
    pub fn offers(&self) -> OfferSink {
        OfferSink(self.commands.clone())
    }

    /// The audio level (RFC 6464: 0 loudest, 127 silence) sent from now on.
    pub async fn set_level(&self, level: u8) {
        let _ = self.commands.send(Command::Level(level)).await;
    }

    /// Runs `f` on what the client saw.
    pub fn seen<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(&self.seen.lock().expect("not poisoned"))
    }
}

/// Where the harness sends a client's offers.
#[derive(Clone)]
pub struct OfferSink(mpsc::Sender<Command>);

impl OfferSink {
    /// Has the client accept the server's offer `sdp`; its answer, once it made one.
    pub async fn accept(&self, sdp: String) -> Option<String> {
        let (reply, answer) = oneshot::channel();
        self.0.send(Command::AcceptOffer(sdp, reply)).await.ok()?;
        answer.await.ok()
    }
}
