//! Row mapping: the column lists queries select, how rows become domain values, and how sqlx
//! errors become [`StoreError`]s. The mapping is generic over the row type; a backend names the
//! integer type its small-number columns decode as (`INTEGER` is 64-bit in SQLite, 32-bit in
//! PostgreSQL).

use std::fmt::Display;

use hookd_core::delivery::{Attempt, Delivery, DeliveryStatus};
use hookd_core::event::Event;
use hookd_core::flow::{Candidate, Circuit, Limits};
use hookd_core::ids::{DeliveryId, EventId, ScheduleId, WebhookId};
use hookd_core::store::StoreError;
use hookd_core::webhook::Webhook;
use sqlx::{ColumnIndex, Decode, Row, Type};

/// Columns of `webhooks` that make a [`Webhook`], in the order [`webhook`] reads them.
#[macro_export]
macro_rules! webhook_columns {
    () => {
        "id, active, disabled_reason, failing_since, spec, created_at, updated_at, \
         circuit_failures, circuit_open_until, circuit_opens"
    };
}
/// Columns of `events`, in the order [`event`] reads them.
#[macro_export]
macro_rules! event_columns {
    () => {
        "id, event_type, model, data, occurred_at, idempotency_key, created_at"
    };
}
/// Columns of `deliveries` that make a [`Delivery`] (the lease token stays inside the store).
#[macro_export]
macro_rules! delivery_columns {
    () => {
        "id, event_id, webhook_id, status, attempts, next_attempt_at, entry_index, \
         last_status_code, last_error, schedule_id, occurrence, message, created_at, updated_at"
    };
}

/// Maps a sqlx error: unique violations are [`StoreError::Conflict`]; a database that cannot be
/// reached or cannot write now is [`StoreError::Unavailable`]; the rest backend errors.
pub fn store_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(db.message().to_owned())
        }
        e if is_unavailable(e) => StoreError::Unavailable(e.to_string()),
        _ => StoreError::backend(e),
    }
}

/// Errors that say nothing about the statement, only that the database is out of reach or out
/// of room for now: no connection (refused, lost, none free in time), PostgreSQL's connection
/// and shutdown classes (`08…`, `57P01`–`57P03`), a statement cancelled by the statement
/// timeout (`57014`) and out-of-space (`53100`), SQLite's busy,
/// I/O and disk-full results.
pub fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                // The primary result code is the low byte: BUSY 5, IOERR 10, FULL 13.
                code.parse::<i32>()
                    .is_ok_and(|n| matches!(n & 0xff, 5 | 10 | 13))
            } else {
                code.starts_with("08")
                    || matches!(&*code, "57P01" | "57P02" | "57P03" | "57014" | "53100")
            }
        }
        _ => false,
    }
}

