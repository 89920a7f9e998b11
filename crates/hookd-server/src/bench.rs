//! `hookd bench`: a load test over the public API with a real local receiver.
//!
//! It publishes events (as fast as the API takes them, or at a fixed rate), receives the
//! deliveries on 127.0.0.1, and reports events accepted/s, deliveries/s end to end (delivered and
//! recorded: the run ends when no delivery is pending any more), publish→arrival latency, lost and
//! duplicated deliveries, and peak RSS of this process. [`proxy`] measures the reverse proxy,
//! [`noisy`] how well a healthy webhook is isolated from hanging and failing ones.

pub mod inbound;
pub mod noisy;
pub mod proxy;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Base URL of the hookd to drive (`http://127.0.0.1:8080`).
    pub server: String,
    pub token: String,
    /// Events to publish.
    pub events: u64,
    /// Webhooks every event fans out to.
    pub webhooks: u32,
    /// Share of those webhooks whose receiver answers 500.
    pub failing_share: f64,
    /// Events per second; 0 publishes as fast as the API accepts them.
    pub rate: u32,
    /// Concurrent publishing connections.
    pub concurrency: u32,
    /// Give up waiting for deliveries after this long.
    pub deadline: Duration,
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct BenchReport {
    pub events: u64,
    pub publish_secs: f64,
    pub expected: u64,
    pub delivered: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub total_secs: f64,
    pub latency_ms: Percentiles,
    pub failing_hits: u64,
    pub peak_rss_mib: Option<f64>,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Default)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let l = &self.latency_ms;
        writeln!(f, "events published      {}", self.events)?;
        writeln!(
            f,
            "events accepted/s     {:.0}",
            self.events as f64 / self.publish_secs
        )?;
        writeln!(
            f,
            "deliveries expected   {} (healthy receivers)",
            self.expected
        )?;
        writeln!(f, "deliveries completed  {}", self.delivered)?;
        writeln!(
            f,
            "deliveries/s          {:.0} (end to end, recorded)",
            self.delivered as f64 / self.total_secs
        )?;
        writeln!(
            f,
            "latency p50/p95/p99/max  {:.2} / {:.2} / {:.2} / {:.2} ms",
            l.p50, l.p95, l.p99, l.max
        )?;
        writeln!(f, "lost                  {}", self.lost)?;
        writeln!(f, "duplicated            {}", self.duplicated)?;
        writeln!(f, "failing receiver hits {}", self.failing_hits)?;
        match self.peak_rss_mib {
            Some(m) => write!(f, "peak RSS              {m:.1} MiB (this process)"),
            None => write!(f, "peak RSS              unknown"),
        }
    }
}

/// Arrivals at the healthy receivers: delivery id → count, and latency samples.
#[derive(Default)]
struct Arrivals {
    seen: HashMap<String, u32>,
    latencies_us: Vec<u64>,
    failing_hits: u64,
    /// Publish-accepted instant of each event, by sequence number.
    accepted: HashMap<u64, Instant>,
}

impl Arrivals {
    /// Arrivals beyond the first of each delivery.
    fn duplicated(&self) -> u64 {
        self.seen
            .values()
            .map(|&n| u64::from(n.saturating_sub(1)))
            .sum()
    }
}

type Shared = Arc<Mutex<Arrivals>>;

async fn receiver() -> (SocketAddr, Shared) {
    let shared: Shared = Arc::default();
    let app = axum::Router::new()
        .route("/ok/{n}", axum::routing::post(healthy))
        .route("/fail/{n}", axum::routing::post(failing))
        .with_state(shared.clone());
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind receiver");
    let addr = listener.local_addr().expect("receiver address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, shared)
}

async fn healthy(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let now = Instant::now();
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let seq = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["data"]["seq"].as_u64());
    let mut a = s.lock().expect("arrivals lock");
    *a.seen.entry(id).or_default() += 1;
    if let Some(at) = seq.and_then(|n| a.accepted.get(&n).copied()) {
        a.latencies_us
            .push(now.saturating_duration_since(at).as_micros() as u64);
    }
    StatusCode::OK
}

async fn failing(State(s): State<Shared>, Path(_n): Path<u32>) -> StatusCode {
    s.lock().expect("arrivals lock").failing_hits += 1;
    StatusCode::INTERNAL_SERVER_ERROR
}

