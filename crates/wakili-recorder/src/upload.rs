//! One track file's way to storage: an intake that places each chunk in memory or the spool
//! as soon as it is cut (so the session never waits), and a writer that stores them in order,
//! retrying while storage is unavailable.

use std::{
    collections::VecDeque,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use serde_json::json;
use tokio::{sync::Notify, task::JoinHandle};

use crate::{StoreError, TrackIdentity, TrackNote, TrackStore, queue::Budget, queue::Waiting};

/// What a track's session hands its uploader, in order.
pub(crate) enum Item {
    /// The file's first chunk is coming: create its track recording.
    Open(TrackIdentity),
    /// A chunk of the file.
    Chunk { seq: u32, bytes: Vec<u8> },
    /// An audit note.
    Note(TrackNote, serde_json::Value),
    /// The file is complete.
    Finish {
        chunks: u32,
        duration_seconds: Option<f64>,
    },
}

/// What waits in the queue.
enum Queued {
    Open(TrackIdentity),
    Chunk {
        seq: u32,
        waiting: Waiting,
    },
    Note(TrackNote, serde_json::Value),
    Finish {
        chunks: u32,
        duration_seconds: Option<f64>,
    },
}

/// The session a track belongs to.
pub(crate) struct SessionRef {
    pub(crate) consultation_id: String,
    pub(crate) recording_id: String,
    pub(crate) started_by: String,
    /// The ids storage should keep alive (the session's and its tracks').
    pub(crate) alive: Mutex<Vec<String>>,
}

/// Sends a track's items to its uploader.
pub(crate) struct Uploader {
    items: tokio::sync::mpsc::UnboundedSender<Item>,
}

impl Uploader {
    /// Starts the uploader of one track file; the handle ends once it finished (or gave up).
    pub(crate) fn spawn(
        session: Arc<SessionRef>,
        store: Arc<dyn TrackStore>,
        budget: Arc<Budget>,
        spool_dir: PathBuf,
    ) -> (Self, JoinHandle<()>) {
        let (items, mut receiver) = tokio::sync::mpsc::unbounded_channel();
        let queue = Arc::new(Shared::default());
        let intake = {
            let queue = queue.clone();
            let budget = budget.clone();
            async move {
                while let Some(item) = receiver.recv().await {
                    let queued = match item {
                        Item::Open(identity) => Queued::Open(identity),
                        Item::Chunk { seq, bytes } => {
                            let len = bytes.len();
                            match budget.place(bytes, &spool_dir).await {
                                Some(waiting) => Queued::Chunk { seq, waiting },
                                None => {
                                    budget.overflow.fetch_add(1, Ordering::Relaxed);
                                    tracing::error!(
                                        seq,
                                        len,
                                        "recording queue full: chunk dropped"
                                    );
                                    Queued::Note(
                                        TrackNote::Overflow,
                                        json!({ "seq": seq, "bytes": len }),
                                    )
                                }
                            }
                        }
                        Item::Note(note, detail) => Queued::Note(note, detail),
                        Item::Finish {
                            chunks,
                            duration_seconds,
                        } => Queued::Finish {
                            chunks,
                            duration_seconds,
                        },
                    };
                    queue.push(queued);
                }
                queue.close();
            }
        };
        tokio::spawn(intake);
        let writer = Writer {
            session,
            store,
            budget,
            track_id: None,
        };
        (Self { items }, tokio::spawn(writer.run(queue)))
    }

    /// Queues `item` (never waits).
    pub(crate) fn send(&self, item: Item) {
        let _ = self.items.send(item);
    }
}

#[derive(Default)]
struct Shared {
    queue: Mutex<VecDeque<Queued>>,
    closed: AtomicBool,
    ready: Notify,
}

impl Shared {
    fn push(&self, item: Queued) {
        if let Ok(mut q) = self.queue.lock() {
            q.push_back(item);
        }
        self.ready.notify_one();
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.ready.notify_one();
    }

    /// The next item; `None` once the intake closed and everything was taken.
    async fn pop(&self) -> Option<Queued> {
        loop {
            let next = self.queue.lock().ok().and_then(|mut q| q.pop_front());
            if next.is_some() {
                return next;
            }
            if self.closed.load(Ordering::Acquire) {
                // Items pushed just before closing are in the queue already.
                return self.queue.lock().ok().and_then(|mut q| q.pop_front());
            }
            self.ready.notified().await;
        }
    }
}

struct Writer {
    session: Arc<SessionRef>,
    store: Arc<dyn TrackStore>,
    budget: Arc<Budget>,
    track_id: Option<String>,
}

impl Writer {
    async fn run(mut self, queue: Arc<Shared>) {
        while let Some(item) = queue.pop().await {
            let finished = matches!(item, Queued::Finish { .. });
            self.write(item).await;
            if finished {
                break;
            }
        }
        // Anything after a finish (there should be nothing) is given back.
        while let Some(item) = queue.pop().await {
            if let Queued::Chunk { waiting, .. } = item {
                self.budget.free(waiting).await;
            }
        }
    }

    async fn write(&mut self, item: Queued) {
        let store = self.store.clone();
        let session = self.session.clone();
        match item {
            Queued::Open(identity) => {
                let opened = retry("open the track recording", || async {
                    store
                        .open_session(
                            &session.recording_id,
                            &session.consultation_id,
                            &session.started_by,
                        )
                        .await?;
                    store.open_track(&session.recording_id, &identity).await
                })
                .await;
                match opened {
                    Ok(id) => {
                        tracing::info!(recording_id = %session.recording_id, track_id = %id, label = %identity.label, user_id = %identity.user_id, "track recording started");
                        if let Ok(mut alive) = session.alive.lock() {
                            alive.push(id.clone());
                        }
                        self.track_id = Some(id);
                    }
                    Err(error) => {
                        tracing::error!(%error, recording_id = %session.recording_id, "track not recorded: storage refused it")
                    }
                }
            }
            Queued::Chunk { seq, waiting } => {
                if let Some(id) = &self.track_id {
                    let stored = retry("store a chunk", || async {
                        let bytes = self.budget.read(&waiting).await.map_err(|e| StoreError {
                            transient: false,
                            message: format!("spooled chunk unreadable: {e}"),
                        })?;
                        let len = bytes.len() as u64;
                        store.put_chunk(id, seq, bytes).await.map(|()| len)
                    })
                    .await;
                    match stored {
                        Ok(len) => {
                            self.budget.sealed_bytes.fetch_add(len, Ordering::Relaxed);
                            self.budget.sealed_chunks.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(error) => {
                            tracing::error!(%error, track_id = %id, seq, "chunk not stored")
                        }
                    }
                }
                self.budget.free(waiting).await;
            }
            Queued::Note(note, detail) => {
                if let Some(id) = &self.track_id {
                    let noted =
                        retry("note a track", || store.note(id, note, detail.clone())).await;
                    if let Err(error) = noted {
                        tracing::error!(%error, track_id = %id, ?note, "track note not written");
                    }
                }
            }
            Queued::Finish {
                chunks,
                duration_seconds,
            } => {
                if let Some(id) = &self.track_id {
                    let noted = retry("note a track", || {
                        store.note(id, TrackNote::Stopped, json!({ "chunks": chunks }))
                    })
                    .await;
                    if let Err(error) = noted {
                        tracing::error!(%error, track_id = %id, "track stop not audited");
                    }
                    let done = retry("finish a track", || {
                        store.finish_track(id, chunks, duration_seconds)
                    })
                    .await;
                    if let Err(error) = done {
                        tracing::error!(%error, track_id = %id, "track not finished; storage will finalize it as incomplete");
                    }
                }
            }
        }
    }
}

/// Runs `attempt` until it succeeds or fails for good; transient failures are retried after
/// 250 ms, doubling up to 10 s (the queue's bounds decide how long media may wait).
pub(crate) async fn retry<T, F, Fut>(what: &str, mut attempt: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut wait = Duration::from_millis(250);
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(error) if error.transient => {
                tracing::warn!(%error, retry_in = ?wait, "could not {what}; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(10));
            }
            Err(error) => return Err(error),
        }
    }
}
