//! Publishing events: single, batch, idempotency, listing.

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::backend_test;
use crate::support::{spawn_app, Backend, TestReceiver};

backend_test!(publish_counts_matching_webhooks);
async fn publish_counts_matching_webhooks(b: Backend) {
    let app = spawn_app(&b).await;
    let rx = TestReceiver::start().await;
    let url = rx.url("/h");
    app.create_webhook(json!({"name": "all", "url": url})).await;
    app.create_webhook(json!({"name": "entries", "url": url, "events": [{"type": "entry.*"}]}))
        .await;
    app.create_webhook(json!({"name": "addr", "url": url,
        "events": [{"type": "entry.create", "model": "address"}]}))
        .await;
    app.create_webhook(json!({"name": "off", "url": url, "active": false}))
        .await;
    let cases = [
        (
            json!({"type": "entry.create", "model": "address", "data": {"id": 1}}),
            3,
        ),
        (json!({"type": "entry.update", "model": "address"}), 2),
        (json!({"type": "invoice.paid"}), 1),
    ];
    for (event, want) in cases {
        let (status, out) = app.post("/events", event.clone()).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{out}");
        assert_eq!(out["deliveries"], want, "{event}");
        assert!(out["id"].as_str().unwrap().starts_with("evt_"));
    }
}

