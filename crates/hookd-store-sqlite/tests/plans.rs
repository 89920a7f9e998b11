//! The attempt series reads only its window: SQLite plans it as a search of the covering
//! index on the attempts' start time (for all webhooks or one), never a scan of the table,
//! however many old attempts retention keeps. And what every delivery and execution costs to
//! write: the partial indexes' conditions build no temporary b-tree.

use hookd_core::ids::WebhookId;
use hookd_core::store::Store;
use hookd_store_sql::secrets::Keys;
use hookd_store_sql::series;
use hookd_store_sqlite::SqliteStore;

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
    let path = std::env::temp_dir().join(format!("hookd-plans-{:016x}.db", rand::random::<u64>()));
    let url = format!("sqlite://{}", path.display());
    let store = SqliteStore::connect(&url, Keys::ephemeral())
        .await
        .expect("open");
    store.migrate().await.expect("migrate");
    // A day of old history outside the window, as retention keeps it.
    let webhook = WebhookId::generate(1_600_000_000_000);
    store
        .seed_history(&webhook, 5_000, 1_600_000_000_000)
        .await
        .expect("seed");
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
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
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
    let path = std::env::temp_dir().join(format!("hookd-writes-{:016x}.db", rand::random::<u64>()));
    let url = format!("sqlite://{}", path.display());
    let store = SqliteStore::connect(&url, Keys::ephemeral())
        .await
        .expect("open");
    store.migrate().await.expect("migrate");
    drop(store);
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
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}
