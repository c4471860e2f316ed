//! [`PushStore`] for [`SqlStore`]: the same portable-SQL approach as `sql.rs`.
//!
//! Leases are claimed with one `UPDATE … WHERE id IN (SELECT … LIMIT n) AND <still free>
//! RETURNING`: on PostgreSQL a concurrent claimer that waited for the row lock re-checks the
//! outer condition on the new row version and skips rows another node just leased; SQLite runs
//! writers one at a time.

use chrono::{DateTime, Utc};
use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, Row, Type};

use crate::{
    DbError,
    log_page::LogPage,
    models::NewAuditEvent,
    outbox_tables::{OutboxTable, count_pending, release_leases},
    push::{
        CallState, DeliveryFilter, DeviceRegistration, DueReminder, NewDevice, NewNotification,
        OutboxNotification, Outcome, PushStore,
    },
    sql::impl_for_sql,
    sql_audit::insert_audit,
    time::DbTime,
};

const DEVICE_COLUMNS: &str = "id, user_id, token, platform, app_version, locale, is_active, \
     deactivated_reason, last_seen_at, created_at, updated_at";

const OUTBOX_COLUMNS: &str = "id, user_id, device_token, platform, kind, consultation_id, \
     payload, status, attempts, next_attempt_at, expires_at, last_error, message_name, \
     created_at, updated_at, sent_at";

/// The `device.pruned` audit entry (and webhook) of a deactivated device's row.
fn pruned<R: Row>(row: &R, reason: &str) -> Result<NewAuditEvent, DbError>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'q> String: sqlx::Decode<'q, R::Database> + Type<R::Database>,
{
    let user_id: String = row.try_get("user_id")?;
    let platform: String = row.try_get("platform")?;
    Ok(NewAuditEvent {
        consultation_id: None,
        actor_id: None,
        action: "device.pruned",
        detail: serde_json::json!({ "userId": user_id, "platform": platform, "reason": reason }),
    })
}

const REMINDER_COLUMNS: &str = "id, consultation_id, offset_seconds, due_at";

/// Leases (for owner `$1` until `$2`) up to `$4` pending rows of `table` due by `$3`
/// (`due <= $3`) whose lease is free or expired, oldest `order` first, returning `columns`.
fn claim_sql(table: &str, due: &str, order: &str, columns: &str) -> String {
    format!(
        "UPDATE {table} SET lease_owner = $1, lease_until = $2 \
         WHERE id IN (SELECT id FROM {table} WHERE status = 'pending' \
         AND {due} <= $3 AND (lease_until IS NULL OR lease_until < $3) \
         ORDER BY {order} LIMIT $4) \
         AND status = 'pending' AND (lease_until IS NULL OR lease_until < $3) \
         RETURNING {columns}"
    )
}

