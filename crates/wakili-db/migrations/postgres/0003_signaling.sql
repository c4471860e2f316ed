-- Recording consent decisions taken over signaling: who, when, which notice, the answer.
CREATE TABLE recording_consents (
    id               TEXT PRIMARY KEY,
    consultation_id  TEXT NOT NULL REFERENCES video_consultations (id),
    recording_id     TEXT NOT NULL,
    user_id          TEXT NOT NULL,
    participant_id   TEXT NOT NULL,
    notice_version   TEXT NOT NULL,
    decision         TEXT NOT NULL CHECK (decision IN ('granted', 'refused')),
    decided_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX recording_consents_consultation ON recording_consents (consultation_id, id);
CREATE INDEX recording_consents_recording ON recording_consents (recording_id, id);

-- Sampled quality:report values with their score, per participant.
CREATE TABLE quality_samples (
    id               TEXT PRIMARY KEY,
    consultation_id  TEXT NOT NULL REFERENCES video_consultations (id),
    participant_id   TEXT NOT NULL,
    user_id          TEXT NOT NULL,
    taken_at         TIMESTAMPTZ NOT NULL,
    rtt_ms           DOUBLE PRECISION NOT NULL,
    jitter_ms        DOUBLE PRECISION NOT NULL,
    packet_loss_pct  DOUBLE PRECISION NOT NULL,
    outbound_kbps    DOUBLE PRECISION NOT NULL,
    inbound_kbps     DOUBLE PRECISION NOT NULL,
    frame_rate       DOUBLE PRECISION NOT NULL,
    width            BIGINT NOT NULL,
    height           BIGINT NOT NULL,
    candidate_type   TEXT NOT NULL,
    mos              DOUBLE PRECISION NOT NULL,
    level            TEXT NOT NULL
);
CREATE INDEX quality_samples_consultation ON quality_samples (consultation_id, id);
