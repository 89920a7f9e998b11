//! The delivery worker: claim due deliveries under a lease, send them, record the outcomes.
//!
//! Two lanes, first attempts and retries, share the process's budget of requests in flight
//! (`delivery.concurrency`); retries may hold at most half of it ([`Budget`]), so a backlog of
//! retries to failing endpoints never holds up first attempts. Claims are fair across webhooks
//! and keep each webhook within its in-flight cap, rate limit and circuit ([`hookd_core::flow`]),
//! so one hanging endpoint holds at most its cap of the budget. Outcomes are written in batches
//! by one recorder task. An idle lane sleeps until it is woken (in-process hand-off from the
//! API, a finished delivery, or the store's cross-process signal) or until the claim said
//! something may become claimable. The same task set runs the scheduler ([`scheduler`]), which fires due schedules
//! into the delivery queue.

mod executions;
mod guard;
pub mod handoff;
mod recorder;
pub mod scheduler;
pub mod send;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hookd_core::share::Share;
use hookd_core::store::{Claim, Claimed, Lane, Work};
use hookd_core::{Delivery, ErrorKind, Event, Store, Webhook};
use tokio::sync::{mpsc, watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tracing::field::Empty;
use tracing::Instrument as _;

use crate::settings::Settings;
pub use handoff::Handoff;
use send::HttpSender;

/// Most deliveries claimed in one query.
pub(crate) const CLAIM_BATCH: u32 = 256;
/// Longest an idle lane sleeps without any signal: a safety net, not the wake-up mechanism.
const IDLE_MAX: Duration = Duration::from_secs(5);
/// How often retention pruning runs.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// How often a lane looks again whether the recorder writes again.
const RECORDER_WAIT: Duration = Duration::from_millis(200);
/// How often a worker tells the others it is alive ([`hookd_core::share`]).
const HEARTBEAT: Duration = Duration::from_secs(2);
/// How long a worker that stopped saying so still counts as alive.
const HEARTBEAT_TTL: Duration = Duration::from_secs(10);

/// What wakes the worker's loops: one signal per loop, so work of one kind wakes only the loop
/// that takes it (each wake costs a loop a look at the database).
#[derive(Debug, Default)]
pub struct Wakes {
    /// The first-attempt lane: new deliveries.
    first: Notify,
    /// The retry lane: deliveries due again.
    retry: Notify,
    /// The execution runner: queued inbound executions.
    executions: Notify,
}

impl Wakes {
    /// New deliveries were queued (published events, fired schedules): they are first attempts.
    pub fn queued(&self) {
        self.first.notify_waiters();
    }

    /// Deliveries may be due or takeable again in either lane: retried by hand, a retry
    /// scheduled sooner than a lane sleeps, a slot freed, a webhook's limits changed.
    pub fn deliveries(&self) {
        self.first.notify_waiters();
        self.retry.notify_waiters();
    }

    /// An inbound execution was queued.
    pub fn executions(&self) {
        self.executions.notify_waiters();
    }

    /// Anything may have changed (another process wrote to the database).
    pub fn everything(&self) {
        self.work(Work::ALL);
    }

    /// Another process queued this work: wakes the loops that take it.
    pub fn work(&self, work: Work) {
        if work.first {
            self.first.notify_waiters();
        }
        if work.retry {
            self.retry.notify_waiters();
        }
        if work.executions {
            self.executions.notify_waiters();
        }
    }

    fn lane(&self, lane: Lane) -> &Notify {
        match lane {
            Lane::First => &self.first,
            Lane::Retry => &self.retry,
        }
    }
}

/// Everything a worker needs, shared by its tasks.
#[derive(Debug, Clone)]
pub struct Worker {
    pub store: Arc<dyn Store>,
    pub settings: Arc<Settings>,
    pub sender: HttpSender,
    /// Wakes its loops when work is queued.
    pub wake: Arc<Wakes>,
    /// Notified when a schedule is written (by this process's API).
    pub schedules: Arc<Notify>,
    /// Commits events published by inbound workflows.
    pub committer: crate::publish::Committer,
    /// Inbound hooks' compiled workflows.
    pub inbound: Arc<crate::inbound::Runtime>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The budget of requests in flight, and what publishes in this process hand over.
    pub handoff: Arc<Handoff>,
}

/// Deliveries leased under one token, with one slot of the budget each.
#[derive(Debug)]
pub(crate) struct Leased {
    pub deliveries: Vec<Delivery>,
    pub slots: Slots,
    pub token: String,
}

/// Events and webhooks already at hand for a claim's deliveries.
#[derive(Debug, Default)]
pub(crate) struct Known {
    pub events: HashMap<hookd_core::EventId, Arc<Event>>,
    pub hooks: HashMap<hookd_core::WebhookId, Arc<Webhook>>,
}

/// What one claim-and-dispatch step did.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Dispatched this many deliveries.
    Dispatched(usize),
    /// Nothing could be claimed; something may become claimable at `next_at` (epoch ms), or
    /// when a request in flight finishes (`waits_for_a_slot`).
    Idle {
        next_at: Option<i64>,
        waits_for_a_slot: bool,
    },
}

