//! Recording attempt outcomes: the attempt row, the delivery's next state (only under the lease
//! that sent it) and the effect on the webhook's health, all in one transaction per batch.

use hookd_core::delivery::Attempt;
use hookd_core::retry::WebhookEffect;
use hookd_core::store::{NextState, Outcome};
use hookd_core::time::rfc3339;
use sqlx::{Row, SqliteConnection, SqlitePool};

use crate::rows::encode_err;
use crate::webhooks::bump_version;

pub(crate) async fn record(writer: &SqlitePool, outcomes: &[Outcome]) -> sqlx::Result<()> {
    if outcomes.is_empty() {
        return Ok(());
    }
    let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
    let disabled = apply_effects(&mut tx, outcomes).await?;
    // One prepared statement each per outcome: in-process, a statement costs microseconds.
    for outcome in outcomes {
        insert_attempt(&mut tx, &outcome.attempt).await?;
        move_delivery(&mut tx, outcome).await?;
    }
    if disabled {
        bump_version(&mut tx).await?;
    }
    tx.commit().await
}

/// Applies the webhook effects in webhook id order (as the PostgreSQL store must, to take row
/// locks in one order). The sort is stable, so one webhook's outcomes keep their order; a
/// repeat of the same effect (many deliveries to one failing endpoint) changes nothing and is
/// skipped. `true` when a webhook was turned off.
async fn apply_effects(conn: &mut SqliteConnection, outcomes: &[Outcome]) -> sqlx::Result<bool> {
    let mut by_webhook: Vec<&Outcome> = outcomes.iter().collect();
    by_webhook.sort_by(|a, b| a.attempt.webhook_id.cmp(&b.attempt.webhook_id));
    by_webhook.dedup_by(|later, earlier| same_effect(later, earlier));
    let mut disabled = false;
    for outcome in by_webhook {
        disabled |= apply_effect(conn, outcome).await?;
    }
    Ok(disabled)
}

fn same_effect(a: &Outcome, b: &Outcome) -> bool {
    a.attempt.webhook_id == b.attempt.webhook_id
        && a.webhook == b.webhook
        && a.disable_if_failing_since_before == b.disable_if_failing_since_before
}

/// Inserting the same attempt twice (a batch retried after an unclear commit) is a no-op.
async fn insert_attempt(conn: &mut SqliteConnection, attempt: &Attempt) -> sqlx::Result<()> {
    let record = serde_json::to_string(attempt).map_err(encode_err)?;
    sqlx::query(
        "INSERT INTO attempts (id, delivery_id, started_at, record) VALUES ($1, $2, $3, $4)
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(attempt.id.as_str())
    .bind(attempt.delivery_id.as_str())
    .bind(attempt.started_at)
    .bind(record)
    .execute(conn)
    .await?;
    Ok(())
}

/// Moves the delivery if it is still under the lease that sent this attempt.
async fn move_delivery(conn: &mut SqliteConnection, o: &Outcome) -> sqlx::Result<()> {
    let (status, next_attempt_at) = match o.next {
        NextState::Succeeded => ("succeeded", None),
        NextState::Retry { at_ms } => ("retrying", Some(at_ms)),
        NextState::Failed => ("failed", None),
        NextState::Cancelled => ("cancelled", None),
    };
    let a = &o.attempt;
    sqlx::query(
        "UPDATE deliveries
         SET status = $3, attempts = $4, next_attempt_at = $5, last_status_code = $6,
             last_error = $7, lease_token = NULL, updated_at = $8
         WHERE id = $1 AND lease_token = $2",
    )
    .bind(a.delivery_id.as_str())
    .bind(&o.lease_token)
    .bind(status)
    .bind(i64::from(a.attempt))
    .bind(next_attempt_at)
    .bind(a.response.as_ref().map(|r| i64::from(r.status)))
    .bind(&a.error)
    .bind(o.now_ms)
    .execute(conn)
    .await?;
    Ok(())
}

/// Applies the outcome's effect on its webhook; `true` when it turned the webhook off.
async fn apply_effect(conn: &mut SqliteConnection, o: &Outcome) -> sqlx::Result<bool> {
    let id = o.attempt.webhook_id.as_str();
    match &o.webhook {
        WebhookEffect::Healthy => {
            sqlx::query(
                "UPDATE webhooks SET failing_since = NULL
                 WHERE id = $1 AND failing_since IS NOT NULL",
            )
            .bind(id)
            .execute(conn)
            .await?;
            Ok(false)
        }
        WebhookEffect::Failing => failing(conn, o).await,
        WebhookEffect::Disable(reason) => disable(conn, id, reason, o.now_ms).await,
        WebhookEffect::Unchanged => Ok(false),
    }
}

/// Starts the failure clock if it is not running; disables the webhook once it has run since
/// before the outcome's cutoff.
async fn failing(conn: &mut SqliteConnection, o: &Outcome) -> sqlx::Result<bool> {
    let id = o.attempt.webhook_id.as_str();
    sqlx::query("UPDATE webhooks SET failing_since = $2 WHERE id = $1 AND failing_since IS NULL")
        .bind(id)
        .bind(o.now_ms)
        .execute(&mut *conn)
        .await?;
    let expired = sqlx::query(
        "SELECT failing_since FROM webhooks WHERE id = $1 AND active AND failing_since < $2",
    )
    .bind(id)
    .bind(o.disable_if_failing_since_before)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = expired else { return Ok(false) };
    let since: i64 = row.try_get("failing_since")?;
    let reason = format!(
        "failing since {} with no successful delivery",
        rfc3339(since)
    );
    disable(conn, id, &reason, o.now_ms).await
}

async fn disable(
    conn: &mut SqliteConnection,
    id: &str,
    reason: &str,
    now_ms: i64,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE webhooks SET active = $2, disabled_reason = $3, updated_at = $4
         WHERE id = $1 AND active",
    )
    .bind(id)
    .bind(false)
    .bind(reason)
    .bind(now_ms)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() > 0)
}
