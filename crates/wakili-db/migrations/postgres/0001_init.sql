-- Wakili schema, PostgreSQL flavour.

CREATE TABLE users (
    id          TEXT PRIMARY KEY,
    role        TEXT NOT NULL CHECK (role IN ('client', 'lawyer', 'admin')),
    name        TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE video_consultations (
    id                   TEXT PRIMARY KEY,
    lawyer_id            TEXT NOT NULL,
    client_id            TEXT NOT NULL,
    title                TEXT,
    notes                TEXT,
    scheduled_at         TIMESTAMPTZ NOT NULL,
    duration_minutes     BIGINT NOT NULL CHECK (duration_minutes > 0),
    status               TEXT NOT NULL CHECK (status IN ('scheduled', 'in_progress', 'ended', 'cancelled')),
    created_by           TEXT NOT NULL,
    created_at           TIMESTAMPTZ NOT NULL,
    updated_at           TIMESTAMPTZ NOT NULL,
    started_at           TIMESTAMPTZ,
    ended_at             TIMESTAMPTZ,
    cancelled_at         TIMESTAMPTZ,
    cancelled_by         TEXT,
    cancellation_reason  TEXT,
    version              BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX video_consultations_schedule ON video_consultations (scheduled_at, id);
CREATE INDEX video_consultations_status ON video_consultations (status, scheduled_at);

CREATE TABLE consultation_participants (
    consultation_id  TEXT NOT NULL REFERENCES video_consultations (id) ON DELETE CASCADE,
    user_id          TEXT NOT NULL,
    role             TEXT NOT NULL CHECK (role IN ('client', 'lawyer', 'admin')),
    added_at         TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (consultation_id, user_id)
);
CREATE INDEX consultation_participants_user ON consultation_participants (user_id, consultation_id);

CREATE TABLE consultation_recordings (
    id                TEXT PRIMARY KEY,
    consultation_id   TEXT NOT NULL REFERENCES video_consultations (id),
    started_by        TEXT NOT NULL,
    status            TEXT NOT NULL,
    format            TEXT,
    codec             TEXT,
    resolution        TEXT,
    duration_seconds  DOUBLE PRECISION,
    file_size_bytes   BIGINT NOT NULL DEFAULT 0,
    chunk_count       BIGINT NOT NULL DEFAULT 0,
    sha256            TEXT,
    started_at        TIMESTAMPTZ NOT NULL,
    completed_at      TIMESTAMPTZ,
    created_at        TIMESTAMPTZ NOT NULL
);
CREATE INDEX consultation_recordings_consultation ON consultation_recordings (consultation_id, started_at);

CREATE TABLE device_registrations (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL,
    token         TEXT NOT NULL UNIQUE,
    platform      TEXT NOT NULL CHECK (platform IN ('ios', 'android', 'web')),
    app_version   TEXT NOT NULL,
    locale        TEXT,
    is_active     BOOLEAN NOT NULL DEFAULT TRUE,
    last_seen_at  TIMESTAMPTZ NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX device_registrations_user ON device_registrations (user_id, is_active);

CREATE TABLE audit_events (
    id               TEXT PRIMARY KEY,
    consultation_id  TEXT,
    actor_id         TEXT,
    action           TEXT NOT NULL,
    detail           TEXT NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX audit_events_consultation ON audit_events (consultation_id, id);

CREATE FUNCTION audit_events_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
