//! The handle the signaling layer holds: async methods that become commands to the engine.

use std::{
    net::SocketAddr,
    sync::{Arc, atomic::Ordering},
};

use tokio::sync::{broadcast, mpsc, oneshot};

use crate::{
    Answer, Quality, RecorderFeed, Rid, RoomStats, SfuError, SfuEvent, TrackId, engine::Counters,
    offer,
};

/// What a handle asks of the engine; each carries where the result goes.
pub(crate) enum Command {
    Join {
        room: String,
        participant: String,
        offer: String,
        /// False for a listen-only participant: an offer that sends media is refused.
        may_publish: bool,
        reply: oneshot::Sender<Result<Answer, SfuError>>,
    },
    Answer {
        room: String,
        participant: String,
        sdp: String,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
    Leave {
        room: String,
        participant: String,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
    Pause {
        room: String,
        subscriber: String,
        track: TrackId,
        paused: bool,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
    ForceLayer {
        room: String,
        subscriber: String,
        rid: Option<Rid>,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
    QualityCap {
        room: String,
        subscriber: String,
        cap: Quality,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
    Stats {
        room: String,
        reply: oneshot::Sender<Result<RoomStats, SfuError>>,
    },
    Close {
        room: String,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
    Record {
        room: String,
        sender: Option<mpsc::Sender<RecorderFeed>>,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
    RecorderKeyframe {
        room: String,
        track: TrackId,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
}

/// Controls a running [`Sfu`](crate::Sfu). Cheap to clone; the SFU stops when its shutdown
/// future completes or every handle is dropped.
#[derive(Clone)]
pub struct SfuHandle {
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) events: broadcast::Sender<SfuEvent>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) local_addr: SocketAddr,
}

impl std::fmt::Debug for SfuHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SfuHandle")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl SfuHandle {
    /// The UDP address media goes to (the advertised IP and the bound port).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Events for the signaling layer, from now on. A receiver that falls more than 1,024
    /// events behind loses the oldest (`RecvError::Lagged`).
    pub fn events(&self) -> broadcast::Receiver<SfuEvent> {
        self.events.subscribe()
    }

    /// Datagrams dropped because no session accepted them (unknown address, unknown ICE
    /// credentials) or they were neither STUN, DTLS nor RTP.
    pub fn dropped_datagrams(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    /// Datagrams the socket refused to send (full buffer, unreachable destination).
    pub fn send_failures(&self) -> u64 {
        self.counters.send_failures.load(Ordering::Relaxed)
    }

    /// Media sessions open now, all rooms together.
    pub fn sessions(&self) -> u64 {
        self.counters.sessions.load(Ordering::Relaxed)
    }

    /// `participant` joins `room` (created on first join) with its SDP offer, which may
    /// publish audio and video (simulcast with RIDs `q`/`h`/`f`). Returns the SDP answer.
    ///
    /// Others' tracks reach it through [`SfuEvent::Offer`]s once it is connected; its own
    /// tracks are announced with [`SfuEvent::TrackPublished`] and offered to the others.
    /// Joining again with the same name (a reloaded page) replaces the previous session.
    pub async fn join(
        &self,
        room: &str,
        participant: &str,
        offer_sdp: &str,
    ) -> Result<Answer, SfuError> {
        self.join_as(room, participant, offer_sdp, true).await
    }

    /// Like [`join`](Self::join), for a participant who may only receive (an observer): an
    /// offer that sends any media is refused with [`SfuError::ListenOnly`]. Its offer carries
    /// a data channel or receive-only m-lines; everyone else's tracks reach it as usual.
    pub async fn listen(
        &self,
        room: &str,
        participant: &str,
        offer_sdp: &str,
    ) -> Result<Answer, SfuError> {
        self.join_as(room, participant, offer_sdp, false).await
    }

    async fn join_as(
        &self,
        room: &str,
        participant: &str,
        offer_sdp: &str,
        may_publish: bool,
    ) -> Result<Answer, SfuError> {
        offer::check_name("room", room)?;
        offer::check_name("participant", participant)?;
        self.call(|reply| Command::Join {
            room: room.to_owned(),
            participant: participant.to_owned(),
            offer: offer_sdp.to_owned(),
            may_publish,
            reply,
        })
        .await
    }

    /// `participant`'s answer to the last [`SfuEvent::Offer`] it was sent.
    pub async fn answer(
        &self,
        room: &str,
        participant: &str,
        answer_sdp: &str,
    ) -> Result<(), SfuError> {
        self.call(|reply| Command::Answer {
            room: room.to_owned(),
            participant: participant.to_owned(),
            sdp: answer_sdp.to_owned(),
            reply,
        })
        .await
    }

    /// `participant` leaves `room`: its session ends and its tracks are removed.
    pub async fn leave(&self, room: &str, participant: &str) -> Result<(), SfuError> {
        self.call(|reply| Command::Leave {
            room: room.to_owned(),
            participant: participant.to_owned(),
            reply,
        })
        .await
    }

    /// `subscriber` stops (`true`) or resumes (`false`) receiving `track`. May be set before
    /// the track's m-line is negotiated; it applies once it is.
    pub async fn pause(
        &self,
        room: &str,
        subscriber: &str,
        track: TrackId,
        paused: bool,
    ) -> Result<(), SfuError> {
        self.call(|reply| Command::Pause {
            room: room.to_owned(),
            subscriber: subscriber.to_owned(),
            track,
            paused,
            reply,
        })
        .await
    }

    /// Sets the highest simulcast layer `subscriber` receives of every video track (the track's
    /// closest layer at or below `rid`), held to its bandwidth estimate: when the estimate does
    /// not cover it, the best layer below that fits, stepping up as the estimate allows (without
    /// estimation, `rid` as it is). `None` returns to automatic choice.
    pub async fn force_layer(
        &self,
        room: &str,
        subscriber: &str,
        rid: Option<Rid>,
    ) -> Result<(), SfuError> {
        self.call(|reply| Command::ForceLayer {
            room: room.to_owned(),
            subscriber: subscriber.to_owned(),
            rid,
            reply,
        })
        .await
    }

    /// Caps the layers `subscriber` receives (the quality engine's recommendation; map
    /// `wakili_core::quality::Level` with [`Quality::from_profile`]).
    pub async fn set_quality_cap(
        &self,
        room: &str,
        subscriber: &str,
        level: Quality,
    ) -> Result<(), SfuError> {
        self.call(|reply| Command::QualityCap {
            room: room.to_owned(),
            subscriber: subscriber.to_owned(),
            cap: level,
            reply,
        })
        .await
    }

    /// Ends every session of `room` at once (the consultation ended): their connections close
    /// and the room is forgotten.
    pub async fn close(&self, room: &str) -> Result<(), SfuError> {
        self.call(|reply| Command::Close {
            room: room.to_owned(),
            reply,
        })
        .await
    }

    /// Records `room` (it need not have sessions yet): from now on every packet of every track
    /// published there (of a simulcast track, its highest layer flowing) is copied to `feed`,
    /// and the end of each track is told. The SFU never waits for the recorder: a packet `feed`
    /// has no room for is dropped and counted ([`recorder_dropped`](Self::recorder_dropped));
    /// a track's end is not dropped but handed over once `feed` has room, after the track's
    /// packets.
    pub async fn record(
        &self,
        room: &str,
        feed: mpsc::Sender<RecorderFeed>,
    ) -> Result<(), SfuError> {
        offer::check_name("room", room)?;
        self.call(|reply| Command::Record {
            room: room.to_owned(),
            sender: Some(feed),
            reply,
        })
        .await
    }

    /// Stops copying `room`'s packets to its recorder.
    pub async fn stop_recording(&self, room: &str) -> Result<(), SfuError> {
        self.call(|reply| Command::Record {
            room: room.to_owned(),
            sender: None,
            reply,
        })
        .await
    }

    /// The recorder needs a keyframe of `track` (to begin its file or a chunk): a PLI goes to
    /// the publisher for the recorded layer.
    pub async fn recorder_keyframe(&self, room: &str, track: TrackId) -> Result<(), SfuError> {
        self.call(|reply| Command::RecorderKeyframe {
            room: room.to_owned(),
            track,
            reply,
        })
        .await
    }

    /// Packets dropped because a recorder's feed was full (all rooms, since the start).
    pub fn recorder_dropped(&self) -> u64 {
        self.counters.recorder_dropped.load(Ordering::Relaxed)
    }

    /// The room's participants, tracks, forwarded packets and chosen layers.
    pub async fn stats(&self, room: &str) -> Result<RoomStats, SfuError> {
        self.call(|reply| Command::Stats {
            room: room.to_owned(),
            reply,
        })
        .await
    }

    async fn call<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<T, SfuError>>) -> Command,
    ) -> Result<T, SfuError> {
        let (reply, result) = oneshot::channel();
        self.commands
            .send(command(reply))
            .await
            .map_err(|_| SfuError::Stopped)?;
        result.await.map_err(|_| SfuError::Stopped)?
    }
}
