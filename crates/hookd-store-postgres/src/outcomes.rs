//! Recording attempt outcomes: the attempt rows, the deliveries' next states (only under the
//! lease that sent each) and the effects on the webhooks' health, all in one transaction per
//! batch, and the circuit breakers they move. Attempts and deliveries are written with one statement each per batch (arrays
//! `UNNEST`ed into rows), so a batch of hundreds of outcomes costs a few round trips, not
//! hundreds, when the database is across a network.

use std::collections::HashSet;

use hookd_core::store::Outcome;
use hookd_store_sql::outcomes::{
    apply_circuit, apply_effect, distinct_effects, grouped, next_state,
};
use sqlx::{PgConnection, PgPool, Postgres};

use crate::rows::{encode_err, int};
use crate::webhooks::bump_version;

pub(crate) async fn record(pool: &PgPool, outcomes: &[Outcome]) -> sqlx::Result<()> {
    if outcomes.is_empty() {
        return Ok(());
    }
    let mut tx = pool.begin().await?;
    // Row locks follow the order of the other writes: webhooks (in id order), then deliveries
    // (in id order), then the version row, so batches, webhook updates and deletes do not
    // deadlock in the usual plans. Should PostgreSQL still find a cycle, it aborts one
    // transaction with an error and nothing of that batch is written.
    let disabled = apply_effects(&mut tx, outcomes).await?;
    insert_attempts(&mut tx, outcomes).await?;
    move_deliveries(&mut tx, outcomes).await?;
    if disabled {
        bump_version(&mut tx).await?;
    }
    tx.commit().await
}

/// Applies the webhook effects and circuit signals in the shared order (webhooks in id order),
/// one webhook at a time, so its row is locked once in that order. `true` when a webhook was
/// turned off.
async fn apply_effects(conn: &mut PgConnection, outcomes: &[Outcome]) -> sqlx::Result<bool> {
    let mut disabled = false;
    for group in grouped(outcomes) {
        for outcome in distinct_effects(&group) {
            disabled |= apply_effect::<Postgres>(conn, outcome).await?;
        }
        apply_circuit::<Postgres, i32>(conn, &group, " FOR UPDATE").await?;
    }
    Ok(disabled)
}

/// Inserts every attempt in one statement (one array per column). Inserting the same attempt
/// twice (a batch retried after an unclear commit) is a no-op.
async fn insert_attempts(conn: &mut PgConnection, outcomes: &[Outcome]) -> sqlx::Result<()> {
    let attempts = outcomes.iter().map(|o| &o.attempt);
    let ids: Vec<&str> = attempts.clone().map(|a| a.id.as_str()).collect();
    let delivery_ids: Vec<&str> = attempts.clone().map(|a| a.delivery_id.as_str()).collect();
    let started: Vec<i64> = attempts.clone().map(|a| a.started_at).collect();
    let webhooks: Vec<&str> = attempts.clone().map(|a| a.webhook_id.as_str()).collect();
    let succeeded: Vec<i32> = attempts.clone().map(|a| i32::from(a.succeeded())).collect();
    let latencies: Vec<Option<i64>> = attempts
        .clone()
        .map(|a| {
            a.latency_ms()
                .map(|ms| i64::try_from(ms).unwrap_or(i64::MAX))
        })
        .collect();
    let records = attempts
        .map(|a| serde_json::to_string(a).map_err(encode_err))
        .collect::<sqlx::Result<Vec<String>>>()?;
    sqlx::query(
        "INSERT INTO attempts (id, delivery_id, started_at, record, webhook_id, succeeded,
             latency_ms)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[],
             $6::integer[], $7::bigint[])
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(ids)
    .bind(delivery_ids)
    .bind(started)
    .bind(records)
    .bind(webhooks)
    .bind(succeeded)
    .bind(latencies)
    .execute(conn)
    .await?;
    Ok(())
}

/// Moves every delivery still under the lease that sent its attempt, in one statement: a batch
/// costs the same few round trips however many outcomes it holds. The first outcome for a
/// delivery and lease wins, as when outcomes were applied one by one (`UPDATE … FROM` would
/// pick an arbitrary one of two rows matching the same delivery).
async fn move_deliveries(conn: &mut PgConnection, outcomes: &[Outcome]) -> sqlx::Result<()> {
    let mut seen = HashSet::new();
    let mut outcomes: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| seen.insert((o.attempt.delivery_id.as_str(), o.lease_token.as_str())))
        .collect();
    outcomes.sort_by(|a, b| a.attempt.delivery_id.cmp(&b.attempt.delivery_id));
    let ids: Vec<&str> = outcomes
        .iter()
        .map(|o| o.attempt.delivery_id.as_str())
        .collect();
    let leases: Vec<&str> = outcomes.iter().map(|o| o.lease_token.as_str()).collect();
    let (statuses, due): (Vec<&str>, Vec<Option<i64>>) =
        outcomes.iter().map(|o| next_state(&o.next)).unzip();
    let attempts: Vec<i32> = outcomes.iter().map(|o| int(o.attempt.attempt)).collect();
    let codes: Vec<Option<i32>> = outcomes
        .iter()
        .map(|o| o.attempt.response.as_ref().map(|r| int(r.status)))
        .collect();
    let errors: Vec<Option<&str>> = outcomes
        .iter()
        .map(|o| o.attempt.error.as_deref())
        .collect();
    let now: Vec<i64> = outcomes.iter().map(|o| o.now_ms).collect();
    sqlx::query(
        "UPDATE deliveries AS d
         SET status = u.status, attempts = u.attempts, next_attempt_at = u.next_attempt_at,
             last_status_code = u.status_code, last_error = u.error, lease_token = NULL,
             updated_at = u.now_ms
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::integer[], $5::bigint[],
                     $6::integer[], $7::text[], $8::bigint[])
             AS u (id, lease_token, status, attempts, next_attempt_at, status_code, error, now_ms)
         WHERE d.id = u.id AND d.lease_token = u.lease_token",
    )
    // Planned each time with its arrays (see "Plans" in the crate's documentation).
    .persistent(false)
    .bind(ids)
    .bind(leases)
    .bind(statuses)
    .bind(attempts)
    .bind(due)
    .bind(codes)
    .bind(errors)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}
