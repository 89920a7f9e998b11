//! The public `/hooks/{key}` intake is bounded: rate limits per hook and per client address
//! (proxy-aware), a cap on each async hook's queue, and rejected calls recorded small and
//! capped. Real HTTP callers, both backends.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use futures_util::future::join_all;
use hookd_core::net::Cidr;
use hookd_server::{InboundSettings, WorkerMode};
use serde_json::{json, Value};

use crate::backend_test;
use crate::support::{spawn_app_with, test_settings, Backend, TestApp};

async fn app_with(backend: &Backend, inbound: InboundSettings, mode: WorkerMode) -> TestApp {
    let mut settings = test_settings();
    settings.inbound = inbound;
    spawn_app_with(backend, settings, mode).await
}

async fn hook(app: &TestApp, body: Value) -> (String, String) {
    let (status, out) = app.post("/inbound", body).await;
    assert_eq!(status, StatusCode::CREATED, "{out}");
    (out["id"].as_str().unwrap().to_owned(), app.hook_url(&out))
}

struct Answer {
    status: u16,
    retry_after: Option<String>,
    execution: Option<String>,
    body: Value,
}

async fn post(url: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut req = reqwest::Client::new().post(url).body(body.to_owned());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let (retry_after, execution) = (header("retry-after"), header("x-hookd-execution"));
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    Answer {
        status,
        retry_after,
        execution,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}

/// `n` calls at once; the answers and how long they took in all.
async fn burst(url: &str, headers: &[(&str, &str)], n: usize) -> (Vec<Answer>, Duration) {
    let started = Instant::now();
    let answers = join_all((0..n).map(|_| post(url, headers, "{}"))).await;
    (answers, started.elapsed())
}

/// The most calls a limit of `rate` per second (in bursts of one second's worth) lets through
/// in `elapsed`.
fn most_allowed(rate: u32, elapsed: Duration) -> usize {
    (f64::from(rate) * (1.0 + elapsed.as_secs_f64())).floor() as usize
}

async fn executions(app: &TestApp, hook_id: &str) -> Vec<Value> {
    let (status, list) = app
        .get(&format!("/inbound/{hook_id}/executions?limit=100"))
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list["data"].as_array().unwrap().clone()
}

fn check_refusals(answers: &[Answer], allowed: usize) -> usize {
    let ok = answers.iter().filter(|a| a.status == 200).count();
    assert!(ok >= 1, "the first call is always taken");
    assert!(ok <= allowed, "{ok} calls taken, at most {allowed} allowed");
    for a in answers.iter().filter(|a| a.status != 200) {
        assert_eq!(a.status, 429, "{}", a.body);
        assert_eq!(a.body["error"]["code"], "too_many_requests");
        let wait: u32 = a
            .retry_after
            .as_deref()
            .expect("Retry-After")
            .parse()
            .unwrap();
        assert!((1..=2).contains(&wait), "Retry-After: {wait}");
        assert!(a.execution.is_none(), "a refused call stores nothing");
    }
    ok
}

backend_test!(each_hook_takes_at_most_its_rate);
async fn each_hook_takes_at_most_its_rate(b: Backend) {
    let rate = 4;
    let app = app_with(
        &b,
        InboundSettings {
            rate_limit_per_second: rate,
            client_rate_limit_per_second: 0,
            ..InboundSettings::default()
        },
        WorkerMode::Embedded,
    )
    .await;
    let (a_id, a_url) = hook(&app, json!({"name": "a", "mode": "async"})).await;
    let (_, b_url) = hook(&app, json!({"name": "b", "mode": "async"})).await;
    let n = 30;
    let (answers, elapsed) = burst(&a_url, &[], n).await;
    let allowed = most_allowed(rate, elapsed);
    let taken = check_refusals(&answers, allowed);
    if allowed < n {
        assert!(taken < n, "some calls past the rate were refused");
    }
    // Only what was taken was stored.
    assert_eq!(executions(&app, &a_id).await.len(), taken);
    // The other hook has an allowance of its own.
    assert_eq!(post(&b_url, &[], "{}").await.status, 200);
}

backend_test!(each_client_address_takes_at_most_its_rate_behind_a_trusted_proxy);
async fn each_client_address_takes_at_most_its_rate_behind_a_trusted_proxy(b: Backend) {
    let rate = 3;
    let app = app_with(
        &b,
        InboundSettings {
            rate_limit_per_second: 0,
            client_rate_limit_per_second: rate,
            trusted_proxies: vec![Cidr::parse("127.0.0.1/32").unwrap()],
            ..InboundSettings::default()
        },
        WorkerMode::Embedded,
    )
    .await;
    let (_, one) = hook(&app, json!({"name": "one", "mode": "async"})).await;
    let (_, two) = hook(&app, json!({"name": "two", "mode": "async"})).await;
    let n = 20;
    // The proxy (loopback) appends each client's address; a client's own entry on the left is
    // not believed.
    let alice = [("x-forwarded-for", "6.6.6.6, 203.0.113.1")];
    let (answers, elapsed) = burst(&one, &alice, n).await;
    let allowed = most_allowed(rate, elapsed);
    let taken = check_refusals(&answers, allowed);
    if allowed < n {
        assert!(taken < n, "calls past the client's rate were refused");
    }
    // Bob, behind the same proxy, has an allowance of his own, on any hook.
    let bob = [("x-forwarded-for", "203.0.113.2")];
    let (answers, elapsed) = burst(&two, &bob, n).await;
    check_refusals(&answers, most_allowed(rate, elapsed));
}

backend_test!(without_trusted_proxies_forwarded_for_is_not_believed);
async fn without_trusted_proxies_forwarded_for_is_not_believed(b: Backend) {
    let rate = 3;
    let app = app_with(
        &b,
        InboundSettings {
            rate_limit_per_second: 0,
            client_rate_limit_per_second: rate,
            ..InboundSettings::default()
        },
        WorkerMode::Embedded,
    )
    .await;
    let (_, url) = hook(&app, json!({"name": "h", "mode": "async"})).await;
    // Each call claims another address; all come from loopback, and count as that.
    let started = Instant::now();
    let mut answers = Vec::new();
    for i in 0..12 {
        let forged = format!("198.51.100.{i}");
        answers.push(post(&url, &[("x-forwarded-for", &forged)], "{}").await);
    }
    let allowed = most_allowed(rate, started.elapsed());
    let taken = check_refusals(&answers, allowed);
    if allowed < answers.len() {
        assert!(taken < answers.len());
    }
}

backend_test!(an_async_hooks_queue_is_capped);
async fn an_async_hooks_queue_is_capped(b: Backend) {
    // No worker: what is queued stays queued.
    let app = app_with(
        &b,
        InboundSettings {
            max_queued_executions: 3,
            ..InboundSettings::default()
        },
        WorkerMode::Separate,
    )
    .await;
    let (id, url) = hook(&app, json!({"name": "q", "mode": "async"})).await;
    let (_, sync_url) = hook(&app, json!({"name": "s", "mode": "sync"})).await;
    for i in 0..3 {
        let a = post(&url, &[], "{}").await;
        assert_eq!(a.status, 200, "call {i}: {}", a.body);
    }
    let full = post(&url, &[], "{}").await;
    assert_eq!(full.status, 429, "{}", full.body);
    assert_eq!(full.retry_after.as_deref(), Some("1"));
    assert!(
        full.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("3 executions waiting"),
        "{}",
        full.body
    );
    // Counted again from the database after a second: still full.
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        assert_eq!(post(&url, &[], "{}").await.status, 429);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(executions(&app, &id).await.len(), 3);
    // Sync hooks have no queue.
    assert_eq!(post(&sync_url, &[], "{}").await.status, 200);
}

backend_test!(rejected_calls_are_recorded_small_and_at_most_so_often);
async fn rejected_calls_are_recorded_small_and_at_most_so_often(b: Backend) {
    let app = app_with(
        &b,
        InboundSettings {
            rejected_records_per_minute: 3,
            ..InboundSettings::default()
        },
        WorkerMode::Embedded,
    )
    .await;
    let (id, url) = hook(
        &app,
        json!({"name": "guarded", "mode": "async",
               "auth": {"type": "basic", "username": "alice", "password": "s3cret-pass"}}),
    )
    .await;
    let forged_url = format!("{url}?token=stolen-looking-query");
    let big_body = "x".repeat(50_000);
    let long_header = "y".repeat(4_000);
    let mut recorded = 0;
    for _ in 0..8 {
        let a = post(
            &forged_url,
            &[
                ("authorization", "Basic bWFsbG9yeTpndWVzcw=="),
                ("x-junk", &long_header),
            ],
            &big_body,
        )
        .await;
        assert_eq!(a.status, 401, "{}", a.body);
        recorded += usize::from(a.execution.is_some());
    }
    assert_eq!(recorded, 3, "three rejections a minute are recorded");
    let list = executions(&app, &id).await;
    assert_eq!(list.len(), 3);
    for e in &list {
        assert_eq!(e["status"], "rejected");
        let request = &e["request"];
        assert_eq!(request["body"], Value::Null, "{request}");
        assert_eq!(request["query"], json!({}));
        assert_eq!(request["path"], "/hooks/****");
        assert_eq!(request["headers"]["authorization"], "****");
        let junk = request["headers"]["x-junk"].as_str().unwrap();
        assert!(
            junk.len() < 300,
            "a long header is cut: {} bytes",
            junk.len()
        );
    }
    // Every call is still counted.
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("hookd_inbound_requests_total{status=\"401\"} 8"),
        "{metrics}"
    );
    // The right password is still let in.
    let good = post(
        &url,
        &[("authorization", "Basic YWxpY2U6czNjcmV0LXBhc3M=")],
        "{}",
    )
    .await;
    assert_eq!(good.status, 200, "{}", good.body);
}
