//! End-to-end delivery through the worker to a real receiver: signatures, payloads, headers,
//! retries, failure handling and the deliveries API.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use hookd_core::signature::{verify_ed25519, verify_standard};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::backend_test;
use crate::support::{spawn_app, spawn_app_with, test_settings, Backend, Reply, TestReceiver};

fn status_is(want: &'static str) -> impl Fn(&Value) -> bool {
    move |d| d["status"] == want
}

async fn publish_one(app: &crate::support::TestApp, event: Value) -> String {
    let (_, out) = app.post("/events", event).await;
    let id = out["id"].as_str().unwrap().to_owned();
    let ds = app.deliveries_of(&id).await;
    assert_eq!(ds.len(), 1, "{ds:?}");
    ds[0]["id"].as_str().unwrap().to_owned()
}

backend_test!(delivers_a_signed_standard_payload);
async fn delivers_a_signed_standard_payload(b: Backend) {
    let app = spawn_app(&b).await;
    let rx = TestReceiver::start().await;
    let w = app
        .create_webhook(json!({"name": "r", "url": rx.url("/in"),
        "auth": {"type": "bearer", "token": "tok-secret"}, "headers": {"X-Tenant": "acme"}}))
        .await;
    let (_, secret) = app
        .get(&format!("/webhooks/{}/secret", w["id"].as_str().unwrap()))
        .await;
    let dlv = publish_one(
        &app,
        json!({"type": "invoice.paid", "data": {"amount": 42}}),
    )
    .await;
    let got = rx.wait_for(1).await;
    let r = &got[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/in"));
    assert_eq!(r.header("webhook-id"), Some(dlv.as_str()));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-tenant"), Some("acme"));
    assert_eq!(r.header("authorization"), Some("Bearer tok-secret"));
    assert!(r.header("user-agent").unwrap().starts_with("hookd/"));
    let ts = r
        .header("webhook-timestamp")
        .unwrap()
        .parse::<i64>()
        .unwrap();
    verify_standard(
        secret["secret"].as_str().unwrap(),
        r.header("webhook-id"),
        r.header("webhook-timestamp"),
        r.header("webhook-signature"),
        &r.body,
        ts,
    )
    .expect("signature verifies");
    let body = r.json();
    assert_eq!(body["type"], "invoice.paid");
    assert_eq!(body["data"], json!({"amount": 42}));
    let d = app.wait_delivery(&dlv, status_is("succeeded")).await;
    assert_eq!(d["attempt_count"], 1);
    let a = &d["attempts"][0];
    assert_eq!(a["response"]["status"], 200);
    let headers = a["request"]["headers"].as_array().unwrap();
    let auth = headers.iter().find(|h| h[0] == "Authorization").unwrap();
    assert_eq!(
        auth[1], "Bearer ****",
        "secrets are masked in the attempt record"
    );
    assert!(!d.to_string().contains("tok-secret"));
}

backend_test!(strapi_events_get_strapi_payloads_and_default_headers_merge);
async fn strapi_events_get_strapi_payloads_and_default_headers_merge(b: Backend) {
    let mut settings = test_settings();
    settings.default_headers = vec![
        ("X-Env".into(), "prod".into()),
        ("X-Source".into(), "hookd".into()),
    ];
    let app = spawn_app_with(&b, settings, hookd_server::WorkerMode::Embedded).await;
    let rx = TestReceiver::start().await;
    app.create_webhook(json!({"name": "strapi", "url": rx.url("/s"),
        "headers": {"x-env": "staging", "Content-Type": null}}))
        .await;
    publish_one(
        &app,
        json!({"type": "entry.create", "model": "address",
        "data": {"id": 1, "city": "Paris"}, "occurred_at": "2020-01-10T08:47:36.649Z"}),
    )
    .await;
    let r = &rx.wait_for(1).await[0];
    assert_eq!(
        r.json(),
        json!({"event": "entry.create", "created_at": "2020-01-10T08:47:36.649Z",
        "model": "address", "entry": {"id": 1, "city": "Paris"}})
    );
    assert_eq!(r.header("x-env"), Some("staging"));
    assert_eq!(r.header("x-source"), Some("hookd"));
    assert_eq!(r.header("content-type"), None);
}

backend_test!(failures_are_retried_until_success);
async fn failures_are_retried_until_success(b: Backend) {
    let app = spawn_app(&b).await;
    let rx = TestReceiver::start().await;
    rx.script([Reply::status(500), Reply::status(302)]);
    app.create_webhook(json!({"name": "r", "url": rx.url("/"), "retry_schedule": [0]}))
        .await;
    let dlv = publish_one(&app, json!({"type": "a.b"})).await;
    let d = app.wait_delivery(&dlv, status_is("succeeded")).await;
    let statuses: Vec<_> = d["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["response"]["status"].clone())
        .collect();
    assert_eq!(statuses, vec![json!(500), json!(302), json!(200)]);
    let ids: Vec<_> = rx
        .received()
        .iter()
        .map(|r| r.header("webhook-id").unwrap().to_owned())
        .collect();
    assert_eq!(
        ids,
        vec![dlv.clone(), dlv.clone(), dlv],
        "webhook-id is stable across retries"
    );
}

backend_test!(exhausted_attempts_fail_the_delivery);
async fn exhausted_attempts_fail_the_delivery(b: Backend) {
    let app = spawn_app(&b).await;
    let rx = TestReceiver::start().await;
    rx.always(Reply::status(500));
    app.create_webhook(
        json!({"name": "r", "url": rx.url("/"), "retry_schedule": [0], "max_attempts": 3}),
    )
    .await;
    let dlv = publish_one(&app, json!({"type": "a.b"})).await;
    let d = app.wait_delivery(&dlv, status_is("failed")).await;
    assert_eq!(d["attempt_count"], 3);
    assert_eq!(rx.received().len(), 3);
}

backend_test!(gone_disables_the_webhook_with_a_reason);
async fn gone_disables_the_webhook_with_a_reason(b: Backend) {
    let app = spawn_app(&b).await;
    let rx = TestReceiver::start().await;
    rx.always(Reply::status(410));
    let w = app
        .create_webhook(json!({"name": "r", "url": rx.url("/")}))
        .await;
    let dlv = publish_one(&app, json!({"type": "a.b"})).await;
    app.wait_delivery(&dlv, status_is("failed")).await;
    let (_, w) = app
        .get(&format!("/webhooks/{}", w["id"].as_str().unwrap()))
        .await;
    assert_eq!(w["active"], false);
    assert!(w["disabled_reason"].as_str().unwrap().contains("410"));
    let (_, out) = app.post("/events", json!({"type": "a.b"})).await;
    assert_eq!(out["deliveries"], 0, "a disabled webhook gets nothing");
}

backend_test!(retry_after_is_honoured_within_the_clamp);
async fn retry_after_is_honoured_within_the_clamp(b: Backend) {
    let app = spawn_app(&b).await;
    let rx = TestReceiver::start().await;
    let mut busy = Reply::status(429);
    busy.headers = vec![("retry-after", "1".into())];
    rx.script([busy]);
    // Scheduled delay 3600 s; the receiver asks for 1 s, which is within twice the schedule.
    app.create_webhook(json!({"name": "r", "url": rx.url("/"), "retry_schedule": [3600]}))
        .await;
    let dlv = publish_one(&app, json!({"type": "a.b"})).await;
    let d = app.wait_delivery(&dlv, status_is("succeeded")).await;
    assert_eq!(d["attempt_count"], 2);
}

backend_test!(transport_errors_are_recorded_and_retried);
async fn transport_errors_are_recorded_and_retried(b: Backend) {
    let app = spawn_app(&b).await;
    let rx = TestReceiver::start().await;
    let mut slow = Reply::status(200);
    slow.delay = Duration::from_secs(3);
    rx.script([slow]);
    app.create_webhook(
        json!({"name": "slow", "url": rx.url("/"), "timeout_ms": 300, "events": [{"type": "a.*"}], "retry_schedule": [0]}),
    )
    .await;
    let dlv = publish_one(&app, json!({"type": "a.b"})).await;
    let d = app.wait_delivery(&dlv, status_is("succeeded")).await;
    assert_eq!(d["attempts"][0]["error_kind"], "timeout");
    assert_eq!(d["attempts"][0]["response"], Value::Null);

    // Nothing listens on this port: connection refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    app.create_webhook(json!({"name": "down", "url": format!("http://{closed}/"),
        "events": [{"type": "down.*"}], "retry_schedule": [3600]}))
        .await;
    let dlv = publish_one(&app, json!({"type": "down.x"})).await;
    let d = app.wait_delivery(&dlv, status_is("retrying")).await;
    assert_eq!(d["attempts"][0]["error_kind"], "connect");
    assert!(d["next_attempt_at"].is_string());
}

