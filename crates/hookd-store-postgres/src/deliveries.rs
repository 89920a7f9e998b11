//! Deliveries: claiming due ones under a lease, reading and listing them, their attempts, and
//! making one due again by hand.

use hookd_core::delivery::{Attempt, Delivery};
use hookd_core::ids::{DeliveryId, WebhookId};
use hookd_core::store::{Claim, DeliveryFilter, Lane, Page, WebhookStats};
use hookd_store_sql::deliveries::{self as sql, lease_until};
use hookd_store_sql::stats;
use sqlx::{PgPool, Postgres, Row};

use crate::rows::{self, delivery_columns};

/// Leases the oldest due deliveries of a lane. `FOR UPDATE SKIP LOCKED` makes concurrent
/// claimers pass over rows another claim has locked, and a row a committed claim already took
/// is re-checked and no longer due: no delivery is handed to two claimers. A `delivering` row
/// whose lease ran out is due again: that is how a crashed worker's deliveries come back. The
/// lane predicates repeat the partial indexes' word for word.
macro_rules! claim_sql {
    ($lane:literal) => {
        concat!(
            "UPDATE deliveries
             SET status = 'delivering', next_attempt_at = $1, lease_token = $2, updated_at = $3
             WHERE id IN (
                 SELECT id FROM deliveries
                 WHERE status IN ('pending', 'retrying', 'delivering') AND ",
            $lane,
            " AND next_attempt_at <= $3
                 ORDER BY next_attempt_at
                 LIMIT $4
                 FOR UPDATE SKIP LOCKED)
             RETURNING ",
            delivery_columns!()
        )
    };
}
const CLAIM_FIRST: &str = claim_sql!("attempts = 0");
const CLAIM_RETRY: &str = claim_sql!("attempts > 0");

pub(crate) async fn claim(pool: &PgPool, claim: &Claim) -> sqlx::Result<Vec<Delivery>> {
    let sql = match claim.lane {
        Lane::First => CLAIM_FIRST,
        Lane::Retry => CLAIM_RETRY,
    };
    let mut claimed = sqlx::query(sql)
        .bind(lease_until(claim))
        .bind(&claim.lease_token)
        .bind(claim.now_ms)
        .bind(i64::from(claim.limit))
        .fetch_all(pool)
        .await?
        .iter()
        .map(rows::delivery)
        .collect::<sqlx::Result<Vec<_>>>()?;
    claimed.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(claimed)
}

pub(crate) async fn next_due_at(pool: &PgPool, lane: Lane) -> sqlx::Result<Option<i64>> {
    // One query per lane, each matching its lane's partial index.
    let sql = match lane {
        Lane::First => {
            "SELECT MIN(next_attempt_at) AS due FROM deliveries
             WHERE status IN ('pending', 'retrying', 'delivering') AND attempts = 0"
        }
        Lane::Retry => {
            "SELECT MIN(next_attempt_at) AS due FROM deliveries
             WHERE status IN ('pending', 'retrying', 'delivering') AND attempts > 0"
        }
    };
    sqlx::query(sql).fetch_one(pool).await?.try_get("due")
}

pub(crate) async fn get(pool: &PgPool, id: &DeliveryId) -> sqlx::Result<Option<Delivery>> {
    sqlx::query(sql::GET)
        .bind(id.as_str())
        .fetch_optional(pool)
        .await?
        .as_ref()
        .map(rows::delivery)
        .transpose()
}

/// Every delivery, for [`sql::list`] to filter.
const LIST_ALL: &str = concat!(
    "SELECT ",
    delivery_columns!(),
    " FROM deliveries WHERE TRUE"
);

pub(crate) async fn list(
    pool: &PgPool,
    filter: &DeliveryFilter,
    page: &Page,
) -> sqlx::Result<Vec<Delivery>> {
    sql::list::<Postgres>(LIST_ALL, filter, page)
        .build()
        .fetch_all(pool)
        .await?
        .iter()
        .map(rows::delivery)
        .collect()
}

pub(crate) async fn attempts(pool: &PgPool, id: &DeliveryId) -> sqlx::Result<Vec<Attempt>> {
    sqlx::query(sql::ATTEMPTS)
        .bind(id.as_str())
        .fetch_all(pool)
        .await?
        .iter()
        .map(rows::attempt)
        .collect()
}

pub(crate) async fn retry_now(
    pool: &PgPool,
    channel: &str,
    id: &DeliveryId,
    now_ms: i64,
) -> sqlx::Result<Option<bool>> {
    let mut tx = pool.begin().await?;
    let done = sqlx::query(sql::RETRY_NOW)
        .bind(id.as_str())
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() > 0 {
        crate::wake::notify(&mut tx, channel).await?;
        tx.commit().await?;
        return Ok(Some(true));
    }
    let exists = sqlx::query(sql::EXISTS)
        .bind(id.as_str())
        .fetch_optional(&mut *tx)
        .await?;
    Ok(exists.map(|_| false))
}

/// Unfinished deliveries, counted over the claim indexes.
pub(crate) async fn queue_depth(pool: &PgPool) -> sqlx::Result<u64> {
    let row = sqlx::query(sql::QUEUE_DEPTH).fetch_one(pool).await?;
    row.try_get::<i64, _>("n").map(|n| n.max(0) as u64)
}

/// Per-webhook statistics, in one statement.
pub(crate) async fn webhook_stats(
    pool: &PgPool,
    ids: &[WebhookId],
    since_ms: i64,
) -> sqlx::Result<Vec<WebhookStats>> {
    let ids_text: Vec<&str> = ids.iter().map(WebhookId::as_str).collect();
    let found = sqlx::query(&stats::query("= ANY($2)"))
        .bind(since_ms)
        .bind(ids_text)
        .fetch_all(pool)
        .await?
        .iter()
        .map(stats::stats)
        .collect::<sqlx::Result<Vec<_>>>()?;
    Ok(stats::per_id(ids, found))
}

/// Makes a webhook's failed deliveries since `since_ms` due again, and wakes workers.
pub(crate) async fn recover_failed(
    pool: &PgPool,
    channel: &str,
    webhook: &WebhookId,
    since_ms: i64,
    now_ms: i64,
) -> sqlx::Result<u64> {
    let mut tx = pool.begin().await?;
    let done = sqlx::query(sql::RECOVER_FAILED)
        .bind(webhook.as_str())
        .bind(since_ms)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() > 0 {
        crate::wake::notify(&mut tx, channel).await?;
    }
    tx.commit().await?;
    Ok(done.rows_affected())
}
