//! The one SQL implementation of [`Repository`], generic over the sqlx driver.
//!
//! Statements use `$N` placeholders, which PostgreSQL and (through sqlx) SQLite both accept, and
//! only portable SQL (`ON CONFLICT`, `RETURNING`), so each statement exists once.

use chrono::{DateTime, Utc};
use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use sqlx::{
    ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Type,
    pool::PoolConnection,
};
use wakili_core::{ParticipantRole, new_id, page::Cursor};

use crate::{
    Backend, DbError, Repository,
    group_commit::{Entry, GroupCommit, Read},
    models::{
        ConsentRecord, ConsultationFilter, ConsultationInsert, NewAuditEvent, Page, Participant,
        QualitySample, User, UserClaims, VideoConsultation,
    },
    sql_audit::insert_audit,
    time::DbTime,
};

/// `impl $store for SqlStore<DB>` for every driver whose types the statements bind and decode:
/// the bounds are written once here instead of on each store's implementation.
macro_rules! impl_for_sql {
    ($store:path { $($body:tt)* }) => {
        #[async_trait::async_trait]
        impl<DB> $store for $crate::SqlStore<DB>
        where
            DB: sqlx::Database,
            for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
            DB::Arguments: sqlx::IntoArguments<DB>,
            for<'q> String: sqlx::Encode<'q, DB> + sqlx::Decode<'q, DB> + sqlx::Type<DB>,
            for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Decode<'q, DB> + sqlx::Type<DB>,
            for<'q> f64: sqlx::Encode<'q, DB> + sqlx::Decode<'q, DB> + sqlx::Type<DB>,
            for<'q> bool: sqlx::Encode<'q, DB> + sqlx::Decode<'q, DB> + sqlx::Type<DB>,
            for<'q> $crate::time::DbTime:
                sqlx::Encode<'q, DB> + sqlx::Decode<'q, DB> + sqlx::Type<DB>,
            for<'q> chrono::DateTime<chrono::Utc>: sqlx::Decode<'q, DB> + sqlx::Type<DB>,
            for<'q> Option<String>: sqlx::Encode<'q, DB>,
            for<'q> Option<f64>: sqlx::Encode<'q, DB>,
            for<'q> Option<i64>: sqlx::Encode<'q, DB>,
            for<'q> Option<$crate::time::DbTime>: sqlx::Encode<'q, DB>,
            for<'a> &'a str: sqlx::ColumnIndex<DB::Row>,
            for<'r> $crate::models::User: sqlx::FromRow<'r, DB::Row>,
            for<'r> $crate::models::VideoConsultation: sqlx::FromRow<'r, DB::Row>,
            for<'r> $crate::models::Participant: sqlx::FromRow<'r, DB::Row>,
            for<'r> $crate::models::ConsentRecord: sqlx::FromRow<'r, DB::Row>,
            for<'r> $crate::models::QualitySample: sqlx::FromRow<'r, DB::Row>,
            for<'r> $crate::models::Recording: sqlx::FromRow<'r, DB::Row>,
            for<'r> $crate::models::Chunk: sqlx::FromRow<'r, DB::Row>,
            for<'r> $crate::models::push::DeviceRegistration: sqlx::FromRow<'r, DB::Row>,
            for<'r> $crate::models::push::OutboxNotification: sqlx::FromRow<'r, DB::Row>,
            for<'r> $crate::models::push::DueReminder: sqlx::FromRow<'r, DB::Row>,
            for<'r> $crate::models::push::CallState: sqlx::FromRow<'r, DB::Row>,
            for<'r> $crate::models::ProviderUsage: sqlx::FromRow<'r, DB::Row>,
            for<'r> $crate::models::webhook::WebhookEndpoint: sqlx::FromRow<'r, DB::Row>,
            for<'r> $crate::models::webhook::WebhookDelivery: sqlx::FromRow<'r, DB::Row>,
            for<'r> $crate::models::webhook::EndpointTarget: sqlx::FromRow<'r, DB::Row>,
        {
            $($body)*
        }
    };
}
pub(crate) use impl_for_sql;

