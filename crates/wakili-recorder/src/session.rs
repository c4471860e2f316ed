//! One recorded consultation: the task that reads the SFU's feed, keeps one muxer per file,
//! and hands chunks to each file's uploader.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{Arc, Mutex, atomic::Ordering},
    time::{Duration, Instant, SystemTime},
};

use serde_json::json;
use tokio::{
    sync::mpsc::{Receiver, UnboundedReceiver},
    task::JoinHandle,
};
use wakili_mux::{MuxerConfig, Output, RtpInput, SenderReport, TrackMuxer};
use wakili_sfu::{RecordedPacket, RecorderFeed, SfuHandle, TrackId};

use crate::{
    Plan, RecorderConfig, TrackIdentity, TrackKind, TrackNote, TrackStore,
    plan::{self, FileKey, Roster},
    queue::Budget,
    upload::{Item, SessionRef, Uploader, retry},
};

/// What the recorder tells a running session.
pub(crate) enum Control {
    /// The room changed.
    Update(Plan),
    /// Stop: finish every file, then the session.
    Stop,
}

/// One file being written.
struct File {
    muxer: TrackMuxer,
    uploader: Uploader,
    participant_id: String,
    role: wakili_core::ParticipantRole,
    kind: TrackKind,
    codec: &'static str,
    /// The SFU track feeding it now.
    source: (Arc<str>, TrackId),
    last_report: Option<(SystemTime, u32)>,
    opened: bool,
    chunks: u32,
    end_ms: u64,
    paused: bool,
}

pub(crate) struct Session {
    consultation: String,
    plan: Plan,
    roster: Roster,
    sfu: SfuHandle,
    store: Arc<dyn TrackStore>,
    config: RecorderConfig,
    budget: Arc<Budget>,
    /// The session's start on the wall clock: track offsets are measured from it.
    started_at: SystemTime,
    files: BTreeMap<FileKey, File>,
    sources: HashMap<(Arc<str>, TrackId), FileKey>,
    /// SFU tracks not recorded (unknown participant, codec not recordable), logged once.
    ignored: HashSet<(Arc<str>, TrackId)>,
    session: Arc<SessionRef>,
    uploads: Vec<JoinHandle<()>>,
    next_uid: u64,
}

impl Session {
    pub(crate) fn new(
        consultation: String,
        plan: Plan,
        sfu: SfuHandle,
        store: Arc<dyn TrackStore>,
        config: RecorderConfig,
        budget: Arc<Budget>,
    ) -> Self {
        let session = Arc::new(SessionRef {
            consultation_id: consultation.clone(),
            recording_id: plan.recording_id.clone(),
            started_by: plan.started_by.clone(),
            alive: Mutex::new(vec![plan.recording_id.clone()]),
        });
        Self {
            consultation,
            roster: Roster::new(plan.seats.clone()),
            plan,
            sfu,
            store,
            config,
            budget,
            started_at: SystemTime::now(),
            files: BTreeMap::new(),
            sources: HashMap::new(),
            ignored: HashSet::new(),
            session,
            uploads: Vec::new(),
            next_uid: 1,
        }
    }

    pub(crate) async fn run(
        mut self,
        mut feed: Receiver<RecorderFeed>,
        mut controls: UnboundedReceiver<Control>,
    ) {
        self.budget.sessions.fetch_add(1, Ordering::Relaxed);
        // The session recording exists from the start, even before any track has media.
        let opened = {
            let (store, s) = (self.store.clone(), self.session.clone());
            tokio::spawn(async move {
                retry("open the session recording", || {
                    store.open_session(&s.recording_id, &s.consultation_id, &s.started_by)
                })
                .await
            })
        };
        let mut keep_alive = tokio::time::interval(self.config.keep_alive);
        keep_alive.tick().await;
        loop {
            let deadline = self
                .files
                .values()
                .filter_map(|f| f.muxer.poll_timeout())
                .min()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
            tokio::select! {
                control = controls.recv() => match control {
                    Some(Control::Update(plan)) => self.update(plan),
                    Some(Control::Stop) | None => break,
                },
                fed = feed.recv() => match fed {
                    Some(RecorderFeed::Packet(packet)) => self.packet(packet),
                    Some(RecorderFeed::TrackEnded { participant, track }) => {
                        self.track_ended(participant, track);
                    }
                    None => break,
                },
                () = tokio::time::sleep_until(deadline.into()) => self.timeouts(Instant::now()),
                _ = keep_alive.tick() => self.keep_alive(),
            }
        }
        if let Ok(Err(error)) = opened.await {
            tracing::error!(%error, recording_id = %self.plan.recording_id, "session recording not created");
        }
        self.finish().await;
    }

