//! The schema migration runner: applies `migrations/*.sql` in order, recording each version in
//! `hookd_migrations`.
//!
//! Several processes may start at once on one file; `BEGIN IMMEDIATE` takes SQLite's write lock
//! before the runner reads which versions are applied, so one process migrates and the others
//! wait (up to the busy timeout), then find nothing left to do.

use sqlx::{Sqlite, SqlitePool};

/// Every migration, in order: `(version, SQL)`. Versions are never reused or edited once released.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/0001_init.sql")),
    (2, include_str!("../migrations/0002_schedules.sql")),
    (3, include_str!("../migrations/0003_inbound.sql")),
    (4, include_str!("../migrations/0004_isolation.sql")),
    (5, include_str!("../migrations/0005_intake.sql")),
    (6, include_str!("../migrations/0006_secrets.sql")),
];

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS hookd_migrations (
            version INTEGER NOT NULL PRIMARY KEY,
            applied_at INTEGER NOT NULL
        )";

pub(crate) async fn run(writer: &SqlitePool, now_ms: i64) -> sqlx::Result<()> {
    let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
    hookd_store_sql::migrate::apply::<Sqlite>(&mut tx, CREATE_TABLE, MIGRATIONS, "SQLite", now_ms)
        .await?;
    tx.commit().await
}
