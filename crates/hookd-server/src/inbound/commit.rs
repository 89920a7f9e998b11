//! The group commit of executions: one transaction for every request that arrived while the
//! previous one was being written.

use std::sync::Arc;

use hookd_core::inbound::record::Execution;
use hookd_core::{Store, StoreError};
use tokio::sync::{mpsc, oneshot};

/// Most executions stored in one transaction.
const GROUP_MAX: usize = 512;

type Job = (Execution, oneshot::Sender<Result<(), StoreError>>);

/// Stores the executions of concurrent requests together: one transaction (one commit, one
/// fsync) for every request that arrived while the previous one was being written. Each request
/// is answered only after the transaction holding its execution committed.
#[derive(Debug, Clone)]
pub struct ExecutionCommitter {
    tx: mpsc::Sender<Job>,
}

impl ExecutionCommitter {
    /// Starts the group-commit task (so it needs a Tokio runtime).
    pub fn start(store: Arc<dyn Store>) -> Self {
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(group_commit(store, rx));
        Self { tx }
    }

    /// Stores `execution`; returns once it is committed.
    pub async fn commit(&self, execution: &Execution) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        let gone = || StoreError::Backend("the execution writer stopped".into());
        self.tx
            .send((execution.clone(), reply))
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

async fn group_commit(store: Arc<dyn Store>, mut rx: mpsc::Receiver<Job>) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < GROUP_MAX {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let (batch, replies): (Vec<_>, Vec<_>) = jobs.into_iter().unzip();
        match store.insert_executions(&batch).await {
            Ok(()) => replies.into_iter().for_each(|r| {
                let _ = r.send(Ok(()));
            }),
            Err(e) => {
                tracing::warn!(error = %e, executions = batch.len(), "storing executions failed");
                for r in replies {
                    let _ = r.send(Err(e.to_owned_error()));
                }
            }
        }
    }
}
