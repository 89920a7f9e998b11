//! Helpers for tests that run against PostgreSQL: each test gets a schema of its own in one
//! shared database, and a URL whose `search_path` selects it, as a deployment would.

use std::time::{Duration, Instant};

use hookd_core::store::StoreError;
use sqlx::{Connection, PgConnection, Row};

/// The database the PostgreSQL tests run in: `HOOKD_TEST_DATABASE_URL`. Unset, the caller's
/// case is skipped with a message (`what` names it), unless `HOOKD_TEST_POSTGRES=required`
/// (as `.ci/run` sets it): then the missing URL fails the test instead of passing silently.
pub fn test_database_url(what: &str) -> Option<String> {
    match std::env::var("HOOKD_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("HOOKD_TEST_POSTGRES").is_ok_and(|v| v == "required") => panic!(
            "HOOKD_TEST_POSTGRES=required but HOOKD_TEST_DATABASE_URL is not set: {what} cannot run"
        ),
        _ => {
            eprintln!("HOOKD_TEST_DATABASE_URL is not set: {what} skipped");
            None
        }
    }
}

async fn connect(url: &str) -> Result<PgConnection, StoreError> {
    PgConnection::connect(url)
        .await
        .map_err(StoreError::backend)
}

/// Creates the schema `hookd_test_<suffix>` in the database at `base_url` and returns a URL
/// for it. `suffix` may hold ASCII letters, digits and `_`.
pub async fn fresh_schema_url(base_url: &str, suffix: &str) -> Result<String, StoreError> {
    if suffix.is_empty()
        || !suffix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(StoreError::Backend(
            format!("bad schema suffix {suffix:?}").into(),
        ));
    }
    let schema = format!("hookd_test_{}", suffix.to_ascii_lowercase());
    let mut conn = connect(base_url).await?;
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut conn)
        .await
        .map_err(StoreError::backend)?;
    conn.close().await.map_err(StoreError::backend)?;
    Ok(with_search_path(base_url, &schema))
}

/// Drops a schema made by [`fresh_schema_url`] with everything in it.
pub async fn drop_schema(base_url: &str, schema: &str) -> Result<(), StoreError> {
    let mut conn = connect(base_url).await?;
    sqlx::query(&format!(
        "DROP SCHEMA \"{}\" CASCADE",
        schema.replace('"', "")
    ))
    .execute(&mut conn)
    .await
    .map_err(StoreError::backend)?;
    Ok(())
}

/// [`drop_schema`], waiting at most `lock_timeout` for the locks of connections still using it
/// (a store that runs on at a test's end); past it the schema stays and the error says so.
pub async fn drop_schema_within(
    base_url: &str,
    schema: &str,
    lock_timeout: Duration,
) -> Result<(), StoreError> {
    let mut conn = connect(base_url).await?;
    sqlx::query(&format!("SET lock_timeout = {}", lock_timeout.as_millis()))
        .execute(&mut conn)
        .await
        .map_err(StoreError::backend)?;
    sqlx::query(&format!(
        "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
        schema.replace('"', "")
    ))
    .execute(&mut conn)
    .await
    .map_err(StoreError::backend)?;
    conn.close().await.map_err(StoreError::backend)
}

/// `base_url` with `options=-c search_path=<schema>` added (URL-encoded).
pub fn with_search_path(base_url: &str, schema: &str) -> String {
    let separator = if base_url.contains('?') { '&' } else { '?' };
    format!("{base_url}{separator}options=-c%20search_path%3D{schema}")
}

/// `url` with `application_name=<name>` added, so a test can find the store's connections in
/// `pg_stat_activity`.
pub fn with_application_name(url: &str, name: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}application_name={name}")
}

/// Ends every connection named `name` and waits until they are gone: a backend flushes its
/// table statistics when it ends, so after this `pg_stat_user_tables` holds what they read.
/// Call it once the store using them has stopped. A connection made meanwhile that has run
/// nothing yet, or only `LISTEN`, read nothing and is not waited for. Fails after `within`.
pub async fn end_connections(
    base_url: &str,
    name: &str,
    within: Duration,
) -> Result<(), StoreError> {
    let mut conn = connect(base_url).await?;
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
    )
    .bind(name)
    .execute(&mut conn)
    .await
    .map_err(StoreError::backend)?;
    let deadline = Instant::now() + within;
    loop {
        let open: Vec<String> = sqlx::query_scalar(
            "SELECT coalesce(state, '') || ': ' || query FROM pg_stat_activity
             WHERE application_name = $1 AND query <> '' AND query NOT LIKE 'LISTEN%'",
        )
        .bind(name)
        .fetch_all(&mut conn)
        .await
        .map_err(StoreError::backend)?;
        if open.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(StoreError::Backend(
                format!("connections named {name} still open after {within:?}: {open:?}").into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Per table of `schema`: how many sequential scans it had and how many rows they read.
pub async fn sequential_reads(
    base_url: &str,
    schema: &str,
) -> Result<Vec<(String, i64, i64)>, StoreError> {
    let mut conn = connect(base_url).await?;
    let rows = sqlx::query(
        "SELECT relname::text AS name, seq_scan, seq_tup_read FROM pg_stat_user_tables
         WHERE schemaname = $1 ORDER BY relname",
    )
    .bind(schema)
    .fetch_all(&mut conn)
    .await
    .map_err(StoreError::backend)?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("name")?,
                r.try_get("seq_scan")?,
                r.try_get("seq_tup_read")?,
            ))
        })
        .collect::<sqlx::Result<_>>()
        .map_err(StoreError::backend)
}

/// Stores `count` finished executions of `hook_id` made at `at_ms` (their records are empty:
/// only their number matters), as retained history.
pub async fn seed_executions(
    url: &str,
    hook_id: &str,
    count: u64,
    at_ms: i64,
) -> Result<(), StoreError> {
    let mut conn = connect(url).await?;
    sqlx::query(
        "INSERT INTO executions (id, hook_id, mode, status, record, attempts, next_attempt_at,
             lease_token, created_at, updated_at)
         SELECT 'exe_0000HISTORY' || lpad(n::text, 15, '0'), $1, 'async', 'succeeded', '{}', 1,
             NULL, NULL, $3, $3
         FROM generate_series(1, $2::bigint) AS n",
    )
    .bind(hook_id)
    .bind(count as i64)
    .bind(at_ms)
    .execute(&mut conn)
    .await
    .map_err(StoreError::backend)?;
    Ok(())
}
