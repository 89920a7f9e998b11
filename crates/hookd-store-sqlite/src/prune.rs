//! Retention: removes finished deliveries with their attempts, then events left without
//! deliveries, then finished executions, in small transactions
//! so the single writer lock is never held for long.

use sqlx::{Row, SqliteConnection, SqlitePool};

use crate::rows::placeholders;

/// Rows removed per transaction: big enough to make progress, small enough that workers and the
/// API never wait long for the write lock.
const PRUNE_BATCH: usize = 500;

/// Removes up to `$2` finished executions created before `$1`; the predicate repeats the
/// retention index's (`0008_predicates`) word for word.
const DELETE_FINISHED_EXECUTIONS: &str = "DELETE FROM executions WHERE id IN (
                 SELECT id FROM executions INDEXED BY executions_finished
                 WHERE (status = 'succeeded' OR status = 'failed' OR status = 'timed_out'
                        OR status = 'rejected')
                 AND created_at < $1
                 LIMIT $2)";

pub(crate) async fn prune(writer: &SqlitePool, before_ms: i64) -> sqlx::Result<u64> {
    let mut removed = 0;
    loop {
        let (rows, more) = prune_deliveries(writer, before_ms).await?;
        removed += rows;
        if !more {
            break;
        }
    }
    let events = hookd_store_sql::prune::orphan_events(writer, before_ms, PRUNE_BATCH).await?;
    let executions = hookd_store_sql::prune::finished_executions(
        writer,
        DELETE_FINISHED_EXECUTIONS,
        before_ms,
        PRUNE_BATCH,
    )
    .await?;
    Ok(removed + events + executions)
}

/// Removes one batch of finished deliveries and their attempts; `true` when there may be more.
async fn prune_deliveries(writer: &SqlitePool, before_ms: i64) -> sqlx::Result<(u64, bool)> {
    let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
    let ids: Vec<String> = sqlx::query(
        "SELECT id FROM deliveries INDEXED BY deliveries_finished
         WHERE (status = 'succeeded' OR status = 'failed' OR status = 'cancelled')
           AND created_at < $1
         LIMIT $2",
    )
    .bind(before_ms)
    .bind(PRUNE_BATCH as i64)
    .fetch_all(&mut *tx)
    .await?
    .iter()
    .map(|row| row.try_get("id"))
    .collect::<sqlx::Result<_>>()?;
    if ids.is_empty() {
        return Ok((0, false));
    }
    let attempts =
        delete_by_ids(&mut tx, "DELETE FROM attempts WHERE delivery_id IN", &ids).await?;
    let deliveries = delete_by_ids(&mut tx, "DELETE FROM deliveries WHERE id IN", &ids).await?;
    tx.commit().await?;
    Ok((attempts + deliveries, ids.len() == PRUNE_BATCH))
}

async fn delete_by_ids(
    conn: &mut SqliteConnection,
    sql: &str,
    ids: &[String],
) -> sqlx::Result<u64> {
    let sql = format!("{sql} ({})", placeholders(ids.len()));
    let mut query = sqlx::query(&sql).persistent(false);
    for id in ids {
        query = query.bind(id.as_str());
    }
    Ok(query.execute(conn).await?.rows_affected())
}
