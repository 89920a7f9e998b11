//! Schedules: SQL text both dialects accept as is, the row mapping, and the writes run inside a
//! transaction the backend opens and commits.
//!
//! Firing is the one subtle write ([`fire`]): it moves `next_run_at` on only if it still holds
//! the value the scheduler read, and stores the occurrence's event and delivery in the same
//! transaction, so of several workers racing for an occurrence exactly one stores it. A unique
//! index on `deliveries (schedule_id, occurrence)` backs that up.

use hookd_core::ids::ScheduleId;
use hookd_core::schedule::Schedule;
use hookd_core::store::{Firing, Written};
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};

use crate::rows::{decode_err, encode_err};
use crate::RowsAffected;

/// Columns of `schedules`, in the order [`schedule`] reads them.
#[macro_export]
macro_rules! schedule_columns {
    () => {
        "id, active, webhook_id, spec, next_run_at, last_run_at, version, created_at, updated_at, \
         last_error"
    };
}

/// Binds the columns of [`schedule_columns!`] as `$1`..`$10`.
pub const INSERT: &str = concat!(
    "INSERT INTO schedules (",
    schedule_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
);
/// `$1`: id.
pub const GET: &str = concat!(
    "SELECT ",
    schedule_columns!(),
    " FROM schedules WHERE id = $1"
);
/// The first page: `$1` limit.
pub const LIST: &str = concat!(
    "SELECT ",
    schedule_columns!(),
    " FROM schedules ORDER BY id DESC LIMIT $1"
);
/// A later page: `$1` limit, `$2` the last id of the previous page.
pub const LIST_BEFORE: &str = concat!(
    "SELECT ",
    schedule_columns!(),
    " FROM schedules WHERE id < $2 ORDER BY id DESC LIMIT $1"
);
/// Active schedules due at `$1`, earliest first, at most `$2`.
pub const DUE: &str = concat!(
    "SELECT ",
    schedule_columns!(),
    " FROM schedules WHERE active AND next_run_at <= $1 ORDER BY next_run_at LIMIT $2"
);
/// The earliest `next_run_at` of the active schedules.
pub const NEXT_DUE: &str = "SELECT MIN(next_run_at) AS at FROM schedules WHERE active";
/// `$1`: id.
pub const DELETE: &str = "DELETE FROM schedules WHERE id = $1";
/// `$1`: id; a row when the schedule exists.
const EXISTS: &str = "SELECT 1 FROM schedules WHERE id = $1";
/// Overwrites what the API sets if the version is still `$7`; bumps the version.
const UPDATE: &str = "UPDATE schedules
         SET active = $2, webhook_id = $3, spec = $4, next_run_at = $5, updated_at = $6,
             last_error = $8, version = version + 1
         WHERE id = $1 AND version = $7";
/// A scheduled firing: moves `next_run_at` from `$2` to `$3` (`$4` now, `$5` the error).
const ADVANCE: &str = "UPDATE schedules
         SET next_run_at = $3, last_run_at = $4, last_error = $5, version = version + 1
         WHERE id = $1 AND active AND next_run_at = $2";
/// A run by hand: `next_run_at` stays (`$2` now, `$3` the error).
const RAN_BY_HAND: &str = "UPDATE schedules
         SET last_run_at = $2, last_error = $3, version = version + 1 WHERE id = $1";
const INSERT_EVENT: &str = "INSERT INTO events
         (id, event_type, model, data, occurred_at, idempotency_key, created_at)
         VALUES ($1, $2, $3, $4, $5, NULL, $6)";
const INSERT_DELIVERY: &str = "INSERT INTO deliveries
         (id, event_id, webhook_id, status, attempts, next_attempt_at, entry_index, lease_token,
          schedule_id, occurrence, message, created_at, updated_at)
         VALUES ($1, $2, $3, 'pending', 0, $4, NULL, NULL, $5, $6, $7, $4, $4)";

