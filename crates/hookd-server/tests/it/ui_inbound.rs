//! The admin UI's inbound hook pages in a real headless Chromium against a real hookd: build a
//! sync hook with basic auth, paths added from a parsed sample and a branching workflow; call its
//! URL over real HTTP; follow the calls in its executions and their node trace; and see a workflow
//! error beside the node field it names. Screenshots go where the others go.

use hookd_core::signature::{sign_hmac_sha256, HmacEncoding, SigningSecret};
use reqwest::StatusCode;
use serde_json::json;

use crate::support::{spawn_app, Backend, TestApp};
use crate::ui::{assert_labelled, signed_in};
use crate::webdriver::Browser;

const FORM: &str = ".inbound-form";
const THEN: &str = ".branch.then li.node";
const ELSE: &str = ".branch.else li.node";

/// Calls a hook's URL as a sender would: basic auth, a JSON body.
async fn call(url: &str, password: &str, body: serde_json::Value) -> (StatusCode, String, String) {
    let resp = reqwest::Client::new()
        .post(url)
        .basic_auth("pay", Some(password))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let execution = resp
        .headers()
        .get("x-hookd-execution")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, execution, resp.text().await.unwrap())
}

/// Opens the new hook form.
async fn new_hook(b: &Browser, app: &TestApp, name: &str) {
    b.goto(&format!("{}/ui/#/inbound/new", app.base)).await;
    b.fill(&b.by_label(FORM, "Name").await, name).await;
}

