//! [`RecordingStore`] for [`SqlStore`]: the same portable-SQL approach as `sql.rs`.
//!
//! Over 600 lines because it is one trait's implementation: every statement of the recording
//! store (chunks, copies, finalization, deletes, key re-wrap) is here once, for both databases.

use chrono::{DateTime, Utc};
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, FromRow, IntoArguments, Row, Type};

use crate::{
    DbError,
    models::{Chunk, FinalizedRecording, NewAuditEvent, NewRecording, ProviderUsage, Recording},
    recordings::RecordingStore,
    sql::impl_for_sql,
    sql_audit::insert_audit,
    time::DbTime,
};

const RECORDING_COLUMNS: &str = "id, consultation_id, started_by, status, format, codec, \
     resolution, duration_seconds, file_size_bytes, chunk_count, sha256, started_at, \
     completed_at, created_at, wrapped_key, key_id, nonce_prefix, manifest, legal_hold, \
     legal_hold_reason, last_activity_at, deleted_at, kind, parent_id, track_meta";

const CHUNK_COLUMNS: &str = "recording_id, seq, sha256, size, object_size, state, object_key";

/// Chunk states whose object a provider keeps.
const HELD: &str = "state IN ('stored', 'terminator')";

/// `$first, $first+1, …` for an `IN (…)` list of `n` values.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Recordings whose data key is wrapped under a master key other than `$1` (the current one).
const UNDER_ANOTHER_KEY: &str = "wrapped_key IS NOT NULL AND key_id IS NOT NULL AND key_id <> $1";