    fn update(&mut self, plan: Plan) {
        self.roster.update(plan.seats.clone());
        let pausing = self.plan.active && !plan.active;
        self.plan = plan;
        if pausing {
            let now = Instant::now();
            let keys: Vec<FileKey> = self.files.keys().cloned().collect();
            for key in keys {
                self.pause(&key, now, "consent_pending");
            }
        }
    }

    /// Stops writing `key` for now: what is buffered is written, the next packet starts after
    /// a gap.
    fn pause(&mut self, key: &FileKey, now: Instant, reason: &str) {
        let Some(file) = self.files.get_mut(key) else {
            return;
        };
        file.muxer.restart(now);
        if !file.paused && file.opened {
            file.uploader
                .send(Item::Note(TrackNote::Paused, json!({ "reason": reason })));
        }
        file.paused = true;
        self.drain(key);
    }

    fn track_ended(&mut self, participant: String, track: TrackId) {
        let source = (Arc::from(participant), track);
        let Some(key) = self.sources.remove(&source) else {
            return;
        };
        // A rejoined publisher's new track may feed the file already (its end can come late,
        // when the feed was full): that one goes on.
        if self.files.get(&key).is_some_and(|f| f.source == source) {
            self.pause(&key, Instant::now(), "track_ended");
        }
    }

    fn packet(&mut self, p: RecordedPacket) {
        if !self.plan.active {
            return;
        }
        let source = (p.participant.clone(), p.track);
        let key = match self.sources.get(&source) {
            Some(key) => key.clone(),
            None => match self.file_for(&p) {
                Some(key) => key,
                None => return,
            },
        };
        let Some(file) = self.files.get_mut(&key) else {
            return;
        };
        if p.sender_report.is_some() && p.sender_report != file.last_report {
            file.last_report = p.sender_report;
            if let Some((ntp_time, rtp_timestamp)) = p.sender_report {
                file.muxer.handle_sender_report(SenderReport {
                    ssrc: p.ssrc,
                    ntp_time,
                    rtp_timestamp,
                });
            }
        }
        let input = RtpInput {
            ssrc: p.ssrc,
            sequence_number: p.seq,
            timestamp: p.timestamp,
            marker: p.marker,
            payload: &p.payload,
            arrival: p.arrival,
        };
        match file.muxer.handle_rtp(input) {
            Ok(()) => {
                self.budget.recorded_packets.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => tracing::trace!(%error, "packet not recorded"),
        }
        if file.paused {
            file.paused = false;
            if file.opened {
                file.uploader
                    .send(Item::Note(TrackNote::Resumed, json!({})));
            }
        }
        self.drain(&key);
    }

    /// The file a new SFU track feeds: an existing one of the same user and label (after a
    /// gap), or a new one. `None` when it is not recorded.
    fn file_for(&mut self, p: &RecordedPacket) -> Option<FileKey> {
        let source = (p.participant.clone(), p.track);
        if self.ignored.contains(&source) {
            return None;
        }
        let (Some(key), Some(seat)) = (
            self.roster.file(&p.participant, &p.label),
            self.roster.seat(&p.participant).cloned(),
        ) else {
            tracing::warn!(participant_id = %p.participant, "media from a participant signaling did not announce: not recorded");
            self.ignored.insert(source);
            return None;
        };
        let Some((codec, codec_name)) = plan::recordable(p.codec, p.channels) else {
            tracing::warn!(participant_id = %p.participant, codec = ?p.codec, "codec not recordable: track not recorded");
            self.ignored.insert(source);
            return None;
        };
        if let Some(file) = self.files.get_mut(&key) {
            // The participant is back (reload, reconnect): same file, after a gap.
            file.muxer.restart(p.arrival);
            file.source = source.clone();
            file.participant_id = seat.participant_id.clone();
        } else {
            let mut config = MuxerConfig::new(codec);
            config.clock_rate = p.clock_rate;
            config.chunk_interval = self.config.chunk_interval;
            config.track_uid = self.next_uid;
            self.next_uid += 1;
            let muxer = match TrackMuxer::new(config, Instant::now(), SystemTime::now()) {
                Ok(muxer) => muxer,
                Err(error) => {
                    tracing::error!(%error, "muxer refused its configuration");
                    self.ignored.insert(source);
                    return None;
                }
            };
            let (uploader, handle) = Uploader::spawn(
                self.session.clone(),
                self.store.clone(),
                self.budget.clone(),
                self.config.spool_dir.clone(),
            );
            self.uploads.push(handle);
            self.budget.tracks.fetch_add(1, Ordering::Relaxed);
            self.files.insert(
                key.clone(),
                File {
                    muxer,
                    uploader,
                    participant_id: seat.participant_id.clone(),
                    role: seat.role,
                    kind: plan::kind(p.kind),
                    codec: codec_name,
                    source: source.clone(),
                    last_report: None,
                    opened: false,
                    chunks: 0,
                    end_ms: 0,
                    paused: false,
                },
            );
        }
        self.sources.insert(source, key.clone());
        Some(key)
    }

    fn timeouts(&mut self, now: Instant) {
        let due: Vec<FileKey> = self
            .files
            .iter()
            .filter(|(_, f)| f.muxer.poll_timeout().is_some_and(|t| t <= now))
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            if let Some(file) = self.files.get_mut(&key)
                && let Err(error) = file.muxer.handle_timeout(now)
            {
                tracing::warn!(%error, "muxer timeout failed");
            }
            self.drain(&key);
        }
    }

