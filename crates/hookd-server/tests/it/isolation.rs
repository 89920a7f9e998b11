//! Isolation (SPEC §7): a hanging, failing or rate-limited endpoint never delays the others.
//! Per-webhook in-flight caps, rate limits and circuit breakers, with real receivers.

use std::time::{Duration, Instant};

use hookd_core::flow::CircuitPolicy;
use hookd_server::WorkerMode;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::backend_test;
use crate::support::{
    spawn_app, spawn_app_with, test_settings, Backend, Reply, TestApp, TestReceiver,
};

/// A receiver that holds every request open for a minute: longer than any of these tests.
async fn hanging() -> TestReceiver {
    let rx = TestReceiver::start().await;
    rx.always(Reply {
        delay: Duration::from_secs(60),
        ..Reply::status(200)
    });
    rx
}

/// Publishes `n` events of `event_type` in one batch.
async fn publish(app: &TestApp, event_type: &str, n: usize) {
    let events: Vec<Value> = (0..n)
        .map(|i| json!({"type": event_type, "data": {"i": i}}))
        .collect();
    let (status, body) = app.post("/events/batch", json!({ "events": events })).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

/// The webhook's deliveries (up to 1000).
async fn deliveries(app: &TestApp, webhook: &Value) -> Vec<Value> {
    let id = webhook["id"].as_str().unwrap();
    let (_, page) = app
        .get(&format!("/deliveries?webhook_id={id}&limit=1000"))
        .await;
    page["data"].as_array().unwrap().clone()
}

/// Polls the webhook until `done` holds for it.
async fn wait_webhook(app: &TestApp, webhook: &Value, done: impl Fn(&Value) -> bool) -> Value {
    let path = format!("/webhooks/{}", webhook["id"].as_str().unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, w) = app.get(&path).await;
        if done(&w) {
            return w;
        }
        assert!(Instant::now() < deadline, "webhook never got there: {w}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

backend_test!(a_hanging_endpoint_holds_its_cap_and_healthy_deliveries_flow);
async fn a_hanging_endpoint_holds_its_cap_and_healthy_deliveries_flow(b: Backend) {
    let app = spawn_app(&b).await;
    let (stuck, healthy) = (hanging().await, TestReceiver::start().await);
    let stuck_hook = app
        .create_webhook(
            json!({"name": "stuck", "url": stuck.url("/"), "max_in_flight": 4,
            "timeout_ms": 20000, "events": [{"type": "stuck.*"}]}),
        )
        .await;
    app.create_webhook(json!({"name": "healthy", "url": healthy.url("/"),
        "events": [{"type": "ok.*"}]}))
        .await;
    // The hanging endpoint's backlog is older than every healthy delivery.
    publish(&app, "stuck.x", 30).await;
    stuck.wait_for(4).await;
    publish(&app, "ok.x", 30).await;
    healthy.wait_for(30).await;

    assert_eq!(
        stuck.max_open(),
        4,
        "the hanging endpoint holds exactly its cap"
    );
    assert_eq!(stuck.received().len(), 4, "the rest of its backlog waits");
    let waiting: Vec<Value> = deliveries(&app, &stuck_hook)
        .await
        .into_iter()
        .filter(|d| d["status"] == "pending")
        .collect();
    assert_eq!(waiting.len(), 26);
    assert!(
        waiting.iter().all(|d| d["attempt_count"] == 0),
        "waiting, not failing"
    );
}

backend_test!(ten_hanging_endpoints_leave_the_rest_of_the_budget_to_the_others);
async fn ten_hanging_endpoints_leave_the_rest_of_the_budget_to_the_others(b: Backend) {
    let mut settings = test_settings();
    settings.delivery.concurrency = 48;
    settings.delivery.max_in_flight_per_webhook = 4;
    let app = spawn_app_with(&b, settings, WorkerMode::Embedded).await;
    let mut stuck = Vec::new();
    for i in 0..10 {
        let rx = hanging().await;
        app.create_webhook(json!({"name": format!("stuck {i}"), "url": rx.url("/"),
            "timeout_ms": 20000, "events": [{"type": "stuck.*"}]}))
            .await;
        stuck.push(rx);
    }
    let healthy = TestReceiver::start().await;
    app.create_webhook(json!({"name": "healthy", "url": healthy.url("/"),
        "events": [{"type": "ok.*"}]}))
        .await;
    publish(&app, "stuck.x", 10).await;
    for rx in &stuck {
        rx.wait_for(4).await;
    }
    publish(&app, "ok.x", 60).await;
    healthy.wait_for(60).await;
    for (i, rx) in stuck.iter().enumerate() {
        assert_eq!(
            rx.max_open(),
            4,
            "hanging endpoint {i} holds the default cap"
        );
    }
}

backend_test!(a_circuit_opens_on_timeouts_holds_deliveries_and_a_probe_closes_it);
async fn a_circuit_opens_on_timeouts_holds_deliveries_and_a_probe_closes_it(b: Backend) {
    let mut settings = test_settings();
    settings.delivery.circuit = CircuitPolicy {
        failures: 3,
        cooldown: Duration::from_secs(3),
        max_cooldown: Duration::from_secs(3),
    };
    let app = spawn_app_with(&b, settings, WorkerMode::Embedded).await;
    let rx = TestReceiver::start().await;
    rx.always(Reply {
        delay: Duration::from_secs(5),
        ..Reply::status(200)
    });
    let hook = app
        .create_webhook(
            json!({"name": "slow", "url": rx.url("/"), "timeout_ms": 200,
            "max_in_flight": 3, "retry_schedule": [1]}),
        )
        .await;
    publish(&app, "a.b", 10).await;

    let open = wait_webhook(&app, &hook, |w| w["circuit"] == "open").await;
    assert!(open["circuit_open_until"].is_string(), "{open}");
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("hookd_webhook_circuits{state=\"open\"} 1"),
        "{metrics}"
    );
    // Requests sent before it opened time out too; wait for them to be recorded.
    let deadline = Instant::now() + Duration::from_secs(20);
    let all = loop {
        let all = deliveries(&app, &hook).await;
        if all.iter().all(|d| d["status"] != "delivering") {
            break all;
        }
        assert!(Instant::now() < deadline, "{all:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Three failures open it; up to two more requests may have gone out between the first
    // outcome being recorded and the third (a slot freed), never more.
    let sent = all.iter().filter(|d| d["attempt_count"] != 0).count();
    assert!(
        (3..=5).contains(&sent),
        "{sent} requests before the circuit opened"
    );
    assert!(
        all.iter().all(|d| d["attempt_count"].as_u64() <= Some(1)),
        "{all:?}"
    );
    assert_eq!(rx.received().len(), sent);
    let waiting = all.iter().filter(|d| d["status"] == "pending").count();
    assert_eq!(waiting, 10 - sent, "the others wait, unattempted");
    let open_until = open["circuit_open_until"].as_str().unwrap();
    let open_until = chrono::DateTime::parse_from_rfc3339(open_until).unwrap();
    let left = (open_until.timestamp_millis() - chrono::Utc::now().timestamp_millis()).max(0);
    let until = Instant::now() + Duration::from_millis(left as u64);
    while Instant::now() + Duration::from_millis(100) < until {
        assert_eq!(
            rx.received().len(),
            sent,
            "nothing is sent while the circuit is open"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The endpoint recovers; after the cool-down one probe succeeds and closes the circuit.
    rx.always(Reply::status(200));
    let closed = wait_webhook(&app, &hook, |w| w["circuit"] == "closed").await;
    assert_eq!(closed["circuit_failures"], 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let all = deliveries(&app, &hook).await;
        if all.iter().all(|d| d["status"] == "succeeded") {
            break;
        }
        assert!(Instant::now() < deadline, "{all:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        closed["active"].as_bool().unwrap(),
        "the circuit does not disable"
    );
}

backend_test!(a_rate_limit_holds_in_every_second_and_fails_nothing);
async fn a_rate_limit_holds_in_every_second_and_fails_nothing(b: Backend) {
    let app = spawn_app(&b).await;
    let rx = TestReceiver::start().await;
    let hook = app
        .create_webhook(json!({"name": "limited", "url": rx.url("/"), "rate_limit_per_second": 20}))
        .await;
    publish(&app, "a.b", 60).await;
    rx.wait_for(60).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let all = loop {
        let all = deliveries(&app, &hook).await;
        if all.len() == 60 && all.iter().all(|d| d["status"] == "succeeded") {
            break all;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        all.iter().all(|d| d["attempt_count"] == 1),
        "none failed for it"
    );
    // When hookd started each request (what the limit governs; arrivals add network jitter).
    let mut starts = Vec::new();
    for d in &all {
        let (_, detail) = app
            .get(&format!("/deliveries/{}", d["id"].as_str().unwrap()))
            .await;
        let at = detail["attempts"][0]["started_at"]
            .as_str()
            .unwrap()
            .to_owned();
        starts.push(
            chrono::DateTime::parse_from_rfc3339(&at)
                .unwrap()
                .timestamp_millis(),
        );
    }
    starts.sort();
    let busiest = (0..starts.len())
        .map(|i| {
            starts[i..]
                .iter()
                .take_while(|&&t| t < starts[i] + 1000)
                .count()
        })
        .max()
        .unwrap();
    assert!(
        busiest <= 24,
        "{busiest} requests started in one second at 20/s"
    );
    assert!(
        starts[59] - starts[0] >= 2500,
        "60 requests at 20/s take about 3 s, took {} ms",
        starts[59] - starts[0]
    );
}

backend_test!(limits_are_validated_shown_and_reset);
async fn limits_are_validated_shown_and_reset(b: Backend) {
    let app = spawn_app(&b).await;
    let base = json!({"name": "l", "url": "http://127.0.0.1:9/x"});
    for (field, value) in [
        ("max_in_flight", json!(0)),
        ("max_in_flight", json!(10_001)),
        ("rate_limit_per_second", json!(0)),
        ("rate_limit_per_second", json!(100_001)),
    ] {
        let mut body = base.clone();
        body[field] = value.clone();
        let (status, err) = app.post("/webhooks", body).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field} = {value}"
        );
        assert_eq!(err["error"]["field"], field, "{err}");
    }
    let (_, list) = app.get("/webhooks").await;
    assert_eq!(list["data"], json!([]), "nothing stored");

    let mut body = base.clone();
    body["max_in_flight"] = json!(3);
    body["rate_limit_per_second"] = json!(20);
    let w = app.create_webhook(body).await;
    assert_eq!(w["max_in_flight"], 3);
    assert_eq!(w["rate_limit_per_second"], 20);
    assert_eq!(w["circuit"], "closed");
    assert_eq!(w["circuit_open_until"], Value::Null);
    assert_eq!(w["circuit_failures"], 0);

    let path = format!("/webhooks/{}", w["id"].as_str().unwrap());
    let (status, patched) = app
        .call(
            "PATCH",
            &path,
            Some(json!({"rate_limit_per_second": null, "max_in_flight": 7})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["rate_limit_per_second"], Value::Null);
    assert_eq!(patched["max_in_flight"], 7);
    let (status, err) = app
        .call("PATCH", &path, Some(json!({"max_in_flight": -1})))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    let (_, got) = app.get(&path).await;
    assert_eq!(got["max_in_flight"], 7, "a refused patch changes nothing");
}

backend_test!(a_publish_beside_the_worker_leases_its_deliveries_before_it_answers);
async fn a_publish_beside_the_worker_leases_its_deliveries_before_it_answers(b: Backend) {
    let app = spawn_app(&b).await;
    let stuck = hanging().await;
    let hook = app
        .create_webhook(
            json!({"name": "held", "url": stuck.url("/"), "max_in_flight": 2,
            "timeout_ms": 20000, "events": [{"type": "held.*"}]}),
        )
        .await;
    publish(&app, "held.x", 3).await;
    // Read as soon as the publish is answered: its transaction claimed, within the cap.
    let mut statuses: Vec<String> = deliveries(&app, &hook)
        .await
        .iter()
        .map(|d| d["status"].as_str().unwrap().to_owned())
        .collect();
    statuses.sort();
    assert_eq!(
        statuses,
        ["delivering", "delivering", "pending"],
        "two leased by the publish, at the webhook's cap; the third waits for a slot"
    );
    stuck.wait_for(2).await;
    assert_eq!(stuck.max_open(), 2, "the cap holds");
}
