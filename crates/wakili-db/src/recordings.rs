use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{
    DbError,
    models::{Chunk, FinalizedRecording, NewAuditEvent, NewRecording, ProviderUsage, Recording},
};

/// Recording storage bookkeeping: recordings, their chunks and which provider holds what.
#[async_trait]
pub trait RecordingStore: Send + Sync {
    /// Creates a recording with its audit entry, atomically. When a recording with this id exists
    /// already it is returned unchanged, with `false`.
    async fn create_recording(
        &self,
        new: &NewRecording,
        audit: NewAuditEvent,
    ) -> Result<(Recording, bool), DbError>;

    /// A recording by id.
    async fn recording(&self, id: &str) -> Result<Option<Recording>, DbError>;

    /// A consultation's recordings as listed for people: uploads and sessions, not the tracks
    /// of sessions; oldest first.
    async fn recordings_of(&self, consultation_id: &str) -> Result<Vec<Recording>, DbError>;

    /// A session's track recordings, oldest first.
    async fn tracks(&self, session_id: &str) -> Result<Vec<Recording>, DbError>;

    /// Marks activity on the recordings `ids` that are still uploading (so a long pause is not
    /// taken for an abandoned upload). Returns how many were touched.
    async fn touch_recordings(&self, ids: &[String], now: DateTime<Utc>) -> Result<u64, DbError>;

    /// Claims uploading recording `id` for finalization as incomplete now, whatever its
    /// activity (a session's finalization takes its unfinished tracks this way). Returns `false`
    /// when it was not uploading.
    async fn abandon_recording(&self, id: &str, now: DateTime<Utc>) -> Result<bool, DbError>;

    /// Claims position `chunk.seq` for a body with hash `chunk.sha256` (state `pending`, or
    /// `terminator`), unless the position is taken: returns the row as it now stands, so the
    /// caller compares hashes before encrypting anything.
    async fn claim_chunk(&self, chunk: &Chunk, now: DateTime<Utc>) -> Result<Chunk, DbError>;

    /// Records that `providers` hold a claimed chunk (`chunk.seq`, its sizes), which becomes
    /// `stored`, and marks upload activity, in one transaction. Returns `false` (and changes
    /// nothing) when the recording no longer accepts chunks.
    async fn chunk_stored(
        &self,
        chunk: &Chunk,
        providers: &[String],
        now: DateTime<Utc>,
    ) -> Result<bool, DbError>;

    /// Gives up a claim that was never stored (the body did not match its hash), so the position
    /// can be claimed again.
    async fn release_chunk(
        &self,
        recording_id: &str,
        seq: u32,
        sha256: &str,
    ) -> Result<(), DbError>;

    /// A recording's chunk rows (any state), by position, with their holders.
    async fn chunks(&self, recording_id: &str) -> Result<Vec<Chunk>, DbError>;

    /// Records one more copy of a stored chunk or terminator.
    async fn add_copy(
        &self,
        recording_id: &str,
        seq: u32,
        provider: &str,
        now: DateTime<Utc>,
    ) -> Result<(), DbError>;

    /// Forgets a copy (its object turned out to be gone).
    async fn drop_copy(&self, recording_id: &str, seq: u32, provider: &str) -> Result<(), DbError>;

    /// Stored chunks and terminators of live recordings that some provider in `wanted` does not
    /// hold yet, oldest first: `limit` of them after skipping `offset`.
    async fn under_replicated(
        &self,
        wanted: &[String],
        limit: u32,
        offset: u64,
    ) -> Result<Vec<Chunk>, DbError>;

    /// How many stored chunks and terminators of live recordings some provider in `wanted` lacks.
    async fn replication_backlog(&self, wanted: &[String]) -> Result<u64, DbError>;

