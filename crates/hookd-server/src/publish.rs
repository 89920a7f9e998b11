//! Publishing: match events against active webhooks (their `events` entries and `condition`),
//! store each event with its deliveries in one transaction, and wake the worker.
//!
//! Each request matches its own events against the active webhooks (as of its arrival: a
//! version read that concurrent requests share, [`WebhookCache`]) in its own task, conditions on the blocking pool within a time budget. The
//! planned events are then committed together with other requests' (group commit): one task
//! takes every request waiting at that moment and stores them in one transaction. Each request
//! is answered only after its events are committed; when a group's transaction fails, its
//! requests are committed one by one, so only a request the database refuses fails (a database
//! that is unavailable fails them all at once).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hookd_core::store::{Claimed, Enqueued, EventToStore, NewDelivery};
use hookd_core::template::{Condition, Context};
use hookd_core::webhook::EventMatcher;
use hookd_core::{
    DeliveryId, DeliveryStatus, Event, EventId, NewEvent, Store, StoreError, Webhook, WebhookId,
};
use tokio::sync::{mpsc, oneshot, Mutex};
use tracing::Instrument as _;

use crate::worker::{Handoff, Wakes};

use crate::AppState;

/// Active webhooks, reloaded when the store's webhook version moves (any process's write). Each
/// webhook's `events` entries (with their URL regexes) and condition are compiled once per load,
/// not per event.
///
/// Every request must see the webhooks as of its arrival, which takes a version read that
/// started after it arrived; concurrent requests share one: the reads take turns, and each
/// serves every request that arrived before it started (as the group commit shares one
/// transaction), so a busy API reads the version about once per burst, not once per request.
#[derive(Debug, Default)]
pub struct WebhookCache(Mutex<Option<Checked>>);

/// The webhooks as of a version read, and when that read started.
#[derive(Debug)]
struct Checked {
    started: Instant,
    version: i64,
    hooks: Arc<Vec<ActiveWebhook>>,
}

/// An active webhook with its `events` entries and condition compiled.
#[derive(Debug)]
pub struct ActiveWebhook {
    pub webhook: Arc<Webhook>,
    /// Which events (and which entry of `events`) the webhook fires for.
    pub filters: EventMatcher,
    pub condition: Gate,
}

/// Whether a webhook's condition lets an event through.
#[derive(Debug)]
pub enum Gate {
    /// No condition: every matching event.
    Open,
    Condition(Condition),
    /// The stored condition or an `events` entry no longer compiles (both were checked at save,
    /// so only a change of engine could do this): nothing is delivered until the webhook is fixed.
    Broken,
}

impl ActiveWebhook {
    fn load(webhook: Webhook) -> Self {
        let filters = match EventMatcher::compile(&webhook.spec.events) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(webhook_id = %webhook.id, error = %e,
                    "a stored events entry does not compile; the webhook gets no deliveries");
                return Self {
                    webhook: Arc::new(webhook),
                    filters: EventMatcher::default(),
                    condition: Gate::Broken,
                };
            }
        };
        let condition = match webhook.spec.condition.as_deref() {
            None => Gate::Open,
            Some(expr) => match Condition::compile(expr) {
                Ok(c) => Gate::Condition(c),
                Err(e) => {
                    tracing::warn!(webhook_id = %webhook.id, error = %e,
                        "the stored condition does not compile; the webhook gets no deliveries");
                    Gate::Broken
                }
            },
        };
        Self {
            webhook: Arc::new(webhook),
            filters,
            condition,
        }
    }

    /// Whether the condition holds for the event in `scope`. An evaluation error (a comparison
    /// of incompatible values, fuel exhausted) counts as false and is logged: delivering on a
    /// condition that could not be decided would send what the owner filtered out.
    fn admits(&self, scope: &Context, event_id: &EventId) -> bool {
        let condition = match &self.condition {
            Gate::Open => return true,
            Gate::Broken => return false,
            Gate::Condition(c) => c,
        };
        let scope = scope.with_webhook(self.webhook.id.as_str(), &self.webhook.spec.name);
        condition.evaluate(&scope).unwrap_or_else(|e| {
            tracing::warn!(webhook_id = %self.webhook.id, event_id = %event_id, error = %e,
                "the webhook's condition failed to evaluate; no delivery");
            false
        })
    }
}

