//! What hookd's two SQL stores, `hookd-store-sqlite` and `hookd-store-postgres`, share.
//!
//! This crate owns the parts whose logic is the same in both dialects: the column lists and
//! how rows become domain values ([`rows`], generic over [`sqlx::Row`]), SQL text that both
//! dialects accept word for word (with `$1` placeholders), keyset pages ([`page`]), and the
//! statements that run inside a transaction the backend has opened: the migration runner once
//! its lock is taken ([`migrate`]), webhook, schedule and inbound-hook writes ([`webhooks`],
//! [`schedules`], [`inbound`]), executions but their claim ([`executions`]), webhook effects
//! of outcomes and circuit breakers ([`outcomes`]), and what fair delivery claims share
//! ([`claims`]). Those are generic over [`sqlx::Database`]; a backend picks its
//! database type and keeps opening and committing the transaction. Per-webhook delivery
//! statistics ([`stats`]) take the dialect's id predicate from the backend.
//! Attempts over time ([`series`]) are one statement both dialects run as written.
//!
//! It must not know which database it runs on: no connection options, no dialect syntax
//! (`BEGIN IMMEDIATE`, `INDEXED BY`, `FOR UPDATE SKIP LOCKED`, `UNNEST`, `ANY`, `pg_notify`,
//! advisory locks), no batching strategy and no integer width of a column. The one exception is
//! [`RowsAffected`], which names the backends' sqlx result types because sqlx has no generic way
//! to count the rows a statement changed. Where the dialects differ the backends keep their own
//! code, and pass their own SQL text or types in here.

pub mod claims;
pub mod deliveries;
pub mod events;
pub mod executions;
pub mod history;
pub mod inbound;
pub mod migrate;
pub mod outcomes;
pub mod page;
pub mod prune;
pub mod rows;
pub mod schedules;
pub mod secrets;
pub mod series;
pub mod stats;
pub mod tokens;
pub mod webhooks;
pub mod workers;

use hookd_core::store::Written;
use sqlx::{Database, Encode, Executor, IntoArguments, Type};

/// The number of rows a statement changed; sqlx offers it per database only.
pub trait RowsAffected {
    fn rows_affected(&self) -> u64;
}

impl RowsAffected for sqlx::sqlite::SqliteQueryResult {
    fn rows_affected(&self) -> u64 {
        self.rows_affected()
    }
}

impl RowsAffected for sqlx::postgres::PgQueryResult {
    fn rows_affected(&self) -> u64 {
        self.rows_affected()
    }
}

/// What a conditional write did, from the rows it changed: [`Written::Done`] when it changed
/// one, else [`Written::Changed`] or [`Written::NotFound`] as `exists_sql` (`$1`: the id) finds
/// the row or not. Commit only on `Done`.
pub async fn written<DB>(
    conn: &mut DB::Connection,
    rows_changed: u64,
    exists_sql: &str,
    id: &str,
) -> sqlx::Result<Written>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
{
    if rows_changed > 0 {
        return Ok(Written::Done);
    }
    let exists = sqlx::query(exists_sql)
        .bind(id)
        .fetch_optional(conn)
        .await?;
    Ok(if exists.is_some() {
        Written::Changed
    } else {
        Written::NotFound
    })
}
