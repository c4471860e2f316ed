//! Wakili's embedded SFU: the IO side of media forwarding.
//!
//! Every participant's WebRTC session is a [str0m](https://docs.rs/str0m/0.25) `Rtc`; one
//! tokio task owns all of them and one [`wakili_forward::Forwarder`] per room, reads the
//! single UDP socket, hands each datagram to the session that accepts it (`Rtc::accepts`,
//! then remembered per remote address), and carries out the forwarder's decisions. The
//! decisions themselves (which layer each subscriber gets, the rewritten sequence numbers and
//! timestamps, when to ask for a keyframe, who speaks) are wakili-forward's, sans-IO and
//! tested there; this crate is the plumbing around them. The signaling layer drives it
//! through an [`SfuHandle`] and listens to its [`SfuEvent`]s.
//!
//! # RTP mode, not frame mode
//!
//! Sessions run in str0m's RTP mode (`RtcConfig::set_rtp_mode(true)`): each inbound RTP
//! packet surfaces as `Event::RtpPacket` and is written to each subscriber's send stream
//! with `StreamTx::write_rtp`, carrying the sequence number and timestamp the forwarder chose.
//! Frame mode could not do this: it depacketizes into frames and repacketizes with str0m's
//! own numbering, so the forwarder's rewriting (continuity across simulcast switches and
//! pauses) would have nothing to act on, every packet would wait for its whole frame, and a
//! layer switch could not happen exactly at a keyframe's first packet. RTP mode keeps what we
//! want from str0m: packets written `nackable` go into the subscriber session's RTX buffer and
//! str0m answers that subscriber's NACKs from it (RTX is negotiated on every video m-line);
//! inbound losses are NACKed to the publisher and repaired packets arrive as ordinary ones;
//! SRTP, RTCP reports, TWCC and the send-side bandwidth estimate stay str0m's. What RTP mode
//! costs: the IO side reads keyframes from payload descriptors itself (see `codec`), and
//! rewrites VP8 picture ids across layer switches (see `vp8`, through str0m's `Vp8Patch`, so
//! the payload shared by all subscribers is not copied). Audio RED is not negotiated: it would
//! be forwarded unparsed.
//!
//! # Sessions and negotiation
//!
//! - The server is ICE-lite and advertises one UDP host candidate, `public_ip:port`, plus a
//!   passive ICE-TCP candidate on the same port number when [`SfuConfig::ice_tcp`] is on
//!   (default). str0m 0.25 does have ICE-TCP: TCP candidates, `tcptype`, pairing by protocol
//!   (RFC 6544); the sockets and the RFC 4571 framing are the application's, done in `net`.
//! - A participant joins with an offer holding what it sends (audio; video, optionally
//!   simulcast with RIDs `q`/`h`/`f`); the SFU answers. Everything others publish reaches it on
//!   m-lines the SFU adds in its own offers ([`SfuEvent::Offer`], answered through
//!   [`SfuHandle::answer`]), sendonly from the server, labelled `a=msid:<publisher> t<track>`.
//!   Such offers go only to connected participants (so the client has surely applied the join
//!   answer) and one at a time; what changes meanwhile goes in the next one. M-lines of tracks
//!   that went away are stopped (port 0).
//! - Each subscriber receives one stream per track: the layer the forwarder chose, rewritten.
//!   Its PLIs become rate-limited PLIs to the publisher for that layer
//!   (`Forwarder::request_keyframe`); its TWCC estimate (`Event::EgressBitrateEstimate`) is
//!   the forwarder's bandwidth input, and its estimator is asked to probe for enough to carry
//!   the top layer of each video it receives (without a target str0m does not probe above
//!   what it sends).
//! - Limits: [`SfuConfig::max_participants_per_room`] participants per room,
//!   [`SfuConfig::max_tracks_per_participant`] tracks each, names of 1-64 token characters; a
//!   session not connected within [`SfuConfig::connect_timeout`] is dropped. Datagrams no
//!   session accepts are dropped and counted ([`SfuHandle::dropped_datagrams`]).
//!
//! # What str0m 0.25 could not do (and what this crate does instead)
//!
//! - `Rtc::writer` panics in RTP mode: sending is `DirectApi::stream_tx_by_mid` +
//!   `StreamTx::write_rtp`, and keyframe requests `StreamRx::request_keyframe`.
//! - Keyframe detection is public only for AV1 (and H.265); VP8 has `Vp8Descriptor`. VP9 and
//!   H.264 detection are written here (`codec`).
//! - `Event::MediaAdded` fires only once DTLS is up, too late to validate a join: the offer's
//!   m-lines are read from `Rtc::media` right after `accept_offer` instead (`offer`).
//! - `SdpApi::add_media` offers every configured codec on a new m-line; a subscriber that
//!   negotiates a different codec than the publisher sends gets nothing on it (no
//!   transcoding; the packet is skipped).
//! - An ICE-lite agent declares a connected peer gone only after 15 s without binding requests
//!   (not configurable): [`SfuEvent::Disconnected`] comes that late for a vanished browser.
//! - No VP9 picture-id rewriting helper: VP9 and AV1 are forwarded with their descriptors as
//!   sent (fine without simulcast switches; SVC layers are not selected).
//!
//! # Limitations
//!
//! - No client-initiated renegotiation after joining: to publish something else, join again
//!   (the session is replaced). M-lines a client offers to receive on are left unused.
//! - An unanswered server offer blocks later ones for that participant until it rejoins.
//! - One task for every room: fine for consultations (a handful of participants), not a
//!   horizontally scaled media server; timers are scanned linearly.
//! - No TURN inside (clients relay through wakili-turn), no ICE restarts, no audio RED.
//! - Outgoing RTCP sender reports use packet arrival times as wallclock (no drift correction).

