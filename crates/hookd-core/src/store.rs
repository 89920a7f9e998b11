//! The [`Store`] trait: every use case hookd needs from its database, one method each.
//!
//! Two backends implement it (`hookd-store-sqlite`, `hookd-store-postgres`) and both pass the same
//! conformance tests. Invariants every backend keeps:
//! - an event and its deliveries are written in one transaction ([`Store::enqueue_events`]);
//! - a claim hands each due delivery to one claimer only, under a lease; a delivery whose lease ran
//!   out is due again ([`Store::claim_due_deliveries`]);
//! - an outcome only moves a delivery that is still under the lease that sent it
//!   ([`Store::record_outcomes`]); the attempt is recorded either way.

use std::time::Duration;

use async_trait::async_trait;

use crate::delivery::{Attempt, Delivery, DeliveryStatus};
use crate::event::{Event, NewEvent};
use crate::ids::{DeliveryId, EventId, ExecutionId, InboundId, ScheduleId, TokenId, WebhookId};
use crate::inbound::record::{Execution, InboundHook};
use crate::retry::WebhookEffect;
use crate::schedule::Schedule;
use crate::series::{AttemptBucket, AttemptWindow};
use crate::webhook::Webhook;

/// A storage failure. Details are for logs, never for API responses.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was broken (for example a duplicate token name).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database cannot be reached or cannot write now (connection refused or lost, no
    /// connection free within the acquire timeout, disk full): worth trying again later.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database could not do what was asked.
    #[error("database error: {0}")]
    Backend(#[from] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    pub fn backend(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Backend(Box::new(e))
    }

    /// The same error for another caller (a backend error's cause as text).
    pub fn to_owned_error(&self) -> Self {
        match self {
            Self::Conflict(m) => Self::Conflict(m.clone()),
            Self::Unavailable(m) => Self::Unavailable(m.clone()),
            Self::Backend(e) => Self::Backend(e.to_string().into()),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// What a rotation of the secrets' data key did ([`Store::rotate_secrets_key`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRotation {
    /// The data key every secret is sealed with now.
    pub key_id: String,
    /// The configured master key that seals it.
    pub master_key_id: String,
    /// Records whose secrets were sealed again.
    pub resealed: u64,
    /// Old data keys deleted.
    pub retired: u64,
}

/// A page request over an id-ordered list, newest first.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// Rows to return; backends return at most this many.
    pub limit: u32,
    /// Only rows whose id sorts before this one (the previous page's last id).
    pub before: Option<String>,
}

/// An admin API token as stored: only the SHA-256 of the token itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: TokenId,
    pub name: String,
    /// Lower-case hex SHA-256 of the token.
    pub hash: String,
    pub created_at: i64,
}

/// One event to store with the deliveries it causes.
#[derive(Debug, Clone)]
pub struct EventToStore {
    pub id: EventId,
    pub event: NewEvent,
    pub deliveries: Vec<NewDelivery>,
}

/// A delivery to create with its event.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub id: DeliveryId,
    pub webhook_id: WebhookId,
    pub entry_index: Option<u32>,
    /// `Pending` for the worker, or `Delivering` under `lease` when the caller sends it itself.
    pub status: DeliveryStatus,
    /// When it is due (pending), or when the caller's lease ends (delivering).
    pub next_attempt_at: i64,
    /// The lease token when created as `Delivering`.
    pub lease: Option<String>,
}

/// What [`Store::enqueue_events`] did with one event.
#[derive(Debug, Clone, PartialEq)]
pub enum Enqueued {
    /// Stored, with this many deliveries.
    Created { id: EventId, deliveries: u32 },
    /// Its `idempotency_key` was already used: nothing new stored; this is the first event.
    Duplicate(Event),
}

/// What a conditional write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Done,
    NotFound,
    /// The row changed since it was read; nothing was written.
    Changed,
}