/// What a lane shares with the other lane and the recorder.
#[derive(Debug, Clone)]
struct LaneState {
    budget: Budget,
    /// Set by a lane that found due deliveries of a webhook at its cap: the recorder then
    /// wakes the lanes after its next batch, as a finished delivery frees a slot.
    slot_waiters: Arc<AtomicBool>,
    /// Outcome batches the recorder has written: a lane that raises `slot_waiters` after its
    /// claim looks again at once if this moved meanwhile (the recorder may have freed the slot
    /// before it saw the flag).
    recorded: Arc<AtomicU64>,
    /// Webhooks whose circuit breaker is not clean, for the recorder.
    circuits: recorder::Circuits,
    /// Set by the recorder while it cannot write outcomes: the lanes then claim nothing.
    recorder_failing: Arc<AtomicBool>,
}

/// The process's budget of requests in flight, shared by the lanes: first attempts may use all
/// of it, retries at most half, so first attempts always have at least the other half.
#[derive(Debug, Clone)]
pub struct Budget {
    all: Arc<Semaphore>,
    retries: Arc<Semaphore>,
}

/// Slots of the [`Budget`] reserved together, held as one permit of each semaphore: handing
/// them out one by one, or giving the rest back, costs one step each.
#[derive(Debug)]
pub struct Slots {
    all: OwnedSemaphorePermit,
    retry: Option<OwnedSemaphorePermit>,
}

impl Slots {
    pub fn len(&self) -> usize {
        self.all.num_permits()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Gives back all but `n`.
    pub fn truncate(&mut self, n: usize) {
        let extra = self.len().saturating_sub(n);
        if extra > 0 {
            drop(self.all.split(extra));
            if let Some(retry) = &mut self.retry {
                drop(retry.split(extra));
            }
        }
    }

    /// Takes one slot out; `None` once none is left.
    pub fn take(&mut self) -> Option<Slot> {
        let all = self.all.split(1)?;
        let retry = match &mut self.retry {
            Some(retry) => Some(retry.split(1)?),
            None => None,
        };
        Some(Slot {
            _all: all,
            _retry: retry,
        })
    }
}

/// A slot of the [`Budget`], given back when dropped.
#[derive(Debug)]
pub struct Slot {
    _all: OwnedSemaphorePermit,
    _retry: Option<OwnedSemaphorePermit>,
}

impl Budget {
    pub fn new(concurrency: usize) -> Self {
        let concurrency = concurrency.max(1);
        Self {
            all: Arc::new(Semaphore::new(concurrency)),
            retries: Arc::new(Semaphore::new(concurrency.div_ceil(2))),
        }
    }

