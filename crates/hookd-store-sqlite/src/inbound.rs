//! Inbound hooks: the shared SQL of `hookd-store-sql`, each write on the single writer.

use hookd_core::ids::InboundId;
use hookd_core::inbound::record::InboundHook;
use hookd_core::store::{Page, Written};
use hookd_store_sql::inbound::{self as sql, inbound_hook};
use sqlx::{Sqlite, SqlitePool};

pub(crate) async fn insert(writer: &SqlitePool, hook: &InboundHook) -> sqlx::Result<()> {
    let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
    sql::insert::<Sqlite>(&mut tx, hook).await?;
    tx.commit().await
}

pub(crate) async fn update(
    writer: &SqlitePool,
    hook: &InboundHook,
    read_updated_at: i64,
) -> sqlx::Result<Written> {
    let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
    let written = sql::update::<Sqlite>(&mut tx, hook, read_updated_at).await?;
    if written == Written::Done {
        tx.commit().await?;
    }
    Ok(written)
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
