//! Recording attempt outcomes: the attempt rows, the deliveries' next states (only under the
//! lease that sent each) and the effects on the webhooks' health, all in one transaction per
//! batch, and the circuit breakers they move. The attempts, the deliveries and the failure
//! clocks of the webhooks that answered are written by one statement per batch (arrays
//! `UNNEST`ed into rows): a batch of hundreds of outcomes to dozens of healthy webhooks is one
//! round trip. Only failing, disabled or circuit-moving webhooks cost statements of their own,
//! in a transaction around it.

use std::collections::HashSet;

use hookd_core::flow::Signal;
use hookd_core::retry::WebhookEffect;
use hookd_core::store::Outcome;
use hookd_store_sql::outcomes::{
    apply_circuit, apply_effect, by_webhook, distinct_effects, grouped, next_state, split_healthy,
};
use sqlx::{PgConnection, PgPool, Postgres};

use crate::rows::{encode_err, int};
use crate::webhooks::bump_version;

pub(crate) async fn record(pool: &PgPool, outcomes: &[Outcome]) -> sqlx::Result<()> {
    if outcomes.is_empty() {
        return Ok(());
    }
    let (healthy, _) = split_healthy(&by_webhook(outcomes));
    let groups = grouped(outcomes);
    if groups.iter().flatten().all(|o| needs_no_statement(o)) {
        // The usual batch (every webhook answered, no circuit to move): one statement, which is
        // a transaction of its own.
        return write_rows(pool, outcomes, &healthy).await;
    }
    let mut tx = pool.begin().await?;
    // Row locks follow the order of the other writes: webhooks (in id order), then deliveries
    // (in id order), then the version row, so batches, webhook updates and deletes do not
    // deadlock in the usual plans. Should PostgreSQL still find a cycle, it aborts one
    // transaction with an error and nothing of that batch is written. Every webhook effect,
    // the healthy ones' too, is applied here in that order, none in the rows' statement.
    let disabled = apply_effects(&mut tx, &groups).await?;
    write_rows(&mut *tx, outcomes, &[]).await?;
    if disabled {
        bump_version(&mut tx).await?;
    }
    tx.commit().await
}

/// An outcome whose webhook effect and circuit signal cost no statement of their own: a
/// success clears the failure clock with the batch's rows ([`write_rows`]).
fn needs_no_statement(o: &Outcome) -> bool {
    o.circuit == Signal::Neutral
        && matches!(o.webhook, WebhookEffect::Healthy | WebhookEffect::Unchanged)
}

/// Applies the webhook effects and circuit signals in the shared order (webhooks in id order),
/// one webhook at a time, so its row is locked once in that order. `true` when a webhook was
/// turned off.
async fn apply_effects(conn: &mut PgConnection, groups: &[Vec<&Outcome>]) -> sqlx::Result<bool> {
    let mut disabled = false;
    for group in groups {
        for outcome in distinct_effects(group) {
            disabled |= apply_effect::<Postgres>(conn, outcome).await?;
        }
        apply_circuit::<Postgres, i32>(conn, group, " FOR UPDATE").await?;
    }
    Ok(disabled)
}

/// Writes a batch's rows in one statement: the failure clocks of the `healthy` webhooks stop
/// (their rows locked in id order first, as every other write locks webhooks),
/// every attempt is inserted (inserting the same attempt twice, a batch retried after an
/// unclear commit, is a no-op), and every delivery still under the lease that sent its attempt
/// moves on ([`move_deliveries`] binds those). One round trip per batch, whatever it holds.
async fn write_rows<'e, E>(db: E, outcomes: &[Outcome], healthy: &[&str]) -> sqlx::Result<()>
where
    E: sqlx::Executor<'e, Database = Postgres>,
{
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
    // `hookd_record_rows` (migration 0010): one statement that keeps its plan.
    let query = sqlx::query(
        "SELECT hookd_record_rows($1::text[], $2::text[], $3::text[], $4::integer[],
             $5::bigint[], $6::integer[], $7::text[], $8::bigint[], $9::text[], $10::text[],
             $11::text[], $12::bigint[], $13::text[], $14::text[], $15::integer[], $16::bigint[])",
    );
    move_deliveries(query, outcomes)
        .bind(healthy)
        .bind(ids)
        .bind(delivery_ids)
        .bind(started)
        .bind(records)
        .bind(webhooks)
        .bind(succeeded)
        .bind(latencies)
        .execute(db)
        .await?;
    Ok(())
}

/// Binds `$1`–`$8` of [`write_rows`]: every delivery still under the lease that sent its
/// attempt, sorted by id. The first outcome for a delivery and lease wins, as when outcomes
/// were applied one by one (`UPDATE … FROM` would pick an arbitrary one of two rows matching
/// the same delivery).
fn move_deliveries<'q>(
    query: sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>,
    outcomes: &'q [Outcome],
) -> sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments> {
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
    query
        .bind(ids)
        .bind(leases)
        .bind(statuses)
        .bind(attempts)
        .bind(due)
        .bind(codes)
        .bind(errors)
        .bind(now)
}
