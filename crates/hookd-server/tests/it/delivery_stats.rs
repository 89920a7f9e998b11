//! `GET /api/v1/stats/deliveries`: real deliveries to a receiver that answers and one that
//! fails, counted per bucket over the last hour or day, overall and per webhook.

use axum::http::StatusCode;
use hookd_core::time::parse_rfc3339;
use serde_json::{json, Value};

use crate::backend_test;
use crate::support::{spawn_app, Backend, TestApp};

/// `(succeeded, failed, attempts)` summed over the answer's buckets.
fn totals(stats: &Value) -> (u64, u64, u64) {
    let sum = |key: &str| {
        stats["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b[key].as_u64().unwrap())
            .sum()
    };
    (sum("succeeded"), sum("failed"), sum("attempts"))
}

async fn stats(app: &TestApp, query: &str) -> Value {
    let (status, body) = app.get(&format!("/stats/deliveries{query}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Every bucket present, oldest first, `seconds` apart; the last one holds now.
fn assert_buckets(stats: &Value, n: usize, seconds: i64) {
    let starts: Vec<i64> = stats["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| parse_rfc3339(b["start"].as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(starts.len(), n, "{stats}");
    assert!(starts.windows(2).all(|w| w[1] - w[0] == seconds * 1000));
    let now = hookd_server::now_ms();
    let last = starts[n - 1];
    assert!(
        last <= now && now < last + seconds * 1000,
        "{last} holds {now}"
    );
    assert_eq!(stats["bucket_seconds"], seconds);
}

backend_test!(delivery_stats_count_attempts_per_bucket_and_webhook);
async fn delivery_stats_count_attempts_per_bucket_and_webhook(b: Backend) {
    let app = spawn_app(&b).await;
    let hooks = app.good_and_bad(500, 3).await;
    let (good_hook, bad_hook) = (&hooks.good_hook, &hooks.bad_hook);

    let hour = stats(&app, "").await;
    assert_eq!(
        (&hour["window"], &hour["webhook_id"]),
        (&json!("1h"), &Value::Null)
    );
    assert_buckets(&hour, 60, 60);
    assert_eq!(totals(&hour), (3, 3, 6));
    let busy: Vec<&Value> = hour["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["attempts"] != 0)
        .collect();
    assert!(busy.iter().all(|b| b["latency_p50_ms"].is_u64()
        && b["latency_p50_ms"].as_u64() <= b["latency_p95_ms"].as_u64()));
    assert!(hour["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["attempts"] == 0)
        .all(|b| b["latency_p50_ms"].is_null() && b["succeeded"] == 0));

    let day = stats(&app, "?window=24h").await;
    assert_eq!(day["window"], "24h");
    assert_buckets(&day, 24, 3600);
    assert_eq!(totals(&day), (3, 3, 6));

    for (hook, want) in [(&good_hook, (3, 0, 3)), (&bad_hook, (0, 3, 3))] {
        let id = hook["id"].as_str().unwrap();
        let one = stats(&app, &format!("?window=1h&webhook_id={id}")).await;
        assert_eq!(one["webhook_id"], id);
        assert_eq!(totals(&one), want, "{}", hook["name"]);
    }
    // A well-formed id of no webhook (perhaps deleted): no attempts, every bucket.
    let unknown = hookd_core::WebhookId::generate(hookd_server::now_ms());
    let none = stats(&app, &format!("?webhook_id={unknown}")).await;
    assert_buckets(&none, 60, 60);
    assert_eq!(totals(&none), (0, 0, 0));
}

backend_test!(delivery_stats_refuse_bad_parameters_and_anonymous_callers);
async fn delivery_stats_refuse_bad_parameters_and_anonymous_callers(b: Backend) {
    let app = spawn_app(&b).await;
    for (query, field) in [
        ("?window=7d", "window"),
        ("?window=1H", "window"),
        ("?window=", "window"),
        ("?webhook_id=nope", "webhook_id"),
    ] {
        let (status, body) = app.get(&format!("/stats/deliveries{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["error"]["field"], field, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with(field),
            "{body}"
        );
    }
    let anonymous = app
        .client
        .get(app.url("/stats/deliveries"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
}

backend_test!(delivery_stats_are_in_the_openapi_document);
async fn delivery_stats_are_in_the_openapi_document(b: Backend) {
    let app = spawn_app(&b).await;
    let (_, doc) = app.get("/openapi.json").await;
    let op = &doc["paths"]["/api/v1/stats/deliveries"]["get"];
    let params = op["parameters"].as_array().expect("parameters");
    let window = params
        .iter()
        .find(|p| p["name"] == "window")
        .expect("a window parameter");
    assert_eq!(
        (&window["in"], &window["required"]),
        (&json!("query"), &json!(false))
    );
    let reference = window["schema"]["$ref"]
        .as_str()
        .unwrap_or_else(|| panic!("{window}"));
    let name = reference.rsplit('/').next().unwrap();
    assert_eq!(
        doc["components"]["schemas"][name]["enum"],
        json!(["1h", "24h"]),
        "{window}"
    );
    assert!(params.iter().any(|p| p["name"] == "webhook_id"));
    for status in ["200", "400", "401", "503"] {
        assert!(op["responses"][status].is_object(), "lists {status}");
    }
    let bucket = &doc["components"]["schemas"]["DeliveryStatsBucket"]["properties"];
    for field in [
        "start",
        "succeeded",
        "failed",
        "attempts",
        "latency_p50_ms",
        "latency_p95_ms",
    ] {
        assert!(bucket[field].is_object(), "bucket field {field}");
    }
}
