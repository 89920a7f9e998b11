//! Inbound hooks: SQL text both dialects accept as is, the row mapping, and the conditional
//! update run inside a transaction the backend opens and commits. The spec is stored as JSON
//! with its secrets sealed ([`crate::secrets`]); masking them in output is the API's business.

use hookd_core::ids::InboundId;
use hookd_core::inbound::record::InboundHook;
use hookd_core::store::Written;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};

use crate::rows::decode_err;
use crate::RowsAffected;

/// Columns of `inbound_hooks`, in the order [`inbound_hook`] reads them.
#[macro_export]
macro_rules! inbound_columns {
    () => {
        "id, key, spec, created_at, updated_at"
    };
}

/// Binds the columns of [`inbound_columns!`] as `$1`..`$5`.
pub const INSERT: &str = concat!(
    "INSERT INTO inbound_hooks (",
    inbound_columns!(),
    ") VALUES ($1, $2, $3, $4, $5)"
);
/// `$1`: id.
pub const GET: &str = concat!(
    "SELECT ",
    inbound_columns!(),
    " FROM inbound_hooks WHERE id = $1"
);
/// `$1`: the public URL key.
pub const GET_BY_KEY: &str = concat!(
    "SELECT ",
    inbound_columns!(),
    " FROM inbound_hooks WHERE key = $1"
);
/// The first page: `$1` limit.
pub const LIST: &str = concat!(
    "SELECT ",
    inbound_columns!(),
    " FROM inbound_hooks ORDER BY id DESC LIMIT $1"
);
/// A later page: `$1` limit, `$2` the last id of the previous page.
pub const LIST_BEFORE: &str = concat!(
    "SELECT ",
    inbound_columns!(),
    " FROM inbound_hooks WHERE id < $2 ORDER BY id DESC LIMIT $1"
);
/// `$1`: id.
pub const DELETE: &str = "DELETE FROM inbound_hooks WHERE id = $1";
/// `$1`: id; a row when the hook exists.
const EXISTS: &str = "SELECT 1 FROM inbound_hooks WHERE id = $1";
/// Replaces the spec and `updated_at` (`$2`, `$3`) if `updated_at` is still `$4`.
const UPDATE: &str = "UPDATE inbound_hooks SET spec = $2, updated_at = $3
         WHERE id = $1 AND updated_at = $4";

/// A row of [`inbound_columns!`].
pub fn inbound_hook<R>(row: &R) -> sqlx::Result<InboundHook>
where
    R: Row,
    for<'r> &'r str: Decode<'r, R::Database> + Type<R::Database>,
    String: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    i64: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    &'static str: ColumnIndex<R>,
{
    let spec: &str = row.try_get("spec")?;
    Ok(InboundHook {
        id: InboundId::from_trusted(row.try_get("id")?),
        key: row.try_get("key")?,
        spec: serde_json::from_str(spec).map_err(decode_err)?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Inserts the hook with `spec`, its spec as stored (sealed by [`crate::secrets::sealed`]); a
/// taken key is a unique violation.
pub async fn insert<DB>(
    conn: &mut DB::Connection,
    hook: &InboundHook,
    spec: String,
) -> sqlx::Result<()>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    String: for<'q> Encode<'q, DB> + Type<DB>,
    i64: for<'q> Encode<'q, DB> + Type<DB>,
{
    sqlx::query(INSERT)
        .bind(hook.id.as_str())
        .bind(hook.key.as_str())
        .bind(spec)
        .bind(hook.created_at)
        .bind(hook.updated_at)
        .execute(conn)
        .await?;
    Ok(())
}

/// Writes `spec` (the hook's spec as stored, sealed by [`crate::secrets::sealed`]) and
/// `updated_at` if its `updated_at` is still `read_updated_at`.
/// Commit only on [`Written::Done`].
pub async fn update<DB>(
    conn: &mut DB::Connection,
    hook: &InboundHook,
    spec: String,
    read_updated_at: i64,
) -> sqlx::Result<Written>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    String: for<'q> Encode<'q, DB> + Type<DB>,
    i64: for<'q> Encode<'q, DB> + Type<DB>,
    DB::QueryResult: RowsAffected,
{
    let done = sqlx::query(UPDATE)
        .bind(hook.id.as_str())
        .bind(spec)
        .bind(hook.updated_at)
        .bind(read_updated_at)
        .execute(&mut *conn)
        .await?;
    crate::written::<DB>(conn, done.rows_affected(), EXISTS, hook.id.as_str()).await
}
