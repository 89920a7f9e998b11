//! Recording attempt outcomes: the attempt row, the delivery's next state (only under the lease
//! that sent it) and the effect on the webhook's health, all in one transaction per batch.
//!
//! sqlx runs every statement on the connection's worker thread, so each one is a round trip
//! with thread wake-ups. A batch therefore costs a few statements whatever its size: one
//! multi-row `INSERT` of attempts and one `UPDATE ... FROM` of deliveries per chunk, one
//! statement clearing the failure clock of every healthy webhook, and statements of their own
//! only for webhooks that are failing or being disabled.

use std::collections::HashSet;

use hookd_core::retry::WebhookEffect;
use hookd_core::store::Outcome;
use hookd_store_sql::outcomes::{apply_circuit, apply_effect, by_webhook, grouped, next_state};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqlitePool};

use crate::rows::{cached, encode_err, placeholders, IDS_PER_QUERY};
use crate::webhooks::bump_version;

/// Outcomes per multi-row statement. The delivery update binds 8 parameters a row (the attempt
/// insert 7), so 1000 rows bind 8000, well inside SQLite's 32766, and the worker's largest
/// batch (512) takes one statement of each kind.
const OUTCOMES_PER_STATEMENT: usize = 1000;

pub(crate) async fn record(writer: &SqlitePool, outcomes: &[Outcome]) -> sqlx::Result<()> {
    if outcomes.is_empty() {
        return Ok(());
    }
    let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
    let disabled = apply_effects(&mut tx, outcomes).await?;
    for chunk in outcomes.chunks(OUTCOMES_PER_STATEMENT) {
        insert_attempts(&mut tx, chunk).await?;
        move_deliveries(&mut tx, chunk).await?;
    }
    if disabled {
        bump_version(&mut tx).await?;
    }
    tx.commit().await
}

/// Applies the webhook effects in the shared order ([`by_webhook`]), then the circuit signals
/// (statements only for webhooks with a signal). Webhooks whose only effect is `Healthy` are
/// cleared together in one statement. `true` when a webhook was turned off.
async fn apply_effects(conn: &mut SqliteConnection, outcomes: &[Outcome]) -> sqlx::Result<bool> {
    let (healthy, others) = split_healthy(&by_webhook(outcomes));
    for ids in healthy.chunks(IDS_PER_QUERY) {
        clear_failing(conn, ids).await?;
    }
    let mut disabled = false;
    for outcome in others {
        disabled |= apply_effect::<Sqlite>(conn, outcome).await?;
    }
    for group in grouped(outcomes) {
        apply_circuit::<Sqlite, i64>(conn, &group, "").await?;
    }
    Ok(disabled)
}

/// Splits outcomes sorted by webhook into the webhooks whose every effect is `Healthy` or
/// `Unchanged` (with at least one `Healthy`), and the outcomes of all other webhooks, in order.
/// Each effect only touches its own webhook's row, so the two parts may be applied apart.
fn split_healthy<'a>(sorted: &[&'a Outcome]) -> (Vec<&'a str>, Vec<&'a Outcome>) {
    let (mut healthy, mut others) = (Vec::new(), Vec::new());
    for group in sorted.chunk_by(|a, b| a.attempt.webhook_id == b.attempt.webhook_id) {
        let only_healthy = group
            .iter()
            .all(|o| matches!(o.webhook, WebhookEffect::Healthy | WebhookEffect::Unchanged));
        if !only_healthy {
            others.extend_from_slice(group);
        } else if group.iter().any(|o| o.webhook == WebhookEffect::Healthy) {
            healthy.push(group[0].attempt.webhook_id.as_str());
        }
    }
    (healthy, others)
}

/// Stops the failure clock of these webhooks (a success).
async fn clear_failing(conn: &mut SqliteConnection, ids: &[&str]) -> sqlx::Result<()> {
    let sql = format!(
        "UPDATE webhooks SET failing_since = NULL
         WHERE failing_since IS NOT NULL AND id IN ({})",
        placeholders(ids.len())
    );
    let mut query = sqlx::query(&sql).persistent(cached(ids.len()));
    for id in ids {
        query = query.bind(*id);
    }
    query.execute(conn).await?;
    Ok(())
}

/// Inserting the same attempt twice (a batch retried after an unclear commit, or twice in one
/// batch) is a no-op, as the first insert wins.
async fn insert_attempts(conn: &mut SqliteConnection, chunk: &[Outcome]) -> sqlx::Result<()> {
    let records = chunk
        .iter()
        .map(|o| serde_json::to_string(&o.attempt))
        .collect::<Result<Vec<_>, _>>()
        .map_err(encode_err)?;
    let mut insert = QueryBuilder::<Sqlite>::new(
        "INSERT INTO attempts (id, delivery_id, started_at, record, webhook_id, succeeded, \
         latency_ms) ",
    );
    insert.push_values(chunk.iter().zip(records), |mut row, (o, record)| {
        let a = &o.attempt;
        row.push_bind(a.id.as_str())
            .push_bind(a.delivery_id.as_str())
            .push_bind(a.started_at)
            .push_bind(record)
            .push_bind(a.webhook_id.as_str())
            .push_bind(i64::from(a.succeeded()))
            .push_bind(a.latency_ms().map(latency));
    });
    insert.push(" ON CONFLICT (id) DO NOTHING");
    insert
        .build()
        .persistent(cached(chunk.len()))
        .execute(conn)
        .await?;
    Ok(())
}

/// A latency as stored (a `u64` of milliseconds beyond `i64` is not a latency anyone waited).
fn latency(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

/// Moves each delivery that is still under the lease that sent its attempt. The first outcome
/// for a delivery and lease wins, as when outcomes were applied one by one: that one clears the
/// lease, so a repeat no longer matches. (`UPDATE ... FROM` would pick an arbitrary one.)
async fn move_deliveries(conn: &mut SqliteConnection, chunk: &[Outcome]) -> sqlx::Result<()> {
    let mut seen = HashSet::new();
    let firsts: Vec<&Outcome> = chunk
        .iter()
        .filter(|o| seen.insert((o.attempt.delivery_id.as_str(), o.lease_token.as_str())))
        .collect();
    let rows = firsts.len();
    let mut update = QueryBuilder::<Sqlite>::new(
        "WITH v (id, lease_token, status, attempts, next_attempt_at, last_status_code, \
         last_error, updated_at) AS (",
    );
    update.push_values(firsts, |mut row, o| {
        let a = &o.attempt;
        let (status, next_attempt_at) = next_state(&o.next);
        row.push_bind(a.delivery_id.as_str())
            .push_bind(o.lease_token.as_str())
            .push_bind(status)
            .push_bind(i64::from(a.attempt))
            .push_bind(next_attempt_at)
            .push_bind(a.response.as_ref().map(|r| i64::from(r.status)))
            .push_bind(a.error.as_deref())
            .push_bind(o.now_ms);
    });
    update.push(
        ") UPDATE deliveries
         SET status = v.status, attempts = v.attempts, next_attempt_at = v.next_attempt_at,
             last_status_code = v.last_status_code, last_error = v.last_error,
             lease_token = NULL, updated_at = v.updated_at
         FROM v WHERE deliveries.id = v.id AND deliveries.lease_token = v.lease_token",
    );
    update
        .build()
        .persistent(cached(rows))
        .execute(conn)
        .await?;
    Ok(())
}
