//! What one process keeps per hook: compiled templates, the sync runs in flight, the intake's
//! rate limits and a count of each hook's queue.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hookd_core::inbound::compile;
use hookd_core::inbound::record::InboundHook;
use hookd_core::inbound::spec::AsyncResponse;
use hookd_core::inbound::Workflow;
use hookd_core::{InboundId, Store, StoreError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::limit::KeyedLimiter;
use crate::settings::InboundSettings;

/// How long a counted queue length is trusted (raised by this process's own admissions in
/// between) before it is counted again.
const QUEUE_RECOUNT: Duration = Duration::from_secs(1);

/// A hook's workflow and async answer, compiled.
#[derive(Debug)]
pub struct Compiled {
    pub workflow: Workflow,
    pub answer: AsyncResponse,
}

/// A hook's unfinished executions as last counted, plus those admitted since.
#[derive(Debug, Clone, Copy)]
struct Queue {
    counted_at_ms: i64,
    length: u64,
}

#[derive(Debug)]
pub struct Runtime {
    compiled: Mutex<HashMap<InboundId, (i64, Arc<Compiled>)>>,
    running: Mutex<HashMap<InboundId, (u32, Arc<Semaphore>)>>,
    /// `inbound.rate_limit_per_second`, per hook.
    pub(super) per_hook: KeyedLimiter<InboundId>,
    /// `inbound.client_rate_limit_per_second`, per client address.
    pub(super) per_client: KeyedLimiter<IpAddr>,
    /// `inbound.rejected_records_per_minute`, per hook.
    pub(super) rejected_records: KeyedLimiter<InboundId>,
    queues: Mutex<HashMap<InboundId, Queue>>,
    pub(super) max_queued: u32,
}

impl Default for Runtime {
    fn default() -> Self {
        Self::new(&InboundSettings::default())
    }
}

impl Runtime {
    pub fn new(settings: &InboundSettings) -> Self {
        let second = Duration::from_secs(1);
        Self {
            compiled: Mutex::default(),
            running: Mutex::default(),
            per_hook: KeyedLimiter::new(settings.rate_limit_per_second, second),
            per_client: KeyedLimiter::new(settings.client_rate_limit_per_second, second),
            rejected_records: KeyedLimiter::new(
                settings.rejected_records_per_minute,
                Duration::from_secs(60),
            ),
            queues: Mutex::default(),
            max_queued: settings.max_queued_executions,
        }
    }

    /// The hook's workflow and async answer, compiled once per version of the hook. Both were
    /// checked at save, so an error here means the stored hook is broken.
    pub fn compiled(&self, hook: &InboundHook) -> Result<Arc<Compiled>, String> {
        let mut cache = self.compiled.lock().expect("not poisoned");
        if let Some((at, c)) = cache.get(&hook.id) {
            if *at == hook.updated_at {
                return Ok(c.clone());
            }
        }
        let broken =
            |e: &dyn std::fmt::Display| format!("inbound hook {} does not compile: {e}", hook.id);
        let compiled = Arc::new(Compiled {
            workflow: compile(&hook.spec.workflow).map_err(|e| broken(&e))?,
            answer: hook.spec.async_response().map_err(|e| broken(&e))?,
        });
        cache.insert(hook.id.clone(), (hook.updated_at, compiled.clone()));
        Ok(compiled)
    }

    /// A slot among the hook's `max_concurrency` running executions in this process, if free.
    pub(super) fn try_slot(&self, hook: &InboundHook) -> Option<OwnedSemaphorePermit> {
        let limit = hook.spec.max_concurrency;
        let sem = {
            let mut map = self.running.lock().expect("not poisoned");
            let entry = map
                .entry(hook.id.clone())
                .or_insert_with(|| (limit, Arc::new(Semaphore::new(limit as usize))));
            if entry.0 != limit {
                *entry = (limit, Arc::new(Semaphore::new(limit as usize)));
            }
            entry.1.clone()
        };
        sem.try_acquire_owned().ok()
    }

    /// Counts one more queued execution of `hook` if its queue holds fewer than
    /// `inbound.max_queued_executions`; `Ok(false)` when it is full. The length is counted in
    /// the database (over every process) at most once per [`QUEUE_RECOUNT`]; in between, this
    /// process adds its own admissions, so the cap can be passed by what other processes
    /// admitted within one recount, never by more.
    pub(super) async fn admit_queued(
        &self,
        store: &dyn Store,
        hook: &InboundId,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let cap = u64::from(self.max_queued);
        if cap == 0 {
            return Ok(true);
        }
        let fresh = |q: &Queue| now_ms - q.counted_at_ms < QUEUE_RECOUNT.as_millis() as i64;
        {
            let mut queues = self.queues.lock().expect("not poisoned");
            if let Some(q) = queues.get_mut(hook).filter(|q| fresh(q)) {
                if q.length >= cap {
                    return Ok(false);
                }
                q.length += 1;
                return Ok(true);
            }
        }
        let length = store.count_unfinished_executions(hook, cap).await?;
        let mut queues = self.queues.lock().expect("not poisoned");
        let q = queues.entry(hook.clone()).or_insert(Queue {
            counted_at_ms: now_ms,
            length,
        });
        if !fresh(q) {
            *q = Queue {
                counted_at_ms: now_ms,
                length,
            };
        }
        if q.length >= cap {
            return Ok(false);
        }
        q.length += 1;
        Ok(true)
    }
}
