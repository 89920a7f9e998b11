//! Writes attempt outcomes in batches: one transaction for whatever has arrived, so a busy worker
//! pays one commit for hundreds of deliveries.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hookd_core::store::{NextState, Outcome};
use hookd_core::Store;
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
    metrics: Arc<crate::metrics::Metrics>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        if write(&*store, &batch).await {
            metrics.observe(&batch);
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