/// Makes the node matching `node` a response with this status and body.
async fn response_node(b: &Browser, node: &str, status: &str, body: &str) {
    b.choose(&b.by_label(node, "Node type").await, "response")
        .await;
    b.fill(&b.by_label(node, "Status").await, status).await;
    b.fill(&b.by_label(node, "Body template").await, body).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_inbound_builds_a_sync_hook_calls_it_and_shows_the_execution_trace() {
    let app = spawn_app(&Backend::Sqlite).await;
    let Some(b) = signed_in(&app).await else {
        return;
    };
    b.click(&b.button("header", "Inbound").await).await;
    b.wait_text(".empty", "No inbound hooks yet").await;
    b.click(&b.button("main", "New inbound hook").await).await;
    b.fill(&b.by_label(FORM, "Name").await, "payment callback")
        .await;
    b.click(&b.by_label(FORM, "Sync: answer after the workflow").await)
        .await;
    b.choose(&b.by_label(FORM, "Type").await, "basic").await;
    b.fill(&b.by_label(FORM, "Username").await, "pay").await;
    b.fill(&b.by_label(FORM, "Password").await, "s3cret").await;

    // Parse sample: a URL and a JSON body; add the amount (default alias) and the order (renamed).
    b.fill(
        &b.by_label(FORM, "Sample URL").await,
        "https://shop.example/cb?order=A-17",
    )
    .await;
    b.fill(
        &b.by_label(FORM, "Sample JSON body").await,
        r#"{"data": {"object": {"amount": 250, "currency": "EUR"}}}"#,
    )
    .await;
    b.click(&b.button(".sample", "Parse sample").await).await;
    let amount = "[data-sample-path='data.object.amount']";
    let shown = b.value_of(amount, "Alias for data.object.amount").await;
    assert_eq!(shown, "amount");
    b.wait_text(".sample", "data.object.currency").await;
    b.click(&b.button(amount, "Add").await).await;
    let order = "[data-sample-path='order']";
    b.fill(&b.by_label(order, "Alias for order").await, "order_id")
        .await;
    b.click(&b.button(order, "Add").await).await;
    b.wait_text(amount, "Added").await;
    let path = b.value_of("[data-field='parse.body']", "Path").await;
    assert_eq!(path, "data.object.amount");

    // The workflow: if amount > 100 answer 200, else 422.
    b.click(&b.button(FORM, "Add node").await).await;
    b.fill(&b.by_label(".workflow", "Expression").await, "amount > 100")
        .await;
    b.click(&b.button(".workflow", "Add to then").await).await;
    let accepted = r#"{"accepted": true, "order": "{{ order_id }}", "amount": {{ amount }}}"#;
    response_node(&b, THEN, "200", accepted).await;
    b.click(&b.button(".workflow", "Add to else").await).await;
    response_node(&b, ELSE, "422", r#"{"error": "too small"}"#).await;
    assert_labelled(&b).await;
    b.screenshots("inbound-new").await;

    b.click(&b.button(FORM, "Create inbound hook").await).await;
    b.wait_text(".notice", "Inbound hook created").await;
    // The notice and the URL come from one render; wait for the URL rather than assume it.
    let url = b
        .wait_for(
            "the hook's URL",
            "const e = document.querySelector('.hook-url input'); return e && e.value",
            vec![],
        )
        .await;
    let url = url.as_str().unwrap();
    b.click(&b.button(".hook-url", "Copy").await).await;
    b.wait_text(".hook-url", "Copied").await;
    assert!(url.starts_with("http://127.0.0.1:8080/hooks/"), "{url}");
    // The configured public URL is the default one; the test server listens elsewhere.
    let url = format!(
        "{}?order=A-17",
        url.replace("http://127.0.0.1:8080", &app.base)
    );
    let (_, list) = app.get("/inbound").await;
    let hook = &list["data"][0];
    assert_eq!(hook["mode"], "sync");
    assert_eq!(
        hook["auth"],
        json!({"type": "basic", "username": "pay", "password": "****"})
    );
    assert_eq!(
        hook["parse"],
        json!({"headers": [], "query": [{"path": "order", "alias": "order_id"}],
               "body": [{"path": "data.object.amount", "alias": "amount"}]})
    );
    assert_eq!(
        hook["workflow"],
        json!([{"type": "condition", "expression": "amount > 100",
            "then": [{"type": "response", "status": 200, "headers": {}, "body": accepted}],
            "else": [{"type": "response", "status": 422, "headers": {}, "body": "{\"error\": \"too small\"}"}]}])
    );
    assert_labelled(&b).await;
    b.screenshots("inbound-edit").await;

    // Real calls: the right password and a large amount, a small one, a wrong password.
    let big = json!({"data": {"object": {"amount": 250}}});
    let (status, execution, answer) = call(&url, "s3cret", big).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&answer).unwrap(),
        json!({"accepted": true, "order": "A-17", "amount": 250})
    );
    let small = json!({"data": {"object": {"amount": 5}}});
    let (status, _, answer) = call(&url, "s3cret", small.clone()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    let (status, _, _) = call(&url, "wrong", small.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Its executions, and one more call that appears by itself.
    b.click(&b.button(".page-head", "Executions").await).await;
    b.wait_text("tbody", "rejected").await;
    b.wait_text("tbody", "HTTP 422").await;
    let (_, later, _) = call(&url, "s3cret", small).await;
    b.wait_text("tbody", &later).await;
    b.screenshots("inbound-executions").await;

    // The first call: request, variables, the trace (condition true, then the response), answer.
    b.click(&b.find(&format!("tr[data-id='{execution}'] a")).await)
        .await;
    let cond = b
        .wait_text(".trace [data-node='workflow[0]']", "condition")
        .await;
    assert!(cond.contains("true"), "{cond}");
    b.wait_text(".trace [data-node='workflow[0].then[0]']", "response")
        .await;
    let page = b.wait_text("main", "Node trace").await;
    assert!(
        page.contains("succeeded") && page.contains("HTTP 200"),
        "{page}"
    );
    assert!(page.contains("\"amount\": 250"), "variables: {page}");
    assert!(page.contains("POST /hooks/"), "request line: {page}");
    // The API's `variables` hold the Authorization header unmasked; the page masks it.
    assert!(
        !page.contains("cGF5OnMzY3JldA") && page.contains("\"authorization\": \"****\""),
        "credentials are masked: {page}"
    );
    b.screenshots("inbound-execution").await;

    // The list links the URL and says what the hook is.
    b.click(&b.button("header", "Inbound").await).await;
    let row = b.wait_text("tbody tr", "payment callback").await;
    assert!(
        row.contains("sync") && row.contains("basic") && row.contains("/hooks/"),
        "{row}"
    );
    b.screenshots("inbound-list").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_inbound_shows_a_bad_condition_next_to_its_node_expression() {
    let app = spawn_app(&Backend::Sqlite).await;
    let Some(b) = signed_in(&app).await else {
        return;
    };
    new_hook(&b, &app, "broken").await;
    b.click(&b.button(FORM, "Add node").await).await;
    b.fill(&b.by_label(".workflow", "Expression").await, "true")
        .await;
    // A nested condition (the default type of a new node) with an expression that does not compile.
    b.click(&b.button(".workflow", "Add to then").await).await;
    b.fill(&b.by_label(THEN, "Expression").await, "amount >")
        .await;
    b.click(&b.button(FORM, "Create inbound hook").await).await;
    let err = b
        .wait_text(
            "[data-field='workflow[0].then[0].expression'] .field-error",
            "does not compile",
        )
        .await;
    assert!(err.starts_with("workflow[0].then[0].expression:"), "{err}");
    let top = b
        .eval(
            "return document.querySelector('[data-field=\"workflow[0].expression\"] .field-error').hidden",
            vec![],
        )
        .await;
    assert_eq!(top, json!(true), "only the nested node is marked");
    b.screenshots("inbound-error").await;

    // Fixed, and a top-level node moved: the paths follow the nodes.
    b.fill(&b.by_label(THEN, "Expression").await, "amount > 1")
        .await;
    b.click(&b.button(FORM, "Add node").await).await;
    b.choose(
        &b.by_label("ol.nodes > li.node:nth-child(2)", "Node type")
            .await,
        "set",
    )
    .await;
    b.fill(&b.by_label(FORM, "Variable name").await, "seen")
        .await;
    b.fill(&b.by_label(FORM, "Value template").await, "yes")
        .await;
    b.click(
        &b.button("ol.nodes > li.node:nth-child(2) .node-head", "Up")
            .await,
    )
    .await;
    b.click(&b.button(FORM, "Create inbound hook").await).await;
    b.wait_text(".notice", "Inbound hook created").await;
    let (_, list) = app.get("/inbound").await;
    let workflow = &list["data"][0]["workflow"];
    assert_eq!(
        workflow[0],
        json!({"type": "set", "name": "seen", "value": "yes"})
    );
    assert_eq!(workflow[1]["then"][0]["expression"], "amount > 1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_inbound_edits_a_signed_hook_keeping_its_secret_and_deletes_it() {
    let app = spawn_app(&Backend::Sqlite).await;
    let (status, hook) = app
        .post(
            "/inbound",
            json!({"name": "github", "auth": {"type": "signature", "preset": "github", "secret": "gh-secret"},
                   "workflow": [{"type": "set", "name": "seen", "value": "yes"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{hook}");
    let id = hook["id"].as_str().unwrap();
    let url = app.hook_url(&hook);
    let Some(b) = signed_in(&app).await else {
        return;
    };
    b.goto(&format!("{}/ui/#/inbound/{id}", app.base)).await;
    b.wait_text(
        "[data-field='auth.secret']",
        "Saved; leave blank to keep it",
    )
    .await;
    // Rename, make it sync and answer from the workflow; the blank secret is sent back as ****.
    b.fill(&b.by_label(FORM, "Name").await, "github pushes")
        .await;
    b.click(&b.by_label(FORM, "Sync: answer after the workflow").await)
        .await;
    b.click(&b.button(FORM, "Add node").await).await;
    let second = "ol.nodes > li.node:nth-child(2)";
    response_node(&b, second, "202", "seen={{ seen }}").await;
    assert_labelled(&b).await;
    b.click(&b.button(FORM, "Save changes").await).await;
    b.wait_text(".notice", "Saved.").await;
    b.wait_text("h1", "github pushes").await;
    b.wait_text(".hook-url", "auth: signature: github; mode: sync")
        .await;
    b.screenshots("inbound-signed").await;

    let body = r#"{"ref": "refs/heads/main"}"#;
    let secret = SigningSecret::parse_plain("gh-secret").unwrap();
    let sig = sign_hmac_sha256(&secret, body.as_bytes(), HmacEncoding::Hex, Some("sha256="));
    let resp = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .header("x-hub-signature-256", sig)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::ACCEPTED,
        "the saved secret still verifies"
    );
    assert_eq!(resp.text().await.unwrap(), "seen=yes");

    // Delete, after confirming: the URL is gone.
    b.click(&b.button("main", "Delete inbound hook").await)
        .await;
    b.wait_text("dialog", "cannot be undone").await;
    b.click(&b.button("dialog", "Delete").await).await;
    b.wait_text("h1", "Inbound hooks").await;
    let (status, _) = app.get(&format!("/inbound/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let gone = reqwest::Client::new().post(&url).send().await.unwrap();
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
}