/// Which deliveries a claim is for. Retries and first attempts are claimed separately so a
/// backlog of retries to failing endpoints never delays first attempts to healthy ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Deliveries with no attempt yet.
    First,
    /// Deliveries with at least one attempt.
    Retry,
}

/// A claim request.
#[derive(Debug, Clone)]
pub struct Claim {
    pub lane: Lane,
    pub now_ms: i64,
    /// Most deliveries in all.
    pub limit: u32,
    pub lease: Duration,
    /// Unique per claim; outcomes must present it.
    pub lease_token: String,
    /// The in-flight cap of webhooks that set no `max_in_flight`.
    pub default_max_in_flight: u32,
    /// The webhooks this worker looks at first; other workers' are due here later.
    pub share: crate::share::Share,
}

impl Claim {
    /// What this claim may take of each candidate ([`crate::flow::plan_for`]); another
    /// worker's webhooks fall due here later ([`crate::share::Share::delay`]).
    pub fn plan(&self, candidates: &[crate::flow::Candidate]) -> crate::flow::Plan {
        crate::flow::plan_for(
            candidates,
            self.now_ms,
            self.default_max_in_flight,
            self.limit,
            &|webhook| self.share.delay(webhook),
        )
    }
}

/// What a claim took.
#[derive(Debug, Clone, Default)]
pub struct Claimed {
    /// The leased deliveries, in id order.
    pub deliveries: Vec<Delivery>,
    /// When something the claim could not take yet may become claimable (see
    /// [`crate::flow::Plan::next_at`]); `None`: only new work or a finished delivery will.
    pub next_at: Option<i64>,
    /// Some webhook's due deliveries wait for one of its requests in flight to finish
    /// ([`crate::flow::Plan::waits_for_a_slot`]).
    pub waits_for_a_slot: bool,
    /// What the claim planned with: each webhook's state as read under its lock (whether it
    /// is active and its circuit, fresher than a cached copy of the webhook). May be empty
    /// when nothing was taken.
    pub candidates: Vec<crate::flow::Candidate>,
}

impl Claimed {
    /// Nothing taken; when to look again, as the plan says.
    pub fn idle(plan: &crate::flow::Plan) -> Self {
        Self {
            deliveries: Vec::new(),
            next_at: plan.next_at,
            waits_for_a_slot: plan.waits_for_a_slot,
            candidates: Vec::new(),
        }
    }
}

/// Where a delivery goes after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextState {
    Succeeded,
    Retry {
        at_ms: i64,
    },
    Failed,
    /// Will not be attempted again: its webhook or event no longer exists.
    Cancelled,
}

/// The result of one attempt, to be recorded.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub attempt: Attempt,
    pub lease_token: String,
    pub next: NextState,
    pub webhook: WebhookEffect,
    /// When the failure clock has run since before this instant, [`WebhookEffect::Failing`]
    /// disables the webhook (SPEC §7: failures for 5 days).
    pub disable_if_failing_since_before: i64,
    /// What the attempt says about the endpoint, for its circuit breaker.
    pub circuit: crate::flow::Signal,
    pub circuit_policy: crate::flow::CircuitPolicy,
    pub now_ms: i64,
}

/// One firing of a schedule: its `schedule.fired` event and the delivery to its webhook.
#[derive(Debug, Clone)]
pub struct Firing {
    pub schedule_id: ScheduleId,
    /// The `next_run_at` the scheduler read: the firing happens only if the schedule is active
    /// and still holds it. `None` for a run by hand, which leaves `next_run_at` alone.
    pub expected_next_run_at: Option<i64>,
    /// The new `next_run_at` (ignored for a run by hand).
    pub next_run_at: Option<i64>,
    /// The occurrence fired (epoch ms), stored on the delivery.
    pub occurrence: i64,
    pub event_id: EventId,
    pub event: NewEvent,
    pub delivery_id: DeliveryId,
    pub webhook_id: WebhookId,
    /// The schedule's `message` template, stored on the delivery.
    pub message: Option<String>,
    /// Why the delivery cannot be sent as the schedule says: stored as the schedule's
    /// `last_error` (cleared when `None`).
    pub last_error: Option<String>,
    pub now_ms: i64,
}

