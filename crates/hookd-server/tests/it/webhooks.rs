//! The webhooks API: CRUD, pagination, secrets, statistics, and bad input.

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::backend_test;
use crate::support::{spawn_app, Backend, Reply, TestApp, TestReceiver};

fn minimal() -> Value {
    json!({"name": "crm", "url": "https://crm.example.com/hooks"})
}

backend_test!(create_fills_defaults_and_hides_secrets);
async fn create_fills_defaults_and_hides_secrets(b: Backend) {
    let app = spawn_app(&b).await;
    let mut body = minimal();
    body["auth"] = json!({"type": "basic", "username": "u", "password": "hunter2"});
    body["headers"] = json!({"X-Api-Key": "k-hunter3", "X-Tenant": "acme"});
    let w = app.create_webhook(body).await;
    assert!(w["id"].as_str().unwrap().starts_with("wh_"));
    assert_eq!(w["active"], true);
    assert_eq!(w["method"], "POST");
    assert_eq!(w["signature"], json!({"scheme": "standard"}));
    assert_eq!(w["auth"]["password"], "****");
    assert!(w.get("secret").is_none());
    let id = w["id"].as_str().unwrap();
    let (_, got) = app.get(&format!("/webhooks/{id}")).await;
    assert_eq!(got, w);
    assert!(!got.to_string().contains("hunter2"));
    assert_eq!(
        got["headers"],
        json!({"X-Api-Key": "****", "X-Tenant": "acme"})
    );
    let (status, secret) = app.get(&format!("/webhooks/{id}/secret")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(secret["secret"].as_str().unwrap().starts_with("whsec_"));
}

backend_test!(list_paginates_newest_first);
async fn list_paginates_newest_first(b: Backend) {
    let app = spawn_app(&b).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let w = app
            .create_webhook(json!({"name": format!("w{i}"), "url": "http://a.example/"}))
            .await;
        ids.push(w["id"].as_str().unwrap().to_owned());
    }
    let (_, page1) = app.get("/webhooks?limit=2").await;
    let names: Vec<_> = page1["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].clone())
        .collect();
    assert_eq!(names, vec!["w4", "w3"]);
    let cursor = page1["next_cursor"].as_str().unwrap();
    let (_, page2) = app.get(&format!("/webhooks?limit=2&cursor={cursor}")).await;
    assert_eq!(page2["data"][0]["name"], "w2");
    let cursor = page2["next_cursor"].as_str().unwrap();
    let (_, page3) = app.get(&format!("/webhooks?limit=2&cursor={cursor}")).await;
    assert_eq!(page3["data"].as_array().unwrap().len(), 1);
    assert_eq!(page3["next_cursor"], Value::Null);
}

backend_test!(patch_changes_only_the_given_fields);
async fn patch_changes_only_the_given_fields(b: Backend) {
    let app = spawn_app(&b).await;
    let mut body = minimal();
    body["headers"] = json!({"X-Tenant": "acme"});
    let w = app.create_webhook(body).await;
    let id = w["id"].as_str().unwrap();
    let (_, before) = app.get(&format!("/webhooks/{id}/secret")).await;
    let patch = json!({"name": "crm2", "headers": {"Content-Type": null}, "timeout_ms": 5000});
    let (status, after) = app
        .call("PATCH", &format!("/webhooks/{id}"), Some(patch))
        .await;
    assert_eq!(status, StatusCode::OK, "{after}");
    assert_eq!(after["name"], "crm2");
    assert_eq!(after["url"], w["url"]);
    assert_eq!(after["headers"], json!({"Content-Type": null}));
    assert_eq!(after["timeout_ms"], 5000);
    let (_, secret) = app.get(&format!("/webhooks/{id}/secret")).await;
    assert_eq!(secret, before, "a patch without `secret` keeps it");
    let (status, _) = app
        .call(
            "PATCH",
            &format!("/webhooks/{id}"),
            Some(json!({"timeout_ms": null})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, got) = app.get(&format!("/webhooks/{id}")).await;
    assert_eq!(got["timeout_ms"], Value::Null);
    let auth = json!({"auth": {"type": "bearer", "token": "t0k"}});
    let (_, got) = app
        .call("PATCH", &format!("/webhooks/{id}"), Some(auth))
        .await;
    assert_eq!(got["auth"], json!({"type": "bearer", "token": "****"}));
    let (_, got) = app
        .call(
            "PATCH",
            &format!("/webhooks/{id}"),
            Some(json!({"auth": null})),
        )
        .await;
    assert_eq!(got["auth"], json!({"type": "none"}), "null resets auth");
}

backend_test!(enable_disable_and_delete);
async fn enable_disable_and_delete(b: Backend) {
    let app = spawn_app(&b).await;
    let id = app.create_webhook(minimal()).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, w) = app
        .post(&format!("/webhooks/{id}/disable"), json!({}))
        .await;
    assert_eq!(w["active"], false);
    let (_, w) = app.post(&format!("/webhooks/{id}/enable"), json!({})).await;
    assert_eq!(w["active"], true);
    let (status, _) = app.call("DELETE", &format!("/webhooks/{id}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app.get(&format!("/webhooks/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
    let (status, _) = app.call("DELETE", &format!("/webhooks/{id}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

backend_test!(rotation_returns_a_new_secret);
async fn rotation_returns_a_new_secret(b: Backend) {
    let app = spawn_app(&b).await;
    let id = app.create_webhook(minimal()).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, old) = app.get(&format!("/webhooks/{id}/secret")).await;
    let (status, new) = app
        .post(&format!("/webhooks/{id}/rotate-secret"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(old, new);
    let (_, now) = app.get(&format!("/webhooks/{id}/secret")).await;
    assert_eq!(now, new);
}

backend_test!(bad_input_is_refused_naming_the_field);
async fn bad_input_is_refused_naming_the_field(b: Backend) {
    let app = spawn_app(&b).await;
    let cases: Vec<(Value, u16, &str)> = vec![
        (json!({"name": "", "url": "http://a.example/"}), 422, "name"),
        (json!({"name": "x", "url": "ftp://a.example/"}), 422, "url"),
        (json!({"name": "x", "url": "not a url"}), 422, "url"),
        (
            json!({"name": "x", "url": "https://u:p@a.example/"}),
            422,
            "url",
        ),
        (json!({"name": "x"}), 422, "url"),
        (json!({"name": 5, "url": "http://a.example/"}), 422, "name"),
        (
            json!({"name": "x", "url": "http://a.example/", "colour": 1}),
            422,
            "colour",
        ),
        (
            json!({"name": "x", "url": "http://a.example/", "method": "FETCH"}),
            422,
            "method",
        ),
        (
            json!({"name": "x", "url": "http://a.example/", "headers": {"Bad Name": "v"}}),
            422,
            "headers.Bad Name",
        ),
        (
            json!({"name": "x", "url": "http://a.example/", "headers": {"Host": "v"}}),
            422,
            "headers.Host",
        ),
        (
            json!({"name": "x", "url": "http://a.example/", "secret": "whsec_"}),
            422,
            "secret",
        ),
        (
            json!({"name": "x", "url": "http://a.example/", "timeout_ms": 0}),
            422,
            "timeout_ms",
        ),
        (
            json!({"name": "x", "url": "http://a.example/", "max_attempts": 99}),
            422,
            "max_attempts",
        ),
        (
            json!({"name": "x", "url": "http://a.example/", "retry_schedule": []}),
            422,
            "retry_schedule",
        ),
        (
            json!({"name": "x", "url": "http://a.example/", "signature": {"scheme": "rot13"}}),
            422,
            "signature",
        ),
        (
            json!({"name": "x", "url": "http://a.example/", "auth": {"type": "bearer", "token": ""}}),
            422,
            "auth.token",
        ),
        (
            json!({"name": "x", "url": "http://a.example/", "events": [{"type": "a b"}]}),
            422,
            "events[0].type",
        ),
    ];
    for (body, status, field) in cases {
        let (got, err) = app.post("/webhooks", body.clone()).await;
        assert_eq!(got.as_u16(), status, "{body} → {err}");
        let named = err["error"]["field"].as_str().unwrap_or("");
        assert!(named == field || named.starts_with(field), "{body}: {err}");
        assert!(!err["error"]["message"].as_str().unwrap().is_empty());
    }
    let resp = app
        .client
        .post(app.url("/webhooks"))
        .bearer_auth(crate::support::TOKEN)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let (_, list) = app.get("/webhooks").await;
    assert_eq!(list["data"], json!([]), "nothing was half-written");
}

backend_test!(bad_ids_cursors_and_limits);
async fn bad_ids_cursors_and_limits(b: Backend) {
    let app = spawn_app(&b).await;
    let (status, _) = app.get("/webhooks/wh_01JD8Z0Q9V4W6XKJ3M2N5P7R8S").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.get("/webhooks/garbage").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for (q, field) in [
        ("limit=0", "limit"),
        ("limit=abc", "limit"),
        ("limit=1001", "limit"),
        ("cursor=zzz", "cursor"),
    ] {
        let (status, err) = app.get(&format!("/webhooks?{q}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{q}");
        assert_eq!(err["error"]["field"], field);
    }
    let (status, err) = app.get("/deliveries?status=done").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err["error"]["field"], "status");
}

backend_test!(oversized_bodies_get_413);
async fn oversized_bodies_get_413(b: Backend) {
    let app = spawn_app(&b).await;
    let big = "x".repeat(2 * 1024 * 1024);
    let (status, err) = app
        .post("/events", json!({"type": "a.b", "data": big}))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(err["error"]["code"], "payload_too_large");
}

/// Publishes one event and waits until its one delivery reaches `status`.
async fn deliver_one(app: &TestApp, status: &'static str) {
    let (_, out) = app
        .post("/events", json!({"type": "x.y", "data": {}}))
        .await;
    let ds = app.deliveries_of(out["id"].as_str().unwrap()).await;
    assert_eq!(ds.len(), 1, "{ds:?}");
    app.wait_delivery(ds[0]["id"].as_str().unwrap(), |d| d["status"] == status)
        .await;
}

backend_test!(stats_count_recent_deliveries_per_webhook);
async fn stats_count_recent_deliveries_per_webhook(b: Backend) {
    let app = spawn_app(&b).await;
    let rx = TestReceiver::start().await;
    rx.script([Reply::status(200), Reply::status(500)]);
    let busy = app
        .create_webhook(json!({"name": "busy", "url": rx.url("/"), "max_attempts": 1}))
        .await;
    deliver_one(&app, "succeeded").await;
    deliver_one(&app, "failed").await;
    let idle = app.create_webhook(minimal()).await;
    let [busy, idle] = [&busy, &idle].map(|w| w["id"].as_str().unwrap().to_owned());

    let (status, body) = app.get(&format!("/webhooks/stats?ids={idle},{busy}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let data = body["data"].as_array().unwrap();
    assert_eq!(
        data[0],
        json!({"webhook_id": idle, "last_status": null, "last_at": null,
               "succeeded": 0, "failed": 0, "pending": 0, "success_rate": null})
    );
    let s = &data[1];
    assert_eq!(s["webhook_id"], busy.as_str());
    assert_eq!(s["last_status"], "failed", "the newest delivery");
    assert!(hookd_core::time::parse_rfc3339(s["last_at"].as_str().unwrap()).is_some());
    assert_eq!(
        [
            &s["succeeded"],
            &s["failed"],
            &s["pending"],
            &s["success_rate"]
        ],
        [&json!(1), &json!(1), &json!(0), &json!(0.5)]
    );

    // A window that starts later counts nothing but still shows the newest delivery.
    let later = "2999-01-01T00:00:00Z";
    let (_, body) = app
        .get(&format!("/webhooks/stats?ids={busy}&since={later}"))
        .await;
    let s = &body["data"][0];
    assert_eq!((&s["succeeded"], &s["failed"]), (&json!(0), &json!(0)));
    assert_eq!(
        (&s["last_status"], &s["success_rate"]),
        (&json!("failed"), &Value::Null)
    );
}

backend_test!(stats_reject_bad_ids_and_times);
async fn stats_reject_bad_ids_and_times(b: Backend) {
    let app = spawn_app(&b).await;
    let too_many = vec![hookd_core::WebhookId::generate(1).to_string(); 1001].join(",");
    for (query, field) in [
        ("ids=wh_nope,ev_1".to_owned(), "ids"),
        ("ids=garbage".to_owned(), "ids"),
        (format!("ids={too_many}"), "ids"),
        ("ids=&since=yesterday".to_owned(), "since"),
    ] {
        let (status, err) = app.get(&format!("/webhooks/stats?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {err}");
        assert_eq!(err["error"]["field"], field, "{query}");
    }
    let (status, body) = app.get("/webhooks/stats").await;
    assert_eq!((status, body), (StatusCode::OK, json!({"data": []})));
}
