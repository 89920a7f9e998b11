//! Events and the deliveries they cause, written together in one transaction, and event reads.

use std::collections::HashSet;

use hookd_core::delivery::DeliveryStatus;
use hookd_core::event::Event;
use hookd_core::ids::{DeliveryId, EventId};
use hookd_core::store::{Claim, Claimed, Enqueued, EventToStore, NewDelivery, Page};
use hookd_store_sql::events::{self as sql, sort_out};
use sqlx::{PgConnection, PgPool, Postgres};

use crate::rows::{self, encode_err, event_columns, int};

/// Stores the events and their deliveries in one transaction.
///
/// With `claim`, the transaction then claims first attempts as a claim of its own would
/// ([`crate::deliveries::claim_in`]), and notifies other processes only of what it left.
pub(crate) async fn enqueue(
    pool: &PgPool,
    channel: &str,
    events: &[EventToStore],
    now_ms: i64,
    claim: Option<&Claim>,
) -> sqlx::Result<(Vec<Enqueued>, Option<Claimed>)> {
    let mut tx = pool.begin().await?;
    let firsts = insert_events(&mut tx, events, now_ms).await?;
    let (results, deliveries) = sort_out(events, firsts);
    if !deliveries.is_empty() {
        insert_deliveries(&mut tx, &deliveries, now_ms).await?;
    }
    let claimed = match claim {
        Some(claim) if !deliveries.is_empty() => {
            Some(crate::deliveries::claim_in(&mut tx, claim).await?)
        }
        _ => None,
    };
    let taken: HashSet<&DeliveryId> = claimed
        .iter()
        .flat_map(|c| c.deliveries.iter().map(|d| &d.id))
        .collect();
    let left: Vec<_> = deliveries
        .iter()
        .filter(|(_, d)| d.status == DeliveryStatus::Pending && !taken.contains(&d.id))
        .map(|(_, d)| &d.webhook_id)
        .collect();
    if !left.is_empty() {
        // Delivered at commit, so a woken worker finds the rows; named, so a worker that owns
        // none of the webhooks need not look.
        crate::wake::notify_first(&mut tx, channel, left).await?;
    }
    tx.commit().await?;
    Ok((results, claimed))
}

/// Inserts every event in one statement (one array per column, as for deliveries), skipping
/// those whose idempotency key is taken; returns, per event in order, `None` when it was
/// inserted or the event that holds its key.
///
/// `ON CONFLICT DO NOTHING` waits for a concurrent transaction holding the same key, so of two
/// concurrent requests exactly one inserts and the other sees its event; within one statement
/// a repeated key is inserted once, for its first row. Rows go in the order of their keys, so
/// two transactions that share keys wait for each other in the same order and cannot deadlock.
async fn insert_events(
    conn: &mut PgConnection,
    events: &[EventToStore],
    now_ms: i64,
) -> sqlx::Result<Vec<Option<Event>>> {
    let mut order: Vec<usize> = (0..events.len()).collect();
    order.sort_by(|&a, &b| {
        let key = |i: usize| events[i].event.idempotency_key.as_deref();
        key(a).cmp(&key(b)).then(a.cmp(&b))
    });
    let mut ids = Vec::with_capacity(events.len());
    let mut types = Vec::with_capacity(events.len());
    let mut models = Vec::with_capacity(events.len());
    let mut data = Vec::with_capacity(events.len());
    let mut occurred = Vec::with_capacity(events.len());
    let mut keys = Vec::with_capacity(events.len());
    for &i in &order {
        let e = &events[i];
        ids.push(e.id.as_str());
        types.push(e.event.event_type.as_str());
        models.push(e.event.model.as_deref());
        data.push(serde_json::to_string(&e.event.data).map_err(encode_err)?);
        occurred.push(e.event.occurred_at);
        keys.push(e.event.idempotency_key.as_deref());
    }
    let inserted: Vec<String> = sqlx::query_scalar(concat!(
        "INSERT INTO events (",
        event_columns!(),
        ") SELECT id, event_type, model, data, occurred_at, idempotency_key, $7
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[])
             WITH ORDINALITY AS e (id, event_type, model, data, occurred_at, idempotency_key, n)
         ORDER BY n
         ON CONFLICT (idempotency_key) DO NOTHING
         RETURNING id"
    ))
    .bind(ids)
    .bind(types)
    .bind(models)
    .bind(data)
    .bind(occurred)
    .bind(keys)
    .bind(now_ms)
    .fetch_all(&mut *conn)
    .await?;
    if inserted.len() == events.len() {
        return Ok(vec![None; events.len()]);
    }
    let inserted: std::collections::HashSet<&str> = inserted.iter().map(String::as_str).collect();
    let taken: Vec<&str> = events
        .iter()
        .filter(|e| !inserted.contains(e.id.as_str()))
        .filter_map(|e| e.event.idempotency_key.as_deref())
        .collect();
    let holders: std::collections::HashMap<String, Event> = by_idempotency_keys(conn, &taken)
        .await?
        .into_iter()
        .filter_map(|h| Some((h.idempotency_key.clone()?, h)))
        .collect();
    events
        .iter()
        .map(|e| match e.event.idempotency_key.as_deref() {
            _ if inserted.contains(e.id.as_str()) => Ok(None),
            Some(key) => holders
                .get(key)
                .cloned()
                .map(Some)
                .ok_or(sqlx::Error::RowNotFound),
            None => Err(sqlx::Error::RowNotFound),
        })
        .collect()
}

/// The events holding these idempotency keys. Planned with its values each time (see "Plans"
/// in the crate's documentation); it runs only when a batch repeats a key.
async fn by_idempotency_keys(conn: &mut PgConnection, keys: &[&str]) -> sqlx::Result<Vec<Event>> {
    sqlx::query(concat!(
        "SELECT ",
        event_columns!(),
        " FROM events WHERE idempotency_key = ANY($1)"
    ))
    .persistent(false)
    .bind(keys)
    .fetch_all(conn)
    .await?
    .iter()
    .map(rows::event)
    .collect()
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
