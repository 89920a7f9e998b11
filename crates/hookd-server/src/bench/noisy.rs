//! `hookd bench --scenario noisy`: how well a healthy webhook is isolated from bad ones.
//!
//! Three phases on the same server measure one healthy webhook's publish→arrival latency alone,
//! beside one hanging webhook, and beside ten hanging webhooks and one failing with fast
//! retries, so the figures compare. Each phase has its own receiver, webhooks and two event
//! types (the healthy webhook's and the bad webhooks', published at the same rate), and ends
//! when every healthy delivery has arrived: the hanging requests are left open, and the bad
//! webhooks are deleted, which cancels their queued deliveries (not the requests in flight).
//! A hanging receiver counts its open requests, which shows the per-webhook in-flight cap.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use super::{
    api, call, failing, healthy, percentiles, publish_all, wait_delivered, BenchOptions,
    Percentiles, Shared,
};

/// What to run.
#[derive(Debug, Clone)]
pub struct NoisyBenchOptions {
    /// Base URL of the hookd to drive (`http://127.0.0.1:8080`).
    pub server: String,
    pub token: String,
    /// Events published per phase to each event type (the healthy one, the bad ones').
    pub events: u64,
    /// Events per second, for each event type; 0 publishes as fast as the API accepts them.
    pub rate: u32,
    /// Concurrent publishing connections, for each event type.
    pub concurrency: u32,
    /// Longest wait for a phase's healthy deliveries once its events are published.
    pub deadline: Duration,
    /// The server's `delivery.max_in_flight_per_webhook`, printed beside the observed maximum.
    pub max_in_flight: u32,
}

impl NoisyBenchOptions {
    /// The options as the shared helpers (`call`, `publish_all`) take them.
    fn shared(&self) -> BenchOptions {
        BenchOptions {
            server: self.server.clone(),
            token: self.token.clone(),
            events: self.events,
            webhooks: 1,
            failing_share: 0.0,
            rate: self.rate,
            concurrency: self.concurrency,
            deadline: self.deadline,
        }
    }
}

/// The bad webhooks beside the healthy one.
struct Phase {
    name: &'static str,
    /// Webhooks whose receiver never answers.
    hanging: u32,
    /// Whether one webhook's receiver answers 500 at once (retried every second).
    failing: bool,
}

const PHASES: [Phase; 3] = [
    Phase {
        name: "alone",
        hanging: 0,
        failing: false,
    },
    Phase {
        name: "beside 1 hanging",
        hanging: 1,
        failing: false,
    },
    Phase {
        name: "beside 10 hanging + 1 failing",
        hanging: 10,
        failing: true,
    },
];

/// What one phase measured.
#[derive(Debug, Clone)]
pub struct PhaseReport {
    pub name: &'static str,
    /// Healthy deliveries expected (one per event) and received (distinct).
    pub expected: u64,
    pub delivered: u64,
    pub lost: u64,
    pub duplicated: u64,
    /// The healthy webhook's latency, API accepted → arrival.
    pub latency_ms: Percentiles,
    pub hanging_webhooks: u32,
    /// The hanging receivers' requests, as the phase ended.
    pub hanging: OpenCounts,
    /// Requests the failing receiver answered 500, if the phase has one.
    pub failing_hits: Option<u64>,
    /// The circuit of the first hanging webhook and of the failing one, as the phase ended.
    pub circuits: Vec<(&'static str, String)>,
}

/// What the hanging receivers of a phase saw.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenCounts {
    pub received: u64,
    /// Requests whose handler was dropped (hookd closed the connection and hyper noticed).
    pub closed: u64,
    /// Most requests open at once to one webhook, and to all of them.
    pub max_per_webhook: u64,
    pub max_total: u64,
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct NoisyReport {
    pub phases: Vec<PhaseReport>,
    /// The hanging receivers of every phase, as the run ended.
    pub hanging_at_end: OpenCounts,
    pub max_in_flight: u32,
}

impl std::fmt::Display for NoisyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{:<30} {:>13} {:>5} {:>5}  healthy latency p50 / p95 / p99 / max",
            "phase", "healthy recv", "lost", "dup"
        )?;
        for p in &self.phases {
            let l = &p.latency_ms;
            writeln!(
                f,
                "{:<30} {:>13} {:>5} {:>5}  {:.2} / {:.2} / {:.2} / {:.2} ms",
                p.name,
                format!("{}/{}", p.delivered, p.expected),
                p.lost,
                p.duplicated,
                l.p50,
                l.p95,
                l.p99,
                l.max
            )?;
        }
        for p in self.phases.iter().filter(|p| p.hanging_webhooks > 0) {
            self.bad_receivers(f, p)?;
        }
        if let (Some(alone), Some(worst)) = (self.phases.first(), self.phases.last()) {
            writeln!(
                f,
                "p99 {} / {}: {:.2}× (target ≤ 2×)",
                worst.name,
                alone.name,
                worst.latency_ms.p99 / alone.latency_ms.p99
            )?;
        }
        let end = &self.hanging_at_end;
        if end.closed > 0 {
            write!(
                f,
                "open counts: from a guard dropped with the handler; hyper dropped {} of {} \
                 hanging requests by the end (hookd closed them at its timeout)",
                end.closed, end.received
            )
        } else {
            write!(
                f,
                "open counts: no hanging handler was dropped by the end, so they count requests \
                 received (exact while none has timed out)"
            )
        }
    }
}

