-- Mobile push: why a device was deactivated, the notification outbox and scheduled reminders.
ALTER TABLE device_registrations ADD COLUMN deactivated_reason TEXT;
CREATE INDEX device_registrations_seen ON device_registrations (is_active, last_seen_at);

-- Every notification is a row (one per device) before anything is sent. A worker leases due rows
-- (lease_owner, lease_until), sends them and records the outcome; an expired lease is taken over.
CREATE TABLE push_notifications (
    id               TEXT PRIMARY KEY,
    user_id          TEXT NOT NULL,
    device_token     TEXT NOT NULL,
    platform         TEXT NOT NULL,
    kind             TEXT NOT NULL,
    consultation_id  TEXT,
    payload          TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed', 'expired')),
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMPTZ NOT NULL,
    expires_at       TIMESTAMPTZ,
    lease_owner      TEXT,
    lease_until      TIMESTAMPTZ,
    last_error       TEXT,
    message_name     TEXT,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    sent_at          TIMESTAMPTZ
);
CREATE INDEX push_notifications_due ON push_notifications (status, next_attempt_at);
CREATE INDEX push_notifications_consultation ON push_notifications (consultation_id, kind, id);

-- Reminders of a scheduled consultation; `done` once its notifications are in the outbox.
CREATE TABLE push_reminders (
    id               TEXT PRIMARY KEY,
    consultation_id  TEXT NOT NULL REFERENCES video_consultations (id),
    offset_seconds   BIGINT NOT NULL,
    due_at           TIMESTAMPTZ NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'done')),
    lease_owner      TEXT,
    lease_until      TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL,
    done_at          TIMESTAMPTZ,
    UNIQUE (consultation_id, offset_seconds)
);
CREATE INDEX push_reminders_due ON push_reminders (status, due_at);
