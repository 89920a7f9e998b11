//! Publishing: match events against active webhooks, store each event with its deliveries in one
//! transaction, and wake the worker.
//!
//! Concurrent publish requests are committed together (group commit): one task takes every
//! request waiting at that moment and stores them in one transaction. Each request is still
//! answered only after its events are committed; a failed transaction fails every request in it
//! and stores none of them.

use std::sync::Arc;

use hookd_core::store::{Enqueued, EventToStore, NewDelivery};
use hookd_core::{
    DeliveryId, DeliveryStatus, Event, EventId, NewEvent, Store, StoreError, Webhook,
};
use tokio::sync::{mpsc, oneshot, Notify, RwLock};

use crate::AppState;

/// Active webhooks, reloaded when the store's webhook version moves (any process's write).
#[derive(Debug, Default)]
pub struct WebhookCache(RwLock<Option<(i64, Arc<Vec<Webhook>>)>>);

impl WebhookCache {
    pub async fn active(&self, store: &dyn Store) -> Result<Arc<Vec<Webhook>>, StoreError> {
        let version = store.webhooks_version().await?;
        if let Some((v, hooks)) = &*self.0.read().await {
            if *v == version {
                return Ok(hooks.clone());
            }
        }
        let hooks = Arc::new(store.active_webhooks().await?);
        *self.0.write().await = Some((version, hooks.clone()));
        Ok(hooks)
    }
}

/// Stores `events` with a delivery for every matching active webhook. Returns what happened to
/// each event, in order.
pub async fn publish(state: &AppState, events: Vec<NewEvent>) -> Result<Vec<Enqueued>, StoreError> {
    let hooks = state.webhooks.active(&*state.store).await?;
    let now = crate::now_ms();
    let batch: Vec<EventToStore> = events
        .into_iter()
        .map(|event| plan_event(event, &hooks, now))
        .collect();
    state.committer.commit(batch).await
}

/// Most events committed in one group transaction.
const GROUP_MAX_EVENTS: usize = 1000;

type Reply = oneshot::Sender<Result<Vec<Enqueued>, StoreError>>;

/// The handle API requests use to have events committed by the group-commit task.
#[derive(Debug, Clone)]
pub struct Committer {
    tx: mpsc::Sender<(Vec<EventToStore>, Reply)>,
}

impl Committer {
    /// Starts the group-commit task; it wakes `wake` whenever deliveries were queued.
    pub fn start(store: Arc<dyn Store>, wake: Arc<Notify>) -> Self {
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(group_commit(store, wake, rx));
        Self { tx }
    }

    /// Commits `batch` (in a transaction shared with other requests) and returns its results.
    pub async fn commit(&self, batch: Vec<EventToStore>) -> Result<Vec<Enqueued>, StoreError> {
        let (reply, answer) = oneshot::channel();
        let gone = || StoreError::Backend("the publisher stopped".into());
        self.tx.send((batch, reply)).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

async fn group_commit(
    store: Arc<dyn Store>,
    wake: Arc<Notify>,
    mut rx: mpsc::Receiver<(Vec<EventToStore>, Reply)>,
) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        let mut size = jobs[0].0.len();
        while size < GROUP_MAX_EVENTS {
            match rx.try_recv() {
                Ok(job) => {
                    size += job.0.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let mut all = Vec::with_capacity(size);
        let mut replies = Vec::with_capacity(jobs.len());
        for (batch, reply) in jobs {
            replies.push((batch.len(), reply));
            all.extend(batch);
        }
        let queued = all.iter().any(|e| !e.deliveries.is_empty());
        match store.enqueue_events(&all, crate::now_ms()).await {
            Ok(results) => {
                if queued {
                    wake.notify_waiters();
                }
                let mut results = results.into_iter();
                for (n, reply) in replies {
                    let _ = reply.send(Ok(results.by_ref().take(n).collect()));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "storing published events failed");
                for (_, reply) in replies {
                    let _ = reply.send(Err(StoreError::Backend(e.to_string().into())));
                }
            }
        }
    }
}

/// Decides which webhooks an event goes to.
fn plan_event(event: NewEvent, hooks: &[Webhook], now: i64) -> EventToStore {
    let id = EventId::generate(now);
    let view = Event {
        id: id.clone(),
        event_type: event.event_type.as_str().to_owned(),
        model: event.model.clone(),
        data: serde_json::Value::Null,
        occurred_at: event.occurred_at,
        idempotency_key: None,
        created_at: now,
    };
    let deliveries = hooks
        .iter()
        .filter_map(|hook| {
            let m = hook.spec.matches(&view)?;
            Some(NewDelivery {
                id: DeliveryId::generate(now),
                webhook_id: hook.id.clone(),
                entry_index: m.entry,
                status: DeliveryStatus::Pending,
                next_attempt_at: now,
                lease: None,
            })
        })
        .collect();
    EventToStore {
        id,
        event,
        deliveries,
    }
}
