//! The scheduler: every worker fires due schedules (SPEC §4 "Schedules").
//!
//! Workers do not coordinate: each reads the due schedules and fires them through
//! [`Store::fire_schedule`], which stores an occurrence only if the schedule still holds the
//! `next_run_at` that was read. Of several workers (or processes) racing for one occurrence,
//! exactly one stores it; the others find nothing to do. A firing is a `schedule.fired` event
//! with one pending delivery to the schedule's webhook, so it goes through the normal send,
//! retry and history machinery.

use std::sync::Arc;
use std::time::Duration;

use hookd_core::outbound::{build_request, SendContext};
use hookd_core::schedule::{fired_data, Schedule, SCHEDULE_FIRED};
use hookd_core::store::Firing;
use hookd_core::{DeliveryId, Event, EventId, EventType, NewEvent, Store, StoreError, Webhook};
use tokio::sync::{watch, Notify};

/// Longest the scheduler sleeps without looking again: schedules made by another process are
/// seen within this time.
const MAX_WAIT: Duration = Duration::from_secs(1);
/// Most schedules fired in one pass.
const BATCH: u32 = 100;

/// The firing of `schedule` at `occurrence`: scheduled (`expected` is the `next_run_at` read,
/// `next` the new one) or by hand (`expected` is `None`).
pub fn firing(
    schedule: &Schedule,
    occurrence: i64,
    skipped: u64,
    expected: Option<i64>,
    next: Option<i64>,
    now_ms: i64,
) -> Firing {
    let event_type = EventType::parse(SCHEDULE_FIRED).expect("a valid event type");
    Firing {
        schedule_id: schedule.id.clone(),
        expected_next_run_at: expected,
        next_run_at: next,
        occurrence,
        event_id: EventId::generate(now_ms),
        event: NewEvent {
            event_type,
            model: None,
            data: fired_data(schedule, occurrence, skipped, expected.is_none()),
            occurred_at: now_ms,
            idempotency_key: None,
        },
        delivery_id: DeliveryId::generate(now_ms),
        webhook_id: schedule.spec.webhook_id.clone(),
        message: schedule.spec.message.clone(),
        last_error: None,
        now_ms,
    }
}

/// The event `f` stores, as its delivery will read it.
pub fn fired_event(f: &Firing) -> Event {
    f.event.clone().into_event(f.event_id.clone(), f.now_ms)
}

/// Why the delivery of `f` to `webhook` cannot be built (its message, or the webhook's own
/// body, does not render): the schedule's `last_error`. Built as the send will build it, less
/// the server's default headers, which cannot fail.
pub fn firing_error(webhook: &Webhook, f: &Firing) -> Option<String> {
    let ctx = SendContext {
        delivery_id: f.delivery_id.as_str(),
        attempt: 1,
        now_secs: f.now_ms / 1000,
        now_ms: f.now_ms,
        default_headers: &[],
        entry_index: None,
        message: f.message.as_deref(),
    };
    build_request(webhook, &fired_event(f), &ctx)
        .err()
        .map(|e| e.to_string())
}

/// Fires every schedule due at `now_ms` once; returns how many occurrences this call stored.
pub async fn fire_due(store: &dyn Store, now_ms: i64) -> Result<u32, StoreError> {
    let mut fired = 0;
    for schedule in store.due_schedules(now_ms, BATCH).await? {
        let Some(due) = schedule.next_run_at else {
            continue;
        };
        let Some(catch_up) = schedule.spec.timing.catch_up(due, now_ms) else {
            continue;
        };
        let mut f = firing(
            &schedule,
            catch_up.occurrence,
            catch_up.skipped,
            Some(due),
            Some(catch_up.next),
            now_ms,
        );
        f.last_error = match store.get_webhook(&f.webhook_id).await? {
            Some(webhook) => firing_error(&webhook, &f),
            // The delivery is cancelled when it is claimed.
            None => Some(format!("the webhook {} no longer exists", f.webhook_id)),
        };
        if let Some(error) = &f.last_error {
            tracing::warn!(schedule = %schedule.id, error = %error,
                "a schedule's firing cannot be sent as it says");
        }
        match store.fire_schedule(&f).await {
            Ok(true) => {
                fired += 1;
                tracing::info!(schedule = %schedule.id, delivery = %f.delivery_id,
                    skipped = catch_up.skipped, "schedule fired");
            }
            Ok(false) => {}
            // Another worker stored this occurrence between our read and our write.
            Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(fired)
}

/// Fires due schedules until `shutdown`, waking for the next due one, for `changed` (a local
/// API write) or after [`MAX_WAIT`]. New deliveries wake the worker's lanes through `wake`.
pub async fn run(
    store: Arc<dyn Store>,
    changed: Arc<Notify>,
    wake: Arc<super::Wakes>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = super::Backoff::default();
    while !*shutdown.borrow() {
        let notified = changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        match fire_due(&*store, crate::now_ms()).await {
            Ok(0) => backoff.succeeded(),
            Ok(_) => {
                backoff.succeeded();
                wake.queued();
            }
            Err(e) => {
                let wait = backoff.failed();
                tracing::warn!(error = %e, retry_in = ?wait, "firing schedules failed");
                super::pause(wait, &mut shutdown).await;
                continue;
            }
        }
        let wait = super::sleep_until(store.next_schedule_at().await, MAX_WAIT);
        tokio::select! {
            _ = notified => {}
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => {}
        }
    }
}
