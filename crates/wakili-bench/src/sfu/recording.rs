//! Server recording in the SFU benchmark: the `sfu-server` child's recorder (`--record`), built
//! as the server builds it — [`wakili_server::start_recorder`] over the server's recording
//! store (SQLite and the local disk provider in a temporary data directory) — and what the
//! benchmark checks of it: its counters during the load, and, once it is shut down, that every
//! published track was recorded into a finalized recording with chunks.

use std::{
    collections::BTreeMap,
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{Context, anyhow, bail};
use serde::{Deserialize, Serialize};
use wakili_core::{
    ParticipantRole,
    room::{RecordedSeat, ServerRecording},
};
use wakili_recorder::{Recorder, RecorderStats};
use wakili_server::AppState;
use wakili_sfu::SfuHandle;

/// The recorder's counters ([`RecorderStats`]), as the child reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecorderCounters {
    /// Sessions recording now.
    pub sessions: u64,
    /// Track files open now.
    pub active_tracks: u64,
    /// Packets taken into a file's muxer since the start.
    pub recorded_packets: u64,
    /// Packets the SFU could not hand to the recorder (its feed was full) since the start.
    pub dropped_packets: u64,
    /// Chunks dropped because the recorder's memory and spool were full, since the start.
    pub overflow_chunks: u64,
    /// Media bytes sealed and stored since the start.
    pub sealed_bytes: u64,
    /// Chunks sealed and stored since the start.
    pub sealed_chunks: u64,
    /// Bytes waiting for storage in memory and in spool files now.
    pub queued_bytes: u64,
}

impl From<RecorderStats> for RecorderCounters {
    fn from(s: RecorderStats) -> Self {
        Self {
            sessions: s.sessions,
            active_tracks: s.active_tracks,
            recorded_packets: s.recorded_packets,
            dropped_packets: s.dropped_packets,
            overflow_chunks: s.overflow_chunks,
            sealed_bytes: s.sealed_bytes,
            sealed_chunks: s.sealed_chunks,
            queued_bytes: s.queued_memory_bytes + s.spooled_bytes,
        }
    }
}

/// One room's session recording as storage holds it after the recorder stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionCheck {
    /// The room (consultation id).
    pub room: String,
    /// The session recording's status (`completed`, `incomplete`, …).
    pub status: String,
    /// Its tracks.
    pub tracks: Vec<TrackCheck>,
}

/// One track recording of a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackCheck {
    /// The publisher (SFU participant).
    pub participant: String,
    /// `audio`, `video`…
    pub label: String,
    /// The track recording's status.
    pub status: String,
    /// Chunk rows stored.
    pub chunks: u64,
    /// Media bytes (set on completion).
    pub bytes: u64,
}

/// What the checks found, when they passed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Finalized {
    /// Session recordings, all completed.
    pub sessions: u64,
    /// Track recordings, all completed, each with chunks.
    pub tracks: u64,
    /// Of which video.
    pub video_tracks: u64,
    /// Chunks stored in all.
    pub chunks: u64,
    /// The fewest chunks of one track.
    pub min_chunks_per_track: u64,
    /// Media bytes of every track together.
    pub bytes: u64,
}

/// Checks that the recorder recorded what it was given: one completed session per room, each
/// with `tracks_per_room` completed tracks (audio and video of every publisher), none without
/// chunks. A figure measured with a recorder that silently recorded nothing fails here.
pub fn verify(
    sessions: &[SessionCheck],
    rooms: usize,
    tracks_per_room: usize,
) -> anyhow::Result<Finalized> {
    if sessions.len() != rooms {
        bail!(
            "{} session recordings in storage for {rooms} recorded rooms",
            sessions.len()
        );
    }
    let mut found = Finalized {
        min_chunks_per_track: u64::MAX,
        ..Finalized::default()
    };
    for session in sessions {
        if session.status != "completed" {
            bail!(
                "room {}: the session recording is {}",
                session.room,
                session.status
            );
        }
        if session.tracks.len() != tracks_per_room {
            let recorded: Vec<String> = session
                .tracks
                .iter()
                .map(|t| format!("{}'s {}", t.participant, t.label))
                .collect();
            bail!(
                "room {}: {} tracks recorded ({}), {tracks_per_room} published",
                session.room,
                session.tracks.len(),
                recorded.join(", ")
            );
        }
        for t in &session.tracks {
            if t.status != "completed" || t.chunks == 0 {
                bail!(
                    "room {}: {}'s {} track is {} with {} chunks",
                    session.room,
                    t.participant,
                    t.label,
                    t.status,
                    t.chunks
                );
            }
            found.tracks += 1;
            found.video_tracks += u64::from(t.label == "video");
            found.chunks += t.chunks;
            found.min_chunks_per_track = found.min_chunks_per_track.min(t.chunks);
            found.bytes += t.bytes;
        }
        found.sessions += 1;
    }
    if found.tracks == 0 {
        bail!("nothing was recorded");
    }
    Ok(found)
}

/// The child's recorder and the server state it stores through.
pub struct Recording {
    state: AppState,
    recorder: Arc<Recorder>,
    /// Room (consultation id) → its session recording id.
    sessions: Mutex<BTreeMap<String, String>>,
}

