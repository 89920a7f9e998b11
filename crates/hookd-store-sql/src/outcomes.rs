//! Recording outcomes, the parts both dialects share: the order webhook effects are applied in,
//! a delivery's next state, and applying one outcome's effect on its webhook. How attempts and
//! deliveries are written in bulk differs per dialect and stays in each backend.

use crate::RowsAffected;
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