/// A [`Repository`] over an sqlx connection pool of any supported driver.
pub struct SqlStore<DB: Database> {
    /// Reads, and writes too when there is no [`Writer`] (PostgreSQL).
    pool: Pool<DB>,
    /// On SQLite, where writes go, one at a time (see [`SqlStore::write`]).
    writer: Option<Writer<DB>>,
    pub(crate) backend: Backend,
    /// Audit appends of concurrent callers, committed together.
    pub(crate) audits: Arc<GroupCommit<Entry>>,
    /// Consultation reads of concurrent callers, in one statement.
    reads: Arc<GroupCommit<Read>>,
    /// Told when a transaction queued webhook deliveries (see
    /// [`WebhookStore::deliveries_queued`](crate::webhooks::WebhookStore::deliveries_queued)).
    pub(crate) deliveries: Arc<tokio::sync::Notify>,
}

impl<DB: Database> Clone for SqlStore<DB> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            writer: self.writer.clone(),
            backend: self.backend,
            audits: Arc::clone(&self.audits),
            reads: Arc::clone(&self.reads),
            deliveries: Arc::clone(&self.deliveries),
        }
    }
}

/// A pool for writes only, whose writers take turns.
struct Writer<DB: Database> {
    pool: Pool<DB>,
    turn: Arc<tokio::sync::Mutex<()>>,
}

impl<DB: Database> Clone for Writer<DB> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            turn: Arc::clone(&self.turn),
        }
    }
}

impl<DB: Database> SqlStore<DB> {
    /// Wraps a pool whose schema is migrated, for reads and writes alike.
    pub fn new(pool: Pool<DB>, backend: Backend) -> Self {
        Self::build(pool, None, backend)
    }

    /// Wraps a pool for reads and another for writes, whose writers take turns (SQLite).
    pub fn with_writer(pool: Pool<DB>, writer: Pool<DB>, backend: Backend) -> Self {
        let writer = Writer {
            pool: writer,
            turn: Arc::default(),
        };
        Self::build(pool, Some(writer), backend)
    }

    fn build(pool: Pool<DB>, writer: Option<Writer<DB>>, backend: Backend) -> Self {
        Self {
            pool,
            writer,
            backend,
            audits: Default::default(),
            reads: Default::default(),
            deliveries: Default::default(),
        }
    }

    /// Where reads go.
    pub(crate) fn pool(&self) -> &Pool<DB> {
        &self.pool
    }

    /// Where to write, and on SQLite this store's turn to, in the order asked. SQLite lets one
    /// connection write at a time, and writers on several connections wait for each other in its busy
    /// handler, which sleeps 1, 2, 5, 10 … up to 100 ms between tries whatever the lock's holder
    /// does; taking turns here, a writer starts as soon as the one before is done. A writer
    /// waits for its turn no longer than for a pooled connection (`database.acquire_timeout`).
    async fn turn(&self) -> Result<(&Pool<DB>, Option<tokio::sync::OwnedMutexGuard<()>>), DbError> {
        let Some(writer) = &self.writer else {
            return Ok((&self.pool, None));
        };
        let limit = writer.pool.options().get_acquire_timeout();
        match tokio::time::timeout(limit, Arc::clone(&writer.turn).lock_owned()).await {
            Ok(turn) => Ok((&writer.pool, Some(turn))),
            Err(_) => Err(sqlx::Error::PoolTimedOut.into()),
        }
    }

    /// A connection for statements that change something, outside a transaction; on SQLite it
    /// holds the write turn until dropped.
    pub(crate) async fn write(&self) -> Result<Writing<PoolConnection<DB>>, DbError> {
        let (pool, turn) = self.turn().await?;
        Ok(Writing {
            inner: pool.acquire().await?,
            _turn: turn,
        })
    }

    /// A transaction for a change. On SQLite it holds the write turn until committed or
    /// dropped, and begins `IMMEDIATE`, taking the write lock first, so what it reads stays
    /// current until it commits (a deferred one that read before another writer committed
    /// would fail with `SQLITE_BUSY_SNAPSHOT` on its first write).
    pub(crate) async fn begin(&self) -> Result<Writing<sqlx::Transaction<'static, DB>>, DbError> {
        let (pool, turn) = self.turn().await?;
        let inner = match self.backend {
            Backend::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => pool.begin().await?,
        };
        Ok(Writing { inner, _turn: turn })
    }
}

