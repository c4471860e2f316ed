//! The recorder end to end: a real SFU on 127.0.0.1, str0m clients publishing synthetic VP8
//! simulcast and Opus, and a store in memory that keeps what it is given (and can fail for a
//! while, as storage does). ffprobe reads the files back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use tokio::sync::oneshot;
use wakili_core::ParticipantRole;
use wakili_recorder::{
    Plan, Recorder, RecorderConfig, Seat, StoreError, TrackIdentity, TrackNote, TrackStore,
};
use wakili_sfu::{Sfu, SfuConfig, SfuHandle};
use wakili_testkit::{
    probe::{longest_gap, packet_times},
    webrtc::{Client, Publish},
};

const ROOM: &str = "consultation-1";

/// One track recording as the store holds it.
#[derive(Debug, Clone)]
struct Track {
    identity: TrackIdentity,
    chunks: BTreeMap<u32, Vec<u8>>,
    notes: Vec<(TrackNote, serde_json::Value)>,
    finished: Option<u32>,
}

#[derive(Default)]
struct Memory {
    sessions: Mutex<HashMap<String, bool>>,
    tracks: Mutex<BTreeMap<String, Track>>,
    /// Chunk writes to refuse (transiently) before accepting again.
    failing_puts: AtomicU32,
    refused_puts: AtomicU32,
}

fn unavailable() -> StoreError {
    StoreError {
        transient: true,
        message: "storage unavailable".into(),
    }
}

#[async_trait]
impl TrackStore for Memory {
    async fn open_session(&self, id: &str, _: &str, _: &str) -> Result<(), StoreError> {
        self.sessions
            .lock()
            .unwrap()
            .entry(id.to_owned())
            .or_insert(false);
        Ok(())
    }

    async fn open_track(&self, session: &str, t: &TrackIdentity) -> Result<String, StoreError> {
        assert!(self.sessions.lock().unwrap().contains_key(session));
        let mut tracks = self.tracks.lock().unwrap();
        let id = format!("{}-{}", t.user_id, t.label);
        assert!(!tracks.contains_key(&id), "one recording per file");
        tracks.insert(
            id.clone(),
            Track {
                identity: t.clone(),
                chunks: BTreeMap::new(),
                notes: Vec::new(),
                finished: None,
            },
        );
        Ok(id)
    }

    async fn put_chunk(&self, track: &str, seq: u32, bytes: Vec<u8>) -> Result<(), StoreError> {
        if self
            .failing_puts
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            self.refused_puts.fetch_add(1, Ordering::SeqCst);
            return Err(unavailable());
        }
        let mut tracks = self.tracks.lock().unwrap();
        let t = tracks.get_mut(track).unwrap();
        assert!(t.finished.is_none(), "no chunk after the end");
        assert!(t.chunks.insert(seq, bytes).is_none(), "each chunk once");
        Ok(())
    }

    async fn note(
        &self,
        track: &str,
        note: TrackNote,
        detail: serde_json::Value,
    ) -> Result<(), StoreError> {
        let mut tracks = self.tracks.lock().unwrap();
        tracks.get_mut(track).unwrap().notes.push((note, detail));
        Ok(())
    }

    async fn finish_track(
        &self,
        track: &str,
        chunks: u32,
        _: Option<f64>,
    ) -> Result<(), StoreError> {
        self.tracks.lock().unwrap().get_mut(track).unwrap().finished = Some(chunks);
        Ok(())
    }

    async fn finish_session(&self, id: &str, _: &str) -> Result<(), StoreError> {
        let unfinished = self
            .tracks
            .lock()
            .unwrap()
            .values()
            .filter(|t| t.finished.is_none())
            .count();
        assert_eq!(unfinished, 0, "tracks finish before their session");
        self.sessions.lock().unwrap().insert(id.to_owned(), true);
        Ok(())
    }

    async fn keep_alive(&self, _: &[String]) -> Result<(), StoreError> {
        Ok(())
    }
}

struct Setup {
    sfu: SfuHandle,
    recorder: Recorder,
    store: Arc<Memory>,
    _spool: tempfile::TempDir,
    _stop: oneshot::Sender<()>,
}

async fn setup(configure: impl FnOnce(&mut RecorderConfig)) -> Setup {
    let (stop, stopped) = oneshot::channel::<()>();
    let sfu = Sfu::start(SfuConfig::loopback(), async {
        let _ = stopped.await;
    })
    .await
    .unwrap();
    let spool = tempfile::tempdir().unwrap();
    let mut config = RecorderConfig::new(spool.path().to_owned());
    config.chunk_interval = Duration::from_secs(1);
    configure(&mut config);
    let store = Arc::new(Memory::default());
    let recorder = Recorder::new(sfu.clone(), store.clone(), config).unwrap();
    Setup {
        sfu,
        recorder,
        store,
        _spool: spool,
        _stop: stop,
    }
}

