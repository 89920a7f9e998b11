//! hookd's [`Store`] on one SQLite file.
//!
//! The file runs in WAL mode, so readers never block the writer nor each other. All writes go
//! through a pool of one connection: SQLite has a single writer anyway, and queueing our own
//! writes in the pool avoids `SQLITE_BUSY` storms between our connections. Reads use a small
//! pool of their own. Several processes may share the file (`serve` plus workers): the busy
//! timeout covers writer contention between processes, and every multi-statement write starts
//! with `BEGIN IMMEDIATE` so it takes the write lock up front instead of failing on upgrade.
//!
//! Modules own one use case each: migrate, tokens, webhooks, events, deliveries, outcomes,
//! schedules, inbound hooks, executions, prune and wake (waiting for work queued by other
//! processes).

mod deliveries;
mod events;
mod executions;
mod history;
mod inbound;
mod migrate;
mod outcomes;
mod prune;
mod rows;
mod schedules;
mod tokens;
mod wake;
mod webhooks;

use hookd_core::series::{AttemptBucket, AttemptWindow};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use hookd_core::delivery::{Attempt, Delivery};
use hookd_core::event::Event;
use hookd_core::ids::{DeliveryId, EventId, ExecutionId, InboundId, ScheduleId, WebhookId};
use hookd_core::inbound::record::{Execution, InboundHook};
use hookd_core::schedule::Schedule;
use hookd_core::store::{
    Claim, Claimed, DeliveryFilter, Enqueued, EventToStore, ExecutionClaim, Firing, KeyRotation,
    Outcome, Page, Store, StoreError, StoreResult, TokenRecord, WebhookStats, Work, Written,
};
use hookd_core::webhook::Webhook;
use hookd_store_sql::secrets::{self, Keys};
use sqlx::sqlite::{
    Sqlite, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};

use crate::rows::store_err;

/// Read connections: enough for concurrent API reads; in WAL mode they never wait for writes.
const READER_CONNECTIONS: u32 = 4;
/// How long a statement waits for another process's write lock before failing with
/// `SQLITE_BUSY`; longer than any write hookd makes.
const BUSY_TIMEOUT: Duration = Duration::from_millis(5000);

/// Attempts at opening a pool. Switching a new file to WAL takes a lock that the busy timeout
/// does not wait for, so processes starting together on a new file can see `SQLITE_BUSY` once.
const OPEN_ATTEMPTS: u32 = 5;
/// Pause before the second attempt; it grows linearly (50, 100, 150, 200 ms).
const OPEN_RETRY_STEP: Duration = Duration::from_millis(50);

/// A [`Store`] on a SQLite file. Clones share the pools.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// One connection: every write, claims included.
    writer: SqlitePool,
    reader: SqlitePool,
    watcher: Arc<wake::Watcher>,
    /// What seals and opens the secrets in specs.
    keys: Arc<Keys>,
}

impl SqliteStore {
    /// Opens (creating if missing) the file named by `sqlite://path` or `sqlite:path`; `keys`
    /// seal and open the secrets stored in it.
    pub async fn connect(url: &str, keys: Keys) -> Result<Self, StoreError> {
        let options = connect_options(url)?;
        // The writer connects first: it creates the file and switches it to WAL.
        let writer = open_pool(&options, 1).await?;
        let reader = open_pool(&options, READER_CONNECTIONS).await?;
        let watcher = Arc::new(wake::Watcher::new(writer.clone()));
        Ok(Self {
            writer,
            reader,
            watcher,
            keys: Arc::new(keys),
        })
    }
}

async fn open_pool(
    options: &SqliteConnectOptions,
    max_connections: u32,
) -> Result<SqlitePool, StoreError> {
    let mut attempt = 1;
    loop {
        let opened = SqlitePoolOptions::new()
            .max_connections(max_connections)
            // sqlx pings a pooled connection's worker thread when it goes back to the pool
            // anyway; pinging it again on every acquire doubles that round trip for nothing.
            .test_before_acquire(false)
            .after_release(|conn, _| Box::pin(async move { still_usable(conn).await }))
            .connect_with(options.clone())
            .await;
        match opened {
            Err(e) if attempt < OPEN_ATTEMPTS && is_busy(&e) => {
                tokio::time::sleep(OPEN_RETRY_STEP * attempt).await;
                attempt += 1;
            }
            Err(e) if is_io_or_full(&e) => {
                return Err(StoreError::Unavailable(format!(
                    "{e}: is the disk full, or the file's directory not writable?"
                )))
            }
            opened => return opened.map_err(StoreError::backend),
        }
    }
}