/// A connection or transaction that writes, holding the write turn (SQLite) while it lives.
pub(crate) struct Writing<C> {
    inner: C,
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl<C: std::ops::Deref> std::ops::Deref for Writing<C> {
    type Target = C::Target;

    fn deref(&self) -> &C::Target {
        &self.inner
    }
}

impl<C: std::ops::DerefMut> std::ops::DerefMut for Writing<C> {
    fn deref_mut(&mut self) -> &mut C::Target {
        &mut self.inner
    }
}

impl<DB: Database> Writing<sqlx::Transaction<'static, DB>> {
    /// Commits, then gives the turn to the next writer.
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        self.inner.commit().await
    }
}

/// The consultation columns, in one place, for `concat!`.
macro_rules! consultation_columns {
    () => {
        "id, lawyer_id, client_id, title, notes, scheduled_at, duration_minutes, status, \
         created_by, created_at, updated_at, started_at, ended_at, cancelled_at, cancelled_by, \
         cancellation_reason, quality_profile, media_mode, version"
    };
}

/// `SELECT <consultation columns> FROM video_consultations <rest…>`.
macro_rules! consultation_sql {
    ($($part:literal),+ $(,)?) => {
        concat!("SELECT ", consultation_columns!(), " FROM video_consultations ", $($part),+)
    };
}

/// Rows written by one statement: a batch goes in statements of these sizes, largest first, so
/// that a few statement texts (each prepared once per connection) serve every batch size.
const CHUNKS: [usize; 4] = [64, 16, 4, 1];

/// How many of `n` remaining rows the next statement takes.
pub(crate) fn chunk_len(n: usize) -> usize {
    CHUNKS.into_iter().find(|&c| c <= n).unwrap_or(1)
}

/// For lookups by key (`IN (…)`): how many of `n` remaining keys the next statement takes, and
/// how many placeholders it has, the smallest of the same few sizes that holds them; the last
/// key is repeated to fill it (a repeated key matches no more rows). Up to 64 keys are one
/// statement, where [`chunk_len`] would split 7 into four (a join storm's reads of a few
/// consultations at a time were most of PostgreSQL's statements).
pub(crate) fn lookup_chunk(n: usize) -> (usize, usize) {
    let take = n.min(CHUNKS[0]);
    let width = CHUNKS
        .into_iter()
        .rev()
        .find(|&c| c >= take)
        .unwrap_or(CHUNKS[0]);
    (take, width)
}

/// `keys` then its last one again until there are `width` (see [`lookup_chunk`]).
pub(crate) fn padded<K: AsRef<str>>(keys: &[K], width: usize) -> impl Iterator<Item = &str> {
    let last = keys.last().map_or("", AsRef::as_ref);
    keys.iter()
        .map(AsRef::as_ref)
        .chain(std::iter::repeat(last))
        .take(width.max(keys.len()))
}

/// Bind parameters for `n` rows of `width` values each, as `(…), (…)` when `width > 1`:
/// `$1, $2, …` on PostgreSQL, plain `?` on SQLite. SQLite keeps numbered parameters' names in a
/// list that sqlx searches once per bind, so a 64-row insert of 9 columns numbered `$1…$576`
/// cost 166,000 steps of that search (`sqlite3_bind_parameter_name` was the busiest function of
/// a join storm); plain `?`s bind in order, without names.
pub(crate) fn placeholders(backend: Backend, n: usize, width: usize) -> String {
    placeholders_from(backend, 1, n, width)
}

/// [`placeholders`] numbered from `first` on PostgreSQL (for values bound after others).
pub(crate) fn placeholders_from(backend: Backend, first: usize, n: usize, width: usize) -> String {
    let value = |i: usize| match backend {
        Backend::Postgres => format!("${i}"),
        Backend::Sqlite => "?".to_owned(),
    };
    let row = |r: usize| {
        let values: Vec<String> = (0..width).map(|i| value(first + r * width + i)).collect();
        if width == 1 {
            values.concat()
        } else {
            format!("({})", values.join(", "))
        }
    };
    (0..n).map(row).collect::<Vec<_>>().join(", ")
}

