//! Per-webhook delivery statistics: one aggregate over `deliveries`, grouped by webhook, with
//! the counts of a window and the newest delivery of any age found by the id order (ids sort by
//! creation time) over the `deliveries (webhook_id, id)` index.
//!
//! How the requested ids are passed differs by dialect (`IN ($2, ..)` on SQLite, `= ANY($2)` on
//! PostgreSQL), so the backends hand their predicate in and bind the ids themselves.

use std::collections::HashMap;

use hookd_core::delivery::DeliveryStatus;
use hookd_core::ids::WebhookId;
use hookd_core::store::WebhookStats;
use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::rows::decode_err;

/// The statistics of the webhooks whose `webhook_id` matches `ids` (the dialect's predicate,
/// starting at `$2`); `$1` is the start of the window. Webhooks without deliveries have no row.
pub fn query(ids: &str) -> String {
    format!(
        "SELECT s.webhook_id, s.succeeded, s.failed, s.pending,
                d.status AS last_status, d.updated_at AS last_at
         FROM (SELECT webhook_id, MAX(id) AS last_id,
                      COUNT(CASE WHEN created_at >= $1 AND status = 'succeeded' THEN 1 END)
                          AS succeeded,
                      COUNT(CASE WHEN created_at >= $1 AND status = 'failed' THEN 1 END)
                          AS failed,
                      COUNT(CASE WHEN created_at >= $1
                                  AND status IN ('pending', 'delivering', 'retrying') THEN 1 END)
                          AS pending
               FROM deliveries WHERE webhook_id {ids} GROUP BY webhook_id) s
         JOIN deliveries d ON d.id = s.last_id"
    )
}

/// A row of [`query`].
pub fn stats<R>(row: &R) -> sqlx::Result<WebhookStats>
where
    R: Row,
    for<'r> &'r str: Decode<'r, R::Database> + Type<R::Database>,
    String: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    i64: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    &'static str: ColumnIndex<R>,
{
    let status: &str = row.try_get("last_status")?;
    let count = |column: &'static str| -> sqlx::Result<u64> {
        let n: i64 = row.try_get(column)?;
        u64::try_from(n).map_err(|_| decode_err(format!("{column} out of range: {n}")))
    };
    Ok(WebhookStats {
        webhook_id: WebhookId::from_trusted(row.try_get("webhook_id")?),
        last_status: Some(
            DeliveryStatus::parse(status)
                .ok_or_else(|| decode_err(format!("unknown delivery status {status:?}")))?,
        ),
        last_at: Some(row.try_get("last_at")?),
        succeeded: count("succeeded")?,
        failed: count("failed")?,
        pending: count("pending")?,
    })
}

/// One entry per requested id, in the order asked, from the rows found.
pub fn per_id(ids: &[WebhookId], found: Vec<WebhookStats>) -> Vec<WebhookStats> {
    let found: HashMap<WebhookId, WebhookStats> = found
        .into_iter()
        .map(|s| (s.webhook_id.clone(), s))
        .collect();
    ids.iter()
        .map(|id| {
            found
                .get(id)
                .cloned()
                .unwrap_or_else(|| WebhookStats::empty(id.clone()))
        })
        .collect()
}
