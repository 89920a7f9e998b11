//! Row mapping: the shared mapping of `hookd-store-sql` with SQLite's integer width, and the
//! `IN (...)` lists SQLite uses where PostgreSQL binds an array.

use hookd_core::delivery::Delivery;
use hookd_core::flow::Candidate;
use hookd_core::webhook::Webhook;
use sqlx::sqlite::SqliteRow;

pub(crate) use hookd_store_sql::rows::{attempt, encode_err, event, store_err};
pub(crate) use hookd_store_sql::{delivery_columns, event_columns, webhook_columns};

/// A row of [`delivery_columns!`]; SQLite's `INTEGER` columns decode as `i64`.
pub(crate) fn delivery(row: &SqliteRow) -> sqlx::Result<Delivery> {
    hookd_store_sql::rows::delivery::<_, i64>(row)
}

/// Most ids bound in one `IN (...)` list, far below SQLite's 32766 bound parameters.
pub(crate) const IDS_PER_QUERY: usize = 500;

/// Most rows (or ids) of a statement whose text depends on its row count that is kept
/// prepared in the connection's statement cache. At low rates every write carries one or two
/// rows, and preparing the same few texts again cost a sixth of the instructions per event;
/// larger shapes are prepared each time (rarer, and their preparation is shared by their rows),
/// so they never crowd the fixed statements out of the cache.
const CACHED_SHAPES: usize = 4;

/// Whether a statement built for `rows` rows stays prepared (see [`CACHED_SHAPES`]).
pub(crate) fn cached(rows: usize) -> bool {
    rows <= CACHED_SHAPES
}

/// `?, ?, ?` with `n` placeholders, for `IN (...)` lists.
pub(crate) fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// A row of [`webhook_columns!`].
pub(crate) fn webhook(row: &SqliteRow) -> sqlx::Result<Webhook> {
    hookd_store_sql::rows::webhook::<_, i64>(row)
}

/// A row of the claim's candidate query.
pub(crate) fn candidate(row: &SqliteRow) -> sqlx::Result<Candidate> {
    hookd_store_sql::rows::candidate::<_, i64>(row)
}
