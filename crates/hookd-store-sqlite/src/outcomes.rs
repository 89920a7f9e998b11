//! Recording attempt outcomes: the attempt row, the delivery's next state (only under the lease
//! that sent it) and the effect on the webhook's health, all in one transaction per batch.
//!
//! sqlx runs every statement on the connection's worker thread, so each call is a round trip
//! with thread wake-ups. A batch therefore costs a few calls whatever its size: one per chunk
//! that runs the statement clearing the failure clock of healthy webhooks (up to one list of
//! them), the multi-row `INSERT` of attempts and the `UPDATE ... FROM` of deliveries together
//! (sqlx runs the statements of one text in one call, binding its `?`s in order; each
//! statement's result still comes back on its own, so this saves the requests, not the
//! answers), and statements of their own only for webhooks that are failing or being disabled.

use std::collections::HashSet;

use hookd_core::store::Outcome;
use hookd_store_sql::outcomes::{
    apply_circuit, apply_effect, by_webhook, grouped, next_state, split_healthy,
};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqlitePool};

use crate::rows::{cached, encode_err, IDS_PER_QUERY};
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
    let (healthy, disabled) = apply_effects(&mut tx, outcomes).await?;
    // Each chunk's call also clears one list of healthy webhooks; what a chunk's list cannot
    // hold (hundreds of webhooks in one batch) is cleared after, a list per call.
    let mut clears = healthy.chunks(IDS_PER_QUERY);
    for chunk in outcomes.chunks(OUTCOMES_PER_STATEMENT) {
        let mut batch = QueryBuilder::<Sqlite>::new("");
        let cleared = push_clear_failing(&mut batch, clears.next().unwrap_or_default());
        let rows = push_attempts(&mut batch, chunk)?;
        let moved = push_moves(&mut batch, chunk);
        let small = [cleared, rows, moved].into_iter().all(cached);
        batch.build().persistent(small).execute(&mut *tx).await?;
    }
    for ids in clears {
        let mut clear = QueryBuilder::<Sqlite>::new("");
        push_clear_failing(&mut clear, ids);
        clear.build().persistent(false).execute(&mut *tx).await?;
    }
    if disabled {
        bump_version(&mut tx).await?;
    }
    tx.commit().await
}

/// Applies the webhook effects in the shared order ([`by_webhook`]), then the circuit signals
/// (statements only for webhooks with a signal), except for the webhooks whose only effect is
/// `Healthy`: their ids are returned, to be cleared with the batch's rows. The flag says a
/// webhook was turned off.
async fn apply_effects<'a>(
    conn: &mut SqliteConnection,
    outcomes: &'a [Outcome],
) -> sqlx::Result<(Vec<&'a str>, bool)> {
    let (healthy, others) = split_healthy(&by_webhook(outcomes));
    let mut disabled = false;
    for outcome in others {
        disabled |= apply_effect::<Sqlite>(conn, outcome).await?;
    }
    for group in grouped(outcomes) {
        apply_circuit::<Sqlite, i64>(conn, &group, "").await?;
    }
    Ok((healthy, disabled))
}

/// Appends the statement that stops the failure clock of these webhooks (a success), if any;
/// returns how many ids it binds.
fn push_clear_failing<'a>(batch: &mut QueryBuilder<'a, Sqlite>, ids: &[&'a str]) -> usize {
    if ids.is_empty() {
        return 0;
    }
    batch.push(
        "UPDATE webhooks SET failing_since = NULL WHERE failing_since IS NOT NULL AND id IN (",
    );
    let mut list = batch.separated(", ");
    for id in ids {
        list.push_bind(*id);
    }
    batch.push("); ");
    ids.len()
}

/// Appends the insert of the chunk's attempts; returns its row count. Inserting the same
/// attempt twice (a batch retried after an unclear commit, or twice in one batch) is a no-op,
/// as the first insert wins.
fn push_attempts<'a>(
    batch: &mut QueryBuilder<'a, Sqlite>,
    chunk: &'a [Outcome],
) -> sqlx::Result<usize> {
    let records = chunk
        .iter()
        .map(|o| serde_json::to_string(&o.attempt))
        .collect::<Result<Vec<_>, _>>()
        .map_err(encode_err)?;
    batch.push(
        "INSERT INTO attempts (id, delivery_id, started_at, record, webhook_id, succeeded, \
         latency_ms) ",
    );
    batch.push_values(chunk.iter().zip(records), |mut row, (o, record)| {
        let a = &o.attempt;
        row.push_bind(a.id.as_str())
            .push_bind(a.delivery_id.as_str())
            .push_bind(a.started_at)
            .push_bind(record)
            .push_bind(a.webhook_id.as_str())
            .push_bind(i64::from(a.succeeded()))
            .push_bind(a.latency_ms().map(latency));
    });
    batch.push(" ON CONFLICT (id) DO NOTHING; ");
    Ok(chunk.len())
}

/// A latency as stored (a `u64` of milliseconds beyond `i64` is not a latency anyone waited).
fn latency(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

/// Appends the update moving each delivery that is still under the lease that sent its
/// attempt; returns its row count. The first outcome for a delivery and lease wins, as when
/// outcomes were applied one by one: that one clears the lease, so a repeat no longer matches.
/// (`UPDATE ... FROM` would pick an arbitrary one.)
fn push_moves<'a>(batch: &mut QueryBuilder<'a, Sqlite>, chunk: &'a [Outcome]) -> usize {
    let mut seen = HashSet::new();
    let firsts: Vec<&Outcome> = chunk
        .iter()
        .filter(|o| seen.insert((o.attempt.delivery_id.as_str(), o.lease_token.as_str())))
        .collect();
    let rows = firsts.len();
    batch.push(
        "WITH v (id, lease_token, status, attempts, next_attempt_at, last_status_code, \
         last_error, updated_at) AS (",
    );
    batch.push_values(firsts, |mut row, o| {
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
    batch.push(
        ") UPDATE deliveries
         SET status = v.status, attempts = v.attempts, next_attempt_at = v.next_attempt_at,
             last_status_code = v.last_status_code, last_error = v.last_error,
             lease_token = NULL, updated_at = v.updated_at
         FROM v WHERE deliveries.id = v.id AND deliveries.lease_token = v.lease_token",
    );
    rows
}
