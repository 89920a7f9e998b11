//! Schedules: the shared SQL of `hookd-store-sql`, each write in a `BEGIN IMMEDIATE`
//! transaction on the single writer. A firing's delivery reaches other processes' workers through
//! the file's change counter, like any other write.

use hookd_core::ids::ScheduleId;
use hookd_core::schedule::Schedule;
use hookd_core::store::{Firing, Page, Written};
use hookd_store_sql::schedules::{self as sql, schedule};
use sqlx::{Row, Sqlite, SqlitePool};

pub(crate) async fn insert(writer: &SqlitePool, s: &Schedule) -> sqlx::Result<()> {
    let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
    sql::insert::<Sqlite>(&mut tx, s).await?;
    tx.commit().await
}

pub(crate) async fn update(
    writer: &SqlitePool,
    s: &Schedule,
    read_version: i64,
) -> sqlx::Result<Written> {
    let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
    let written = sql::update::<Sqlite>(&mut tx, s, read_version).await?;
    if written == Written::Done {
        tx.commit().await?;
    }
    Ok(written)
}

pub(crate) async fn delete(writer: &SqlitePool, id: &ScheduleId) -> sqlx::Result<bool> {
    let done = sqlx::query(sql::DELETE)
        .bind(id.as_str())
        .execute(writer)
        .await?;
    Ok(done.rows_affected() > 0)
}

pub(crate) async fn fire(writer: &SqlitePool, f: &Firing) -> sqlx::Result<bool> {
    let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
    let fired = sql::fire::<Sqlite>(&mut tx, f).await?;
    if fired {
        tx.commit().await?;
    }
    Ok(fired)
}

pub(crate) async fn get(reader: &SqlitePool, id: &ScheduleId) -> sqlx::Result<Option<Schedule>> {
    sqlx::query(sql::GET)
        .bind(id.as_str())
        .fetch_optional(reader)
        .await?
        .as_ref()
        .map(schedule)
        .transpose()
}

pub(crate) async fn list(reader: &SqlitePool, page: &Page) -> sqlx::Result<Vec<Schedule>> {
    hookd_store_sql::page::query::<Sqlite>(sql::LIST, sql::LIST_BEFORE, page)
        .fetch_all(reader)
        .await?
        .iter()
        .map(schedule)
        .collect()
}

pub(crate) async fn due(
    reader: &SqlitePool,
    now_ms: i64,
    limit: u32,
) -> sqlx::Result<Vec<Schedule>> {
    sqlx::query(sql::DUE)
        .bind(now_ms)
        .bind(i64::from(limit))
        .fetch_all(reader)
        .await?
        .iter()
        .map(schedule)
        .collect()
}

pub(crate) async fn next_due(reader: &SqlitePool) -> sqlx::Result<Option<i64>> {
    sqlx::query(sql::NEXT_DUE)
        .fetch_one(reader)
        .await?
        .try_get("at")
}
