//! Per-webhook delivery statistics: one statement with, per requested webhook, the counts of a
//! window and the newest delivery of any age, both read through the `deliveries (webhook_id, id)`
//! index (ids sort by creation time).
//!
//! How the requested ids become rows differs by dialect (`VALUES ($2), ..` on SQLite,
//! `UNNEST($2)` on PostgreSQL), so the backends hand their rows in and bind the ids themselves.

use std::collections::HashMap;

use hookd_core::delivery::DeliveryStatus;
use hookd_core::ids::WebhookId;
use hookd_core::store::WebhookStats;
use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::rows::decode_err;

/// The statistics of the webhooks `ids_rows` lists (the dialect's rows of one `webhook_id`
/// column, from `$2` on); `$1` is the first delivery id of the window
/// ([`hookd_core::ids::DeliveryId::first_at`]). Each count reads only the window's entries of
/// the `(webhook_id, id)` index (ids sort by creation time), and the newest delivery is one
/// index lookup, so the cost follows the window, not what retention keeps. Webhooks without
/// deliveries have no row.
pub fn query(ids_rows: &str) -> String {
    let count = |status: &str| {
        format!(
            "(SELECT COUNT(*) FROM deliveries AS c
              WHERE c.webhook_id = w.webhook_id AND c.id >= $1 AND c.status {status})"
        )
    };
    format!(
        "SELECT s.webhook_id, s.succeeded, s.failed, s.pending,
                d.status AS last_status, d.updated_at AS last_at
         FROM (SELECT w.webhook_id, {} AS succeeded, {} AS failed, {} AS pending,
                      (SELECT MAX(l.id) FROM deliveries AS l
                       WHERE l.webhook_id = w.webhook_id) AS last_id
               FROM ({ids_rows}) AS w) AS s
         JOIN deliveries AS d ON d.id = s.last_id",
        count("= 'succeeded'"),
        count("= 'failed'"),
        count("IN ('pending', 'delivering', 'retrying')"),
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