impl NoisyReport {
    fn bad_receivers(&self, f: &mut std::fmt::Formatter<'_>, p: &PhaseReport) -> std::fmt::Result {
        let h = &p.hanging;
        writeln!(
            f,
            "{}: {} hanging webhook(s) got {} requests, at most {} open to one (cap {}), {} in all",
            p.name,
            p.hanging_webhooks,
            h.received,
            h.max_per_webhook,
            self.max_in_flight,
            h.max_total
        )?;
        if let Some(hits) = p.failing_hits {
            writeln!(
                f,
                "{}: the failing receiver answered 500 {hits} times",
                p.name
            )?;
        }
        let circuits: Vec<String> = p
            .circuits
            .iter()
            .map(|(which, state)| format!("{which} {state}"))
            .collect();
        writeln!(
            f,
            "{}: circuits at the end: {}",
            p.name,
            circuits.join(", ")
        )
    }
}

/// Runs the three phases against `opts.server`.
pub async fn run(opts: NoisyBenchOptions) -> Result<NoisyReport, String> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(opts.concurrency as usize * 4)
        .timeout(Duration::from_secs(30))
        .no_proxy()
        .build()
        .map_err(|e| e.to_string())?;
    let run_tag = format!("noisy.{}", crate::now_ms());
    let mut phases = Vec::new();
    let mut receivers = Vec::new();
    for (i, phase) in PHASES.iter().enumerate() {
        let rx = receiver().await?;
        phases.push(run_phase(&client, &opts, phase, &format!("{run_tag}.{i}"), &rx).await?);
        receivers.push(rx);
    }
    let hanging_at_end = receivers
        .iter()
        .map(|rx| rx.hangs.lock().expect("hangs lock").counts())
        .fold(OpenCounts::default(), |a, b| OpenCounts {
            received: a.received + b.received,
            closed: a.closed + b.closed,
            max_per_webhook: a.max_per_webhook.max(b.max_per_webhook),
            max_total: a.max_total.max(b.max_total),
        });
    Ok(NoisyReport {
        phases,
        hanging_at_end,
        max_in_flight: opts.max_in_flight,
    })
}

/// Creates the phase's webhooks, publishes to them, waits for the healthy deliveries, then
/// deletes the bad webhooks.
async fn run_phase(
    client: &reqwest::Client,
    opts: &NoisyBenchOptions,
    phase: &Phase,
    tag: &str,
    rx: &Receiver,
) -> Result<PhaseReport, String> {
    let shared = opts.shared();
    let (ok_type, bad_type) = (format!("{tag}.healthy"), format!("{tag}.bad"));
    let url = |path: String| format!("http://{}/{path}", rx.addr);
    let webhook = |name: String, path: String, event: &str| json!({"name": name, "url": url(path), "events": [{"type": event}]});
    let healthy = webhook(format!("{} healthy", phase.name), "ok/0".into(), &ok_type);
    call(client, &shared, "/api/v1/webhooks", &healthy).await?;
    let mut bad = Vec::new();
    for i in 0..phase.hanging {
        let body = webhook(
            format!("{} hanging {i}", phase.name),
            format!("hang/{i}"),
            &bad_type,
        );
        bad.push(("hanging", create(client, &shared, &body).await?));
    }
    if phase.failing {
        let mut body = webhook(
            format!("{} failing", phase.name),
            "fail/0".into(),
            &bad_type,
        );
        body["retry_schedule"] = json!([1, 1, 1, 1, 1]);
        body["max_attempts"] = json!(6);
        bad.push(("failing", create(client, &shared, &body).await?));
    }
    let publish_ok = publish_all(client, &shared, &ok_type, &rx.healthy);
    if bad.is_empty() {
        publish_ok.await?;
    } else {
        let publish_bad = publish_all(client, &shared, &bad_type, &rx.bad);
        let (ok, bad) = tokio::join!(publish_ok, publish_bad);
        ok.and(bad)?;
    }
    wait_delivered(&rx.healthy, opts.events, opts.deadline).await;
    let circuits = circuits(client, &shared, &bad).await?;
    for (_, id) in &bad {
        api(
            client,
            &shared,
            Method::DELETE,
            &format!("/api/v1/webhooks/{id}"),
            None,
        )
        .await?;
    }
    let a = rx.healthy.lock().expect("arrivals lock");
    let delivered = a.seen.len() as u64;
    Ok(PhaseReport {
        name: phase.name,
        expected: opts.events,
        delivered,
        lost: opts.events.saturating_sub(delivered),
        duplicated: a.duplicated(),
        latency_ms: percentiles(a.latencies_us.clone()),
        hanging_webhooks: phase.hanging,
        hanging: rx.hangs.lock().expect("hangs lock").counts(),
        failing_hits: phase
            .failing
            .then(|| rx.bad.lock().expect("arrivals lock").failing_hits),
        circuits,
    })
}