    /// Waits for one slot for `lane`, then takes as many more as are free, up to `max` in all,
    /// in one step whatever their number.
    pub async fn reserve(&self, lane: Lane, max: usize) -> Slots {
        let first = self.acquire(lane).await;
        let mut slots = Slots {
            all: first._all,
            retry: first._retry,
        };
        let free = match lane {
            Lane::First => self.all.available_permits(),
            Lane::Retry => self
                .all
                .available_permits()
                .min(self.retries.available_permits()),
        };
        let more = u32::try_from(max.saturating_sub(1).min(free)).unwrap_or(u32::MAX);
        if more == 0 {
            return slots;
        }
        // The other lane may take some between the count and the take: then this reservation
        // stays at one, and the next takes more.
        let retry = match lane {
            Lane::First => None,
            Lane::Retry => match self.retries.clone().try_acquire_many_owned(more) {
                Ok(permit) => Some(permit),
                Err(_) => return slots,
            },
        };
        if let Ok(all) = self.all.clone().try_acquire_many_owned(more) {
            slots.all.merge(all);
            if let (Some(mine), Some(more)) = (&mut slots.retry, retry) {
                mine.merge(more);
            }
        }
        slots
    }

    /// Takes as many slots for `lane` as are free, up to `max`, without waiting; `None` when
    /// none is.
    pub fn try_reserve(&self, lane: Lane, max: usize) -> Option<Slots> {
        let free = match lane {
            Lane::First => self.all.available_permits(),
            Lane::Retry => self
                .all
                .available_permits()
                .min(self.retries.available_permits()),
        };
        let n = u32::try_from(max.min(free)).ok().filter(|&n| n > 0)?;
        let retry = match lane {
            Lane::First => None,
            Lane::Retry => Some(self.retries.clone().try_acquire_many_owned(n).ok()?),
        };
        let all = self.all.clone().try_acquire_many_owned(n).ok()?;
        Some(Slots { all, retry })
    }

    /// Waits for a slot for `lane`.
    pub async fn acquire(&self, lane: Lane) -> Slot {
        let retry = match lane {
            Lane::First => None,
            Lane::Retry => Some(acquire(&self.retries).await),
        };
        Slot {
            _all: acquire(&self.all).await,
            _retry: retry,
        }
    }

    /// Slots `lane` could take now.
    #[cfg(test)]
    fn free(&self, lane: Lane) -> usize {
        match lane {
            Lane::First => self.all.available_permits(),
            Lane::Retry => self
                .all
                .available_permits()
                .min(self.retries.available_permits()),
        }
    }
}

async fn acquire(semaphore: &Arc<Semaphore>) -> OwnedSemaphorePermit {
    semaphore
        .clone()
        .acquire_owned()
        .await
        .expect("semaphore never closed")
}

impl Worker {
    /// Runs both lanes, the recorder, the cross-process waker and retention until `shutdown`
    /// flips to true; then lets in-flight deliveries finish and flushes their outcomes.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        let (tx, rx) = mpsc::channel(4096);
        let slot_waiters = Arc::new(AtomicBool::new(false));
        let recorded = Arc::new(AtomicU64::new(0));
        let circuits = recorder::Circuits::default();
        let recorder_failing = self.handoff.recorder_failing();
        let recorder = tokio::spawn(recorder::run(
            recorder::Recorder {
                store: self.store.clone(),
                wake: self.wake.clone(),
                slot_waiters: slot_waiters.clone(),
                recorded: recorded.clone(),
                circuits: circuits.clone(),
                failing: recorder_failing.clone(),
                give_up_after: self.settings.delivery.lease,
                metrics: self.metrics.clone(),
            },
            rx,
        ));
        let mut tasks = JoinSet::new();
        let state = LaneState {
            budget: self.handoff.budget(),
            slot_waiters,
            recorded,
            circuits,
            recorder_failing,
        };
        for lane in [Lane::First, Lane::Retry] {
            let (state, tx) = (state.clone(), tx.clone());
            tasks.spawn(self.clone().lane(lane, state, tx, shutdown.clone()));
        }
        if let Some(handed) = self.handoff.open() {
            let dispatch = self
                .clone()
                .take_handoffs(state, tx, handed, shutdown.clone());
            tasks.spawn(dispatch);
        } else {
            drop(tx);
        }
        tasks.spawn(self.clone().relay_external_wakeups(shutdown.clone()));
        tasks.spawn(scheduler::run(
            self.store.clone(),
            self.schedules.clone(),
            self.wake.clone(),
            shutdown.clone(),
        ));
        tasks.spawn(self.clone().run_executions(shutdown.clone()));
        tasks.spawn(self.clone().share_out(shutdown.clone()));
        tasks.spawn(self.clone().prune_periodically(shutdown));
        while tasks.join_next().await.is_some() {}
        let _ = recorder.await;
    }

