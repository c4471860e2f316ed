//! [`GuestStore`](crate::GuestStore) over SQL: guests are rows of `consultation_participants`
//! with a guest role, beside the two parties the booking wrote.

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};
use wakili_core::{GuestRole, ParticipantRole};

use crate::{
    DbError,
    models::{GuestChange, NewAuditEvent},
    sql::impl_for_sql,
    sql_audit::insert_audit,
    time::DbTime,
};

/// A stored role, as a guest role if it is one (`Ok(None)` for a party).
fn guest_role(stored: &str) -> Result<Option<GuestRole>, DbError> {
    let role: ParticipantRole = stored
        .parse()
        .map_err(|e| DbError::Corrupt(format!("participant role: {e}")))?;
    Ok(role.guest())
}

/// `user_id`'s stored role in the consultation, if they have one.
async fn stored_role<'c, DB, E>(
    executor: E,
    consultation_id: &str,
    user_id: &str,
) -> Result<Option<String>, DbError>
where
    DB: Database,
    E: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
{
    let row = sqlx::query(
        "SELECT role FROM consultation_participants WHERE consultation_id = $1 AND user_id = $2",
    )
    .bind(consultation_id.to_owned())
    .bind(user_id.to_owned())
    .fetch_optional(executor)
    .await?;
    Ok(match row {
        Some(row) => Some(row.try_get("role")?),
        None => None,
    })
}

impl_for_sql!(crate::GuestStore {
    async fn invitation(
        &self,
        consultation_id: &str,
        user_id: &str,
    ) -> Result<Option<GuestRole>, DbError> {
        let mut conn = self.pool().acquire().await?;
        match stored_role(&mut *conn, consultation_id, user_id).await? {
            Some(role) => guest_role(&role),
            None => Ok(None),
        }
    }

    async fn put_guest(
        &self,
        consultation_id: &str,
        user_id: &str,
        role: GuestRole,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<GuestChange, DbError> {
        let mut tx = self.begin().await?;
        let stored = stored_role(&mut *tx, consultation_id, user_id).await?;
        let (change, detail) = match stored.as_deref().map(guest_role).transpose()? {
            None => (
                GuestChange::Invited,
                json!({ "userId": user_id, "role": role }),
            ),
            Some(None) => return Err(DbError::NotAGuest(user_id.to_owned())),
            Some(Some(current)) if current == role => return Ok(GuestChange::Unchanged),
            Some(Some(current)) => (
                GuestChange::RoleChanged,
                json!({ "userId": user_id, "from": current, "to": role }),
            ),
        };
        sqlx::query(
            "INSERT INTO consultation_participants \
             (consultation_id, user_id, role, added_at, invited_by) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (consultation_id, user_id) DO UPDATE SET role = excluded.role, \
             added_at = excluded.added_at, invited_by = excluded.invited_by",
        )
        .bind(consultation_id.to_owned())
        .bind(user_id.to_owned())
        .bind(role.as_str().to_owned())
        .bind(DbTime(now))
        .bind(by.to_owned())
        .execute(&mut *tx)
        .await?;
        let audit = NewAuditEvent {
            consultation_id: Some(consultation_id.to_owned()),
            actor_id: Some(by.to_owned()),
            action: match change {
                GuestChange::Invited => "participant.invited",
                _ => "participant.role_changed",
            },
            detail,
        };
        insert_audit(&mut *tx, self, audit, now).await?;
        tx.commit().await?;
        Ok(change)
    }

    async fn remove_guest(
        &self,
        consultation_id: &str,
        user_id: &str,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, DbError> {
        let mut tx = self.begin().await?;
        let Some(role) = stored_role(&mut *tx, consultation_id, user_id).await? else {
            return Ok(false);
        };
        if guest_role(&role)?.is_none() {
            return Ok(false);
        }
        sqlx::query(
            "DELETE FROM consultation_participants WHERE consultation_id = $1 AND user_id = $2",
        )
        .bind(consultation_id.to_owned())
        .bind(user_id.to_owned())
        .execute(&mut *tx)
        .await?;
        let audit = NewAuditEvent {
            consultation_id: Some(consultation_id.to_owned()),
            actor_id: Some(by.to_owned()),
            action: "participant.uninvited",
            detail: json!({ "userId": user_id, "role": role }),
        };
        insert_audit(&mut *tx, self, audit, now).await?;
        tx.commit().await?;
        Ok(true)
    }
});
