//! Schedules: the shared SQL of `hookd-store-sql`. Of several workers firing the same
//! occurrence, the conditional update lets one through and the others see no row (they wait on
//! its row lock, then find `next_run_at` moved). A firing notifies the workers' channel at commit.

use hookd_core::ids::ScheduleId;
use hookd_core::schedule::Schedule;
use hookd_core::store::{Firing, Page, Written};
use hookd_store_sql::schedules::{self as sql, schedule};
use sqlx::{PgPool, Postgres, Row};

pub(crate) async fn insert(pool: &PgPool, s: &Schedule) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    sql::insert::<Postgres>(&mut tx, s).await?;
    tx.commit().await
}

pub(crate) async fn update(
    pool: &PgPool,
    s: &Schedule,
    read_version: i64,
) -> sqlx::Result<Written> {
    let mut tx = pool.begin().await?;
    let written = sql::update::<Postgres>(&mut tx, s, read_version).await?;
    if written == Written::Done {
        tx.commit().await?;
    }
    Ok(written)
}

pub(crate) async fn delete(pool: &PgPool, id: &ScheduleId) -> sqlx::Result<bool> {
    let done = sqlx::query(sql::DELETE)
        .bind(id.as_str())
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

pub(crate) async fn fire(pool: &PgPool, channel: &str, f: &Firing) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    let fired = sql::fire::<Postgres>(&mut tx, f).await?;
    if fired {
        crate::wake::notify(&mut tx, channel, crate::wake::Kind::First).await?;
        tx.commit().await?;
    }
    Ok(fired)
}

pub(crate) async fn get(pool: &PgPool, id: &ScheduleId) -> sqlx::Result<Option<Schedule>> {
    sqlx::query(sql::GET)
        .bind(id.as_str())
        .fetch_optional(pool)
        .await?
        .as_ref()
        .map(schedule)
        .transpose()
}

pub(crate) async fn list(pool: &PgPool, page: &Page) -> sqlx::Result<Vec<Schedule>> {
    hookd_store_sql::page::query::<Postgres>(sql::LIST, sql::LIST_BEFORE, page)
        .fetch_all(pool)
        .await?
        .iter()
        .map(schedule)
        .collect()
}

pub(crate) async fn due(pool: &PgPool, now_ms: i64, limit: u32) -> sqlx::Result<Vec<Schedule>> {
    sqlx::query(sql::DUE)
        .bind(now_ms)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?
        .iter()
        .map(schedule)
        .collect()
}

pub(crate) async fn next_due(pool: &PgPool) -> sqlx::Result<Option<i64>> {
    sqlx::query(sql::NEXT_DUE)
        .fetch_one(pool)
        .await?
        .try_get("at")
}
