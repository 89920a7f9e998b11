//! Deliveries: claiming due ones under a lease, reading and listing them, their attempts, and
//! making one due again by hand.

use hookd_core::delivery::{Attempt, Delivery};
use hookd_core::ids::{DeliveryId, WebhookId};
use hookd_core::store::{Claim, DeliveryFilter, Lane, Page, WebhookStats};
use hookd_store_sql::deliveries::{self as sql, lease_until};
use hookd_store_sql::stats;
use sqlx::{Row, Sqlite, SqlitePool};

use crate::rows::{self, delivery_columns, IDS_PER_QUERY};

/// Leases the oldest due deliveries of a lane. One statement, so it is atomic under SQLite's
/// single writer: two claimers (threads or processes) never get the same delivery. A
/// `delivering` row whose lease ran out is due again: that is how a crashed worker's deliveries
/// come back. The lane predicates repeat the partial indexes' word for word.
///
/// `INDEXED BY` names the lane's partial index: without statistics SQLite's planner prefers the
/// status index (an equality looks more selective than a range), which would make every claim
/// read and sort all unfinished rows. With it, a claim is a range scan that stops after `limit`
/// rows, and a missing index is an error rather than a silent slowdown.
macro_rules! claim_sql {
    ($index:literal, $lane:literal) => {
        concat!(
            "UPDATE deliveries
             SET status = 'delivering', next_attempt_at = $1, lease_token = $2, updated_at = $3
             WHERE id IN (
                 SELECT id FROM deliveries INDEXED BY ",
            $index,
            "
                 WHERE status IN ('pending', 'retrying', 'delivering') AND ",
            $lane,
            " AND next_attempt_at <= $3
                 ORDER BY next_attempt_at
                 LIMIT $4)
             RETURNING ",
            delivery_columns!()
        )
    };
}
const CLAIM_FIRST: &str = claim_sql!("deliveries_due_first", "attempts = 0");
const CLAIM_RETRY: &str = claim_sql!("deliveries_due_retry", "attempts > 0");

pub(crate) async fn claim(writer: &SqlitePool, claim: &Claim) -> sqlx::Result<Vec<Delivery>> {
    let sql = match claim.lane {
        Lane::First => CLAIM_FIRST,
        Lane::Retry => CLAIM_RETRY,
    };
    let mut claimed = sqlx::query(sql)
        .bind(lease_until(claim))
        .bind(&claim.lease_token)
        .bind(claim.now_ms)
        .bind(i64::from(claim.limit))
        .fetch_all(writer)
        .await?
        .iter()
        .map(rows::delivery)
        .collect::<sqlx::Result<Vec<_>>>()?;
    claimed.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(claimed)
}

pub(crate) async fn next_due_at(reader: &SqlitePool, lane: Lane) -> sqlx::Result<Option<i64>> {
    // Each lane reads one entry of its own index; see `claim_sql!` for `INDEXED BY`.
    let sql = match lane {
        Lane::First => {
            "SELECT MIN(next_attempt_at) AS due FROM deliveries INDEXED BY deliveries_due_first
             WHERE status IN ('pending', 'retrying', 'delivering') AND attempts = 0"
        }
        Lane::Retry => {
            "SELECT MIN(next_attempt_at) AS due FROM deliveries INDEXED BY deliveries_due_retry
             WHERE status IN ('pending', 'retrying', 'delivering') AND attempts > 0"
        }
    };
    sqlx::query(sql).fetch_one(reader).await?.try_get("due")
}

pub(crate) async fn get(reader: &SqlitePool, id: &DeliveryId) -> sqlx::Result<Option<Delivery>> {
    sqlx::query(sql::GET)
        .bind(id.as_str())
        .fetch_optional(reader)
        .await?
        .as_ref()
        .map(rows::delivery)
        .transpose()
}

/// Every delivery, for [`sql::list`] to filter.
const LIST_ALL: &str = concat!(
    "SELECT ",
    delivery_columns!(),
    " FROM deliveries WHERE 1 = 1"
);

pub(crate) async fn list(
    reader: &SqlitePool,
    filter: &DeliveryFilter,
    page: &Page,
) -> sqlx::Result<Vec<Delivery>> {
    sql::list::<Sqlite>(LIST_ALL, filter, page)
        .build()
        .fetch_all(reader)
        .await?
        .iter()
        .map(rows::delivery)
        .collect()
}

pub(crate) async fn attempts(reader: &SqlitePool, id: &DeliveryId) -> sqlx::Result<Vec<Attempt>> {
    sqlx::query(sql::ATTEMPTS)
        .bind(id.as_str())
        .fetch_all(reader)
        .await?
        .iter()
        .map(rows::attempt)
        .collect()
}

pub(crate) async fn retry_now(
    writer: &SqlitePool,
    id: &DeliveryId,
    now_ms: i64,
) -> sqlx::Result<Option<bool>> {
    let done = sqlx::query(sql::RETRY_NOW)
        .bind(id.as_str())
        .bind(now_ms)
        .execute(writer)
        .await?;
    if done.rows_affected() > 0 {
        return Ok(Some(true));
    }
    let exists = sqlx::query(sql::EXISTS)
        .bind(id.as_str())
        .fetch_optional(writer)
        .await?;
    Ok(exists.map(|_| false))
}

/// Unfinished deliveries, counted over the claim indexes.
pub(crate) async fn queue_depth(pool: &SqlitePool) -> sqlx::Result<u64> {
    let row = sqlx::query(sql::QUEUE_DEPTH).fetch_one(pool).await?;
    row.try_get::<i64, _>("n").map(|n| n.max(0) as u64)
}

/// Per-webhook statistics, `IDS_PER_QUERY` webhooks per statement. The ids are numbered
/// `$2`.. after the window's `$1`: sqlx numbers bare `?` apart from `$N` parameters.
pub(crate) async fn webhook_stats(
    reader: &SqlitePool,
    ids: &[WebhookId],
    since_ms: i64,
) -> sqlx::Result<Vec<WebhookStats>> {
    let mut found = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(IDS_PER_QUERY) {
        let params: Vec<String> = (2..chunk.len() + 2).map(|n| format!("${n}")).collect();
        let sql = stats::query(&format!("IN ({})", params.join(", ")));
        let mut query = sqlx::query(&sql).persistent(false).bind(since_ms);
        for id in chunk {
            query = query.bind(id.as_str());
        }
        for row in query.fetch_all(reader).await? {
            found.push(stats::stats(&row)?);
        }
    }
    Ok(stats::per_id(ids, found))
}

/// Makes a webhook's failed deliveries since `since_ms` due again.
pub(crate) async fn recover_failed(
    writer: &SqlitePool,
    webhook: &WebhookId,
    since_ms: i64,
    now_ms: i64,
) -> sqlx::Result<u64> {
    let done = sqlx::query(sql::RECOVER_FAILED)
        .bind(webhook.as_str())
        .bind(since_ms)
        .bind(now_ms)
        .execute(writer)
        .await?;
    Ok(done.rows_affected())
}
