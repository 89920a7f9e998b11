//! Deliveries: claiming due ones under a lease, fairly across webhooks, reading and listing them, their attempts, and
//! making one due again by hand.

use hookd_core::delivery::{Attempt, Delivery};
use hookd_core::flow::Candidate;
use hookd_core::ids::{DeliveryId, WebhookId};
use hookd_core::store::{Claim, Claimed, DeliveryFilter, Lane, Page, WebhookStats};
use hookd_store_sql::deliveries::{self as sql, lease_until};
use hookd_store_sql::{candidate_limit_columns, claims, stats};
use sqlx::{Row, Sqlite, SqliteConnection, SqlitePool};

use crate::rows::{self, delivery_columns, IDS_PER_QUERY};

/// The lanes' conditions, word for word those of the partial indexes `deliveries_queue_first`
/// and `deliveries_queue_retry` (`0008_predicates`), so the planner may use them.
macro_rules! first_lane {
    () => {
        "(status = 'pending' OR status = 'retrying' OR status = 'delivering') AND attempts = 0"
    };
}
macro_rules! retry_lane {
    () => {
        "(status = 'pending' OR status = 'retrying' OR status = 'delivering') AND attempts > 0"
    };
}

/// Every webhook with unfinished deliveries in the lane (a skip scan: one index step per
/// webhook), its earliest due time, its requests in flight and its limits. `$1`: now. The
/// lane predicates repeat the partial indexes' word for word.
///
/// `INDEXED BY` names the indexes: without statistics SQLite's planner may prefer another
/// index, and a missing index is then an error rather than a silent slowdown.
macro_rules! candidates_sql {
    ($index:literal, $lane:expr) => {
        concat!(
            "WITH RECURSIVE hooks (webhook_id) AS (
                 SELECT (SELECT webhook_id FROM deliveries INDEXED BY ",
            $index,
            "
                         WHERE ",
            $lane,
            " ORDER BY webhook_id LIMIT 1)
                 UNION ALL
                 SELECT (SELECT webhook_id FROM deliveries INDEXED BY ",
            $index,
            "
                         WHERE ",
            $lane,
            " AND webhook_id > hooks.webhook_id
                         ORDER BY webhook_id LIMIT 1)
                 FROM hooks WHERE hooks.webhook_id IS NOT NULL)
             SELECT h.webhook_id,
                 (SELECT MIN(next_attempt_at) FROM deliveries INDEXED BY ",
            $index,
            "
                  WHERE ",
            $lane,
            " AND webhook_id = h.webhook_id) AS due_at,
                 (SELECT COUNT(*) FROM deliveries INDEXED BY deliveries_leased
                  WHERE status = 'delivering' AND webhook_id = h.webhook_id
                    AND next_attempt_at > $1) AS in_flight, ",
            candidate_limit_columns!(),
            "
             FROM hooks AS h LEFT JOIN webhooks AS w ON w.id = h.webhook_id
             WHERE h.webhook_id IS NOT NULL"
        )
    };
}
const CANDIDATES_FIRST: &str = candidates_sql!("deliveries_queue_first", first_lane!());
const CANDIDATES_RETRY: &str = candidates_sql!("deliveries_queue_retry", retry_lane!());

/// Leases what the plan grants: for each `[webhook_id, n]` of the JSON array `$5`, its `n`
/// oldest due deliveries, taken round-robin (every webhook's first, oldest first, then every
/// second...) up to `$4` in all. `$1` lease end, `$2` lease token, `$3` now. The walk steps from one delivery to
/// the next in `(next_attempt_at, id)` order with two seeks (same due time and a later id, or a
/// later due time): a row-value comparison would not seek on `id`, and deliveries published
/// together share their due time.
macro_rules! claim_sql {
    ($index:literal, $lane:expr) => {
        concat!(
            "UPDATE deliveries
             SET status = 'delivering', next_attempt_at = $1, lease_token = $2, updated_at = $3
             WHERE id IN (
                 WITH RECURSIVE grants (webhook_id, n) AS (
                     SELECT value ->> 0, value ->> 1 FROM json_each($5)),
                 walk (webhook_id, at, id, k, n) AS (
                     SELECT g.webhook_id, d.next_attempt_at, d.id, 1, g.n
                     FROM grants AS g JOIN deliveries AS d ON d.id = (
                         SELECT id FROM deliveries INDEXED BY ",
            $index,
            "
                         WHERE ",
            $lane,
            " AND webhook_id = g.webhook_id
                           AND next_attempt_at <= $3
                         ORDER BY next_attempt_at, id LIMIT 1)
                     WHERE g.n > 0
                     UNION ALL
                     SELECT w.webhook_id, d.next_attempt_at, d.id, w.k + 1, w.n
                     FROM walk AS w JOIN deliveries AS d ON d.id = COALESCE(
                         (SELECT id FROM deliveries INDEXED BY ",
            $index,
            "
                          WHERE ",
            $lane,
            " AND webhook_id = w.webhook_id
                            AND next_attempt_at = w.at AND id > w.id
                          ORDER BY id LIMIT 1),
                         (SELECT id FROM deliveries INDEXED BY ",
            $index,
            "
                          WHERE ",
            $lane,
            " AND webhook_id = w.webhook_id
                            AND next_attempt_at > w.at AND next_attempt_at <= $3
                          ORDER BY next_attempt_at, id LIMIT 1))
                     WHERE w.k < w.n
                     ORDER BY 4, 2, 3 LIMIT $4)
                 SELECT id FROM walk)
             RETURNING ",
            delivery_columns!()
        )
    };
}
const CLAIM_FIRST: &str = claim_sql!("deliveries_queue_first", first_lane!());
const CLAIM_RETRY: &str = claim_sql!("deliveries_queue_retry", retry_lane!());

/// A fair claim ([`hookd_store_sql::claims`]) in one `BEGIN IMMEDIATE` transaction: SQLite's
/// single writer keeps every other claim, in this process or another, out until it commits.
/// A `delivering` row whose lease ran out is due again: that is how a crashed worker's
/// deliveries come back.
///
/// It first looks on a reader, without the write lock: an idle lane, or one whose webhooks are
/// all at their limits, costs one read and leaves the writer to publishes and outcomes.
pub(crate) async fn claim(
    writer: &SqlitePool,
    reader: &SqlitePool,
    claim: &Claim,
) -> sqlx::Result<Claimed> {
    let look = claim.plan(&candidates(reader, lane_sql(claim.lane).0, claim).await?);
    if look.grants.is_empty() {
        return Ok(Claimed::idle(&look));
    }
    let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
    let claimed = claim_in(&mut tx, claim).await?;
    tx.commit().await?;
    Ok(claimed)
}

/// The claim's candidate and leasing statements for a lane.
fn lane_sql(lane: Lane) -> (&'static str, &'static str) {
    match lane {
        Lane::First => (CANDIDATES_FIRST, CLAIM_FIRST),
        Lane::Retry => (CANDIDATES_RETRY, CLAIM_RETRY),
    }
}

/// The claim's writing part, inside a write transaction the caller opened (a claim's own, or
/// a publish's): reads the candidates under the write lock, plans, leases what the plan grants
/// and moves the rate limiters on.
pub(crate) async fn claim_in(tx: &mut SqliteConnection, claim: &Claim) -> sqlx::Result<Claimed> {
    let (candidates_sql, claim_sql) = lane_sql(claim.lane);
    let candidates = candidates(&mut *tx, candidates_sql, claim).await?;
    let plan = claim.plan(&candidates);
    if plan.grants.is_empty() {
        // Another claim took the room since the look; nothing was written.
        return Ok(Claimed::idle(&plan));
    }
    let grants: Vec<(&str, u32)> = plan
        .grants
        .iter()
        .map(|g| (g.webhook_id.as_str(), g.count))
        .collect();
    let grants = serde_json::to_string(&grants).map_err(rows::encode_err)?;
    let mut claimed = sqlx::query(claim_sql)
        .bind(lease_until(claim))
        .bind(&claim.lease_token)
        .bind(claim.now_ms)
        .bind(i64::from(claim.limit))
        .bind(grants)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(rows::delivery)
        .collect::<sqlx::Result<Vec<_>>>()?;
    let rates = claims::rate_updates(&candidates, &claimed, claim.now_ms);
    claims::set_rates::<Sqlite>(&mut *tx, &rates).await?;
    claimed.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(Claimed {
        deliveries: claimed,
        next_at: plan.next_at,
        waits_for_a_slot: plan.waits_for_a_slot,
        candidates,
    })
}

async fn candidates<'e, E>(db: E, sql: &str, claim: &Claim) -> sqlx::Result<Vec<Candidate>>
where
    E: sqlx::Executor<'e, Database = Sqlite>,
{
    sqlx::query(sql)
        .bind(claim.now_ms)
        .fetch_all(db)
        .await?
        .iter()
        .map(rows::candidate)
        .collect()
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
        let params: Vec<String> = (2..chunk.len() + 2).map(|n| format!("(${n})")).collect();
        let rows = format!(
            "SELECT column1 AS webhook_id FROM (VALUES {})",
            params.join(", ")
        );
        let sql = stats::query(&rows);
        let first = DeliveryId::first_at(since_ms);
        let mut query = sqlx::query(&sql).persistent(false).bind(first);
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
