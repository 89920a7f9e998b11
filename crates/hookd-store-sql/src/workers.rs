//! SQL text for the worker processes alive (`workers`, migration 9).

/// `$1` id, `$2` now: the worker is alive.
pub const SEEN: &str = "INSERT INTO workers (id, seen_at) VALUES ($1, $2)
    ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at";
/// `$1`: forgets the workers not seen since.
pub const EXPIRE: &str = "DELETE FROM workers WHERE seen_at < $1";
/// The workers alive, in id order.
pub const LIVE: &str = "SELECT id FROM workers ORDER BY id";
/// `$1`: forgets that worker (it stopped).
pub const LEAVE: &str = "DELETE FROM workers WHERE id = $1";

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Type};

/// Notes worker `id` alive at `now_ms`, forgets the workers not seen since `expired_before`,
/// and returns the ids of those alive, in order (`id` among them). Three statements, each its
/// own transaction: a worker forgotten between two of them says so again on its next beat.
pub async fn heartbeat<DB>(
    pool: &Pool<DB>,
    id: &str,
    now_ms: i64,
    expired_before: i64,
) -> sqlx::Result<Vec<String>>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    i64: for<'q> Encode<'q, DB> + Type<DB>,
    String: for<'r> Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    sqlx::query(SEEN)
        .bind(id)
        .bind(now_ms)
        .execute(pool)
        .await?;
    sqlx::query(EXPIRE)
        .bind(expired_before)
        .execute(pool)
        .await?;
    sqlx::query(LIVE)
        .fetch_all(pool)
        .await?
        .iter()
        .map(|row| row.try_get::<String, _>(0))
        .collect()
}

/// Forgets worker `id`: it is stopping, and the others take its share at once.
pub async fn leave<DB>(pool: &Pool<DB>, id: &str) -> sqlx::Result<()>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
{
    sqlx::query(LEAVE).bind(id).execute(pool).await?;
    Ok(())
}
