//! Writes attempt outcomes in batches: one transaction for whatever has arrived, so a busy worker
//! pays one commit for hundreds of deliveries.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hookd_core::flow::{Circuit, Signal};
use hookd_core::store::{NextState, Outcome};
use hookd_core::Store;
use hookd_core::{Webhook, WebhookId};
use tokio::sync::mpsc;

/// Most outcomes written in one transaction.
const BATCH: usize = 512;

/// What the recorder works with.
#[derive(Debug)]
pub struct Recorder {
    pub store: Arc<dyn Store>,
    pub wake: Arc<super::Wakes>,
    pub slot_waiters: Arc<AtomicBool>,
    /// Counts the batches written, before `slot_waiters` is read (see the lanes).
    pub recorded: Arc<AtomicU64>,
    pub circuits: Circuits,
    /// Set while a batch cannot be written: the lanes then send nothing more.
    pub failing: Arc<AtomicBool>,
    /// How long a batch is retried (the lease: past it, other claims may send those deliveries
    /// again and the outcomes no longer move them).
    pub give_up_after: Duration,
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// Runs until every sender is dropped and the channel is drained. After a batch it wakes the
/// lanes when one waits for a webhook under its in-flight cap, or a retry was scheduled (the
/// lanes may sleep until a later due time).
pub async fn run(r: Recorder, mut rx: mpsc::Receiver<Outcome>) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let cleared = r.circuits.filter(&mut batch);
        if write(&r, &batch).await {
            r.metrics.observe(&batch);
            r.circuits.forget(&cleared);
        }
        // A recorded outcome ends a request in flight: a lane waiting for a webhook under its
        // cap may take the next of its deliveries. A retry may also have been scheduled sooner
        // than a lane sleeps. Otherwise the lanes are left alone: waking them for nothing
        // costs each a look at the queue per batch.
        let retries = batch
            .iter()
            .any(|o| matches!(o.next, NextState::Retry { .. }));
        r.recorded.fetch_add(1, Ordering::SeqCst);
        if r.slot_waiters.swap(false, Ordering::SeqCst) || retries {
            r.wake.deliveries();
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

/// Writes a batch, retrying with back-off for as long as its leases may still hold; false
/// when it was given up (its deliveries are then sent again once their leases run out). While
/// it fails, [`Recorder::failing`] keeps the lanes from sending more.
async fn write(r: &Recorder, batch: &[Outcome]) -> bool {
    let deadline = tokio::time::Instant::now() + r.give_up_after;
    let mut backoff = super::Backoff::default();
    loop {
        match r.store.record_outcomes(batch).await {
            Ok(()) => {
                r.failing.store(false, Ordering::Release);
                return true;
            }
            Err(e) => {
                r.failing.store(true, Ordering::Release);
                let wait = backoff.failed();
                if tokio::time::Instant::now() + wait > deadline {
                    tracing::error!(error = %e, outcomes = batch.len(),
                        "gave up recording outcomes; their deliveries will be sent again when their leases expire");
                    r.failing.store(false, Ordering::Release);
                    return false;
                }
                tracing::warn!(error = %e, outcomes = batch.len(), retry_in = ?wait, "recording outcomes failed");
                tokio::time::sleep(wait).await;
            }
        }
    }
}