/// A stored value that does not decode (corrupt JSON, an unknown status).
pub fn decode_err(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> sqlx::Error {
    sqlx::Error::Decode(e.into())
}

/// JSON that cannot be written (never happens with hookd's types, but serde can say no).
pub fn encode_err(e: serde_json::Error) -> sqlx::Error {
    sqlx::Error::Encode(Box::new(e))
}

/// A column the row type can read as `T`.
fn get<'r, T, R>(row: &'r R, column: &'static str) -> sqlx::Result<T>
where
    R: Row,
    T: Decode<'r, R::Database> + Type<R::Database>,
    &'static str: ColumnIndex<R>,
{
    row.try_get(column)
}

/// A small unsigned number stored as the backend's integer type `N`.
fn small_uint<R, N, T>(row: &R, column: &'static str) -> sqlx::Result<T>
where
    R: Row,
    N: for<'r> Decode<'r, R::Database> + Type<R::Database> + Copy + Display,
    T: TryFrom<N>,
    &'static str: ColumnIndex<R>,
{
    let v: N = get(row, column)?;
    T::try_from(v).map_err(|_| decode_err(format!("{column} out of range: {v}")))
}

/// [`small_uint`] for a nullable column.
fn opt_small_uint<R, N, T>(row: &R, column: &'static str) -> sqlx::Result<Option<T>>
where
    R: Row,
    N: for<'r> Decode<'r, R::Database> + Type<R::Database> + Copy + Display,
    T: TryFrom<N>,
    &'static str: ColumnIndex<R>,
{
    match get::<Option<N>, R>(row, column)? {
        None => Ok(None),
        Some(v) => T::try_from(v)
            .map(Some)
            .map_err(|_| decode_err(format!("{column} out of range: {v}"))),
    }
}

/// A row of [`webhook_columns!`]; `N` is the backend's type for the circuit's counters.
pub fn webhook<R, N>(row: &R) -> sqlx::Result<Webhook>
where
    R: Row,
    N: for<'r> Decode<'r, R::Database> + Type<R::Database> + Copy + Display,
    u32: TryFrom<N>,
    Option<i64>: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    for<'r> &'r str: Decode<'r, R::Database> + Type<R::Database>,
    String: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    i64: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    bool: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    &'static str: ColumnIndex<R>,
{
    let spec: &str = get(row, "spec")?;
    Ok(Webhook {
        id: WebhookId::from_trusted(get(row, "id")?),
        active: get(row, "active")?,
        disabled_reason: get(row, "disabled_reason")?,
        failing_since: get(row, "failing_since")?,
        spec: serde_json::from_str(spec).map_err(decode_err)?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
        circuit: Circuit {
            consecutive_failures: small_uint::<R, N, _>(row, "circuit_failures")?,
            open_until: get(row, "circuit_open_until")?,
            opens: small_uint::<R, N, _>(row, "circuit_opens")?,
        },
    })
}

/// A candidate row of a claim (`webhook_id, due_at, in_flight`, then
/// [`candidate_limit_columns!`]): one webhook a claim may take deliveries of.
pub fn candidate<R, N>(row: &R) -> sqlx::Result<Candidate>
where
    R: Row,
    N: for<'r> Decode<'r, R::Database> + Type<R::Database> + Copy + Display,
    u32: TryFrom<N>,
    String: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    i64: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    Option<i64>: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    Option<N>: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    Option<bool>: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    &'static str: ColumnIndex<R>,
{
    let exists: Option<N> = get(row, "circuit_failures")?;
    let in_flight: i64 = get(row, "in_flight")?;
    let limits = match exists {
        None => None,
        Some(_) => Some(Limits {
            active: get::<Option<bool>, R>(row, "active")?.unwrap_or(true),
            max_in_flight: opt_small_uint::<R, N, _>(row, "max_in_flight")?,
            rate_limit: opt_small_uint::<R, N, _>(row, "rate_limit")?,
            rate_tat_us: get::<Option<i64>, R>(row, "rate_tat_us")?.unwrap_or(0),
            circuit: Circuit {
                consecutive_failures: small_uint::<R, N, _>(row, "circuit_failures")?,
                open_until: get(row, "circuit_open_until")?,
                opens: small_uint::<R, N, _>(row, "circuit_opens")?,
            },
        }),
    };
    Ok(Candidate {
        webhook_id: WebhookId::from_trusted(get(row, "webhook_id")?),
        due_at: get(row, "due_at")?,
        in_flight: <u32 as TryFrom<i64>>::try_from(in_flight.max(0)).unwrap_or(u32::MAX),
        limits,
    })
}

/// A row of [`event_columns!`].
pub fn event<R>(row: &R) -> sqlx::Result<Event>
where
    R: Row,
    for<'r> &'r str: Decode<'r, R::Database> + Type<R::Database>,
    String: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    i64: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    &'static str: ColumnIndex<R>,
{
    let data: &str = get(row, "data")?;
    Ok(Event {
        id: EventId::from_trusted(get(row, "id")?),
        event_type: get(row, "event_type")?,
        model: get(row, "model")?,
        data: serde_json::from_str(data).map_err(decode_err)?,
        occurred_at: get(row, "occurred_at")?,
        idempotency_key: get(row, "idempotency_key")?,
        created_at: get(row, "created_at")?,
    })
}

/// A row of [`delivery_columns!`]; `N` is the backend's type for `attempts`, `entry_index` and
/// `last_status_code`.
pub fn delivery<R, N>(row: &R) -> sqlx::Result<Delivery>
where
    R: Row,
    N: for<'r> Decode<'r, R::Database> + Type<R::Database> + Copy + Display,
    u32: TryFrom<N>,
    u16: TryFrom<N>,
    for<'r> &'r str: Decode<'r, R::Database> + Type<R::Database>,
    String: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    i64: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    &'static str: ColumnIndex<R>,
{
    let status: &str = get(row, "status")?;
    Ok(Delivery {
        id: DeliveryId::from_trusted(get(row, "id")?),
        event_id: EventId::from_trusted(get(row, "event_id")?),
        webhook_id: WebhookId::from_trusted(get(row, "webhook_id")?),
        status: DeliveryStatus::parse(status)
            .ok_or_else(|| decode_err(format!("unknown delivery status {status:?}")))?,
        attempts: small_uint::<R, N, _>(row, "attempts")?,
        next_attempt_at: get(row, "next_attempt_at")?,
        entry_index: opt_small_uint::<R, N, _>(row, "entry_index")?,
        last_status_code: opt_small_uint::<R, N, _>(row, "last_status_code")?,
        last_error: get(row, "last_error")?,
        schedule_id: get::<Option<String>, R>(row, "schedule_id")?.map(ScheduleId::from_trusted),
        occurrence: get(row, "occurrence")?,
        message: get(row, "message")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
    })
}

/// A row holding an attempt's `record` JSON.
pub fn attempt<R>(row: &R) -> sqlx::Result<Attempt>
where
    R: Row,
    for<'r> &'r str: Decode<'r, R::Database> + Type<R::Database>,
    &'static str: ColumnIndex<R>,
{
    let record: &str = get(row, "record")?;
    serde_json::from_str(record).map_err(decode_err)
}
