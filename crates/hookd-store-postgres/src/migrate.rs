//! The schema migration runner: applies `migrations/*.sql` in order, recording each version in
//! `hookd_migrations` of the current schema.
//!
//! Several processes may start at once; each takes a transaction-scoped advisory lock (keyed by
//! the schema, so installations in other schemas do not wait) before reading which versions are
//! applied, so one migrates and the others then find nothing left to do. DDL is transactional
//! in PostgreSQL: a failed migration leaves nothing behind.

use sqlx::{Executor, PgPool, Row};

/// Every migration, in order: `(version, SQL)`. Versions are never reused or edited once released.
const MIGRATIONS: &[(i64, &str)] = &[(1, include_str!("../migrations/0001_init.sql"))];

pub(crate) async fn run(pool: &PgPool, now_ms: i64) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('hookd_migrate:' || current_schema()))")
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS hookd_migrations (
            version BIGINT NOT NULL PRIMARY KEY,
            applied_at BIGINT NOT NULL
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
        tracing::info!(version, "applying PostgreSQL migration");
        tx.execute(sqlx::raw_sql(sql)).await?;
        sqlx::query("INSERT INTO hookd_migrations (version, applied_at) VALUES ($1, $2)")
            .bind(version)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}
