//! Async inbound executions: claimed under a lease like deliveries, run, finished. A run is
//! bounded by its hook's `timeout_ms` (at most [`MAX_TIMEOUT_MS`]) and its lease outlasts the
//! longest run by [`FINISH_MARGIN`], so a run that is still going is never claimed again: its
//! side effects happen once per claim. A worker that dies mid-run leaves the lease to expire;
//! the execution is then claimed again (at least once, as deliveries are), up to [`MAX_RUNS`]
//! times. At most [`CONCURRENCY`] executions run at once in a process.

use std::sync::Arc;
use std::time::Duration;

use hookd_core::inbound::record::{Execution, ExecutionStatus};
use hookd_core::inbound::spec::MAX_TIMEOUT_MS;
use hookd_core::store::ExecutionClaim;
use hookd_core::{Store, StoreError};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument as _;

use super::{pause, sleep_until, Backoff, Worker, IDLE_MAX};
use crate::inbound::run_async;

/// Executions claimed at once.
const BATCH: u32 = 32;
/// Executions running at once in one process.
pub const CONCURRENCY: usize = 256;
/// Runs started for one execution before it is failed: each time, its worker stopped (or could
/// not record the result) before the lease ran out.
pub const MAX_RUNS: u32 = 3;
/// How long past the longest run an execution's lease lasts, for its result to be recorded.
const FINISH_MARGIN: Duration = Duration::from_secs(30);

/// The lease of a claimed execution: the delivery lease, or longer when a hook's `timeout_ms`
/// could run past it.
fn execution_lease(delivery_lease: Duration) -> Duration {
    let longest_run = Duration::from_millis(u64::from(MAX_TIMEOUT_MS)) + FINISH_MARGIN;
    delivery_lease.max(longest_run)
}

impl Worker {
    /// Claims due executions and runs them, until `shutdown`.
    pub(super) async fn run_executions(self, mut shutdown: watch::Receiver<bool>) {
        let (done_tx, done_rx) = mpsc::channel(1024);
        let finisher = tokio::spawn(finish(self.store.clone(), done_rx));
        let mut running = JoinSet::new();
        let mut backoff = Backoff::default();
        let slots = Arc::new(Semaphore::new(CONCURRENCY));
        while !*shutdown.borrow() {
            while running.try_join_next().is_some() {}
            // A slot before the claim, so everything claimed starts at once.
            let first = tokio::select! {
                slot = slots.clone().acquire_owned() => slot.expect("never closed"),
                _ = shutdown.changed() => continue,
            };
            let notified = self.wake.executions.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self
                .claim_and_start(&mut running, &done_tx, &slots, first)
                .await
            {
                Ok(n) if n > 0 => {
                    backoff.succeeded();
                    continue;
                }
                Ok(_) => backoff.succeeded(),
                Err(e) => {
                    let wait = backoff.failed();
                    tracing::warn!(error = %e, retry_in = ?wait, "claiming executions failed");
                    pause(wait, &mut shutdown).await;
                    continue;
                }
            }
            let wait = sleep_until(self.store.next_execution_at().await, IDLE_MAX);
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {}
            }
        }
        while running.join_next().await.is_some() {}
        drop(done_tx);
        let _ = finisher.await;
    }

    async fn claim_and_start(
        &self,
        running: &mut JoinSet<()>,
        done: &mpsc::Sender<Finished>,
        slots: &Arc<Semaphore>,
        first: OwnedSemaphorePermit,
    ) -> Result<usize, StoreError> {
        let mut permits = vec![first];
        while permits.len() < BATCH as usize {
            match slots.clone().try_acquire_owned() {
                Ok(p) => permits.push(p),
                Err(_) => break,
            }
        }
        let token = crate::auth::generate_token();
        let claim = ExecutionClaim {
            now_ms: crate::now_ms(),
            limit: permits.len() as u32,
            lease: execution_lease(self.settings.delivery.lease),
            lease_token: token.clone(),
        };
        let claimed = self.store.claim_executions(&claim).await?;
        let n = claimed.len();
        for (execution, permit) in claimed.into_iter().zip(permits) {
            let (me, token, done) = (self.clone(), token.clone(), done.clone());
            let span = tracing::info_span!(
                "execution",
                execution_id = %execution.id,
                inbound_id = %execution.hook_id,
                mode = "async",
                run = execution.attempts
            );
            running.spawn(
                async move {
                    let finished = me.execute(execution).await;
                    let _ = done.send((finished, token)).await;
                    drop(permit);
                }
                .instrument(span),
            );
        }
        Ok(n)
    }

    async fn execute(&self, execution: Execution) -> Execution {
        let fail = |mut e: Execution, why: &str| {
            e.status = ExecutionStatus::Failed;
            e.record.error = Some(why.to_owned());
            e.updated_at = crate::now_ms();
            e
        };
        if execution.attempts > MAX_RUNS {
            let why = format!(
                "claimed {MAX_RUNS} times without a recorded result: each time its worker \
                 stopped or could not record it before the lease ran out"
            );
            return fail(execution, &why);
        }
        let hook = match self.store.get_inbound(&execution.hook_id).await {
            Ok(Some(hook)) => hook,
            Ok(None) => return fail(execution, "the hook no longer exists"),
            Err(e) => return fail(execution, &format!("the hook could not be read: {e}")),
        };
        run_async(
            &self.inbound,
            &self.committer,
            &self.sender,
            &hook,
            execution,
        )
        .await
    }
}

/// A run's result with the lease token it ran under.
type Finished = (Execution, String);

/// Most executions finished in one transaction.
const FINISH_BATCH: usize = 256;

/// Records finished runs, every run that finished while the previous batch was written in one
/// transaction (the single SQLite writer is shared with the API's intake).
async fn finish(store: std::sync::Arc<dyn Store>, mut rx: mpsc::Receiver<Finished>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < FINISH_BATCH {
            match rx.try_recv() {
                Ok(f) => batch.push(f),
                Err(_) => break,
            }
        }
        match store.finish_executions(&batch).await {
            Ok(written) => {
                for ((e, _), ok) in batch.iter().zip(written) {
                    if !ok {
                        tracing::warn!(execution = %e.id,
                            "an execution's lease ran out before it finished; it runs again");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, executions = batch.len(),
                "recording executions failed; they run again after their lease"),
        }
    }
}
