-- Recording consent decisions taken over signaling: who, when, which notice, the answer.
CREATE TABLE recording_consents (
    id               TEXT PRIMARY KEY NOT NULL,
    consultation_id  TEXT NOT NULL REFERENCES video_consultations (id),
    recording_id     TEXT NOT NULL,
    user_id          TEXT NOT NULL,
    participant_id   TEXT NOT NULL,
    notice_version   TEXT NOT NULL,
    decision         TEXT NOT NULL CHECK (decision IN ('granted', 'refused')),
    decided_at       TEXT NOT NULL
);
CREATE INDEX recording_consents_consultation ON recording_consents (consultation_id, id);
CREATE INDEX recording_consents_recording ON recording_consents (recording_id, id);

-- Sampled quality:report values with their score, per participant.
CREATE TABLE quality_samples (
    id               TEXT PRIMARY KEY NOT NULL,
    consultation_id  TEXT NOT NULL REFERENCES video_consultations (id),
    participant_id   TEXT NOT NULL,
    user_id          TEXT NOT NULL,
    taken_at         TEXT NOT NULL,
    rtt_ms           REAL NOT NULL,
    jitter_ms        REAL NOT NULL,
    packet_loss_pct  REAL NOT NULL,
    outbound_kbps    REAL NOT NULL,
    inbound_kbps     REAL NOT NULL,
    frame_rate       REAL NOT NULL,
    width            INTEGER NOT NULL,
    height           INTEGER NOT NULL,
    candidate_type   TEXT NOT NULL,
    mos              REAL NOT NULL,
    level            TEXT NOT NULL
);
CREATE INDEX quality_samples_consultation ON quality_samples (consultation_id, id);