    /// Says every [`HEARTBEAT`] that this worker is alive, and keeps its [`Share`] of the
    /// webhooks up to date with the workers alive. While the database cannot say, the last
    /// share holds (ownership only decides who looks first).
    async fn share_out(self, mut shutdown: watch::Receiver<bool>) {
        let id = format!("wk_{}", crate::auth::generate_token());
        let ttl = HEARTBEAT_TTL.as_millis() as i64;
        while !*shutdown.borrow() {
            let now = crate::now_ms();
            match self.store.worker_heartbeat(&id, now, now - ttl).await {
                Ok(live) => {
                    let next = Share::new(&id, &live);
                    let workers = next.workers();
                    self.metrics.workers(workers);
                    if self.handoff.set_share(next) {
                        tracing::debug!(workers, "the workers alive changed");
                    }
                }
                Err(e) => tracing::debug!(error = %e, "the worker heartbeat failed"),
            }
            pause(HEARTBEAT, &mut shutdown).await;
        }
        // The lanes claim nothing more: the others may take this worker's share at once.
        if let Err(e) = self.store.worker_leave(&id).await {
            tracing::debug!(error = %e, "could not tell the other workers this one stopped");
        }
    }

    async fn lane(
        self,
        lane: Lane,
        state: LaneState,
        tx: mpsc::Sender<hookd_core::store::Outcome>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut inflight = JoinSet::new();
        let mut backoff = Backoff::default();
        while !*shutdown.borrow() {
            // Reap finished sends so a lane that never idles does not accumulate them.
            while inflight.try_join_next().is_some() {}
            // Outcomes that cannot be written would be sent again when their leases run out:
            // send nothing more until the recorder writes again.
            if state.recorder_failing.load(Ordering::Acquire) {
                pause(RECORDER_WAIT, &mut shutdown).await;
                continue;
            }
            let notified = self.wake.lane(lane).notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let recorded = state.recorded.load(Ordering::SeqCst);
            let wait = match self.step(lane, &state, &tx, &mut inflight).await {
                Ok(Step::Dispatched(_)) => {
                    backoff.succeeded();
                    continue;
                }
                Ok(Step::Idle {
                    next_at,
                    waits_for_a_slot,
                }) => {
                    backoff.succeeded();
                    if waits_for_a_slot {
                        state.slot_waiters.store(true, Ordering::SeqCst);
                        if state.recorded.load(Ordering::SeqCst) != recorded {
                            continue;
                        }
                    }
                    sleep_until(Ok(next_at), IDLE_MAX)
                }
                Err(e) => {
                    let wait = backoff.failed();
                    tracing::warn!(error = %e, ?lane, retry_in = ?wait, "claiming deliveries failed");
                    pause(wait, &mut shutdown).await;
                    continue;
                }
            };
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {}
            }
        }
        while inflight.join_next().await.is_some() {}
    }

    /// Claims what is due in `lane` (as many as the budget has room for) and starts sending it.
    async fn step(
        &self,
        lane: Lane,
        state: &LaneState,
        tx: &mpsc::Sender<hookd_core::store::Outcome>,
        inflight: &mut JoinSet<()>,
    ) -> Result<Step, hookd_core::StoreError> {
        // Slots are taken before the claim, so every delivery claimed is sent at once: the
        // other lane draws on the same budget, and a lease must not wait for a slot.
        let mut slots = state.budget.reserve(lane, CLAIM_BATCH as usize).await;
        let token = crate::auth::generate_token();
        let claim = Claim {
            lane,
            now_ms: crate::now_ms(),
            limit: slots.len() as u32,
            lease: self.settings.delivery.lease,
            lease_token: token.clone(),
            default_max_in_flight: self.settings.delivery.max_in_flight_per_webhook,
            share: self.handoff.share(),
        };
        let span = tracing::info_span!("claim", ?lane, limit = claim.limit, claimed = Empty);
        let Claimed {
            deliveries: claimed,
            next_at,
            waits_for_a_slot,
            ..
        } = self
            .store
            .claim_due_deliveries(&claim)
            .instrument(span.clone())
            .await?;
        span.record("claimed", claimed.len());
        if claimed.is_empty() {
            return Ok(Step::Idle {
                next_at,
                waits_for_a_slot,
            });
        }
        let n = claimed.len();
        slots.truncate(n);
        let known = self.load_context(&claimed, Known::default()).await?;
        let leased = Leased {
            deliveries: claimed,
            slots,
            token,
        };
        self.dispatch(leased, known, state, tx, inflight, &span)
            .await;
        Ok(Step::Dispatched(n))
    }

    /// Starts sending claimed deliveries, each with one of `slots`, in `inflight`; those whose
    /// webhook is disabled or whose webhook or event is gone get their outcome without a send.
    async fn dispatch(
        &self,
        leased: Leased,
        Known { events, hooks }: Known,
        state: &LaneState,
        tx: &mpsc::Sender<hookd_core::store::Outcome>,
        inflight: &mut JoinSet<()>,
        span: &tracing::Span,
    ) {
        state.circuits.note_loaded(hooks.values().map(|w| &**w));
        let Leased {
            deliveries,
            mut slots,
            token,
        } = leased;
        let token = token.as_str();
        let permits = std::iter::from_fn(|| slots.take());
        for (delivery, permit) in deliveries.into_iter().zip(permits) {
            let (event, hook) = (
                events.get(&delivery.event_id),
                hooks.get(&delivery.webhook_id),
            );
            let (Some(event), Some(hook)) = (event, hook.filter(|h| h.active)) else {
                let outcome = match hook {
                    Some(h) => {
                        let why = "the webhook is disabled";
                        send::not_sent(&delivery, Some(h), token, ErrorKind::WebhookDisabled, why)
                    }
                    None => {
                        let why = "the webhook or the event no longer exists";
                        send::not_sent(&delivery, None, token, ErrorKind::Gone, why)
                    }
                };
                let _ = tx.send(outcome).await;
                drop(permit);
                continue;
            };
            let (me, tx, token) = (self.clone(), tx.clone(), token.to_owned());
            let (event, hook) = (event.clone(), hook.clone());
            let span = tracing::info_span!(
                parent: span,
                "attempt",
                delivery_id = %delivery.id,
                webhook_id = %delivery.webhook_id,
                event_id = %delivery.event_id,
                attempt = delivery.attempts + 1,
                status = Empty,
                error = Empty
            );
            inflight.spawn(
                async move {
                    let outcome =
                        send::attempt(&me.sender, &me.settings, &hook, &event, &delivery, &token)
                            .await;
                    note_attempt(&outcome.attempt);
                    let _ = tx.send(outcome).await;
                    drop(permit);
                }
                .instrument(span),
            );
        }
    }
}