    /// Hands what `key`'s muxer produced to its uploader and the SFU.
    fn drain(&mut self, key: &FileKey) {
        let Some(file) = self.files.get_mut(key) else {
            return;
        };
        while let Some(output) = file.muxer.poll_output() {
            match output {
                Output::Chunk(chunk) => {
                    if !file.opened {
                        let first_media = file
                            .muxer
                            .origin()
                            .map_or_else(SystemTime::now, |o| o.wall_clock);
                        let (started_at, start_offset_ms) =
                            plan::track_start(self.started_at, first_media);
                        file.uploader.send(Item::Open(TrackIdentity {
                            participant_id: file.participant_id.clone(),
                            user_id: key.user_id.clone(),
                            role: file.role,
                            kind: file.kind,
                            label: key.label.clone(),
                            codec: file.codec,
                            started_at,
                            start_offset_ms,
                        }));
                        file.opened = true;
                    }
                    let seq = u32::try_from(chunk.info.index).unwrap_or(u32::MAX);
                    file.chunks = file.chunks.max(seq.saturating_add(1));
                    file.end_ms = file.end_ms.max(chunk.info.end_ms);
                    file.uploader.send(Item::Chunk {
                        seq,
                        bytes: chunk.bytes,
                    });
                }
                Output::KeyframeWanted => {
                    let (sfu, room, track) =
                        (self.sfu.clone(), self.consultation.clone(), file.source.1);
                    tokio::spawn(async move {
                        if let Err(error) = sfu.recorder_keyframe(&room, track).await {
                            tracing::debug!(%error, "keyframe request for the recorder not sent");
                        }
                    });
                }
            }
        }
    }

