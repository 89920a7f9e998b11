//! The schema migration runner: applies `migrations/*.sql` in order, recording each version in
//! `hookd_migrations`.
//!
//! Several processes may start at once on one file; `BEGIN IMMEDIATE` takes SQLite's write lock
//! before the runner reads which versions are applied, so one process migrates and the others
//! wait (up to the busy timeout), then find nothing left to do.

use sqlx::{Executor, Row, SqlitePool};

/// Every migration, in order: `(version, SQL)`. Versions are never reused or edited once released.
const MIGRATIONS: &[(i64, &str)] = &[(1, include_str!("../migrations/0001_init.sql"))];

pub(crate) async fn run(writer: &SqlitePool, now_ms: i64) -> sqlx::Result<()> {
    let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS hookd_migrations (
            version INTEGER NOT NULL PRIMARY KEY,
            applied_at INTEGER NOT NULL
        )",
    )
    .execute(&mut *tx)
    .await?;
    let applied: Vec<i64> = sqlx::query("SELECT version FROM hookd_migrations")
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|row| row.try_get("version"))
        .collect::<sqlx::Result<_>>()?;
    for (version, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        tracing::info!(version, "applying SQLite migration");
        tx.execute(sqlx::raw_sql(sql)).await?;
        sqlx::query("INSERT INTO hookd_migrations (version, applied_at) VALUES ($1, $2)")
            .bind(version)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}
