//! Admin API tokens: only their SHA-256 hashes are stored.

use hookd_core::store::TokenRecord;
use hookd_store_sql::tokens::{COUNT, HASH_EXISTS, INSERT};
use sqlx::{PgPool, Row};

pub(crate) async fn count(pool: &PgPool) -> sqlx::Result<u64> {
    let row = sqlx::query(COUNT).fetch_one(pool).await?;
    Ok(row.try_get::<i64, _>("n")?.max(0) as u64)
}

pub(crate) async fn insert(pool: &PgPool, token: &TokenRecord) -> sqlx::Result<()> {
    sqlx::query(INSERT)
        .bind(token.id.as_str())
        .bind(&token.name)
        .bind(&token.hash)
        .bind(token.created_at)
        .execute(pool)
        .await?;
    Ok(())
}

pub(crate) async fn hash_exists(pool: &PgPool, hash: &str) -> sqlx::Result<bool> {
    let row = sqlx::query(HASH_EXISTS)
        .bind(hash)
        .fetch_optional(pool)
        .await?;
    Ok(row.is_some())
}