fn seat(participant: &str, user: &str, role: ParticipantRole) -> Seat {
    Seat {
        participant_id: participant.into(),
        user_id: user.into(),
        role,
    }
}

fn plan(active: bool, seats: Vec<Seat>) -> Plan {
    Plan {
        recording_id: "rec-1".into(),
        started_by: "lawyer-1".into(),
        active,
        seats,
    }
}

async fn publish(sfu: &SfuHandle, name: &str) -> Client {
    let handle = sfu.clone();
    Client::connect(
        sfu.local_addr(),
        name,
        Publish::camera_and_mic(),
        async |sdp: String| handle.join(ROOM, name, &sdp).await.map(|a| a.sdp),
    )
    .await
    .unwrap()
}

/// Waits until `done` holds of the store (or `within` passes).
async fn until(store: &Memory, within: Duration, done: impl Fn(&Memory) -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !done(store) {
        if tokio::time::Instant::now() > deadline {
            let tracks = store.tracks.lock().unwrap();
            let summary: Vec<_> = tracks
                .iter()
                .map(|(k, t)| (k.clone(), t.chunks.len(), t.notes.clone(), t.finished))
                .collect();
            panic!("the store never got there: {summary:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn finished(store: &Memory) -> bool {
    store.sessions.lock().unwrap().get("rec-1") == Some(&true)
}

#[tokio::test]
async fn every_participant_is_recorded_and_a_rejoin_continues_the_file_after_a_gap() {
    let s = setup(|_| {}).await;
    let seats = vec![
        seat("alice", "lawyer-1", ParticipantRole::Lawyer),
        seat("bob", "client-1", ParticipantRole::Client),
    ];
    s.recorder
        .apply(ROOM, Some(plan(true, seats.clone())))
        .await;
    let _alice = publish(&s.sfu, "alice").await;
    let bob = publish(&s.sfu, "bob").await;
    until(&s.store, Duration::from_secs(10), |m| {
        m.tracks
            .lock()
            .unwrap()
            .values()
            .filter(|t| t.chunks.len() >= 2)
            .count()
            == 4
    })
    .await;

    // Bob reloads: his session ends, and he comes back as a new participant.
    s.sfu.leave(ROOM, "bob").await.unwrap();
    drop(bob);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut back = seats.clone();
    back.push(seat("bob-again", "client-1", ParticipantRole::Client));
    s.recorder.apply(ROOM, Some(plan(true, back))).await;
    let _bob = publish(&s.sfu, "bob-again").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(s.recorder.stats().active_tracks >= 4);

    // The lawyer stops the recording.
    s.recorder.apply(ROOM, None).await;
    until(&s.store, Duration::from_secs(10), finished).await;

    let tracks = s.store.tracks.lock().unwrap().clone();
    let names: Vec<&str> = tracks.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "client-1-audio",
            "client-1-video",
            "lawyer-1-audio",
            "lawyer-1-video"
        ],
        "one file per user and track, a rejoin included"
    );
    for (name, t) in &tracks {
        let count = t.finished.unwrap();
        assert_eq!(
            t.chunks.keys().copied().collect::<Vec<_>>(),
            (0..count).collect::<Vec<_>>(),
            "{name}: every chunk stored, in order"
        );
        assert!(
            (0..5_000).contains(&t.identity.start_offset_ms),
            "{name}: {:?}",
            t.identity
        );
        assert_eq!(t.notes.last().unwrap().0, TrackNote::Stopped, "{name}");
    }
    let video = &tracks["client-1-video"];
    assert_eq!(video.identity.codec, "vp8");
    assert_eq!(video.identity.role, ParticipantRole::Client);
    let notes: Vec<TrackNote> = video.notes.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        notes,
        [TrackNote::Paused, TrackNote::Resumed, TrackNote::Stopped]
    );
    assert_eq!(video.notes[0].1["reason"], "track_ended");
    assert_eq!(tracks["lawyer-1-audio"].identity.codec, "opus");

    // The file plays, with the absence as a gap in its timeline.
    let whole: Vec<u8> = video.chunks.values().flatten().copied().collect();
    let times = packet_times(&whole);
    assert!(times.len() > 40, "{} frames", times.len());
    let gap = longest_gap(&times);
    assert!(
        gap > 1.0,
        "the reload shows as a gap of more than a second, got {gap}"
    );
    assert!(
        times.windows(2).all(|w| w[1] >= w[0]),
        "time never goes back"
    );
    let stats = s.recorder.stats();
    assert_eq!((stats.sessions, stats.active_tracks), (0, 0));
    assert!(
        stats.sealed_chunks >= 8 && stats.sealed_bytes > 0,
        "{stats:?}"
    );
    // Two tracks of several seconds each (50 audio packets/s alone).
    assert!(stats.recorded_packets > 200, "{stats:?}");
    assert_eq!(stats.overflow_chunks, 0);
}

