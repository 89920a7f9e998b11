//! Deliveries: claiming due ones under a lease, fairly across webhooks, reading and listing them, their attempts, and
//! making one due again by hand.

use hookd_core::delivery::{Attempt, Delivery};
use hookd_core::flow::{self, Candidate};
use hookd_core::ids::{DeliveryId, WebhookId};
use hookd_core::store::{Claim, Claimed, DeliveryFilter, Lane, Page, WebhookStats};
use hookd_store_sql::deliveries::{self as sql, lease_until};
use hookd_store_sql::stats;
use sqlx::{PgPool, Postgres, Row};

use crate::rows::{self, delivery_columns};

/// The lane's candidates: every webhook with unfinished deliveries in it, its earliest due
/// time, its requests in flight and its limits, from `hookd_claim_candidates` (migration 0005;
/// a skip scan, one index step per webhook). `$1` first lane?, `$2` now.
const CANDIDATES: &str = "SELECT * FROM hookd_claim_candidates($1, $2)";

/// Leases what the plan grants, in one statement: `hookd_claim_deliveries` (migration 0004)
/// takes the claim lock, cuts each planned count to what the webhook allows now, leases round
/// robin and moves the rate limiters on. `$1` first lane?, `$2` now, `$3` lease end, `$4` lease
/// token, `$5` the claim's limit, `$6`/`$7` webhook ids and planned counts, `$8` the default
/// cap, `$9` the rate limiter's tolerance (µs).
const CLAIM: &str =
    "SELECT * FROM hookd_claim_deliveries($1, $2, $3, $4, $5, $6::text[], $7::bigint[], $8, $9)";

/// How soon a claim that found due rows locked by another transaction looks again.
const RETRY_SOON_MS: i64 = 10;

/// A fair claim ([`hookd_store_sql::claims`]). It first plans without the lock or a
/// transaction: an idle lane, or one whose webhooks are all at their limits, costs that one
/// statement. Otherwise one more statement claims: under a transaction-scoped advisory lock
/// (claims on this installation take turns), it re-applies every limit with the state read
/// after the lock, so the cap, the circuit's single probe and the rate hold across workers.
/// `FOR UPDATE SKIP LOCKED` passes over rows another transaction is writing (a late outcome of
/// an expired lease). A `delivering` row whose lease ran out is due again: that is how a
/// crashed worker's deliveries come back.
pub(crate) async fn claim(pool: &PgPool, claim: &Claim) -> sqlx::Result<Claimed> {
    let read = candidates(pool, claim).await?;
    let plan = claim.plan(&read);
    if plan.grants.is_empty() {
        return Ok(Claimed::idle(&plan));
    }
    let claimed = lease(pool, claim, &plan).await?;
    if claimed.is_empty() {
        // Another claim took the room between the plan and the lock: plan again, so the lane
        // sleeps until the right time; if the plan still grants something, the rows were being
        // written by another transaction and passed over: look again shortly.
        let again = claim.plan(&candidates(pool, claim).await?);
        let mut idle = Claimed::idle(&again);
        if !again.grants.is_empty() {
            idle.next_at = Some(claim.now_ms + RETRY_SOON_MS);
        }
        return Ok(idle);
    }
    Ok(Claimed {
        deliveries: claimed,
        next_at: plan.next_at,
        waits_for_a_slot: plan.waits_for_a_slot,
        candidates: read,
    })
}

/// Leases what `plan` grants (`hookd_claim_deliveries`); the deliveries in id order.
async fn lease<'e, E>(db: E, claim: &Claim, plan: &flow::Plan) -> sqlx::Result<Vec<Delivery>>
where
    E: sqlx::Executor<'e, Database = Postgres>,
{
    let ids: Vec<&str> = plan.grants.iter().map(|g| g.webhook_id.as_str()).collect();
    let counts: Vec<i64> = plan.grants.iter().map(|g| i64::from(g.count)).collect();
    let mut claimed = sqlx::query(CLAIM)
        .bind(claim.lane == Lane::First)
        .bind(claim.now_ms)
        .bind(lease_until(claim))
        .bind(&claim.lease_token)
        .bind(i64::from(claim.limit))
        .bind(ids)
        .bind(counts)
        .bind(i64::from(claim.default_max_in_flight))
        .bind(flow::RATE_TOLERANCE_US)
        .fetch_all(db)
        .await?
        .iter()
        .map(rows::delivery)
        .collect::<sqlx::Result<Vec<_>>>()?;
    claimed.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(claimed)
}

async fn candidates<'e, E>(db: E, claim: &Claim) -> sqlx::Result<Vec<Candidate>>
where
    E: sqlx::Executor<'e, Database = Postgres>,
{
    sqlx::query(CANDIDATES)
        .bind(claim.lane == Lane::First)
        .bind(claim.now_ms)
        .fetch_all(db)
        .await?
        .iter()
        .map(rows::candidate)
        .collect()
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
        crate::wake::notify(&mut tx, channel, crate::wake::Kind::Deliveries).await?;
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
    let found = sqlx::query(&stats::query("SELECT UNNEST($2::text[]) AS webhook_id"))
        .bind(DeliveryId::first_at(since_ms))
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
        crate::wake::notify(&mut tx, channel, crate::wake::Kind::Deliveries).await?;
    }
    tx.commit().await?;
    Ok(done.rows_affected())
}