/// A claim of queued async executions.
#[derive(Debug, Clone)]
pub struct ExecutionClaim {
    pub now_ms: i64,
    pub limit: u32,
    pub lease: Duration,
    /// Unique per claim; finishing must present it.
    pub lease_token: String,
}

/// Filters for listing deliveries.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub webhook_id: Option<WebhookId>,
    pub event_id: Option<EventId>,
    pub status: Option<DeliveryStatus>,
}

/// A webhook's recent deliveries at a glance: what the webhooks list shows per row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookStats {
    pub webhook_id: WebhookId,
    /// The status of its newest delivery, however old; `None` when it has none.
    pub last_status: Option<DeliveryStatus>,
    /// That delivery's `updated_at`.
    pub last_at: Option<i64>,
    /// Deliveries created in the window that succeeded.
    pub succeeded: u64,
    /// Deliveries created in the window that failed for good.
    pub failed: u64,
    /// Deliveries created in the window not finished yet (pending, delivering or retrying).
    pub pending: u64,
}

impl WebhookStats {
    /// The statistics of a webhook without deliveries.
    pub fn empty(webhook_id: WebhookId) -> Self {
        Self {
            webhook_id,
            last_status: None,
            last_at: None,
            succeeded: 0,
            failed: 0,
            pending: 0,
        }
    }
}

/// Which webhooks a worker looks at first, for [`Store::wait_for_work_of`].
pub type Mine = dyn Fn(&WebhookId) -> bool + Send + Sync;

/// What another process queued, as a wake-up tells it: each kind wakes only the loop that
/// takes it, so a publish does not make every worker's retry lane and execution runner look at
/// the database too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Work {
    /// New deliveries (published events, fired schedules): first attempts.
    pub first: bool,
    /// Deliveries due again (retried by hand, recovered).
    pub retry: bool,
    /// Queued inbound executions.
    pub executions: bool,
    /// New deliveries only of webhooks other workers own ([`Store::wait_for_work_of`]): their
    /// owners take them; this worker looks once they have waited
    /// [`crate::share::STEAL_AFTER_MS`], should an owner be gone.
    pub elsewhere: bool,
}

impl Work {
    /// Anything may have changed.
    pub const ALL: Work = Work {
        first: true,
        retry: true,
        executions: true,
        elsewhere: false,
    };
    pub const FIRST: Work = Work {
        first: true,
        retry: false,
        executions: false,
        elsewhere: false,
    };
    pub const RETRY: Work = Work {
        first: false,
        retry: true,
        executions: false,
        elsewhere: false,
    };
    pub const EXECUTIONS: Work = Work {
        first: false,
        retry: false,
        executions: true,
        elsewhere: false,
    };
    pub const ELSEWHERE: Work = Work {
        first: false,
        retry: false,
        executions: false,
        elsewhere: true,
    };

    /// Both kinds of work.
    pub fn and(self, other: Work) -> Work {
        Work {
            first: self.first || other.first,
            retry: self.retry || other.retry,
            executions: self.executions || other.executions,
            elsewhere: self.elsewhere || other.elsewhere,
        }
    }
}

