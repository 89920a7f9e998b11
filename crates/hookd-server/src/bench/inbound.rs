//! `hookd bench --scenario inbound-async | inbound-sync`: callers of an inbound hook.
//!
//! - async: a hook whose workflow runs in the worker; requests are sent as fast as `concurrency`
//!   callers allow. Each answer means the request was committed to the database, so requests/s
//!   is the durable acceptance rate; the latency is the caller's.
//! - sync: a hook with a condition and a response node, called at a fixed rate; the latency is
//!   the whole run as the caller sees it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::task::JoinSet;

use super::percentiles;
use super::proxy::Load;

/// What to run.
#[derive(Debug, Clone)]
pub struct InboundBenchOptions {
    /// The hook's public URL.
    pub url: String,
    pub requests: u64,
    /// Callers at once.
    pub concurrency: u32,
    /// Requests per second; 0 sends as fast as the callers can.
    pub rate: u32,
    /// The status every answer must have.
    pub status: u16,
}

/// The hook definitions the scenarios create.
pub fn hook(sync: bool) -> Value {
    if sync {
        json!({"name": "bench sync", "mode": "sync",
               "parse": {"body": [{"path": "order.amount", "alias": "amount"}]},
               "workflow": [{"type": "condition", "expression": "amount > 100",
                             "then": [{"type": "response", "status": 200,
                                       "body": "{\"accepted\": true, \"amount\": {{ amount }}}"}],
                             "else": [{"type": "response", "status": 422, "body": "small"}]}]})
    } else {
        json!({"name": "bench async",
               "parse": {"body": [{"path": "order.amount", "alias": "amount"}]},
               "workflow": [{"type": "set", "name": "seen", "value": "{{ amount }}"}]})
    }
}

/// Sends the requests and measures each one.
pub async fn run(opts: InboundBenchOptions) -> Result<Load, String> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(opts.concurrency as usize * 2)
        .no_proxy()
        .build()
        .map_err(|e| e.to_string())?;
    // Warm the connections and the hook's compiled workflow.
    drive(&client, &opts, opts.concurrency.into(), 0).await?;
    drive(&client, &opts, opts.requests, opts.rate).await
}

async fn drive(
    client: &reqwest::Client,
    opts: &InboundBenchOptions,
    requests: u64,
    rate: u32,
) -> Result<Load, String> {
    let next = Arc::new(AtomicU64::new(0));
    let samples = Arc::new(Mutex::new(Vec::with_capacity(requests as usize)));
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..opts.concurrency.max(1) {
        let (client, url, status) = (client.clone(), opts.url.clone(), opts.status);
        let (next, samples, errors) = (next.clone(), samples.clone(), errors.clone());
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests {
                    break;
                }
                if rate > 0 {
                    let due = start + Duration::from_secs_f64(i as f64 / f64::from(rate));
                    tokio::time::sleep_until(due.into()).await;
                }
                let body = json!({"order": {"id": i, "amount": 150 + i % 100}}).to_string();
                let sent = Instant::now();
                let ok = match client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                {
                    Ok(resp) => resp.status().as_u16() == status && resp.bytes().await.is_ok(),
                    Err(_) => false,
                };
                let us = sent.elapsed().as_micros() as u64;
                if !ok {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                samples.lock().expect("samples lock").push(us);
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.map_err(|e| e.to_string())?;
    }
    let secs = start.elapsed().as_secs_f64();
    let us = std::mem::take(&mut *samples.lock().expect("samples lock"));
    Ok(Load {
        requests,
        errors: errors.load(Ordering::Relaxed),
        secs,
        latency_ms: percentiles(us),
    })
}