backend_test!(idempotency_key_returns_the_first_event_and_queues_nothing);
async fn idempotency_key_returns_the_first_event_and_queues_nothing(b: Backend) {
    let app = spawn_app(&b).await;
    let rx = TestReceiver::start().await;
    app.create_webhook(json!({"name": "all", "url": rx.url("/h")}))
        .await;
    let event = json!({"type": "order.paid", "data": {"n": 1}, "idempotency_key": "order-1"});
    let (status, first) = app.post("/events", event.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let mut again = event.clone();
    again["data"] = json!({"n": 2});
    let (status, dup) = app.post("/events", again).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(dup["id"], first["id"]);
    assert_eq!(dup["data"], json!({"n": 1}));
    let (_, list) = app.get("/events").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let (_, ds) = app.get("/deliveries").await;
    assert_eq!(ds["data"].as_array().unwrap().len(), 1);
}

backend_test!(batch_stores_all_or_nothing);
async fn batch_stores_all_or_nothing(b: Backend) {
    let app = spawn_app(&b).await;
    let events: Vec<Value> = (0..10)
        .map(|i| json!({"type": "a.b", "data": {"i": i}}))
        .collect();
    let (status, out) = app.post("/events/batch", json!({"events": events})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{out}");
    assert_eq!(out["data"].as_array().unwrap().len(), 10);
    let mut bad: Vec<Value> = (0..3).map(|_| json!({"type": "a.b"})).collect();
    bad.push(json!({"type": "not valid"}));
    let (status, err) = app.post("/events/batch", json!({"events": bad})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(err["error"]["field"], "events[3].type");
    let too_many: Vec<Value> = (0..1001).map(|_| json!({"type": "a.b"})).collect();
    let (status, err) = app.post("/events/batch", json!({"events": too_many})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(err["error"]["field"], "events");
    let (_, list) = app.get("/events?limit=1000").await;
    assert_eq!(
        list["data"].as_array().unwrap().len(),
        10,
        "failed batches stored nothing"
    );
}

backend_test!(events_can_be_read_back);
async fn events_can_be_read_back(b: Backend) {
    let app = spawn_app(&b).await;
    let body = json!({"type": "entry.create", "model": "address", "data": {"city": "Paris"},
                      "occurred_at": "2020-01-10T08:47:36.649Z"});
    let (_, out) = app.post("/events", body).await;
    let id = out["id"].as_str().unwrap();
    let (status, e) = app.get(&format!("/events/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(e["type"], "entry.create");
    assert_eq!(e["model"], "address");
    assert_eq!(e["data"], json!({"city": "Paris"}));
    assert_eq!(e["occurred_at"], "2020-01-10T08:47:36.649Z");
    let (status, err) = app
        .post(
            "/events",
            json!({"type": "a.b", "occurred_at": "yesterday"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(err["error"]["field"], "occurred_at");
}

backend_test!(frappe_document_events_match_by_doctype_glob_and_condition);
async fn frappe_document_events_match_by_doctype_glob_and_condition(b: Backend) {
    let app = spawn_app(&b).await;
    let rx = TestReceiver::start().await;
    let url = rx.url("/frappe");
    // One DocType's event, every document event of a DocType, and a glob across DocTypes with a
    // condition on the document, as Frappe's webhook form offers them.
    app.create_webhook(json!({"name": "quotation updated", "url": url,
        "events": [{"type": "doc.on_update", "model": "Quotation"}]}))
        .await;
    app.create_webhook(json!({"name": "any lead event", "url": url,
        "events": [{"type": "doc.*", "model": "Lead"}]}))
        .await;
    app.create_webhook(json!({"name": "big submitted docs", "url": url,
        "events": [{"type": "doc.on_submit"}], "condition": "doc.grand_total > 1000"}))
        .await;
    let cases = [
        (
            json!({"type": "doc.on_update", "model": "Quotation", "data": {"name": "Q-1"}}),
            1,
        ),
        (
            json!({"type": "doc.on_update", "model": "Lead", "data": {"name": "L-1"}}),
            1,
        ),
        (
            json!({"type": "doc.after_insert", "model": "Lead", "data": {"name": "L-2"}}),
            1,
        ),
        (
            json!({"type": "doc.on_submit", "model": "Sales Invoice",
                "data": {"name": "S-1", "grand_total": 5000}}),
            1,
        ),
        (
            json!({"type": "doc.on_submit", "model": "Sales Invoice",
                "data": {"name": "S-2", "grand_total": 10}}),
            0,
        ),
        (
            json!({"type": "doc.on_trash", "model": "Quotation", "data": {"name": "Q-1"}}),
            0,
        ),
    ];
    for (event, want) in cases {
        let (status, out) = app.post("/events", event.clone()).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{out}");
        assert_eq!(out["deliveries"], want, "{event}");
    }
    let got = rx.wait_for(4).await;
    let first = got
        .iter()
        .map(|r| r.json())
        .find(|b| b["data"]["name"] == "Q-1")
        .unwrap();
    assert_eq!(first["type"], "doc.on_update");
}

backend_test!(concurrent_publishes_sharing_keys_store_each_key_once);
async fn concurrent_publishes_sharing_keys_store_each_key_once(b: Backend) {
    let app = spawn_app(&b).await;
    let rx = TestReceiver::start().await;
    app.create_webhook(json!({"name": "all", "url": rx.url("/h")}))
        .await;
    let event = |k: usize| json!({"type": "order.paid", "idempotency_key": format!("key-{k}")});
    // Singles and batches naming all the keys, in both orders, at once: they land in several
    // group commits, each waiting on the keys another holds.
    let bodies: Vec<(&str, Value)> = (0..48)
        .map(|i| match i % 3 {
            0 if i % 2 == 0 => (
                "/events/batch",
                json!({"events": (0..8).map(event).collect::<Vec<_>>()}),
            ),
            0 => (
                "/events/batch",
                json!({"events": (0..8).rev().map(event).collect::<Vec<_>>()}),
            ),
            _ => ("/events", event(i % 8)),
        })
        .collect();
    let answers = futures_util::future::join_all(
        bodies
            .iter()
            .map(|(path, body)| app.post(path, body.clone())),
    )
    .await;
    let mut ids = std::collections::BTreeMap::<String, Vec<String>>::new();
    for ((path, body), (status, out)) in bodies.iter().zip(&answers) {
        assert!(status.is_success(), "{status}: {out}");
        let (sent, got) = match *path {
            "/events" => (vec![body.clone()], vec![out.clone()]),
            _ => (
                body["events"].as_array().unwrap().clone(),
                out["data"].as_array().unwrap().clone(),
            ),
        };
        for (e, answer) in sent.iter().zip(got) {
            let key = e["idempotency_key"].as_str().unwrap().to_owned();
            ids.entry(key)
                .or_default()
                .push(answer["id"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(ids.len(), 8);
    for (key, seen) in &ids {
        assert!(seen.iter().all(|id| id == &seen[0]), "{key}: {seen:?}");
    }
    let (_, list) = app.get("/events?limit=100").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 8);
    rx.wait_for(8).await;
    let (_, ds) = app.get("/deliveries?limit=100").await;
    assert_eq!(ds["data"].as_array().unwrap().len(), 8);
}

backend_test!(a_list_posted_to_events_points_to_the_batch_endpoint);
async fn a_list_posted_to_events_points_to_the_batch_endpoint(b: Backend) {
    let app = spawn_app(&b).await;
    let (status, body) = app
        .post("/events", json!([{"type": "a.b", "data": {}}]))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["field"], "body");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("must be a JSON object") && message.contains("/events/batch"),
        "{message}"
    );
    // The batch endpoint itself says nothing of the sort.
    let (status, body) = app.post("/events/batch", json!([])).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(!body.to_string().contains("/events/batch"), "{body}");
}