/// `SQLITE_IOERR` or `SQLITE_FULL`, with or without an extended code: what opening a file on a
/// full disk gives (the `-shm` file cannot grow: "disk I/O error").
fn is_io_or_full(e: &sqlx::Error) -> bool {
    let code = match e {
        sqlx::Error::Database(db) => db.code().and_then(|c| c.parse::<i32>().ok()),
        _ => None,
    };
    code.is_some_and(|c| matches!(c & 0xff, 10 | 13))
}

/// Whether a connection coming back to its pool may serve again. sqlx counts transactions
/// itself and lowers the count only when `COMMIT` or `ROLLBACK` succeeds; when the disk is full
/// both fail (SQLite has already rolled back), the count stays up, and every later `BEGIN` on
/// that connection fails with "begin_with at non-zero transaction depth". Such a connection is
/// closed, and the pool opens a fresh one for the next write. Outside a transaction the check
/// costs nothing; inside one, a ping first lets the rollback that a dropped transaction queued
/// run before the count is read again.
async fn still_usable(conn: &mut sqlx::SqliteConnection) -> sqlx::Result<bool> {
    use sqlx::Connection as _;
    if !conn.is_in_transaction() {
        return Ok(true);
    }
    conn.ping().await?;
    if conn.is_in_transaction() {
        tracing::warn!("a SQLite connection was left inside a failed transaction; reopening it");
        return Ok(false);
    }
    Ok(true)
}

/// `SQLITE_BUSY`, with or without an extended code.
fn is_busy(e: &sqlx::Error) -> bool {
    let code = match e {
        sqlx::Error::Database(db) => db.code().and_then(|c| c.parse::<i32>().ok()),
        _ => None,
    };
    code.is_some_and(|c| c & 0xff == 5)
}

fn connect_options(url: &str) -> Result<SqliteConnectOptions, StoreError> {
    Ok(SqliteConnectOptions::from_str(url)
        .map_err(StoreError::backend)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // In WAL mode, NORMAL syncs to disk at checkpoints rather than at every commit. A
        // committed transaction is in the WAL file (the OS holds it) and survives the process
        // being killed, `kill -9` included; only a power cut or an OS crash can lose the last
        // commits. That is the trade hookd makes for write throughput.
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(BUSY_TIMEOUT)
        // Room for every fixed statement and the small shapes of the built ones
        // (`rows::cached`), so none is prepared again at each use.
        .statement_cache_capacity(256)
        // hookd keeps integrity itself (deliveries outlive deleted webhooks, as cancelled).
        .foreign_keys(false))
}

/// [`secrets::prepare`] in a transaction of its own (the write lock held throughout).
async fn prepare_secrets(conn: &mut sqlx::SqliteConnection, keys: &Keys) -> StoreResult<u64> {
    use sqlx::Connection as _;
    let mut tx = conn
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(store_err)?;
    let sealed = secrets::prepare::<Sqlite>(&mut tx, secrets::ACTIVE, keys, now_ms()).await?;
    tx.commit().await.map_err(store_err)?;
    Ok(sealed)
}

/// [`secrets::rotate`] in one transaction: SQLite's write lock makes rotations take turns.
async fn rotate_secrets(
    conn: &mut sqlx::SqliteConnection,
    keys: &Keys,
    now_ms: i64,
) -> StoreResult<KeyRotation> {
    use sqlx::Connection as _;
    let mut tx = conn
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(store_err)?;
    let done = secrets::rotate::<Sqlite>(&mut tx, keys, now_ms).await?;
    tx.commit().await.map_err(store_err)?;
    Ok(done)
}

/// Turns SQLite's `secure_delete` on for the writer while secrets are resealed, so the space a
/// plain or old value leaves is zeroed rather than kept in the file.
async fn scrubbing(conn: &mut sqlx::SqliteConnection, on: bool) -> StoreResult<()> {
    let pragma = if on {
        "PRAGMA secure_delete = ON"
    } else {
        "PRAGMA secure_delete = OFF"
    };
    sqlx::query(pragma)
        .execute(&mut *conn)
        .await
        .map_err(store_err)?;
    Ok(())
}

