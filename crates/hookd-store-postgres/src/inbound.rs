//! Inbound hooks: the shared SQL of `hookd-store-sql`, each write in a transaction of its own.

use hookd_core::ids::InboundId;
use hookd_core::inbound::record::InboundHook;
use hookd_core::store::{Page, Written};
use hookd_store_sql::inbound::{self as sql, inbound_hook};
use hookd_store_sql::secrets::{self, Keys};
use sqlx::{PgConnection, PgPool, Postgres};

pub(crate) async fn insert(pool: &PgPool, keys: &Keys, hook: &InboundHook) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    let spec = sealed(&mut tx, keys, hook).await?;
    sql::insert::<Postgres>(&mut tx, hook, spec).await?;
    tx.commit().await
}

pub(crate) async fn update(
    pool: &PgPool,
    keys: &Keys,
    hook: &InboundHook,
    read_updated_at: i64,
) -> sqlx::Result<Written> {
    let mut tx = pool.begin().await?;
    let spec = sealed(&mut tx, keys, hook).await?;
    let written = sql::update::<Postgres>(&mut tx, hook, spec, read_updated_at).await?;
    if written == Written::Done {
        tx.commit().await?;
    }
    Ok(written)
}

/// The spec as stored, its secrets sealed with the active data key.
async fn sealed(conn: &mut PgConnection, keys: &Keys, hook: &InboundHook) -> sqlx::Result<String> {
    let (id, at) = (hook.id.as_str(), hook.updated_at);
    secrets::sealed::<Postgres, _>(conn, crate::ACTIVE_KEY, keys, id, &hook.spec, at).await
}

pub(crate) async fn delete(pool: &PgPool, id: &InboundId) -> sqlx::Result<bool> {
    let done = sqlx::query(sql::DELETE)
        .bind(id.as_str())
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

pub(crate) async fn get(pool: &PgPool, id: &InboundId) -> sqlx::Result<Option<InboundHook>> {
    sqlx::query(sql::GET)
        .bind(id.as_str())
        .fetch_optional(pool)
        .await?
        .as_ref()
        .map(inbound_hook)
        .transpose()
}

pub(crate) async fn get_by_key(pool: &PgPool, key: &str) -> sqlx::Result<Option<InboundHook>> {
    sqlx::query(sql::GET_BY_KEY)
        .bind(key)
        .fetch_optional(pool)
        .await?
        .as_ref()
        .map(inbound_hook)
        .transpose()
}

pub(crate) async fn list(pool: &PgPool, page: &Page) -> sqlx::Result<Vec<InboundHook>> {
    hookd_store_sql::page::query::<Postgres>(sql::LIST, sql::LIST_BEFORE, page)
        .fetch_all(pool)
        .await?
        .iter()
        .map(inbound_hook)
        .collect()
}