#[tokio::test]
async fn nothing_is_recorded_while_a_newcomer_has_not_consented() {
    let s = setup(|_| {}).await;
    let seats = vec![seat("alice", "lawyer-1", ParticipantRole::Lawyer)];
    s.recorder
        .apply(ROOM, Some(plan(true, seats.clone())))
        .await;
    let _alice = publish(&s.sfu, "alice").await;
    until(&s.store, Duration::from_secs(10), |m| {
        m.tracks
            .lock()
            .unwrap()
            .values()
            .any(|t| t.chunks.len() >= 2)
    })
    .await;
    // Bob arrives: paused until he consents.
    let mut with_bob = seats.clone();
    with_bob.push(seat("bob", "client-1", ParticipantRole::Client));
    s.recorder
        .apply(ROOM, Some(plan(false, with_bob.clone())))
        .await;
    let _bob = publish(&s.sfu, "bob").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !s.store
            .tracks
            .lock()
            .unwrap()
            .keys()
            .any(|k| k.starts_with("client-1")),
        "bob's media waits for his consent"
    );
    s.recorder.apply(ROOM, Some(plan(true, with_bob))).await;
    until(&s.store, Duration::from_secs(10), |m| {
        m.tracks
            .lock()
            .unwrap()
            .keys()
            .filter(|k| k.starts_with("client-1"))
            .count()
            == 2
    })
    .await;
    s.recorder.apply(ROOM, None).await;
    until(&s.store, Duration::from_secs(10), finished).await;
    let tracks = s.store.tracks.lock().unwrap().clone();
    let notes: Vec<TrackNote> = tracks["lawyer-1-video"]
        .notes
        .iter()
        .map(|(n, _)| *n)
        .collect();
    assert_eq!(
        notes,
        [TrackNote::Paused, TrackNote::Resumed, TrackNote::Stopped]
    );
    assert_eq!(
        tracks["lawyer-1-video"].notes[0].1["reason"],
        "consent_pending"
    );
}

#[tokio::test]
async fn storage_failing_for_a_while_loses_nothing_and_a_full_queue_is_reported() {
    let s = setup(|_| {}).await;
    s.store.failing_puts.store(6, Ordering::SeqCst);
    let seats = vec![seat("alice", "lawyer-1", ParticipantRole::Lawyer)];
    s.recorder.apply(ROOM, Some(plan(true, seats))).await;
    let _alice = publish(&s.sfu, "alice").await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    s.recorder.apply(ROOM, None).await;
    until(&s.store, Duration::from_secs(30), finished).await;
    assert_eq!(s.store.refused_puts.load(Ordering::SeqCst), 6);
    for (name, t) in s.store.tracks.lock().unwrap().iter() {
        let count = t.finished.unwrap();
        assert!(count >= 2, "{name}");
        assert_eq!(t.chunks.len() as u32, count, "{name}: retried until stored");
    }

    // No room at all for waiting chunks: each is dropped, counted and noted, never silently.
    let s = setup(|c| {
        c.memory_bytes = 1;
        c.spool_bytes = 1;
    })
    .await;
    let seats = vec![seat("alice", "lawyer-1", ParticipantRole::Lawyer)];
    s.recorder.apply(ROOM, Some(plan(true, seats))).await;
    let _alice = publish(&s.sfu, "alice").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    s.recorder.apply(ROOM, None).await;
    until(&s.store, Duration::from_secs(10), finished).await;
    let tracks = s.store.tracks.lock().unwrap().clone();
    let video = &tracks["lawyer-1-video"];
    assert!(video.chunks.is_empty());
    let overflows = video
        .notes
        .iter()
        .filter(|(n, _)| *n == TrackNote::Overflow)
        .count();
    assert_eq!(
        overflows as u32,
        video.finished.unwrap(),
        "every dropped chunk is in the audit"
    );
    assert!(s.recorder.stats().overflow_chunks >= 2);
}
