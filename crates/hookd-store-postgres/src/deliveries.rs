//! Deliveries: claiming due ones under a lease, reading and listing them, their attempts, and
//! making one due again by hand.

use hookd_core::delivery::{Attempt, Delivery};
use hookd_core::ids::{DeliveryId, WebhookId};
use hookd_core::store::{Claim, DeliveryFilter, Lane, Page};
use sqlx::{PgPool, Postgres, QueryBuilder, Row};

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
    let lease_ms = i64::try_from(claim.lease.as_millis()).unwrap_or(i64::MAX);
    let mut claimed = sqlx::query(sql)
        .bind(claim.now_ms.saturating_add(lease_ms))
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
    sqlx::query(concat!(
        "SELECT ",
        delivery_columns!(),
        " FROM deliveries WHERE id = $1"
    ))
    .bind(id.as_str())
    .fetch_optional(pool)
    .await?
    .as_ref()
    .map(rows::delivery)
    .transpose()
}

pub(crate) async fn list(
    pool: &PgPool,
    filter: &DeliveryFilter,
    page: &Page,
) -> sqlx::Result<Vec<Delivery>> {
    let mut q = QueryBuilder::<Postgres>::new(concat!(
        "SELECT ",
        delivery_columns!(),
        " FROM deliveries WHERE TRUE"
    ));
    if let Some(webhook_id) = &filter.webhook_id {
        q.push(" AND webhook_id = ").push_bind(webhook_id.as_str());
    }
    if let Some(event_id) = &filter.event_id {
        q.push(" AND event_id = ").push_bind(event_id.as_str());
    }
    if let Some(status) = filter.status {
        q.push(" AND status = ").push_bind(status.as_str());
    }
    if let Some(before) = &page.before {
        q.push(" AND id < ").push_bind(before.as_str());
    }
    q.push(" ORDER BY id DESC LIMIT ")
        .push_bind(i64::from(page.limit));
    q.build()
        .fetch_all(pool)
        .await?
        .iter()
        .map(rows::delivery)
        .collect()
}

pub(crate) async fn attempts(pool: &PgPool, id: &DeliveryId) -> sqlx::Result<Vec<Attempt>> {
    sqlx::query("SELECT record FROM attempts WHERE delivery_id = $1 ORDER BY started_at, id")
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
    let done = sqlx::query(
        "UPDATE deliveries
         SET status = CASE WHEN attempts = 0 THEN 'pending' ELSE 'retrying' END,
             next_attempt_at = $2, lease_token = NULL, updated_at = $2
         WHERE id = $1 AND status <> 'delivering'",
    )
    .bind(id.as_str())
    .bind(now_ms)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() > 0 {
        crate::wake::notify(&mut tx, channel).await?;
        tx.commit().await?;
        return Ok(Some(true));
    }
    let exists = sqlx::query("SELECT 1 FROM deliveries WHERE id = $1")
        .bind(id.as_str())
        .fetch_optional(&mut *tx)
        .await?;
    Ok(exists.map(|_| false))
}

/// Unfinished deliveries, counted over the claim indexes.
pub(crate) async fn queue_depth(pool: &PgPool) -> sqlx::Result<u64> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM deliveries WHERE status IN ('pending', 'retrying', 'delivering')",
    )
    .fetch_one(pool)
    .await?;
    row.try_get::<i64, _>("n").map(|n| n.max(0) as u64)
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
    let done = sqlx::query(
        "UPDATE deliveries
         SET status = 'retrying', next_attempt_at = $3, lease_token = NULL, updated_at = $3
         WHERE webhook_id = $1 AND status = 'failed' AND created_at >= $2",
    )
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