/// Every use case hookd needs from its database.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Applies pending migrations, then checks that the configured keys open the stored
    /// secrets and seals any still stored plain; safe to run concurrently from several
    /// processes.
    async fn migrate(&self) -> StoreResult<()>;
    /// Seals every stored secret with a new data key (sealed by the configured `secrets_key`)
    /// and deletes the old data keys, in one transaction. Other processes keep serving
    /// meanwhile; two rotations take turns, and an interrupted one changes nothing.
    async fn rotate_secrets_key(&self, now_ms: i64) -> StoreResult<KeyRotation>;
    /// Checks the database answers and can write (for `/ready`).
    async fn ping(&self) -> StoreResult<()>;

    // --- admin tokens ---
    async fn count_tokens(&self) -> StoreResult<u64>;
    async fn insert_token(&self, token: &TokenRecord) -> StoreResult<()>;
    async fn token_hash_exists(&self, hash: &str) -> StoreResult<bool>;

    // --- webhooks ---
    async fn insert_webhook(&self, webhook: &Webhook) -> StoreResult<()>;
    async fn get_webhook(&self, id: &WebhookId) -> StoreResult<Option<Webhook>>;
    async fn list_webhooks(&self, page: &Page) -> StoreResult<Vec<Webhook>>;
    /// Replaces every stored field of a webhook, provided it is still as `read` left it
    /// (`updated_at`, `active`, `disabled_reason`: the worker may have disabled it meanwhile).
    async fn update_webhook(&self, webhook: &Webhook, read: &Webhook) -> StoreResult<Written>;
    /// Deletes a webhook, cancels its unfinished deliveries; `false` if it did not exist.
    async fn delete_webhook(&self, id: &WebhookId, now_ms: i64) -> StoreResult<bool>;
    async fn active_webhooks(&self) -> StoreResult<Vec<Webhook>>;
    async fn webhooks_by_ids(&self, ids: &[WebhookId]) -> StoreResult<Vec<Webhook>>;
    /// A number that changes whenever any webhook is written, so callers can cache
    /// [`Store::active_webhooks`] across processes.
    async fn webhooks_version(&self) -> StoreResult<i64>;

    // --- events ---
    /// Stores events with their deliveries in one transaction, honouring idempotency keys.
    async fn enqueue_events(
        &self,
        events: &[EventToStore],
        now_ms: i64,
    ) -> StoreResult<Vec<Enqueued>>;
    /// Stores events as [`Store::enqueue_events`] does and, in the same transaction, claims
    /// first attempts as [`Store::claim_due_deliveries`] would for `claim` (its lane
    /// [`Lane::First`]): a worker in the publisher's process then sends what was just published
    /// without a claim of its own, and the rows are written once, already leased. The claim is
    /// the same fair claim, within every webhook's limits; a store may confine it to the
    /// webhooks `events` queue for (PostgreSQL does), leaving older work of other webhooks to
    /// the lanes. `None`: nothing was claimed here
    /// (nothing was queued, or the store does not claim in a publish: the default), and the
    /// worker's lanes claim as usual.
    async fn enqueue_events_and_claim(
        &self,
        events: &[EventToStore],
        now_ms: i64,
        claim: &Claim,
    ) -> StoreResult<(Vec<Enqueued>, Option<Claimed>)> {
        let _ = claim;
        Ok((self.enqueue_events(events, now_ms).await?, None))
    }
    async fn get_event(&self, id: &EventId) -> StoreResult<Option<Event>>;
    async fn list_events(&self, page: &Page) -> StoreResult<Vec<Event>>;
    async fn events_by_ids(&self, ids: &[EventId]) -> StoreResult<Vec<Event>>;

    // --- deliveries ---
    /// Leases up to `limit` due deliveries of the lane, setting them to `delivering` with
    /// `next_attempt_at = now + lease`. Fair across webhooks: each webhook's oldest due first,
    /// round-robin, and never more than its [`crate::flow`] limits allow (in-flight cap, rate,
    /// circuit), counted over every process sharing the database.
    async fn claim_due_deliveries(&self, claim: &Claim) -> StoreResult<Claimed>;
    /// Notes that worker `id` is alive at `now_ms`, forgets the workers not seen since
    /// `expired_before`, and returns the ids of the workers alive, in order (`id` among them):
    /// the processes that share the webhooks out ([`crate::share`]).
    async fn worker_heartbeat(
        &self,
        id: &str,
        now_ms: i64,
        expired_before: i64,
    ) -> StoreResult<Vec<String>>;
    /// Forgets worker `id`: it is stopping.
    async fn worker_leave(&self, id: &str) -> StoreResult<()>;
    /// Deliveries not finished yet (pending, delivering or retrying): the queue depth.
    async fn queue_depth(&self) -> StoreResult<u64>;
    /// How many webhooks have their circuit open or half open at `now_ms`: `(open, half_open)`.
    async fn circuit_counts(&self, now_ms: i64) -> StoreResult<(u64, u64)>;
    /// Records attempts and moves their deliveries and webhooks (failure clock, circuit), in one
    /// transaction.
    async fn record_outcomes(&self, outcomes: &[Outcome]) -> StoreResult<()>;
    async fn get_delivery(&self, id: &DeliveryId) -> StoreResult<Option<Delivery>>;
    async fn list_deliveries(
        &self,
        filter: &DeliveryFilter,
        page: &Page,
    ) -> StoreResult<Vec<Delivery>>;
    /// Attempts of a delivery, oldest first.
    async fn list_attempts(&self, delivery: &DeliveryId) -> StoreResult<Vec<Attempt>>;
    /// Per-webhook statistics: one entry per id in `ids`, in that order; the counts are over
    /// deliveries created at or after `since_ms`, the newest delivery is of any age.
    async fn webhook_stats(
        &self,
        ids: &[WebhookId],
        since_ms: i64,
    ) -> StoreResult<Vec<WebhookStats>>;
    /// The attempts started in the window (of one webhook, or all), bucket by bucket: every
    /// bucket, oldest first. Reads only the window's range of an index on `started_at`, so the
    /// cost follows the window, not what retention keeps.
    async fn attempt_series(&self, window: &AttemptWindow) -> StoreResult<Vec<AttemptBucket>>;
    /// Makes a delivery that is not being delivered due now (`pending` if it never ran, else
    /// `retrying`). `None` if it does not exist; `Some(false)` if it is being delivered.
    async fn retry_delivery_now(&self, id: &DeliveryId, now_ms: i64) -> StoreResult<Option<bool>>;

    /// Makes the webhook's `failed` deliveries created at or after `since_ms` due now again
    /// (`retrying`). Returns how many.
    async fn recover_failed(
        &self,
        webhook: &WebhookId,
        since_ms: i64,
        now_ms: i64,
    ) -> StoreResult<u64>;

    // --- schedules ---
    async fn insert_schedule(&self, schedule: &Schedule) -> StoreResult<()>;
    async fn get_schedule(&self, id: &ScheduleId) -> StoreResult<Option<Schedule>>;
    async fn list_schedules(&self, page: &Page) -> StoreResult<Vec<Schedule>>;
    /// Writes `active`, `spec`, `next_run_at` and `updated_at` of `schedule`, provided its
    /// version is still `read_version` (a firing or another update bumps it).
    async fn update_schedule(&self, schedule: &Schedule, read_version: i64)
        -> StoreResult<Written>;
    /// Deletes a schedule (its deliveries stay); `false` if it did not exist.
    async fn delete_schedule(&self, id: &ScheduleId) -> StoreResult<bool>;
    /// Active schedules whose `next_run_at` is at or before `now_ms`, earliest first.
    async fn due_schedules(&self, now_ms: i64, limit: u32) -> StoreResult<Vec<Schedule>>;
    /// The earliest `next_run_at` of the active schedules.
    async fn next_schedule_at(&self) -> StoreResult<Option<i64>>;
    /// Stores a firing in one transaction, conditionally (see [`Firing`]); `false` when another
    /// worker fired that occurrence first or the schedule changed or went away: nothing stored.
    async fn fire_schedule(&self, firing: &Firing) -> StoreResult<bool>;

    // --- inbound hooks ---
    /// Inserts a hook; [`StoreError::Conflict`] if its key is taken.
    async fn insert_inbound(&self, hook: &InboundHook) -> StoreResult<()>;
    async fn get_inbound(&self, id: &InboundId) -> StoreResult<Option<InboundHook>>;
    /// The hook whose public URL key is `key` (active or not).
    async fn get_inbound_by_key(&self, key: &str) -> StoreResult<Option<InboundHook>>;
    async fn list_inbound(&self, page: &Page) -> StoreResult<Vec<InboundHook>>;
    /// Replaces the hook's spec and `updated_at`, provided `updated_at` is still `read_updated_at`.
    async fn update_inbound(
        &self,
        hook: &InboundHook,
        read_updated_at: i64,
    ) -> StoreResult<Written>;
    /// Deletes a hook (its executions stay until retention); `false` if it did not exist.
    async fn delete_inbound(&self, id: &InboundId) -> StoreResult<bool>;

    // --- executions ---
    /// Stores executions in one transaction (the server groups concurrent requests). A `queued`
    /// one is durable when this returns and wakes workers (like queued deliveries).
    async fn insert_executions(&self, executions: &[Execution]) -> StoreResult<()>;
    /// Leases up to `limit` due executions: `queued` ones, and `running` ones whose lease ran
    /// out, oldest due first; sets them `running`, `next_attempt_at = now + lease`, `attempts + 1`.
    async fn claim_executions(&self, claim: &ExecutionClaim) -> StoreResult<Vec<Execution>>;
    /// Writes claimed executions' status and record (`next_attempt_at` cleared), each provided
    /// it is still under its lease token, in one transaction. Returns, in order, whether each was
    /// written (`false`: its lease had moved on; nothing written for it).
    async fn finish_executions(&self, done: &[(Execution, String)]) -> StoreResult<Vec<bool>>;
    /// How many of the hook's executions are queued or running, counting no further than
    /// `up_to` (so the cost follows the cap, not the queue).
    async fn count_unfinished_executions(&self, hook: &InboundId, up_to: u64) -> StoreResult<u64>;
    /// The earliest `next_attempt_at` of queued or running executions.
    async fn next_execution_at(&self) -> StoreResult<Option<i64>>;
    async fn get_execution(&self, id: &ExecutionId) -> StoreResult<Option<Execution>>;
    /// A hook's executions, newest first.
    async fn list_executions(&self, hook: &InboundId, page: &Page) -> StoreResult<Vec<Execution>>;

    // --- waking workers ---
    /// Returns when deliveries may have been queued by another process, or after `max_wait`,
    /// with what kind of work was queued when the backend can tell ([`Work::ALL`] otherwise, and
    /// at `max_wait`). PostgreSQL uses LISTEN/NOTIFY with the kind as payload; SQLite watches the
    /// file's change counter.
    async fn wait_for_work(&self, max_wait: Duration) -> Work;
    /// As [`Store::wait_for_work`], for a worker that looks first at the webhooks `mine`
    /// accepts ([`crate::share`]): a backend whose wake-ups name the webhooks that got new
    /// deliveries leaves out the first attempts of the others (their owners take them), saying
    /// only [`Work::elsewhere`].
    async fn wait_for_work_of(&self, max_wait: Duration, mine: &Mine) -> Work {
        let _ = mine;
        self.wait_for_work(max_wait).await
    }

    // --- retention ---
    /// Deletes finished deliveries with their attempts, events with no unfinished delivery, and
    /// finished executions, created before `before_ms`. Returns the number of rows removed.
    async fn prune(&self, before_ms: i64) -> StoreResult<u64>;

    // --- benchmarks ---
    /// Stores `count` events as finished history, each with one delivery to `webhook` that
    /// succeeded at its one attempt, all created at `at_ms`, in bulk: what `hookd bench
    /// --history` measures beside, and what plan tests grow tables with.
    async fn seed_history(&self, webhook: &WebhookId, count: u64, at_ms: i64) -> StoreResult<()>;
}
