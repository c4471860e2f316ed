-- Server-side recording: a session (the parent the SFU's recorder opens, with the id signaling
-- announced) and one track recording per participant track, each an ordinary recording with its
-- own key, chunks and manifest. Uploads from browsers stay 'upload'.
ALTER TABLE consultation_recordings ADD COLUMN kind TEXT NOT NULL DEFAULT 'upload'
    CHECK (kind IN ('upload', 'session', 'track'));
ALTER TABLE consultation_recordings ADD COLUMN parent_id TEXT REFERENCES consultation_recordings (id);
ALTER TABLE consultation_recordings ADD COLUMN track_meta TEXT;   -- JSON (wakili_core TrackMeta)
CREATE INDEX consultation_recordings_parent ON consultation_recordings (parent_id);
