//! Route calls (APIO): `POST /route-calls`, `method`/`url` entries, and APIO's exact payload.

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::backend_test;
use crate::support::{spawn_app, Backend, TestApp, TestReceiver};

fn order_call(method: &str, url: &str, status: u16) -> Value {
    json!({"tag": "shop", "method": method, "url": url, "body": {"sku": "A-1", "qty": 2},
           "response": {"status": status, "body": {"order": 1}}})
}

/// Reports a call and returns `(event id, deliveries queued)`.
async fn report(app: &TestApp, call: Value) -> (String, u64) {
    let (status, out) = app.post("/route-calls", call).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{out}");
    let id = out["id"].as_str().unwrap().to_owned();
    (id, out["deliveries"].as_u64().unwrap())
}

backend_test!(a_matching_call_sends_apios_exact_payload);
async fn a_matching_call_sends_apios_exact_payload(b: Backend) {
    let app = spawn_app(&b).await;
    let rx = TestReceiver::start().await;
    app.create_webhook(
        json!({"name": "apio", "url": rx.url("/h"), "include_secret": true,
        "signature": {"scheme": "none"}, "secret": "secret-1",
        "events": [{"label": "order posted", "method": "POST", "url": "^/api/v01/orders/.*$"}]}),
    )
    .await;
    let (event_id, queued) = report(&app, order_call("post", "/api/v01/orders/1", 201)).await;
    assert_eq!(queued, 1);
    let got = rx.wait_for(1).await;
    let delivery = &app.deliveries_of(&event_id).await[0];
    assert_eq!(
        got[0].json(),
        json!({
            "event": {"id": 0, "label": "order posted"},
            "id": delivery["id"],
            "request": {"tag": "shop", "method": "post", "url": "/api/v01/orders/1",
                        "body": {"sku": "A-1", "qty": 2}},
            "response": {"status": 201, "body": {"order": 1}},
            "secret": "secret-1",
        })
    );
}

backend_test!(the_payload_names_the_first_matching_entry);
async fn the_payload_names_the_first_matching_entry(b: Backend) {
    let app = spawn_app(&b).await;
    let rx = TestReceiver::start().await;
    app.create_webhook(json!({"name": "apio", "url": rx.url("/h"),
        "events": [{"label": "order posted", "method": "POST", "url": "^/api/v01/orders/.*$"},
                   {"label": "customer read", "method": "get", "url": "customers"}]}))
        .await;
    let (event_id, queued) = report(&app, order_call("GET", "/api/v01/customers/7", 200)).await;
    assert_eq!(queued, 1);
    let body = rx.wait_for(1).await[0].json();
    assert_eq!(body["event"], json!({"id": 1, "label": "customer read"}));
    assert_eq!(body["id"], app.deliveries_of(&event_id).await[0]["id"]);
    assert!(body.get("secret").is_none(), "{body}");
}

backend_test!(unmatched_or_failed_calls_are_stored_and_queue_nothing);
async fn unmatched_or_failed_calls_are_stored_and_queue_nothing(b: Backend) {
    let app = spawn_app(&b).await;
    let rx = TestReceiver::start().await;
    app.create_webhook(json!({"name": "apio", "url": rx.url("/h"),
        "events": [{"label": "order posted", "method": "POST", "url": "^/api/v01/orders/.*$"}]}))
        .await;
    for call in [
        order_call("GET", "/api/v01/orders/1", 200),
        order_call("POST", "/api/v01/customers/1", 200),
        order_call("POST", "/api/v01/orders/1", 500),
    ] {
        let (id, queued) = report(&app, call.clone()).await;
        assert_eq!(queued, 0, "{call}");
        let (status, event) = app.get(&format!("/events/{id}")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(event["type"], "route.call");
        assert_eq!(event["data"], call);
    }
    // A webhook without entries fires for every event, but never for a failed call.
    app.create_webhook(json!({"name": "all", "url": rx.url("/all")}))
        .await;
    let (_, queued) = report(&app, order_call("GET", "/api/v01/orders/1", 200)).await;
    assert_eq!(queued, 1);
    let (_, queued) = report(&app, order_call("POST", "/api/v01/orders/1", 404)).await;
    assert_eq!(queued, 0);
}

backend_test!(bad_calls_are_refused_naming_the_field);
async fn bad_calls_are_refused_naming_the_field(b: Backend) {
    let app = spawn_app(&b).await;
    let ok = order_call("POST", "/a", 200);
    let cases = [
        ("tag", json!("")),
        ("tag", json!("x".repeat(201))),
        ("method", json!("GE T")),
        ("method", json!("")),
        ("url", json!("")),
        ("url", json!("not a url")),
    ];
    for (field, value) in cases {
        let mut call = ok.clone();
        call[field] = value;
        let (status, err) = app.post("/route-calls", call).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
        assert_eq!(err["error"]["field"], field, "{err}");
    }
    for bad in [99, 600, -1] {
        let mut call = ok.clone();
        call["response"]["status"] = json!(bad);
        let (status, err) = app.post("/route-calls", call).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
        assert_eq!(err["error"]["field"], "response.status", "{err}");
    }
    let (_, list) = app.get("/events").await;
    assert_eq!(list["data"], json!([]));
    let (status, _) = app
        .post(
            "/route-calls",
            json!({"tag": "t", "method": "GET", "url": "https://api.example.com/x",
            "response": {"status": 204}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
}

backend_test!(bad_entry_fields_are_refused_at_save);
async fn bad_entry_fields_are_refused_at_save(b: Backend) {
    let app = spawn_app(&b).await;
    let rx = TestReceiver::start().await;
    for (entry, field) in [
        (json!({"url": "^/orders/(["}), "events[0].url"),
        (json!({"method": "GE T"}), "events[0].method"),
    ] {
        let (status, err) = app
            .post(
                "/webhooks",
                json!({"name": "w", "url": rx.url("/h"), "events": [entry]}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
        assert_eq!(err["error"]["field"], field, "{err}");
    }
    let w = app
        .create_webhook(json!({"name": "w", "url": rx.url("/h"),
            "events": [{"method": "POST", "url": "^/ok$"}]}))
        .await;
    assert_eq!(w["events"], json!([{"method": "POST", "url": "^/ok$"}]));
    let id = w["id"].as_str().unwrap();
    let (status, err) = app
        .call(
            "PATCH",
            &format!("/webhooks/{id}"),
            Some(json!({"events": [{"type": "a.b"}, {"url": "("}]})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_eq!(err["error"]["field"], "events[1].url", "{err}");
}