async fn insert_notifications<DB>(
    conn: &mut DB::Connection,
    notifications: &[NewNotification],
    now: DateTime<Utc>,
) -> Result<(), DbError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> DbTime: Encode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB>,
    for<'q> Option<DbTime>: Encode<'q, DB>,
{
    for n in notifications {
        sqlx::query(
            "INSERT INTO push_notifications (id, user_id, device_token, platform, kind, \
             consultation_id, payload, status, attempts, next_attempt_at, expires_at, \
             created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', 0, $8, $9, $10, $10)",
        )
        .bind(n.id.clone())
        .bind(n.user_id.clone())
        .bind(n.device_token.clone())
        .bind(n.platform.clone())
        .bind(n.kind.clone())
        .bind(n.consultation_id.clone())
        .bind(n.payload.clone())
        .bind(DbTime(n.due_at))
        .bind(n.expires_at.map(DbTime))
        .bind(DbTime(now))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

impl_for_sql!(PushStore {

    async fn upsert_device(
        &self,
        new: &NewDevice,
        now: DateTime<Utc>,
    ) -> Result<DeviceRegistration, DbError> {
        let mut conn = self.write().await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO device_registrations (id, user_id, token, platform, app_version, locale, \
             is_active, last_seen_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $8) \
             ON CONFLICT (token) DO UPDATE SET user_id = excluded.user_id, \
             platform = excluded.platform, app_version = excluded.app_version, \
             locale = excluded.locale, is_active = excluded.is_active, \
             deactivated_reason = NULL, last_seen_at = excluded.last_seen_at, \
             updated_at = excluded.updated_at RETURNING {DEVICE_COLUMNS}"
        )))
        .bind(new.id.clone())
        .bind(new.user_id.clone())
        .bind(new.token.clone())
        .bind(new.platform.clone())
        .bind(new.app_version.clone())
        .bind(new.locale.clone())
        .bind(true)
        .bind(DbTime(now))
        .fetch_one(&mut *conn)
        .await?;
        Ok(DeviceRegistration::from_row(&row)?)
    }

    async fn devices_of(&self, user_id: &str) -> Result<Vec<DeviceRegistration>, DbError> {
        let mut conn = self.pool().acquire().await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {DEVICE_COLUMNS} FROM device_registrations WHERE user_id = $1 \
             ORDER BY created_at, id"
        )))
        .bind(user_id.to_owned())
        .fetch_all(&mut *conn)
        .await?;
        Ok(rows.iter().map(DeviceRegistration::from_row).collect::<Result<_, _>>()?)
    }

    async fn active_devices(
        &self,
        user_ids: &[String],
    ) -> Result<Vec<DeviceRegistration>, DbError> {
        if user_ids.is_empty() {
            return Ok(Vec::new());
        }
        let list = (2..2 + user_ids.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {DEVICE_COLUMNS} FROM device_registrations \
             WHERE is_active = $1 AND user_id IN ({list}) ORDER BY created_at, id"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(true);
        for user in user_ids {
            query = query.bind(user.clone());
        }
        let mut conn = self.pool().acquire().await?;
        let rows = query.fetch_all(&mut *conn).await?;
        Ok(rows.iter().map(DeviceRegistration::from_row).collect::<Result<_, _>>()?)
    }

    async fn delete_device(&self, user_id: &str, token: &str) -> Result<bool, DbError> {
        let mut conn = self.write().await?;
        let done = sqlx::query(
            "DELETE FROM device_registrations WHERE user_id = $1 AND token = $2 RETURNING id",
        )
        .bind(user_id.to_owned())
        .bind(token.to_owned())
        .fetch_optional(&mut *conn)
        .await?;
        Ok(done.is_some())
    }

    async fn touch_device(
        &self,
        user_id: &str,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<DeviceRegistration>, DbError> {
        let mut conn = self.write().await?;
        // Silence is cured by a heartbeat; a token FCM refused is not (the app registers anew).
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE device_registrations SET last_seen_at = $3, updated_at = $3, \
             is_active = CASE WHEN deactivated_reason = 'silent' THEN $4 ELSE is_active END, \
             deactivated_reason = CASE WHEN deactivated_reason = 'silent' THEN NULL \
             ELSE deactivated_reason END \
             WHERE user_id = $1 AND token = $2 RETURNING {DEVICE_COLUMNS}"
        )))
        .bind(user_id.to_owned())
        .bind(token.to_owned())
        .bind(DbTime(now))
        .bind(true)
        .fetch_optional(&mut *conn)
        .await?;
        Ok(row.as_ref().map(DeviceRegistration::from_row).transpose()?)
    }

    async fn deactivate_device(
        &self,
        token: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, DbError> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE device_registrations SET is_active = $2, deactivated_reason = $3, \
             updated_at = $4 WHERE token = $1 AND is_active = $5 RETURNING user_id, platform",
        )
        .bind(token.to_owned())
        .bind(false)
        .bind(reason.to_owned())
        .bind(DbTime(now))
        .bind(true)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = done else {
            return Ok(false);
        };
        let audit = pruned(&row, reason)?;
        insert_audit(&mut *tx, self, audit, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn deactivate_silent(
        &self,
        before: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<u64, DbError> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE device_registrations SET is_active = $2, deactivated_reason = 'silent', \
             updated_at = $3 WHERE is_active = $4 AND last_seen_at < $1 \
             RETURNING user_id, platform",
        )
        .bind(DbTime(before))
        .bind(false)
        .bind(DbTime(now))
        .bind(true)
        .fetch_all(&mut *tx)
        .await?;
        for row in &done {
            insert_audit(&mut *tx, self, pruned(row, "silent")?, now).await?;
        }
        tx.commit().await?;
        Ok(done.len() as u64)
    }

    async fn enqueue(
        &self,
        notifications: &[NewNotification],
        now: DateTime<Utc>,
    ) -> Result<(), DbError> {
        if notifications.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        insert_notifications(&mut *tx, notifications, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn claim_notifications(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<OutboxNotification>, DbError> {
        let mut conn = self.write().await?;
        let mut claimed: Vec<OutboxNotification> = sqlx::query_as(sqlx::AssertSqlSafe(
            claim_sql("push_notifications", "next_attempt_at", "next_attempt_at, id", OUTBOX_COLUMNS),
        ))
        .bind(owner.to_owned())
        .bind(DbTime(until))
        .bind(DbTime(now))
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await?;
        claimed.sort_by(|a, b| (a.next_attempt_at, &a.id).cmp(&(b.next_attempt_at, &b.id)));
        Ok(claimed)
    }

    async fn finish_notifications(
        &self,
        owner: &str,
        outcomes: &[(String, Outcome)],
        now: DateTime<Utc>,
    ) -> Result<u64, DbError> {
        if outcomes.is_empty() {
            return Ok(0);
        }
        let held = "WHERE id = $1 AND lease_owner = $2 AND status = 'pending' RETURNING id";
        let mut tx = self.begin().await?;
        let mut updated = 0;
        // Accepted rows (nearly all) in one statement per 1,000: `message_name` per row through
        // a CASE, the lease re-checked for each.
        let sent: Vec<(&String, &String)> = outcomes
            .iter()
            .filter_map(|(id, o)| match o {
                Outcome::Done { receipt } => Some((id, receipt)),
                _ => None,
            })
            .collect();
        for part in sent.chunks(1000) {
            let mut cases = String::new();
            let mut ids = Vec::with_capacity(part.len());
            for i in 0..part.len() {
                let (id, name) = (3 + 2 * i, 4 + 2 * i);
                cases.push_str(&format!(" WHEN ${id} THEN ${name}"));
                ids.push(format!("${id}"));
            }
            let sql = format!(
                "UPDATE push_notifications SET status = 'sent', attempts = attempts + 1, \
                 message_name = CASE id{cases} END, sent_at = $2, updated_at = $2, \
                 lease_owner = NULL, lease_until = NULL \
                 WHERE lease_owner = $1 AND status = 'pending' AND id IN ({}) RETURNING id",
                ids.join(", ")
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(owner.to_owned())
                .bind(DbTime(now));
            for (id, name) in part {
                query = query.bind((*id).clone()).bind((*name).clone());
            }
            updated += query.fetch_all(&mut *tx).await?.len() as u64;
        }
        for (id, outcome) in outcomes {
            let query = match outcome {
                Outcome::Done { .. } => continue,
                Outcome::Failed { error } => sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE push_notifications SET status = 'failed', attempts = attempts + 1, \
                     last_error = $3, updated_at = $4, lease_owner = NULL, lease_until = NULL \
                     {held}"
                )))
                .bind(id.clone())
                .bind(owner.to_owned())
                .bind(error.clone())
                .bind(DbTime(now)),
                Outcome::Expired => sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE push_notifications SET status = 'expired', updated_at = $3, \
                     lease_owner = NULL, lease_until = NULL {held}"
                )))
                .bind(id.clone())
                .bind(owner.to_owned())
                .bind(DbTime(now)),
                Outcome::Retry {
                    at,
                    error,
                    attempted,
                } => sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE push_notifications SET attempts = attempts + $3, \
                     next_attempt_at = $4, last_error = COALESCE($5, last_error), \
                     updated_at = $6, lease_owner = NULL, lease_until = NULL {held}"
                )))
                .bind(id.clone())
                .bind(owner.to_owned())
                .bind(i64::from(*attempted))
                .bind(DbTime(*at))
                .bind(error.clone())
                .bind(DbTime(now)),
            };
            updated += u64::from(query.fetch_optional(&mut *tx).await?.is_some());
        }
        tx.commit().await?;
        Ok(updated)
    }

    async fn release_notifications(&self, owner: &str) -> Result<(), DbError> {
        let mut conn = self.write().await?;
        release_leases(&mut *conn, OutboxTable::Push, owner).await
    }

    async fn pending_notifications(&self) -> Result<u64, DbError> {
        let mut conn = self.pool().acquire().await?;
        count_pending(&mut *conn, OutboxTable::Push).await
    }

    async fn deliveries(
        &self,
        filter: &DeliveryFilter,
    ) -> Result<Vec<OutboxNotification>, DbError> {
        let page = LogPage::newest_first(
            OUTBOX_COLUMNS,
            "push_notifications",
            [
                ("status", filter.status.map(|s| s.as_str().to_owned())),
                ("consultation_id", filter.consultation_id.clone()),
                ("user_id", filter.user_id.clone()),
            ],
            filter.before.as_deref(),
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(page.sql));
        for value in page.values {
            query = query.bind(value);
        }
        let mut conn = self.pool().acquire().await?;
        let rows = query
            .bind(i64::from(filter.limit))
            .fetch_all(&mut *conn)
            .await?;
        Ok(rows.iter().map(OutboxNotification::from_row).collect::<Result<_, _>>()?)
    }

    async fn latest_call(&self, consultation_id: &str) -> Result<Option<CallState>, DbError> {
        let mut conn = self.pool().acquire().await?;
        Ok(sqlx::query_as(
            "SELECT kind, user_id, expires_at FROM push_notifications \
             WHERE consultation_id = $1 AND kind IN ('incoming_call', 'call_cancelled') \
             ORDER BY id DESC LIMIT 1",
        )
        .bind(consultation_id.to_owned())
        .fetch_optional(&mut *conn)
        .await?)
    }

    async fn replace_reminders(
        &self,
        consultation_id: &str,
        reminders: &[(i64, DateTime<Utc>)],
        now: DateTime<Utc>,
    ) -> Result<(), DbError> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM push_reminders WHERE consultation_id = $1 AND status = 'pending'")
            .bind(consultation_id.to_owned())
            .execute(&mut *tx)
            .await?;
        for (offset, due) in reminders {
            sqlx::query(
                "INSERT INTO push_reminders (id, consultation_id, offset_seconds, due_at, status, \
                 created_at) VALUES ($1, $2, $3, $4, 'pending', $5) \
                 ON CONFLICT (consultation_id, offset_seconds) DO UPDATE SET \
                 due_at = excluded.due_at, status = 'pending', lease_owner = NULL, \
                 lease_until = NULL, done_at = NULL",
            )
            .bind(wakili_core::new_id())
            .bind(consultation_id.to_owned())
            .bind(*offset)
            .bind(DbTime(*due))
            .bind(DbTime(now))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn delete_reminders(&self, consultation_id: &str) -> Result<(), DbError> {
        let mut conn = self.write().await?;
        sqlx::query("DELETE FROM push_reminders WHERE consultation_id = $1 AND status = 'pending'")
            .bind(consultation_id.to_owned())
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    async fn pending_reminders(&self, consultation_id: &str) -> Result<Vec<DueReminder>, DbError> {
        let mut conn = self.pool().acquire().await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {REMINDER_COLUMNS} FROM push_reminders \
             WHERE consultation_id = $1 AND status = 'pending' ORDER BY due_at"
        )))
        .bind(consultation_id.to_owned())
        .fetch_all(&mut *conn)
        .await?;
        Ok(rows.iter().map(DueReminder::from_row).collect::<Result<_, _>>()?)
    }

    async fn claim_reminders(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<DueReminder>, DbError> {
        let mut conn = self.write().await?;
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(claim_sql(
            "push_reminders",
            "due_at",
            "due_at",
            REMINDER_COLUMNS,
        )))
        .bind(owner.to_owned())
        .bind(DbTime(until))
        .bind(DbTime(now))
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await?)
    }

    async fn complete_reminder(
        &self,
        reminder: &DueReminder,
        owner: &str,
        notifications: &[NewNotification],
        now: DateTime<Utc>,
    ) -> Result<bool, DbError> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE push_reminders SET status = 'done', done_at = $3, lease_owner = NULL, \
             lease_until = NULL WHERE id = $1 AND lease_owner = $2 AND status = 'pending' \
             AND due_at = $4 RETURNING id",
        )
        .bind(reminder.id.clone())
        .bind(owner.to_owned())
        .bind(DbTime(now))
        .bind(DbTime(reminder.due_at))
        .fetch_optional(&mut *tx)
        .await?;
        if done.is_none() {
            return Ok(false);
        }
        insert_notifications(&mut *tx, notifications, now).await?;
        tx.commit().await?;
        Ok(true)
    }
});
