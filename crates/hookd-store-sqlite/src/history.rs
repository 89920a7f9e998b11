//! Retained history for benchmarks and plan tests (see `hookd_store_sql::history`): each chunk
//! is one transaction of three statements, their rows made by a recursive CTE.

use hookd_core::ids::WebhookId;
use hookd_store_sql::history::{History, ATTEMPT_MARK, DELIVERY_MARK};
use sqlx::SqlitePool;

/// `$1` first row, `$2` last row; `tail` is the row number in ten digits.
const SERIES: &str =
    "WITH RECURSIVE s(n) AS (SELECT $1 UNION ALL SELECT n + 1 FROM s WHERE n < $2),
     t(tail) AS (SELECT substr('0000000000' || n, -10, 10) FROM s) ";

pub(crate) async fn seed(
    writer: &SqlitePool,
    webhook: &WebhookId,
    count: u64,
    at_ms: i64,
) -> sqlx::Result<()> {
    let h = History::new(webhook, at_ms);
    let events = format!(
        "{SERIES} INSERT INTO events (id, event_type, model, data, occurred_at, idempotency_key,
             created_at)
         SELECT $3 || tail, 'bench.history', NULL, '{{}}', $4, NULL, $4 FROM t"
    );
    let deliveries = format!(
        "{SERIES} INSERT INTO deliveries (id, event_id, webhook_id, status, attempts,
             next_attempt_at, entry_index, lease_token, last_status_code, last_error, created_at,
             updated_at)
         SELECT $3 || tail, $4 || tail, $5, 'succeeded', 1, NULL, NULL, NULL, 200, NULL, $6, $6
         FROM t"
    );
    let attempts = format!(
        "{SERIES} INSERT INTO attempts (id, delivery_id, started_at, record, webhook_id,
             succeeded, latency_ms)
         SELECT $3 || tail, $4 || tail, $5,
             replace(replace($6, '{ATTEMPT_MARK}', $3 || tail), '{DELIVERY_MARK}', $4 || tail),
             $7, 1, $8
         FROM t"
    );
    for (from, to) in History::chunks(count) {
        let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(&events)
            .bind(from)
            .bind(to)
            .bind(&h.event_prefix)
            .bind(h.at_ms)
            .execute(&mut *tx)
            .await?;
        sqlx::query(&deliveries)
            .bind(from)
            .bind(to)
            .bind(&h.delivery_prefix)
            .bind(&h.event_prefix)
            .bind(&h.webhook_id)
            .bind(h.at_ms)
            .execute(&mut *tx)
            .await?;
        sqlx::query(&attempts)
            .bind(from)
            .bind(to)
            .bind(&h.attempt_prefix)
            .bind(&h.delivery_prefix)
            .bind(h.at_ms)
            .bind(&h.attempt_record)
            .bind(&h.webhook_id)
            .bind(h.latency_ms)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    }
    Ok(())
}
