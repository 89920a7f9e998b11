//! Events and the deliveries they cause, written together in one transaction, and event reads.

use std::collections::{HashMap, HashSet};

use hookd_core::event::Event;
use hookd_core::ids::EventId;
use hookd_core::store::{Claim, Claimed, Enqueued, EventToStore, NewDelivery, Page};
use hookd_store_sql::events::{self as sql, sort_out};
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool};

use crate::rows::{self, cached, encode_err, event_columns, placeholders, IDS_PER_QUERY};

/// Delivery rows per multi-row `INSERT`. Each row binds 9 parameters; SQLite allows 32766 per
/// statement, so 1000 rows (9000 parameters) stays well inside while keeping a fan-out to
/// thousands of webhooks down to a few statements.
const DELIVERY_ROWS_PER_INSERT: usize = 1000;
/// Event rows per multi-row `INSERT`: 7 parameters a row, so 1000 rows bind 7000, well inside
/// SQLite's 32766, and a whole group commit of the publisher (at most 1000 events) is one
/// statement.
const EVENT_ROWS_PER_INSERT: usize = 1000;

/// Stores the events and their deliveries in one transaction. Each statement is a round trip
/// to the connection's worker thread, so rows go in multi-row statements across all events:
/// events without an idempotency key in one, keyed events in another that says which were
/// stored, and the deliveries of every stored event in a third.
///
/// With `claim`, the transaction then claims first attempts as a claim of its own would
/// ([`crate::deliveries::claim_in`]): the rows just inserted are leased before anyone can see
/// them, so the publisher's worker needs no claim transaction of its own.
pub(crate) async fn enqueue(
    writer: &SqlitePool,
    events: &[EventToStore],
    now_ms: i64,
    claim: Option<&Claim>,
) -> sqlx::Result<(Vec<Enqueued>, Option<Claimed>)> {
    let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
    let firsts = insert_events(&mut tx, events, now_ms).await?;
    let (results, deliveries) = sort_out(events, firsts);
    for chunk in deliveries.chunks(DELIVERY_ROWS_PER_INSERT) {
        insert_deliveries(&mut tx, chunk, now_ms).await?;
    }
    let claimed = match claim {
        Some(claim) if !deliveries.is_empty() => {
            Some(crate::deliveries::claim_in(&mut tx, claim).await?)
        }
        _ => None,
    };
    tx.commit().await?;
    Ok((results, claimed))
}

/// Inserts the events, keeping each idempotency key's first event. Returns, in input order,
/// `None` for an event stored, or the event that had taken its key (earlier, or earlier in
/// this slice).
async fn insert_events(
    conn: &mut SqliteConnection,
    events: &[EventToStore],
    now_ms: i64,
) -> sqlx::Result<Vec<Option<Event>>> {
    let (keyed, keyless): (Vec<&EventToStore>, Vec<&EventToStore>) = events
        .iter()
        .partition(|e| e.event.idempotency_key.is_some());
    for chunk in keyless.chunks(EVENT_ROWS_PER_INSERT) {
        event_rows(chunk, now_ms)?
            .build()
            .persistent(cached(chunk.len()))
            .execute(&mut *conn)
            .await?;
    }
    let mut stored = HashSet::new();
    for chunk in keyed.chunks(EVENT_ROWS_PER_INSERT) {
        stored.extend(insert_keyed(conn, chunk, now_ms).await?);
    }
    let taken = taken_keys(events, stored);
    let keys: Vec<&str> = taken.iter().flatten().copied().collect();
    let firsts = by_idempotency_keys(conn, &keys).await?;
    taken
        .into_iter()
        .map(|key| key.map(|k| firsts.get(k).cloned().ok_or(sqlx::Error::RowNotFound)))
        .map(Option::transpose)
        .collect()
}

/// For each event, in order, its idempotency key when the key was taken instead of the event
/// being stored. `stored` holds the ids of the keyed events stored: should one event come twice
/// in a slice, only its first occurrence was stored.
fn taken_keys(events: &[EventToStore], mut stored: HashSet<String>) -> Vec<Option<&str>> {
    events
        .iter()
        .map(|e| match e.event.idempotency_key.as_deref() {
            Some(key) if !stored.remove(e.id.as_str()) => Some(key),
            _ => None,
        })
        .collect()
}

