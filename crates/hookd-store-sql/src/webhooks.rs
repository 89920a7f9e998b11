//! Webhooks: SQL text both dialects accept as is, and the writes, run inside a transaction the
//! backend opens (its way) and commits. Each write bumps the version counter in the same
//! transaction so other processes can cache the active set. The optimistic update compares a
//! nullable column, which the dialects spell differently, so the backend passes that statement.

use hookd_core::ids::WebhookId;
use hookd_core::store::Written;
use hookd_core::webhook::Webhook;
use sqlx::{Database, Encode, Executor, IntoArguments, Type};

use crate::{webhook_columns, RowsAffected};

/// Binds `$1`..`$7` as [`insert`] does, then the limits the claim reads: `$8` max in flight,
/// `$9` rate limit (copies of the spec's fields).
pub const INSERT: &str = "INSERT INTO webhooks
         (id, active, disabled_reason, failing_since, spec, created_at, updated_at,
          max_in_flight, rate_limit)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
/// `$1`: id.
pub const GET: &str = concat!(
    "SELECT ",
    webhook_columns!(),
    " FROM webhooks WHERE id = $1"
);
/// The first page: `$1` limit.
pub const LIST: &str = concat!(
    "SELECT ",
    webhook_columns!(),
    " FROM webhooks ORDER BY id DESC LIMIT $1"
);
/// A later page: `$1` limit, `$2` the last id of the previous page.
pub const LIST_BEFORE: &str = concat!(
    "SELECT ",
    webhook_columns!(),
    " FROM webhooks WHERE id < $2 ORDER BY id DESC LIMIT $1"
);
pub const ACTIVE: &str = concat!(
    "SELECT ",
    webhook_columns!(),
    " FROM webhooks WHERE active ORDER BY id"
);
/// `$1`: id; a row when the webhook exists.
pub const EXISTS: &str = "SELECT 1 FROM webhooks WHERE id = $1";
/// `$1`: id.
pub const DELETE: &str = "DELETE FROM webhooks WHERE id = $1";
/// Cancels a deleted webhook's unfinished deliveries (`$1` webhook id, `$2` now). Clearing the
/// lease means an attempt in flight cannot move a cancelled delivery when its outcome comes back.
pub const CANCEL_DELIVERIES: &str = "UPDATE deliveries
         SET status = 'cancelled', next_attempt_at = NULL, lease_token = NULL, updated_at = $2
         WHERE webhook_id = $1 AND status IN ('pending', 'retrying', 'delivering')";
/// Webhooks whose circuit is open (`open`) or half open (`half_open`) at `$1`.
pub const CIRCUIT_COUNTS: &str = "SELECT
         COUNT(CASE WHEN circuit_open_until > $1 THEN 1 END) AS open,
         COUNT(CASE WHEN circuit_open_until <= $1 THEN 1 END) AS half_open
         FROM webhooks WHERE circuit_open_until IS NOT NULL";
/// Bumped in the same transaction as every webhook write.
pub const BUMP_VERSION: &str = "UPDATE webhooks_version SET version = version + 1 WHERE id = 1";
pub const VERSION: &str = "SELECT version FROM webhooks_version WHERE id = 1";

/// Bumps the version counter; call it in the transaction of the write.
pub async fn bump_version<DB>(conn: &mut DB::Connection) -> sqlx::Result<()>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
{
    sqlx::query(BUMP_VERSION).execute(conn).await?;
    Ok(())
}

/// Inserts the webhook with `spec`, its spec as stored (sealed by [`crate::secrets::sealed`]),
/// and bumps the version.
pub async fn insert<DB>(conn: &mut DB::Connection, w: &Webhook, spec: String) -> sqlx::Result<()>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    String: for<'q> Encode<'q, DB> + Type<DB>,
    i64: for<'q> Encode<'q, DB> + Type<DB>,
    bool: for<'q> Encode<'q, DB> + Type<DB>,
    Option<String>: for<'q> Encode<'q, DB> + Type<DB>,
    Option<i64>: for<'q> Encode<'q, DB> + Type<DB>,
    Option<i32>: for<'q> Encode<'q, DB> + Type<DB>,
{
    let (max_in_flight, rate_limit) = limits(w);
    sqlx::query(INSERT)
        .bind(w.id.as_str())
        .bind(w.active)
        .bind(&w.disabled_reason)
        .bind(w.failing_since)
        .bind(spec)
        .bind(w.created_at)
        .bind(w.updated_at)
        .bind(max_in_flight)
        .bind(rate_limit)
        .execute(&mut *conn)
        .await?;
    bump_version(conn).await
}

/// The spec's limits as the `INTEGER` columns the claim reads.
fn limits(w: &Webhook) -> (Option<i32>, Option<i32>) {
    let int = |v: Option<u32>| v.map(|v| i32::try_from(v).unwrap_or(i32::MAX));
    (int(w.spec.max_in_flight), int(w.spec.rate_limit_per_second))
}

/// Writes `w` over the webhook, with `spec` as its stored spec (sealed by
/// [`crate::secrets::sealed`]), if it is still as `read` left it, and bumps the version.
/// `update_sql` sets the columns from `$1`..`$7` (as [`INSERT`] binds them) where the id is
/// `$1`, `updated_at` is `$8`, `active` is `$9` and `disabled_reason` is `$10` (nullable), and
/// sets `max_in_flight` from `$11` and `rate_limit` from `$12`.
/// Commit only on [`Written::Done`]: nothing was written otherwise.
pub async fn update<DB>(
    conn: &mut DB::Connection,
    update_sql: &str,
    w: &Webhook,
    spec: String,
    read: &Webhook,
) -> sqlx::Result<Written>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    String: for<'q> Encode<'q, DB> + Type<DB>,
    i64: for<'q> Encode<'q, DB> + Type<DB>,
    bool: for<'q> Encode<'q, DB> + Type<DB>,
    Option<String>: for<'q> Encode<'q, DB> + Type<DB>,
    Option<i64>: for<'q> Encode<'q, DB> + Type<DB>,
    DB::QueryResult: RowsAffected,
    Option<i32>: for<'q> Encode<'q, DB> + Type<DB>,
{
    let (max_in_flight, rate_limit) = limits(w);
    let done = sqlx::query(update_sql)
        .bind(w.id.as_str())
        .bind(w.active)
        .bind(&w.disabled_reason)
        .bind(w.failing_since)
        .bind(spec)
        .bind(w.created_at)
        .bind(w.updated_at)
        .bind(read.updated_at)
        .bind(read.active)
        .bind(&read.disabled_reason)
        .bind(max_in_flight)
        .bind(rate_limit)
        .execute(&mut *conn)
        .await?;
    let written = crate::written::<DB>(conn, done.rows_affected(), EXISTS, w.id.as_str()).await?;
    if written == Written::Done {
        bump_version(conn).await?;
    }
    Ok(written)
}

/// Deletes the webhook, cancels its unfinished deliveries ([`CANCEL_DELIVERIES`]) and bumps the
/// version; `false` (commit not needed) when there was no such webhook.
pub async fn delete<DB>(
    conn: &mut DB::Connection,
    id: &WebhookId,
    now_ms: i64,
) -> sqlx::Result<bool>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    i64: for<'q> Encode<'q, DB> + Type<DB>,
    DB::QueryResult: RowsAffected,
{
    let done = sqlx::query(DELETE)
        .bind(id.as_str())
        .execute(&mut *conn)
        .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query(CANCEL_DELIVERIES)
        .bind(id.as_str())
        .bind(now_ms)
        .execute(&mut *conn)
        .await?;
    bump_version(conn).await?;
    Ok(true)
}
