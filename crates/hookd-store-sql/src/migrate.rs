//! The schema migration runner, once the backend holds a transaction that keeps other
//! processes from migrating at the same time (how it does that is the backend's business).

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};

/// Applies, in order, the `(version, SQL)` migrations not yet recorded in `hookd_migrations`,
/// recording each. `create_table` creates `hookd_migrations (version, applied_at)` if missing,
/// with the dialect's integer types; `backend` names the database in the log.
pub async fn apply<DB>(
    conn: &mut DB::Connection,
    create_table: &str,
    migrations: &[(i64, &str)],
    backend: &str,
    now_ms: i64,
) -> sqlx::Result<()>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    i64: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    &'static str: ColumnIndex<DB::Row>,
{
    sqlx::query(create_table).execute(&mut *conn).await?;
    let applied: Vec<i64> = sqlx::query("SELECT version FROM hookd_migrations")
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|row| row.try_get("version"))
        .collect::<sqlx::Result<_>>()?;
    for (version, sql) in migrations {
        if applied.contains(version) {
            continue;
        }
        tracing::info!(version, "applying {backend} migration");
        conn.execute(sqlx::raw_sql(sql)).await?;
        sqlx::query("INSERT INTO hookd_migrations (version, applied_at) VALUES ($1, $2)")
            .bind(version)
            .bind(now_ms)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}
