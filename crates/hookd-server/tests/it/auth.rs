//! Admin API authentication and the OpenAPI document.

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::backend_test;
use crate::support::{spawn_app, Backend};

backend_test!(api_calls_without_a_valid_token_are_refused);
async fn api_calls_without_a_valid_token_are_refused(b: Backend) {
    let app = spawn_app(&b).await;
    for auth in [
        None,
        Some("Bearer wrong-token"),
        Some("Basic abc"),
        Some("Bearer "),
    ] {
        let mut req = app.client.get(app.url("/webhooks"));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{auth:?}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    let (status, _) = app.get("/webhooks").await;
    assert_eq!(status, StatusCode::OK);
    let resp = app
        .client
        .get(app.url("/no-such-thing"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401, "unknown paths are guarded too");
    let lower = format!("bearer {}", crate::support::TOKEN);
    let resp = app
        .client
        .get(app.url("/webhooks"))
        .header("authorization", lower)
        .send();
    assert_eq!(
        resp.await.unwrap().status().as_u16(),
        200,
        "the scheme is case-insensitive"
    );
}

backend_test!(stored_tokens_are_accepted);
async fn stored_tokens_are_accepted(b: Backend) {
    let app = spawn_app(&b).await;
    let token = hookd_server::create_token(&*app.store, "ci").await.unwrap();
    let resp = app
        .client
        .get(app.url("/events"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let resp = app
        .client
        .get(app.url("/events"))
        .bearer_auth(format!("{token}x"))
        .send()
        .await;
    assert_eq!(resp.unwrap().status().as_u16(), 401);
}

backend_test!(openapi_document_lists_the_api);
async fn openapi_document_lists_the_api(b: Backend) {
    let app = spawn_app(&b).await;
    let (status, doc) = app.get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/v1/webhooks",
        "/api/v1/webhooks/{id}/test",
        "/api/v1/events/batch",
        "/api/v1/deliveries/{id}/retry",
        "/api/v1/stats/deliveries",
        "/hooks/{key}",
        "/health",
        "/ready",
        "/metrics",
    ] {
        assert!(doc["paths"][path].is_object(), "missing {path}");
    }
    // What every operation can answer is documented on each.
    let create = &doc["paths"]["/api/v1/webhooks"]["post"]["responses"];
    for status in ["201", "400", "401", "413", "422", "503"] {
        assert!(create[status].is_object(), "POST /webhooks lists {status}");
    }
    let get = &doc["paths"]["/api/v1/webhooks/{id}"]["get"]["responses"];
    for status in ["200", "401", "404", "503"] {
        assert!(
            get[status].is_object(),
            "GET /webhooks/{{id}} lists {status}"
        );
    }
    // Query strings are documented as such, each parameter optional.
    for path in [
        "/api/v1/deliveries",
        "/api/v1/webhooks/stats",
        "/api/v1/stats/deliveries",
    ] {
        let params = doc["paths"][path]["get"]["parameters"].as_array().unwrap();
        assert!(
            params
                .iter()
                .all(|p| p["in"] == "query" && p["required"] == false),
            "{path}: {params:?}"
        );
    }
    assert_eq!(doc["paths"]["/health"]["get"]["security"], json!([]));
    assert!(doc["components"]["schemas"]["WebhookIn"].is_object());
}

backend_test!(operations_endpoints_answer);
async fn operations_endpoints_answer(b: Backend) {
    let app = spawn_app(&b).await;
    for path in ["/health", "/ready"] {
        let resp = app
            .client
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{path}");
    }
}

backend_test!(unknown_routes_and_methods_get_json_errors);
async fn unknown_routes_and_methods_get_json_errors(b: Backend) {
    let app = spawn_app(&b).await;
    let (status, body) = app.get("/nothing-here").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
    let (status, body) = app.call("PUT", "/events", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["error"]["code"], "method_not_allowed");
}

backend_test!(metrics_count_outcomes_and_queue_depth);
async fn metrics_count_outcomes_and_queue_depth(b: Backend) {
    let app = spawn_app(&b).await;
    let rx = crate::support::TestReceiver::start().await;
    app.create_webhook(serde_json::json!({"name": "m", "url": rx.url("/")}))
        .await;
    app.post("/events", serde_json::json!({"type": "a.b"}))
        .await;
    rx.wait_for(1).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let text = app.metrics().await;
        if text.contains("hookd_attempts_total{outcome=\"succeeded\"} 1") {
            assert!(text.contains("hookd_queue_depth 0"), "{text}");
            assert!(
                text.contains("hookd_attempt_duration_seconds_count 1"),
                "{text}"
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{text}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