/// Writes what an attempt got into its span, and logs it: failures at `info` (an on-call
/// operator's first question), successes at `debug`.
fn note_attempt(tried: &hookd_core::Attempt) {
    let span = tracing::Span::current();
    let status = tried.response.as_ref().map(|r| r.status);
    if let Some(status) = status {
        span.record("status", status);
    }
    if let Some(kind) = tried.error_kind {
        span.record("error", tracing::field::debug(kind));
    }
    let duration_ms = tried.duration_ms;
    match (status, &tried.error) {
        (Some(200..=299), _) => tracing::debug!(status, duration_ms, "attempt succeeded"),
        (_, Some(error)) => tracing::info!(duration_ms, error, "attempt failed"),
        (status, None) => tracing::info!(status, duration_ms, "attempt failed"),
    }
}

impl Worker {
    /// The events and webhooks of `claimed`: those `known` lacks are read.
    async fn load_context(
        &self,
        claimed: &[Delivery],
        mut known: Known,
    ) -> Result<Known, hookd_core::StoreError> {
        let mut event_ids: Vec<_> = claimed
            .iter()
            .map(|d| &d.event_id)
            .filter(|id| !known.events.contains_key(*id))
            .cloned()
            .collect();
        event_ids.sort();
        event_ids.dedup();
        let mut hook_ids: Vec<_> = claimed
            .iter()
            .map(|d| &d.webhook_id)
            .filter(|id| !known.hooks.contains_key(*id))
            .cloned()
            .collect();
        hook_ids.sort();
        hook_ids.dedup();
        if !event_ids.is_empty() {
            let events = self.store.events_by_ids(&event_ids).await?;
            known
                .events
                .extend(events.into_iter().map(|e| (e.id.clone(), Arc::new(e))));
        }
        if !hook_ids.is_empty() {
            let hooks = self.store.webhooks_by_ids(&hook_ids).await?;
            known
                .hooks
                .extend(hooks.into_iter().map(|w| (w.id.clone(), Arc::new(w))));
        }
        Ok(known)
    }

