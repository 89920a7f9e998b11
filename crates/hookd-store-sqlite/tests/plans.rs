//! The attempt series reads only its window: SQLite plans it as a search of the covering
//! index on the attempts' start time (for all webhooks or one), never a scan of the table,
//! however many old attempts retention keeps. And what every delivery and execution costs to
//! write: the partial indexes' conditions build no temporary b-tree, and the upgrade that
//! rebuilt them with those conditions keeps their rows.

use hookd_core::ids::WebhookId;
use hookd_core::store::Store;
use hookd_store_sql::secrets::Keys;
use hookd_store_sql::series;
use hookd_store_sqlite::SqliteStore;

/// A database file of a test's own, removed with its WAL files when the test ends.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(name: &str) -> Self {
        let file = format!("hookd-{name}-{:016x}.db", rand::random::<u64>());
        Self(std::env::temp_dir().join(file))
    }

    fn url(&self) -> String {
        format!("sqlite://{}", self.0.display())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.0.display()));
        }
    }
}

/// A store on `url` with every migration applied.
async fn migrated(url: &str) -> SqliteStore {
    let store = SqliteStore::connect(url, Keys::ephemeral())
        .await
        .expect("open");
    store.migrate().await.expect("migrate");
    store
}

/// A migrated store on `url` holding `n` finished deliveries of one webhook, from 2020.
async fn with_history(url: &str, n: u64) -> (SqliteStore, WebhookId) {
    let store = migrated(url).await;
    let webhook = WebhookId::generate(1_600_000_000_000);
    store
        .seed_history(&webhook, n, 1_600_000_000_000)
        .await
        .expect("seed");
    (store, webhook)
}

/// The plan's detail lines of `sql`, its parameters bound to the window's values.
async fn plan(url: &str, sql: &str, webhook: Option<&str>) -> Vec<String> {
    let pool = sqlx::SqlitePool::connect(url).await.expect("open");
    let explain = format!("EXPLAIN QUERY PLAN {sql}");
    let mut query = sqlx::query_as::<_, (i64, i64, i64, String)>(&explain)
        .bind(1_700_000_000_000_i64)
        .bind(60_000_i64)
        .bind(1_700_003_600_000_i64);
    if let Some(id) = webhook {
        query = query.bind(id);
    }
    let rows = query.fetch_all(&pool).await.expect("explain");
    pool.close().await;
    rows.into_iter().map(|(_, _, _, detail)| detail).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_attempt_series_searches_the_start_time_index() {
    let file = TempFile::new("plans");
    let url = file.url();
    // A day of old history outside the window, as retention keeps it.
    let (store, webhook) = with_history(&url, 5_000).await;
    drop(store);

    let all = plan(&url, &series::query_all(), None).await;
    assert!(
        all.iter()
            .any(|d| d.starts_with("SEARCH attempts USING COVERING INDEX attempts_started ")),
        "{all:?}"
    );
    // One webhook's attempts come out of the same range of the window (one index, not two:
    // every attempt written pays for each).
    let one = plan(&url, &series::query_one_webhook(), Some(webhook.as_str())).await;
    assert!(
        one.iter()
            .any(|d| d.starts_with("SEARCH attempts USING COVERING INDEX attempts_started ")),
        "{one:?}"
    );
    assert!(
        !all.iter()
            .chain(&one)
            .any(|d| d.starts_with("SCAN attempts")),
        "{all:?} {one:?}"
    );
}

/// How many temporary b-trees SQLite's program for `sql` opens (`OpenEphemeral`), with
/// `params` NULL parameters bound.
async fn ephemeral_tables(pool: &sqlx::SqlitePool, sql: &str, params: usize) -> usize {
    let explain = format!("EXPLAIN {sql}");
    let mut query = sqlx::query(&explain);
    for _ in 0..params {
        query = query.bind(None::<i64>);
    }
    let rows = query.fetch_all(pool).await.expect("explain");
    rows.iter()
        .filter(|r| sqlx::Row::get::<String, _>(*r, "opcode") == "OpenEphemeral")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writing_a_delivery_or_an_execution_builds_no_temporary_table() {
    let file = TempFile::new("writes");
    let url = file.url();
    drop(migrated(&url).await);
    let pool = sqlx::SqlitePool::connect(&url).await.expect("open");
    // Every write checks each partial index's condition for the rows it writes: an IN list
    // of more than two constants there would build a b-tree of them for every statement.
    let writes = [
        (
            "INSERT INTO deliveries (id, event_id, webhook_id, status, attempts, \
             next_attempt_at, entry_index, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            9,
        ),
        (
            "UPDATE deliveries SET status = $1, attempts = $2, next_attempt_at = $3, \
             lease_token = $4 WHERE id = $5",
            5,
        ),
        (
            "INSERT INTO executions (id, hook_id, mode, status, record, attempts, \
             next_attempt_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            9,
        ),
        (
            "UPDATE executions SET status = $1, next_attempt_at = $2 WHERE id = $3",
            3,
        ),
    ];
    for (sql, params) in writes {
        assert_eq!(ephemeral_tables(&pool, sql, params).await, 0, "{sql}");
    }
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upgrade_to_equalities_keeps_the_rows_of_the_indexes_it_rebuilds() {
    let file = TempFile::new("upgrade");
    let url = file.url();
    let (store, _) = with_history(&url, 1_000).await;
    // Back to version 7: the retention index with its IN list, as that release made it.
    let pool = sqlx::SqlitePool::connect(&url).await.expect("open");
    for sql in [
        "DROP INDEX deliveries_finished",
        "CREATE INDEX deliveries_finished ON deliveries (created_at)
             WHERE status IN ('succeeded', 'failed', 'cancelled')",
        "DELETE FROM hookd_migrations WHERE version = 8",
    ] {
        sqlx::query(sql).execute(&pool).await.expect(sql);
    }
    store.migrate().await.expect("migrate from version 7");
    let finished: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM deliveries INDEXED BY deliveries_finished
         WHERE (status = 'succeeded' OR status = 'failed' OR status = 'cancelled')
           AND created_at < $1",
    )
    .bind(i64::MAX)
    .fetch_one(&pool)
    .await
    .expect("the rebuilt index answers the retention query");
    assert_eq!(
        finished, 1_000,
        "every finished delivery is in the rebuilt index"
    );
    pool.close().await;
}
