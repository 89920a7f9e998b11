//! Webhooks: the `spec` JSON document beside the columns hookd queries, and the version counter
//! bumped in the same transaction as every write so other processes can cache the active set.

use hookd_core::ids::WebhookId;
use hookd_core::store::{Page, Written};
use hookd_core::webhook::Webhook;
use sqlx::{PgConnection, PgPool, Row};

use crate::rows::{self, encode_err, webhook_columns};

pub(crate) async fn bump_version(conn: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::query("UPDATE webhooks_version SET version = version + 1 WHERE id = 1")
        .execute(conn)
        .await?;
    Ok(())
}

pub(crate) async fn version(pool: &PgPool) -> sqlx::Result<i64> {
    let row = sqlx::query("SELECT version FROM webhooks_version WHERE id = 1")
        .fetch_one(pool)
        .await?;
    row.try_get("version")
}

pub(crate) async fn insert(pool: &PgPool, w: &Webhook) -> sqlx::Result<()> {
    let spec = serde_json::to_string(&w.spec).map_err(encode_err)?;
    let mut tx = pool.begin().await?;
    sqlx::query(concat!(
        "INSERT INTO webhooks (",
        webhook_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7)"
    ))
    .bind(w.id.as_str())
    .bind(w.active)
    .bind(&w.disabled_reason)
    .bind(w.failing_since)
    .bind(spec)
    .bind(w.created_at)
    .bind(w.updated_at)
    .execute(&mut *tx)
    .await?;
    bump_version(&mut tx).await?;
    tx.commit().await
}

pub(crate) async fn update(pool: &PgPool, w: &Webhook, read: &Webhook) -> sqlx::Result<Written> {
    let spec = serde_json::to_string(&w.spec).map_err(encode_err)?;
    let mut tx = pool.begin().await?;
    let done = sqlx::query(
        "UPDATE webhooks SET active = $2, disabled_reason = $3, failing_since = $4, spec = $5,
             created_at = $6, updated_at = $7
         WHERE id = $1 AND updated_at = $8 AND active = $9 AND disabled_reason IS NOT DISTINCT FROM $10",
    )
    .bind(w.id.as_str())
    .bind(w.active)
    .bind(&w.disabled_reason)
    .bind(w.failing_since)
    .bind(spec)
    .bind(w.created_at)
    .bind(w.updated_at)
    .bind(read.updated_at)
    .bind(read.active)
    .bind(&read.disabled_reason)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        let exists = sqlx::query("SELECT 1 FROM webhooks WHERE id = $1")
            .bind(w.id.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        return Ok(if exists.is_some() {
            Written::Changed
        } else {
            Written::NotFound
        });
    }
    bump_version(&mut tx).await?;
    tx.commit().await?;
    Ok(Written::Done)
}

/// Deletes the webhook and cancels its unfinished deliveries. Clearing the lease means an
/// attempt in flight cannot move a cancelled delivery when its outcome comes back.
pub(crate) async fn delete(pool: &PgPool, id: &WebhookId, now_ms: i64) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    let done = sqlx::query("DELETE FROM webhooks WHERE id = $1")
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query(
        "UPDATE deliveries
         SET status = 'cancelled', next_attempt_at = NULL, lease_token = NULL, updated_at = $2
         WHERE webhook_id = $1 AND status IN ('pending', 'retrying', 'delivering')",
    )
    .bind(id.as_str())
    .bind(now_ms)
    .execute(&mut *tx)
    .await?;
    bump_version(&mut tx).await?;
    tx.commit().await?;
    Ok(true)
}

pub(crate) async fn get(pool: &PgPool, id: &WebhookId) -> sqlx::Result<Option<Webhook>> {
    sqlx::query(concat!(
        "SELECT ",
        webhook_columns!(),
        " FROM webhooks WHERE id = $1"
    ))
    .bind(id.as_str())
    .fetch_optional(pool)
    .await?
    .as_ref()
    .map(rows::webhook)
    .transpose()
}

pub(crate) async fn list(pool: &PgPool, page: &Page) -> sqlx::Result<Vec<Webhook>> {
    let query = match &page.before {
        None => sqlx::query(concat!(
            "SELECT ",
            webhook_columns!(),
            " FROM webhooks ORDER BY id DESC LIMIT $1"
        ))
        .bind(i64::from(page.limit)),
        Some(before) => sqlx::query(concat!(
            "SELECT ",
            webhook_columns!(),
            " FROM webhooks WHERE id < $2 ORDER BY id DESC LIMIT $1"
        ))
        .bind(i64::from(page.limit))
        .bind(before.as_str()),
    };
    query
        .fetch_all(pool)
        .await?
        .iter()
        .map(rows::webhook)
        .collect()
}

pub(crate) async fn active(pool: &PgPool) -> sqlx::Result<Vec<Webhook>> {
    sqlx::query(concat!(
        "SELECT ",
        webhook_columns!(),
        " FROM webhooks WHERE active ORDER BY id"
    ))
    .fetch_all(pool)
    .await?
    .iter()
    .map(rows::webhook)
    .collect()
}

pub(crate) async fn by_ids(pool: &PgPool, ids: &[WebhookId]) -> sqlx::Result<Vec<Webhook>> {
    let ids: Vec<&str> = ids.iter().map(WebhookId::as_str).collect();
    sqlx::query(concat!(
        "SELECT ",
        webhook_columns!(),
        " FROM webhooks WHERE id = ANY($1)"
    ))
    .bind(ids)
    .fetch_all(pool)
    .await?
    .iter()
    .map(rows::webhook)
    .collect()
}