/// A row of [`schedule_columns!`].
pub fn schedule<R>(row: &R) -> sqlx::Result<Schedule>
where
    R: Row,
    for<'r> &'r str: Decode<'r, R::Database> + Type<R::Database>,
    String: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    i64: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    bool: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    &'static str: ColumnIndex<R>,
{
    let spec: &str = row.try_get("spec")?;
    Ok(Schedule {
        id: ScheduleId::from_trusted(row.try_get("id")?),
        active: row.try_get("active")?,
        spec: serde_json::from_str(spec).map_err(decode_err)?,
        next_run_at: row.try_get("next_run_at")?,
        last_run_at: row.try_get("last_run_at")?,
        last_error: row.try_get("last_error")?,
        version: row.try_get("version")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Inserts the schedule.
pub async fn insert<DB>(conn: &mut DB::Connection, s: &Schedule) -> sqlx::Result<()>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    String: for<'q> Encode<'q, DB> + Type<DB>,
    i64: for<'q> Encode<'q, DB> + Type<DB>,
    bool: for<'q> Encode<'q, DB> + Type<DB>,
    Option<i64>: for<'q> Encode<'q, DB> + Type<DB>,
    Option<String>: for<'q> Encode<'q, DB> + Type<DB>,
{
    let spec = serde_json::to_string(&s.spec).map_err(encode_err)?;
    sqlx::query(INSERT)
        .bind(s.id.as_str())
        .bind(s.active)
        .bind(s.spec.webhook_id.as_str())
        .bind(spec)
        .bind(s.next_run_at)
        .bind(s.last_run_at)
        .bind(s.version)
        .bind(s.created_at)
        .bind(s.updated_at)
        .bind(s.last_error.clone())
        .execute(conn)
        .await?;
    Ok(())
}

/// Writes `s` (active, spec, next run, `updated_at`) over the schedule if its version is still
/// `read_version`. Commit only on [`Written::Done`].
pub async fn update<DB>(
    conn: &mut DB::Connection,
    s: &Schedule,
    read_version: i64,
) -> sqlx::Result<Written>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    String: for<'q> Encode<'q, DB> + Type<DB>,
    i64: for<'q> Encode<'q, DB> + Type<DB>,
    bool: for<'q> Encode<'q, DB> + Type<DB>,
    Option<i64>: for<'q> Encode<'q, DB> + Type<DB>,
    Option<String>: for<'q> Encode<'q, DB> + Type<DB>,
    DB::QueryResult: RowsAffected,
{
    let spec = serde_json::to_string(&s.spec).map_err(encode_err)?;
    let done = sqlx::query(UPDATE)
        .bind(s.id.as_str())
        .bind(s.active)
        .bind(s.spec.webhook_id.as_str())
        .bind(spec)
        .bind(s.next_run_at)
        .bind(s.updated_at)
        .bind(read_version)
        .bind(s.last_error.clone())
        .execute(&mut *conn)
        .await?;
    crate::written::<DB>(conn, done.rows_affected(), EXISTS, s.id.as_str()).await
}

/// Stores one firing if the schedule is still as the scheduler read it (or, for a run by hand,
/// still exists): `false` and nothing written (roll back) otherwise.
pub async fn fire<DB>(conn: &mut DB::Connection, f: &Firing) -> sqlx::Result<bool>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    String: for<'q> Encode<'q, DB> + Type<DB>,
    i64: for<'q> Encode<'q, DB> + Type<DB>,
    Option<i64>: for<'q> Encode<'q, DB> + Type<DB>,
    Option<String>: for<'q> Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    DB::QueryResult: RowsAffected,
{
    let moved = match f.expected_next_run_at {
        Some(expected) => sqlx::query(ADVANCE)
            .bind(f.schedule_id.as_str())
            .bind(expected)
            .bind(f.next_run_at)
            .bind(f.now_ms)
            .bind(f.last_error.clone())
            .execute(&mut *conn)
            .await?
            .rows_affected(),
        None => sqlx::query(RAN_BY_HAND)
            .bind(f.schedule_id.as_str())
            .bind(f.now_ms)
            .bind(f.last_error.clone())
            .execute(&mut *conn)
            .await?
            .rows_affected(),
    };
    if moved == 0 {
        return Ok(false);
    }
    let data = serde_json::to_string(&f.event.data).map_err(encode_err)?;
    sqlx::query(INSERT_EVENT)
        .bind(f.event_id.as_str())
        .bind(f.event.event_type.as_str())
        .bind(f.event.model.as_deref())
        .bind(data)
        .bind(f.event.occurred_at)
        .bind(f.now_ms)
        .execute(&mut *conn)
        .await?;
    sqlx::query(INSERT_DELIVERY)
        .bind(f.delivery_id.as_str())
        .bind(f.event_id.as_str())
        .bind(f.webhook_id.as_str())
        .bind(f.now_ms)
        .bind(f.schedule_id.as_str())
        .bind(f.occurrence)
        .bind(f.message.clone())
        .execute(&mut *conn)
        .await?;
    Ok(true)
}