/// Inserts events that have an idempotency key unless the key is taken (by a stored event or
/// one earlier in the chunk); returns the ids of those stored.
async fn insert_keyed(
    conn: &mut SqliteConnection,
    chunk: &[&EventToStore],
    now_ms: i64,
) -> sqlx::Result<Vec<String>> {
    let mut insert = event_rows(chunk, now_ms)?;
    insert.push(" ON CONFLICT (idempotency_key) DO NOTHING RETURNING id");
    insert
        .build()
        .persistent(cached(chunk.len()))
        .fetch_all(conn)
        .await?
        .iter()
        .map(|row| row.try_get("id"))
        .collect()
}

/// A multi-row `INSERT` of the events, to be completed with a conflict clause if need be.
fn event_rows<'a>(
    chunk: &[&'a EventToStore],
    now_ms: i64,
) -> sqlx::Result<QueryBuilder<'a, Sqlite>> {
    let data = chunk
        .iter()
        .map(|e| serde_json::to_string(&e.event.data))
        .collect::<Result<Vec<_>, _>>()
        .map_err(encode_err)?;
    let mut insert = QueryBuilder::new(concat!("INSERT INTO events (", event_columns!(), ") "));
    insert.push_values(chunk.iter().zip(data), |mut row, (e, data)| {
        row.push_bind(e.id.as_str())
            .push_bind(e.event.event_type.as_str())
            .push_bind(e.event.model.as_deref())
            .push_bind(data)
            .push_bind(e.event.occurred_at)
            .push_bind(e.event.idempotency_key.as_deref())
            .push_bind(now_ms);
    });
    Ok(insert)
}

/// The stored events holding these idempotency keys, by key.
async fn by_idempotency_keys(
    conn: &mut SqliteConnection,
    keys: &[&str],
) -> sqlx::Result<HashMap<String, Event>> {
    let mut found = HashMap::with_capacity(keys.len());
    for chunk in keys.chunks(IDS_PER_QUERY) {
        let sql = format!(
            concat!(
                "SELECT ",
                event_columns!(),
                " FROM events WHERE idempotency_key IN ({})"
            ),
            placeholders(chunk.len())
        );
        let mut query = sqlx::query(&sql).persistent(false);
        for key in chunk {
            query = query.bind(*key);
        }
        for row in query.fetch_all(&mut *conn).await? {
            let event = rows::event(&row)?;
            let key = event.idempotency_key.clone().unwrap_or_default();
            found.insert(key, event);
        }
    }
    Ok(found)
}

async fn insert_deliveries(
    conn: &mut SqliteConnection,
    chunk: &[(&EventId, &NewDelivery)],
    now_ms: i64,
) -> sqlx::Result<()> {
    let mut insert = QueryBuilder::<Sqlite>::new(
        "INSERT INTO deliveries (id, event_id, webhook_id, status, attempts, next_attempt_at, \
         entry_index, lease_token, created_at, updated_at) ",
    );
    insert.push_values(chunk, |mut row, (event_id, d)| {
        row.push_bind(d.id.as_str())
            .push_bind(event_id.as_str())
            .push_bind(d.webhook_id.as_str())
            .push_bind(d.status.as_str())
            .push("0")
            .push_bind(d.next_attempt_at)
            .push_bind(d.entry_index.map(i64::from))
            .push_bind(d.lease.as_deref())
            .push_bind(now_ms)
            .push_bind(now_ms);
    });
    insert
        .build()
        .persistent(cached(chunk.len()))
        .execute(conn)
        .await?;
    Ok(())
}

pub(crate) async fn get(reader: &SqlitePool, id: &EventId) -> sqlx::Result<Option<Event>> {
    sqlx::query(sql::GET)
        .bind(id.as_str())
        .fetch_optional(reader)
        .await?
        .as_ref()
        .map(rows::event)
        .transpose()
}

pub(crate) async fn list(reader: &SqlitePool, page: &Page) -> sqlx::Result<Vec<Event>> {
    hookd_store_sql::page::query::<Sqlite>(sql::LIST, sql::LIST_BEFORE, page)
        .fetch_all(reader)
        .await?
        .iter()
        .map(rows::event)
        .collect()
}

pub(crate) async fn by_ids(reader: &SqlitePool, ids: &[EventId]) -> sqlx::Result<Vec<Event>> {
    let mut found = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(IDS_PER_QUERY) {
        let sql = format!(
            concat!("SELECT ", event_columns!(), " FROM events WHERE id IN ({})"),
            placeholders(chunk.len())
        );
        let mut query = sqlx::query(&sql).persistent(cached(chunk.len()));
        for id in chunk {
            query = query.bind(id.as_str());
        }
        for row in query.fetch_all(reader).await? {
            found.push(rows::event(&row)?);
        }
    }
    Ok(found)
}
