//! Which node serves a consultation's media, and how a participant connected to any node reaches
//! it.
//!
//! All SFU sessions of a consultation live on one node, its media owner (`wakili:media:<id>` in
//! Redis, see [`RoomStore::claim_media`](crate::store::RoomStore::claim_media)): the first node
//! that needs them (a `media:publish`, or a server recording to start) claims the consultation.
//! Negotiation (publish, answer, pause, layers), departures, the end of the call and the
//! recorder's instructions are carried out there: at once when this node is the owner, otherwise
//! as a call on the owner's channel, answered on this node's. A call that no node receives means
//! the owner is gone (killed, or shut down): this node takes the media over, and participants
//! publish to it again (the SDK does when its connection to the old server fails).

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::sync::oneshot;
use wakili_core::room::Room;
use wakili_sfu::{Quality, Rid, SfuError, TrackId};

use super::Hub;
use crate::{protocol::Refusal, store::NodeMessage};

/// How long a call to another node's media server may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Something to do with a consultation's media, on the node that serves it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct MediaCall {
    /// The consultation.
    pub room: String,
    /// The participant it concerns (empty for the whole consultation).
    pub participant: String,
    /// What to do.
    pub op: Op,
}

/// What a [`MediaCall`] does.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) enum Op {
    /// Publish (`media:publish`): the participant's offer; answers the SFU's answer.
    Join { sdp: String },
    /// As `Join`, receiving only (an observer).
    Listen { sdp: String },
    /// The participant's answer to the SFU's last offer (`media:answer`).
    Answer { sdp: String },
    /// Pause or resume one received track (`media:subscription`).
    Pause { track: u64, paused: bool },
    /// One layer for every video the participant receives (`None`: the server chooses).
    ForceLayer { rid: Option<String> },
    /// Cap the layers the participant receives to a quality profile's.
    QualityCap { profile: String },
    /// The participant left the call: its session ends.
    Leave,
    /// The call ended: every session ends, and the node lets the consultation go.
    Close,
    /// Make the recorder do what the room decides now.
    SyncRecorder,
}

impl Op {
    /// Whether this needs a media server even when none serves the consultation yet.
    fn claims(&self) -> bool {
        matches!(
            self,
            Self::Join { .. } | Self::Listen { .. } | Self::SyncRecorder
        )
    }
}

/// Why a media call failed, as it crosses between nodes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) enum MediaFailure {
    /// This node runs no SFU.
    Disabled,
    /// The media server cannot serve now (stopped, or its node does not answer).
    Unavailable(String),
    /// The room has as many media sessions as it may.
    RoomFull(String),
    /// An observer offered to send.
    ListenOnly(String),
    /// No such session or room (nothing to end).
    Unknown(String),
    /// Anything else the SFU refused (bad SDP, codecs, names).
    Refused(String),
}

/// A call's result: the SFU's SDP where it answers with one.
pub(super) type MediaResult = Result<Option<String>, MediaFailure>;

impl From<SfuError> for MediaFailure {
    fn from(e: SfuError) -> Self {
        match e {
            SfuError::Stopped | SfuError::Bind { .. } | SfuError::NoPublicIp => {
                Self::Unavailable(e.to_string())
            }
            SfuError::RoomFull { .. } => Self::RoomFull(e.to_string()),
            SfuError::ListenOnly { .. } => Self::ListenOnly(e.to_string()),
            SfuError::UnknownRoom(_) | SfuError::UnknownParticipant { .. } => {
                Self::Unknown(e.to_string())
            }
            other => Self::Refused(other.to_string()),
        }
    }
}

impl MediaFailure {
    /// What the client sees.
    pub(super) fn refusal(self) -> Refusal {
        match self {
            Self::Disabled => Refusal::new(
                "sfu_disabled",
                "this server runs no SFU (sfu.enabled = false): media goes peer to peer",
            ),
            Self::Unavailable(reason) => {
                tracing::error!(reason, "the SFU is unavailable");
                Refusal::new("unavailable", "the media server is unavailable; retry")
            }
            Self::RoomFull(message) => Refusal::new("room_full", message),
            Self::ListenOnly(message) => Refusal::new("listen_only", message),
            Self::Unknown(message) | Self::Refused(message) => {
                Refusal::new("media_refused", message)
            }
        }
    }
}

/// Calls this node made to other nodes' media servers, waiting for their replies.
#[derive(Default)]
pub(super) struct Calls {
    next: AtomicU64,
    waiting: Mutex<HashMap<u64, oneshot::Sender<MediaResult>>>,
}

/// A call's place among those waiting; leaving it (answered, timed out or cancelled) forgets
/// it.
struct Waiting<'a> {
    calls: &'a Calls,
    id: u64,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.calls
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
    }
}

impl Calls {
    fn begin(&self) -> (Waiting<'_>, oneshot::Receiver<MediaResult>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, tx);
        (Waiting { calls: self, id }, rx)
    }

    /// Another node answered call `id`.
    pub(super) fn answered(&self, id: u64, body: &RawValue) {
        let waiting = self
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
        match (waiting, serde_json::from_str::<MediaResult>(body.get())) {
            (Some(tx), Ok(result)) => {
                let _ = tx.send(result);
            }
            // Timed out meanwhile.
            (None, _) => {}
            (Some(tx), Err(e)) => {
                let _ = tx.send(Err(MediaFailure::Unavailable(format!(
                    "unreadable reply from the media node: {e}"
                ))));
            }
        }
    }
}

