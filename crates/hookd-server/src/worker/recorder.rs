//! Writes attempt outcomes in batches: one transaction for whatever has arrived, so a busy worker
//! pays one commit for hundreds of deliveries.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hookd_core::flow::{Circuit, Signal};
use hookd_core::store::{NextState, Outcome};
use hookd_core::Store;
use hookd_core::{Webhook, WebhookId};
use tokio::sync::{mpsc, Notify};

/// Most outcomes written in one transaction.
const BATCH: usize = 512;
/// Tries for one batch before it is given up (its deliveries are sent again after their lease).
const TRIES: u32 = 5;

/// Runs until every sender is dropped and the channel is drained. After a batch it wakes the
/// lanes when one waits for a webhook under its in-flight cap, or a retry was scheduled (the
/// lanes may sleep until a later due time).
pub async fn run(
    store: Arc<dyn Store>,
    mut rx: mpsc::Receiver<Outcome>,
    wake: Arc<Notify>,
    slot_waiters: Arc<AtomicBool>,
    circuits: Circuits,
    metrics: Arc<crate::metrics::Metrics>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let cleared = circuits.filter(&mut batch);
        if write(&*store, &batch).await {
            metrics.observe(&batch);
            circuits.forget(&cleared);
        }
        // A recorded outcome ends a request in flight: a lane waiting for a webhook under its
        // cap may take the next of its deliveries. A retry may also have been scheduled sooner
        // than a lane sleeps. Otherwise the lanes are left alone: waking them for nothing
        // costs each a look at the queue per batch.
        let retries = batch
            .iter()
            .any(|o| matches!(o.next, NextState::Retry { .. }));
        if slot_waiters.swap(false, Ordering::AcqRel) || retries {
            wake.notify_waiters();
        }
        batch.clear();
    }
}

/// The webhooks whose circuit breaker may not be clean: those the lanes loaded with one that was
/// not, and those this recorder wrote a failure for. A success (or any answer) resets a
/// breaker, but for a webhook whose breaker is clean it would change nothing, so it is left
/// out of the batch ([`Signal::Neutral`]) and healthy traffic costs no circuit statement.
#[derive(Debug, Clone, Default)]
pub struct Circuits(Arc<Mutex<HashSet<WebhookId>>>);

impl Circuits {
    /// Notes the webhooks just loaded for sending whose breaker is not clean.
    pub fn note_loaded<'a>(&self, webhooks: impl Iterator<Item = &'a Webhook>) {
        let mut dirty = self.0.lock().expect("circuits lock");
        for w in webhooks.filter(|w| w.circuit != Circuit::default()) {
            dirty.insert(w.id.clone());
        }
    }

    /// Turns the successes of clean webhooks into neutral signals and notes the webhooks that
    /// failed. Returns the webhooks whose breaker this batch resets (their last signal is a
    /// success), to forget once it is written.
    fn filter(&self, batch: &mut [Outcome]) -> Vec<WebhookId> {
        let mut dirty = self.0.lock().expect("circuits lock");
        let mut last: HashMap<&WebhookId, Signal> = HashMap::new();
        for o in batch.iter_mut() {
            let id = &o.attempt.webhook_id;
            match o.circuit {
                Signal::Failure => {
                    dirty.insert(id.clone());
                }
                Signal::Reachable if !dirty.contains(id) => o.circuit = Signal::Neutral,
                _ => {}
            }
            if o.circuit != Signal::Neutral {
                last.insert(id, o.circuit);
            }
        }
        last.into_iter()
            .filter(|(_, s)| *s == Signal::Reachable)
            .map(|(id, _)| id.clone())
            .collect()
    }

    fn forget(&self, cleared: &[WebhookId]) {
        let mut dirty = self.0.lock().expect("circuits lock");
        for id in cleared {
            dirty.remove(id);
        }
    }
}

/// Writes a batch, retrying a few times; false when it was given up.
async fn write(store: &dyn Store, batch: &[Outcome]) -> bool {
    for attempt in 1..=TRIES {
        match store.record_outcomes(batch).await {
            Ok(()) => return true,
            Err(e) => {
                tracing::warn!(error = %e, attempt, outcomes = batch.len(), "recording outcomes failed");
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            }
        }
    }
    tracing::error!(
        outcomes = batch.len(),
        "gave up recording outcomes; their deliveries will be sent again when their leases expire"
    );
    false
}
