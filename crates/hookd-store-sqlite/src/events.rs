//! Events and the deliveries they cause, written together in one transaction, and event reads.

use hookd_core::event::Event;
use hookd_core::ids::EventId;
use hookd_core::store::{Enqueued, EventToStore, NewDelivery, Page};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqlitePool};

use crate::rows::{self, encode_err, event_columns, placeholders, IDS_PER_QUERY};

/// Delivery rows per multi-row `INSERT`. Each row binds 9 parameters; SQLite allows 32766 per
/// statement, so 1000 rows (9000 parameters) stays well inside while keeping a fan-out to
/// thousands of webhooks down to a few statements.
const DELIVERY_ROWS_PER_INSERT: usize = 1000;

pub(crate) async fn enqueue(
    writer: &SqlitePool,
    events: &[EventToStore],
    now_ms: i64,
) -> sqlx::Result<Vec<Enqueued>> {
    let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
    let mut results = Vec::with_capacity(events.len());
    let mut deliveries: Vec<(&EventId, &NewDelivery)> = Vec::new();
    for e in events {
        match insert_event(&mut tx, e, now_ms).await? {
            Some(first) => results.push(Enqueued::Duplicate(first)),
            None => {
                deliveries.extend(e.deliveries.iter().map(|d| (&e.id, d)));
                let count = u32::try_from(e.deliveries.len()).unwrap_or(u32::MAX);
                results.push(Enqueued::Created {
                    id: e.id.clone(),
                    deliveries: count,
                });
            }
        }
    }
    for chunk in deliveries.chunks(DELIVERY_ROWS_PER_INSERT) {
        insert_deliveries(&mut tx, chunk, now_ms).await?;
    }
    tx.commit().await?;
    Ok(results)
}

/// Inserts the event unless its idempotency key is taken; then returns the event that took it.
async fn insert_event(
    conn: &mut SqliteConnection,
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

async fn by_idempotency_key(conn: &mut SqliteConnection, key: &str) -> sqlx::Result<Event> {
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
    // Shapes vary with the chunk size: do not let them crowd hot statements out of the cache.
    insert.build().persistent(false).execute(conn).await?;
    Ok(())
}

pub(crate) async fn get(reader: &SqlitePool, id: &EventId) -> sqlx::Result<Option<Event>> {
    sqlx::query(concat!(
        "SELECT ",
        event_columns!(),
        " FROM events WHERE id = $1"
    ))
    .bind(id.as_str())
    .fetch_optional(reader)
    .await?
    .as_ref()
    .map(rows::event)
    .transpose()
}

pub(crate) async fn list(reader: &SqlitePool, page: &Page) -> sqlx::Result<Vec<Event>> {
    let query = match &page.before {
        None => sqlx::query(concat!(
            "SELECT ",
            event_columns!(),
            " FROM events ORDER BY id DESC LIMIT $1"
        ))
        .bind(i64::from(page.limit)),
        Some(before) => sqlx::query(concat!(
            "SELECT ",
            event_columns!(),
            " FROM events WHERE id < $2 ORDER BY id DESC LIMIT $1"
        ))
        .bind(i64::from(page.limit))
        .bind(before.as_str()),
    };
    query
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
        let mut query = sqlx::query(&sql).persistent(false);
        for id in chunk {
            query = query.bind(id.as_str());
        }
        for row in query.fetch_all(reader).await? {
            found.push(rows::event(&row)?);
        }
    }
    Ok(found)
}
