//! The audit log in SQL: chained appends inside a caller's transaction (the head read once per
//! consultation and transaction, webhook deliveries queued beside each entry), the group commit
//! that writes a join storm's entries in one transaction, and reading the chain back.

use chrono::{DateTime, Utc};
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};
use wakili_core::{audit_chain, new_id};

use crate::{
    Backend, DbError,
    models::{AuditEvent, NewAuditEvent, VideoConsultation},
    sql::{SqlStore, impl_for_sql, update_consultation},
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

const INSERT_AUDIT: &str = "INSERT INTO audit_events \
     (id, consultation_id, actor_id, action, detail, created_at, chain_seq, prev_hash, hash) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

impl_for_sql!(crate::AuditStore {
    async fn append_audit(
        &self,
        event: NewAuditEvent,
        now: DateTime<Utc>,
    ) -> Result<AuditEvent, DbError> {
        let mut tx = self.begin().await?;
        let stored = insert_audit(&mut *tx, self.backend, event, now).await?;
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
        chain_head(&mut *conn, consultation_id).await
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
            .append(entry, move |batch| {
                let store = store.clone();
                async move {
                    let mut tx = store.begin().await?;
                    let mut saved = Vec::with_capacity(batch.len());
                    let mut memo = AuditTx::default();
                    for entry in batch {
                        let backend = store.backend;
                        if let Some((consultation, audit)) = entry.change {
                            if update_consultation(&mut *tx, &consultation)
                                .await?
                                .is_none()
                            {
                                saved.push(false);
                                continue;
                            }
                            let at = consultation.updated_at;
                            insert_audit_in(&mut *tx, backend, audit, at, &mut memo).await?;
                        }
                        for event in entry.events {
                            insert_audit_in(&mut *tx, backend, event, entry.now, &mut memo).await?;
                        }
                        saved.push(true);
                    }
                    tx.commit().await?;
                    Ok(saved)
                }
            })
            .await
    }
}

/// The last entry of `consultation`'s audit chain.
async fn chain_head<DB>(
    conn: &mut DB::Connection,
    consultation: &str,
) -> Result<Option<audit_chain::Head>, DbError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> i64: Decode<'q, DB> + Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
{
    let row = sqlx::query(
        "SELECT chain_seq, hash FROM audit_events \
         WHERE consultation_id = $1 AND chain_seq IS NOT NULL \
         ORDER BY chain_seq DESC LIMIT 1",
    )
    .bind(consultation.to_owned())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let seq: i64 = row.try_get("chain_seq")?;
    Ok(Some(audit_chain::Head {
        seq: u64::try_from(seq).map_err(|_| DbError::Corrupt(format!("chain_seq {seq}")))?,
        hash: row.try_get("hash")?,
    }))
}

/// Appends `event` to the audit log inside the caller's transaction, chained to its
/// consultation's previous entry. Writers of one consultation's chain take turns: on PostgreSQL
/// through a transaction-scoped advisory lock, on SQLite because every transaction that writes
/// begins `IMMEDIATE` ([`SqlStore::begin`]); the unique `(consultation_id, chain_seq)` index
/// refuses a fork should either ever fail.
pub(crate) async fn insert_audit<DB>(
    conn: &mut DB::Connection,
    backend: Backend,
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
    insert_audit_in(conn, backend, event, now, &mut memo).await
}

/// What the audit writes of one transaction learned, so that later writes in it skip the reads:
/// each consultation's chain head as written, and whether any webhook endpoint exists.
#[derive(Default)]
pub(crate) struct AuditTx {
    heads: std::collections::HashMap<String, audit_chain::Head>,
    webhooks: Option<bool>,
}

/// [`insert_audit`] as one of several writes of a transaction that share `memo`.
pub(crate) async fn insert_audit_in<DB>(
    conn: &mut DB::Connection,
    backend: Backend,
    event: NewAuditEvent,
    now: DateTime<Utc>,
    memo: &mut AuditTx,
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
    let mut stored = AuditEvent {
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
    if let Some(consultation) = stored.consultation_id.clone() {
        // The lock (held to the end of the transaction) and the head, once per consultation.
        let head = match memo.heads.remove(&consultation) {
            Some(head) => Some(head),
            None => {
                if backend == Backend::Postgres {
                    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                        .bind(consultation.clone())
                        .execute(&mut *conn)
                        .await?;
                }
                chain_head(&mut *conn, &consultation).await?
            }
        };
        let (seq, prev) = match head {
            Some(head) => (head.seq + 1, head.hash),
            None => (1, audit_chain::GENESIS.to_owned()),
        };
        let link = audit_chain::Link {
            seq,
            id: &stored.id,
            consultation_id: &consultation,
            actor_id: stored.actor_id.as_deref(),
            action: &stored.action,
            detail: &stored.detail,
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
        stored.hash = Some(hash);
        stored.chain_seq = Some(seq);
        stored.prev_hash = Some(prev);
    }
    sqlx::query(INSERT_AUDIT)
        .bind(stored.id.clone())
        .bind(stored.consultation_id.clone())
        .bind(stored.actor_id.clone())
        .bind(stored.action.clone())
        .bind(stored.detail.to_string())
        .bind(DbTime(now))
        .bind(stored.chain_seq.map(|seq| seq as i64))
        .bind(stored.prev_hash.clone())
        .bind(stored.hash.clone())
        .execute(&mut *conn)
        .await?;
    let webhooks = match memo.webhooks {
        Some(any) => any,
        None => {
            let any = crate::sql_webhooks::any_endpoint(&mut *conn).await?;
            memo.webhooks = Some(any);
            any
        }
    };
    if webhooks {
        crate::sql_webhooks::queue_deliveries(&mut *conn, &stored, now).await?;
    }
    Ok(stored)
}
