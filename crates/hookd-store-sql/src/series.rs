//! Attempts over time ([`hookd_core::series`]): one statement groups the window's attempts by
//! bucket and latency, read by a range scan of the window's entries alone in an index on the
//! start time that covers the statement, so the cost follows the window, not what retention
//! keeps. PostgreSQL has `attempts (started_at, succeeded, latency_ms)` and, for one webhook,
//! `attempts (webhook_id, started_at, succeeded, latency_ms)`; SQLite, whose one writer pays for
//! every index an attempt updates, has one, `attempts (started_at, webhook_id, succeeded,
//! latency_ms)`, and picks one webhook's attempts out of the window's. Grouping by latency keeps the answer small (a bucket's distinct
//! latencies in milliseconds) while the percentiles stay exact.

use hookd_core::series::{self, AttemptBucket, AttemptGroup, AttemptWindow};
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};

use crate::rows::decode_err;

/// `$1` the window's start, `$2` the bucket length, `$3` its end (all ms). An attempt written
/// without the columns (by an older hookd still running during an upgrade) counts as failed,
/// without a latency, and only in the window of all webhooks.
const GROUPS: &str = "SELECT (started_at - $1) / $2 AS bucket, latency_ms,
                             COUNT(*) AS attempts, COALESCE(SUM(succeeded), 0) AS succeeded
                      FROM attempts
                      WHERE started_at >= $1 AND started_at < $3";

/// Every webhook's attempts in the window.
pub fn query_all() -> String {
    format!("{GROUPS} GROUP BY bucket, latency_ms")
}

/// One webhook's (`$4`).
pub fn query_one_webhook() -> String {
    format!("{GROUPS} AND webhook_id = $4 GROUP BY bucket, latency_ms")
}

/// Runs [`query_all`] or [`query_one_webhook`] as the window asks, and makes its buckets.
pub async fn attempt_series<DB>(
    conn: &mut DB::Connection,
    window: &AttemptWindow,
) -> sqlx::Result<Vec<AttemptBucket>>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    i64: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    Option<i64>: for<'r> Decode<'r, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    &'static str: ColumnIndex<DB::Row>,
{
    let sql = match window.webhook_id {
        None => query_all(),
        Some(_) => query_one_webhook(),
    };
    let mut query = sqlx::query::<DB>(&sql)
        .bind(window.from_ms)
        .bind(window.bucket_ms)
        .bind(window.to_ms());
    if let Some(id) = &window.webhook_id {
        query = query.bind(id.as_str());
    }
    let groups = query
        .fetch_all(conn)
        .await?
        .iter()
        .map(group)
        .collect::<sqlx::Result<Vec<_>>>()?;
    Ok(series::buckets(window, &groups))
}

fn group<R>(row: &R) -> sqlx::Result<AttemptGroup>
where
    R: Row,
    i64: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    Option<i64>: for<'r> Decode<'r, R::Database>,
    &'static str: ColumnIndex<R>,
{
    let count = |column: &'static str| -> sqlx::Result<u64> {
        let n: i64 = row.try_get(column)?;
        u64::try_from(n).map_err(|_| decode_err(format!("{column} out of range: {n}")))
    };
    Ok(AttemptGroup {
        bucket: row.try_get("bucket")?,
        latency_ms: row.try_get("latency_ms")?,
        attempts: count("attempts")?,
        succeeded: count("succeeded")?,
    })
}