    fn keep_alive(&self) {
        let ids = self
            .session
            .alive
            .lock()
            .map(|ids| ids.clone())
            .unwrap_or_default();
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(error) = store.keep_alive(&ids).await {
                tracing::warn!(%error, "recording keep-alive failed");
            }
        });
    }

    /// Finishes every file, waits for their uploads, then finishes the session recording.
    async fn finish(mut self) {
        let now = Instant::now();
        let keys: Vec<FileKey> = self.files.keys().cloned().collect();
        for key in &keys {
            if let Some(file) = self.files.get_mut(key)
                && let Err(error) = file.muxer.finish(now)
            {
                tracing::warn!(%error, "muxer did not finish cleanly");
            }
            self.drain(key);
        }
        let tracks = self.files.len() as u64;
        for (key, file) in std::mem::take(&mut self.files) {
            if !file.opened {
                // Media came, yet no part of it could be written: say why.
                let stats = file.muxer.stats();
                tracing::warn!(recording_id = %self.plan.recording_id, user_id = %key.user_id, label = %key.label, ?stats, "a track's media came but nothing of it was recorded");
            }
            file.uploader.send(Item::Finish {
                chunks: file.chunks,
                duration_seconds: file.opened.then_some(file.end_ms as f64 / 1000.0),
            });
        }
        for upload in std::mem::take(&mut self.uploads) {
            let _ = upload.await;
        }
        self.budget.tracks.fetch_sub(tracks, Ordering::Relaxed);
        let s = &self.session;
        let store = &self.store;
        let done = retry("finish the session recording", || async {
            store
                .open_session(&s.recording_id, &s.consultation_id, &s.started_by)
                .await?;
            store.finish_session(&s.recording_id, &s.started_by).await
        })
        .await;
        match done {
            Ok(()) => {
                tracing::info!(recording_id = %s.recording_id, tracks, "server recording finished")
            }
            Err(error) => {
                tracing::error!(%error, recording_id = %s.recording_id, "session not finished; storage will finalize it as incomplete")
            }
        }
        self.budget.sessions.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use tokio::sync::mpsc;
    use wakili_core::ParticipantRole;
    use wakili_sfu::{Codec, MediaKind, Sfu, SfuConfig};

    use super::*;
    use crate::{Seat, StoreError};

    /// Keeps the notes written about each track; accepts everything else.
    #[derive(Default)]
    struct Notes(Mutex<Vec<(String, TrackNote)>>);

    #[async_trait]
    impl TrackStore for Notes {
        async fn open_session(&self, _: &str, _: &str, _: &str) -> Result<(), StoreError> {
            Ok(())
        }
        async fn open_track(&self, _: &str, t: &TrackIdentity) -> Result<String, StoreError> {
            Ok(format!("{}-{}", t.user_id, t.label))
        }
        async fn put_chunk(&self, _: &str, _: u32, _: Vec<u8>) -> Result<(), StoreError> {
            Ok(())
        }
        async fn note(
            &self,
            track: &str,
            note: TrackNote,
            _: serde_json::Value,
        ) -> Result<(), StoreError> {
            let mut notes = self.0.lock().unwrap_or_else(|e| e.into_inner());
            notes.push((track.to_owned(), note));
            Ok(())
        }
        async fn finish_track(&self, _: &str, _: u32, _: Option<f64>) -> Result<(), StoreError> {
            Ok(())
        }
        async fn finish_session(&self, _: &str, _: &str) -> Result<(), StoreError> {
            Ok(())
        }
        async fn keep_alive(&self, _: &[String]) -> Result<(), StoreError> {
            Ok(())
        }
    }

    /// Opus packets of one SFU track, one every 20 ms.
    struct Audio {
        participant: Arc<str>,
        track: TrackId,
        ssrc: u32,
        next: u64,
    }

    impl Audio {
        fn new(participant: &str, track: u64, ssrc: u32) -> Self {
            Self {
                participant: Arc::from(participant),
                track: TrackId(track),
                ssrc,
                next: 0,
            }
        }

        /// Feeds `count` packets, in real time.
        async fn send(&mut self, feed: &mpsc::Sender<RecorderFeed>, count: u64) {
            for _ in 0..count {
                let n = self.next;
                self.next += 1;
                let packet = RecordedPacket {
                    participant: self.participant.clone(),
                    track: self.track,
                    label: Arc::from("audio"),
                    kind: MediaKind::Audio,
                    codec: Codec::Opus,
                    clock_rate: 48_000,
                    channels: Some(2),
                    ssrc: self.ssrc,
                    seq: n as u16,
                    timestamp: (n * 960) as u32,
                    marker: false,
                    payload: Arc::from(vec![0xfc; 40]),
                    arrival: Instant::now(),
                    sender_report: None,
                };
                feed.send(RecorderFeed::Packet(packet)).await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    /// A publisher reloads: their new track feeds the file before the old track's end reaches
    /// the recorder (the SFU hands an end over late when the feed was full). The file goes on
    /// without a pause; an end that arrives in order pauses it.
    #[tokio::test]
    async fn a_late_end_of_a_rejoined_publishers_old_track_does_not_pause_their_file() {
        // Runs until its last handle (the session's) is dropped.
        let sfu = Sfu::start(SfuConfig::loopback(), std::future::pending())
            .await
            .unwrap();
        let spool = tempfile::tempdir().unwrap();
        let mut config = RecorderConfig::new(spool.path().to_owned());
        config.chunk_interval = Duration::from_millis(500);
        let seat = |participant: &str| Seat {
            participant_id: participant.into(),
            user_id: "client-1".into(),
            role: ParticipantRole::Client,
        };
        let plan = Plan {
            recording_id: "rec-1".into(),
            started_by: "lawyer-1".into(),
            active: true,
            seats: vec![seat("bob"), seat("bob-again"), seat("bob-third")],
        };
        let store = Arc::new(Notes::default());
        let session = Session::new(
            "consultation-1".into(),
            plan,
            sfu,
            store.clone(),
            config,
            Arc::new(Budget::new(64 << 20, 64 << 20)),
        );
        let (feed, feed_receiver) = mpsc::channel(64);
        let (controls, control_receiver) = mpsc::unbounded_channel();
        let running = tokio::spawn(session.run(feed_receiver, control_receiver));

        let mut first = Audio::new("bob", 1, 1111);
        let mut second = Audio::new("bob-again", 2, 2222);
        first.send(&feed, 30).await;
        // The new track's media first, then the old track's end.
        second.send(&feed, 10).await;
        let late_end = RecorderFeed::TrackEnded {
            participant: "bob".into(),
            track: first.track,
        };
        feed.send(late_end).await.unwrap();
        second.send(&feed, 30).await;
        // Now an end in order: the second track's, before the third track's media.
        let end = RecorderFeed::TrackEnded {
            participant: "bob-again".into(),
            track: second.track,
        };
        feed.send(end).await.unwrap();
        Audio::new("bob-third", 3, 3333).send(&feed, 30).await;
        controls.send(Control::Stop).unwrap();
        running.await.unwrap();

        let notes = store.0.lock().unwrap().clone();
        assert_eq!(
            notes,
            [
                ("client-1-audio".to_owned(), TrackNote::Paused),
                ("client-1-audio".to_owned(), TrackNote::Resumed),
                ("client-1-audio".to_owned(), TrackNote::Stopped),
            ],
            "one pause, for the end that came in order"
        );
    }
}