impl Recording {
    /// The server's state in `data_dir` and the recorder taking packets from `sfu`.
    pub async fn start(data_dir: &Path, sfu: &SfuHandle) -> anyhow::Result<Self> {
        let state = crate::record::recording_state(data_dir, true).await?;
        let recorder = wakili_server::start_recorder(&state.settings, Some(sfu), &state.recordings)
            .context("cannot start the recorder")?
            .context("the settings turned recording off")?;
        Ok(Self {
            state,
            recorder,
            sessions: Mutex::default(),
        })
    }

    /// Books a consultation: its id names the SFU room (as the server names it).
    pub async fn book(&self) -> anyhow::Result<String> {
        crate::record::book_consultation(&self.state).await
    }

    /// Starts recording `room`, as signaling does once everyone consented: a plan with a new
    /// recording id, active, everyone in the room seated (the first publisher as the lawyer
    /// who started it, the other publishers as clients, the subscribers as observers).
    pub async fn record(
        &self,
        room: &str,
        publishers: &[String],
        subscribers: &[String],
    ) -> anyhow::Result<()> {
        let seat = |participant: &String, role| RecordedSeat {
            participant_id: participant.clone(),
            user_id: format!("bench-{participant}"),
            role,
        };
        let mut seats: Vec<RecordedSeat> = publishers
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let role = if i == 0 {
                    ParticipantRole::Lawyer
                } else {
                    ParticipantRole::Client
                };
                seat(p, role)
            })
            .collect();
        seats.extend(
            subscribers
                .iter()
                .map(|s| seat(s, ParticipantRole::Observer)),
        );
        let started_by = seats
            .first()
            .map(|s| s.user_id.clone())
            .context("a room without publishers")?;
        let plan = ServerRecording {
            recording_id: wakili_core::new_id(),
            started_by,
            active: true,
            seats,
        };
        self.sessions
            .lock()
            .map_err(|_| anyhow!("poisoned"))?
            .insert(room.to_owned(), plan.recording_id.clone());
        self.recorder.apply(room, Some(plan)).await;
        if !self.recorder.records(room).await {
            bail!("the recorder did not start recording {room} (see the child's log)");
        }
        Ok(())
    }

    /// The recorder's counters now.
    pub fn counters(&self) -> RecorderCounters {
        self.recorder.stats().into()
    }

    /// Stops every recording as the lawyer would, waits up to `grace` for the recorder to
    /// finish and store them, and reads back what storage holds.
    pub async fn finish(&self, grace: Duration) -> anyhow::Result<Vec<SessionCheck>> {
        let sessions = self
            .sessions
            .lock()
            .map_err(|_| anyhow!("poisoned"))?
            .clone();
        for room in sessions.keys() {
            self.recorder.apply(room, None).await;
        }
        self.recorder.shutdown(grace).await;
        let store = &self.state.recordings;
        let mut checks = Vec::new();
        for (room, id) in sessions {
            let session = store
                .recording(&id)
                .await
                .with_context(|| format!("room {room}: no session recording {id}"))?;
            let mut tracks = Vec::new();
            for track in store.tracks(&id).await? {
                let chunks = store.chunks(&track.id).await?.len() as u64;
                let meta = track.track.as_ref();
                tracks.push(TrackCheck {
                    participant: meta.map_or("?".into(), |m| m.participant_id.clone()),
                    label: meta.map_or("?".into(), |m| m.label.clone()),
                    status: track.status.to_string(),
                    chunks,
                    bytes: u64::try_from(track.file_size_bytes).unwrap_or(0),
                });
            }
            checks.push(SessionCheck {
                room,
                status: session.status.to_string(),
                tracks,
            });
        }
        Ok(checks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn track(label: &str, status: &str, chunks: u64) -> TrackCheck {
        TrackCheck {
            participant: "p0".into(),
            label: label.into(),
            status: status.into(),
            chunks,
            bytes: 1_000 * chunks,
        }
    }

    fn session(status: &str, tracks: Vec<TrackCheck>) -> SessionCheck {
        SessionCheck {
            room: "c1".into(),
            status: status.into(),
            tracks,
        }
    }

    #[test]
    fn finalized_recordings_with_chunks_pass() {
        let good = || {
            session(
                "completed",
                vec![
                    track("audio", "completed", 5),
                    track("video", "completed", 4),
                ],
            )
        };
        let found = verify(&[good(), good()], 2, 2).unwrap();
        assert_eq!(
            found,
            Finalized {
                sessions: 2,
                tracks: 4,
                video_tracks: 2,
                chunks: 18,
                min_chunks_per_track: 4,
                bytes: 18_000,
            }
        );
    }

    #[test]
    fn a_recorder_that_recorded_nothing_or_too_little_fails() {
        let ok = |label| track(label, "completed", 3);
        for (sessions, why) in [
            (vec![], "no session at all"),
            (vec![session("completed", vec![])], "no tracks"),
            (
                vec![session("incomplete", vec![ok("audio"), ok("video")])],
                "session incomplete",
            ),
            (
                vec![session("completed", vec![ok("audio")])],
                "a published track missing",
            ),
            (
                vec![session(
                    "completed",
                    vec![ok("audio"), track("video", "completed", 0)],
                )],
                "a track without chunks",
            ),
            (
                vec![session(
                    "completed",
                    vec![ok("audio"), track("video", "uploading", 2)],
                )],
                "a track not finalized",
            ),
        ] {
            assert!(verify(&sessions, 1, 2).is_err(), "{why} passed");
        }
    }
}
