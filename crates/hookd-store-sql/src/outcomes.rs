//! Recording outcomes, the parts both dialects share: the order webhook effects are applied in,
//! a delivery's next state, and applying one outcome's effect on its webhook. How attempts and
//! deliveries are written in bulk differs per dialect and stays in each backend.

use std::fmt::Display;

use crate::RowsAffected;
use hookd_core::flow::{Circuit, Signal};
use hookd_core::retry::WebhookEffect;
use hookd_core::store::{NextState, Outcome};
use hookd_core::time::rfc3339;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};

/// The outcomes in webhook id order, the order effects are applied in (the PostgreSQL store
/// must take row locks in one order). The sort is stable, so one webhook's outcomes keep their
/// order; a repeat of the same effect (many deliveries to one failing endpoint) changes nothing
/// and is left out.
pub fn by_webhook(outcomes: &[Outcome]) -> Vec<&Outcome> {
    let mut by_webhook: Vec<&Outcome> = outcomes.iter().collect();
    by_webhook.sort_by(|a, b| a.attempt.webhook_id.cmp(&b.attempt.webhook_id));
    by_webhook.dedup_by(|later, earlier| same_effect(later, earlier));
    by_webhook
}

fn same_effect(a: &Outcome, b: &Outcome) -> bool {
    a.attempt.webhook_id == b.attempt.webhook_id
        && a.webhook == b.webhook
        && a.disable_if_failing_since_before == b.disable_if_failing_since_before
}

/// The outcomes grouped by webhook, in webhook id order, each group in its original order.
pub fn grouped(outcomes: &[Outcome]) -> Vec<Vec<&Outcome>> {
    let mut sorted: Vec<&Outcome> = outcomes.iter().collect();
    sorted.sort_by(|a, b| a.attempt.webhook_id.cmp(&b.attempt.webhook_id));
    sorted
        .chunk_by(|a, b| a.attempt.webhook_id == b.attempt.webhook_id)
        .map(<[&Outcome]>::to_vec)
        .collect()
}

/// Splits outcomes sorted by webhook into the webhooks whose every effect is `Healthy` or
/// `Unchanged` (with at least one `Healthy`), and the outcomes of all other webhooks, in order.
/// Each effect only touches its own webhook's row, so the two parts may be applied apart.
pub fn split_healthy<'a>(sorted: &[&'a Outcome]) -> (Vec<&'a str>, Vec<&'a Outcome>) {
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

/// One webhook's outcomes less repeats of the same effect, as [`by_webhook`] leaves them out.
pub fn distinct_effects<'a>(group: &[&'a Outcome]) -> Vec<&'a Outcome> {
    let mut effects = group.to_vec();
    effects.dedup_by(|later, earlier| same_effect(later, earlier));
    effects
}

/// Reads a webhook's circuit breaker; `lock` is appended to the `SELECT` (the PostgreSQL store
/// passes `FOR UPDATE`, so concurrent recorders do not lose each other's counts).
const CIRCUIT: &str =
    "SELECT circuit_failures, circuit_open_until, circuit_opens FROM webhooks WHERE id = $1";
const SET_CIRCUIT: &str = "UPDATE webhooks
         SET circuit_failures = $2, circuit_open_until = $3, circuit_opens = $4 WHERE id = $1";

/// Folds the circuit signals of one webhook's outcomes (in order) into its breaker. Nothing is
/// read or written when every signal is neutral. `N` is the backend's `INTEGER` type.
pub async fn apply_circuit<DB, N>(
    conn: &mut DB::Connection,
    group: &[&Outcome],
    lock: &str,
) -> sqlx::Result<()>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    i64: for<'q> Encode<'q, DB> + Type<DB>,
    Option<i64>: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    N: for<'r> Decode<'r, DB> + for<'q> Encode<'q, DB> + Type<DB> + Copy + Display + TryFrom<u32>,
    u32: TryFrom<N>,
    &'static str: ColumnIndex<DB::Row>,
{
    let Some(first) = group.iter().find(|o| o.circuit != Signal::Neutral) else {
        return Ok(());
    };
    let id = first.attempt.webhook_id.as_str();
    let read = sqlx::query(&format!("{CIRCUIT}{lock}"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = read else { return Ok(()) };
    let count = |column: &'static str| -> sqlx::Result<u32> {
        let v: N = row.try_get(column)?;
        u32::try_from(v).map_err(|_| crate::rows::decode_err(format!("{column} out of range: {v}")))
    };
    let stored = Circuit {
        consecutive_failures: count("circuit_failures")?,
        open_until: row.try_get("circuit_open_until")?,
        opens: count("circuit_opens")?,
    };
    let after = group.iter().fold(stored, |c, o| {
        c.after(o.circuit, o.now_ms, &o.circuit_policy)
    });
    if after == stored {
        return Ok(());
    }
    let int =
        |v: u32| N::try_from(v).map_err(|_| crate::rows::decode_err("circuit count too large"));
    sqlx::query(SET_CIRCUIT)
        .bind(id)
        .bind(int(after.consecutive_failures)?)
        .bind(after.open_until)
        .bind(int(after.opens)?)
        .execute(conn)
        .await?;
    Ok(())
}

/// The delivery's status and due time after an attempt.
pub fn next_state(next: &NextState) -> (&'static str, Option<i64>) {
    match next {
        NextState::Succeeded => ("succeeded", None),
        NextState::Retry { at_ms } => ("retrying", Some(*at_ms)),
        NextState::Failed => ("failed", None),
        NextState::Cancelled => ("cancelled", None),
    }
}

/// Applies the outcome's effect on its webhook; `true` when it turned the webhook off.
pub async fn apply_effect<DB>(conn: &mut DB::Connection, o: &Outcome) -> sqlx::Result<bool>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    i64: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    bool: for<'q> Encode<'q, DB> + Type<DB>,
    DB::QueryResult: RowsAffected,
    &'static str: ColumnIndex<DB::Row>,
{
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
async fn failing<DB>(conn: &mut DB::Connection, o: &Outcome) -> sqlx::Result<bool>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    i64: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    bool: for<'q> Encode<'q, DB> + Type<DB>,
    DB::QueryResult: RowsAffected,
    &'static str: ColumnIndex<DB::Row>,
{
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

/// Turns the webhook off with `reason`; `true` when it was on.
async fn disable<DB>(
    conn: &mut DB::Connection,
    id: &str,
    reason: &str,
    now_ms: i64,
) -> sqlx::Result<bool>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    i64: for<'q> Encode<'q, DB> + Type<DB>,
    bool: for<'q> Encode<'q, DB> + Type<DB>,
    DB::QueryResult: RowsAffected,
{
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