impl WebhookCache {
    pub async fn active(&self, store: &dyn Store) -> Result<Arc<Vec<ActiveWebhook>>, StoreError> {
        let arrived = Instant::now();
        let mut checked = self.0.lock().await;
        if let Some(c) = checked.as_ref().filter(|c| c.started >= arrived) {
            return Ok(c.hooks.clone());
        }
        let started = Instant::now();
        let version = store.webhooks_version().await?;
        let hooks = match checked.as_ref().filter(|c| c.version == version) {
            Some(c) => c.hooks.clone(),
            None => {
                let loaded = store.active_webhooks().await?;
                Arc::new(loaded.into_iter().map(ActiveWebhook::load).collect())
            }
        };
        *checked = Some(Checked {
            started,
            version,
            hooks: hooks.clone(),
        });
        Ok(hooks)
    }
}

/// Stores `events` with a delivery for every matching active webhook. Returns what happened to
/// each event, in order.
pub async fn publish(state: &AppState, events: Vec<NewEvent>) -> Result<Vec<Enqueued>, StoreError> {
    let span = tracing::info_span!(
        "publish",
        events = events.len(),
        event_id = tracing::field::Empty,
        deliveries = tracing::field::Empty
    );
    let result = state
        .committer
        .commit(events)
        .instrument(span.clone())
        .await;
    if let Ok([Enqueued::Created { id, deliveries }]) = result.as_deref() {
        span.record("event_id", tracing::field::display(id));
        span.record("deliveries", deliveries);
    }
    result
}

/// Most events committed in one group transaction.
const GROUP_MAX_EVENTS: usize = 1000;
/// Wall-clock budget for the conditions of one request's events, beside each evaluation's fuel:
/// past it, the conditions not yet evaluated count as false (logged), as an evaluation error does.
const CONDITIONS_BUDGET: Duration = Duration::from_millis(500);

type Reply = oneshot::Sender<Result<Vec<Enqueued>, StoreError>>;

/// One request's planned events, the webhooks they were matched against, and its answer.
struct Job {
    events: Vec<EventToStore>,
    hooks: Arc<Vec<ActiveWebhook>>,
    reply: Reply,
}

/// The handle API requests use to have events committed by the group-commit task.
#[derive(Debug, Clone)]
pub struct Committer {
    tx: mpsc::Sender<Job>,
    store: Arc<dyn Store>,
    webhooks: Arc<WebhookCache>,
}

impl Committer {
    /// Starts the group-commit task, which stores what callers planned, hands what it could
    /// claim to this process's worker (`handoff`) and wakes `wake` for the rest.
    pub fn start(
        store: Arc<dyn Store>,
        webhooks: Arc<WebhookCache>,
        wake: Arc<Wakes>,
        handoff: Arc<Handoff>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(1024);
        let group = Group {
            store: store.clone(),
            wake,
            handoff,
        };
        tokio::spawn(group_commit(group, rx));
        Self {
            tx,
            store,
            webhooks,
        }
    }

