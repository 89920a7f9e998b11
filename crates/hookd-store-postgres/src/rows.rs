//! Row mapping: the shared mapping of `hookd-store-sql` with PostgreSQL's integer width.

use hookd_core::delivery::Delivery;
use sqlx::postgres::PgRow;

pub(crate) use hookd_store_sql::rows::{attempt, encode_err, event, store_err, webhook};
pub(crate) use hookd_store_sql::{delivery_columns, event_columns, webhook_columns};

/// A row of [`delivery_columns!`]; PostgreSQL's `INTEGER` columns decode as `i32`.
pub(crate) fn delivery(row: &PgRow) -> sqlx::Result<Delivery> {
    hookd_store_sql::rows::delivery::<_, i32>(row)
}

/// A count or small number for an `INTEGER` column (attempts, entry index, status code).
pub(crate) fn int(v: impl Into<i64>) -> i32 {
    i32::try_from(v.into()).unwrap_or(i32::MAX)
}
