-- Guests: an interpreter, a second lawyer (counsel) or an observer the lawyer invites. SQLite
-- cannot change a CHECK constraint in place, so the table is rebuilt with the wider role list and
-- the inviter.
CREATE TABLE consultation_participants_new (
    consultation_id  TEXT NOT NULL REFERENCES video_consultations (id) ON DELETE CASCADE,
    user_id          TEXT NOT NULL,
    role             TEXT NOT NULL
        CHECK (role IN ('client', 'lawyer', 'admin', 'interpreter', 'counsel', 'observer')),
    added_at         TEXT NOT NULL,
    invited_by       TEXT,
    PRIMARY KEY (consultation_id, user_id)
);
INSERT INTO consultation_participants_new (consultation_id, user_id, role, added_at)
    SELECT consultation_id, user_id, role, added_at FROM consultation_participants;
DROP TABLE consultation_participants;
ALTER TABLE consultation_participants_new RENAME TO consultation_participants;
CREATE INDEX consultation_participants_user ON consultation_participants (user_id, consultation_id);
