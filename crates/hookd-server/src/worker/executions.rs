//! Async inbound executions: claimed under a lease like deliveries, run, finished. A worker that
//! dies mid-run leaves the lease to expire; the execution is then claimed again (at least once,
//! as deliveries are), up to [`MAX_RUNS`] times.

use hookd_core::inbound::record::{Execution, ExecutionStatus};
use hookd_core::store::ExecutionClaim;
use hookd_core::{Store, StoreError};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::{pause, sleep_until, Backoff, Worker, IDLE_MAX};
use crate::inbound::run_async;

/// Executions claimed at once.
const BATCH: u32 = 32;
/// Runs started for one execution before it is failed: the worker running it died each time.
pub const MAX_RUNS: u32 = 3;

impl Worker {
    /// Claims due executions and runs them, until `shutdown`.
    pub(super) async fn run_executions(self, mut shutdown: watch::Receiver<bool>) {
        let (done_tx, done_rx) = mpsc::channel(1024);
        let finisher = tokio::spawn(finish(self.store.clone(), done_rx));
        let mut running = JoinSet::new();
        let mut backoff = Backoff::default();
        while !*shutdown.borrow() {
            while running.try_join_next().is_some() {}
            let notified = self.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.claim_and_start(&mut running, &done_tx).await {
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
    ) -> Result<usize, StoreError> {
        let token = crate::auth::generate_token();
        let claim = ExecutionClaim {
            now_ms: crate::now_ms(),
            limit: BATCH,
            lease: self.settings.delivery.lease,
            lease_token: token.clone(),
        };
        let claimed = self.store.claim_executions(&claim).await?;
        let n = claimed.len();
        for execution in claimed {
            let (me, token, done) = (self.clone(), token.clone(), done.clone());
            running.spawn(async move {
                let finished = me.execute(execution).await;
                let _ = done.send((finished, token)).await;
            });
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
            let why = format!("the worker running it stopped {MAX_RUNS} times");
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