    /// Sends what publishes in this process claimed and handed over ([`Handoff`]) until
    /// `shutdown`; then takes no more, sends what was already handed and lets it finish.
    async fn take_handoffs(
        self,
        state: LaneState,
        tx: mpsc::Sender<hookd_core::store::Outcome>,
        mut handed: mpsc::UnboundedReceiver<handoff::Handed>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut inflight = JoinSet::new();
        while !*shutdown.borrow() {
            while inflight.try_join_next().is_some() {}
            tokio::select! {
                next = handed.recv() => match next {
                    Some(next) => self.dispatch_handed(next, &state, &tx, &mut inflight).await,
                    None => break,
                },
                _ = shutdown.changed() => {}
            }
        }
        self.handoff.close();
        handed.close();
        while let Some(next) = handed.recv().await {
            self.dispatch_handed(next, &state, &tx, &mut inflight).await;
        }
        while inflight.join_next().await.is_some() {}
    }

    async fn dispatch_handed(
        &self,
        handoff::Handed { leased, known }: handoff::Handed,
        state: &LaneState,
        tx: &mpsc::Sender<hookd_core::store::Outcome>,
        inflight: &mut JoinSet<()>,
    ) {
        let claimed = leased.deliveries.len();
        let span = tracing::info_span!("claim", lane = ?Lane::First, handed = true, claimed);
        match self.load_context(&leased.deliveries, known).await {
            Ok(known) => {
                self.dispatch(leased, known, state, tx, inflight, &span)
                    .await
            }
            Err(e) => tracing::warn!(parent: &span, error = %e,
                "reading the events or webhooks of handed deliveries failed; they go again when their lease ends"),
        }
    }

