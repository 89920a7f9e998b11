//! Executions: SQL text both dialects accept as is, the row mapping and the lease arithmetic of
//! a claim. The claim itself locks rows in dialect syntax, so it stays in each backend; so does
//! waking workers after a queued one is stored.
//!
//! The lease token is the store's: it never leaves in an [`Execution`], and finishing writes only
//! while the row still holds the token of the claim that took it.

use std::fmt::Display;

use hookd_core::ids::{ExecutionId, InboundId};
use hookd_core::inbound::record::{Execution, ExecutionStatus};
use hookd_core::inbound::spec::Mode;
use hookd_core::store::{ExecutionClaim, Page};
use sqlx::query::Query;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};

use crate::rows::{decode_err, encode_err};
use crate::RowsAffected;

/// Columns of `executions` that make an [`Execution`] (the lease token stays inside the store).
#[macro_export]
macro_rules! execution_columns {
    () => {
        "id, hook_id, mode, status, record, attempts, next_attempt_at, created_at, updated_at"
    };
}

/// Binds the columns of [`execution_columns!`] as `$1`..`$9`, with no lease.
pub const INSERT: &str = concat!(
    "INSERT INTO executions (",
    execution_columns!(),
    ", lease_token) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL)"
);
/// `$1`: id.
pub const GET: &str = concat!(
    "SELECT ",
    execution_columns!(),
    " FROM executions WHERE id = $1"
);
/// A hook's first page: `$1` hook id, `$2` limit.
const LIST: &str = concat!(
    "SELECT ",
    execution_columns!(),
    " FROM executions WHERE hook_id = $1 ORDER BY id DESC LIMIT $2"
);
/// A hook's later page: `$1` hook id, `$2` limit, `$3` the last id of the previous page.
const LIST_BEFORE: &str = concat!(
    "SELECT ",
    execution_columns!(),
    " FROM executions WHERE hook_id = $1 AND id < $3 ORDER BY id DESC LIMIT $2"
);
/// How many of hook `$1`'s executions are unfinished, counting no further than `$2`, over the
/// `executions_unfinished` index (whose predicate this repeats word for word).
pub const COUNT_UNFINISHED: &str = "SELECT COUNT(*) AS n FROM (
         SELECT 1 FROM executions
         WHERE hook_id = $1 AND status IN ('queued', 'running')
         LIMIT $2) AS unfinished";
/// The earliest due time or lease end of unfinished executions, over the claim index.
pub const NEXT_DUE: &str = "SELECT MIN(next_attempt_at) AS at FROM executions
         WHERE status IN ('queued', 'running')";
/// Writes the final state (`$2` status, `$3` record, `$4` now) of execution `$1` if it is
/// still leased under `$5`.
pub const FINISH: &str = "UPDATE executions
         SET status = $2, record = $3, next_attempt_at = NULL, lease_token = NULL, updated_at = $4
         WHERE id = $1 AND lease_token = $5";
/// How `mode` is stored.
pub fn mode_str(mode: Mode) -> &'static str {
    match mode {
        Mode::Sync => "sync",
        Mode::Async => "async",
    }
}

fn parse_mode(s: &str) -> Option<Mode> {
    [Mode::Sync, Mode::Async]
        .into_iter()
        .find(|m| mode_str(*m) == s)
}

/// When the lease a claim takes runs out.
pub fn lease_until(claim: &ExecutionClaim) -> i64 {
    let lease_ms = i64::try_from(claim.lease.as_millis()).unwrap_or(i64::MAX);
    claim.now_ms.saturating_add(lease_ms)
}

/// A row of [`execution_columns!`]; `N` is the backend's type for `attempts`.
pub fn execution<R, N>(row: &R) -> sqlx::Result<Execution>
where
    R: Row,
    N: for<'r> Decode<'r, R::Database> + Type<R::Database> + Copy + Display,
    u32: TryFrom<N>,
    for<'r> &'r str: Decode<'r, R::Database> + Type<R::Database>,
    String: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    i64: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    &'static str: ColumnIndex<R>,
{
    let mode: &str = row.try_get("mode")?;
    let status: &str = row.try_get("status")?;
    let record: &str = row.try_get("record")?;
    let attempts: N = row.try_get("attempts")?;
    Ok(Execution {
        id: ExecutionId::from_trusted(row.try_get("id")?),
        hook_id: InboundId::from_trusted(row.try_get("hook_id")?),
        mode: parse_mode(mode).ok_or_else(|| decode_err(format!("unknown mode {mode:?}")))?,
        status: ExecutionStatus::parse(status)
            .ok_or_else(|| decode_err(format!("unknown execution status {status:?}")))?,
        record: serde_json::from_str(record).map_err(decode_err)?,
        attempts: u32::try_from(attempts)
            .map_err(|_| decode_err(format!("attempts out of range: {attempts}")))?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Inserts the execution, unleased; `N` is the backend's type for `attempts`.
pub async fn insert<DB, N>(conn: &mut DB::Connection, e: &Execution) -> sqlx::Result<()>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    String: for<'q> Encode<'q, DB> + Type<DB>,
    i64: for<'q> Encode<'q, DB> + Type<DB>,
    Option<i64>: for<'q> Encode<'q, DB> + Type<DB>,
    N: TryFrom<u32> + for<'q> Encode<'q, DB> + Type<DB> + Send + 'static,
{
    let record = serde_json::to_string(&e.record).map_err(encode_err)?;
    let attempts = N::try_from(e.attempts).map_err(|_| {
        sqlx::Error::Encode(format!("attempts out of range: {}", e.attempts).into())
    })?;
    sqlx::query(INSERT)
        .bind(e.id.as_str())
        .bind(e.hook_id.as_str())
        .bind(mode_str(e.mode))
        .bind(e.status.as_str())
        .bind(record)
        .bind(attempts)
        .bind(e.next_attempt_at)
        .bind(e.created_at)
        .bind(e.updated_at)
        .execute(conn)
        .await?;
    Ok(())
}

/// Writes a claimed execution's status and record if it is still leased under `lease_token`;
/// `false` when nothing was written.
pub async fn finish<DB>(
    conn: &mut DB::Connection,
    e: &Execution,
    lease_token: &str,
) -> sqlx::Result<bool>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    String: for<'q> Encode<'q, DB> + Type<DB>,
    i64: for<'q> Encode<'q, DB> + Type<DB>,
    DB::QueryResult: RowsAffected,
{
    let record = serde_json::to_string(&e.record).map_err(encode_err)?;
    let done = sqlx::query(FINISH)
        .bind(e.id.as_str())
        .bind(e.status.as_str())
        .bind(record)
        .bind(e.updated_at)
        .bind(lease_token)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// The query for one page of `hook`'s executions, newest first.
pub fn list<'q, DB>(hook: &'q InboundId, page: &'q Page) -> Query<'q, DB, DB::Arguments<'q>>
where
    DB: Database,
    i64: Encode<'q, DB> + Type<DB>,
    &'q str: Encode<'q, DB> + Type<DB>,
{
    let limit = i64::from(page.limit);
    match &page.before {
        None => sqlx::query(LIST).bind(hook.as_str()).bind(limit),
        Some(before) => sqlx::query(LIST_BEFORE)
            .bind(hook.as_str())
            .bind(limit)
            .bind(before.as_str()),
    }
}
