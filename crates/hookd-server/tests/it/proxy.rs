//! The reverse proxy: calls pass through unchanged to a real upstream on 127.0.0.1, and 2xx calls
//! are recorded as `route.call` events (visible as soon as the client has the whole response).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use hookd_server::{ProxyRoute, WorkerMode};
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::backend_test;
use crate::support::{spawn_app_with, test_settings, Backend, TestApp, TestReceiver};

/// Chunks the streaming endpoint sends.
const CHUNKS: usize = 20;

/// A real upstream API on 127.0.0.1.
async fn upstream() -> SocketAddr {
    let app = axum::Router::new()
        .route("/orders/{id}", get(order))
        .route("/orders", post(create_order))
        .route("/missing", get(missing))
        .route("/echo-body", post(|body: Bytes| async move { body }))
        .route("/stream", get(stream))
        .fallback(echo_request);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn order(axum::extract::Path(id): axum::extract::Path<u32>) -> Response {
    (
        [("x-upstream", "orders")],
        Json(json!({"id": id, "sku": "A-1"})),
    )
        .into_response()
}

async fn create_order(headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let ct = headers.get("content-type").cloned();
    let echo = json!({"created": body, "content_type": ct.and_then(|v| v.to_str().ok().map(str::to_owned))});
    (StatusCode::CREATED, [("location", "/orders/7")], Json(echo)).into_response()
}

async fn missing() -> Response {
    (
        StatusCode::NOT_FOUND,
        [("x-upstream", "missing")],
        "no such order",
    )
        .into_response()
}

/// Describes the request it got, so tests can see what the proxy sent.
async fn echo_request(req: Request) -> Json<Value> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    Json(json!({
        "path": req.uri().path(),
        "query": req.uri().query(),
        "x_forwarded_for": header("x-forwarded-for"),
        "x_forwarded_host": header("x-forwarded-host"),
        "x_forwarded_proto": header("x-forwarded-proto"),
        "connection_private": header("x-private"),
    }))
}

/// A chunked body sent a piece at a time.
async fn stream() -> Body {
    let chunks = futures_util::stream::unfold(0usize, |i| async move {
        if i == CHUNKS {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
        Some((
            Ok::<_, Infallible>(Bytes::from(format!("chunk {i}\n"))),
            i + 1,
        ))
    });
    Body::from_stream(chunks)
}

fn route(prefix: &str, upstream: String, strip_prefix: bool) -> ProxyRoute {
    ProxyRoute {
        prefix: prefix.into(),
        upstream,
        tag: "shop".into(),
        strip_prefix,
    }
}

/// hookd with `routes`, recording bodies up to `cap` bytes.
async fn spawn_proxy(b: &Backend, routes: Vec<ProxyRoute>, cap: usize) -> TestApp {
    let mut settings = test_settings();
    settings.proxy.routes = routes;
    settings.proxy.max_recorded_body_bytes = cap;
    spawn_app_with(b, settings, WorkerMode::Embedded).await
}

/// hookd proxying `/shop/` to a fresh upstream, stripping the prefix.
async fn shop(b: &Backend) -> TestApp {
    let up = upstream().await;
    let routes = vec![route("/shop/", format!("http://{up}/"), true)];
    spawn_proxy(b, routes, 64 * 1024).await
}

/// The `route.call` events stored so far, by URL.
async fn route_calls(app: &TestApp) -> Vec<Value> {
    let (status, list) = app.get("/events?limit=100").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let mut calls: Vec<Value> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "route.call")
        .map(|e| e["data"].clone())
        .collect();
    calls.sort_by_key(|c| c["url"].as_str().unwrap_or("").to_owned());
    calls
}

