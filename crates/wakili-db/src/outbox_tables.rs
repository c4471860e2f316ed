//! What the two outbox tables (`push_notifications`, `webhook_deliveries`) do alike: give back
//! the leases of a stopping worker, and count what still waits.

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};

use crate::DbError;

/// An outbox table; its name is the only text put into these statements.
#[derive(Clone, Copy)]
pub(crate) enum OutboxTable {
    Push,
    Webhooks,
}

impl OutboxTable {
    fn name(self) -> &'static str {
        match self {
            Self::Push => "push_notifications",
            Self::Webhooks => "webhook_deliveries",
        }
    }
}

/// Frees the pending rows `owner` leased, for another worker to take at once.
pub(crate) async fn release_leases<DB>(
    conn: &mut DB::Connection,
    table: OutboxTable,
    owner: &str,
) -> Result<(), DbError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
{
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE {} SET lease_owner = NULL, lease_until = NULL \
         WHERE lease_owner = $1 AND status = 'pending'",
        table.name()
    )))
    .bind(owner.to_owned())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Rows still to deliver (due, backing off, or waiting behind another).
pub(crate) async fn count_pending<DB>(
    conn: &mut DB::Connection,
    table: OutboxTable,
) -> Result<u64, DbError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> i64: Decode<'q, DB> + Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
{
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) AS n FROM {} WHERE status = 'pending'",
        table.name()
    )))
    .fetch_one(&mut *conn)
    .await?;
    let n: i64 = row.try_get("n")?;
    Ok(u64::try_from(n).unwrap_or(0))
}