#![forbid(unsafe_code)]

mod api;
mod codec;
mod config;
mod context;
mod engine;
mod error;
mod handle;
mod net;
mod offer;
mod room;
mod vp8;

use std::{collections::HashMap, net::SocketAddr, sync::Arc};

use tokio::sync::{broadcast, mpsc};

pub use api::{
    Answer, MediaKind, ParticipantStats, PublishedStats, RecordedPacket, RecorderFeed, RoomStats,
    SfuEvent, SubscriptionStats, TrackInfo,
};
pub use config::{Codecs, SfuConfig};
pub use error::SfuError;
pub use handle::SfuHandle;
/// The codecs str0m negotiates ([`RecordedPacket::codec`]).
pub use str0m::format::Codec;
pub use wakili_forward::{Quality, Rid, TrackId};

use context::Context;
use engine::{Counters, Engine};

/// Commands (and ICE-TCP frames) queued for the engine before senders wait.
const COMMAND_QUEUE: usize = 256;
/// Events kept for slow listeners.
const EVENT_QUEUE: usize = 1024;

/// The SFU; [`Sfu::start`] runs one.
#[derive(Debug)]
pub struct Sfu;

impl Sfu {
    /// Binds the UDP socket (and the ICE-TCP listener), spawns the task that runs every room,
    /// and returns a handle to it. The task ends when `shutdown` completes or every handle is
    /// dropped; sessions are then closed (DTLS close_notify).
    pub async fn start(
        config: SfuConfig,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<SfuHandle, SfuError> {
        config.validate()?;
        let (socket, bound, tcp) =
            net::bind(config.bind, config.ice_tcp, config.listen_backlog).await?;
        let local = SocketAddr::new(config.advertised_ip(bound)?, bound.port());
        let ctx = Context::new(config, local, tcp.is_some())?;
        let (commands, command_receiver) = mpsc::channel(COMMAND_QUEUE);
        let (events, _) = broadcast::channel(EVENT_QUEUE);
        let counters = Arc::new(Counters::default());
        let engine = Engine {
            ctx,
            socket,
            commands: command_receiver,
            events: events.clone(),
            counters: counters.clone(),
            tcp,
            rooms: HashMap::new(),
            taps: HashMap::new(),
            routes: HashMap::new(),
            tcp_writers: HashMap::new(),
        };
        tokio::spawn(engine.run(Box::pin(shutdown)));
        tracing::info!(%local, "SFU listening");
        Ok(SfuHandle {
            commands,
            events,
            counters,
            local_addr: local,
        })
    }
}
