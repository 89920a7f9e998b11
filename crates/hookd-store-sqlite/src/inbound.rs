//! Inbound hooks: the shared SQL of `hookd-store-sql`, each write on the single writer.

use hookd_core::ids::InboundId;
use hookd_core::inbound::record::InboundHook;
use hookd_core::store::{Page, Written};
use hookd_store_sql::inbound::{self as sql, inbound_hook};
use hookd_store_sql::secrets::{self, Keys};
use sqlx::{Sqlite, SqliteConnection, SqlitePool};

pub(crate) async fn insert(
    writer: &SqlitePool,
    keys: &Keys,
    hook: &InboundHook,
) -> sqlx::Result<()> {
    let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
    let spec = sealed(&mut tx, keys, hook).await?;
    sql::insert::<Sqlite>(&mut tx, hook, spec).await?;
    tx.commit().await
}

pub(crate) async fn update(
    writer: &SqlitePool,
    keys: &Keys,
    hook: &InboundHook,
    read_updated_at: i64,
) -> sqlx::Result<Written> {
    let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
    let spec = sealed(&mut tx, keys, hook).await?;
    let written = sql::update::<Sqlite>(&mut tx, hook, spec, read_updated_at).await?;
    if written == Written::Done {
        tx.commit().await?;
    }
    Ok(written)
}

/// The spec as stored, its secrets sealed with the active data key.
async fn sealed(
    conn: &mut SqliteConnection,
    keys: &Keys,
    hook: &InboundHook,
) -> sqlx::Result<String> {
    let (id, at) = (hook.id.as_str(), hook.updated_at);
    secrets::sealed::<Sqlite, _>(conn, secrets::ACTIVE, keys, id, &hook.spec, at).await
}

pub(crate) async fn delete(writer: &SqlitePool, id: &InboundId) -> sqlx::Result<bool> {
    let done = sqlx::query(sql::DELETE)
        .bind(id.as_str())
        .execute(writer)
        .await?;
    Ok(done.rows_affected() > 0)
}

pub(crate) async fn get(reader: &SqlitePool, id: &InboundId) -> sqlx::Result<Option<InboundHook>> {
    sqlx::query(sql::GET)
        .bind(id.as_str())
        .fetch_optional(reader)
        .await?
        .as_ref()
        .map(inbound_hook)
        .transpose()
}

pub(crate) async fn get_by_key(
    reader: &SqlitePool,
    key: &str,
) -> sqlx::Result<Option<InboundHook>> {
    sqlx::query(sql::GET_BY_KEY)
        .bind(key)
        .fetch_optional(reader)
        .await?
        .as_ref()
        .map(inbound_hook)
        .transpose()
}

pub(crate) async fn list(reader: &SqlitePool, page: &Page) -> sqlx::Result<Vec<InboundHook>> {
    hookd_store_sql::page::query::<Sqlite>(sql::LIST, sql::LIST_BEFORE, page)
        .fetch_all(reader)
        .await?
        .iter()
        .map(inbound_hook)
        .collect()
}