    /// Turns the store's cross-process signal (another process queued work) into a local
    /// wake-up. New deliveries only of webhooks other workers own wake the first-attempt lane
    /// once, [`STEAL_AFTER_MS`](hookd_core::share::STEAL_AFTER_MS) later (one look a second at
    /// most), when they would be this worker's to take should their owner be gone.
    async fn relay_external_wakeups(self, mut shutdown: watch::Receiver<bool>) {
        let handoff = self.handoff.clone();
        let mine = move |webhook: &hookd_core::WebhookId| handoff.owns(webhook);
        let steal_after = Duration::from_millis(hookd_core::share::STEAL_AFTER_MS as u64 + 10);
        let mut look_later: Option<tokio::time::Instant> = None;
        while !*shutdown.borrow() {
            let later = async {
                match look_later {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                work = self.store.wait_for_work_of(IDLE_MAX, &mine) => {
                    if work.elsewhere && look_later.is_none() {
                        look_later = Some(tokio::time::Instant::now() + steal_after);
                    }
                    self.wake.work(work);
                }
                _ = later => {
                    look_later = None;
                    self.wake.queued();
                }
                _ = shutdown.changed() => {}
            }
        }
    }

    async fn prune_periodically(self, mut shutdown: watch::Receiver<bool>) {
        while !*shutdown.borrow() {
            let cutoff = crate::now_ms() - self.settings.retention.as_millis() as i64;
            match self.store.prune(cutoff).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(rows = n, "pruned records past retention"),
                Err(e) => tracing::warn!(error = %e, "pruning failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(PRUNE_EVERY) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}

/// Exponential back-off for a loop whose store calls fail: 100 ms after the first failure,
/// doubling up to 5 s, back to nothing after a success. While it waits, the loop ignores
/// wake-ups, so a database that is down or a full disk costs a few attempts and log lines per
/// second at most, not one per published event.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    failures: u32,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(5);

    /// Notes a failure; how long to wait before the next attempt.
    pub(crate) fn failed(&mut self) -> Duration {
        let wait = Self::FIRST
            .saturating_mul(1 << self.failures.min(16))
            .min(Self::MAX);
        self.failures = self.failures.saturating_add(1);
        wait
    }

    pub(crate) fn succeeded(&mut self) {
        self.failures = 0;
    }
}

/// Sleeps `wait` unless `shutdown` turns true first.
pub(crate) async fn pause(wait: Duration, shutdown: &mut watch::Receiver<bool>) {
    tokio::select! {
        _ = tokio::time::sleep(wait) => {}
        _ = shutdown.changed() => {}
    }
}

/// How long an idle loop sleeps given the next due time it read (epoch ms): until then, at most
/// `max`; `max` when nothing is due; a second when the read failed.
pub(crate) fn sleep_until(
    next_due: Result<Option<i64>, hookd_core::StoreError>,
    max: Duration,
) -> Duration {
    match next_due {
        Ok(Some(at)) => {
            let ms = (at - crate::now_ms()).clamp(0, max.as_millis() as i64);
            Duration::from_millis(ms as u64)
        }
        Ok(None) => max,
        Err(_) => Duration::from_secs(1).min(max),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn retries_hold_at_most_half_the_budget_and_first_attempts_all_of_it() {
        let budget = Budget::new(10);
        let mut retries = Vec::new();
        for _ in 0..5 {
            retries.push(budget.acquire(Lane::Retry).await);
        }
        assert_eq!(budget.free(Lane::Retry), 0, "retries stop at half");
        assert_eq!(
            budget.free(Lane::First),
            5,
            "first attempts keep the other half"
        );
        let mut firsts = Vec::new();
        for _ in 0..5 {
            firsts.push(budget.acquire(Lane::First).await);
        }
        assert_eq!(budget.free(Lane::First), 0, "the lanes share one budget");
        retries.clear();
        assert_eq!(budget.free(Lane::First), 5);
        for _ in 0..5 {
            firsts.push(budget.acquire(Lane::First).await);
        }
        assert_eq!(
            budget.free(Lane::First),
            0,
            "first attempts may use all of it"
        );
        assert_eq!(budget.free(Lane::Retry), 0, "and then no retry goes");
    }

    #[test]
    fn backoff_doubles_up_to_its_cap_and_a_success_resets_it() {
        let mut b = Backoff::default();
        let waits: Vec<u64> = (0..8).map(|_| b.failed().as_millis() as u64).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        b.succeeded();
        assert_eq!(b.failed(), Duration::from_millis(100));
    }

    #[tokio::test]
    async fn a_reservation_takes_what_is_free_without_waiting_for_more() {
        let budget = Budget::new(10);
        let held = budget.reserve(Lane::First, 7).await;
        assert_eq!(held.len(), 7);
        let rest = budget.reserve(Lane::Retry, 100).await;
        assert_eq!(
            rest.len(),
            3,
            "the rest of the budget, not half of the whole"
        );
        drop(held);
        assert_eq!(
            budget.reserve(Lane::Retry, 100).await.len(),
            2,
            "retries stop at half"
        );
    }

    #[tokio::test]
    async fn reserved_slots_go_back_one_by_one_or_all_at_once() {
        let budget = Budget::new(10);
        let mut slots = budget.reserve(Lane::Retry, 4).await;
        assert_eq!(slots.len(), 4);
        let one = slots.take().expect("a slot");
        slots.truncate(1);
        assert_eq!(slots.len(), 1);
        assert_eq!(
            budget.free(Lane::First),
            8,
            "the one taken and the one kept"
        );
        assert_eq!(budget.free(Lane::Retry), 3);
        drop(one);
        assert!(slots.take().is_some());
        assert!(slots.take().is_none(), "none is left");
        drop(slots);
        assert_eq!(budget.free(Lane::First), 10);
        assert_eq!(budget.free(Lane::Retry), 5);
    }
}