impl_for_sql!(RecordingStore {

    async fn create_recording(
        &self,
        new: &NewRecording,
        audit: NewAuditEvent,
    ) -> Result<(Recording, bool), DbError> {
        let track_meta = new
            .track
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| DbError::Corrupt(format!("track metadata: {e}")))?;
        let mut tx = self.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO consultation_recordings (id, consultation_id, started_by, status, \
             started_at, created_at, wrapped_key, key_id, nonce_prefix, last_activity_at, kind, \
             parent_id, track_meta) \
             VALUES ($1, $2, $3, 'uploading', $4, $4, $5, $6, $7, $4, $8, $9, $10) \
             ON CONFLICT (id) DO NOTHING RETURNING id",
        )
        .bind(new.id.clone())
        .bind(new.consultation_id.clone())
        .bind(new.started_by.clone())
        .bind(DbTime(new.now))
        .bind(new.wrapped_key.clone())
        .bind(new.key_id.clone())
        .bind(new.nonce_prefix.clone())
        .bind(new.kind.as_str().to_owned())
        .bind(new.parent_id.clone())
        .bind(track_meta)
        .fetch_optional(&mut *tx)
        .await?
        .is_some();
        if inserted {
            insert_audit(&mut *tx, self, audit, new.now).await?;
        }
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RECORDING_COLUMNS} FROM consultation_recordings WHERE id = $1"
        )))
        .bind(new.id.clone())
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((recording_of(&row)?, inserted))
    }

    async fn recording(&self, id: &str) -> Result<Option<Recording>, DbError> {
        let mut conn = self.pool().acquire().await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RECORDING_COLUMNS} FROM consultation_recordings WHERE id = $1"
        )))
        .bind(id.to_owned())
        .fetch_optional(&mut *conn)
        .await?;
        row.as_ref().map(recording_of).transpose()
    }

    async fn recordings_of(&self, consultation_id: &str) -> Result<Vec<Recording>, DbError> {
        let mut conn = self.pool().acquire().await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RECORDING_COLUMNS} FROM consultation_recordings WHERE consultation_id = $1 \
             AND parent_id IS NULL ORDER BY started_at, id"
        )))
        .bind(consultation_id.to_owned())
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(recording_of).collect()
    }

    async fn tracks(&self, session_id: &str) -> Result<Vec<Recording>, DbError> {
        let mut conn = self.pool().acquire().await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RECORDING_COLUMNS} FROM consultation_recordings WHERE parent_id = $1 \
             ORDER BY started_at, id"
        )))
        .bind(session_id.to_owned())
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(recording_of).collect()
    }

    async fn touch_recordings(&self, ids: &[String], now: DateTime<Utc>) -> Result<u64, DbError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut conn = self.write().await?;
        let sql = format!(
            "UPDATE consultation_recordings SET last_activity_at = $1 \
             WHERE status = 'uploading' AND id IN ({}) RETURNING id",
            placeholders(2, ids.len())
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(DbTime(now));
        for id in ids {
            query = query.bind(id.clone());
        }
        Ok(query.fetch_all(&mut *conn).await?.len() as u64)
    }

    async fn abandon_recording(&self, id: &str, now: DateTime<Utc>) -> Result<bool, DbError> {
        let mut conn = self.write().await?;
        let changed = sqlx::query(
            "UPDATE consultation_recordings SET status = 'finalizing', last_activity_at = $2 \
             WHERE id = $1 AND status = 'uploading' RETURNING id",
        )
        .bind(id.to_owned())
        .bind(DbTime(now))
        .fetch_optional(&mut *conn)
        .await?;
        Ok(changed.is_some())
    }

    async fn claim_chunk(&self, chunk: &Chunk, now: DateTime<Utc>) -> Result<Chunk, DbError> {
        let mut conn = self.write().await?;
        sqlx::query(
            "INSERT INTO recording_chunks (recording_id, seq, sha256, size, object_size, state, \
             object_key, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (recording_id, seq) DO NOTHING",
        )
        .bind(chunk.recording_id.clone())
        .bind(i64::from(chunk.seq))
        .bind(chunk.sha256.clone())
        .bind(to_i64(chunk.size))
        .bind(to_i64(chunk.object_size))
        .bind(chunk.state.as_str().to_owned())
        .bind(chunk.object_key.clone())
        .bind(DbTime(now))
        .execute(&mut *conn)
        .await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CHUNK_COLUMNS} FROM recording_chunks WHERE recording_id = $1 AND seq = $2"
        )))
        .bind(chunk.recording_id.clone())
        .bind(i64::from(chunk.seq))
        .fetch_one(&mut *conn)
        .await?;
        let mut stored = Chunk::from_row(&row)?;
        stored.providers = copies_of(&mut *conn, &chunk.recording_id, Some(chunk.seq))
            .await?
            .into_iter()
            .map(|(_, provider)| provider)
            .collect();
        Ok(stored)
    }

    async fn chunk_stored(
        &self,
        chunk: &Chunk,
        providers: &[String],
        now: DateTime<Utc>,
    ) -> Result<bool, DbError> {
        let (recording_id, seq) = (chunk.recording_id.as_str(), chunk.seq);
        let mut tx = self.begin().await?;
        // Serializes with `begin_finalizing`: a chunk is either recorded before finalization
        // lists the chunks, or refused.
        let open = sqlx::query(
            "UPDATE consultation_recordings SET last_activity_at = $2 \
             WHERE id = $1 AND status = 'uploading' RETURNING id",
        )
        .bind(recording_id.to_owned())
        .bind(DbTime(now))
        .fetch_optional(&mut *tx)
        .await?
        .is_some();
        if !open {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE recording_chunks SET state = 'stored', stored_at = $3, size = $4, \
             object_size = $5 WHERE recording_id = $1 AND seq = $2 AND state = 'pending'",
        )
        .bind(recording_id.to_owned())
        .bind(i64::from(seq))
        .bind(DbTime(now))
        .bind(to_i64(chunk.size))
        .bind(to_i64(chunk.object_size))
        .execute(&mut *tx)
        .await?;
        for provider in providers {
            insert_copy(&mut *tx, recording_id, seq, provider, now).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn release_chunk(
        &self,
        recording_id: &str,
        seq: u32,
        sha256: &str,
    ) -> Result<(), DbError> {
        let mut conn = self.write().await?;
        sqlx::query(
            "DELETE FROM recording_chunks WHERE recording_id = $1 AND seq = $2 AND sha256 = $3 \
             AND state = 'pending'",
        )
        .bind(recording_id.to_owned())
        .bind(i64::from(seq))
        .bind(sha256.to_owned())
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    async fn chunks(&self, recording_id: &str) -> Result<Vec<Chunk>, DbError> {
        let mut conn = self.pool().acquire().await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CHUNK_COLUMNS} FROM recording_chunks WHERE recording_id = $1 ORDER BY seq"
        )))
        .bind(recording_id.to_owned())
        .fetch_all(&mut *conn)
        .await?;
        let mut chunks = rows
            .iter()
            .map(Chunk::from_row)
            .collect::<Result<Vec<_>, _>>()?;
        for (seq, provider) in copies_of(&mut *conn, recording_id, None).await? {
            if let Ok(i) = chunks.binary_search_by_key(&seq, |c| c.seq) {
                chunks[i].providers.push(provider);
            }
        }
        Ok(chunks)
    }

    async fn add_copy(
        &self,
        recording_id: &str,
        seq: u32,
        provider: &str,
        now: DateTime<Utc>,
    ) -> Result<(), DbError> {
        let mut conn = self.write().await?;
        insert_copy(&mut *conn, recording_id, seq, provider, now).await
    }

    async fn drop_copy(&self, recording_id: &str, seq: u32, provider: &str) -> Result<(), DbError> {
        let mut conn = self.write().await?;
        sqlx::query(
            "DELETE FROM recording_chunk_copies WHERE recording_id = $1 AND seq = $2 \
             AND provider = $3",
        )
        .bind(recording_id.to_owned())
        .bind(i64::from(seq))
        .bind(provider.to_owned())
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    async fn under_replicated(
        &self,
        wanted: &[String],
        limit: u32,
        offset: u64,
    ) -> Result<Vec<Chunk>, DbError> {
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.pool().acquire().await?;
        let sql = format!(
            "SELECT c.recording_id, c.seq, c.sha256, c.size, c.object_size, c.state, c.object_key \
             FROM recording_chunks c JOIN consultation_recordings r ON r.id = c.recording_id \
             WHERE c.{HELD} AND r.status <> 'deleted' AND (SELECT COUNT(*) \
             FROM recording_chunk_copies p WHERE p.recording_id = c.recording_id \
             AND p.seq = c.seq AND p.provider IN ({})) < $1 \
             ORDER BY c.created_at, c.recording_id, c.seq LIMIT $2 OFFSET $3",
            placeholders(4, wanted.len())
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(to_i64(wanted.len() as u64))
            .bind(i64::from(limit))
            .bind(to_i64(offset));
        for name in wanted {
            query = query.bind(name.clone());
        }
        let rows = query.fetch_all(&mut *conn).await?;
        let mut chunks = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut chunk = Chunk::from_row(row)?;
            chunk.providers = copies_of(&mut *conn, &chunk.recording_id, Some(chunk.seq))
                .await?
                .into_iter()
                .map(|(_, provider)| provider)
                .collect();
            chunks.push(chunk);
        }
        Ok(chunks)
    }

    async fn replication_backlog(&self, wanted: &[String]) -> Result<u64, DbError> {
        if wanted.is_empty() {
            return Ok(0);
        }
        let mut conn = self.pool().acquire().await?;
        let sql = format!(
            "SELECT COUNT(*) AS n FROM recording_chunks c \
             JOIN consultation_recordings r ON r.id = c.recording_id \
             WHERE c.{HELD} AND r.status <> 'deleted' AND (SELECT COUNT(*) \
             FROM recording_chunk_copies p WHERE p.recording_id = c.recording_id \
             AND p.seq = c.seq AND p.provider IN ({})) < $1",
            placeholders(2, wanted.len())
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(to_i64(wanted.len() as u64));
        for name in wanted {
            query = query.bind(name.clone());
        }
        let n: i64 = query.fetch_one(&mut *conn).await?.try_get("n")?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn begin_finalizing(
        &self,
        id: &str,
        request: &str,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, DbError> {
        let mut conn = self.write().await?;
        let changed = sqlx::query(
            "UPDATE consultation_recordings SET status = 'finalizing', last_activity_at = $2, \
             finalize_request = $3, finalize_after = $4, finalize_attempts = 1 \
             WHERE id = $1 AND status = 'uploading' RETURNING id",
        )
        .bind(id.to_owned())
        .bind(DbTime(now))
        .bind(request.to_owned())
        .bind(DbTime(lease_until))
        .fetch_optional(&mut *conn)
        .await?;
        Ok(changed.is_some())
    }

    async fn reopen_recording(&self, id: &str, now: DateTime<Utc>) -> Result<(), DbError> {
        let mut conn = self.write().await?;
        sqlx::query(
            "UPDATE consultation_recordings SET status = 'uploading', last_activity_at = $2, \
             finalize_request = NULL, finalize_after = NULL, finalize_attempts = 0 \
             WHERE id = $1 AND status = 'finalizing'",
        )
        .bind(id.to_owned())
        .bind(DbTime(now))
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    async fn claim_finalization(
        &self,
        id: &str,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, DbError> {
        let mut conn = self.write().await?;
        let row = sqlx::query(
            "UPDATE consultation_recordings SET finalize_after = $2, \
             finalize_attempts = finalize_attempts + 1 \
             WHERE id = $1 AND status = 'finalizing' AND finalize_request IS NOT NULL \
             AND finalize_after <= $3 RETURNING finalize_request",
        )
        .bind(id.to_owned())
        .bind(DbTime(lease_until))
        .bind(DbTime(now))
        .fetch_optional(&mut *conn)
        .await?;
        row.map(|row| Ok(row.try_get::<String, _>("finalize_request")?))
            .transpose()
    }

    async fn claim_finalizations(
        &self,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<(String, String, u32)>, DbError> {
        let mut conn = self.write().await?;
        let rows = sqlx::query(
            "UPDATE consultation_recordings SET finalize_after = $1, \
             finalize_attempts = finalize_attempts + 1 \
             WHERE id IN (SELECT id FROM consultation_recordings WHERE status = 'finalizing' \
             AND finalize_request IS NOT NULL AND finalize_after <= $2 \
             ORDER BY finalize_after LIMIT $3) \
             AND status = 'finalizing' AND finalize_request IS NOT NULL AND finalize_after <= $2 \
             RETURNING id, finalize_request, finalize_attempts",
        )
        .bind(DbTime(lease_until))
        .bind(DbTime(now))
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|row| {
                let attempts: i64 = row.try_get("finalize_attempts")?;
                Ok((
                    row.try_get::<String, _>("id")?,
                    row.try_get::<String, _>("finalize_request")?,
                    u32::try_from(attempts).unwrap_or(u32::MAX),
                ))
            })
            .collect()
    }

    async fn finalization_failed(&self, id: &str, retry_at: DateTime<Utc>) -> Result<(), DbError> {
        let mut conn = self.write().await?;
        sqlx::query(
            "UPDATE consultation_recordings SET finalize_after = $2 \
             WHERE id = $1 AND status = 'finalizing'",
        )
        .bind(id.to_owned())
        .bind(DbTime(retry_at))
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    async fn claim_abandoned(
        &self,
        before: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<String>, DbError> {
        let mut conn = self.write().await?;
        let rows = sqlx::query(
            "UPDATE consultation_recordings SET status = 'finalizing', last_activity_at = $2 \
             WHERE id IN (SELECT r.id FROM consultation_recordings r \
             WHERE r.status IN ('uploading', 'finalizing') AND r.last_activity_at < $1 \
             AND r.finalize_request IS NULL AND NOT EXISTS (SELECT 1 \
             FROM consultation_recordings t WHERE t.parent_id = r.id \
             AND t.status = 'uploading' AND t.last_activity_at >= $1) \
             ORDER BY r.last_activity_at LIMIT $3) \
             AND status IN ('uploading', 'finalizing') AND last_activity_at < $1 \
             AND finalize_request IS NULL RETURNING id",
        )
        .bind(DbTime(before))
        .bind(DbTime(now))
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|row| Ok(row.try_get::<String, _>("id")?))
            .collect()
    }

    async fn finalize_recording(
        &self,
        done: &FinalizedRecording,
        audit: NewAuditEvent,
    ) -> Result<Recording, DbError> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE consultation_recordings SET status = $2, format = $3, codec = $4, \
             resolution = $5, duration_seconds = $6, file_size_bytes = $7, chunk_count = $8, \
             sha256 = $9, manifest = $10, completed_at = $11, last_activity_at = $11, \
             finalize_request = NULL, finalize_after = NULL \
             WHERE id = $1 RETURNING {RECORDING_COLUMNS}"
        )))
        .bind(done.id.clone())
        .bind(done.status.as_str().to_owned())
        .bind(done.format.clone())
        .bind(done.codec.clone())
        .bind(done.resolution.clone())
        .bind(done.duration_seconds)
        .bind(to_i64(done.file_size_bytes))
        .bind(i64::from(done.chunk_count))
        .bind(done.sha256.clone())
        .bind(done.manifest.clone())
        .bind(DbTime(done.now))
        .fetch_one(&mut *tx)
        .await?;
        insert_audit(&mut *tx, self, audit, done.now).await?;
        tx.commit().await?;
        recording_of(&row)
    }

    async fn shred_recording(
        &self,
        id: &str,
        now: DateTime<Utc>,
        audit: NewAuditEvent,
    ) -> Result<bool, DbError> {
        let mut tx = self.begin().await?;
        let changed = sqlx::query(
            "UPDATE consultation_recordings SET wrapped_key = NULL, status = 'deleted', \
             deleted_at = $2 WHERE id = $1 AND status <> 'deleted' AND legal_hold = $3 RETURNING id",
        )
        .bind(id.to_owned())
        .bind(DbTime(now))
        .bind(false)
        .fetch_optional(&mut *tx)
        .await?;
        if changed.is_none() {
            return Ok(false);
        }
        insert_audit(&mut *tx, self, audit, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn queue_object_deletes(
        &self,
        id: &str,
        providers: &[String],
        now: DateTime<Utc>,
    ) -> Result<(), DbError> {
        let mut tx = self.begin().await?;
        for provider in providers {
            sqlx::query(
                "INSERT INTO recording_object_deletes (provider, object_key, recording_id, \
                 queued_at) SELECT $1, object_key, recording_id, $3 FROM recording_chunks \
                 WHERE recording_id = $2 ON CONFLICT (provider, object_key) DO NOTHING",
            )
            .bind(provider.clone())
            .bind(id.to_owned())
            .bind(DbTime(now))
            .execute(&mut *tx)
            .await?;
        }
        for table in ["recording_chunk_copies", "recording_chunks"] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE recording_id = $1"
            )))
            .bind(id.to_owned())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn shredded_with_chunks(&self, limit: u32) -> Result<Vec<String>, DbError> {
        let mut conn = self.pool().acquire().await?;
        let rows = sqlx::query(
            "SELECT r.id FROM consultation_recordings r WHERE r.status = 'deleted' \
             AND EXISTS (SELECT 1 FROM recording_chunks c WHERE c.recording_id = r.id) \
             ORDER BY r.id LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|row| Ok(row.try_get::<String, _>("id")?))
            .collect()
    }

    async fn pending_deletes(&self, limit: u32) -> Result<Vec<(String, String)>, DbError> {
        let mut conn = self.pool().acquire().await?;
        let rows = sqlx::query(
            "SELECT provider, object_key FROM recording_object_deletes \
             ORDER BY attempts, queued_at, provider, object_key LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get::<String, _>("provider")?,
                    row.try_get::<String, _>("object_key")?,
                ))
            })
            .collect()
    }

    async fn delete_attempted(
        &self,
        provider: &str,
        object_key: &str,
        done: bool,
    ) -> Result<(), DbError> {
        let mut conn = self.write().await?;
        let sql = if done {
            "DELETE FROM recording_object_deletes WHERE provider = $1 AND object_key = $2"
        } else {
            "UPDATE recording_object_deletes SET attempts = attempts + 1 \
             WHERE provider = $1 AND object_key = $2"
        };
        sqlx::query(sql)
            .bind(provider.to_owned())
            .bind(object_key.to_owned())
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    async fn pending_delete_count(&self) -> Result<u64, DbError> {
        let mut conn = self.pool().acquire().await?;
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM recording_object_deletes")
            .fetch_one(&mut *conn)
            .await?
            .try_get("n")?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn keys_to_rewrap(
        &self,
        current_key_id: &str,
        limit: u32,
    ) -> Result<Vec<(String, String, String)>, DbError> {
        let mut conn = self.pool().acquire().await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT id, wrapped_key, key_id FROM consultation_recordings \
             WHERE {UNDER_ANOTHER_KEY} ORDER BY id LIMIT $2"
        )))
        .bind(current_key_id.to_owned())
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get::<String, _>("id")?,
                    row.try_get::<String, _>("wrapped_key")?,
                    row.try_get::<String, _>("key_id")?,
                ))
            })
            .collect()
    }

    async fn keys_to_rewrap_count(&self, current_key_id: &str) -> Result<u64, DbError> {
        let mut conn = self.pool().acquire().await?;
        let n: i64 = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) AS n FROM consultation_recordings WHERE {UNDER_ANOTHER_KEY}"
        )))
        .bind(current_key_id.to_owned())
        .fetch_one(&mut *conn)
        .await?
        .try_get("n")?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn rewrap_key(
        &self,
        id: &str,
        old_wrapped_key: &str,
        wrapped_key: &str,
        key_id: &str,
    ) -> Result<bool, DbError> {
        let mut conn = self.write().await?;
        let changed = sqlx::query(
            "UPDATE consultation_recordings SET wrapped_key = $3, key_id = $4 \
             WHERE id = $1 AND wrapped_key = $2 RETURNING id",
        )
        .bind(id.to_owned())
        .bind(old_wrapped_key.to_owned())
        .bind(wrapped_key.to_owned())
        .bind(key_id.to_owned())
        .fetch_optional(&mut *conn)
        .await?;
        Ok(changed.is_some())
    }

    async fn set_legal_hold(
        &self,
        id: &str,
        hold: bool,
        reason: Option<String>,
        audit: NewAuditEvent,
        now: DateTime<Utc>,
    ) -> Result<Option<Recording>, DbError> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE consultation_recordings SET legal_hold = $2, legal_hold_reason = $3 \
             WHERE id = $1 AND status <> 'deleted' RETURNING {RECORDING_COLUMNS}"
        )))
        .bind(id.to_owned())
        .bind(hold)
        .bind(reason)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        insert_audit(&mut *tx, self, audit, now).await?;
        tx.commit().await?;
        Ok(Some(recording_of(&row)?))
    }

    async fn storage_usage(&self) -> Result<Vec<ProviderUsage>, DbError> {
        let mut conn = self.pool().acquire().await?;
        Ok(sqlx::query_as(
            "SELECT p.provider, COUNT(DISTINCT p.recording_id) AS recordings, \
             COUNT(*) AS objects, CAST(COALESCE(SUM(c.object_size), 0) AS BIGINT) AS bytes \
             FROM recording_chunk_copies p JOIN recording_chunks c \
             ON c.recording_id = p.recording_id AND c.seq = p.seq \
             GROUP BY p.provider ORDER BY p.provider",
        )
        .fetch_all(&mut *conn)
        .await?)
    }
});

