//! Fair claims, the parts both dialects share. A claim:
//!
//! 1. reads the *candidates*: every webhook with unfinished deliveries in the lane (a skip scan
//!    over the lane's `(webhook_id, next_attempt_at, id)` index, one step per webhook), each
//!    with its earliest due time, its requests in flight (live leases, both lanes) and its
//!    limits ([`candidate_limit_columns!`]);
//! 2. lets [`hookd_core::flow::plan`] decide how many each may give; when none may, the lane
//!    is idle and this read was the whole claim, with no lock taken;
//! 3. leases that many of each webhook's oldest due deliveries, round-robin across webhooks up
//!    to the claim's limit, and moves the rate limiters of the webhooks it took from on.
//!
//! Step 3 runs with no other claim on the database beside it, so the limits hold across
//! processes. SQLite reads the candidates again inside its `BEGIN IMMEDIATE` transaction (the
//! single writer) and writes the rate limiters with [`rate_updates`] and [`SET_RATE`].
//! PostgreSQL does step 3 in one statement, a function that takes an advisory lock and
//! re-applies the plan's rules to the state it reads after the lock (migration 0004); the two
//! must agree with `flow::plan`, and the conformance suite checks both.
//!
//! A webhook at its cap, rate-limited or with an open circuit therefore never stands in front
//! of another webhook's due deliveries, however long its own backlog.

use std::collections::HashMap;

use hookd_core::delivery::Delivery;
use hookd_core::flow::{rate_after, Candidate};
use sqlx::{Database, Encode, Executor, IntoArguments, Type};

/// The webhook's columns a candidate row ends with, after `webhook_id`, `due_at` and
/// `in_flight` (which the backends compute with their own index hints), from `webhooks AS w`
/// joined on the left: `circuit_failures` is NULL when the webhook row is gone.
#[macro_export]
macro_rules! candidate_limit_columns {
    () => {
        "w.active, w.max_in_flight, w.rate_limit, w.rate_tat_us, w.circuit_failures, \
         w.circuit_open_until, w.circuit_opens"
    };
}

/// Moves a rate limiter on (`$1` webhook id, `$2` the new theoretical arrival time, µs).
pub const SET_RATE: &str = "UPDATE webhooks SET rate_tat_us = $2 WHERE id = $1";

/// The new theoretical arrival times of the rate-limited candidates the claim took from.
pub fn rate_updates(
    candidates: &[Candidate],
    claimed: &[Delivery],
    now_ms: i64,
) -> Vec<(String, i64)> {
    let mut taken: HashMap<&str, u32> = HashMap::new();
    for d in claimed {
        *taken.entry(d.webhook_id.as_str()).or_default() += 1;
    }
    candidates
        .iter()
        .filter_map(|c| {
            // A disabled webhook's deliveries are failed unsent: they use none of its rate.
            let limits = c.limits.as_ref().filter(|l| l.active)?;
            let rate = limits.rate_limit?;
            let n = *taken.get(c.webhook_id.as_str())?;
            let tat = rate_after(rate, limits.rate_tat_us, now_ms * 1000, n);
            Some((c.webhook_id.as_str().to_owned(), tat))
        })
        .collect()
}

/// Writes [`rate_updates`]; there are as many statements as rate-limited webhooks claimed
/// from, usually none.
pub async fn set_rates<DB>(conn: &mut DB::Connection, updates: &[(String, i64)]) -> sqlx::Result<()>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    i64: for<'q> Encode<'q, DB> + Type<DB>,
{
    for (id, tat) in updates {
        sqlx::query(SET_RATE)
            .bind(id.as_str())
            .bind(*tat)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}