impl Hub {
    /// Carries out `call` on the node that serves the consultation's media, claiming it for
    /// this node when none does (or its owner is gone) and the call needs a media server.
    pub(super) async fn media(&self, call: MediaCall) -> MediaResult {
        let store_failed = |e: crate::store::SignalError| MediaFailure::Unavailable(e.to_string());
        let mut owner = self
            .store
            .media_owner(&call.room, &self.node)
            .await
            .map_err(store_failed)?;
        let mut gone: Option<String> = None;
        // A claim answers the owner; at most a couple of owners can vanish under one call.
        for _ in 0..4 {
            let node = match owner.take() {
                Some(node) if gone.as_deref() != Some(node.as_str()) => node,
                // Nobody serves it (or its owner is gone): only a call that needs a media
                // server claims it, and only a node that runs one.
                _ if !call.op.claims() => {
                    return Err(MediaFailure::Unknown(format!(
                        "no media session in consultation {}",
                        call.room
                    )));
                }
                _ if self.sfu.is_none() => return Err(MediaFailure::Disabled),
                _ => {
                    let node = self
                        .store
                        .claim_media(&call.room, &self.node, gone.as_deref())
                        .await
                        .map_err(store_failed)?;
                    if node == self.node && gone.is_some() {
                        tracing::warn!(consultation_id = %call.room, gone = gone.as_deref(), "took over the media of a consultation whose node is gone");
                        if call.op.claims() && !matches!(call.op, Op::SyncRecorder) {
                            // A recording in progress carries on here, in new tracks.
                            let sync = MediaCall {
                                op: Op::SyncRecorder,
                                participant: String::new(),
                                ..call.clone()
                            };
                            let _ = self.serve_media(&sync).await;
                        }
                    }
                    node
                }
            };
            if node == self.node {
                return self.serve_media(&call).await;
            }
            match self.call_node(&node, &call).await? {
                Some(result) => return result,
                None => gone = Some(node),
            }
        }
        Err(MediaFailure::Unavailable(
            "the consultation's media node kept changing".to_owned(),
        ))
    }

    /// Sends `call` to `node` and waits for its reply; `None` when no node listens there.
    async fn call_node(
        &self,
        node: &str,
        call: &MediaCall,
    ) -> Result<Option<MediaResult>, MediaFailure> {
        let (waiting, reply) = self.calls.begin();
        let message = NodeMessage::call(&self.node, waiting.id, call)
            .map_err(|e| MediaFailure::Refused(e.to_string()))?;
        let received = self
            .store
            .send(node, message)
            .await
            .map_err(|e| MediaFailure::Unavailable(e.to_string()))?;
        if !received {
            return Ok(None);
        }
        match tokio::time::timeout(CALL_TIMEOUT, reply).await {
            Ok(Ok(result)) => Ok(Some(result)),
            Ok(Err(_)) | Err(_) => Err(MediaFailure::Unavailable(format!(
                "media node {node} did not answer within {CALL_TIMEOUT:?}"
            ))),
        }
    }

    /// Carries out `call` with this node's SFU and recorder.
    pub(super) async fn serve_media(&self, call: &MediaCall) -> MediaResult {
        let Some(sfu) = &self.sfu else {
            return Err(MediaFailure::Disabled);
        };
        let (room, participant) = (call.room.as_str(), call.participant.as_str());
        match &call.op {
            Op::Join { sdp } => sfu.join(room, participant, sdp).await.map(|a| Some(a.sdp)),
            Op::Listen { sdp } => sfu.listen(room, participant, sdp).await.map(|a| Some(a.sdp)),
            Op::Answer { sdp } => sfu.answer(room, participant, sdp).await.map(|()| None),
            Op::Pause { track, paused } => sfu
                .pause(room, participant, TrackId(*track), *paused)
                .await
                .map(|()| None),
            Op::ForceLayer { rid } => {
                let rid = rid.as_deref().and_then(Rid::parse);
                sfu.force_layer(room, participant, rid).await.map(|()| None)
            }
            Op::QualityCap { profile } => sfu
                .set_quality_cap(room, participant, Quality::from_profile(profile))
                .await
                .map(|()| None),
            Op::Leave => sfu.leave(room, participant).await.map(|()| None),
            Op::Close => {
                let closed = sfu.close(room).await;
                if let Err(e) = self.store.release_media(room, &self.node).await {
                    tracing::warn!(error = %e, consultation_id = room, "media owner not released");
                }
                closed.map(|()| None)
            }
            Op::SyncRecorder => {
                if let Some(recorder) = &self.recorder {
                    // As Redis has it now: the change that asked for this may have been made
                    // on another node a moment ago.
                    match self.store.get(room).await {
                        Ok(state) => {
                            let plan = state.as_ref().and_then(Room::server_recording);
                            recorder.apply(room, plan).await;
                        }
                        Err(e) => {
                            tracing::error!(error = %e, consultation_id = room, "recorder not told of a room change");
                        }
                    }
                }
                Ok(None)
            }
        }
        .map_err(MediaFailure::from)
    }
}

/// Carries out a call another node made to this node's media server, on a task of its own (the
/// channel's task must not wait), and sends the reply to the caller's channel.
pub(super) fn answer(hub: Arc<Hub>, from: &str, id: u64, body: &RawValue) {
    let call = serde_json::from_str::<MediaCall>(body.get());
    let from = from.to_owned();
    tokio::spawn(async move {
        let result: MediaResult = match call {
            Ok(call) => hub.serve_media(&call).await,
            Err(e) => Err(MediaFailure::Refused(format!("unreadable media call: {e}"))),
        };
        match NodeMessage::reply(id, &result) {
            Ok(reply) => match hub.store.send(&from, reply).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::debug!(node = from, "media call answered after its node left")
                }
                Err(e) => tracing::warn!(error = %e, "media call reply not sent"),
            },
            Err(e) => tracing::warn!(error = %e, "media call reply not encoded"),
        }
    });
}
