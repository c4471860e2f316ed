//! [`WebhookStore`] for [`SqlStore`], and the fan-out of audit entries into deliveries.

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};
use wakili_core::webhook::{AuditFacts, Message};

use crate::{
    DbError,
    log_page::LogPage,
    models::{AuditEvent, NewAuditEvent},
    outbox_tables::{OutboxTable, count_pending, release_leases},
    sql::impl_for_sql,
    sql_audit::insert_audit,
    time::DbTime,
    webhooks::{
        AttemptRecord, AttemptsRecorded, EndpointPatch, EndpointTarget, NewEndpoint,
        WebhookDelivery, WebhookDeliveryFilter, WebhookEndpoint, WebhookStore,
    },
};
use wakili_core::delivery::Outcome;

const ENDPOINT_COLUMNS: &str = "id, url, events, description, source, enabled, disabled_reason, \
     consecutive_failures, previous_secret_until, created_at, updated_at";

const TARGET_COLUMNS: &str = "id, url, secret, previous_secret, previous_secret_until";

const DELIVERY_COLUMNS: &str = "id, event_id, endpoint_id, event_type, consultation_id, seq, \
     payload, status, attempts, next_attempt_at, retry_from, last_status, last_error, \
     last_attempt_at, created_at, delivered_at";

/// Whether any webhook endpoint is enabled (none: an audit write queues no delivery).
pub(crate) async fn any_endpoint<DB>(conn: &mut DB::Connection) -> Result<bool, DbError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> bool: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Decode<'q, DB> + Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
{
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM (SELECT 1 FROM webhook_endpoints WHERE enabled = $1 LIMIT 1) e",
    )
    .bind(true)
    .fetch_one(&mut *conn)
    .await?;
    let n: i64 = row.try_get("n")?;
    Ok(n > 0)
}

