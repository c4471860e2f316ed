//! Server-side recording: every participant's tracks, straight from the SFU's packets, into
//! WebM without transcoding, sealed and stored a chunk at a time as the call goes on.
//!
//! Signaling tells the [`Recorder`] what the consultation's room decided ([`Plan`]: which
//! recording, whether it records now or waits for a newcomer's consent, who is in the call);
//! the recorder makes it so:
//!
//! - **Tap.** While a consultation is recorded, the SFU copies each packet of each published
//!   track (of a simulcast track, its highest layer flowing) into the session's feed, never
//!   waiting: what the feed has no room for is counted and reported.
//! - **Tracks.** One file per participant and track *label* (`audio`, `video`, `screen` for a
//!   screen share): a participant who reloads, reconnects or rejoins continues the same file
//!   after a gap. Each file is a [`wakili_mux::TrackMuxer`]; its chunks (about
//!   [`RecorderConfig::chunk_interval`] of media, keyframe-aligned) go to the track's
//!   uploader. Keyframes the muxer wants become PLIs to the publisher through the SFU.
//! - **Queue.** Chunks wait for storage in memory up to [`RecorderConfig::memory_bytes`] (all
//!   tracks together), then in spool files (encrypted with a key that lives only in this
//!   process) up to [`RecorderConfig::spool_bytes`]. Beyond that a chunk is dropped, counted
//!   ([`RecorderStats::overflow_chunks`]) and written to the audit log, and the recording's
//!   manifest lists it missing: never lost silently.
//! - **Store.** Everything durable goes through the narrow [`TrackStore`]: the session
//!   recording, one track recording per file (with its participant, role, codec and start
//!   offset), each chunk sealed and stored before the next, audit notes (paused, resumed,
//!   overflow, stopped), and finishing. Transient failures (storage down) are retried with
//!   backoff while the queue holds.
//! - **Pause and stop.** A newcomer who must still consent pauses every track (gaps); the
//!   lawyer stopping the recording, or the call ending, finishes every file and then the
//!   session. A crash leaves the session and its tracks `uploading`: storage finalizes them as
//!   `incomplete` with every chunk sealed before it.
//!
//! The decisions that need no IO (which file a packet belongs to, codecs, labels) are in
//! `plan`; this crate's tasks are the plumbing around them and the muxer.

#![forbid(unsafe_code)]

mod plan;
mod queue;
mod session;
mod store;
mod upload;

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use tokio::sync::{Mutex, mpsc};
use wakili_sfu::SfuHandle;

pub use plan::{Plan, Seat};
pub use store::{StoreError, TrackIdentity, TrackKind, TrackNote, TrackStore};

use queue::Budget;
use session::{Control, Session};

/// How the recorder works.
#[derive(Debug, Clone)]
pub struct RecorderConfig {
    /// Media per chunk (audio is cut after it, video at the next keyframe). Default 4 s.
    pub chunk_interval: Duration,
    /// Memory for chunks waiting for storage, all tracks together. Default 64 MiB.
    pub memory_bytes: u64,
    /// Where chunks wait once that memory is full.
    pub spool_dir: PathBuf,
    /// Spool space for chunks waiting for storage. Default 2 GiB.
    pub spool_bytes: u64,
    /// Packets a session's feed holds before the SFU drops them. Default 16,384.
    pub feed_capacity: usize,
    /// How often a running recording tells storage it is alive (so a long pause is not taken
    /// for a crash). Default 60 s.
    pub keep_alive: Duration,
}

impl RecorderConfig {
    /// The defaults, spooling under `spool_dir`.
    pub fn new(spool_dir: PathBuf) -> Self {
        Self {
            chunk_interval: Duration::from_secs(4),
            memory_bytes: 64 << 20,
            spool_dir,
            spool_bytes: 2 << 30,
            feed_capacity: 16_384,
            keep_alive: Duration::from_secs(60),
        }
    }
}

/// What the recorder did, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecorderStats {
    /// Sessions recording (or paused) now.
    pub sessions: u64,
    /// Track files open now.
    pub active_tracks: u64,
    /// Media bytes sealed and stored since the start.
    pub sealed_bytes: u64,
    /// Chunks sealed and stored since the start.
    pub sealed_chunks: u64,
    /// Bytes waiting for storage in memory now.
    pub queued_memory_bytes: u64,
    /// Bytes waiting for storage in spool files now.
    pub spooled_bytes: u64,
    /// Chunks dropped because memory and spool were full, since the start.
    pub overflow_chunks: u64,
    /// Packets taken from the SFU into a file's muxer, since the start.
    pub recorded_packets: u64,
    /// Packets the SFU could not hand over (the feed was full), since the start.
    pub dropped_packets: u64,
}

