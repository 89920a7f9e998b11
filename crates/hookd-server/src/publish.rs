//! Publishing: match events against active webhooks, store each event with its deliveries in one
//! transaction, and wake the worker.

use std::sync::Arc;

use hookd_core::store::{Enqueued, EventToStore, NewDelivery};
use hookd_core::{
    DeliveryId, DeliveryStatus, Event, EventId, NewEvent, Store, StoreError, Webhook,
};
use tokio::sync::RwLock;

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
    let queued = batch.iter().any(|e| !e.deliveries.is_empty());
    let result = state.store.enqueue_events(&batch, now).await?;
    if queued {
        state.wake.notify_waiters();
    }
    Ok(result)
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
