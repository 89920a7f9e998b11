//! `hookd bench --scenario inbound-async | inbound-sync`: callers of an inbound hook.
//!
//! - async: a hook whose workflow runs in the worker; requests are sent as fast as `concurrency`
//!   callers allow. Each answer means the request was committed to the database, so requests/s
//!   is the durable acceptance rate; the latency is the caller's.
//! - sync: a hook with a condition and a response node, called at a fixed rate; the latency is
//!   the whole run as the caller sees it.

use serde_json::{json, Value};

use super::proxy::{load, Load, LoadShape};

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
    let (client, url) = (client.clone(), opts.url.clone());
    let request = move |i: u64| {
        let body = json!({"order": {"id": i, "amount": 150 + i % 100}}).to_string();
        client
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
    };
    let shape = LoadShape {
        requests,
        concurrency: opts.concurrency,
        rate,
        status: opts.status,
    };
    load(shape, request).await
}