/// A recording row with its `track_meta` JSON decoded.
fn recording_of<R>(row: &R) -> Result<Recording, DbError>
where
    R: Row,
    for<'r> Recording: FromRow<'r, R>,
    for<'q> String: Decode<'q, R::Database> + Type<R::Database>,
    for<'a> &'a str: ColumnIndex<R>,
{
    let mut recording = Recording::from_row(row)?;
    let meta: Option<String> = row.try_get("track_meta")?;
    recording.track = meta
        .map(|text| {
            serde_json::from_str(&text).map_err(|e| {
                DbError::Corrupt(format!("track_meta of recording {}: {e}", recording.id))
            })
        })
        .transpose()?;
    Ok(recording)
}

async fn insert_copy<'c, DB, E>(
    executor: E,
    recording_id: &str,
    seq: u32,
    provider: &str,
    now: DateTime<Utc>,
) -> Result<(), DbError>
where
    DB: Database,
    E: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> DbTime: Encode<'q, DB> + Type<DB>,
{
    sqlx::query(
        "INSERT INTO recording_chunk_copies (recording_id, seq, provider, stored_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (recording_id, seq, provider) DO NOTHING",
    )
    .bind(recording_id.to_owned())
    .bind(i64::from(seq))
    .bind(provider.to_owned())
    .bind(DbTime(now))
    .execute(executor)
    .await?;
    Ok(())
}

/// `(seq, provider)` copies of one chunk (`Some(seq)`) or of every chunk of a recording.
async fn copies_of<'c, DB, E>(
    executor: E,
    recording_id: &str,
    seq: Option<u32>,
) -> Result<Vec<(u32, String)>, DbError>
where
    DB: Database,
    E: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
{
    let rows = match seq {
        Some(seq) => {
            sqlx::query(
                "SELECT seq, provider FROM recording_chunk_copies \
                 WHERE recording_id = $1 AND seq = $2 ORDER BY stored_at, provider",
            )
            .bind(recording_id.to_owned())
            .bind(i64::from(seq))
            .fetch_all(executor)
            .await?
        }
        None => {
            sqlx::query(
                "SELECT seq, provider FROM recording_chunk_copies WHERE recording_id = $1 \
                 ORDER BY seq, stored_at, provider",
            )
            .bind(recording_id.to_owned())
            .fetch_all(executor)
            .await?
        }
    };
    rows.iter()
        .map(|row| {
            let seq: i64 = row.try_get("seq")?;
            Ok((
                u32::try_from(seq).map_err(|_| DbError::Corrupt(format!("seq {seq}")))?,
                row.try_get("provider")?,
            ))
        })
        .collect()
}