/// Runs the benchmark against `opts.server`.
pub async fn run(opts: BenchOptions) -> Result<BenchReport, String> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(opts.concurrency as usize * 2)
        .no_proxy()
        .build()
        .map_err(|e| e.to_string())?;
    let (addr, arrivals) = receiver().await;
    let failing = (f64::from(opts.webhooks) * opts.failing_share).round() as u32;
    let run_tag = format!("bench.{}", crate::now_ms());
    for i in 0..opts.webhooks {
        let path = if i < failing {
            format!("fail/{i}")
        } else {
            format!("ok/{i}")
        };
        let body = json!({"name": format!("bench {i}"), "url": format!("http://{addr}/{path}"),
            "events": [{"type": run_tag}]});
        call(&client, &opts, "/api/v1/webhooks", &body).await?;
    }
    let healthy = u64::from(opts.webhooks - failing);
    let start = Instant::now();
    publish_all(&client, &opts, &run_tag, &arrivals).await?;
    let publish_secs = start.elapsed().as_secs_f64();
    let expected = opts.events * healthy;
    wait_delivered(&arrivals, expected, opts.deadline).await;
    wait_recorded(&client, &opts, failing > 0, opts.deadline).await?;
    let total_secs = start.elapsed().as_secs_f64();
    let a = arrivals.lock().expect("arrivals lock");
    let delivered = a.seen.len() as u64;
    Ok(BenchReport {
        events: opts.events,
        publish_secs,
        expected,
        delivered,
        lost: expected.saturating_sub(delivered),
        duplicated: a.duplicated(),
        total_secs,
        latency_ms: percentiles(a.latencies_us.clone()),
        failing_hits: a.failing_hits,
        peak_rss_mib: peak_rss_mib(),
    })
}

async fn call(
    client: &reqwest::Client,
    opts: &BenchOptions,
    path: &str,
    body: &Value,
) -> Result<Value, String> {
    api(client, opts, reqwest::Method::POST, path, Some(body)).await
}

/// Sends `method path` (with `body` as JSON, if any) to the API; its JSON answer, `null` if empty.
async fn api(
    client: &reqwest::Client,
    opts: &BenchOptions,
    method: reqwest::Method,
    path: &str,
    body: Option<&Value>,
) -> Result<Value, String> {
    let mut request = client
        .request(method.clone(), format!("{}{path}", opts.server))
        .bearer_auth(&opts.token);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let resp = request
        .send()
        .await
        .map_err(|e| format!("{method} {path}: {e}"))?;
    let status = resp.status();
    let text = resp.text().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("{method} {path}: {status}: {text}"));
    }
    if text.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text).map_err(|e| e.to_string())
}

/// Publishes `opts.events` events from `opts.concurrency` tasks, paced when `opts.rate` > 0.
async fn publish_all(
    client: &reqwest::Client,
    opts: &BenchOptions,
    tag: &str,
    arrivals: &Shared,
) -> Result<(), String> {
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..opts.concurrency.max(1) {
        let (client, opts, tag, arrivals, next) = (
            client.clone(),
            opts.clone(),
            tag.to_owned(),
            arrivals.clone(),
            next.clone(),
        );
        tasks.spawn(async move {
            loop {
                let seq = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if seq >= opts.events {
                    return Ok::<(), String>(());
                }
                if opts.rate > 0 {
                    let due = start + Duration::from_secs_f64(seq as f64 / f64::from(opts.rate));
                    tokio::time::sleep_until(due.into()).await;
                }
                let sent = Instant::now();
                // Record the send time first; the accept time replaces it when the API answers.
                arrivals
                    .lock()
                    .expect("arrivals lock")
                    .accepted
                    .insert(seq, sent);
                call(
                    &client,
                    &opts,
                    "/api/v1/events",
                    &json!({"type": tag, "data": {"seq": seq}}),
                )
                .await?;
                let accepted = Instant::now();
                arrivals
                    .lock()
                    .expect("arrivals lock")
                    .accepted
                    .insert(seq, accepted);
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.map_err(|e| e.to_string())??;
    }
    Ok(())
}

async fn wait_delivered(arrivals: &Shared, expected: u64, deadline: Duration) {
    let until = Instant::now() + deadline;
    while Instant::now() < until {
        if arrivals.lock().expect("arrivals lock").seen.len() as u64 >= expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until no delivery is pending or being delivered (retries of failing receivers aside).
async fn wait_recorded(
    client: &reqwest::Client,
    opts: &BenchOptions,
    failing: bool,
    deadline: Duration,
) -> Result<(), String> {
    let until = Instant::now() + deadline;
    let statuses: &[&str] = if failing {
        &["pending"]
    } else {
        &["pending", "delivering"]
    };
    while Instant::now() < until {
        let mut busy = false;
        for s in statuses {
            let url = format!("{}/api/v1/deliveries?status={s}&limit=1", opts.server);
            let resp = client
                .get(url)
                .bearer_auth(&opts.token)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let v: Value = resp.json_or_null().await;
            busy |= v["data"].as_array().is_some_and(|d| !d.is_empty());
        }
        if !busy {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

trait JsonOrNull {
    async fn json_or_null(self) -> Value;
}

impl JsonOrNull for reqwest::Response {
    async fn json_or_null(self) -> Value {
        match self.bytes().await {
            Ok(b) => serde_json::from_slice(&b).unwrap_or(Value::Null),
            Err(_) => Value::Null,
        }
    }
}

fn percentiles(mut us: Vec<u64>) -> Percentiles {
    if us.is_empty() {
        return Percentiles::default();
    }
    us.sort_unstable();
    let at = |q: f64| us[((us.len() as f64 - 1.0) * q).round() as usize] as f64 / 1000.0;
    Percentiles {
        p50: at(0.50),
        p95: at(0.95),
        p99: at(0.99),
        max: at(1.0),
    }
}

/// Peak resident set size of this process (Linux `VmHWM`).
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