/// Queues the webhook deliveries `entry` reports, one per enabled endpoint subscribed to its
/// event, inside the caller's transaction (the one that writes the entry).
pub(crate) async fn queue_deliveries<DB>(
    conn: &mut DB::Connection,
    entry: &AuditEvent,
    now: DateTime<Utc>,
) -> Result<(), DbError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> bool: Encode<'q, DB> + Type<DB>,
    for<'q> DbTime: Encode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB>,
{
    let Some(message) = Message::from_audit(AuditFacts {
        id: &entry.id,
        consultation_id: entry.consultation_id.as_deref(),
        actor_id: entry.actor_id.as_deref(),
        action: &entry.action,
        detail: &entry.detail,
        at: entry.created_at,
    }) else {
        return Ok(());
    };
    let seq = entry
        .chain_seq
        .map_or(0, |s| i64::try_from(s).unwrap_or(i64::MAX));
    // The pattern is built in SQL, not bound: SQLite recompiles a statement whose LIKE has a
    // bound pattern whenever the value changes (the LIKE optimisation depends on it), which made
    // every audit write re-parse this statement (a quarter of a join's CPU in callgrind).
    sqlx::query(
        "INSERT INTO webhook_deliveries (id, event_id, endpoint_id, event_type, \
         consultation_id, seq, payload, status, attempts, next_attempt_at, retry_from, \
         created_at, updated_at) \
         SELECT $1 || '.' || id, $1, id, $2, $3, $4, $5, 'pending', 0, $6, $6, $6, $6 \
         FROM webhook_endpoints WHERE enabled = $7 AND events LIKE ('%,' || $2 || ',%')",
    )
    .bind(message.id)
    .bind(message.event.as_str().to_owned())
    .bind(message.consultation_id)
    .bind(seq)
    .bind(message.body.to_string())
    .bind(DbTime(now))
    .bind(true)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

fn endpoint_audit(
    id: &str,
    by: Option<&str>,
    action: &'static str,
    reason: Option<&str>,
) -> NewAuditEvent {
    let mut detail = json!({ "endpointId": id });
    if let (Some(reason), Some(map)) = (reason, detail.as_object_mut()) {
        map.insert("reason".into(), reason.into());
    }
    NewAuditEvent {
        consultation_id: None,
        actor_id: by.map(str::to_owned),
        action,
        detail,
    }
}

impl_for_sql!(WebhookStore {
    fn deliveries_queued(&self) -> std::sync::Arc<tokio::sync::Notify> {
        std::sync::Arc::clone(&self.deliveries)
    }

    async fn create_endpoint(
        &self,
        new: &NewEndpoint,
        now: DateTime<Utc>,
    ) -> Result<WebhookEndpoint, DbError> {
        let mut conn = self.write().await?;
        let row = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "INSERT INTO webhook_endpoints (id, url, events, description, source, secret, \
             enabled, consecutive_failures, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $8) RETURNING {ENDPOINT_COLUMNS}"
        )))
        .bind(new.id.clone())
        .bind(new.url.clone())
        .bind(new.events.clone())
        .bind(new.description.clone())
        .bind(new.source.as_str().to_owned())
        .bind(new.secret.clone())
        .bind(true)
        .bind(DbTime(now))
        .fetch_one(&mut *conn)
        .await?;
        Ok(row)
    }

    async fn sync_config_endpoint(
        &self,
        new: &NewEndpoint,
        previous_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<WebhookEndpoint, DbError> {
        let mut conn = self.write().await?;
        let row = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "INSERT INTO webhook_endpoints (id, url, events, description, source, secret, \
             enabled, consecutive_failures, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $8) \
             ON CONFLICT (id) DO UPDATE SET url = excluded.url, events = excluded.events, \
             description = excluded.description, source = excluded.source, \
             previous_secret = CASE WHEN webhook_endpoints.secret = excluded.secret \
               THEN webhook_endpoints.previous_secret ELSE webhook_endpoints.secret END, \
             previous_secret_until = CASE WHEN webhook_endpoints.secret = excluded.secret \
               THEN webhook_endpoints.previous_secret_until ELSE $9 END, \
             secret = excluded.secret, \
             updated_at = CASE WHEN webhook_endpoints.url = excluded.url \
               AND webhook_endpoints.events = excluded.events \
               AND webhook_endpoints.secret = excluded.secret \
               AND webhook_endpoints.description = excluded.description \
               THEN webhook_endpoints.updated_at ELSE excluded.updated_at END \
             RETURNING {ENDPOINT_COLUMNS}"
        )))
        .bind(new.id.clone())
        .bind(new.url.clone())
        .bind(new.events.clone())
        .bind(new.description.clone())
        .bind(new.source.as_str().to_owned())
        .bind(new.secret.clone())
        .bind(true)
        .bind(DbTime(now))
        .bind(DbTime(previous_until))
        .fetch_one(&mut *conn)
        .await?;
        Ok(row)
    }

    async fn endpoints(&self) -> Result<Vec<WebhookEndpoint>, DbError> {
        let mut conn = self.pool().acquire().await?;
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints ORDER BY created_at, id"
        )))
        .fetch_all(&mut *conn)
        .await?)
    }

    async fn endpoint(&self, id: &str) -> Result<Option<WebhookEndpoint>, DbError> {
        let mut conn = self.pool().acquire().await?;
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1"
        )))
        .bind(id.to_owned())
        .fetch_optional(&mut *conn)
        .await?)
    }

    async fn update_endpoint(
        &self,
        id: &str,
        patch: &EndpointPatch,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<WebhookEndpoint>, DbError> {
        let (enabled, reason) = match &patch.enabled {
            Some((enabled, reason)) => (Some(*enabled), reason.clone()),
            None => (None, None),
        };
        let mut tx = self.begin().await?;
        let row: Option<WebhookEndpoint> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE webhook_endpoints SET url = COALESCE($2, url), \
             events = COALESCE($3, events), description = COALESCE($4, description), \
             enabled = CASE WHEN $5 = 1 THEN $6 WHEN $5 = 2 THEN $7 ELSE enabled END, \
             disabled_reason = CASE WHEN $5 = 1 THEN NULL WHEN $5 = 2 THEN $8 \
               ELSE disabled_reason END, \
             consecutive_failures = CASE WHEN $5 = 1 THEN 0 ELSE consecutive_failures END, \
             updated_at = $9 WHERE id = $1 RETURNING {ENDPOINT_COLUMNS}"
        )))
        .bind(id.to_owned())
        .bind(patch.url.clone())
        .bind(patch.events.clone())
        .bind(patch.description.clone())
        .bind(match enabled {
            Some(true) => 1_i64,
            Some(false) => 2,
            None => 0,
        })
        .bind(true)
        .bind(false)
        .bind(reason.clone())
        .bind(DbTime(now))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(endpoint) = row else {
            return Ok(None);
        };
        let action = match enabled {
            Some(true) => "webhook.endpoint_enabled",
            Some(false) => "webhook.endpoint_disabled",
            None => "webhook.endpoint_updated",
        };
        let audit = endpoint_audit(id, Some(by), action, reason.as_deref());
        insert_audit(&mut *tx, self, audit, now).await?;
        tx.commit().await?;
        Ok(Some(endpoint))
    }

    async fn rotate_secret(
        &self,
        id: &str,
        secret: &str,
        previous_until: DateTime<Utc>,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<WebhookEndpoint>, DbError> {
        let mut tx = self.begin().await?;
        let row: Option<WebhookEndpoint> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE webhook_endpoints SET previous_secret = secret, \
             previous_secret_until = $3, secret = $2, updated_at = $4 \
             WHERE id = $1 RETURNING {ENDPOINT_COLUMNS}"
        )))
        .bind(id.to_owned())
        .bind(secret.to_owned())
        .bind(DbTime(previous_until))
        .bind(DbTime(now))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(endpoint) = row else {
            return Ok(None);
        };
        let audit = endpoint_audit(id, Some(by), "webhook.secret_rotated", None);
        insert_audit(&mut *tx, self, audit, now).await?;
        tx.commit().await?;
        Ok(Some(endpoint))
    }

    async fn endpoint_targets(&self, ids: &[String]) -> Result<Vec<EndpointTarget>, DbError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let list = (1..=ids.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
        let sql = format!("SELECT {TARGET_COLUMNS} FROM webhook_endpoints WHERE id IN ({list})");
        let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
        for id in ids {
            query = query.bind(id.clone());
        }
        let mut conn = self.pool().acquire().await?;
        Ok(query.fetch_all(&mut *conn).await?)
    }

    async fn claim_webhook_deliveries(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>, DbError> {
        let mut conn = self.write().await?;
        // Only the head of each (endpoint, consultation) queue is claimable: a delivery waits
        // while an earlier one of its consultation to its endpoint is pending (leased or not).
        let mut claimed: Vec<WebhookDelivery> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE webhook_deliveries SET lease_owner = $1, lease_until = $2 \
             WHERE id IN (SELECT d.id FROM webhook_deliveries d \
               JOIN webhook_endpoints e ON e.id = d.endpoint_id \
               WHERE d.status = 'pending' AND e.enabled = $5 AND d.next_attempt_at <= $3 \
               AND (d.lease_until IS NULL OR d.lease_until < $3) \
               AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p \
                 WHERE p.endpoint_id = d.endpoint_id AND p.consultation_id = d.consultation_id \
                 AND p.status = 'pending' AND p.seq < d.seq) \
               ORDER BY d.next_attempt_at, d.id LIMIT $4) \
             AND status = 'pending' AND (lease_until IS NULL OR lease_until < $3) \
             RETURNING {DELIVERY_COLUMNS}"
        )))
        .bind(owner.to_owned())
        .bind(DbTime(until))
        .bind(DbTime(now))
        .bind(i64::from(limit))
        .bind(true)
        .fetch_all(&mut *conn)
        .await?;
        claimed.sort_by(|a, b| (a.next_attempt_at, &a.id).cmp(&(b.next_attempt_at, &b.id)));
        Ok(claimed)
    }

    async fn record_webhook_attempts(
        &self,
        owner: &str,
        attempts: &[AttemptRecord],
        disable_after: u32,
        now: DateTime<Utc>,
    ) -> Result<AttemptsRecorded, DbError> {
        let mut recorded = AttemptsRecorded::default();
        if attempts.is_empty() {
            return Ok(recorded);
        }
        let held = "WHERE id = $1 AND lease_owner = $2 AND status = 'pending' RETURNING endpoint_id";
        let mut tx = self.begin().await?;
        // Per endpoint: whether any attempt succeeded, failures in this batch, gone.
        let mut endpoints: std::collections::BTreeMap<String, (bool, i64, bool)> =
            Default::default();
        for a in attempts {
            let status = a.status.map(i64::from);
            let (query, failed) = match &a.outcome {
                Outcome::Done { .. } => (
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "UPDATE webhook_deliveries SET status = 'delivered', \
                         attempts = attempts + 1, last_status = $3, last_error = NULL, \
                         last_attempt_at = $4, delivered_at = $4, updated_at = $4, \
                         lease_owner = NULL, lease_until = NULL {held}"
                    )))
                    .bind(a.id.clone())
                    .bind(owner.to_owned())
                    .bind(status)
                    .bind(DbTime(now)),
                    false,
                ),
                Outcome::Failed { error } => (
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "UPDATE webhook_deliveries SET status = 'failed', \
                         attempts = attempts + 1, last_status = $3, last_error = $4, \
                         last_attempt_at = $5, updated_at = $5, \
                         lease_owner = NULL, lease_until = NULL {held}"
                    )))
                    .bind(a.id.clone())
                    .bind(owner.to_owned())
                    .bind(status)
                    .bind(error.clone())
                    .bind(DbTime(now)),
                    true,
                ),
                Outcome::Expired => (
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "UPDATE webhook_deliveries SET status = 'expired', \
                         attempts = attempts + 1, last_status = COALESCE($3, last_status), \
                         last_attempt_at = $4, updated_at = $4, \
                         lease_owner = NULL, lease_until = NULL {held}"
                    )))
                    .bind(a.id.clone())
                    .bind(owner.to_owned())
                    .bind(status)
                    .bind(DbTime(now)),
                    true,
                ),
                Outcome::Retry {
                    at,
                    error,
                    attempted,
                } => (
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "UPDATE webhook_deliveries SET attempts = attempts + $3, \
                         next_attempt_at = $4, last_status = COALESCE($5, last_status), \
                         last_error = COALESCE($6, last_error), last_attempt_at = $7, \
                         updated_at = $7, lease_owner = NULL, lease_until = NULL {held}"
                    )))
                    .bind(a.id.clone())
                    .bind(owner.to_owned())
                    .bind(i64::from(*attempted))
                    .bind(DbTime(*at))
                    .bind(status)
                    .bind(error.clone())
                    .bind(DbTime(now)),
                    *attempted,
                ),
            };
            let Some(row) = query.fetch_optional(&mut *tx).await? else {
                continue;
            };
            recorded.updated += 1;
            let endpoint: String = row.try_get("endpoint_id")?;
            let entry = endpoints.entry(endpoint).or_default();
            if failed {
                entry.1 += 1;
            } else if matches!(a.outcome, Outcome::Done { .. }) {
                entry.0 = true;
            }
            entry.2 |= a.gone;
        }
        for (endpoint, (succeeded, failures, gone)) in endpoints {
            // A success resets the count; failures after it in the same batch count again.
            let row = sqlx::query(
                "UPDATE webhook_endpoints SET consecutive_failures = \
                 CASE WHEN $2 THEN $3 ELSE consecutive_failures + $3 END \
                 WHERE id = $1 RETURNING consecutive_failures, enabled",
            )
            .bind(endpoint.clone())
            .bind(succeeded)
            .bind(failures)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else { continue };
            let count: i64 = row.try_get("consecutive_failures")?;
            let enabled: bool = row.try_get("enabled")?;
            let too_many = disable_after > 0 && count >= i64::from(disable_after);
            if !enabled || !(gone || too_many) {
                continue;
            }
            let reason = if gone {
                "the endpoint answered 410 Gone".to_owned()
            } else {
                format!("{count} failed attempts in a row")
            };
            sqlx::query(
                "UPDATE webhook_endpoints SET enabled = $2, disabled_reason = $3, \
                 updated_at = $4 WHERE id = $1",
            )
            .bind(endpoint.clone())
            .bind(false)
            .bind(reason.clone())
            .bind(DbTime(now))
            .execute(&mut *tx)
            .await?;
            let audit = endpoint_audit(&endpoint, None, "webhook.endpoint_disabled", Some(&reason));
            insert_audit(&mut *tx, self, audit, now).await?;
            recorded.disabled.push(endpoint);
        }
        tx.commit().await?;
        Ok(recorded)
    }

    async fn release_webhook_deliveries(&self, owner: &str) -> Result<(), DbError> {
        let mut conn = self.write().await?;
        release_leases(&mut *conn, OutboxTable::Webhooks, owner).await
    }

    async fn webhook_deliveries(
        &self,
        filter: &WebhookDeliveryFilter,
    ) -> Result<Vec<WebhookDelivery>, DbError> {
        let page = LogPage::newest_first(
            DELIVERY_COLUMNS,
            "webhook_deliveries",
            [
                ("endpoint_id", filter.endpoint_id.clone()),
                ("status", filter.status.map(|s| s.as_str().to_owned())),
                ("consultation_id", filter.consultation_id.clone()),
            ],
            filter.before.as_deref(),
        );
        let mut query = sqlx::query_as(sqlx::AssertSqlSafe(page.sql));
        for value in page.values {
            query = query.bind(value);
        }
        let mut conn = self.pool().acquire().await?;
        Ok(query.bind(i64::from(filter.limit)).fetch_all(&mut *conn).await?)
    }

    async fn redeliver(
        &self,
        id: &str,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<WebhookDelivery>, DbError> {
        let mut tx = self.begin().await?;
        let row: Option<WebhookDelivery> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $2, \
             retry_from = $2, updated_at = $2, lease_owner = NULL, lease_until = NULL \
             WHERE id = $1 RETURNING {DELIVERY_COLUMNS}"
        )))
        .bind(id.to_owned())
        .bind(DbTime(now))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(delivery) = row else {
            return Ok(None);
        };
        let audit = NewAuditEvent {
            consultation_id: None,
            actor_id: Some(by.to_owned()),
            action: "webhook.redelivered",
            detail: json!({
                "deliveryId": delivery.id,
                "eventId": delivery.event_id,
                "endpointId": delivery.endpoint_id,
            }),
        };
        insert_audit(&mut *tx, self, audit, now).await?;
        tx.commit().await?;
        Ok(Some(delivery))
    }

    async fn pending_webhook_deliveries(&self) -> Result<u64, DbError> {
        let mut conn = self.pool().acquire().await?;
        count_pending(&mut *conn, OutboxTable::Webhooks).await
    }
});
