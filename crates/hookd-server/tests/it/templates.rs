//! Conditions, templated bodies (json, form, text) and preview, end to end through the API, the
//! worker and a real receiver.

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::backend_test;
use crate::support::{spawn_app, Backend, TestApp, TestReceiver};

/// Publishes `event` and returns its id and how many deliveries it queued.
async fn publish(app: &TestApp, event: Value) -> (String, u64) {
    let (status, out) = app.post("/events", event).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{out}");
    let id = out["id"].as_str().unwrap().to_owned();
    (id, out["deliveries"].as_u64().unwrap())
}

/// Publishes `event`, which must queue exactly one delivery, and returns what the receiver got.
async fn deliver_one(app: &TestApp, rx: &TestReceiver, event: Value) -> crate::support::Received {
    let (_, n) = publish(app, event).await;
    assert_eq!(n, 1);
    rx.wait_for(1).await.remove(0)
}

backend_test!(a_frappe_condition_decides_whether_the_webhook_fires);
async fn a_frappe_condition_decides_whether_the_webhook_fires(b: Backend) {
    let app = spawn_app(&b).await;
    let rx = TestReceiver::start().await;
    let w = app
        .create_webhook(json!({"name": "leads", "url": rx.url("/in"),
            "events": [{"type": "doc.*", "model": "Lead"}],
            "condition": "doc.status == \"Open\""}))
        .await;
    assert_eq!(w["condition"], "doc.status == \"Open\"");
    let lead =
        |status: &str| json!({"type": "doc.update", "model": "Lead", "data": {"status": status}});
    assert_eq!(publish(&app, lead("Closed")).await.1, 0);
    assert_eq!(
        publish(&app, json!({"type": "doc.update", "model": "Lead"}))
            .await
            .1,
        0
    );
    assert_eq!(publish(&app, lead("Open")).await.1, 1);
    let got = rx.wait_for(1).await;
    assert_eq!(got[0].json()["data"]["status"], "Open");
    // `null` removes the condition: every matching event fires again.
    let path = format!("/webhooks/{}", w["id"].as_str().unwrap());
    let (status, w) = app
        .call("PATCH", &path, Some(json!({"condition": null})))
        .await;
    assert_eq!(status, StatusCode::OK, "{w}");
    assert_eq!(w["condition"], Value::Null);
    assert_eq!(publish(&app, lead("Closed")).await.1, 1);
}

backend_test!(a_json_template_arrives_exactly_as_rendered);
async fn a_json_template_arrives_exactly_as_rendered(b: Backend) {
    let app = spawn_app(&b).await;
    let rx = TestReceiver::start().await;
    let template = r#"{"name": {{ doc.name | tojson }}, "total": {{ doc.grand_total }}, "type": "{{ event.type }}", "hook": "{{ webhook.name }}"}"#;
    let w = app
        .create_webhook(json!({"name": "erp", "url": rx.url("/in"),
            "body": {"format": "json", "template": template}}))
        .await;
    assert_eq!(w["body"], json!({"format": "json", "template": template}));
    let data = json!({"name": "Q-\"1\" </x>", "grand_total": 1500});
    let r = deliver_one(&app, &rx, json!({"type": "doc.submit", "data": data})).await;
    let want =
        r#"{"name": "Q-\"1\" \u003c/x\u003e", "total": 1500, "type": "doc.submit", "hook": "erp"}"#;
    assert_eq!(std::str::from_utf8(&r.body).unwrap(), want);
    assert_eq!(r.json()["name"], "Q-\"1\" </x>");
    assert_eq!(r.header("content-type"), Some("application/json"));
}

