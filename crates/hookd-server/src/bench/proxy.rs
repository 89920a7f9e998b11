//! `hookd bench --scenario proxy`: the reverse proxy's cost. The same number of requests goes to
//! a local upstream directly, through hookd's proxy to a path the upstream answers 404 (forwarded
//! but not recorded), and through the proxy to a path answered 200 (forwarded and recorded), in
//! the same run; the latencies and throughputs are compared, which separates the cost of
//! forwarding from the cost of recording.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::Json;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use super::{percentiles, Percentiles};

/// Requests sent to each target before measuring, to fill connection pools and caches.
const WARM_UP: u64 = 500;

/// What to run.
#[derive(Debug, Clone)]
pub struct ProxyBenchOptions {
    /// The upstream, called directly (`http://127.0.0.1:1234/item`).
    pub direct_url: String,
    /// The same resource through hookd's proxy (answered 200: recorded).
    pub proxied_url: String,
    /// A resource the upstream answers 404, through the proxy (not recorded).
    pub unrecorded_url: String,
    /// Requests per target.
    pub requests: u64,
    /// Requests in flight at once.
    pub concurrency: u32,
}

/// One target's measurements.
#[derive(Debug, Clone)]
pub struct Load {
    pub requests: u64,
    /// Requests that failed or were not answered 200.
    pub errors: u64,
    pub secs: f64,
    pub latency_ms: Percentiles,
}

impl Load {
    pub fn per_sec(&self) -> f64 {
        self.requests as f64 / self.secs
    }
}

/// Direct and proxied measurements of one run.
#[derive(Debug, Clone)]
pub struct ProxyReport {
    pub direct: Load,
    /// Proxied, answered 404: forwarding alone.
    pub unrecorded: Load,
    /// Proxied, answered 200: forwarding and recording.
    pub proxied: Load,
}

impl std::fmt::Display for Load {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = &self.latency_ms;
        write!(
            f,
            "{} requests: {:.0} req/s  p50 {:.3} ms  p95 {:.3} ms  p99 {:.3} ms  max {:.3} ms  errors {}",
            self.requests,
            self.per_sec(),
            p.p50,
            p.p95,
            p.p99,
            p.max,
            self.errors
        )
    }
}

impl std::fmt::Display for ProxyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rows = [
            ("direct (200)              ", &self.direct),
            ("proxied, not recorded (404)", &self.unrecorded),
            ("proxied and recorded (200)", &self.proxied),
        ];
        for (name, l) in rows {
            let p = &l.latency_ms;
            writeln!(
                f,
                "{name:<28} {:>7.0} req/s  p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms  errors {}",
                l.per_sec(),
                p.p50,
                p.p99,
                p.max,
                l.errors
            )?;
        }
        writeln!(
            f,
            "{}",
            added("added by the proxy", &self.direct, &self.proxied)
        )?;
        write!(
            f,
            "{}",
            added("of which recording", &self.unrecorded, &self.proxied)
        )
    }
}

/// How much slower `to` is than `from`.
fn added(what: &str, from: &Load, to: &Load) -> String {
    format!(
        "{what:<28} p50 {:+.3} ms  p99 {:+.3} ms  throughput {:+.1} %",
        to.latency_ms.p50 - from.latency_ms.p50,
        to.latency_ms.p99 - from.latency_ms.p99,
        (to.per_sec() / from.per_sec() - 1.0) * 100.0
    )
}

/// Starts an upstream on 127.0.0.1 answering `/item` 200 and any other path 404, both with the
/// same small JSON body.
pub async fn upstream() -> std::io::Result<SocketAddr> {
    let body = || Json(json!({"ok": true, "id": 42}));
    let app = axum::Router::new()
        .route("/item", axum::routing::get(move || async move { body() }))
        .fallback(move || async move { (StatusCode::NOT_FOUND, body()) });
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

/// Measures the direct target, then the proxied one.
pub async fn run(opts: ProxyBenchOptions) -> Result<ProxyReport, String> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(opts.concurrency as usize * 2)
        .no_proxy()
        .build()
        .map_err(|e| e.to_string())?;
    let targets = [
        (&opts.direct_url, 200),
        (&opts.unrecorded_url, 404),
        (&opts.proxied_url, 200),
    ];
    for (url, status) in targets {
        let warm = drive(&client, url, status, WARM_UP, opts.concurrency).await?;
        if warm.errors > 0 {
            let n = warm.errors;
            return Err(format!("{url}: {n} of {WARM_UP} warm-up requests failed"));
        }
    }
    let mut loads = Vec::with_capacity(targets.len());
    for (url, status) in targets {
        loads.push(drive(&client, url, status, opts.requests, opts.concurrency).await?);
    }
    let [direct, unrecorded, proxied] = <[Load; 3]>::try_from(loads).map_err(|_| "no load")?;
    Ok(ProxyReport {
        direct,
        unrecorded,
        proxied,
    })
}

/// Sends `requests` GETs to `url` from `concurrency` tasks and times each one; an answer other
/// than `status` counts as an error.
async fn drive(
    client: &reqwest::Client,
    url: &str,
    status: u16,
    requests: u64,
    concurrency: u32,
) -> Result<Load, String> {
    let (client, url) = (client.clone(), url.to_owned());
    let shape = LoadShape {
        requests,
        concurrency,
        rate: 0,
        status,
    };
    load(shape, move |_| client.get(&url)).await
}

/// How a load is sent.
#[derive(Debug, Clone, Copy)]
pub struct LoadShape {
    pub requests: u64,
    /// Requests in flight at once.
    pub concurrency: u32,
    /// Requests per second (request `i` leaves at `i / rate` s); 0 sends as fast as possible.
    pub rate: u32,
    /// The status every answer must have; others count as errors.
    pub status: u16,
}

/// Sends the requests `request(i)` builds, from `shape.concurrency` tasks, and times each one.
pub async fn load<F>(shape: LoadShape, request: F) -> Result<Load, String>
where
    F: Fn(u64) -> reqwest::RequestBuilder + Send + Sync + 'static,
{
    let request = Arc::new(request);
    let next = Arc::new(AtomicU64::new(0));
    let samples = Arc::new(Mutex::new(Vec::with_capacity(shape.requests as usize)));
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..shape.concurrency.max(1) {
        let request = request.clone();
        let (next, samples, errors) = (next.clone(), samples.clone(), errors.clone());
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= shape.requests {
                    break;
                }
                if shape.rate > 0 {
                    let due = start + Duration::from_secs_f64(i as f64 / f64::from(shape.rate));
                    tokio::time::sleep_until(due.into()).await;
                }
                let sent = Instant::now();
                let ok = match request(i).send().await {
                    Ok(resp) => {
                        resp.status().as_u16() == shape.status && resp.bytes().await.is_ok()
                    }
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
        requests: shape.requests,
        errors: errors.load(Ordering::Relaxed),
        secs,
        latency_ms: percentiles(us),
    })
}
