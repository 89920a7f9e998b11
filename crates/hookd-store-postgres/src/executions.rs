//! Executions: the shared SQL of `hookd-store-sql`, and the claim with `FOR UPDATE SKIP
//! LOCKED`. Storing a queued execution notifies the workers' channel at commit.

use hookd_core::ids::{ExecutionId, InboundId};
use hookd_core::inbound::record::{Execution, ExecutionStatus};
use hookd_core::store::{ExecutionClaim, Page};
use hookd_store_sql::execution_columns;
use hookd_store_sql::executions::{self as sql, lease_until};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Postgres, Row};

/// Leases the oldest due executions. `FOR UPDATE SKIP LOCKED` makes concurrent claimers pass
/// over rows another claim has locked, and a row a committed claim already took is re-checked
/// and no longer due: no execution is handed to two claimers. A `running` row whose lease ran
/// out is due again: that is how a crashed worker's executions come back. The predicate
/// repeats the claim index's word for word.
const CLAIM: &str = concat!(
    "UPDATE executions
     SET status = 'running', next_attempt_at = $1, lease_token = $2, attempts = attempts + 1,
         updated_at = $3
     WHERE id IN (
         SELECT id FROM executions
         WHERE status IN ('queued', 'running') AND next_attempt_at <= $3
         ORDER BY next_attempt_at
         LIMIT $4
         FOR UPDATE SKIP LOCKED)
     RETURNING ",
    execution_columns!()
);

/// A row of [`execution_columns!`]; PostgreSQL's `INTEGER` columns decode as `i32`.
fn execution(row: &PgRow) -> sqlx::Result<Execution> {
    sql::execution::<_, i32>(row)
}

pub(crate) async fn insert(pool: &PgPool, channel: &str, batch: &[Execution]) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    for e in batch {
        sql::insert::<Postgres, i32>(&mut tx, e).await?;
    }
    if batch.iter().any(|e| e.status == ExecutionStatus::Queued) {
        crate::wake::notify(&mut tx, channel, crate::wake::Kind::Executions).await?;
    }
    tx.commit().await
}

pub(crate) async fn claim(pool: &PgPool, claim: &ExecutionClaim) -> sqlx::Result<Vec<Execution>> {
    let mut claimed = sqlx::query(CLAIM)
        .bind(lease_until(claim))
        .bind(&claim.lease_token)
        .bind(claim.now_ms)
        .bind(i64::from(claim.limit))
        .fetch_all(pool)
        .await?
        .iter()
        .map(execution)
        .collect::<sqlx::Result<Vec<_>>>()?;
    claimed.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(claimed)
}

pub(crate) async fn finish(pool: &PgPool, done: &[(Execution, String)]) -> sqlx::Result<Vec<bool>> {
    let mut tx = pool.begin().await?;
    let mut written = Vec::with_capacity(done.len());
    for (e, token) in done {
        written.push(sql::finish::<Postgres>(&mut tx, e, token).await?);
    }
    tx.commit().await?;
    Ok(written)
}

pub(crate) async fn count_unfinished(
    pool: &PgPool,
    hook: &InboundId,
    up_to: u64,
) -> sqlx::Result<u64> {
    let n: i64 = sqlx::query(sql::COUNT_UNFINISHED)
        .bind(hook.as_str())
        .bind(i64::try_from(up_to).unwrap_or(i64::MAX))
        .fetch_one(pool)
        .await?
        .try_get("n")?;
    Ok(u64::try_from(n).unwrap_or(0))
}

pub(crate) async fn next_due(pool: &PgPool) -> sqlx::Result<Option<i64>> {
    sqlx::query(sql::NEXT_DUE)
        .fetch_one(pool)
        .await?
        .try_get("at")
}

pub(crate) async fn get(pool: &PgPool, id: &ExecutionId) -> sqlx::Result<Option<Execution>> {
    sqlx::query(sql::GET)
        .bind(id.as_str())
        .fetch_optional(pool)
        .await?
        .as_ref()
        .map(execution)
        .transpose()
}

pub(crate) async fn list(
    pool: &PgPool,
    hook: &InboundId,
    page: &Page,
) -> sqlx::Result<Vec<Execution>> {
    sql::list::<Postgres>(hook, page)
        .fetch_all(pool)
        .await?
        .iter()
        .map(execution)
        .collect()
}
