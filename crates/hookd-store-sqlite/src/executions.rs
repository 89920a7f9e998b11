//! Executions: the shared SQL of `hookd-store-sql`, and the claim, one `UPDATE … RETURNING` on
//! the single writer. A queued execution reaches other processes' workers through the file's
//! change counter, like any other write.

use hookd_core::ids::{ExecutionId, InboundId};
use hookd_core::inbound::record::Execution;
use hookd_core::store::{ExecutionClaim, Page};
use hookd_store_sql::execution_columns;
use hookd_store_sql::executions::{self as sql, lease_until};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, SqlitePool};

/// Leases the oldest due executions. One statement, so it is atomic under SQLite's single
/// writer: two claimers (threads or processes) never get the same execution. A `running` row
/// whose lease ran out is due again: that is how a crashed worker's executions come back.
/// `INDEXED BY` names the claim's partial index, whose predicate the query repeats word for
/// word (see the deliveries' claim for why).
const CLAIM: &str = concat!(
    "UPDATE executions
     SET status = 'running', next_attempt_at = $1, lease_token = $2, attempts = attempts + 1,
         updated_at = $3
     WHERE id IN (
         SELECT id FROM executions INDEXED BY executions_due
         WHERE status IN ('queued', 'running') AND next_attempt_at <= $3
         ORDER BY next_attempt_at
         LIMIT $4)
     RETURNING ",
    execution_columns!()
);

/// A row of [`execution_columns!`]; SQLite's `INTEGER` columns decode as `i64`.
fn execution(row: &SqliteRow) -> sqlx::Result<Execution> {
    sql::execution::<_, i64>(row)
}

pub(crate) async fn insert(writer: &SqlitePool, batch: &[Execution]) -> sqlx::Result<()> {
    let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
    for e in batch {
        sql::insert::<Sqlite, i64>(&mut tx, e).await?;
    }
    tx.commit().await
}

pub(crate) async fn claim(
    writer: &SqlitePool,
    claim: &ExecutionClaim,
) -> sqlx::Result<Vec<Execution>> {
    let mut claimed = sqlx::query(CLAIM)
        .bind(lease_until(claim))
        .bind(&claim.lease_token)
        .bind(claim.now_ms)
        .bind(i64::from(claim.limit))
        .fetch_all(writer)
        .await?
        .iter()
        .map(execution)
        .collect::<sqlx::Result<Vec<_>>>()?;
    claimed.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(claimed)
}

pub(crate) async fn finish(
    writer: &SqlitePool,
    done: &[(Execution, String)],
) -> sqlx::Result<Vec<bool>> {
    let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
    let mut written = Vec::with_capacity(done.len());
    for (e, token) in done {
        written.push(sql::finish::<Sqlite>(&mut tx, e, token).await?);
    }
    tx.commit().await?;
    Ok(written)
}

pub(crate) async fn count_unfinished(
    reader: &SqlitePool,
    hook: &InboundId,
    up_to: u64,
) -> sqlx::Result<u64> {
    let n: i64 = sqlx::query(sql::COUNT_UNFINISHED)
        .bind(hook.as_str())
        .bind(i64::try_from(up_to).unwrap_or(i64::MAX))
        .fetch_one(reader)
        .await?
        .try_get("n")?;
    Ok(u64::try_from(n).unwrap_or(0))
}

pub(crate) async fn next_due(reader: &SqlitePool) -> sqlx::Result<Option<i64>> {
    sqlx::query(sql::NEXT_DUE)
        .fetch_one(reader)
        .await?
        .try_get("at")
}

pub(crate) async fn get(reader: &SqlitePool, id: &ExecutionId) -> sqlx::Result<Option<Execution>> {
    sqlx::query(sql::GET)
        .bind(id.as_str())
        .fetch_optional(reader)
        .await?
        .as_ref()
        .map(execution)
        .transpose()
}

pub(crate) async fn list(
    reader: &SqlitePool,
    hook: &InboundId,
    page: &Page,
) -> sqlx::Result<Vec<Execution>> {
    sql::list::<Sqlite>(hook, page)
        .fetch_all(reader)
        .await?
        .iter()
        .map(execution)
        .collect()
}