    /// Matches `batch` against the active webhooks in the caller's task (conditions off the
    /// async threads when there are any, within [`CONDITIONS_BUDGET`]), then commits it in a
    /// transaction shared with other requests and returns its results. An expensive condition
    /// so costs the requests it applies to, never the shared commit.
    pub async fn commit(&self, batch: Vec<NewEvent>) -> Result<Vec<Enqueued>, StoreError> {
        let hooks = self.webhooks.active(&*self.store).await?;
        let now = crate::now_ms();
        let conditional = hooks.iter().any(|h| !matches!(h.condition, Gate::Open));
        let matched = hooks.clone();
        let planned = if conditional {
            tokio::task::spawn_blocking(move || plan_events(batch, &matched, now))
                .await
                .map_err(|e| StoreError::Backend(format!("matching events failed: {e}").into()))?
        } else {
            plan_events(batch, &hooks, now)
        };
        let (reply, answer) = oneshot::channel();
        let gone = || StoreError::Backend("the publisher stopped".into());
        let job = Job {
            events: planned,
            hooks,
            reply,
        };
        self.tx.send(job).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

fn plan_events(batch: Vec<NewEvent>, hooks: &[ActiveWebhook], now: i64) -> Vec<EventToStore> {
    let started = Instant::now();
    batch
        .into_iter()
        .map(|e| plan_event(e, hooks, now, started))
        .collect()
}

/// What the group-commit task works with.
struct Group {
    store: Arc<dyn Store>,
    wake: Arc<Wakes>,
    handoff: Arc<Handoff>,
}

async fn group_commit(group: Group, mut rx: mpsc::Receiver<Job>) {
    while let Some(first) = rx.recv().await {
        let mut size = first.events.len();
        let mut jobs = vec![first];
        while size < GROUP_MAX_EVENTS {
            match rx.try_recv() {
                Ok(job) => {
                    size += job.events.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        group.commit(jobs, size).await;
    }
}

impl Group {
    /// Stores the events of `jobs` in one transaction, answers each job, and hands what the
    /// transaction claimed to the worker.
    async fn commit(&self, jobs: Vec<Job>, size: usize) {
        let mut all = Vec::with_capacity(size);
        let mut replies = Vec::with_capacity(jobs.len());
        let mut matched: Vec<Arc<Vec<ActiveWebhook>>> = Vec::new();
        for job in jobs {
            replies.push((job.events.len(), job.reply));
            all.extend(job.events);
            if !matched.iter().any(|m| Arc::ptr_eq(m, &job.hooks)) {
                matched.push(job.hooks);
            }
        }
        let queued: usize = all.iter().map(|e| e.deliveries.len()).sum();
        let now = crate::now_ms();
        let grant = self
            .handoff
            .grant(queued.min(crate::worker::CLAIM_BATCH as usize), now);
        let stored = match &grant {
            Some(grant) => {
                self.store
                    .enqueue_events_and_claim(&all, now, &grant.claim)
                    .await
            }
            None => self
                .store
                .enqueue_events(&all, now)
                .await
                .map(|results| (results, None)),
        };
        match stored {
            Ok((results, claimed)) => {
                let created: Vec<bool> = results
                    .iter()
                    .map(|r| matches!(r, Enqueued::Created { .. }))
                    .collect();
                let mut results = results.into_iter();
                for (n, reply) in replies {
                    let _ = reply.send(Ok(results.by_ref().take(n).collect()));
                }
                let claimed = grant.zip(claimed);
                let all_taken = match &claimed {
                    Some((_, claimed)) => all_taken(&all, &created, claimed),
                    None => false,
                };
                if queued > 0 && !all_taken {
                    self.wake.queued();
                }
                if let Some((grant, claimed)) = claimed {
                    let (events, hooks) = known(all, &created, &matched, &claimed, now);
                    self.handoff.hand(grant, claimed, events, hooks);
                }
            }
            // One request alone, or a database out of reach (every request would fail alike).
            Err(e) if replies.len() == 1 || matches!(e, StoreError::Unavailable(_)) => {
                fail_all(replies.into_iter().map(|(_, r)| r), &e)
            }
            // One request's events may be what the database refused: nothing of the group was
            // stored, so each request is committed on its own and only the bad one fails.
            Err(e) => {
                drop(grant);
                tracing::warn!(error = %e, requests = replies.len(), "a group commit failed; committing its requests one by one");
                let mut events = all.into_iter();
                for (n, reply) in replies {
                    let own: Vec<EventToStore> = events.by_ref().take(n).collect();
                    let queued = own.iter().any(|e| !e.deliveries.is_empty());
                    let result = self.store.enqueue_events(&own, crate::now_ms()).await;
                    match &result {
                        Ok(_) if queued => self.wake.queued(),
                        Ok(_) => {}
                        Err(e) => tracing::error!(error = %e, "storing published events failed"),
                    }
                    let _ = reply.send(result);
                }
            }
        }
    }
}

/// Whether the claim took every delivery the stored events queued (the lane then need not
/// look).
fn all_taken(all: &[EventToStore], created: &[bool], claimed: &Claimed) -> bool {
    let taken: HashSet<&DeliveryId> = claimed.deliveries.iter().map(|d| &d.id).collect();
    all.iter()
        .zip(created)
        .filter(|(_, &created)| created)
        .flat_map(|(e, _)| &e.deliveries)
        .all(|d| taken.contains(&d.id))
}

/// The events and webhooks of what the claim took, as far as the publish holds them: the
/// events it stored (moved, not copied) and the webhooks it matched them against.
fn known(
    all: Vec<EventToStore>,
    created: &[bool],
    matched: &[Arc<Vec<ActiveWebhook>>],
    claimed: &Claimed,
    now: i64,
) -> (
    HashMap<EventId, Arc<Event>>,
    HashMap<WebhookId, Arc<Webhook>>,
) {
    let event_ids: HashSet<&EventId> = claimed.deliveries.iter().map(|d| &d.event_id).collect();
    let hook_ids: HashSet<&WebhookId> = claimed.deliveries.iter().map(|d| &d.webhook_id).collect();
    let events = all
        .into_iter()
        .zip(created)
        .filter(|(e, &created)| created && event_ids.contains(&e.id))
        .map(|(e, _)| (e.id.clone(), Arc::new(e.event.into_event(e.id, now))))
        .collect();
    let mut hooks = HashMap::with_capacity(hook_ids.len());
    for hook in matched.iter().flat_map(|m| m.iter()) {
        if hook_ids.contains(&hook.webhook.id) {
            hooks
                .entry(hook.webhook.id.clone())
                .or_insert_with(|| hook.webhook.clone());
        }
    }
    (events, hooks)
}

/// Answers every job of a group with the error that stopped it.
fn fail_all(replies: impl Iterator<Item = Reply>, e: &StoreError) {
    tracing::error!(error = %e, "storing published events failed");
    for reply in replies {
        let _ = reply.send(Err(e.to_owned_error()));
    }
}

/// Decides which webhooks an event goes to: those with a matching `events` entry whose condition
/// holds. The event data is moved into the matching view and back, never copied per webhook.
/// Conditions reached after [`CONDITIONS_BUDGET`] (from `started`) are not evaluated and count
/// as false.
fn plan_event(
    mut event: NewEvent,
    hooks: &[ActiveWebhook],
    now: i64,
    started: Instant,
) -> EventToStore {
    let id = EventId::generate(now);
    let view = Event {
        id: id.clone(),
        event_type: event.event_type.as_str().to_owned(),
        model: event.model.clone(),
        data: std::mem::take(&mut event.data),
        occurred_at: event.occurred_at,
        idempotency_key: None,
        created_at: now,
    };
    // Built lazily: only events that reach a webhook with a condition need it.
    let mut scope: Option<Context> = None;
    let deliveries = hooks
        .iter()
        .filter_map(|hook| {
            let m = hook.filters.matches(&view)?;
            if !matches!(hook.condition, Gate::Open) {
                if started.elapsed() > CONDITIONS_BUDGET {
                    tracing::warn!(webhook_id = %hook.webhook.id, event_id = %id,
                        "the request's conditions ran past their time budget; no delivery");
                    return None;
                }
                let scope = scope.get_or_insert_with(|| Context::for_event(&view));
                if !hook.admits(scope, &id) {
                    return None;
                }
            }
            Some(NewDelivery {
                id: DeliveryId::generate(now),
                webhook_id: hook.webhook.id.clone(),
                entry_index: m.entry,
                status: DeliveryStatus::Pending,
                next_attempt_at: now,
                lease: None,
            })
        })
        .collect();
    event.data = view.data;
    EventToStore {
        id,
        event,
        deliveries,
    }
}