/// Creates a webhook and returns its id.
async fn create(
    client: &reqwest::Client,
    opts: &BenchOptions,
    body: &Value,
) -> Result<String, String> {
    let created = call(client, opts, "/api/v1/webhooks", body).await?;
    created["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("no id in {created}"))
}

/// The circuit state of the first webhook of each kind in `bad`.
async fn circuits(
    client: &reqwest::Client,
    opts: &BenchOptions,
    bad: &[(&'static str, String)],
) -> Result<Vec<(&'static str, String)>, String> {
    let mut states: Vec<(&'static str, String)> = Vec::new();
    for (kind, id) in bad {
        if states.iter().any(|(k, _)| k == kind) {
            continue;
        }
        let path = format!("/api/v1/webhooks/{id}");
        let webhook = api(client, opts, Method::GET, &path, None).await?;
        let state = webhook["circuit"].as_str().unwrap_or("unknown").to_owned();
        states.push((kind, state));
    }
    Ok(states)
}

/// One phase's receiver on 127.0.0.1: `/ok/{n}` counts healthy arrivals and their latency,
/// `/fail/{n}` answers 500, `/hang/{n}` never answers.
struct Receiver {
    addr: SocketAddr,
    healthy: Shared,
    /// The failing receiver's hits (and the bad event type's accept instants).
    bad: Shared,
    hangs: Hangs,
}

async fn receiver() -> Result<Receiver, String> {
    let (healthy_arrivals, bad, hangs) = (Shared::default(), Shared::default(), Hangs::default());
    let app = Router::new()
        .route("/ok/{n}", post(healthy))
        .with_state(healthy_arrivals.clone())
        .merge(
            Router::new()
                .route("/fail/{n}", post(failing))
                .with_state(bad.clone()),
        )
        .merge(
            Router::new()
                .route("/hang/{n}", post(hang))
                .with_state(hangs.clone()),
        );
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("bind receiver: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(Receiver {
        addr,
        healthy: healthy_arrivals,
        bad,
        hangs,
    })
}

type Hangs = Arc<Mutex<OpenRequests>>;

/// The hanging receiver's requests: received, closed, and open now and at most.
#[derive(Default)]
struct OpenRequests {
    received: u64,
    closed: u64,
    all: Gauge,
    by_webhook: HashMap<u32, Gauge>,
}

#[derive(Default)]
struct Gauge {
    now: u64,
    max: u64,
}

impl Gauge {
    fn open(&mut self) {
        self.now += 1;
        self.max = self.max.max(self.now);
    }

    fn close(&mut self) {
        self.now = self.now.saturating_sub(1);
    }
}

impl OpenRequests {
    fn counts(&self) -> OpenCounts {
        OpenCounts {
            received: self.received,
            closed: self.closed,
            max_per_webhook: self.by_webhook.values().map(|g| g.max).max().unwrap_or(0),
            max_total: self.all.max,
        }
    }
}

/// One open request to a hanging receiver; closed when hyper drops the handler.
struct OpenRequest {
    hangs: Hangs,
    webhook: u32,
}

impl OpenRequest {
    fn open(hangs: Hangs, webhook: u32) -> Self {
        {
            let mut h = hangs.lock().expect("hangs lock");
            h.received += 1;
            h.all.open();
            h.by_webhook.entry(webhook).or_default().open();
        }
        Self { hangs, webhook }
    }
}

impl Drop for OpenRequest {
    fn drop(&mut self) {
        // No panic in a destructor: a poisoned lock only loses the count.
        if let Ok(mut h) = self.hangs.lock() {
            h.closed += 1;
            h.all.close();
            if let Some(g) = h.by_webhook.get_mut(&self.webhook) {
                g.close();
            }
        }
    }
}

async fn hang(State(hangs): State<Hangs>, Path(n): Path<u32>) -> StatusCode {
    let _open = OpenRequest::open(hangs, n);
    std::future::pending().await
}
