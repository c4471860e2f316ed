-- Recording storage: per-recording encryption, chunk bookkeeping, copies per provider, legal hold.
ALTER TABLE consultation_recordings ADD COLUMN wrapped_key TEXT;          -- base64; NULL once shredded
ALTER TABLE consultation_recordings ADD COLUMN key_id TEXT;               -- master key that wrapped it
ALTER TABLE consultation_recordings ADD COLUMN nonce_prefix TEXT NOT NULL DEFAULT '';
ALTER TABLE consultation_recordings ADD COLUMN manifest TEXT;             -- signed manifest (JWS)
ALTER TABLE consultation_recordings ADD COLUMN legal_hold BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE consultation_recordings ADD COLUMN legal_hold_reason TEXT;
ALTER TABLE consultation_recordings ADD COLUMN last_activity_at TIMESTAMPTZ;
ALTER TABLE consultation_recordings ADD COLUMN deleted_at TIMESTAMPTZ;
CREATE INDEX consultation_recordings_activity ON consultation_recordings (status, last_activity_at);

-- One row per uploaded chunk (and one for the terminator that closes the encrypted stream).
-- A row is claimed ('pending', bound to its hash) before anything is encrypted, so two different
-- bodies are never sealed at the same position; it becomes 'stored' once a provider holds it.
CREATE TABLE recording_chunks (
    recording_id  TEXT NOT NULL REFERENCES consultation_recordings (id),
    seq           BIGINT NOT NULL,
    sha256        TEXT NOT NULL,
    size          BIGINT NOT NULL,
    object_size   BIGINT NOT NULL,                 -- ciphertext bytes
    state         TEXT NOT NULL CHECK (state IN ('pending', 'stored', 'terminator')),
    object_key    TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    stored_at     TIMESTAMPTZ,
    PRIMARY KEY (recording_id, seq)
);

-- Which provider holds which chunk object.
CREATE TABLE recording_chunk_copies (
    recording_id  TEXT NOT NULL,
    seq           BIGINT NOT NULL,
    provider      TEXT NOT NULL,
    stored_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (recording_id, seq, provider),
    FOREIGN KEY (recording_id, seq) REFERENCES recording_chunks (recording_id, seq)
);
CREATE INDEX recording_chunk_copies_provider ON recording_chunk_copies (provider);
