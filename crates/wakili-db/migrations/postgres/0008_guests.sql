-- Guests: an interpreter, a second lawyer (counsel) or an observer the lawyer invites.
ALTER TABLE consultation_participants DROP CONSTRAINT consultation_participants_role_check;
ALTER TABLE consultation_participants ADD CONSTRAINT consultation_participants_role_check
    CHECK (role IN ('client', 'lawyer', 'admin', 'interpreter', 'counsel', 'observer'));
ALTER TABLE consultation_participants ADD COLUMN invited_by TEXT;