impl<DB> SqlStore<DB>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'r> VideoConsultation: sqlx::FromRow<'r, DB::Row>,
{
    /// The consultations `batch` names, in its order (`None` for an unknown id), in one
    /// statement per 64 ids (see [`lookup_chunk`]).
    async fn consultations_by_id(
        &self,
        batch: Vec<Read>,
    ) -> Result<Vec<Option<VideoConsultation>>, DbError> {
        let mut ids: Vec<&str> = batch.iter().map(|r| r.0.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut found = HashMap::with_capacity(ids.len());
        let mut conn = self.pool.acquire().await?;
        let mut rest = &ids[..];
        while !rest.is_empty() {
            let (take, width) = lookup_chunk(rest.len());
            let (chunk, tail) = rest.split_at(take);
            rest = tail;
            let sql = format!(
                "{} WHERE id IN ({})",
                consultation_sql!(""),
                placeholders(self.backend, width, 1)
            );
            let mut query = sqlx::query_as::<_, VideoConsultation>(sqlx::AssertSqlSafe(sql));
            for id in padded(chunk, width) {
                query = query.bind(id.to_owned());
            }
            for c in query.fetch_all(&mut *conn).await? {
                found.insert(c.id.clone(), c);
            }
        }
        Ok(batch.iter().map(|r| found.get(&r.0).cloned()).collect())
    }
}

impl_for_sql!(Repository {
    fn pool_connections(&self) -> (u32, usize) {
        let pools = std::iter::once(&self.pool).chain(self.writer.as_ref().map(|w| &w.pool));
        pools.fold((0, 0), |(open, idle), p| (open + p.size(), idle + p.num_idle()))
    }

    async fn ping(&self) -> Result<(), DbError> {
        let mut conn = self.pool.acquire().await?;
        sqlx::query("SELECT 1").execute(&mut *conn).await?;
        Ok(())
    }

    fn backend(&self) -> Backend {
        self.backend
    }
});

impl_for_sql!(crate::UserStore {
    async fn upsert_user(&self, claims: &UserClaims, now: DateTime<Utc>) -> Result<User, DbError> {
        let mut conn = self.write().await?;
        Ok(sqlx::query_as(
            "INSERT INTO users (id, role, name, created_at, updated_at) VALUES ($1, $2, $3, $4, $4) \
             ON CONFLICT (id) DO UPDATE SET role = excluded.role, name = excluded.name, \
             updated_at = excluded.updated_at \
             RETURNING id, role, name, created_at, updated_at",
        )
        .bind(claims.id.clone())
        .bind(claims.role.as_str().to_owned())
        .bind(claims.name.clone())
        .bind(DbTime(now))
        .fetch_one(&mut *conn)
        .await?)
    }

    async fn user(&self, id: &str) -> Result<Option<User>, DbError> {
        let mut conn = self.pool.acquire().await?;
        Ok(
            sqlx::query_as("SELECT id, role, name, created_at, updated_at FROM users WHERE id = $1")
                .bind(id.to_owned())
                .fetch_optional(&mut *conn)
                .await?,
        )
    }
});

impl_for_sql!(crate::ConsultationStore {
    async fn create_consultation(
        &self,
        insert: ConsultationInsert,
    ) -> Result<VideoConsultation, DbError> {
        let ConsultationInsert {
            booking,
            created_by,
            now,
        } = insert;
        let id = new_id();
        let mut tx = self.begin().await?;
        let consultation: VideoConsultation = sqlx::query_as(concat!(
            "INSERT INTO video_consultations (id, lawyer_id, client_id, title, notes, scheduled_at, \
             duration_minutes, status, created_by, created_at, updated_at, version, media_mode) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'scheduled', $8, $9, $9, 0, $10) RETURNING ",
            consultation_columns!()
        ))
        .bind(id.clone())
        .bind(booking.lawyer_id.as_str().to_owned())
        .bind(booking.client_id.as_str().to_owned())
        .bind(booking.title.clone())
        .bind(booking.notes.clone())
        .bind(DbTime(booking.scheduled_at))
        .bind(i64::from(booking.duration_minutes))
        .bind(created_by.clone())
        .bind(DbTime(now))
        .bind(booking.media_mode.unwrap_or_default().as_str().to_owned())
        .fetch_one(&mut *tx)
        .await?;
        for (user, role) in [
            (&booking.lawyer_id, ParticipantRole::Lawyer),
            (&booking.client_id, ParticipantRole::Client),
        ] {
            sqlx::query(
                "INSERT INTO consultation_participants (consultation_id, user_id, role, added_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(id.clone())
            .bind(user.as_str().to_owned())
            .bind(role.as_str().to_owned())
            .bind(DbTime(now))
            .execute(&mut *tx)
            .await?;
        }
        let audit = NewAuditEvent {
            consultation_id: Some(id),
            actor_id: Some(created_by),
            action: "consultation.created",
            detail: serde_json::json!({
                "lawyerId": booking.lawyer_id,
                "clientId": booking.client_id,
                "scheduledAt": booking.scheduled_at,
                "durationMinutes": booking.duration_minutes,
                "mediaMode": booking.media_mode.unwrap_or_default(),
            }),
        };
        insert_audit(&mut *tx, self, audit, now).await?;
        tx.commit().await?;
        Ok(consultation)
    }

    async fn consultation(&self, id: &str) -> Result<Option<VideoConsultation>, DbError> {
        // Every join reads its consultation: concurrent reads (a join storm) share a statement.
        let store = self.clone();
        self.reads
            .run(Read(id.to_owned()), move |batch| {
                let store = store.clone();
                async move { store.consultations_by_id(batch).await }
            })
            .await
    }

    async fn list_consultations(
        &self,
        filter: &ConsultationFilter,
    ) -> Result<Page<VideoConsultation>, DbError> {
        let mut conn = self.pool.acquire().await?;
        let mut items: Vec<VideoConsultation> = sqlx::query_as(consultation_sql!(
            "WHERE ($1 IS NULL OR id IN (SELECT consultation_id FROM consultation_participants WHERE user_id = $1)) ",
            "AND ($2 IS NULL OR status = $2) ",
            "AND ($3 IS NULL OR scheduled_at >= $3) ",
            "AND ($4 IS NULL OR scheduled_at < $4) ",
            "AND ($5 IS NULL OR scheduled_at > $5 OR (scheduled_at = $5 AND id > $6)) ",
            "ORDER BY scheduled_at, id LIMIT $7"
        ))
        .bind(filter.participant.clone())
        .bind(filter.status.map(|s| s.as_str().to_owned()))
        .bind(filter.from.map(DbTime))
        .bind(filter.to.map(DbTime))
        .bind(filter.after.as_ref().map(|c| DbTime(c.scheduled_at)))
        .bind(filter.after.as_ref().map(|c| c.id.clone()))
        .bind(i64::from(filter.limit) + 1)
        .fetch_all(&mut *conn)
        .await?;
        let next = if items.len() > filter.limit as usize {
            items.truncate(filter.limit as usize);
            items.last().map(|c| Cursor {
                scheduled_at: c.scheduled_at,
                id: c.id.clone(),
            })
        } else {
            None
        };
        Ok(Page { items, next })
    }

    async fn save_consultation(
        &self,
        c: &VideoConsultation,
        audit: NewAuditEvent,
    ) -> Result<Option<VideoConsultation>, DbError> {
        let mut tx = self.begin().await?;
        let Some(saved) = update_consultation(&mut *tx, c).await? else {
            return Ok(None);
        };
        insert_audit(&mut *tx, self, audit, c.updated_at).await?;
        tx.commit().await?;
        Ok(Some(saved))
    }

    async fn participants(&self, consultation_id: &str) -> Result<Vec<Participant>, DbError> {
        let mut conn = self.pool.acquire().await?;
        Ok(sqlx::query_as(
            "SELECT consultation_id, user_id, role, added_at, invited_by \
             FROM consultation_participants WHERE consultation_id = $1 \
             ORDER BY invited_by IS NOT NULL, added_at, user_id",
        )
        .bind(consultation_id.to_owned())
        .fetch_all(&mut *conn)
        .await?)
    }
});

impl_for_sql!(crate::ConsentStore {
    async fn record_consent(&self, c: &ConsentRecord) -> Result<(), DbError> {
        let mut conn = self.write().await?;
        sqlx::query(
            "INSERT INTO recording_consents (id, consultation_id, recording_id, user_id, \
             participant_id, notice_version, decision, decided_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(c.id.clone())
        .bind(c.consultation_id.clone())
        .bind(c.recording_id.clone())
        .bind(c.user_id.clone())
        .bind(c.participant_id.clone())
        .bind(c.notice_version.clone())
        .bind(if c.granted { "granted" } else { "refused" }.to_owned())
        .bind(DbTime(c.decided_at))
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    async fn consents(&self, consultation_id: &str) -> Result<Vec<ConsentRecord>, DbError> {
        let mut conn = self.pool.acquire().await?;
        Ok(sqlx::query_as(
            "SELECT id, consultation_id, recording_id, user_id, participant_id, notice_version, \
             decision = 'granted' AS granted, decided_at FROM recording_consents \
             WHERE consultation_id = $1 ORDER BY id",
        )
        .bind(consultation_id.to_owned())
        .fetch_all(&mut *conn)
        .await?)
    }
});

impl_for_sql!(crate::QualityStore {
    async fn add_quality_sample(&self, q: &QualitySample) -> Result<(), DbError> {
        let mut conn = self.write().await?;
        sqlx::query(
            "INSERT INTO quality_samples (id, consultation_id, participant_id, user_id, taken_at, \
             rtt_ms, jitter_ms, packet_loss_pct, outbound_kbps, inbound_kbps, frame_rate, width, \
             height, candidate_type, mos, level) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        )
        .bind(new_id())
        .bind(q.consultation_id.clone())
        .bind(q.participant_id.clone())
        .bind(q.user_id.clone())
        .bind(DbTime(q.taken_at))
        .bind(q.report.rtt_ms)
        .bind(q.report.jitter_ms)
        .bind(q.report.packet_loss_pct)
        .bind(q.report.outbound_kbps)
        .bind(q.report.inbound_kbps)
        .bind(q.report.frame_rate)
        .bind(i64::from(q.report.width))
        .bind(i64::from(q.report.height))
        .bind(q.report.candidate_type.clone())
        .bind(q.mos)
        .bind(q.level.as_str().to_owned())
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    async fn quality_samples(&self, consultation_id: &str) -> Result<Vec<QualitySample>, DbError> {
        let mut conn = self.pool.acquire().await?;
        Ok(sqlx::query_as(
            "SELECT consultation_id, participant_id, user_id, taken_at, rtt_ms, jitter_ms, \
             packet_loss_pct, outbound_kbps, inbound_kbps, frame_rate, width, height, \
             candidate_type, mos, level FROM quality_samples WHERE consultation_id = $1 ORDER BY id",
        )
        .bind(consultation_id.to_owned())
        .fetch_all(&mut *conn)
        .await?)
    }
});

/// Saves `c` inside the caller's transaction if its row is still at `c.version`; the saved row
/// (its version moved on by one), or `None` when another writer saved it first.
pub(crate) async fn update_consultation<DB>(
    conn: &mut DB::Connection,
    c: &VideoConsultation,
) -> Result<Option<VideoConsultation>, DbError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> DbTime: Encode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB>,
    for<'q> Option<DbTime>: Encode<'q, DB>,
    for<'r> VideoConsultation: sqlx::FromRow<'r, DB::Row>,
{
    let query = sqlx::query(concat!(
        "UPDATE video_consultations SET title = $2, notes = $3, scheduled_at = $4, \
         duration_minutes = $5, status = $6, updated_at = $7, started_at = $8, ended_at = $9, \
         cancelled_at = $10, cancelled_by = $11, cancellation_reason = $12, \
         quality_profile = $14, version = version + 1 \
         WHERE id = $1 AND version = $13 RETURNING ",
        consultation_columns!()
    ));
    let row = bind_saved_columns(query, c)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row
        .map(|row| <VideoConsultation as sqlx::FromRow<_>>::from_row(&row))
        .transpose()?)
}

/// Binds what saving `c` writes, in the order both updates number it: id, title, notes,
/// scheduled_at, duration_minutes, status, updated_at, started_at, ended_at, cancelled_at,
/// cancelled_by, cancellation_reason, version (the one read), quality_profile.
fn bind_saved_columns<'q, DB>(
    query: sqlx::query::Query<'q, DB, DB::Arguments>,
    c: &VideoConsultation,
) -> sqlx::query::Query<'q, DB, DB::Arguments>
where
    DB: Database,
    for<'e> String: Encode<'e, DB> + Type<DB>,
    for<'e> i64: Encode<'e, DB> + Type<DB>,
    for<'e> DbTime: Encode<'e, DB> + Type<DB>,
    for<'e> Option<String>: Encode<'e, DB>,
    for<'e> Option<DbTime>: Encode<'e, DB>,
{
    query
        .bind(c.id.clone())
        .bind(c.title.clone())
        .bind(c.notes.clone())
        .bind(DbTime(c.scheduled_at))
        .bind(i64::from(c.duration_minutes))
        .bind(c.status.as_str().to_owned())
        .bind(DbTime(c.updated_at))
        .bind(c.started_at.map(DbTime))
        .bind(c.ended_at.map(DbTime))
        .bind(c.cancelled_at.map(DbTime))
        .bind(c.cancelled_by.clone())
        .bind(c.cancellation_reason.clone())
        .bind(c.version)
        .bind(c.quality_profile.clone())
}

/// Saves each of `changes` inside the caller's transaction if its row is still at its
/// `version`, as [`update_consultation`] does one, in one statement per chunk of them (see
/// [`chunk_len`]): a join storm's lawyer arrivals, each starting its consultation, cost a few
/// statements per group commit instead of a round trip each (3,000 in a storm of 6,000 joins).
/// Returns the ids saved. At most one change per consultation: with two for one row, one
/// statement could not tell which won.
pub(crate) async fn update_consultations<DB>(
    conn: &mut DB::Connection,
    backend: Backend,
    changes: &[&VideoConsultation],
) -> Result<HashSet<String>, DbError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> DbTime: Encode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB>,
    for<'q> Option<DbTime>: Encode<'q, DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
{
    let mut saved = HashSet::with_capacity(changes.len());
    let mut rest = changes;
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(chunk_len(rest.len()));
        rest = tail;
        // The columns `update_consultation` writes, from a VALUES list (a CTE names its columns
        // on both backends; SQLite has UPDATE … FROM since 3.33). The ids again as an IN list,
        // so that PostgreSQL can read a large table by its key (at a few thousand rows it
        // still plans a scan).
        let ids = placeholders_from(backend, chunk.len() * 14 + 1, chunk.len(), 1);
        let sql = format!(
            "WITH v (id, title, notes, scheduled_at, duration_minutes, status, updated_at, \
             started_at, ended_at, cancelled_at, cancelled_by, cancellation_reason, version, \
             quality_profile) AS (VALUES {}) \
             UPDATE video_consultations SET title = v.title, notes = v.notes, \
             scheduled_at = v.scheduled_at, duration_minutes = v.duration_minutes, \
             status = v.status, updated_at = v.updated_at, started_at = v.started_at, \
             ended_at = v.ended_at, cancelled_at = v.cancelled_at, \
             cancelled_by = v.cancelled_by, cancellation_reason = v.cancellation_reason, \
             quality_profile = v.quality_profile, version = video_consultations.version + 1 \
             FROM v WHERE video_consultations.id IN ({ids}) AND video_consultations.id = v.id \
             AND video_consultations.version = v.version RETURNING video_consultations.id",
            placeholders(backend, chunk.len(), 14)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for c in chunk {
            query = bind_saved_columns(query, c);
        }
        for c in chunk {
            query = query.bind(c.id.clone());
        }
        for row in query.fetch_all(&mut *conn).await? {
            saved.insert(row.try_get("id")?);
        }
    }
    Ok(saved)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A migrated SQLite store in `dir` whose busy timeout is 0 (a writer that met another in
    /// SQLite would fail at once) and whose writers wait at most 200 ms for their turn; and the
    /// store that migrated it, to keep open meanwhile (the last connection to close checkpoints
    /// and removes the WAL, which a connection opening then would find locked).
    async fn sqlite_store(dir: &tempfile::TempDir) -> (SqlStore<sqlx::Sqlite>, crate::Db) {
        use std::{str::FromStr, time::Duration};

        use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

        let url = format!("sqlite://{}", dir.path().join("wakili.db").display());
        let migrated = crate::connect(&url, &crate::PoolOptions::default())
            .await
            .expect("a migrated database");
        let options = SqliteConnectOptions::from_str(&url)
            .expect("the test database's URL")
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::ZERO);
        let pool = |max: u32, read_only: bool| {
            SqlitePoolOptions::new()
                .max_connections(max)
                .acquire_timeout(Duration::from_millis(200))
                .connect_with(options.clone().read_only(read_only))
        };
        let store = SqlStore::with_writer(
            pool(4, true).await.expect("readers"),
            pool(2, false).await.expect("writers"),
            Backend::Sqlite,
        );
        (store, migrated)
    }

    /// On SQLite, writers that arrive together (transactions and single statements) take turns
    /// in the process and never meet in SQLite's busy handler: with its timeout at 0 here, any
    /// two that did would fail with "database is locked".
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_writers_take_turns_and_never_find_the_database_locked() {
        use crate::stores::{AuditStore, UserStore};

        let dir = tempfile::tempdir().expect("a temporary directory");
        let (store, _migrated) = sqlite_store(&dir).await;
        let writers: Vec<_> = (0..32)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    for j in 0..5 {
                        let now = Utc::now();
                        let claims = UserClaims {
                            id: format!("user-{i}"),
                            role: wakili_core::Role::Client,
                            name: format!("User {i}.{j}"),
                        };
                        store.upsert_user(&claims, now).await?;
                        let event = NewAuditEvent {
                            consultation_id: None,
                            actor_id: Some(claims.id),
                            action: "test.written",
                            detail: serde_json::json!({ "j": j }),
                        };
                        store.append_audit(event, now).await?;
                    }
                    Ok::<_, DbError>(())
                })
            })
            .collect();
        for writer in writers {
            let written = writer.await.expect("a writer task");
            assert!(
                written.is_ok(),
                "a writer found the database locked: {written:?}"
            );
        }
        let names = sqlx::query_scalar::<_, String>("SELECT name FROM users WHERE id = 'user-7'")
            .fetch_one(store.pool())
            .await
            .expect("user-7");
        assert_eq!(names, "User 7.4", "each user's last write is the one kept");
        let written = sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM audit_events WHERE action = 'test.written'",
        )
        .fetch_one(store.pool())
        .await
        .expect("the audit count");
        assert_eq!(written, 32 * 5);
        let refused = sqlx::query("DELETE FROM users").execute(store.pool()).await;
        assert!(refused.is_err(), "the read pool must refuse writes");
    }

    /// A writer whose turn does not come within the pool's acquire timeout is refused with the
    /// pool's timeout error instead of waiting forever; the next one after the holder is done
    /// goes through.
    #[tokio::test]
    async fn a_sqlite_writer_that_waits_too_long_for_its_turn_is_refused_not_hung() {
        use crate::stores::UserStore;

        let dir = tempfile::tempdir().expect("a temporary directory");
        let (store, _migrated) = sqlite_store(&dir).await;
        let claims = UserClaims {
            id: "user-1".into(),
            role: wakili_core::Role::Lawyer,
            name: "Lawyer".into(),
        };
        let holder = store.begin().await.expect("the first writer's turn");
        let waited = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            store.upsert_user(&claims, Utc::now()),
        )
        .await
        .expect("refused within the acquire timeout, not hung");
        assert!(
            matches!(waited, Err(DbError::Query(sqlx::Error::PoolTimedOut))),
            "{waited:?}"
        );
        holder.commit().await.expect("the holder commits");
        let user = store.upsert_user(&claims, Utc::now()).await;
        assert_eq!(user.expect("the turn is free again").name, "Lawyer");
    }

    #[test]
    fn batches_go_in_a_few_statement_sizes() {
        let mut sizes = Vec::new();
        let mut n = 150;
        while n > 0 {
            let c = chunk_len(n);
            sizes.push(c);
            n -= c;
        }
        assert_eq!(sizes, [64, 64, 16, 4, 1, 1]);
        // Lookups take up to 64 keys in one statement of the next size up.
        let lookups: Vec<_> = [1, 2, 4, 5, 7, 16, 17, 64, 65, 150]
            .into_iter()
            .map(lookup_chunk)
            .collect();
        assert_eq!(
            lookups,
            [
                (1, 1),
                (2, 4),
                (4, 4),
                (5, 16),
                (7, 16),
                (16, 16),
                (17, 64),
                (64, 64),
                (64, 64),
                (64, 64)
            ]
        );
        let keys = ["a", "b", "c"];
        assert_eq!(padded(&keys, 4).collect::<Vec<_>>(), ["a", "b", "c", "c"]);
        assert_eq!(padded(&keys, 3).collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(placeholders(Backend::Postgres, 3, 1), "$1, $2, $3");
        assert_eq!(placeholders_from(Backend::Postgres, 7, 2, 1), "$7, $8");
        assert_eq!(placeholders_from(Backend::Sqlite, 7, 2, 1), "?, ?");
        assert_eq!(
            placeholders(Backend::Postgres, 2, 3),
            "($1, $2, $3), ($4, $5, $6)"
        );
        assert_eq!(placeholders(Backend::Sqlite, 3, 1), "?, ?, ?");
        assert_eq!(placeholders(Backend::Sqlite, 2, 2), "(?, ?), (?, ?)");
    }
}
