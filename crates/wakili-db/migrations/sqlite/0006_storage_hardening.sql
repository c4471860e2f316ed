-- Finalization the server retries: the uploader's `complete` request is kept while the recording
-- is `finalizing`; `finalize_after` is when the next attempt may start (a lease while one runs,
-- the backoff after one failed).
ALTER TABLE consultation_recordings ADD COLUMN finalize_request TEXT;
ALTER TABLE consultation_recordings ADD COLUMN finalize_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE consultation_recordings ADD COLUMN finalize_after TEXT;
CREATE INDEX consultation_recordings_finalize ON consultation_recordings (status, finalize_after);
-- Re-wrapping finds the data keys not wrapped by the current master key.
CREATE INDEX consultation_recordings_key_id ON consultation_recordings (key_id);

-- Objects of shredded recordings still to delete, per provider; a row goes once its delete
-- succeeded, so deletes that failed are retried in the background.
CREATE TABLE recording_object_deletes (
    provider      TEXT NOT NULL,
    object_key    TEXT NOT NULL,
    recording_id  TEXT NOT NULL,
    queued_at     TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (provider, object_key)
);