backend_test!(a_form_body_arrives_urlencoded);
async fn a_form_body_arrives_urlencoded(b: Backend) {
    let app = spawn_app(&b).await;
    let rx = TestReceiver::start().await;
    app.create_webhook(json!({"name": "form", "url": rx.url("/in"),
        "body": {"format": "form", "fields": [
            {"key": "name", "value": "{{ doc.name }}"},
            {"key": "note", "value": "a&b = {{ doc.total }} €"}]}}))
        .await;
    let event = json!({"type": "doc.update", "data": {"name": "LEAD 1", "total": 3}});
    let r = deliver_one(&app, &rx, event).await;
    assert_eq!(
        r.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(&r.body[..], b"name=LEAD+1&note=a%26b+%3D+3+%E2%82%AC");
}

backend_test!(text_bodies_are_sent_as_rendered_with_the_configured_content_type);
async fn text_bodies_are_sent_as_rendered_with_the_configured_content_type(b: Backend) {
    let app = spawn_app(&b).await;
    let slack = TestReceiver::start().await;
    let plain = TestReceiver::start().await;
    app.create_webhook(json!({"name": "slack", "url": slack.url("/services/x"),
        "body": {"format": "text", "template": "{\"text\": \"New lead {{ doc.name }}\"}"}}))
        .await;
    app.create_webhook(json!({"name": "plain", "url": plain.url("/"),
        "headers": {"Content-Type": "text/plain; charset=utf-8"},
        "body": {"format": "text", "template": "{{ doc.name }} is {{ doc.status }}"}}))
        .await;
    let (_, n) = publish(
        &app,
        json!({"type": "doc.new", "data": {"name": "Ada", "status": "Open"}}),
    )
    .await;
    assert_eq!(n, 2);
    let s = slack.wait_for(1).await.remove(0);
    assert_eq!(&s.body[..], br#"{"text": "New lead Ada"}"#);
    assert_eq!(s.header("content-type"), Some("application/json"));
    let p = plain.wait_for(1).await.remove(0);
    assert_eq!(&p.body[..], b"Ada is Open");
    assert_eq!(p.header("content-type"), Some("text/plain; charset=utf-8"));
}

backend_test!(a_template_rendering_invalid_json_fails_at_once_as_invalid_payload);
async fn a_template_rendering_invalid_json_fails_at_once_as_invalid_payload(b: Backend) {
    let app = spawn_app(&b).await;
    let rx = TestReceiver::start().await;
    app.create_webhook(json!({"name": "bad", "url": rx.url("/"), "max_attempts": 5,
        "body": {"format": "json", "template": "{\"name\": {{ doc.name }}}"}}))
        .await;
    let (event, _) = publish(&app, json!({"type": "a.b", "data": {"name": "not quoted"}})).await;
    let dlv = app.deliveries_of(&event).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let d = app.wait_delivery(&dlv, |d| d["status"] == "failed").await;
    assert_eq!(d["attempt_count"], 1, "not retried: {d}");
    let a = &d["attempts"][0];
    assert_eq!(a["error_kind"], "invalid_payload", "{d}");
    let error = a["error"].as_str().unwrap();
    assert!(
        error.starts_with("body.template: rendered invalid JSON"),
        "{error}"
    );
    assert!(rx.received().is_empty());
}

backend_test!(templates_and_conditions_that_do_not_compile_are_refused_naming_the_field);
async fn templates_and_conditions_that_do_not_compile_are_refused_naming_the_field(b: Backend) {
    let app = spawn_app(&b).await;
    let base = json!({"name": "x", "url": "https://example.com/h"});
    let cases = [
        (
            json!({"condition": "doc.status =="}),
            "condition",
            "line 1, column",
        ),
        (
            json!({"body": {"format": "json", "template": "{\n\"a\": {{ doc.a }\n}"}}),
            "body.template",
            "line 2",
        ),
        (
            json!({"body": {"format": "text", "template": "{% if x %}"}}),
            "body.template",
            "line 1",
        ),
        (
            json!({"body": {"format": "form", "fields": [{"key": "a", "value": "ok"},
                {"key": "b", "value": "{% for %}"}]}}),
            "body.fields[1].value",
            "line 1",
        ),
        (
            json!({"body": {"format": "form", "fields": [{"key": "", "value": "v"}]}}),
            "body.fields[0].key",
            "empty",
        ),
        (
            json!({"body": {"format": "json"}}),
            "body.template",
            "required",
        ),
        (json!({"body": {"format": "xml"}}), "body.format", "json"),
        (
            json!({"body": {"format": "json", "template": "{}", "fields": []}}),
            "body.fields",
            "form",
        ),
    ];
    for (extra, field, message) in cases {
        let mut body = base.clone();
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let (status, out) = app.post("/webhooks", body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{extra}: {out}");
        assert_eq!(out["error"]["field"], field, "{extra}: {out}");
        let got = out["error"]["message"].as_str().unwrap();
        assert!(got.contains(message), "{extra}: {got}");
    }
}

/// The headers that differ per delivery (id, time and what is signed with them).
const PER_DELIVERY: [&str; 3] = ["webhook-id", "webhook-timestamp", "webhook-signature"];

backend_test!(preview_of_a_saved_webhook_is_what_the_receiver_gets);
async fn preview_of_a_saved_webhook_is_what_the_receiver_gets(b: Backend) {
    let app = spawn_app(&b).await;
    let rx = TestReceiver::start().await;
    let w = app
        .create_webhook(json!({"name": "crm", "url": rx.url("/hooks/crm?x=1"),
            "auth": {"type": "api_key", "header": "X-Api-Key", "value": "k-secret"},
            "headers": {"X-Tenant": "acme"},
            "body": {"format": "json",
                     "template": "{\"doc\": {{ doc | tojson }}, \"model\": {{ event.model | tojson }}}"}}))
        .await;
    let event =
        json!({"type": "doc.update", "model": "Lead", "data": {"name": "L-1", "n": [1, 2]}});
    let path = format!("/webhooks/{}/preview", w["id"].as_str().unwrap());
    let (status, preview) = app.post(&path, json!({"event": event})).await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert!(rx.received().is_empty(), "a preview sends nothing");
    assert!(!preview.to_string().contains("k-secret"), "{preview}");
    let got = deliver_one(&app, &rx, event).await;
    assert_eq!(preview["method"], got.method.as_str());
    assert_eq!(preview["url"], rx.url("/hooks/crm?x=1"));
    assert_eq!(preview["body"], std::str::from_utf8(&got.body).unwrap());
    for h in preview["headers"].as_array().unwrap() {
        let (name, value) = (h[0].as_str().unwrap(), h[1].as_str().unwrap());
        if name.eq_ignore_ascii_case("x-api-key") {
            assert_eq!(value, "****");
            assert_eq!(got.header(name), Some("k-secret"));
        } else if !PER_DELIVERY.contains(&name) {
            assert_eq!(got.header(name), Some(value), "{name}");
        } else {
            assert!(got.header(name).is_some(), "{name}");
        }
    }
}

backend_test!(preview_of_an_unsaved_webhook_renders_and_reports_errors_by_field);
async fn preview_of_an_unsaved_webhook_renders_and_reports_errors_by_field(b: Backend) {
    let app = spawn_app(&b).await;
    let webhook = json!({"name": "draft", "url": "https://example.com/h",
        "signature": {"scheme": "none"},
        "body": {"format": "form", "fields": [{"key": "id", "value": "{{ data.id }}"},
                                              {"key": "dlv", "value": "{{ delivery.id }}"}]}});
    let (status, p) = app
        .post(
            "/webhooks/preview",
            json!({"webhook": webhook, "event": {"type": "x.y", "data": {"id": 7}}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{p}");
    assert_eq!(p["method"], "POST");
    assert_eq!(p["url"], "https://example.com/h");
    assert_eq!(p["body"], "id=7&dlv=dlv_preview");
    let ct = ["Content-Type", "application/x-www-form-urlencoded"];
    assert!(p["headers"].as_array().unwrap().contains(&json!(ct)), "{p}");
    let (_, list) = app.get("/webhooks").await;
    assert_eq!(list["data"], json!([]), "nothing is saved");
    // The default event is a `webhook.test` event.
    let plain = json!({"name": "d", "url": "https://example.com/h"});
    let (status, p) = app
        .post("/webhooks/preview", json!({"webhook": plain}))
        .await;
    assert_eq!(status, StatusCode::OK, "{p}");
    let body: Value = serde_json::from_str(p["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["type"], "webhook.test");
    // A template that compiles but fails to render is a 422 naming the field.
    let bad = json!({"name": "d", "url": "https://example.com/h",
        "body": {"format": "json", "template": "{{ data.missing.deeper }}"}});
    let (status, e) = app.post("/webhooks/preview", json!({"webhook": bad})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert_eq!(e["error"]["field"], "body.template");
    let path = "/webhooks/preview";
    let (status, e) = app
        .post(path, json!({"webhook": plain, "event": {"type": "a..b"}}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert_eq!(e["error"]["field"], "event.type");
    let (_, doc) = app.get("/openapi.json").await;
    for path in ["/api/v1/webhooks/preview", "/api/v1/webhooks/{id}/preview"] {
        assert!(
            doc["paths"][path]["post"].is_object(),
            "{path} is documented"
        );
    }
}
