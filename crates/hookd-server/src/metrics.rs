//! Process metrics for `GET /metrics` in the Prometheus text format: deliveries by outcome and
//! attempt latency as seen by this process's worker, and the queue depth from the database.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use hookd_core::store::{NextState, Outcome};

/// Upper bounds (seconds) of the attempt latency histogram buckets.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Counters updated by the worker's recorder.
#[derive(Debug, Default)]
pub struct Metrics {
    succeeded: AtomicU64,
    retrying: AtomicU64,
    failed: AtomicU64,
    cancelled: AtomicU64,
    /// Per bucket of [`BUCKETS`], then one for +Inf.
    latency: [AtomicU64; BUCKETS.len() + 1],
    latency_sum_ms: AtomicU64,
    /// Inbound hook requests answered, by status code.
    inbound: std::sync::Mutex<std::collections::BTreeMap<u16, u64>>,
    /// The worker processes sharing the webhooks, as this process's worker last read them (0
    /// before it did, or without a worker).
    workers: AtomicU64,
}

impl Metrics {
    /// Counts recorded outcomes.
    pub fn observe(&self, outcomes: &[Outcome]) {
        for o in outcomes {
            let counter = match o.next {
                NextState::Succeeded => &self.succeeded,
                NextState::Retry { .. } => &self.retrying,
                NextState::Failed => &self.failed,
                NextState::Cancelled => &self.cancelled,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            let secs = o.attempt.duration_ms as f64 / 1000.0;
            let i = BUCKETS
                .iter()
                .position(|b| secs <= *b)
                .unwrap_or(BUCKETS.len());
            self.latency[i].fetch_add(1, Ordering::Relaxed);
            self.latency_sum_ms
                .fetch_add(o.attempt.duration_ms, Ordering::Relaxed);
        }
    }

    /// Notes how many worker processes share the webhooks now.
    pub fn workers(&self, n: usize) {
        self.workers.store(n as u64, Ordering::Relaxed);
    }

    /// Counts an inbound hook request answered with `status`.
    pub fn inbound(&self, status: u16) {
        *self
            .inbound
            .lock()
            .expect("not poisoned")
            .entry(status)
            .or_default() += 1;
    }

    /// The Prometheus text exposition of this process's counters. Render them before reading
    /// the database's gauges ([`render_gauges`]): a counter moves only after its outcome was
    /// committed, so the gauges read afterwards already include what the counters show.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP hookd_attempts_total Delivery attempts recorded by this process, by outcome.\n",
        );
        out.push_str("# TYPE hookd_attempts_total counter\n");
        for (outcome, c) in [
            ("succeeded", &self.succeeded),
            ("retrying", &self.retrying),
            ("failed", &self.failed),
            ("cancelled", &self.cancelled),
        ] {
            let _ = writeln!(
                out,
                "hookd_attempts_total{{outcome=\"{outcome}\"}} {}",
                c.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP hookd_attempt_duration_seconds Duration of delivery attempts.\n");
        out.push_str("# TYPE hookd_attempt_duration_seconds histogram\n");
        let mut cumulative = 0;
        for (i, bound) in BUCKETS
            .iter()
            .map(|b| b.to_string())
            .chain(["+Inf".into()])
            .enumerate()
        {
            cumulative += self.latency[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "hookd_attempt_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        let sum = self.latency_sum_ms.load(Ordering::Relaxed) as f64 / 1000.0;
        let _ = writeln!(out, "hookd_attempt_duration_seconds_sum {sum}");
        let _ = writeln!(out, "hookd_attempt_duration_seconds_count {cumulative}");
        out.push_str(
            "# HELP hookd_inbound_requests_total Inbound hook requests answered by this process, by status.\n",
        );
        out.push_str("# TYPE hookd_inbound_requests_total counter\n");
        for (status, n) in self.inbound.lock().expect("not poisoned").iter() {
            let _ = writeln!(
                out,
                "hookd_inbound_requests_total{{status=\"{status}\"}} {n}"
            );
        }
        out.push_str(
            "# HELP hookd_workers Worker processes alive that share the webhooks out, as this process's worker last read them.\n",
        );
        out.push_str("# TYPE hookd_workers gauge\n");
        let _ = writeln!(
            out,
            "hookd_workers {}",
            self.workers.load(Ordering::Relaxed)
        );
        out
    }
}

/// Appends the gauges read from the database: `queue_depth`, and `circuits` (webhooks with
/// their circuit open, half open).
pub fn render_gauges(out: &mut String, queue_depth: Option<u64>, circuits: Option<(u64, u64)>) {
    if let Some(depth) = queue_depth {
        out.push_str(
            "# HELP hookd_queue_depth Deliveries pending, being delivered or waiting to retry.\n",
        );
        out.push_str("# TYPE hookd_queue_depth gauge\n");
        let _ = writeln!(out, "hookd_queue_depth {depth}");
    }
    if let Some((open, half_open)) = circuits {
        out.push_str("# HELP hookd_webhook_circuits Webhooks by circuit breaker state (closed ones are not counted).\n");
        out.push_str("# TYPE hookd_webhook_circuits gauge\n");
        let _ = writeln!(out, "hookd_webhook_circuits{{state=\"open\"}} {open}");
        let _ = writeln!(
            out,
            "hookd_webhook_circuits{{state=\"half_open\"}} {half_open}"
        );
    }
}