backend_test!(calls_pass_through_and_2xx_calls_are_recorded);
async fn calls_pass_through_and_2xx_calls_are_recorded(b: Backend) {
    let app = shop(&b).await;
    let resp = app
        .client
        .get(format!("{}/shop/orders/1", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-upstream"], "orders");
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"id": 1, "sku": "A-1"})
    );

    let resp = app
        .client
        .post(format!("{}/shop/orders", app.base))
        .json(&json!({"sku": "B-2", "qty": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.headers()["location"], "/orders/7");
    let created = json!({"created": {"sku": "B-2", "qty": 3}, "content_type": "application/json"});
    assert_eq!(resp.json::<Value>().await.unwrap(), created);

    let resp = app
        .client
        .get(format!("{}/shop/missing", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["x-upstream"], "missing");
    assert_eq!(resp.text().await.unwrap(), "no such order");

    // Recorded before the client had the whole response: no polling needed.
    assert_eq!(
        route_calls(&app).await,
        [
            json!({"tag": "shop", "method": "POST", "url": "/shop/orders",
                   "body": {"sku": "B-2", "qty": 3},
                   "response": {"status": 201, "body": created}}),
            json!({"tag": "shop", "method": "GET", "url": "/shop/orders/1", "body": null,
                   "response": {"status": 200, "body": {"id": 1, "sku": "A-1"}}}),
        ]
    );
}

backend_test!(a_recorded_call_fires_a_matching_webhook);
async fn a_recorded_call_fires_a_matching_webhook(b: Backend) {
    let app = shop(&b).await;
    let rx = TestReceiver::start().await;
    app.create_webhook(json!({"name": "orders", "url": rx.url("/h"),
        "events": [{"label": "order posted", "method": "POST", "url": "^/shop/orders$"}]}))
        .await;
    let resp = app
        .client
        .post(format!("{}/shop/orders", app.base))
        .json(&json!({"sku": "C-3"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let got = rx.wait_for(1).await[0].json();
    assert_eq!(got["event"], json!({"id": 0, "label": "order posted"}));
    assert_eq!(
        got["request"],
        json!({"tag": "shop", "method": "POST", "url": "/shop/orders", "body": {"sku": "C-3"}})
    );
    assert_eq!(got["response"]["status"], 201);
    assert_eq!(got["response"]["body"]["created"], json!({"sku": "C-3"}));
}

backend_test!(prefixes_query_strings_and_forwarding_headers);
async fn prefixes_query_strings_and_forwarding_headers(b: Backend) {
    let up = upstream().await;
    let routes = vec![
        route("/kept/", format!("http://{up}"), false),
        route("/kept/deeper/", format!("http://{up}/base"), true),
    ];
    let app = spawn_proxy(&b, routes, 1024).await;
    let get = |path: &str| {
        app.client
            .get(format!("{}{path}", app.base))
            .header("connection", "x-private")
            .header("x-private", "secret")
            .send()
    };
    let seen: Value = get("/kept/a/b?x=1&y=%20z")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen["path"], "/kept/a/b");
    assert_eq!(seen["query"], "x=1&y=%20z");
    assert_eq!(seen["x_forwarded_for"], "127.0.0.1");
    assert_eq!(
        seen["x_forwarded_host"],
        app.base.trim_start_matches("http://")
    );
    assert_eq!(seen["x_forwarded_proto"], "http");
    assert_eq!(
        seen["connection_private"],
        Value::Null,
        "hop-by-hop header forwarded"
    );
    let seen: Value = get("/kept/deeper/c?q").await.unwrap().json().await.unwrap();
    assert_eq!(
        seen["path"], "/base/c",
        "the longest prefix wins and is stripped"
    );
    assert_eq!(seen["query"], "q");
    // hookd's own routes win over a proxy prefix.
    let health = app
        .client
        .get(format!("{}/health", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        health.json::<Value>().await.unwrap(),
        json!({"status": "ok"})
    );
    let urls: Vec<Value> = route_calls(&app)
        .await
        .iter()
        .map(|c| c["url"].clone())
        .collect();
    assert_eq!(
        urls,
        [json!("/kept/a/b?x=1&y=%20z"), json!("/kept/deeper/c?q")]
    );
}

backend_test!(large_bodies_pass_whole_and_are_recorded_truncated);
async fn large_bodies_pass_whole_and_are_recorded_truncated(b: Backend) {
    let up = upstream().await;
    let app = spawn_proxy(&b, vec![route("/", format!("http://{up}"), false)], 1024).await;
    let big = "x".repeat(200 * 1024);
    let resp = app
        .client
        .post(format!("{}/echo-body", app.base))
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), big);
    let call = &route_calls(&app).await[0];
    assert_eq!(call["body"], json!("x".repeat(1024)));
    assert_eq!(call["body_truncated"], true);
    assert_eq!(call["response"]["body"], json!("x".repeat(1024)));
    assert_eq!(call["response"]["body_truncated"], true);
}

backend_test!(an_unreachable_upstream_is_a_502_and_nothing_is_recorded);
async fn an_unreachable_upstream_is_a_502_and_nothing_is_recorded(b: Backend) {
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let app = spawn_proxy(
        &b,
        vec![route("/down/", format!("http://{closed}"), false)],
        1024,
    )
    .await;
    let resp = app
        .client
        .get(format!("{}/down/x", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["code"], "bad_gateway", "{err}");
    assert!(err["error"]["message"].is_string(), "{err}");
    assert_eq!(route_calls(&app).await, Vec::<Value>::new());
}

backend_test!(a_streaming_body_arrives_intact_and_is_recorded);
async fn a_streaming_body_arrives_intact_and_is_recorded(b: Backend) {
    let app = shop(&b).await;
    let mut resp = app
        .client
        .get(format!("{}/shop/stream", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut got = Vec::new();
    while let Some(chunk) = resp.chunk().await.unwrap() {
        got.extend_from_slice(&chunk);
    }
    let want: String = (0..CHUNKS).map(|i| format!("chunk {i}\n")).collect();
    assert_eq!(String::from_utf8(got).unwrap(), want);
    let call = &route_calls(&app).await[0];
    assert_eq!(call["response"]["body"], json!(want));
}
