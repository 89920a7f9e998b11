//! Retained history for benchmarks and plan tests (see `hookd_store_sql::history`): each chunk
//! is one statement, its rows made by `generate_series`.

use hookd_core::ids::WebhookId;
use hookd_store_sql::history::{History, ATTEMPT_MARK, DELIVERY_MARK};
use sqlx::PgPool;

pub(crate) async fn seed(
    pool: &PgPool,
    webhook: &WebhookId,
    count: u64,
    at_ms: i64,
) -> sqlx::Result<()> {
    let h = History::new(webhook, at_ms);
    let sql = format!(
        "WITH s AS (SELECT lpad(n::text, 10, '0') AS tail
                    FROM generate_series($4::bigint, $5::bigint) AS n),
         e AS (INSERT INTO events (id, event_type, model, data, occurred_at, idempotency_key,
                   created_at)
               SELECT $1 || tail, 'bench.history', NULL, '{{}}', $7, NULL, $7 FROM s),
         d AS (INSERT INTO deliveries (id, event_id, webhook_id, status, attempts,
                   next_attempt_at, entry_index, lease_token, last_status_code, last_error,
                   created_at, updated_at)
               SELECT $2 || tail, $1 || tail, $6, 'succeeded', 1, NULL, NULL, NULL, 200, NULL,
                   $7, $7 FROM s)
         INSERT INTO attempts (id, delivery_id, started_at, record, webhook_id, succeeded,
             latency_ms)
         SELECT $3 || tail, $2 || tail, $7,
             replace(replace($8, '{ATTEMPT_MARK}', $3 || tail), '{DELIVERY_MARK}', $2 || tail),
             $6, 1, $9
         FROM s"
    );
    for (from, to) in History::chunks(count) {
        sqlx::query(&sql)
            .persistent(false)
            .bind(&h.event_prefix)
            .bind(&h.delivery_prefix)
            .bind(&h.attempt_prefix)
            .bind(from)
            .bind(to)
            .bind(&h.webhook_id)
            .bind(h.at_ms)
            .bind(&h.attempt_record)
            .bind(h.latency_ms)
            .execute(pool)
            .await?;
    }
    Ok(())
}
