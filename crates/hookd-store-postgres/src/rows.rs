//! Row mapping: the shared mapping of `hookd-store-sql` with PostgreSQL's integer width.

use hookd_core::delivery::Delivery;
use hookd_core::flow::Candidate;
use hookd_core::webhook::Webhook;
use sqlx::postgres::PgRow;

pub(crate) use hookd_store_sql::rows::{attempt, encode_err, event, store_err};
pub(crate) use hookd_store_sql::{delivery_columns, event_columns, webhook_columns};

/// A row of [`delivery_columns!`]; PostgreSQL's `INTEGER` columns decode as `i32`.
pub(crate) fn delivery(row: &PgRow) -> sqlx::Result<Delivery> {
    hookd_store_sql::rows::delivery::<_, i32>(row)
}

/// A count or small number for an `INTEGER` column (attempts, entry index, status code).
pub(crate) fn int(v: impl Into<i64>) -> i32 {
    i32::try_from(v.into()).unwrap_or(i32::MAX)
}

/// A row of [`webhook_columns!`].
pub(crate) fn webhook(row: &PgRow) -> sqlx::Result<Webhook> {
    hookd_store_sql::rows::webhook::<_, i32>(row)
}

/// A row of the claim's candidate query.
pub(crate) fn candidate(row: &PgRow) -> sqlx::Result<Candidate> {
    hookd_store_sql::rows::candidate::<_, i32>(row)
}
