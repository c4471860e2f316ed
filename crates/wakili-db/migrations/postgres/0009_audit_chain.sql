-- The audit log's hash chain (wakili_core::audit_chain): each consultation's entries are numbered
-- and each carries the previous entry's hash and its own. Entries written before this migration
-- stay unchained (NULL); a consultation's chain starts at 1 with its first entry after it.
ALTER TABLE audit_events ADD COLUMN chain_seq BIGINT;
ALTER TABLE audit_events ADD COLUMN prev_hash TEXT;
ALTER TABLE audit_events ADD COLUMN hash TEXT;
CREATE UNIQUE INDEX audit_events_chain ON audit_events (consultation_id, chain_seq);
