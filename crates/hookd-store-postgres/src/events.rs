//! Events and the deliveries they cause, written together in one transaction, and event reads.

use hookd_core::delivery::DeliveryStatus;
use hookd_core::event::Event;
use hookd_core::ids::EventId;
use hookd_core::store::{Enqueued, EventToStore, NewDelivery, Page};
use hookd_store_sql::events::{self as sql, sort_out};
use sqlx::{PgConnection, PgPool, Postgres};

use crate::rows::{self, encode_err, event_columns, int};

pub(crate) async fn enqueue(
    pool: &PgPool,
    channel: &str,
    events: &[EventToStore],
    now_ms: i64,
) -> sqlx::Result<Vec<Enqueued>> {
    let mut tx = pool.begin().await?;
    let mut firsts = Vec::with_capacity(events.len());
    for e in events {
        firsts.push(insert_event(&mut tx, e, now_ms).await?);
    }
    let (results, deliveries) = sort_out(events, firsts);
    if !deliveries.is_empty() {
        insert_deliveries(&mut tx, &deliveries, now_ms).await?;
    }
    if deliveries
        .iter()
        .any(|(_, d)| d.status == DeliveryStatus::Pending)
    {
        // Delivered at commit, so a woken worker finds the rows.
        crate::wake::notify(&mut tx, channel).await?;
    }
    tx.commit().await?;
    Ok(results)
}

/// Inserts the event unless its idempotency key is taken; then returns the event that took it.
/// `ON CONFLICT DO NOTHING` waits for a concurrent transaction holding the same key, so of two
/// concurrent requests exactly one inserts and the other sees its event.
async fn insert_event(
    conn: &mut PgConnection,
    e: &EventToStore,
    now_ms: i64,
) -> sqlx::Result<Option<Event>> {
    let data = serde_json::to_string(&e.event.data).map_err(encode_err)?;
    let done = sqlx::query(concat!(
        "INSERT INTO events (",
        event_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (idempotency_key) DO NOTHING"
    ))
    .bind(e.id.as_str())
    .bind(e.event.event_type.as_str())
    .bind(&e.event.model)
    .bind(data)
    .bind(e.event.occurred_at)
    .bind(&e.event.idempotency_key)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    match (&e.event.idempotency_key, done.rows_affected()) {
        (Some(key), 0) => by_idempotency_key(conn, key).await.map(Some),
        _ => Ok(None),
    }
}

async fn by_idempotency_key(conn: &mut PgConnection, key: &str) -> sqlx::Result<Event> {
    let row = sqlx::query(concat!(
        "SELECT ",
        event_columns!(),
        " FROM events WHERE idempotency_key = $1"
    ))
    .bind(key)
    .fetch_one(conn)
    .await?;
    rows::event(&row)
}

/// Inserts every delivery in one statement: one array per column, `UNNEST`ed into rows. The
/// statement has the same shape for any fan-out, so it is prepared once per connection and has
/// no bound-parameter limit to chunk around.
async fn insert_deliveries(
    conn: &mut PgConnection,
    deliveries: &[(&EventId, &NewDelivery)],
    now_ms: i64,
) -> sqlx::Result<()> {
    let ids: Vec<&str> = deliveries.iter().map(|(_, d)| d.id.as_str()).collect();
    let event_ids: Vec<&str> = deliveries.iter().map(|(e, _)| e.as_str()).collect();
    let webhook_ids: Vec<&str> = deliveries
        .iter()
        .map(|(_, d)| d.webhook_id.as_str())
        .collect();
    let statuses: Vec<&str> = deliveries.iter().map(|(_, d)| d.status.as_str()).collect();
    let due: Vec<i64> = deliveries.iter().map(|(_, d)| d.next_attempt_at).collect();
    let entries: Vec<Option<i32>> = deliveries
        .iter()
        .map(|(_, d)| d.entry_index.map(int))
        .collect();
    let leases: Vec<Option<&str>> = deliveries.iter().map(|(_, d)| d.lease.as_deref()).collect();
    sqlx::query(
        "INSERT INTO deliveries (id, event_id, webhook_id, status, attempts, next_attempt_at,
             entry_index, lease_token, created_at, updated_at)
         SELECT id, event_id, webhook_id, status, 0, next_attempt_at, entry_index, lease_token,
             $8, $8
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::integer[],
             $7::text[])
             AS d (id, event_id, webhook_id, status, next_attempt_at, entry_index, lease_token)",
    )
    .bind(ids)
    .bind(event_ids)
    .bind(webhook_ids)
    .bind(statuses)
    .bind(due)
    .bind(entries)
    .bind(leases)
    .bind(now_ms)
    .execute(conn)
    .await?;
    Ok(())
}

pub(crate) async fn get(pool: &PgPool, id: &EventId) -> sqlx::Result<Option<Event>> {
    sqlx::query(sql::GET)
        .bind(id.as_str())
        .fetch_optional(pool)
        .await?
        .as_ref()
        .map(rows::event)
        .transpose()
}

pub(crate) async fn list(pool: &PgPool, page: &Page) -> sqlx::Result<Vec<Event>> {
    hookd_store_sql::page::query::<Postgres>(sql::LIST, sql::LIST_BEFORE, page)
        .fetch_all(pool)
        .await?
        .iter()
        .map(rows::event)
        .collect()
}

/// Events by id. Not kept as a prepared statement (see "Plans" in the crate's documentation):
/// planned each time with its ids, so it stays an index lookup as the table grows.
pub(crate) async fn by_ids(pool: &PgPool, ids: &[EventId]) -> sqlx::Result<Vec<Event>> {
    let ids: Vec<&str> = ids.iter().map(EventId::as_str).collect();
    sqlx::query(concat!(
        "SELECT ",
        event_columns!(),
        " FROM events WHERE id = ANY($1)"
    ))
    .persistent(false)
    .bind(ids)
    .fetch_all(pool)
    .await?
    .iter()
    .map(rows::event)
    .collect()
}
