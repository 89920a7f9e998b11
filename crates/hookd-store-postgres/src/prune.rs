//! Retention: removes finished deliveries with their attempts, then events left without
//! deliveries, then finished executions, in small transactions
//! so no sweep holds many row locks for long. The deletes by a list of ids are planned with
//! their values each time (see "Plans" in the crate's documentation).

use sqlx::{PgPool, Row};

/// Rows removed per transaction: big enough to make progress, small enough to keep each
/// transaction short.
const PRUNE_BATCH: usize = 500;

pub(crate) async fn prune(pool: &PgPool, before_ms: i64) -> sqlx::Result<u64> {
    let mut removed = 0;
    loop {
        let (rows, more) = prune_deliveries(pool, before_ms).await?;
        removed += rows;
        if !more {
            break;
        }
    }
    let events = hookd_store_sql::prune::orphan_events(pool, before_ms, PRUNE_BATCH).await?;
    let executions = hookd_store_sql::prune::finished_executions(
        pool,
        hookd_store_sql::prune::DELETE_FINISHED_EXECUTIONS,
        before_ms,
        PRUNE_BATCH,
    )
    .await?;
    Ok(removed + events + executions)
}

/// Removes one batch of finished deliveries and their attempts; `true` when there may be more.
/// The delete re-checks the status, so a delivery retried by hand meanwhile stays, with its
/// attempts.
async fn prune_deliveries(pool: &PgPool, before_ms: i64) -> sqlx::Result<(u64, bool)> {
    let mut tx = pool.begin().await?;
    let candidates = sqlx::query(
        "SELECT id FROM deliveries
         WHERE status IN ('succeeded', 'failed', 'cancelled') AND created_at < $1
         LIMIT $2",
    )
    .bind(before_ms)
    .bind(PRUNE_BATCH as i64)
    .fetch_all(&mut *tx)
    .await?;
    if candidates.is_empty() {
        return Ok((0, false));
    }
    let ids: Vec<String> = candidates
        .iter()
        .map(|r| r.try_get("id"))
        .collect::<sqlx::Result<_>>()?;
    let deleted: Vec<String> = sqlx::query(
        "DELETE FROM deliveries
         WHERE id = ANY($1) AND status IN ('succeeded', 'failed', 'cancelled')
         RETURNING id",
    )
    .persistent(false)
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await?
    .iter()
    .map(|r| r.try_get("id"))
    .collect::<sqlx::Result<_>>()?;
    let attempts = sqlx::query("DELETE FROM attempts WHERE delivery_id = ANY($1)")
        .persistent(false)
        .bind(&deleted)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok((attempts + deleted.len() as u64, ids.len() == PRUNE_BATCH))
}