/// Records consultations through the SFU. One per server; cheap to share.
pub struct Recorder {
    sfu: SfuHandle,
    store: Arc<dyn TrackStore>,
    config: RecorderConfig,
    budget: Arc<Budget>,
    sessions: Mutex<HashMap<String, Link>>,
}

/// The running session of one consultation.
struct Link {
    recording_id: String,
    control: mpsc::UnboundedSender<Control>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Recorder {
    /// A recorder taking packets from `sfu` and storing through `store`. Spool files left by
    /// an earlier run are removed (their key died with it).
    pub fn new(
        sfu: SfuHandle,
        store: Arc<dyn TrackStore>,
        config: RecorderConfig,
    ) -> std::io::Result<Self> {
        queue::clean_spool(&config.spool_dir)?;
        Ok(Self {
            sfu,
            store,
            budget: Arc::new(Budget::new(config.memory_bytes, config.spool_bytes)),
            config,
            sessions: Mutex::new(HashMap::new()),
        })
    }

    /// Makes `consultation`'s recording what its room decided: `None` (nothing recorded, or
    /// recorded by a browser) stops a running session, which finishes its files and then the
    /// session recording; a plan starts one, pauses or resumes it, and keeps its list of
    /// participants current. Idempotent: call it after every change of the room.
    pub async fn apply(&self, consultation: &str, plan: Option<Plan>) {
        let mut sessions = self.sessions.lock().await;
        let current = sessions.get(consultation);
        let same = matches!((current, &plan), (Some(link), Some(plan)) if link.recording_id == plan.recording_id);
        if !same && let Some(link) = sessions.remove(consultation) {
            if let Err(error) = self.sfu.stop_recording(consultation).await {
                tracing::warn!(%error, consultation_id = consultation, "SFU tap not removed");
            }
            let _ = link.control.send(Control::Stop);
        }
        let Some(plan) = plan else {
            return;
        };
        if let Some(link) = sessions.get(consultation) {
            if link.control.send(Control::Update(plan.clone())).is_err() {
                sessions.remove(consultation);
            }
            return;
        }
        let (feed_tx, feed) = mpsc::channel(self.config.feed_capacity);
        if let Err(error) = self.sfu.record(consultation, feed_tx).await {
            tracing::error!(%error, consultation_id = consultation, "the SFU refused to record");
            return;
        }
        let (control, controls) = mpsc::unbounded_channel();
        tracing::info!(consultation_id = consultation, recording_id = %plan.recording_id, "server recording starts");
        let link = Link {
            recording_id: plan.recording_id.clone(),
            control,
        };
        let session = Session::new(
            consultation.to_owned(),
            plan,
            self.sfu.clone(),
            self.store.clone(),
            self.config.clone(),
            self.budget.clone(),
        );
        tokio::spawn(session.run(feed, controls));
        sessions.insert(consultation.to_owned(), link);
    }

    /// Whether `consultation` is being recorded (or paused) now.
    pub async fn records(&self, consultation: &str) -> bool {
        self.sessions.lock().await.contains_key(consultation)
    }

    /// Stops every session (the server shuts down): files are finished and stored as far as
    /// storage allows before `grace` runs out; what is left is finalized `incomplete` later.
    pub async fn shutdown(&self, grace: Duration) {
        let links: Vec<Link> = self.sessions.lock().await.drain().map(|(_, l)| l).collect();
        for link in &links {
            let _ = link.control.send(Control::Stop);
        }
        let deadline = tokio::time::Instant::now() + grace;
        while self.budget.sessions.load(Ordering::Relaxed) > 0
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What the recorder did so far.
    pub fn stats(&self) -> RecorderStats {
        let b = &self.budget;
        RecorderStats {
            sessions: b.sessions.load(Ordering::Relaxed),
            active_tracks: b.tracks.load(Ordering::Relaxed),
            sealed_bytes: b.sealed_bytes.load(Ordering::Relaxed),
            sealed_chunks: b.sealed_chunks.load(Ordering::Relaxed),
            queued_memory_bytes: b.memory_used.load(Ordering::Relaxed),
            spooled_bytes: b.spool_used.load(Ordering::Relaxed),
            overflow_chunks: b.overflow.load(Ordering::Relaxed),
            recorded_packets: b.recorded_packets.load(Ordering::Relaxed),
            dropped_packets: self.sfu.recorder_dropped(),
        }
    }
}
