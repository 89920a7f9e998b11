//! What an operator watches: a worker's own /health, /ready and /metrics, and JSON log lines
//! that carry the ids of what they are about.

use std::io::{BufRead as _, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::backend_test;
use crate::support::{command, free_port, hookd, wait_ready, Api, Backend, Counter, TOKEN};

/// The worker tests' settings: the admin token, and loopback receivers allowed.
const ENV: [(&str, &str); 2] = [
    ("HOOKD_ADMIN_TOKEN", TOKEN),
    ("HOOKD_DELIVERY__ALLOW_NETWORKS", "[\"127.0.0.0/8\"]"),
];

/// Polls `url` until its text satisfies `done`, and returns that text.
async fn poll_text(url: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok(r) = reqwest::get(url).await {
            if r.status().is_success() {
                last = r.text().await.unwrap_or_default();
                if done(&last) {
                    return last;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} never answered as expected; last answer: {last}");
}

backend_test!(a_worker_serves_health_ready_and_its_own_metrics);
async fn a_worker_serves_health_ready_and_its_own_metrics(b: Backend) {
    let (db, _temp) = b.fresh_db().await;
    let listen = format!("127.0.0.1:{}", free_port());
    let _api_proc = hookd(&["serve", "--no-worker", "--listen", &listen], &db, &ENV);
    let base = format!("http://{listen}");
    wait_ready(&base).await;
    let api = Api::new(&base);
    let rx = Counter::start(Duration::ZERO).await;
    api.post(
        "/webhooks",
        json!({"name": "r", "url": format!("http://{}/", rx.addr)}),
    )
    .await;

    let ops = format!("127.0.0.1:{}", free_port());
    let _worker = hookd(&["worker", "--listen", &ops], &db, &ENV);
    let ops_base = format!("http://{ops}");
    poll_text(&format!("{ops_base}/health"), |t| t.contains("ok")).await;
    poll_text(&format!("{ops_base}/ready"), |t| t.contains("ready")).await;
    api.post("/events", json!({"type": "a.b", "data": {}}))
        .await;
    rx.wait_distinct(1, Duration::from_secs(30)).await;
    // The worker's own counters: the attempt it made (the API process made none).
    let metrics = poll_text(&format!("{ops_base}/metrics"), |t| {
        t.contains("hookd_attempts_total{outcome=\"succeeded\"} 1")
    })
    .await;
    assert!(metrics.contains("hookd_queue_depth"), "{metrics}");
    let api_metrics = poll_text(&format!("{base}/metrics"), |_| true).await;
    assert!(
        !api_metrics.contains("hookd_attempts_total{outcome=\"succeeded\"} 1"),
        "the API process counted the worker's attempt: {api_metrics}"
    );
    let status = reqwest::get(format!("{ops_base}/api/v1/webhooks"))
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 404, "a worker serves no admin API");

    // A second worker on the same address stops at once, naming the key.
    let out = command(&["worker", "--listen", &ops], &db, &ENV)
        .stderr(Stdio::piped())
        .output()
        .expect("run hookd worker");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a second worker started: {stderr}");
    assert!(
        stderr.contains("worker_listen: cannot listen on") && stderr.contains("--listen"),
        "{stderr}"
    );
}

#[tokio::test]
async fn json_logs_carry_the_ids_of_a_failed_attempt() {
    let temp = std::env::temp_dir().join(format!("hookd-json-{:016x}.db", rand::random::<u64>()));
    let _temp = crate::support::TempDb::new(temp.clone());
    let db = format!("sqlite://{}", temp.display());
    let listen = format!("127.0.0.1:{}", free_port());
    let mut child = command(&["serve", "--listen", &listen], &db, &ENV)
        .env("HOOKD_LOG", "info")
        .env("HOOKD_LOG_FORMAT", "json")
        .stderr(Stdio::piped())
        .spawn()
        .expect("start hookd");
    let stderr = child.stderr.take().expect("stderr piped");
    let _proc = crate::support::Proc(child);
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let base = format!("http://{listen}");
    wait_ready(&base).await;
    let api = Api::new(&base);
    // Nothing listens there: the attempt fails to connect.
    let closed = format!("http://127.0.0.1:{}/", free_port());
    let hook = api
        .post("/webhooks", json!({"name": "down", "url": closed}))
        .await;
    let event = api
        .post("/events", json!({"type": "a.b", "data": {}}))
        .await;

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    let failed = loop {
        let wait = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = lines.recv_timeout(wait) else {
            panic!("no `attempt failed` line; the log was: {seen:#?}");
        };
        let parsed: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        if parsed["fields"]["message"] == "attempt failed" {
            break parsed;
        }
        seen.push(line);
    };
    let span = &failed["span"];
    assert_eq!(span["name"], "attempt", "{failed}");
    assert_eq!(span["webhook_id"], hook["id"], "{failed}");
    assert_eq!(span["event_id"], event["id"], "{failed}");
    assert!(
        span["delivery_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("dlv_")),
        "{failed}"
    );
    assert_eq!(failed["level"], "INFO");
    assert!(
        failed["fields"]["error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{failed}"
    );
    // Its parent is the claim that took the delivery.
    let names: Vec<_> = failed["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].clone())
        .collect();
    assert_eq!(names, [json!("claim"), json!("attempt")], "{failed}");
}

/// An OTLP/HTTP collector on 127.0.0.1 that keeps the bodies posted to `/v1/traces`.
async fn collector() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
) {
    use axum::http::{HeaderMap, StatusCode};
    let bodies: std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>> = Default::default();
    let kept = bodies.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let kept = kept.clone();
            async move {
                if headers.get("content-type").and_then(|v| v.to_str().ok())
                    != Some("application/x-protobuf")
                {
                    return StatusCode::UNSUPPORTED_MEDIA_TYPE;
                }
                kept.lock().unwrap().push(body.to_vec());
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, bodies)
}

/// Whether `needle` occurs in `haystack` (protobuf keeps strings as their bytes).
fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn spans_are_exported_to_an_otlp_collector_with_their_ids() {
    let (addr, bodies) = collector().await;
    let temp = std::env::temp_dir().join(format!("hookd-otlp-{:016x}.db", rand::random::<u64>()));
    let _temp = crate::support::TempDb::new(temp.clone());
    let db = format!("sqlite://{}", temp.display());
    let listen = format!("127.0.0.1:{}", free_port());
    let endpoint = format!("http://{addr}");
    let env = [
        ENV[0],
        ENV[1],
        ("HOOKD_LOG", "warn,hookd_server=info"),
        ("HOOKD_OTLP_ENDPOINT", endpoint.as_str()),
        // The SDK's standard setting: export every 100 ms instead of every 5 s.
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ];
    let _proc = hookd(&["serve", "--listen", &listen], &db, &env);
    let base = format!("http://{listen}");
    wait_ready(&base).await;
    let api = Api::new(&base);
    let rx = Counter::start(Duration::ZERO).await;
    api.post(
        "/webhooks",
        json!({"name": "r", "url": format!("http://{}/", rx.addr)}),
    )
    .await;
    let event = api
        .post("/events", json!({"type": "a.b", "data": {}}))
        .await;
    rx.wait_distinct(1, Duration::from_secs(30)).await;
    let event_id = event["id"].as_str().unwrap().to_owned();

    let deadline = Instant::now() + Duration::from_secs(30);
    let wanted = [
        "attempt",
        "publish",
        "request",
        "claim",
        "delivery_id",
        &event_id,
    ];
    loop {
        let all: Vec<u8> = bodies.lock().unwrap().concat();
        let missing: Vec<_> = wanted.iter().filter(|w| !contains(&all, w)).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the collector never saw {missing:?} ({} bytes in {} exports)",
            all.len(),
            bodies.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let all: Vec<u8> = bodies.lock().unwrap().concat();
    assert!(contains(&all, "hookd"), "no service.name");
    assert!(
        !contains(&all, TOKEN),
        "the admin token went to the collector"
    );
}

#[tokio::test]
async fn a_collector_that_never_answers_delays_no_delivery() {
    // It takes connections and never answers.
    let hanging = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = hanging.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = hanging.accept().await {
            held.push(socket);
        }
    });
    let temp = std::env::temp_dir().join(format!("hookd-otlp-{:016x}.db", rand::random::<u64>()));
    let _temp = crate::support::TempDb::new(temp.clone());
    let db = format!("sqlite://{}", temp.display());
    let listen = format!("127.0.0.1:{}", free_port());
    let endpoint = format!("http://{addr}");
    let env = [
        ENV[0],
        ENV[1],
        ("HOOKD_LOG", "warn,hookd_server=info"),
        ("HOOKD_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ];
    let _proc = hookd(&["serve", "--listen", &listen], &db, &env);
    let base = format!("http://{listen}");
    wait_ready(&base).await;
    let api = Api::new(&base);
    let rx = Counter::start(Duration::ZERO).await;
    api.post(
        "/webhooks",
        json!({"name": "r", "url": format!("http://{}/", rx.addr)}),
    )
    .await;
    let started = Instant::now();
    let events: Vec<_> = (0..200)
        .map(|i| json!({"type": "a.b", "data": {"i": i}}))
        .collect();
    api.post("/events/batch", json!({"events": events})).await;
    rx.wait_distinct(200, Duration::from_secs(30)).await;
    // Exports wait on their own thread, with a 10 s timeout each: deliveries never do.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "deliveries waited for the collector: {:?}",
        started.elapsed()
    );
}