backend_test!(a_status_counts_even_when_the_body_after_it_breaks_off);
async fn a_status_counts_even_when_the_body_after_it_breaks_off(b: Backend) {
    let app = spawn_app(&b).await;
    // A receiver that answers 200, promises 100 bytes of body, sends 7 and closes.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = vec![0; 65536];
            let _ = socket.read(&mut request).await;
            let _ = socket
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
                .await;
        }
    });
    app.create_webhook(json!({"name": "short", "url": format!("http://{addr}/"),
        "events": [{"type": "short.*"}], "retry_schedule": [3600]}))
        .await;
    let dlv = publish_one(&app, json!({"type": "short.x"})).await;
    let d = app
        .wait_delivery(&dlv, |d| d["attempt_count"].as_u64() >= Some(1))
        .await;
    assert_eq!(d["status"], "succeeded", "{d}");
    let response = &d["attempts"][0]["response"];
    assert_eq!(response["status"], 200);
    assert_eq!(response["body"], "partial");
    assert_eq!(response["body_truncated"], true);
}

backend_test!(test_endpoint_sends_now_and_returns_the_attempt);
async fn test_endpoint_sends_now_and_returns_the_attempt(b: Backend) {
    let app = spawn_app(&b).await;
    let rx = TestReceiver::start().await;
    let mut reply = Reply::status(202);
    reply.body = "thanks".into();
    rx.script([reply]);
    let w = app
        .create_webhook(json!({"name": "r", "url": rx.url("/t"), "active": false}))
        .await;
    let (status, a) = app
        .post(
            &format!("/webhooks/{}/test", w["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    assert_eq!(status.as_u16(), 200, "{a}");
    assert_eq!(a["response"]["status"], 202);
    assert_eq!(a["response"]["body"], "thanks");
    assert_eq!(rx.received()[0].json()["type"], "webhook.test");
    let d = app
        .wait_delivery(a["delivery_id"].as_str().unwrap(), status_is("succeeded"))
        .await;
    assert_eq!(d["attempts"].as_array().unwrap().len(), 1);
}

backend_test!(retry_endpoint_sends_a_failed_delivery_again);
async fn retry_endpoint_sends_a_failed_delivery_again(b: Backend) {
    let app = spawn_app(&b).await;
    let rx = TestReceiver::start().await;
    rx.script([Reply::status(500)]);
    app.create_webhook(json!({"name": "r", "url": rx.url("/"), "max_attempts": 1}))
        .await;
    let dlv = publish_one(&app, json!({"type": "a.b"})).await;
    app.wait_delivery(&dlv, status_is("failed")).await;
    let (status, d) = app
        .post(&format!("/deliveries/{dlv}/retry"), json!({}))
        .await;
    assert_eq!(status.as_u16(), 202, "{d}");
    let d = app.wait_delivery(&dlv, status_is("succeeded")).await;
    assert_eq!(d["attempt_count"], 2);
    let (status, _) = app
        .post(
            "/deliveries/dlv_01JD8Z0Q9V4W6XKJ3M2N5P7R8S/retry",
            json!({}),
        )
        .await;
    assert_eq!(status.as_u16(), 404);
}

backend_test!(rotated_secret_keeps_signing_beside_the_new_one);
async fn rotated_secret_keeps_signing_beside_the_new_one(b: Backend) {
    let app = spawn_app(&b).await;
    let rx = TestReceiver::start().await;
    let w = app
        .create_webhook(json!({"name": "r", "url": rx.url("/")}))
        .await;
    let id = w["id"].as_str().unwrap();
    let (_, old) = app.get(&format!("/webhooks/{id}/secret")).await;
    let (_, new) = app
        .post(&format!("/webhooks/{id}/rotate-secret"), json!({}))
        .await;
    publish_one(&app, json!({"type": "a.b"})).await;
    let r = &rx.wait_for(1).await[0];
    let sig = r.header("webhook-signature").unwrap();
    assert_eq!(sig.split(' ').count(), 2, "{sig}");
    let ts = r
        .header("webhook-timestamp")
        .unwrap()
        .parse::<i64>()
        .unwrap();
    for s in [&old, &new] {
        verify_standard(
            s["secret"].as_str().unwrap(),
            r.header("webhook-id"),
            r.header("webhook-timestamp"),
            Some(sig),
            &r.body,
            ts,
        )
        .unwrap();
    }
}

backend_test!(deleting_a_webhook_cancels_its_pending_deliveries);
async fn deleting_a_webhook_cancels_its_pending_deliveries(b: Backend) {
    let app = spawn_app(&b).await;
    let rx = TestReceiver::start().await;
    rx.always(Reply::status(500));
    let w = app
        .create_webhook(json!({"name": "r", "url": rx.url("/"), "retry_schedule": [3600]}))
        .await;
    let dlv = publish_one(&app, json!({"type": "a.b"})).await;
    app.wait_delivery(&dlv, status_is("retrying")).await;
    app.call(
        "DELETE",
        &format!("/webhooks/{}", w["id"].as_str().unwrap()),
        None,
    )
    .await;
    let (_, d) = app.get(&format!("/deliveries/{dlv}")).await;
    assert_eq!(d["status"], "cancelled");
    let (_, list) = app.get("/deliveries?status=cancelled").await;
    assert_eq!(list["data"][0]["id"], dlv.as_str());
    let (status, err) = app
        .post(&format!("/deliveries/{dlv}/retry"), json!({}))
        .await;
    assert_eq!(status.as_u16(), 409, "{err}");
}

backend_test!(a_webhook_failing_for_the_whole_window_is_disabled);
async fn a_webhook_failing_for_the_whole_window_is_disabled(b: Backend) {
    let mut settings = test_settings();
    // The window is 5 days by default; a tiny one shows the rule without waiting.
    settings.delivery.disable_after = Duration::from_millis(1);
    let app = spawn_app_with(&b, settings, hookd_server::WorkerMode::Embedded).await;
    let rx = TestReceiver::start().await;
    rx.always(Reply::status(500));
    let w = app
        .create_webhook(
            json!({"name": "dead", "url": rx.url("/"), "retry_schedule": [0], "max_attempts": 5}),
        )
        .await;
    let dlv = publish_one(&app, json!({"type": "a.b"})).await;
    app.wait_delivery(&dlv, |d| d["attempt_count"].as_u64() >= Some(2))
        .await;
    let id = w["id"].as_str().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, w) = app.get(&format!("/webhooks/{id}")).await;
        if w["active"] == false {
            assert!(
                w["disabled_reason"]
                    .as_str()
                    .unwrap()
                    .contains("failing since"),
                "{w}"
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never disabled: {w}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Enabling it again clears the reason and the failure clock.
    let (_, w) = app.post(&format!("/webhooks/{id}/enable"), json!({})).await;
    assert_eq!(w["active"], true);
    assert_eq!(w["disabled_reason"], Value::Null);
}

backend_test!(recover_sends_failed_deliveries_again);
async fn recover_sends_failed_deliveries_again(b: Backend) {
    let app = spawn_app(&b).await;
    let rx = TestReceiver::start().await;
    rx.script([Reply::status(500), Reply::status(500)]);
    let w = app
        .create_webhook(json!({"name": "r", "url": rx.url("/"), "max_attempts": 1}))
        .await;
    let id = w["id"].as_str().unwrap();
    let first = publish_one(&app, json!({"type": "a.b"})).await;
    let second = publish_one(&app, json!({"type": "a.b"})).await;
    for d in [&first, &second] {
        app.wait_delivery(d, status_is("failed")).await;
    }
    let path = format!("/webhooks/{id}/recover");
    let (status, err) = app.post(&path, json!({"since": "last week"})).await;
    assert_eq!(
        (status.as_u16(), err["error"]["field"].as_str()),
        (422, Some("since"))
    );
    let (status, out) = app
        .post(&path, json!({"since": "2000-01-01T00:00:00Z"}))
        .await;
    assert_eq!(status.as_u16(), 202, "{out}");
    assert_eq!(out["recovered"], 2);
    for d in [&first, &second] {
        app.wait_delivery(d, status_is("succeeded")).await;
    }
}

backend_test!(a_disabled_webhook_gets_nothing_more_until_recovered);
async fn a_disabled_webhook_gets_nothing_more_until_recovered(b: Backend) {
    let app = spawn_app(&b).await;
    let rx = TestReceiver::start().await;
    rx.script([Reply::status(500)]);
    let w = app
        .create_webhook(json!({"name": "r", "url": rx.url("/"), "retry_schedule": [1]}))
        .await;
    let id = w["id"].as_str().unwrap();
    let dlv = publish_one(&app, json!({"type": "a.b"})).await;
    app.wait_delivery(&dlv, status_is("retrying")).await;
    app.post(&format!("/webhooks/{id}/disable"), json!({}))
        .await;
    let d = app.wait_delivery(&dlv, status_is("failed")).await;
    assert_eq!(d["attempts"][1]["error_kind"], "webhook_disabled");
    assert_eq!(
        rx.received().len(),
        1,
        "nothing was sent to the disabled webhook"
    );
    app.post(&format!("/webhooks/{id}/enable"), json!({})).await;
    let (_, out) = app
        .post(
            &format!("/webhooks/{id}/recover"),
            json!({"since": "2000-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(out["recovered"], 1);
    app.wait_delivery(&dlv, status_is("succeeded")).await;
}

backend_test!(the_ssrf_guard_refuses_private_targets_without_retrying);
async fn the_ssrf_guard_refuses_private_targets_without_retrying(b: Backend) {
    let mut settings = test_settings();
    settings.delivery.allow_networks.clear();
    let app = spawn_app_with(&b, settings, hookd_server::WorkerMode::Embedded).await;
    let rx = TestReceiver::start().await;
    let port = rx.addr.port();
    let targets = [
        format!("http://127.0.0.1:{port}/"),
        format!("http://localhost:{port}/"),
        format!("http://2130706433:{port}/"),
        format!("http://[::1]:{port}/"),
        "http://169.254.169.254/latest/meta-data".to_string(),
    ];
    for (i, url) in targets.iter().enumerate() {
        let event_type = format!("guard.t{i}");
        app.create_webhook(
            json!({"name": "private", "url": url, "events": [{"type": event_type}]}),
        )
        .await;
        let dlv = publish_one(&app, json!({"type": event_type})).await;
        let d = app.wait_delivery(&dlv, status_is("failed")).await;
        assert_eq!(d["attempt_count"], 1, "{url}: not retried");
        assert_eq!(
            d["attempts"][0]["error_kind"], "blocked_address",
            "{url}: {d}"
        );
    }
    assert!(rx.received().is_empty(), "nothing reached the receiver");
}

/// HMAC-SHA256 of `body` keyed with `secret`, computed here independently of hookd.
fn body_hmac(secret: &str, body: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

async fn secret_of(app: &crate::support::TestApp, webhook: &Value) -> Value {
    let id = webhook["id"].as_str().unwrap();
    let (status, secret) = app.get(&format!("/webhooks/{id}/secret")).await;
    assert_eq!(status.as_u16(), 200, "{secret}");
    secret
}

backend_test!(an_ed25519_delivery_verifies_with_the_public_key_from_the_api);
async fn an_ed25519_delivery_verifies_with_the_public_key_from_the_api(b: Backend) {
    let app = spawn_app(&b).await;
    let rx = TestReceiver::start().await;
    let w = app
        .create_webhook(
            json!({"name": "r", "url": rx.url("/in"), "signature": {"scheme": "ed25519"}}),
        )
        .await;
    assert_eq!(w["signature"], json!({"scheme": "ed25519"}));
    let secret = secret_of(&app, &w).await;
    assert!(secret["secret"].as_str().unwrap().starts_with("whsk_"));
    let public_key = secret["public_key"].as_str().unwrap();
    assert!(public_key.starts_with("whpk_"), "{secret}");
    publish_one(&app, json!({"type": "a.b"})).await;
    let r = &rx.wait_for(1).await[0];
    let sig = r.header("webhook-signature").unwrap();
    assert!(sig.starts_with("v1a,"), "{sig}");
    let ts: i64 = r.header("webhook-timestamp").unwrap().parse().unwrap();
    let id = r.header("webhook-id");
    verify_ed25519(
        public_key,
        id,
        Some(&ts.to_string()),
        Some(sig),
        &r.body,
        ts,
    )
    .expect("signature verifies with the public key");
    let other = "whpk_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4=";
    assert!(verify_ed25519(other, id, Some(&ts.to_string()), Some(sig), &r.body, ts).is_err());
}

backend_test!(a_frappe_style_webhook_sends_the_base64_body_hmac);
async fn a_frappe_style_webhook_sends_the_base64_body_hmac(b: Backend) {
    let app = spawn_app(&b).await;
    let rx = TestReceiver::start().await;
    let w = app
        .create_webhook(
            json!({"name": "r", "url": rx.url("/in"), "secret": "frappe-secret",
            "signature": {"scheme": "hmac-sha256", "header": "X-Frappe-Webhook-Signature"}}),
        )
        .await;
    let want = json!({"scheme": "hmac-sha256", "header": "X-Frappe-Webhook-Signature",
        "encoding": "base64", "prefix": null});
    assert_eq!(w["signature"], want);
    let secret = secret_of(&app, &w).await;
    assert_eq!(secret, json!({"secret": "frappe-secret"}), "no public_key");
    publish_one(&app, json!({"type": "a.b"})).await;
    let r = &rx.wait_for(1).await[0];
    let sig = r.header("x-frappe-webhook-signature").unwrap();
    assert_eq!(sig, B64.encode(body_hmac("frappe-secret", &r.body)));
    assert_eq!(r.header("webhook-signature"), None);
}

backend_test!(a_github_style_webhook_sends_the_prefixed_hex_body_hmac);
async fn a_github_style_webhook_sends_the_prefixed_hex_body_hmac(b: Backend) {
    let app = spawn_app(&b).await;
    let rx = TestReceiver::start().await;
    let w = app
        .create_webhook(json!({"name": "r", "url": rx.url("/in"),
            "signature": {"scheme": "hmac-sha256", "header": "X-Hub-Signature-256",
                "encoding": "hex", "prefix": "sha256="}}))
        .await;
    let secret = secret_of(&app, &w).await;
    let secret = secret["secret"].as_str().unwrap();
    assert!(
        secret.len() >= 32 && !secret.starts_with("whsec_"),
        "{secret}"
    );
    publish_one(&app, json!({"type": "a.b"})).await;
    let r = &rx.wait_for(1).await[0];
    let hex: String = body_hmac(secret, &r.body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        r.header("x-hub-signature-256"),
        Some(format!("sha256={hex}").as_str())
    );
}

backend_test!(changing_the_scheme_replaces_a_secret_that_no_longer_fits);
async fn changing_the_scheme_replaces_a_secret_that_no_longer_fits(b: Backend) {
    let app = spawn_app(&b).await;
    let w = app
        .create_webhook(json!({"name": "r", "url": "http://a.example/"}))
        .await;
    let path = format!("/webhooks/{}", w["id"].as_str().unwrap());
    let standard = secret_of(&app, &w).await;
    let patch = json!({"signature": {"scheme": "ed25519"}});
    let (status, out) = app.call("PATCH", &path, Some(patch)).await;
    assert_eq!(status.as_u16(), 200, "{out}");
    let ed = secret_of(&app, &w).await;
    assert!(ed["secret"].as_str().unwrap().starts_with("whsk_"), "{ed}");
    assert!(ed["public_key"].as_str().unwrap().starts_with("whpk_"));
    let (_, rotated) = app.post(&format!("{path}/rotate-secret"), json!({})).await;
    assert!(rotated["public_key"].as_str().unwrap().starts_with("whpk_"));
    assert_ne!(rotated["secret"], ed["secret"]);
    // A whsk_ secret is any non-empty string to hmac-sha256: it is kept.
    let patch = json!({"signature": {"scheme": "hmac-sha256"}});
    app.call("PATCH", &path, Some(patch)).await;
    assert_eq!(secret_of(&app, &w).await["secret"], rotated["secret"]);
    // A given secret must fit the scheme.
    let patch = json!({"signature": {"scheme": "standard"}, "secret": "plain"});
    let (status, err) = app.call("PATCH", &path, Some(patch)).await;
    assert_eq!(
        (status.as_u16(), err["error"]["field"].as_str()),
        (422, Some("secret"))
    );
    let patch = json!({"signature": {"scheme": "standard"}});
    app.call("PATCH", &path, Some(patch)).await;
    assert!(secret_of(&app, &w).await["secret"]
        .as_str()
        .unwrap()
        .starts_with("whsec_"));
    assert_ne!(standard["secret"], rotated["secret"]);
}

backend_test!(bad_signature_configs_are_refused_naming_the_field);
async fn bad_signature_configs_are_refused_naming_the_field(b: Backend) {
    let app = spawn_app(&b).await;
    let hmac = |extra: Value| {
        let mut sig = json!({"scheme": "hmac-sha256"});
        sig.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!({"name": "x", "url": "http://a.example/", "signature": sig})
    };
    let with = |sig: Value, secret: Option<&str>| {
        let mut w = json!({"name": "x", "url": "http://a.example/", "signature": sig});
        if let Some(s) = secret {
            w["secret"] = json!(s);
        }
        w
    };
    let cases = [
        (hmac(json!({"header": "Bad Name"})), "signature.header"),
        (
            hmac(json!({"header": "Content-Length"})),
            "signature.header",
        ),
        (hmac(json!({"encoding": "base32"})), "signature.encoding"),
        (hmac(json!({"prefix": "bad\n"})), "signature.prefix"),
        (hmac(json!({"colour": 1})), "signature"),
        (hmac(json!({"secret": ""})), "signature"),
        (
            with(json!({"scheme": "ed25519", "header": "X-Sig"}), None),
            "signature.header",
        ),
        (with(json!({"scheme": "rot13"}), None), "signature.scheme"),
        (
            with(
                json!({"scheme": "ed25519"}),
                Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            ),
            "secret",
        ),
        (
            with(json!({"scheme": "ed25519"}), Some("whsk_AAAA")),
            "secret",
        ),
        (with(json!({"scheme": "hmac-sha256"}), Some("")), "secret"),
    ];
    for (body, field) in cases {
        let (status, err) = app.post("/webhooks", body.clone()).await;
        assert_eq!(status.as_u16(), 422, "{body} → {err}");
        assert_eq!(err["error"]["field"].as_str(), Some(field), "{body}: {err}");
    }
}
