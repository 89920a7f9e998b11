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
    (7, include_str!("../migrations/0007_attempt_series.sql")),
    (8, include_str!("../migrations/0008_predicates.sql")),
    (9, include_str!("../migrations/0009_workers.sql")),
];

/// The runner's table, with the SHA-256 of each migration's SQL in `checksum`.
const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS hookd_migrations (
            version INTEGER NOT NULL PRIMARY KEY,
            applied_at INTEGER NOT NULL,
            checksum TEXT
        )";

pub(crate) async fn run(writer: &SqlitePool, now_ms: i64) -> sqlx::Result<()> {
    let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
    // A table made before checksums were kept gets the column (SQLite has no ADD COLUMN IF NOT
    // EXISTS).
    let table: Option<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'hookd_migrations'",
    )
    .fetch_optional(&mut *tx)
    .await?;
    let has_checksum: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pragma_table_info('hookd_migrations') WHERE name = 'checksum'",
    )
    .fetch_one(&mut *tx)
    .await?;
    if table.is_some() && has_checksum == 0 {
        sqlx::query("ALTER TABLE hookd_migrations ADD COLUMN checksum TEXT")
            .execute(&mut *tx)
            .await?;
    }
    hookd_store_sql::migrate::apply::<Sqlite>(&mut tx, CREATE_TABLE, MIGRATIONS, "SQLite", now_ms)
        .await?;
    tx.commit().await
}
