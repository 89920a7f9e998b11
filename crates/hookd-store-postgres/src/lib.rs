//! hookd's [`Store`] on PostgreSQL.
//!
//! Tables live in the connection's current schema (set `search_path`, for example with
//! `?options=-c%20search_path%3Dhookd` in the URL), so one database can hold several
//! installations. Claims use `FOR UPDATE SKIP LOCKED`, so any number of workers in any number of
//! processes share the queue; writes that queue deliveries `NOTIFY` a channel the workers
//! `LISTEN` on.
//!
//! # Plans
//! Statements are prepared once per connection and kept for its life, while the tables grow
//! from empty. After a few runs PostgreSQL may switch a prepared statement to a generic plan,
//! and a generic plan made while a table was small can stay a sequential scan until the next
//! `ANALYZE` (seen: reading a batch's events by id and moving a batch's deliveries, each
//! scanning the whole table, their cost growing with retained history). The statements that
//! look up a batch of rows by a list of ids are therefore not kept (`persistent(false)`): each
//! run is planned with its values and the table's current size. Planning every statement that
//! way (`plan_cache_mode = force_custom_plan`) was measured too: the claim's statements then
//! spent as long in the planner as in execution. The hot writes (the publish, the claim, a
//! batch of outcomes) run in functions instead (migrations 0004, 0005 and 0010) that keep one
//! generic plan per connection, each step of which follows an index whatever the tables held
//! when it was made (where the planner could pick otherwise, the function turns sequential
//! scans, hash and merge joins off for its own planning); `tests/it/plans.rs` in `hookd-server`
//! checks it.
//!
//! Modules own one use case each: migrate, tokens, webhooks, events, deliveries, outcomes,
//! schedules, inbound hooks, executions, prune and wake (LISTEN/NOTIFY).

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
pub mod testing;
mod tokens;
mod wake;
mod webhooks;

use hookd_core::series::{AttemptBucket, AttemptWindow};
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
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::Postgres;

use crate::rows::store_err;

/// How a [`PgStore`] uses its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgOptions {
    /// How long a statement waits for a pooled connection before it fails as
    /// [`StoreError::Unavailable`] (the API then answers 503 with `Retry-After`).
    pub acquire_timeout: Duration,
    /// Connections in the pool. The API, the claimers and the outcome recorder each hold one
    /// only for a statement or a short transaction, so a few serve many tasks.
    pub pool_size: u32,
    /// The server cancels any statement running longer (`statement_timeout`); `None` never
    /// does. Migrations run without it.
    pub statement_timeout: Option<Duration>,
}

/// Long enough for a busy pool, short enough that an unreachable database is told quickly
/// (sqlx's default is 30 s).
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// The default pool size.
pub const DEFAULT_POOL_SIZE: u32 = 16;
/// A pooled connection idle longer than this is pinged before it is used again. Shorter than
/// any restart of the server, so a connection it dropped has always been idle longer; longer
/// than the pool's turnover under load (16 connections, hundreds of statements a second), so a
/// busy server pings none.
const PING_IDLE_AFTER: Duration = Duration::from_millis(100);
/// No hot statement comes near it; a statement stuck behind a lock or a runaway plan is cut
/// off instead of holding its connection for good.
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

impl Default for PgOptions {
    fn default() -> Self {
        Self {
            acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
            pool_size: DEFAULT_POOL_SIZE,
            statement_timeout: Some(DEFAULT_STATEMENT_TIMEOUT),
        }
    }
}

/// A [`Store`] on PostgreSQL. Clones share the pool and the listener.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// The NOTIFY channel of this schema's installation.
    channel: Arc<str>,
    waker: Arc<wake::Waker>,
    /// What seals and opens the secrets in specs.
    keys: Arc<Keys>,
}

/// [`secrets::ACTIVE`] holding the active key's row until the write commits, so a rotation's
/// switch waits for the writes that are sealing with the key it retires.
const ACTIVE_KEY: &str = "SELECT id FROM secret_keys WHERE state = 'active' FOR SHARE";

impl PgStore {
    /// Connects to a `postgres://` URL; its `options` parameter may set `search_path`. `keys`
    /// seal and open the secrets stored in it.
    pub async fn connect(url: &str, keys: Keys) -> Result<Self, StoreError> {
        Self::connect_with(url, PgOptions::default(), keys).await
    }

