//! The audit log in SQL: chained appends inside a caller's transaction (the head read once per
//! consultation and transaction, webhook deliveries queued beside each entry), the group commit
//! that writes a join storm's entries in one transaction, and reading the chain back.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};
use wakili_core::{audit_chain, new_id};

use crate::{
    Backend, DbError,
    models::{AuditEvent, NewAuditEvent, VideoConsultation},
    sql::{
        SqlStore, chunk_len, impl_for_sql, lookup_chunk, padded, placeholders, update_consultation,
        update_consultations,
    },
    time::DbTime,
};

fn audit_from_row<R>(row: &R) -> Result<AuditEvent, DbError>
where
    R: Row,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> DateTime<Utc>: Decode<'r, R::Database> + Type<R::Database>,
    for<'a> &'a str: ColumnIndex<R>,
{
    let detail: String = row.try_get("detail")?;
    Ok(AuditEvent {
        id: row.try_get("id")?,
        consultation_id: row.try_get("consultation_id")?,
        actor_id: row.try_get("actor_id")?,
        action: row.try_get("action")?,
        detail: serde_json::from_str(&detail)
            .map_err(|e| DbError::Corrupt(format!("audit detail: {e}")))?,
        created_at: row.try_get("created_at")?,
        chain_seq: row
            .try_get::<Option<i64>, _>("chain_seq")?
            .map(|seq| u64::try_from(seq).map_err(|_| DbError::Corrupt(format!("chain_seq {seq}"))))
            .transpose()?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

impl_for_sql!(crate::AuditStore {
    async fn append_audit(
        &self,
        event: NewAuditEvent,
        now: DateTime<Utc>,
    ) -> Result<AuditEvent, DbError> {
        let mut tx = self.begin().await?;
        let stored = insert_audit(&mut *tx, self, event, now).await?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn audit_log(&self, consultation_id: &str) -> Result<Vec<AuditEvent>, DbError> {
        let mut conn = self.pool().acquire().await?;
        let rows = sqlx::query(
            "SELECT id, consultation_id, actor_id, action, detail, created_at, chain_seq, \
             prev_hash, hash FROM audit_events WHERE consultation_id = $1 \
             ORDER BY chain_seq IS NOT NULL, chain_seq, id",
        )
        .bind(consultation_id.to_owned())
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(audit_from_row).collect()
    }

    async fn audit_head(&self, consultation_id: &str) -> Result<Option<audit_chain::Head>, DbError> {
        let mut conn = self.pool().acquire().await?;
        let mut heads = chain_heads(&mut *conn, self.backend, &[consultation_id.to_owned()]).await?;
        Ok(heads.remove(consultation_id))
    }

    async fn append_audits(
        &self,
        events: Vec<NewAuditEvent>,
        now: DateTime<Utc>,
    ) -> Result<(), DbError> {
        if events.is_empty() {
            return Ok(());
        }
        let entry = crate::group_commit::Entry { change: None, events, now };
        self.group_commit(entry).await.map(|_| ())
    }

    async fn append_audits_after(
        &self,
        change: (VideoConsultation, NewAuditEvent),
        events: Vec<NewAuditEvent>,
        now: DateTime<Utc>,
    ) -> Result<bool, DbError> {
        let entry = crate::group_commit::Entry { change: Some(change), events, now };
        self.group_commit(entry).await
    }
});

impl<DB> SqlStore<DB>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> bool: Encode<'q, DB> + Type<DB>,
    for<'q> DbTime: Encode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB>,
    for<'q> Option<i64>: Encode<'q, DB>,
    for<'q> Option<DbTime>: Encode<'q, DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
    for<'r> VideoConsultation: sqlx::FromRow<'r, DB::Row>,
{
    /// Writes `entry` with those of concurrent callers (a join storm) in one transaction and
    /// its disk sync; see `group_commit.rs`.
    async fn group_commit(&self, entry: crate::group_commit::Entry) -> Result<bool, DbError> {
        let store = self.clone();
        let audits = std::sync::Arc::clone(&self.audits);
        audits
            .run(entry, move |batch| {
                let store = store.clone();
                async move {
                    let mut tx = store.begin().await?;
                    // The status changes in a few statements: each consultation's first in the
                    // batch together; a later one of the same consultation alone, in order
                    // (it finds the version moved on when the first was saved).
                    let mut ids = HashSet::new();
                    let first: Vec<bool> = batch
                        .iter()
                        .map(|e| e.change.as_ref().is_some_and(|(c, _)| ids.insert(&c.id)))
                        .collect();
                    let changes: Vec<&VideoConsultation> = batch
                        .iter()
                        .zip(&first)
                        .filter_map(|(e, &first)| e.change.as_ref().filter(|_| first))
                        .map(|(c, _)| c)
                        .collect();
                    let updated = update_consultations(&mut *tx, store.backend, &changes).await?;
                    let mut saved = Vec::with_capacity(batch.len());
                    let mut audits = Vec::new();
                    for (entry, first) in batch.into_iter().zip(first) {
                        if let Some((consultation, audit)) = entry.change {
                            let done = if first {
                                updated.contains(&consultation.id)
                            } else {
                                update_consultation(&mut *tx, &consultation)
                                    .await?
                                    .is_some()
                            };
                            if !done {
                                saved.push(false);
                                continue;
                            }
                            audits.push((audit, consultation.updated_at));
                        }
                        audits.extend(entry.events.into_iter().map(|e| (e, entry.now)));
                        saved.push(true);
                    }
                    let mut memo = AuditTx::default();
                    insert_audits(&mut *tx, store.backend, audits, &mut memo).await?;
                    tx.commit().await?;
                    if memo.queued {
                        store.deliveries.notify_one();
                    }
                    Ok(saved)
                }
            })
            .await
    }
}

/// The last entry of each of `consultations`' audit chains (those with none are absent), in one
/// statement per 64 of them (see [`lookup_chunk`]).
async fn chain_heads<DB>(
    conn: &mut DB::Connection,
    backend: Backend,
    consultations: &[String],
) -> Result<HashMap<String, audit_chain::Head>, DbError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> i64: Decode<'q, DB> + Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
{
    let mut heads = HashMap::with_capacity(consultations.len());
    let mut rest = consultations;
    while !rest.is_empty() {
        let (take, width) = lookup_chunk(rest.len());
        let (chunk, tail) = rest.split_at(take);
        rest = tail;
        let sql = format!(
            "SELECT consultation_id, chain_seq, hash FROM audit_events a \
             WHERE consultation_id IN ({}) AND chain_seq = (SELECT MAX(chain_seq) \
             FROM audit_events b WHERE b.consultation_id = a.consultation_id)",
            placeholders(backend, width, 1)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in padded(chunk, width) {
            query = query.bind(id.to_owned());
        }
        for row in query.fetch_all(&mut *conn).await? {
            let seq: i64 = row.try_get("chain_seq")?;
            let head = audit_chain::Head {
                seq: u64::try_from(seq)
                    .map_err(|_| DbError::Corrupt(format!("chain_seq {seq}")))?,
                hash: row.try_get("hash")?,
            };
            heads.insert(row.try_get("consultation_id")?, head);
        }
    }
    Ok(heads)
}

/// Appends `event` to the audit log inside the caller's transaction, alone in it; see
/// [`insert_audits`].
pub(crate) async fn insert_audit<DB>(
    conn: &mut DB::Connection,
    store: &SqlStore<DB>,
    event: NewAuditEvent,
    now: DateTime<Utc>,
) -> Result<AuditEvent, DbError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> bool: Encode<'q, DB> + Type<DB>,
    for<'q> DbTime: Encode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB>,
    for<'q> Option<i64>: Encode<'q, DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
{
    // Alone in its transaction: queueing deliveries straight away costs one statement, the
    // same as asking whether there are endpoints to queue them for.
    let mut memo = AuditTx {
        webhooks: Some(true),
        ..AuditTx::default()
    };
    let mut stored = insert_audits(conn, store.backend, vec![(event, now)], &mut memo).await?;
    if memo.queued {
        // Before the commit, which the caller does: the webhook worker looks again shortly
        // after, should this wake-up find nothing committed yet.
        store.deliveries.notify_one();
    }
    stored
        .pop()
        .ok_or_else(|| DbError::Corrupt("an audit entry was not written".into()))
}

/// What the audit writes of one transaction learned, so that later writes in it skip the reads:
/// each consultation's chain head as written, and whether any webhook endpoint exists; and
/// whether they queued webhook deliveries.
#[derive(Default)]
pub(crate) struct AuditTx {
    heads: HashMap<String, audit_chain::Head>,
    webhooks: Option<bool>,
    queued: bool,
}

/// Appends `events` (each with its time) to the audit log inside the caller's transaction, in
/// order, each chained to its consultation's previous entry, and queues the webhook deliveries
/// they report. Writers of one consultation's chain take turns: on PostgreSQL through
/// transaction-scoped advisory locks, taken in one order by every writer; on SQLite because
/// every transaction that writes begins `IMMEDIATE` ([`SqlStore::begin`]); the unique
/// `(consultation_id, chain_seq)` index refuses a fork should either ever fail.
///
/// A batch costs a few statements whatever its size: the locks and the chain heads of the
/// consultations `memo` does not know yet, then the rows in statements of a few sizes ([`chunk_len`]).
pub(crate) async fn insert_audits<DB>(
    conn: &mut DB::Connection,
    backend: Backend,
    events: Vec<(NewAuditEvent, DateTime<Utc>)>,
    memo: &mut AuditTx,
) -> Result<Vec<AuditEvent>, DbError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> bool: Encode<'q, DB> + Type<DB>,
    for<'q> DbTime: Encode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB>,
    for<'q> Option<i64>: Encode<'q, DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
{
    // The consultations whose chains this transaction has not touched yet: locked, then read.
    let mut unknown: Vec<&str> = events
        .iter()
        .filter_map(|(e, _)| e.consultation_id.as_deref())
        .filter(|&c| !memo.heads.contains_key(c))
        .collect();
    unknown.sort_unstable();
    unknown.dedup();
    let unknown: Vec<String> = unknown.into_iter().map(str::to_owned).collect();
    if !unknown.is_empty() {
        if backend == Backend::Postgres {
            // One order for every writer (the keys sorted), so two batches cannot deadlock.
            let ids = serde_json::to_string(&unknown)
                .map_err(|e| DbError::Corrupt(format!("consultation ids: {e}")))?;
            sqlx::query(
                "SELECT pg_advisory_xact_lock(k) FROM (SELECT DISTINCT hashtextextended(c, 0) \
                 AS k FROM json_array_elements_text($1::json) AS c ORDER BY k) AS locks",
            )
            .bind(ids)
            .execute(&mut *conn)
            .await?;
        }
        for (consultation, head) in chain_heads(&mut *conn, backend, &unknown).await? {
            memo.heads.insert(consultation, head);
        }
    }
    let mut stored = Vec::with_capacity(events.len());
    for (event, now) in events {
        let mut entry = AuditEvent {
            id: new_id(),
            consultation_id: event.consultation_id,
            actor_id: event.actor_id,
            action: event.action.to_owned(),
            detail: event.detail,
            created_at: now,
            chain_seq: None,
            prev_hash: None,
            hash: None,
        };
        if let Some(consultation) = entry.consultation_id.clone() {
            let (seq, prev) = match memo.heads.remove(&consultation) {
                Some(head) => (head.seq + 1, head.hash),
                None => (1, audit_chain::GENESIS.to_owned()),
            };
            let link = audit_chain::Link {
                seq,
                id: &entry.id,
                consultation_id: &consultation,
                actor_id: entry.actor_id.as_deref(),
                action: &entry.action,
                detail: &entry.detail,
                created_at: now,
            };
            let hash = link.hash(&prev);
            memo.heads.insert(
                consultation,
                audit_chain::Head {
                    seq,
                    hash: hash.clone(),
                },
            );
            entry.hash = Some(hash);
            entry.chain_seq = Some(seq);
            entry.prev_hash = Some(prev);
        }
        stored.push(entry);
    }
    let mut rest = &stored[..];
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(chunk_len(rest.len()));
        rest = tail;
        let sql = format!(
            "INSERT INTO audit_events (id, consultation_id, actor_id, action, detail, \
             created_at, chain_seq, prev_hash, hash) VALUES {}",
            placeholders(backend, chunk.len(), 9)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for e in chunk {
            query = query
                .bind(e.id.clone())
                .bind(e.consultation_id.clone())
                .bind(e.actor_id.clone())
                .bind(e.action.clone())
                .bind(e.detail.to_string())
                .bind(DbTime(e.created_at))
                .bind(e.chain_seq.map(|seq| seq as i64))
                .bind(e.prev_hash.clone())
                .bind(e.hash.clone());
        }
        query.execute(&mut *conn).await?;
    }
    let webhooks = match memo.webhooks {
        Some(any) => any,
        None => {
            let any = crate::sql_webhooks::any_endpoint(&mut *conn).await?;
            memo.webhooks = Some(any);
            any
        }
    };
    if webhooks {
        for e in &stored {
            crate::sql_webhooks::queue_deliveries(&mut *conn, e, e.created_at).await?;
        }
        memo.queued |= !stored.is_empty();
    }
    Ok(stored)
}
