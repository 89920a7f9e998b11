//! Helpers for tests that run against PostgreSQL: each test gets a schema of its own in one
//! shared database, and a URL whose `search_path` selects it, as a deployment would.

use hookd_core::store::StoreError;
use sqlx::{Connection, PgConnection};

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
    let mut conn = PgConnection::connect(base_url)
        .await
        .map_err(StoreError::backend)?;
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut conn)
        .await
        .map_err(StoreError::backend)?;
    conn.close().await.map_err(StoreError::backend)?;
    Ok(with_search_path(base_url, &schema))
}

/// `base_url` with `options=-c search_path=<schema>` added (URL-encoded).
pub fn with_search_path(base_url: &str, schema: &str) -> String {
    let separator = if base_url.contains('?') { '&' } else { '?' };
    format!("{base_url}{separator}options=-c%20search_path%3D{schema}")
}