    /// Moves an uploading recording to `finalizing` (stops chunk uploads), keeping the
    /// uploader's `request` (JSON) so the server can retry finalization, which nobody else may
    /// attempt before `lease_until`. Returns `false` when it was not uploading.
    async fn begin_finalizing(
        &self,
        id: &str,
        request: &str,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, DbError>;

    /// Moves a finalizing recording back to `uploading` (`complete` found chunks missing) and
    /// forgets its request.
    async fn reopen_recording(&self, id: &str, now: DateTime<Utc>) -> Result<(), DbError>;

    /// Claims the next finalization attempt of recording `id` (finalizing with a kept request,
    /// its next attempt due at `now`) until `lease_until`. Returns the kept request, or `None`
    /// when an attempt is running or not yet due.
    async fn claim_finalization(
        &self,
        id: &str,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, DbError>;

    /// Claims up to `limit` finalizations due at `now` (see [`Self::claim_finalization`]):
    /// `(id, request, attempts so far including this one)`.
    async fn claim_finalizations(
        &self,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<(String, String, u32)>, DbError>;

    /// A finalization attempt failed: the next may start at `retry_at`.
    async fn finalization_failed(&self, id: &str, retry_at: DateTime<Utc>) -> Result<(), DbError>;

    /// Claims up to `limit` recordings whose upload went silent before `before` (or whose
    /// sweep-started finalization stalled), marking them `finalizing` now. A session one of
    /// whose tracks is still uploading with activity since `before` is not silent. Recordings with a
    /// kept `complete` request are retried instead ([`Self::claim_finalizations`]). Every node
    /// may sweep; each recording is claimed by one.
    async fn claim_abandoned(
        &self,
        before: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<String>, DbError>;

    /// Writes the outcome of finalization with its audit entry.
    async fn finalize_recording(
        &self,
        done: &FinalizedRecording,
        audit: NewAuditEvent,
    ) -> Result<Recording, DbError>;

    /// Crypto-shreds a recording: its wrapped data key is destroyed and it becomes `deleted`, with
    /// its audit entry. Returns `false` (and changes nothing) when it is under legal hold or gone.
    async fn shred_recording(
        &self,
        id: &str,
        now: DateTime<Utc>,
        audit: NewAuditEvent,
    ) -> Result<bool, DbError>;

    /// Queues the deletion of every object of shredded recording `id` on every one of
    /// `providers`, and forgets its chunk rows, in one transaction.
    async fn queue_object_deletes(
        &self,
        id: &str,
        providers: &[String],
        now: DateTime<Utc>,
    ) -> Result<(), DbError>;

    /// Shredded recordings whose chunk rows were not yet turned into queued deletes (the
    /// server stopped in between), up to `limit`.
    async fn shredded_with_chunks(&self, limit: u32) -> Result<Vec<String>, DbError>;

    /// Up to `limit` queued deletes `(provider, object_key)`, least tried first.
    async fn pending_deletes(&self, limit: u32) -> Result<Vec<(String, String)>, DbError>;

    /// A queued delete succeeded (`true`) and is forgotten, or failed once more (`false`).
    async fn delete_attempted(
        &self,
        provider: &str,
        object_key: &str,
        done: bool,
    ) -> Result<(), DbError>;

    /// How many object deletes are still queued.
    async fn pending_delete_count(&self) -> Result<u64, DbError>;

    /// Up to `limit` live recordings whose data key is wrapped by another master key than
    /// `current_key_id`: `(id, wrapped_key, key_id)`.
    async fn keys_to_rewrap(
        &self,
        current_key_id: &str,
        limit: u32,
    ) -> Result<Vec<(String, String, String)>, DbError>;

    /// How many live recordings have a data key wrapped by another master key than
    /// `current_key_id`.
    async fn keys_to_rewrap_count(&self, current_key_id: &str) -> Result<u64, DbError>;

    /// Replaces recording `id`'s wrapped data key, if it is still `old_wrapped_key` (a shred or
    /// another node's re-wrap in between wins). Returns whether it was replaced.
    async fn rewrap_key(
        &self,
        id: &str,
        old_wrapped_key: &str,
        wrapped_key: &str,
        key_id: &str,
    ) -> Result<bool, DbError>;

    /// Sets or clears the legal hold, with its audit entry. `None` for an unknown or deleted
    /// recording.
    async fn set_legal_hold(
        &self,
        id: &str,
        hold: bool,
        reason: Option<String>,
        audit: NewAuditEvent,
        now: DateTime<Utc>,
    ) -> Result<Option<Recording>, DbError>;

    /// Objects and bytes per provider.
    async fn storage_usage(&self) -> Result<Vec<ProviderUsage>, DbError>;
}
