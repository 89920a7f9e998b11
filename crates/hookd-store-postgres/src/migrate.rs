//! The schema migration runner: applies `migrations/*.sql` in order, recording each version in
//! `hookd_migrations` of the current schema.
//!
//! Several processes may start at once; each takes a transaction-scoped advisory lock (keyed by
//! the schema, so installations in other schemas do not wait) before reading which versions are
//! applied, so one migrates and the others then find nothing left to do. DDL is transactional
//! in PostgreSQL: a failed migration leaves nothing behind. Migrations run without the pool's
//! statement timeout.

use sqlx::{PgPool, Postgres};

/// Every migration, in order: `(version, SQL)`. Versions are never reused or edited once released.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/0001_init.sql")),
    (2, include_str!("../migrations/0002_schedules.sql")),
    (3, include_str!("../migrations/0003_inbound.sql")),
    (4, include_str!("../migrations/0004_isolation.sql")),
    (5, include_str!("../migrations/0005_claim_plans.sql")),
    (6, include_str!("../migrations/0006_intake.sql")),
    (7, include_str!("../migrations/0007_secrets.sql")),
    (8, include_str!("../migrations/0008_attempt_series.sql")),
    (9, include_str!("../migrations/0009_workers.sql")),
    (10, include_str!("../migrations/0010_publish.sql")),
];

/// The runner's table; `checksum` (the SHA-256 of each migration's SQL) is added to a table
/// made before it was kept.
const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS hookd_migrations (
            version BIGINT NOT NULL PRIMARY KEY,
            applied_at BIGINT NOT NULL,
            checksum TEXT
        );
        ALTER TABLE hookd_migrations ADD COLUMN IF NOT EXISTS checksum TEXT";

pub(crate) async fn run(pool: &PgPool, now_ms: i64) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    // A migration may rebuild an index over a large table; the pool's statement timeout is
    // for the statements that serve requests.
    sqlx::query("SET LOCAL statement_timeout = 0")
        .execute(&mut *tx)
        .await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('hookd_migrate:' || current_schema()))")
        .execute(&mut *tx)
        .await?;
    hookd_store_sql::migrate::apply::<Postgres>(
        &mut tx,
        CREATE_TABLE,
        MIGRATIONS,
        "PostgreSQL",
        now_ms,
    )
    .await?;
    tx.commit().await
}
