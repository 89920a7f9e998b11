//! Webhooks: the `spec` JSON document beside the columns hookd queries, and the version counter
//! bumped in the same transaction as every write so other processes can cache the active set.

use hookd_core::ids::WebhookId;
use hookd_core::store::{Page, Written};
use hookd_core::webhook::Webhook;
use hookd_store_sql::secrets::{self, Keys};
use hookd_store_sql::webhooks as sql;
use sqlx::{Row, Sqlite, SqliteConnection, SqlitePool};

use crate::rows::{self, cached, placeholders, webhook_columns, IDS_PER_QUERY};

pub(crate) async fn bump_version(conn: &mut SqliteConnection) -> sqlx::Result<()> {
    sql::bump_version::<Sqlite>(conn).await
}

pub(crate) async fn version(reader: &SqlitePool) -> sqlx::Result<i64> {
    let row = sqlx::query(sql::VERSION).fetch_one(reader).await?;
    row.try_get("version")
}

pub(crate) async fn insert(writer: &SqlitePool, keys: &Keys, w: &Webhook) -> sqlx::Result<()> {
    let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
    let spec = sealed(&mut tx, keys, w).await?;
    sql::insert::<Sqlite>(&mut tx, w, spec).await?;
    tx.commit().await
}

/// Overwrites the webhook if it is still as `read` left it (`IS` also matches two NULLs).
/// `failing_since` is the worker's: only re-enabling a disabled webhook writes it (the API
/// clears it then); any other edit keeps the stored clock.
const UPDATE: &str =
    "UPDATE webhooks SET active = $2, disabled_reason = $3, failing_since = CASE WHEN $2 AND NOT $9 THEN $4 ELSE failing_since END,
             spec = $5,
             created_at = $6, updated_at = $7, max_in_flight = $11, rate_limit = $12,
             circuit_failures = 0, circuit_open_until = NULL, circuit_opens = 0
         WHERE id = $1 AND updated_at = $8 AND active = $9 AND disabled_reason IS $10";

pub(crate) async fn update(
    writer: &SqlitePool,
    keys: &Keys,
    w: &Webhook,
    read: &Webhook,
) -> sqlx::Result<Written> {
    let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
    let spec = sealed(&mut tx, keys, w).await?;
    let written = sql::update::<Sqlite>(&mut tx, UPDATE, w, spec, read).await?;
    if written == Written::Done {
        tx.commit().await?;
    }
    Ok(written)
}

/// The spec as stored, its secrets sealed with the active data key.
async fn sealed(conn: &mut SqliteConnection, keys: &Keys, w: &Webhook) -> sqlx::Result<String> {
    secrets::sealed::<Sqlite, _>(
        conn,
        secrets::ACTIVE,
        keys,
        w.id.as_str(),
        &w.spec,
        w.updated_at,
    )
    .await
}

/// Deletes the webhook and cancels its unfinished deliveries.
pub(crate) async fn delete(writer: &SqlitePool, id: &WebhookId, now_ms: i64) -> sqlx::Result<bool> {
    let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
    let deleted = sql::delete::<Sqlite>(&mut tx, id, now_ms).await?;
    if deleted {
        tx.commit().await?;
    }
    Ok(deleted)
}

pub(crate) async fn get(reader: &SqlitePool, id: &WebhookId) -> sqlx::Result<Option<Webhook>> {
    sqlx::query(sql::GET)
        .bind(id.as_str())
        .fetch_optional(reader)
        .await?
        .as_ref()
        .map(rows::webhook)
        .transpose()
}

pub(crate) async fn list(reader: &SqlitePool, page: &Page) -> sqlx::Result<Vec<Webhook>> {
    hookd_store_sql::page::query::<Sqlite>(sql::LIST, sql::LIST_BEFORE, page)
        .fetch_all(reader)
        .await?
        .iter()
        .map(rows::webhook)
        .collect()
}

pub(crate) async fn active(reader: &SqlitePool) -> sqlx::Result<Vec<Webhook>> {
    sqlx::query(sql::ACTIVE)
        .fetch_all(reader)
        .await?
        .iter()
        .map(rows::webhook)
        .collect()
}

pub(crate) async fn by_ids(reader: &SqlitePool, ids: &[WebhookId]) -> sqlx::Result<Vec<Webhook>> {
    let mut found = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(IDS_PER_QUERY) {
        let sql = format!(
            concat!(
                "SELECT ",
                webhook_columns!(),
                " FROM webhooks WHERE id IN ({})"
            ),
            placeholders(chunk.len())
        );
        let mut query = sqlx::query(&sql).persistent(cached(chunk.len()));
        for id in chunk {
            query = query.bind(id.as_str());
        }
        for row in query.fetch_all(reader).await? {
            found.push(rows::webhook(&row)?);
        }
    }
    Ok(found)
}

/// Webhooks with their circuit open and half open at `now_ms`.
pub(crate) async fn circuit_counts(pool: &SqlitePool, now_ms: i64) -> sqlx::Result<(u64, u64)> {
    let row = sqlx::query(sql::CIRCUIT_COUNTS)
        .bind(now_ms)
        .fetch_one(pool)
        .await?;
    let count = |column: &str| row.try_get::<i64, _>(column).map(|n| n.max(0) as u64);
    Ok((count("open")?, count("half_open")?))
}
