//! SQL text for deliveries that both dialects accept as is, and the lease arithmetic of a claim.
//! Claim statements and due-time lookups name indexes or lock rows in dialect syntax, so they
//! stay in each backend.

use hookd_core::store::{Claim, DeliveryFilter, Page};
use sqlx::{Database, Encode, QueryBuilder, Type};

use crate::delivery_columns;

/// `$1`: id.
pub const GET: &str = concat!(
    "SELECT ",
    delivery_columns!(),
    " FROM deliveries WHERE id = $1"
);
/// `$1`: delivery id; rows of `record`, oldest first.
pub const ATTEMPTS: &str =
    "SELECT record FROM attempts WHERE delivery_id = $1 ORDER BY started_at, id";
/// `$1`: id; a row when the delivery exists.
pub const EXISTS: &str = "SELECT 1 FROM deliveries WHERE id = $1";
/// Makes a delivery not in flight due now (`$1` id, `$2` now).
pub const RETRY_NOW: &str = "UPDATE deliveries
         SET status = CASE WHEN attempts = 0 THEN 'pending' ELSE 'retrying' END,
             next_attempt_at = $2, lease_token = NULL, updated_at = $2
         WHERE id = $1 AND status <> 'delivering'";
/// Unfinished deliveries, counted over the claim indexes, as `n`.
pub const QUEUE_DEPTH: &str =
    "SELECT COUNT(*) AS n FROM deliveries WHERE status IN ('pending', 'retrying', 'delivering')";
/// Makes a webhook's failed deliveries due again (`$1` webhook id, `$2` since, `$3` now).
pub const RECOVER_FAILED: &str = "UPDATE deliveries
         SET status = 'retrying', next_attempt_at = $3, lease_token = NULL, updated_at = $3
         WHERE webhook_id = $1 AND status = 'failed' AND created_at >= $2";

/// The deliveries the filter selects, one page of them, newest first. `all` is the dialect's
/// `SELECT` of [`delivery_columns!`] from `deliveries` with a `WHERE` that holds for every row,
/// for the filters to be appended with `AND`.
pub fn list<'a, DB>(all: &str, filter: &'a DeliveryFilter, page: &'a Page) -> QueryBuilder<'a, DB>
where
    DB: Database,
    &'a str: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
{
    let mut q = QueryBuilder::new(all);
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
    q
}

/// When the lease a claim takes runs out.
pub fn lease_until(claim: &Claim) -> i64 {
    let lease_ms = i64::try_from(claim.lease.as_millis()).unwrap_or(i64::MAX);
    claim.now_ms.saturating_add(lease_ms)
}
