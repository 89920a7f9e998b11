//! Row mapping: the column lists queries select, how rows become domain values, and how sqlx
//! errors become [`StoreError`]s.

use hookd_core::delivery::{Attempt, Delivery, DeliveryStatus};
use hookd_core::event::Event;
use hookd_core::ids::{DeliveryId, EventId, WebhookId};
use hookd_core::store::StoreError;
use hookd_core::webhook::Webhook;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

/// Columns of `webhooks`, in the order [`webhook`] reads them.
macro_rules! webhook_columns {
    () => {
        "id, active, disabled_reason, failing_since, spec, created_at, updated_at"
    };
}
/// Columns of `events`, in the order [`event`] reads them.
macro_rules! event_columns {
    () => {
        "id, event_type, model, data, occurred_at, idempotency_key, created_at"
    };
}
/// Columns of `deliveries` that make a [`Delivery`] (the lease token stays inside the store).
macro_rules! delivery_columns {
    () => {
        "id, event_id, webhook_id, status, attempts, next_attempt_at, entry_index, \
         last_status_code, last_error, created_at, updated_at"
    };
}
pub(crate) use {delivery_columns, event_columns, webhook_columns};

/// Maps a sqlx error: unique violations are [`StoreError::Conflict`], the rest backend errors.
pub(crate) fn store_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(db.message().to_owned())
        }
        _ => StoreError::backend(e),
    }
}

/// A stored value that does not decode (corrupt JSON, an unknown status).
pub(crate) fn decode_err(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> sqlx::Error {
    sqlx::Error::Decode(e.into())
}

/// JSON that cannot be written (never happens with hookd's types, but serde can say no).
pub(crate) fn encode_err(e: serde_json::Error) -> sqlx::Error {
    sqlx::Error::Encode(Box::new(e))
}

fn small_uint<T: TryFrom<i64>>(row: &SqliteRow, column: &str) -> sqlx::Result<T> {
    let v: i64 = row.try_get(column)?;
    T::try_from(v).map_err(|_| decode_err(format!("{column} out of range: {v}")))
}

fn opt_small_uint<T: TryFrom<i64>>(row: &SqliteRow, column: &str) -> sqlx::Result<Option<T>> {
    match row.try_get::<Option<i64>, _>(column)? {
        None => Ok(None),
        Some(v) => T::try_from(v)
            .map(Some)
            .map_err(|_| decode_err(format!("{column} out of range: {v}"))),
    }
}

pub(crate) fn webhook(row: &SqliteRow) -> sqlx::Result<Webhook> {
    let spec: &str = row.try_get("spec")?;
    Ok(Webhook {
        id: WebhookId::from_trusted(row.try_get("id")?),
        active: row.try_get("active")?,
        disabled_reason: row.try_get("disabled_reason")?,
        failing_since: row.try_get("failing_since")?,
        spec: serde_json::from_str(spec).map_err(decode_err)?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

pub(crate) fn event(row: &SqliteRow) -> sqlx::Result<Event> {
    let data: &str = row.try_get("data")?;
    Ok(Event {
        id: EventId::from_trusted(row.try_get("id")?),
        event_type: row.try_get("event_type")?,
        model: row.try_get("model")?,
        data: serde_json::from_str(data).map_err(decode_err)?,
        occurred_at: row.try_get("occurred_at")?,
        idempotency_key: row.try_get("idempotency_key")?,
        created_at: row.try_get("created_at")?,
    })
}

pub(crate) fn delivery(row: &SqliteRow) -> sqlx::Result<Delivery> {
    let status: &str = row.try_get("status")?;
    Ok(Delivery {
        id: DeliveryId::from_trusted(row.try_get("id")?),
        event_id: EventId::from_trusted(row.try_get("event_id")?),
        webhook_id: WebhookId::from_trusted(row.try_get("webhook_id")?),
        status: DeliveryStatus::parse(status)
            .ok_or_else(|| decode_err(format!("unknown delivery status {status:?}")))?,
        attempts: small_uint(row, "attempts")?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        entry_index: opt_small_uint(row, "entry_index")?,
        last_status_code: opt_small_uint(row, "last_status_code")?,
        last_error: row.try_get("last_error")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

pub(crate) fn attempt(row: &SqliteRow) -> sqlx::Result<Attempt> {
    let record: &str = row.try_get("record")?;
    serde_json::from_str(record).map_err(decode_err)
}

/// Most ids bound in one `IN (...)` list, far below SQLite's 32766 bound parameters.
pub(crate) const IDS_PER_QUERY: usize = 500;

/// `?, ?, ?` with `n` placeholders, for `IN (...)` lists.
pub(crate) fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}