    /// [`PgStore::connect`] with these options. When the database cannot be reached at all,
    /// the error says why (connection refused, unknown host) rather than only that no
    /// connection came in time.
    pub async fn connect_with(url: &str, pg: PgOptions, keys: Keys) -> Result<Self, StoreError> {
        let acquire_timeout = pg.acquire_timeout;
        let mut options: PgConnectOptions = url.parse().map_err(StoreError::backend)?;
        if let Some(timeout) = pg.statement_timeout {
            let ms = timeout.as_millis().max(1).to_string();
            options = options.options([("statement_timeout", ms.as_str())]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(pg.pool_size.max(1))
            .acquire_timeout(acquire_timeout)
            // A connection back from a statement a moment ago is used as it is (sqlx pings every
            // connection it returns to the pool already); one idle for a while is pinged first,
            // so one the server dropped meanwhile (a restart) is replaced, not handed out.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for > PING_IDLE_AFTER {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect_with(options.clone())
            .await;
        let pool = match pool {
            Ok(pool) => pool,
            Err(sqlx::Error::PoolTimedOut) => {
                // The pool retries refused connections until its timeout and then says only
                // that; one direct attempt tells the cause.
                let direct = tokio::time::timeout(
                    acquire_timeout,
                    <sqlx::PgConnection as sqlx::Connection>::connect_with(&options),
                )
                .await;
                let cause = match direct {
                    Ok(Err(e)) => e.to_string(),
                    Ok(Ok(conn)) => {
                        let _ = sqlx::Connection::close(conn).await;
                        "no connection came within the acquire timeout".to_owned()
                    }
                    Err(_) => "no answer within the acquire timeout".to_owned(),
                };
                return Err(StoreError::Unavailable(format!(
                    "cannot connect within {acquire_timeout:?}: {cause}"
                )));
            }
            Err(e) => return Err(StoreError::backend(e)),
        };
        let channel = wake::channel_name(&pool)
            .await
            .map_err(StoreError::backend)?;
        let options = (*pool.connect_options()).clone();
        let waker = Arc::new(wake::Waker::new(options, channel.clone()));
        Ok(Self {
            pool,
            channel: channel.into(),
            waker,
            keys: Arc::new(keys),
        })
    }
}

impl PgStore {
    /// Closes the pool: waits for every connection in use to come back, then ends them all.
    /// Statements after this fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn now_ms() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

#[async_trait]
impl Store for PgStore {
    async fn migrate(&self) -> StoreResult<()> {
        migrate::run(&self.pool, now_ms())
            .await
            .map_err(store_err)?;
        let mut tx = self.pool.begin().await.map_err(store_err)?;
        secrets::prepare::<Postgres>(&mut tx, ACTIVE_KEY, &self.keys, now_ms()).await?;
        tx.commit().await.map_err(store_err)
    }

    /// One transaction under an advisory lock of its own, so two rotations take turns.
    async fn rotate_secrets_key(&self, now_ms: i64) -> StoreResult<KeyRotation> {
        let mut tx = self.pool.begin().await.map_err(store_err)?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('hookd_rotate:' || current_schema()))")
            .execute(&mut *tx)
            .await
            .map_err(store_err)?;
        let done = secrets::rotate::<Postgres>(&mut tx, &self.keys, now_ms).await?;
        tx.commit().await.map_err(store_err)?;
        Ok(done)
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(store_err)?;
        Ok(())
    }

    async fn count_tokens(&self) -> StoreResult<u64> {
        tokens::count(&self.pool).await.map_err(store_err)
    }

    async fn insert_token(&self, token: &TokenRecord) -> StoreResult<()> {
        tokens::insert(&self.pool, token).await.map_err(store_err)
    }

    async fn token_hash_exists(&self, hash: &str) -> StoreResult<bool> {
        tokens::hash_exists(&self.pool, hash)
            .await
            .map_err(store_err)
    }

    async fn insert_webhook(&self, webhook: &Webhook) -> StoreResult<()> {
        webhooks::insert(&self.pool, &self.keys, webhook)
            .await
            .map_err(store_err)
    }

    async fn get_webhook(&self, id: &WebhookId) -> StoreResult<Option<Webhook>> {
        hookd_store_sql::read_opened!(self.pool, self.keys, webhooks::get(&self.pool, id))
    }

    async fn list_webhooks(&self, page: &Page) -> StoreResult<Vec<Webhook>> {
        hookd_store_sql::read_opened!(self.pool, self.keys, webhooks::list(&self.pool, page))
    }

    async fn update_webhook(&self, webhook: &Webhook, read: &Webhook) -> StoreResult<Written> {
        webhooks::update(&self.pool, &self.keys, webhook, read)
            .await
            .map_err(store_err)
    }

    async fn delete_webhook(&self, id: &WebhookId, now_ms: i64) -> StoreResult<bool> {
        webhooks::delete(&self.pool, id, now_ms)
            .await
            .map_err(store_err)
    }

    async fn active_webhooks(&self) -> StoreResult<Vec<Webhook>> {
        hookd_store_sql::read_opened!(self.pool, self.keys, webhooks::active(&self.pool))
    }

    async fn webhooks_by_ids(&self, ids: &[WebhookId]) -> StoreResult<Vec<Webhook>> {
        hookd_store_sql::read_opened!(self.pool, self.keys, webhooks::by_ids(&self.pool, ids))
    }

    async fn webhooks_version(&self) -> StoreResult<i64> {
        webhooks::version(&self.pool).await.map_err(store_err)
    }

    async fn enqueue_events(
        &self,
        events: &[EventToStore],
        now_ms: i64,
    ) -> StoreResult<Vec<Enqueued>> {
        let (results, _) = events::enqueue(&self.pool, &self.channel, events, now_ms, None)
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
        events::enqueue(&self.pool, &self.channel, events, now_ms, Some(claim))
            .await
            .map_err(store_err)
    }

    async fn get_event(&self, id: &EventId) -> StoreResult<Option<Event>> {
        events::get(&self.pool, id).await.map_err(store_err)
    }

    async fn list_events(&self, page: &Page) -> StoreResult<Vec<Event>> {
        events::list(&self.pool, page).await.map_err(store_err)
    }

    async fn events_by_ids(&self, ids: &[EventId]) -> StoreResult<Vec<Event>> {
        events::by_ids(&self.pool, ids).await.map_err(store_err)
    }

    async fn claim_due_deliveries(&self, claim: &Claim) -> StoreResult<Claimed> {
        deliveries::claim(&self.pool, claim)
            .await
            .map_err(store_err)
    }

    async fn webhook_stats(
        &self,
        ids: &[WebhookId],
        since_ms: i64,
    ) -> StoreResult<Vec<WebhookStats>> {
        deliveries::webhook_stats(&self.pool, ids, since_ms)
            .await
            .map_err(store_err)
    }

    async fn attempt_series(&self, window: &AttemptWindow) -> StoreResult<Vec<AttemptBucket>> {
        let mut conn = self.pool.acquire().await.map_err(store_err)?;
        hookd_store_sql::series::attempt_series::<sqlx::Postgres>(&mut conn, window)
            .await
            .map_err(store_err)
    }

    async fn circuit_counts(&self, now_ms: i64) -> StoreResult<(u64, u64)> {
        webhooks::circuit_counts(&self.pool, now_ms)
            .await
            .map_err(store_err)
    }

    async fn worker_heartbeat(
        &self,
        id: &str,
        now_ms: i64,
        expired_before: i64,
    ) -> StoreResult<Vec<String>> {
        hookd_store_sql::workers::heartbeat(&self.pool, id, now_ms, expired_before)
            .await
            .map_err(store_err)
    }

    async fn worker_leave(&self, id: &str) -> StoreResult<()> {
        hookd_store_sql::workers::leave(&self.pool, id)
            .await
            .map_err(store_err)
    }

    async fn queue_depth(&self) -> StoreResult<u64> {
        deliveries::queue_depth(&self.pool).await.map_err(store_err)
    }

    async fn record_outcomes(&self, outcomes: &[Outcome]) -> StoreResult<()> {
        outcomes::record(&self.pool, outcomes)
            .await
            .map_err(store_err)
    }

    async fn get_delivery(&self, id: &DeliveryId) -> StoreResult<Option<Delivery>> {
        deliveries::get(&self.pool, id).await.map_err(store_err)
    }

    async fn list_deliveries(
        &self,
        filter: &DeliveryFilter,
        page: &Page,
    ) -> StoreResult<Vec<Delivery>> {
        deliveries::list(&self.pool, filter, page)
            .await
            .map_err(store_err)
    }

    async fn list_attempts(&self, delivery: &DeliveryId) -> StoreResult<Vec<Attempt>> {
        deliveries::attempts(&self.pool, delivery)
            .await
            .map_err(store_err)
    }

    async fn retry_delivery_now(&self, id: &DeliveryId, now_ms: i64) -> StoreResult<Option<bool>> {
        deliveries::retry_now(&self.pool, &self.channel, id, now_ms)
            .await
            .map_err(store_err)
    }

    async fn recover_failed(
        &self,
        webhook: &WebhookId,
        since_ms: i64,
        now_ms: i64,
    ) -> StoreResult<u64> {
        deliveries::recover_failed(&self.pool, &self.channel, webhook, since_ms, now_ms)
            .await
            .map_err(store_err)
    }

    async fn wait_for_work(&self, max_wait: Duration) -> Work {
        self.waker.wait(max_wait, &|_| true).await
    }

    async fn wait_for_work_of(&self, max_wait: Duration, mine: &hookd_core::store::Mine) -> Work {
        self.waker.wait(max_wait, mine).await
    }

    async fn insert_schedule(&self, schedule: &Schedule) -> StoreResult<()> {
        schedules::insert(&self.pool, schedule)
            .await
            .map_err(store_err)
    }

    async fn get_schedule(&self, id: &ScheduleId) -> StoreResult<Option<Schedule>> {
        schedules::get(&self.pool, id).await.map_err(store_err)
    }

    async fn list_schedules(&self, page: &Page) -> StoreResult<Vec<Schedule>> {
        schedules::list(&self.pool, page).await.map_err(store_err)
    }

    async fn update_schedule(
        &self,
        schedule: &Schedule,
        read_version: i64,
    ) -> StoreResult<Written> {
        schedules::update(&self.pool, schedule, read_version)
            .await
            .map_err(store_err)
    }

    async fn delete_schedule(&self, id: &ScheduleId) -> StoreResult<bool> {
        schedules::delete(&self.pool, id).await.map_err(store_err)
    }

    async fn due_schedules(&self, now_ms: i64, limit: u32) -> StoreResult<Vec<Schedule>> {
        schedules::due(&self.pool, now_ms, limit)
            .await
            .map_err(store_err)
    }

    async fn next_schedule_at(&self) -> StoreResult<Option<i64>> {
        schedules::next_due(&self.pool).await.map_err(store_err)
    }

    async fn fire_schedule(&self, firing: &Firing) -> StoreResult<bool> {
        schedules::fire(&self.pool, &self.channel, firing)
            .await
            .map_err(store_err)
    }

    async fn insert_inbound(&self, hook: &InboundHook) -> StoreResult<()> {
        inbound::insert(&self.pool, &self.keys, hook)
            .await
            .map_err(store_err)
    }

    async fn get_inbound(&self, id: &InboundId) -> StoreResult<Option<InboundHook>> {
        hookd_store_sql::read_opened!(self.pool, self.keys, inbound::get(&self.pool, id))
    }

    async fn get_inbound_by_key(&self, key: &str) -> StoreResult<Option<InboundHook>> {
        hookd_store_sql::read_opened!(self.pool, self.keys, inbound::get_by_key(&self.pool, key))
    }

    async fn list_inbound(&self, page: &Page) -> StoreResult<Vec<InboundHook>> {
        hookd_store_sql::read_opened!(self.pool, self.keys, inbound::list(&self.pool, page))
    }

    async fn update_inbound(
        &self,
        hook: &InboundHook,
        read_updated_at: i64,
    ) -> StoreResult<Written> {
        inbound::update(&self.pool, &self.keys, hook, read_updated_at)
            .await
            .map_err(store_err)
    }

    async fn delete_inbound(&self, id: &InboundId) -> StoreResult<bool> {
        inbound::delete(&self.pool, id).await.map_err(store_err)
    }

    async fn insert_executions(&self, batch: &[Execution]) -> StoreResult<()> {
        executions::insert(&self.pool, &self.channel, batch)
            .await
            .map_err(store_err)
    }

    async fn claim_executions(&self, claim: &ExecutionClaim) -> StoreResult<Vec<Execution>> {
        executions::claim(&self.pool, claim)
            .await
            .map_err(store_err)
    }

    async fn finish_executions(&self, done: &[(Execution, String)]) -> StoreResult<Vec<bool>> {
        executions::finish(&self.pool, done)
            .await
            .map_err(store_err)
    }

    async fn count_unfinished_executions(&self, hook: &InboundId, up_to: u64) -> StoreResult<u64> {
        executions::count_unfinished(&self.pool, hook, up_to)
            .await
            .map_err(store_err)
    }

    async fn next_execution_at(&self) -> StoreResult<Option<i64>> {
        executions::next_due(&self.pool).await.map_err(store_err)
    }

    async fn get_execution(&self, id: &ExecutionId) -> StoreResult<Option<Execution>> {
        executions::get(&self.pool, id).await.map_err(store_err)
    }

    async fn list_executions(&self, hook: &InboundId, page: &Page) -> StoreResult<Vec<Execution>> {
        executions::list(&self.pool, hook, page)
            .await
            .map_err(store_err)
    }

    async fn prune(&self, before_ms: i64) -> StoreResult<u64> {
        prune::prune(&self.pool, before_ms).await.map_err(store_err)
    }

    async fn seed_history(&self, webhook: &WebhookId, count: u64, at_ms: i64) -> StoreResult<()> {
        history::seed(&self.pool, webhook, count, at_ms)
            .await
            .map_err(store_err)
    }
}
