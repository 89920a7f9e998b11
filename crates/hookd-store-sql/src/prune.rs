//! Retention, the part both dialects share: removing events left without deliveries, and
//! finished executions (they have no rows of their own to take along).

use sqlx::{Database, Encode, Executor, IntoArguments, Pool, Type};

use crate::RowsAffected;

/// Removes up to `$2` events created before `$1` that have no deliveries left.
pub const DELETE_ORPHAN_EVENTS: &str = "DELETE FROM events WHERE id IN (
                 SELECT id FROM events e WHERE created_at < $1
                 AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id)
                 LIMIT $2)";

/// Removes up to `$2` finished executions created before `$1`. The predicate repeats the
/// retention index's word for word (PostgreSQL's; SQLite's index states it as equalities and
/// has its own statement).
pub const DELETE_FINISHED_EXECUTIONS: &str = "DELETE FROM executions WHERE id IN (
                 SELECT id FROM executions
                 WHERE status IN ('succeeded', 'failed', 'timed_out', 'rejected')
                 AND created_at < $1
                 LIMIT $2)";

/// Removes the events created before `before_ms` that have no deliveries left, `batch` per
/// statement (each its own transaction); returns how many.
pub async fn orphan_events<DB>(pool: &Pool<DB>, before_ms: i64, batch: usize) -> sqlx::Result<u64>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    i64: for<'q> Encode<'q, DB> + Type<DB>,
    DB::QueryResult: RowsAffected,
{
    in_batches(pool, DELETE_ORPHAN_EVENTS, before_ms, batch).await
}

/// Removes the executions in a final state created before `before_ms` with `statement` (the
/// dialect's [`DELETE_FINISHED_EXECUTIONS`]), `batch` per statement (each its own
/// transaction); returns how many. Queued and running ones stay, however old.
pub async fn finished_executions<DB>(
    pool: &Pool<DB>,
    statement: &str,
    before_ms: i64,
    batch: usize,
) -> sqlx::Result<u64>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    i64: for<'q> Encode<'q, DB> + Type<DB>,
    DB::QueryResult: RowsAffected,
{
    in_batches(pool, statement, before_ms, batch).await
}

/// Runs `sql` (binding `$1` before, `$2` batch) until it removes fewer than `batch` rows.
async fn in_batches<DB>(
    pool: &Pool<DB>,
    sql: &str,
    before_ms: i64,
    batch: usize,
) -> sqlx::Result<u64>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    i64: for<'q> Encode<'q, DB> + Type<DB>,
    DB::QueryResult: RowsAffected,
{
    let mut removed = 0;
    loop {
        let done = sqlx::query(sql)
            .bind(before_ms)
            .bind(batch as i64)
            .execute(pool)
            .await?;
        removed += done.rows_affected();
        if done.rows_affected() < batch as u64 {
            return Ok(removed);
        }
    }
}