/// Ends [`scrubbing`]; when values were rewritten, checkpoints the WAL and truncates it, so its
/// older copies of the pages go too (a reader still holding them only delays that).
async fn scrubbed(conn: &mut sqlx::SqliteConnection, rewritten: bool) -> StoreResult<()> {
    scrubbing(conn, false).await?;
    if rewritten {
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&mut *conn)
            .await
            .map_err(store_err)?;
    }
    Ok(())
}

fn now_ms() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

#[async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> StoreResult<()> {
        migrate::run(&self.writer, now_ms())
            .await
            .map_err(store_err)?;
        let mut conn = self.writer.acquire().await.map_err(store_err)?;
        scrubbing(&mut conn, true).await?;
        let sealed = prepare_secrets(&mut conn, &self.keys).await;
        // `secure_delete` goes off again either way; the reseal's own error comes first.
        let off = scrubbed(&mut conn, matches!(sealed, Ok(n) if n > 0)).await;
        sealed.and(off)
    }

    async fn rotate_secrets_key(&self, now_ms: i64) -> StoreResult<KeyRotation> {
        let mut conn = self.writer.acquire().await.map_err(store_err)?;
        scrubbing(&mut conn, true).await?;
        let done = rotate_secrets(&mut conn, &self.keys, now_ms).await;
        let off = scrubbed(&mut conn, done.is_ok()).await;
        done.and_then(|rotated| off.map(|()| rotated))
    }

    /// Reads through the readers and writes through the writer (a row rewritten as it is), so a
    /// writer connection that is broken or cannot take the file's write lock shows here. (A
    /// full disk may not: rewriting one page can fit where a larger write does not.)
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map_err(store_err)?;
        sqlx::query(
            "UPDATE hookd_migrations SET applied_at = applied_at
             WHERE version = (SELECT MAX(version) FROM hookd_migrations)",
        )
        .execute(&self.writer)
        .await
        .map_err(store_err)?;
        Ok(())
    }

    async fn count_tokens(&self) -> StoreResult<u64> {
        tokens::count(&self.reader).await.map_err(store_err)
    }

    async fn insert_token(&self, token: &TokenRecord) -> StoreResult<()> {
        tokens::insert(&self.writer, token).await.map_err(store_err)
    }

    async fn token_hash_exists(&self, hash: &str) -> StoreResult<bool> {
        tokens::hash_exists(&self.reader, hash)
            .await
            .map_err(store_err)
    }

    async fn insert_webhook(&self, webhook: &Webhook) -> StoreResult<()> {
        webhooks::insert(&self.writer, &self.keys, webhook)
            .await
            .map_err(store_err)
    }

    async fn get_webhook(&self, id: &WebhookId) -> StoreResult<Option<Webhook>> {
        hookd_store_sql::read_opened!(self.reader, self.keys, webhooks::get(&self.reader, id))
    }

    async fn list_webhooks(&self, page: &Page) -> StoreResult<Vec<Webhook>> {
        hookd_store_sql::read_opened!(self.reader, self.keys, webhooks::list(&self.reader, page))
    }

    async fn update_webhook(&self, webhook: &Webhook, read: &Webhook) -> StoreResult<Written> {
        webhooks::update(&self.writer, &self.keys, webhook, read)
            .await
            .map_err(store_err)
    }

    async fn delete_webhook(&self, id: &WebhookId, now_ms: i64) -> StoreResult<bool> {
        webhooks::delete(&self.writer, id, now_ms)
            .await
            .map_err(store_err)
    }

    async fn active_webhooks(&self) -> StoreResult<Vec<Webhook>> {
        hookd_store_sql::read_opened!(self.reader, self.keys, webhooks::active(&self.reader))
    }

    async fn webhooks_by_ids(&self, ids: &[WebhookId]) -> StoreResult<Vec<Webhook>> {
        hookd_store_sql::read_opened!(self.reader, self.keys, webhooks::by_ids(&self.reader, ids))
    }

    async fn webhooks_version(&self) -> StoreResult<i64> {
        webhooks::version(&self.reader).await.map_err(store_err)
    }

    async fn enqueue_events(
        &self,
        events: &[EventToStore],
        now_ms: i64,
    ) -> StoreResult<Vec<Enqueued>> {
        let (results, _) = events::enqueue(&self.writer, events, now_ms, None)
            .await
            .map_err(store_err)?;
        Ok(results)
    }

    async fn enqueue_events_and_claim(
        &self,
        events: &[EventToStore],
        now_ms: i64,
        claim: &Claim,
    ) -> StoreResult<(Vec<Enqueued>, Option<Claimed>)> {
        events::enqueue(&self.writer, events, now_ms, Some(claim))
            .await
            .map_err(store_err)
    }

    async fn get_event(&self, id: &EventId) -> StoreResult<Option<Event>> {
        events::get(&self.reader, id).await.map_err(store_err)
    }

    async fn list_events(&self, page: &Page) -> StoreResult<Vec<Event>> {
        events::list(&self.reader, page).await.map_err(store_err)
    }

    async fn events_by_ids(&self, ids: &[EventId]) -> StoreResult<Vec<Event>> {
        events::by_ids(&self.reader, ids).await.map_err(store_err)
    }

    async fn claim_due_deliveries(&self, claim: &Claim) -> StoreResult<Claimed> {
        deliveries::claim(&self.writer, &self.reader, claim)
            .await
            .map_err(store_err)
    }

    async fn webhook_stats(
        &self,
        ids: &[WebhookId],
        since_ms: i64,
    ) -> StoreResult<Vec<WebhookStats>> {
        deliveries::webhook_stats(&self.reader, ids, since_ms)
            .await
            .map_err(store_err)
    }

    async fn attempt_series(&self, window: &AttemptWindow) -> StoreResult<Vec<AttemptBucket>> {
        let mut conn = self.reader.acquire().await.map_err(store_err)?;
        hookd_store_sql::series::attempt_series::<sqlx::Sqlite>(&mut conn, window)
            .await
            .map_err(store_err)
    }

    async fn circuit_counts(&self, now_ms: i64) -> StoreResult<(u64, u64)> {
        webhooks::circuit_counts(&self.reader, now_ms)
            .await
            .map_err(store_err)
    }

    async fn worker_heartbeat(
        &self,
        id: &str,
        now_ms: i64,
        expired_before: i64,
    ) -> StoreResult<Vec<String>> {
        hookd_store_sql::workers::heartbeat(&self.writer, id, now_ms, expired_before)
            .await
            .map_err(store_err)
    }

    async fn worker_leave(&self, id: &str) -> StoreResult<()> {
        hookd_store_sql::workers::leave(&self.writer, id)
            .await
            .map_err(store_err)
    }

    async fn queue_depth(&self) -> StoreResult<u64> {
        deliveries::queue_depth(&self.reader)
            .await
            .map_err(store_err)
    }

    async fn record_outcomes(&self, outcomes: &[Outcome]) -> StoreResult<()> {
        outcomes::record(&self.writer, outcomes)
            .await
            .map_err(store_err)
    }

    async fn get_delivery(&self, id: &DeliveryId) -> StoreResult<Option<Delivery>> {
        deliveries::get(&self.reader, id).await.map_err(store_err)
    }

    async fn list_deliveries(
        &self,
        filter: &DeliveryFilter,
        page: &Page,
    ) -> StoreResult<Vec<Delivery>> {
        deliveries::list(&self.reader, filter, page)
            .await
            .map_err(store_err)
    }

    async fn list_attempts(&self, delivery: &DeliveryId) -> StoreResult<Vec<Attempt>> {
        deliveries::attempts(&self.reader, delivery)
            .await
            .map_err(store_err)
    }

    async fn retry_delivery_now(&self, id: &DeliveryId, now_ms: i64) -> StoreResult<Option<bool>> {
        deliveries::retry_now(&self.writer, id, now_ms)
            .await
            .map_err(store_err)
    }

    async fn recover_failed(
        &self,
        webhook: &WebhookId,
        since_ms: i64,
        now_ms: i64,
    ) -> StoreResult<u64> {
        deliveries::recover_failed(&self.writer, webhook, since_ms, now_ms)
            .await
            .map_err(store_err)
    }

    async fn wait_for_work(&self, max_wait: Duration) -> Work {
        // A changed file says nothing of what changed.
        self.watcher.wait(max_wait).await;
        Work::ALL
    }

    async fn insert_schedule(&self, schedule: &Schedule) -> StoreResult<()> {
        schedules::insert(&self.writer, schedule)
            .await
            .map_err(store_err)
    }

    async fn get_schedule(&self, id: &ScheduleId) -> StoreResult<Option<Schedule>> {
        schedules::get(&self.reader, id).await.map_err(store_err)
    }

    async fn list_schedules(&self, page: &Page) -> StoreResult<Vec<Schedule>> {
        schedules::list(&self.reader, page).await.map_err(store_err)
    }

    async fn update_schedule(
        &self,
        schedule: &Schedule,
        read_version: i64,
    ) -> StoreResult<Written> {
        schedules::update(&self.writer, schedule, read_version)
            .await
            .map_err(store_err)
    }

    async fn delete_schedule(&self, id: &ScheduleId) -> StoreResult<bool> {
        schedules::delete(&self.writer, id).await.map_err(store_err)
    }

    async fn due_schedules(&self, now_ms: i64, limit: u32) -> StoreResult<Vec<Schedule>> {
        schedules::due(&self.reader, now_ms, limit)
            .await
            .map_err(store_err)
    }

    async fn next_schedule_at(&self) -> StoreResult<Option<i64>> {
        schedules::next_due(&self.reader).await.map_err(store_err)
    }

    async fn fire_schedule(&self, firing: &Firing) -> StoreResult<bool> {
        schedules::fire(&self.writer, firing)
            .await
            .map_err(store_err)
    }

    async fn insert_inbound(&self, hook: &InboundHook) -> StoreResult<()> {
        inbound::insert(&self.writer, &self.keys, hook)
            .await
            .map_err(store_err)
    }

    async fn get_inbound(&self, id: &InboundId) -> StoreResult<Option<InboundHook>> {
        hookd_store_sql::read_opened!(self.reader, self.keys, inbound::get(&self.reader, id))
    }

    async fn get_inbound_by_key(&self, key: &str) -> StoreResult<Option<InboundHook>> {
        hookd_store_sql::read_opened!(
            self.reader,
            self.keys,
            inbound::get_by_key(&self.reader, key)
        )
    }

    async fn list_inbound(&self, page: &Page) -> StoreResult<Vec<InboundHook>> {
        hookd_store_sql::read_opened!(self.reader, self.keys, inbound::list(&self.reader, page))
    }

    async fn update_inbound(
        &self,
        hook: &InboundHook,
        read_updated_at: i64,
    ) -> StoreResult<Written> {
        inbound::update(&self.writer, &self.keys, hook, read_updated_at)
            .await
            .map_err(store_err)
    }

    async fn delete_inbound(&self, id: &InboundId) -> StoreResult<bool> {
        inbound::delete(&self.writer, id).await.map_err(store_err)
    }

    async fn insert_executions(&self, batch: &[Execution]) -> StoreResult<()> {
        executions::insert(&self.writer, batch)
            .await
            .map_err(store_err)
    }

    async fn claim_executions(&self, claim: &ExecutionClaim) -> StoreResult<Vec<Execution>> {
        executions::claim(&self.writer, claim)
            .await
            .map_err(store_err)
    }

    async fn finish_executions(&self, done: &[(Execution, String)]) -> StoreResult<Vec<bool>> {
        executions::finish(&self.writer, done)
            .await
            .map_err(store_err)
    }

    async fn count_unfinished_executions(&self, hook: &InboundId, up_to: u64) -> StoreResult<u64> {
        executions::count_unfinished(&self.reader, hook, up_to)
            .await
            .map_err(store_err)
    }

    async fn next_execution_at(&self) -> StoreResult<Option<i64>> {
        executions::next_due(&self.reader).await.map_err(store_err)
    }

    async fn get_execution(&self, id: &ExecutionId) -> StoreResult<Option<Execution>> {
        executions::get(&self.reader, id).await.map_err(store_err)
    }

    async fn list_executions(&self, hook: &InboundId, page: &Page) -> StoreResult<Vec<Execution>> {
        executions::list(&self.reader, hook, page)
            .await
            .map_err(store_err)
    }

    async fn prune(&self, before_ms: i64) -> StoreResult<u64> {
        prune::prune(&self.writer, before_ms)
            .await
            .map_err(store_err)
    }

    async fn seed_history(&self, webhook: &WebhookId, count: u64, at_ms: i64) -> StoreResult<()> {
        history::seed(&self.writer, webhook, count, at_ms)
            .await
            .map_err(store_err)
    }
}
