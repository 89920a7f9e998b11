//! Inbound hooks: the admin API, `/hooks/{key}` with verification, parsing, sync and async
//! workflows, and execution records, with real HTTP callers and receivers.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use hookd_core::signature::{sign_hmac_sha256, HmacEncoding, SigningSecret};
use hookd_server::WorkerMode;
use serde_json::{json, Value};

use crate::backend_test;
use crate::support::{
    spawn_app, spawn_app_with, spawn_on, test_settings, Backend, Reply, TestApp, TestReceiver,
};

async fn create_hook(app: &TestApp, body: Value) -> Value {
    let (status, out) = app.post("/inbound", body).await;
    assert_eq!(status, StatusCode::CREATED, "{out}");
    out
}

/// A caller of a hook's public URL.
struct Call {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Call {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body))
    }

    fn execution(&self) -> &str {
        self.headers["x-hookd-execution"].to_str().unwrap()
    }
}

async fn call(
    url: &str,
    method: &str,
    headers: &[(&str, &str)],
    body: impl Into<reqwest::Body>,
) -> Call {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = reqwest::Client::new().request(method, url).body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    Call {
        status,
        headers,
        body: resp.text().await.unwrap(),
    }
}

async fn execution(app: &TestApp, id: &str) -> Value {
    let (status, e) = app.get(&format!("/executions/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{e}");
    e
}

/// Polls an execution until it is final.
pub(crate) async fn finished(app: &TestApp, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let e = execution(app, id).await;
        if !matches!(e["status"].as_str(), Some("queued" | "running")) {
            return e;
        }
        assert!(Instant::now() < deadline, "never finished: {e}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// NocoBase's payment callback: basic auth, parsed body and query, a sync answer by condition.
fn payment_callback() -> Value {
    json!({
        "name": "payment callback",
        "auth": {"type": "basic", "username": "pay", "password": "s3cret"},
        "parse": {"query": [{"path": "order", "alias": "order_id"}],
                  "body": [{"path": "data.object.amount", "alias": "amount"},
                           {"path": "items[0].sku"}],
                  "headers": [{"name": "X-Request-Id", "alias": "request_id"}]},
        "mode": "sync",
        "workflow": [
            {"type": "condition", "expression": "amount > 100",
             "then": [{"type": "set", "name": "grade", "value": "large"},
                      {"type": "response", "status": 200,
                       "headers": {"X-Order": "{{ order_id }}"},
                       "body": "{\"accepted\": true, \"order\": \"{{ order_id }}\", \"grade\": \"{{ grade }}\"}"}],
             "else": [{"type": "response", "status": 422, "body": "{\"error\": \"too small\"}"}]}
        ]
    })
}

backend_test!(a_sync_hook_verifies_parses_and_answers_by_condition);
async fn a_sync_hook_verifies_parses_and_answers_by_condition(b: Backend) {
    let app = spawn_app(&b).await;
    let hook = create_hook(&app, payment_callback()).await;
    assert_eq!(hook["auth"]["password"], "****", "{hook}");
    let url = format!("{}?order=A-17", hook["url"].as_str().unwrap());
    assert!(url.starts_with("http://127.0.0.1:8080/hooks/"), "{url}");
    let url = url.replace("http://127.0.0.1:8080", &app.base);
    let body = json!({"data": {"object": {"amount": 250}}, "items": [{"sku": "K-1"}]}).to_string();
    let json = [
        ("content-type", "application/json"),
        ("x-request-id", "r-1"),
    ];

    let none = call(&url, "POST", &json, body.clone()).await;
    assert_eq!(none.status, 401);
    assert_eq!(
        none.headers["www-authenticate"].to_str().unwrap(),
        "Basic realm=\"hookd\""
    );
    let wrong = [
        json[0],
        ("authorization", "Basic cGF5Om5vcGU="), // pay:nope
    ];
    assert_eq!(call(&url, "POST", &wrong, body.clone()).await.status, 401);

    let auth = [
        json[0],
        json[1],
        ("authorization", "Basic cGF5OnMzY3JldA=="),
    ]; // pay:s3cret
    let big = call(&url, "POST", &auth, body.clone()).await;
    assert_eq!(big.status, 200, "{}", big.body);
    assert_eq!(big.headers["x-order"], "A-17");
    assert_eq!(big.json()["accepted"], true);
    assert_eq!(big.json()["order"], "A-17");
    assert_eq!(big.json()["grade"], "large");
    let small = json!({"data": {"object": {"amount": 5}}}).to_string();
    let small = call(&url, "POST", &auth, small).await;
    assert_eq!(small.status, 422);
    assert_eq!(small.json(), json!({"error": "too small"}));

    // Every execution is recorded: rejections with their reason, runs with their trace.
    let e = execution(&app, big.execution()).await;
    assert_eq!(e["status"], "succeeded", "{e}");
    assert_eq!(e["mode"], "sync");
    assert_eq!(e["variables"]["amount"], 250);
    assert_eq!(e["variables"]["order_id"], "A-17");
    assert_eq!(e["variables"]["request_id"], "r-1");
    assert_eq!(e["variables"]["items[0].sku"], "K-1");
    assert_eq!(e["request"]["headers"]["authorization"], "****");
    assert_eq!(
        e["variables"]["request"]["headers"]["authorization"],
        "****"
    );
    assert_eq!(e["variables"]["headers"]["authorization"], "****");
    assert!(
        !e.to_string().contains("cGF5OnMzY3JldA"),
        "the credential is nowhere in the record: {e}"
    );
    assert_eq!(e["request"]["query"]["order"], "A-17");
    let types: Vec<_> = e["trace"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["node_type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(types, ["condition", "set", "response"], "{e}");
    assert_eq!(e["response"]["status"], 200);
    let (_, list) = app
        .get(&format!(
            "/inbound/{}/executions",
            hook["id"].as_str().unwrap()
        ))
        .await;
    let statuses: Vec<_> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(statuses, ["succeeded", "succeeded", "rejected", "rejected"]);
    let rejected = &list["data"][3];
    assert!(
        rejected["error"]
            .as_str()
            .unwrap()
            .contains("bad_credentials")
            || rejected["error"]
                .as_str()
                .unwrap()
                .contains("missing_header"),
        "{rejected}"
    );
}

backend_test!(a_github_signed_async_hook_publishes_to_an_outbound_webhook);
async fn a_github_signed_async_hook_publishes_to_an_outbound_webhook(b: Backend) {
    let app = spawn_app(&b).await;
    let rx = TestReceiver::start().await;
    app.create_webhook(json!({"name": "ci", "url": rx.url("/ci"),
        "events": [{"type": "github.push"}]}))
        .await;
    let hook = create_hook(
        &app,
        json!({"name": "github", "auth": {"type": "signature", "preset": "github",
               "secret": "gh-secret"},
               "parse": {"body": [{"path": "repository.full_name", "alias": "repo"}]},
               "workflow": [{"type": "publish", "event_type": "github.push",
                             "data": "{\"repo\": {{ repo | tojson }}, \"ref\": {{ body.ref | tojson }}}"}]}),
    )
    .await;
    assert_eq!(hook["mode"], "async");
    let url = app.hook_url(&hook);
    let body =
        json!({"ref": "refs/heads/main", "repository": {"full_name": "acme/api"}}).to_string();
    let secret = SigningSecret::parse_plain("gh-secret").unwrap();
    let sig = sign_hmac_sha256(&secret, body.as_bytes(), HmacEncoding::Hex, Some("sha256="));

    let bad = call(
        &url,
        "POST",
        &[("x-hub-signature-256", "sha256=00")],
        body.clone(),
    )
    .await;
    assert_eq!(bad.status, 401);
    let rejected = execution(&app, bad.execution()).await;
    assert_eq!(rejected["status"], "rejected");
    assert!(
        rejected["error"].as_str().unwrap().contains("signature"),
        "{rejected}"
    );

    let ok = call(
        &url,
        "POST",
        &[
            ("x-hub-signature-256", &sig),
            ("content-type", "application/json"),
        ],
        body.clone(),
    )
    .await;
    assert_eq!(
        (ok.status, ok.body.as_str()),
        (200, "ok"),
        "answered at once"
    );
    let got = rx.wait_for(1).await;
    assert_eq!(got[0].json()["type"], "github.push");
    assert_eq!(
        got[0].json()["data"],
        json!({"repo": "acme/api", "ref": "refs/heads/main"})
    );
    let e = finished(&app, ok.execution()).await;
    assert_eq!(e["status"], "succeeded", "{e}");
    assert_eq!(e["mode"], "async");
    assert_eq!(e["attempts"], 1);
    assert_eq!(e["trace"][0]["node_type"], "publish");
    assert_eq!(e["request"]["headers"]["x-hub-signature-256"], "****");
    assert!(
        !e.to_string().contains(&sig),
        "the signature is nowhere in the record: {e}"
    );
    assert_eq!(
        rx.received().len(),
        1,
        "the rejected call published nothing"
    );
}

backend_test!(requests_are_refused_with_the_right_status);
async fn requests_are_refused_with_the_right_status(b: Backend) {
    let mut settings = test_settings();
    settings.max_body_bytes = 4096;
    let app = spawn_app_with(&b, settings, WorkerMode::Embedded).await;
    let slow = TestReceiver::start().await;
    slow.always(Reply {
        delay: Duration::from_millis(1500),
        ..Reply::status(200)
    });
    let hook = create_hook(
        &app,
        json!({"name": "one at a time", "mode": "sync", "max_concurrency": 1,
               "methods": ["post", "PUT"],
               "workflow": [{"type": "request", "url": slow.url("/slow"), "save_as": "r"}]}),
    )
    .await;
    assert_eq!(hook["methods"], json!(["POST", "PUT"]));
    let url = app.hook_url(&hook);

    let unknown = format!("{}/hooks/not-a-key", app.base);
    assert_eq!(call(&unknown, "POST", &[], "").await.status, 404);
    let get = call(&url, "GET", &[], "").await;
    assert_eq!(get.status, 405);
    assert_eq!(get.headers["allow"], "POST, PUT");
    let big = call(&url, "POST", &[], vec![b'x'; 5000]).await;
    assert_eq!(big.status, 413);

    // One execution runs; a second at the same time is turned away.
    let first = tokio::spawn({
        let url = url.clone();
        async move { call(&url, "POST", &[], "{}").await }
    });
    slow.wait_for(1).await;
    assert_eq!(call(&url, "PUT", &[], "{}").await.status, 429);
    assert_eq!(first.await.unwrap().status, 200);

    // Inactive: as if it did not exist.
    let path = format!("/inbound/{}", hook["id"].as_str().unwrap());
    let (status, _) = app
        .call("PATCH", &path, Some(json!({"active": false})))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(call(&url, "POST", &[], "{}").await.status, 404);
}

backend_test!(a_sync_hook_past_its_timeout_answers_504);
async fn a_sync_hook_past_its_timeout_answers_504(b: Backend) {
    let app = spawn_app(&b).await;
    let slow = TestReceiver::start().await;
    slow.always(Reply {
        delay: Duration::from_secs(3),
        ..Reply::status(200)
    });
    let hook = create_hook(
        &app,
        json!({"name": "slow", "mode": "sync", "timeout_ms": 200,
               "workflow": [{"type": "request", "url": slow.url("/"), "save_as": "r"}]}),
    )
    .await;
    let url = app.hook_url(&hook);
    let started = Instant::now();
    let answer = call(&url, "POST", &[], "{}").await;
    assert_eq!(answer.status, 504, "{}", answer.body);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "did not wait for the receiver"
    );
    let e = execution(&app, answer.execution()).await;
    assert_eq!(e["status"], "timed_out");
    assert!(e["error"].as_str().unwrap().contains("timeout_ms"), "{e}");
}

backend_test!(an_async_run_longer_than_the_delivery_lease_runs_once);
async fn an_async_run_longer_than_the_delivery_lease_runs_once(b: Backend) {
    let mut settings = test_settings();
    settings.delivery.lease = Duration::from_secs(1);
    let app = spawn_app_with(&b, settings, WorkerMode::Embedded).await;
    let slow = TestReceiver::start().await;
    slow.always(Reply {
        delay: Duration::from_secs(4),
        ..Reply::status(200)
    });
    let hook = create_hook(
        &app,
        json!({"name": "long", "mode": "async", "timeout_ms": 2500,
               "workflow": [{"type": "request", "url": slow.url("/"), "save_as": "r"}]}),
    )
    .await;
    let url = app.hook_url(&hook);
    let answer = call(&url, "POST", &[], "{}").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let e = finished(&app, answer.execution()).await;
    assert_eq!(e["status"], "timed_out", "{e}");
    assert!(e["error"].as_str().unwrap().contains("timeout_ms"), "{e}");
    assert_eq!(
        slow.received().len(),
        1,
        "a run still going past the 1 s delivery lease was not claimed and run again"
    );
}

backend_test!(credentials_a_workflow_copies_are_masked_in_traces_and_answers);
async fn credentials_a_workflow_copies_are_masked_in_traces_and_answers(b: Backend) {
    let app = spawn_app(&b).await;
    let hook = create_hook(
        &app,
        json!({"name": "echo", "mode": "sync",
               "auth": {"type": "basic", "username": "pay", "password": "s3cret"},
               "workflow": [
                   {"type": "set", "name": "who", "value": "{{ headers.authorization }}"},
                   {"type": "set", "name": "token", "value": "{{ headers.authorization[6:] }}"},
                   {"type": "response", "status": 200,
                    "headers": {"X-Who": "{{ who }}"},
                    "body": "{{ who }} / {{ token }}"}]}),
    )
    .await;
    let url = app.hook_url(&hook);
    let auth = ("authorization", "Basic cGF5OnMzY3JldA=="); // pay:s3cret
    let answer = call(&url, "POST", &[auth], "{}").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body, "**** / ****");
    assert_eq!(answer.headers["x-who"], "****");
    let e = execution(&app, answer.execution()).await;
    assert_eq!(e["trace"][0]["result"]["value"], "****", "{e}");
    let stored = e.to_string();
    for secret in ["cGF5OnMzY3JldA==", "s3cret"] {
        assert!(!stored.contains(secret), "{secret} in {stored}");
    }
}

backend_test!(request_node_credentials_are_write_only_and_kept_on_patch);
async fn request_node_credentials_are_write_only_and_kept_on_patch(b: Backend) {
    let app = spawn_app(&b).await;
    let api = TestReceiver::start().await;
    let hook = create_hook(
        &app,
        json!({"name": "forward", "mode": "sync",
               "workflow": [{"type": "request", "url": api.url("/x"), "save_as": "r",
                             "headers": {"Authorization": "Bearer t0ps3cret", "X-Trace": "1"}}]}),
    )
    .await;
    let id = hook["id"].as_str().unwrap();
    assert_eq!(hook["workflow"][0]["headers"]["Authorization"], "****");
    assert_eq!(hook["workflow"][0]["headers"]["X-Trace"], "1");
    let (_, read) = app.get(&format!("/inbound/{id}")).await;
    let (_, list) = app.get("/inbound").await;
    for shown in [&read, &list["data"][0]] {
        assert!(!shown.to_string().contains("t0ps3cret"), "{shown}");
    }
    // The definition as read, sent back with another name: the credential is kept.
    let (status, patched) = app
        .call(
            "PATCH",
            &format!("/inbound/{id}"),
            Some(json!({"name": "forward v2", "workflow": read["workflow"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    let url = app.hook_url(&hook);
    let answer = call(&url, "POST", &[], "{}").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        api.received()[0].header("authorization"),
        Some("Bearer t0ps3cret"),
        "the stored credential is still sent"
    );
    // Moved to another place, a masked value has nothing to keep: refused, naming it.
    let mut moved = read["workflow"].clone();
    moved
        .as_array_mut()
        .unwrap()
        .insert(0, json!({"type": "set", "name": "a", "value": "1"}));
    let (status, err) = app
        .call(
            "PATCH",
            &format!("/inbound/{id}"),
            Some(json!({"workflow": moved})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_eq!(
        err["error"]["field"], "workflow[1].headers.Authorization",
        "{err}"
    );
}

backend_test!(request_nodes_call_out_through_the_ssrf_guard);
async fn request_nodes_call_out_through_the_ssrf_guard(b: Backend) {
    let app = spawn_app(&b).await;
    let api = TestReceiver::start().await;
    api.always(Reply {
        headers: vec![("content-type", "application/json".into())],
        body: r#"{"score": 42}"#.into(),
        ..Reply::status(200)
    });
    let hook = create_hook(
        &app,
        json!({"name": "lookup", "mode": "sync",
               "parse": {"body": [{"path": "user"}]},
               "workflow": [
                 {"type": "request", "method": "POST", "url": api.url("/score?u={{ user }}"),
                  "headers": {"X-User": "{{ user }}"}, "body": "{\"user\": {{ user | tojson }}}",
                  "save_as": "score"},
                 {"type": "response", "status": 200,
                  "body": "{{ user }} scores {{ score.body.score }} ({{ score.status }})"}]}),
    )
    .await;
    let url = app.hook_url(&hook);
    let answer = call(
        &url,
        "POST",
        &[("content-type", "application/json")],
        r#"{"user": "ann"}"#,
    )
    .await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (200, "ann scores 42 (200)")
    );
    let got = api.received();
    assert_eq!(got[0].path, "/score");
    assert_eq!(got[0].header("x-user"), Some("ann"));
    assert_eq!(got[0].json(), json!({"user": "ann"}));

    // The metadata address is refused: the run fails, the caller gets 500.
    let guarded = create_hook(
        &app,
        json!({"name": "metadata", "mode": "sync",
               "workflow": [{"type": "request", "url": "http://169.254.169.254/latest/meta-data",
                             "save_as": "m"}]}),
    )
    .await;
    let url = app.hook_url(&guarded);
    let answer = call(&url, "POST", &[], "").await;
    assert_eq!(answer.status, 500, "{}", answer.body);
    assert!(
        !answer.body.contains("169.254"),
        "the outside caller learns nothing of the URL: {}",
        answer.body
    );
    let e = execution(&app, answer.execution()).await;
    assert_eq!(e["status"], "failed");
    let error = e["error"].as_str().unwrap();
    assert!(error.starts_with("workflow[0]"), "{error}");
    assert!(error.contains("169.254.169.254"), "{error}");

    // A URL with credentials is refused at save, naming the node's field.
    let (status, err) = app
        .post(
            "/inbound",
            json!({"name": "creds", "mode": "sync",
                   "workflow": [{"type": "request", "url": "http://me:secret@127.0.0.1:9/x",
                                 "save_as": "r"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_eq!(err["error"]["field"], "workflow[0].url", "{err}");
}

backend_test!(bad_hooks_are_refused_naming_the_field);
async fn bad_hooks_are_refused_naming_the_field(b: Backend) {
    let app = spawn_app(&b).await;
    let cases = [
        (json!({"name": "x", "colour": 1}), "colour"),
        (json!({"name": ""}), "name"),
        (
            json!({"name": "x", "methods": ["POST", "G T"]}),
            "methods[1]",
        ),
        (
            json!({"name": "x", "auth": {"type": "signature", "preset": "github"}}),
            "auth.secret",
        ),
        (json!({"name": "x", "timeout_ms": 0}), "timeout_ms"),
        (json!({"name": "x", "mode": "later"}), "mode"),
        (
            json!({"name": "x", "parse": {"body": [{"path": "a..b"}]}}),
            "parse.body[0].path",
        ),
        (
            json!({"name": "x", "workflow": [{"type": "condition", "expression": "a >",
                   "then": [], "else": []}]}),
            "workflow[0].expression",
        ),
        (
            json!({"name": "x", "workflow": [{"type": "condition", "expression": "true",
                   "then": [{"type": "response", "body": "{{ oops"}]}]}),
            "workflow[0].then[0].body",
        ),
    ];
    for (body, field) in cases {
        let (status, err) = app.post("/inbound", body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body} → {err}");
        assert_eq!(err["error"]["field"], field, "{body} → {err}");
    }
    let (_, list) = app.get("/inbound").await;
    assert_eq!(list["data"], json!([]), "nothing half-written");
    let (status, _) = app.get("/inbound/in_01JD8Z0Q9V4W6XKJ3M2N5P7R8S").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.get("/executions/exe_01JD8Z0Q9V4W6XKJ3M2N5P7R8S").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

backend_test!(parse_lists_the_paths_of_a_sample);
async fn parse_lists_the_paths_of_a_sample(b: Backend) {
    let app = spawn_app(&b).await;
    let (status, out) = app
        .post(
            "/inbound/parse",
            json!({"url": "https://shop.example.com/cb?order=1&status=paid",
                   "json": "{\"data\": {\"object\": {\"amount\": 1}}, \"items\": [{\"id\": 1}]}"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["query"], json!(["order", "status"]));
    let body: Vec<_> = out["body"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    for path in [
        "data",
        "data.object",
        "data.object.amount",
        "items",
        "items[0].id",
    ] {
        assert!(body.contains(&path), "{path} in {body:?}");
    }
    let (status, err) = app.post("/inbound/parse", json!({})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
}

backend_test!(secrets_stay_masked_and_survive_a_patch);
async fn secrets_stay_masked_and_survive_a_patch(b: Backend) {
    let app = spawn_app(&b).await;
    let hook = create_hook(&app, payment_callback()).await;
    let path = format!("/inbound/{}", hook["id"].as_str().unwrap());
    let (_, read) = app.get(&path).await;
    assert_eq!(read["auth"]["password"], "****");
    // A client saving what it read (mask included) and renaming the hook keeps the password.
    let (status, patched) = app
        .call(
            "PATCH",
            &path,
            Some(json!({"name": "renamed", "auth": read["auth"].clone()})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["name"], "renamed");
    assert_eq!(patched["url"], hook["url"], "the URL is kept");
    let url = format!(
        "{}?order=1",
        hook["url"]
            .as_str()
            .unwrap()
            .replace("http://127.0.0.1:8080", &app.base)
    );
    let auth = [
        ("content-type", "application/json"),
        ("authorization", "Basic cGF5OnMzY3JldA=="),
    ];
    let body = json!({"data": {"object": {"amount": 500}}}).to_string();
    assert_eq!(call(&url, "POST", &auth, body).await.status, 200);
    let (_, list) = app.get("/inbound").await;
    assert!(!list.to_string().contains("s3cret"), "{list}");
    let (status, _) = app.call("DELETE", &path, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(call(&url, "POST", &auth, "{}").await.status, 404);
}

backend_test!(async_executions_wait_for_a_worker);
async fn async_executions_wait_for_a_worker(b: Backend) {
    // No worker: the request is stored and answered; nothing runs yet.
    let api = spawn_app_with(&b, test_settings(), WorkerMode::Separate).await;
    let rx = TestReceiver::start().await;
    api.create_webhook(json!({"name": "r", "url": rx.url("/"), "events": [{"type": "order.*"}]}))
        .await;
    let hook = create_hook(
        &api,
        json!({"name": "orders", "response": {"status": 202, "body": "queued {{ body.id }}"},
               "workflow": [{"type": "publish", "event_type": "order.received",
                             "data": "{{ body | tojson }}"}]}),
    )
    .await;
    let url = hook["url"]
        .as_str()
        .unwrap()
        .replace("http://127.0.0.1:8080", &api.base);
    let answer = call(
        &url,
        "POST",
        &[("content-type", "application/json")],
        r#"{"id": 9}"#,
    )
    .await;
    assert_eq!((answer.status, answer.body.as_str()), (202, "queued 9"));
    let queued = execution(&api, answer.execution()).await;
    assert_eq!(queued["status"], "queued");

    // A worker comes up and runs it.
    let _worker = spawn_on(api.store.clone(), test_settings(), WorkerMode::Embedded).await;
    let done = finished(&api, answer.execution()).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(rx.wait_for(1).await[0].json()["data"], json!({"id": 9}));
}

/// Header names and values a caller sends.
type Headers = Vec<(String, String)>;

fn hmac_bytes(key: &[u8], parts: &[&[u8]], sha512: bool) -> Vec<u8> {
    use hmac::{Hmac, Mac};
    if sha512 {
        let mut mac = Hmac::<sha2::Sha512>::new_from_slice(key).unwrap();
        parts.iter().for_each(|p| mac.update(p));
        mac.finalize().into_bytes().to_vec()
    } else {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
        parts.iter().for_each(|p| mac.update(p));
        mac.finalize().into_bytes().to_vec()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

backend_test!(every_signature_preset_verifies_real_requests);
async fn every_signature_preset_verifies_real_requests(b: Backend) {
    let app = spawn_app(&b).await;
    let body = "order=7&status=paid";
    let form = ("content-type", "application/x-www-form-urlencoded");
    let now = hookd_server::now_ms() / 1000;
    let stale = now - 600;
    let ts = now.to_string();
    let whsec = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let standard = |at: i64| {
        let secret = SigningSecret::parse_standard(whsec).unwrap();
        hookd_core::signature::sign_standard(&secret, "msg_1", at, body.as_bytes())
    };
    let stripe = |at: i64| {
        let mac = hmac_bytes(
            b"whsec_stripe",
            &[at.to_string().as_bytes(), b".", body.as_bytes()],
            false,
        );
        format!("t={at},v1={}", hex(&mac))
    };
    let slack = |at: i64| {
        let mac = hmac_bytes(
            b"slack-secret",
            &[b"v0:", at.to_string().as_bytes(), b":", body.as_bytes()],
            false,
        );
        format!("v0={}", hex(&mac))
    };
    let shopify = b64(&hmac_bytes(b"shop-secret", &[body.as_bytes()], false));
    let custom = format!(
        "sha512={}",
        b64(&hmac_bytes(b"own-secret", &[body.as_bytes()], true))
    );
    let cases: Vec<(Value, Headers, Headers)> = vec![
        (
            json!({"preset": "stripe", "secret": "whsec_stripe"}),
            vec![("stripe-signature".into(), stripe(now))],
            vec![("stripe-signature".into(), stripe(stale))],
        ),
        (
            json!({"preset": "slack", "secret": "slack-secret"}),
            vec![
                ("x-slack-signature".into(), slack(now)),
                ("x-slack-request-timestamp".into(), ts.clone()),
            ],
            vec![
                ("x-slack-signature".into(), slack(stale)),
                ("x-slack-request-timestamp".into(), stale.to_string()),
            ],
        ),
        (
            json!({"preset": "shopify", "secret": "shop-secret"}),
            vec![("x-shopify-hmac-sha256".into(), shopify.clone())],
            vec![("x-shopify-hmac-sha256".into(), b64(b"not it"))],
        ),
        (
            json!({"preset": "standard", "secret": whsec}),
            vec![
                ("webhook-id".into(), "msg_1".into()),
                ("webhook-timestamp".into(), ts.clone()),
                ("webhook-signature".into(), standard(now)),
            ],
            vec![
                ("webhook-id".into(), "msg_1".into()),
                ("webhook-timestamp".into(), stale.to_string()),
                ("webhook-signature".into(), standard(stale)),
            ],
        ),
        (
            json!({"preset": "hmac", "secret": "own-secret", "header": "X-Sig",
                   "encoding": "base64", "prefix": "sha512=", "algorithm": "sha512"}),
            vec![("x-sig".into(), custom.clone())],
            vec![("x-sig".into(), custom.replace("sha512=", "sha256="))],
        ),
    ];
    for (preset, good, bad) in cases {
        let mut auth = preset.clone();
        auth["type"] = json!("signature");
        let hook = create_hook(
            &app,
            json!({"name": preset["preset"], "auth": auth, "mode": "sync",
                   "parse": {"body": [{"path": "order"}, {"path": "status"}]},
                   "workflow": [{"type": "response", "status": 200,
                                 "body": "{{ order }} {{ status }}"}]}),
        )
        .await;
        let url = app.hook_url(&hook);
        let headers = |h: &[(String, String)]| -> Vec<(String, String)> {
            let mut all = h.to_vec();
            all.push((form.0.into(), form.1.into()));
            all
        };
        let good = headers(&good);
        let good: Vec<(&str, &str)> = good.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let ok = call(&url, "POST", &good, body).await;
        assert_eq!((ok.status, ok.body.as_str()), (200, "7 paid"), "{preset}");
        let bad = headers(&bad);
        let bad: Vec<(&str, &str)> = bad.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let refused = call(&url, "POST", &bad, body).await;
        assert_eq!(refused.status, 401, "{preset}: {}", refused.body);
        let missing = call(&url, "POST", &[form], body).await;
        assert_eq!(missing.status, 401, "{preset}: {}", missing.body);
        let e = execution(&app, refused.execution()).await;
        assert_eq!(e["status"], "rejected", "{preset}");
    }
}
