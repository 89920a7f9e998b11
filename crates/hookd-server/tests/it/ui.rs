//! The admin UI in a real headless Chromium against a real hookd and a real receiver: sign in,
//! build a webhook in the form with its live preview, test it, publish an event and watch its
//! delivery arrive, see an API validation error beside its field, and build schedules whose next
//! runs are shown and which run on demand, set a webhook's limits and see its circuit. Every page
//! is also saved as a screenshot at 1280 and 390 px wide (`ui-shots` in the temp directory).

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{
    spawn_app, spawn_app_with, test_settings, Backend, Reply, TestApp, TestReceiver, TOKEN,
};
use crate::webdriver::Browser;

/// Opens the UI and signs in with the admin token, landing on the webhooks page.
pub(crate) async fn signed_in(app: &TestApp) -> Option<Browser> {
    let b = Browser::start().await?;
    b.goto(&format!("{}/ui/", app.base)).await;
    let token = b.by_label("main", "Admin token").await;
    b.fill(&token, TOKEN).await;
    b.click(&b.button("main", "Sign in").await).await;
    b.wait_text("h1", "Webhooks").await;
    Some(b)
}

/// Every form control on the page has a `<label>`.
pub(crate) async fn assert_labelled(b: &Browser) {
    let unlabelled = b
        .eval(
            "return [...document.querySelectorAll('input, select, textarea')] \
               .filter(c => !c.labels || !c.labels.length).map(c => c.outerHTML)",
            vec![],
        )
        .await;
    assert_eq!(unlabelled, json!([]), "controls without a label");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_serves_its_files_with_a_strict_policy() {
    let app = spawn_app(&Backend::Sqlite).await;
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_redirect
        .get(format!("{}/ui", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(r.headers()["location"], "/ui/");
    let r = app
        .client
        .get(format!("{}/ui/", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe"),
        "{csp}"
    );
    let r = app
        .client
        .get(format!("{}/ui/app.js", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    let r = app
        .client
        .get(format!("{}/ui/nope.js", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_sign_in_refuses_a_wrong_token_and_accepts_the_right_one() {
    let app = spawn_app(&Backend::Sqlite).await;
    let Some(b) = Browser::start().await else {
        return;
    };
    b.goto(&format!("{}/ui/#/events", app.base)).await;
    // Not signed in: sent to sign-in, which remembers where the user was going.
    let token = b.by_label("main", "Admin token").await;
    assert!(b.current_url().await.contains("#/signin"));
    b.screenshots("signin").await;
    b.fill(&token, "not-the-token").await;
    b.click(&b.button("main", "Sign in").await).await;
    b.wait_text(".banner", "That token was not accepted.").await;
    b.screenshots("signin-error").await;
    // By keyboard: Enter in the field submits.
    b.fill(&token, &format!("{TOKEN}\u{E007}")).await;
    b.wait_text("h1", "Events").await;
    // Sign out: back to sign-in, and pages need the token again.
    b.click(&b.button("header", "Sign out").await).await;
    b.by_label("main", "Admin token").await;
    b.goto(&format!("{}/ui/#/webhooks", app.base)).await;
    b.by_label("main", "Admin token").await;
    // A token the API stops accepting signs the user out at the next call.
    b.eval("sessionStorage.setItem('hookd.token', 'revoked')", vec![])
        .await;
    b.goto(&format!("{}/ui/#/deliveries", app.base)).await;
    b.wait_text(".notice", "Your session ended").await;
    b.by_label("main", "Admin token").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_builds_a_webhook_with_live_preview_and_tests_it() {
    let app = spawn_app(&Backend::Sqlite).await;
    let receiver = TestReceiver::start().await;
    receiver.always(Reply {
        body: "thanks from the receiver".into(),
        ..Reply::status(201)
    });
    let Some(b) = signed_in(&app).await else {
        return;
    };
    b.screenshots("webhooks-empty").await;
    b.click(&b.button("main", "New webhook").await).await;
    let form = ".webhook-form";
    b.fill(&b.by_label(form, "Name").await, "crm").await;
    b.fill(
        &b.by_label(form, "Target URL").await,
        &receiver.url("/hook"),
    )
    .await;
    b.choose(&b.by_label(form, "Type").await, "basic").await;
    b.fill(&b.by_label(form, "Username").await, "apio").await;
    b.fill(&b.by_label(form, "Password").await, "s3cret").await;
    b.choose(&b.by_label(form, "Format").await, "json").await;
    let template = r#"{"who": {{ data.name | tojson }}, "n": {{ data.id }}}"#;
    b.fill(&b.by_label(form, "Template").await, template).await;

    // The live preview renders the body for the sample event, with the credentials masked.
    b.wait_text(".preview pre", r#""who": "example""#).await;
    assert_labelled(&b).await;
    let headers = b.wait_text(".preview table", "Authorization").await;
    assert!(headers.contains("****"), "{headers}");
    assert!(
        !headers.contains("s3cret") && !headers.contains("YXBpbzpzM2NyZXQ"),
        "{headers}"
    );
    b.screenshots("webhook-new").await;

    b.click(&b.button(form, "Create webhook").await).await;
    b.wait_text(".notice", "Webhook created.").await;
    let (_, list) = app.get("/webhooks").await;
    let hook = &list["data"][0];
    assert_eq!(hook["auth"]["type"], "basic");
    assert_eq!(hook["body"]["template"], template);

    // Test: the receiver's status and body are shown.
    b.click(&b.button("main", "Test").await).await;
    let result = b.wait_text(".test-result", "HTTP 201").await;
    assert!(result.contains("thanks from the receiver"), "{result}");
    let got = receiver.wait_for(1).await;
    assert_eq!(
        got[0].header("authorization"),
        Some("Basic YXBpbzpzM2NyZXQ=")
    );
    assert_eq!(got[0].json(), json!({"who": "example", "n": 1}));
    b.screenshots("webhook-edit").await;
    assert_labelled(&b).await;

    // The list shows it with its last delivery.
    b.click(&b.button("header", "Webhooks").await).await;
    b.wait_text("table", "succeeded").await;
    b.screenshots("webhooks").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_publishes_an_event_and_shows_deliveries_as_they_come() {
    let app = spawn_app(&Backend::Sqlite).await;
    let receiver = TestReceiver::start().await;
    app.create_webhook(json!({"name": "orders", "url": receiver.url("/orders"),
        "events": [{"type": "order.*"}]}))
        .await;
    let Some(b) = signed_in(&app).await else {
        return;
    };

    b.click(&b.button("header", "Events").await).await;
    b.fill(&b.by_label("main", "Type").await, "order.paid")
        .await;
    b.fill(&b.by_label("main", "Data (JSON)").await, r#"{"total": 42}"#)
        .await;
    b.click(&b.button("main", "Publish").await).await;
    b.wait_text(".notice", "1 delivery queued").await;
    b.wait_text("table", "order.paid").await;
    b.screenshots("events").await;
    assert_labelled(&b).await;

    // The deliveries page, then a second event published elsewhere: it appears by itself.
    b.click(&b.button("header", "Deliveries").await).await;
    b.wait_text("table", "succeeded").await;
    let (status, second) = app
        .post("/events", json!({"type": "order.shipped", "data": {}}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let second = second["id"].as_str().unwrap();
    b.wait_text("table", second).await;
    b.screenshots("deliveries").await;
    assert_labelled(&b).await;

    // A delivery's detail: its attempt with the request headers and the receiver's answer.
    b.click(&b.find("tbody a[href^='#/deliveries/dlv_']").await)
        .await;
    let attempt = b.wait_text(".attempt", "Attempt 1").await;
    assert!(
        attempt.contains("HTTP 200") && attempt.contains("webhook-signature"),
        "{attempt}"
    );
    b.click(&b.button("main", "Retry now").await).await;
    b.wait_text(".attempts", "Attempt 2").await;
    b.screenshots("delivery").await;

    // The event's own page lists its delivery.
    b.click(&b.find(".summary a[href^='#/events/evt_']").await)
        .await;
    b.wait_text("h1", "Event evt_").await;
    b.wait_text("table", "succeeded").await;
    b.screenshots("event").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_shows_api_validation_errors_next_to_their_field() {
    let app = spawn_app(&Backend::Sqlite).await;
    let Some(b) = signed_in(&app).await else {
        return;
    };
    b.goto(&format!("{}/ui/#/webhooks/new", app.base)).await;
    let form = ".webhook-form";
    b.fill(&b.by_label(form, "Name").await, "bad").await;
    b.fill(&b.by_label(form, "Target URL").await, "ftp://example.com/x")
        .await;
    b.click(&b.button(form, "Create webhook").await).await;
    let err = b
        .wait_text("[data-field=url] .field-error", "must use http or https")
        .await;
    assert!(err.starts_with("url:"), "{err}");

    // An error inside a list names its row: events[0].url.
    b.fill(
        &b.by_label(form, "Target URL").await,
        "https://example.com/x",
    )
    .await;
    b.click(&b.button(form, "Add event entry").await).await;
    b.fill(&b.by_label(form, "Route URL regex").await, "(unclosed")
        .await;
    b.click(&b.button(form, "Create webhook").await).await;
    b.wait_text("[data-field='events[0].url'] .field-error", "events[0].url")
        .await;
    b.screenshots("webhook-error").await;
    let (_, list) = app.get("/webhooks").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_edits_disables_reveals_and_deletes_a_webhook() {
    let app = spawn_app(&Backend::Sqlite).await;
    let receiver = TestReceiver::start().await;
    let name = "<b>bold</b> & <script>co</script>";
    let hook = app
        .create_webhook(json!({"name": name, "url": receiver.url("/h"),
            "auth": {"type": "bearer", "token": "tok-1"}}))
        .await;
    let id = hook["id"].as_str().unwrap();
    let Some(b) = signed_in(&app).await else {
        return;
    };
    // API text is shown as text, never parsed as HTML.
    b.wait_text("tbody", name).await;
    let injected = b
        .eval(
            "return document.querySelector('main b, main script')",
            vec![],
        )
        .await;
    assert!(injected.is_null());
    b.click(&b.find("tbody a[href^='#/webhooks/wh_']").await)
        .await;

    // Remove the default Content-Type: saved as null; the masked token is kept as it was.
    b.click(&b.button("[data-field=headers]", "Remove").await)
        .await;
    b.wait_text("[data-field=headers]", "Content-Type is removed")
        .await;
    b.wait_for(
        "a preview without Content-Type",
        "const t = document.querySelector('.preview table'); \
         return t && t.getClientRects().length && !t.innerText.includes('Content-Type');",
        vec![],
    )
    .await;
    b.click(&b.button(".webhook-form", "Save changes").await)
        .await;
    b.wait_text(".notice", "Saved.").await;
    let (_, saved) = app.get(&format!("/webhooks/{id}")).await;
    assert_eq!(saved["headers"], json!({"Content-Type": null}));
    let (status, _) = app.post(&format!("/webhooks/{id}/test"), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let got = receiver.wait_for(1).await;
    assert_eq!(got[0].header("authorization"), Some("Bearer tok-1"));
    assert_eq!(got[0].header("content-type"), None);

    // Disable, reveal the secret.
    b.click(&b.button(".side", "Disable").await).await;
    b.wait_text(".side", "Enable").await;
    let (_, saved) = app.get(&format!("/webhooks/{id}")).await;
    assert_eq!(saved["active"], false);
    b.click(&b.button(".side", "Reveal secret").await).await;
    let (_, secret) = app.get(&format!("/webhooks/{id}/secret")).await;
    b.wait_text("code.secret", secret["secret"].as_str().unwrap())
        .await;
    b.screenshots("webhook-manage").await;

    // Delete, after confirming.
    b.click(&b.button(".side", "Delete webhook").await).await;
    b.wait_text("dialog", "cannot be undone").await;
    b.screenshots("webhook-delete").await;
    b.click(&b.button("dialog", "Delete").await).await;
    b.wait_text("h1", "Webhooks").await;
    let (status, _) = app.get(&format!("/webhooks/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_previews_form_bodies_with_an_hmac_signature() {
    let app = spawn_app(&Backend::Sqlite).await;
    let Some(b) = signed_in(&app).await else {
        return;
    };
    b.goto(&format!("{}/ui/#/webhooks/new", app.base)).await;
    let form = ".webhook-form";
    b.fill(&b.by_label(form, "Name").await, "frappe leads")
        .await;
    b.fill(
        &b.by_label(form, "Target URL").await,
        "https://crm.example.com/hook",
    )
    .await;
    b.choose(&b.by_label(form, "Format").await, "form").await;
    b.click(&b.button(form, "Add form field").await).await;
    b.fill(&b.by_label(form, "Key").await, "lead").await;
    b.fill(&b.by_label(form, "Value template").await, "{{ doc.name }}")
        .await;
    b.choose(&b.by_label(form, "Signature scheme").await, "hmac-sha256")
        .await;
    b.fill(
        &b.by_label(form, "Signature header").await,
        "X-Frappe-Webhook-Signature",
    )
    .await;
    b.wait_text(".preview pre", "lead=example").await;
    let headers = b
        .wait_text(".preview table", "X-Frappe-Webhook-Signature")
        .await;
    assert!(
        headers.contains("application/x-www-form-urlencoded"),
        "{headers}"
    );
    b.click(&b.button(form, "Create webhook").await).await;
    b.wait_text(".notice", "Webhook created.").await;
    let (_, list) = app.get("/webhooks").await;
    let hook = &list["data"][0];
    assert_eq!(
        hook["body"],
        json!({"format": "form", "fields": [{"key": "lead", "value": "{{ doc.name }}"}]})
    );
    assert_eq!(hook["signature"]["header"], "X-Frappe-Webhook-Signature");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_filters_deliveries_and_loads_more() {
    let app = spawn_app(&Backend::Sqlite).await;
    // A 4xx: the endpoint answers, so its circuit stays closed while all 30 fail.
    let hooks = app.good_and_bad(400, 30).await;
    let bad_hook = &hooks.bad_hook;
    let Some(b) = signed_in(&app).await else {
        return;
    };

    // 60 deliveries: a page of 50, then the rest.
    b.click(&b.button("header", "Deliveries").await).await;
    let rows = "return document.querySelectorAll('main tbody tr').length";
    b.wait_for("a first page", &format!("{rows} === 50"), vec![])
        .await;
    b.click(&b.button("main", "Load more").await).await;
    b.wait_for("the second page", &format!("{rows} === 60"), vec![])
        .await;

    // Filter: the failed deliveries of "bad".
    let webhook = b.by_label(".filters", "Webhook").await;
    b.choose(&webhook, bad_hook["id"].as_str().unwrap()).await;
    b.choose(&b.by_label(".filters", "Status").await, "failed")
        .await;
    b.click(&b.button(".filters", "Filter").await).await;
    b.wait_for(
        "30 failed deliveries of bad",
        "const rows = [...document.querySelectorAll('main tbody tr')]; \
         return rows.length === 30 && rows.every(r => r.innerText.includes('failed') && r.innerText.includes('bad'));",
        vec![],
    )
    .await;
    assert!(b.current_url().await.contains("status=failed"));

    // The webhooks list: each row's last outcome and 24 h success rate, from one stats call.
    b.click(&b.button("header", "Webhooks").await).await;
    b.wait_for(
        "the statistics of both rows",
        "const rows = [...document.querySelectorAll('main tbody tr')].map(r => r.innerText); \
         return rows.some(r => r.includes('good') && r.includes('succeeded') && r.includes('100 % (30/30)')) \
             && rows.some(r => r.includes('bad') && r.includes('failed') && r.includes('0 % (0/30)'));",
        vec![],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_asks_for_masked_secrets_again_and_rotates_the_signing_secret() {
    let app = spawn_app(&Backend::Sqlite).await;
    let hook = app
        .create_webhook(json!({"name": "basic", "url": "https://example.com/h",
            "auth": {"type": "basic", "username": "u1", "password": "p1"}}))
        .await;
    let id = hook["id"].as_str().unwrap();
    let Some(b) = signed_in(&app).await else {
        return;
    };
    b.goto(&format!("{}/ui/#/webhooks/{id}", app.base)).await;
    let form = ".webhook-form";
    // The saved password is masked by the API: changing the username alone would save the mask.
    b.fill(&b.by_label(form, "Username").await, "u2").await;
    b.click(&b.button(form, "Save changes").await).await;
    b.wait_text("[data-field='auth.password'] .field-error", "re-enter it")
        .await;
    b.fill(&b.by_label(form, "Password").await, "p2").await;
    b.click(&b.button(form, "Save changes").await).await;
    b.wait_text(".notice", "Saved.").await;
    let (_, saved) = app.get(&format!("/webhooks/{id}")).await;
    assert_eq!(
        saved["auth"],
        json!({"type": "basic", "username": "u2", "password": "****"})
    );

    // Rotate after confirming: the new secret is shown and is the one the API returns.
    let (_, before) = app.get(&format!("/webhooks/{id}/secret")).await;
    b.click(&b.button(".side", "Rotate secret").await).await;
    b.click(&b.button("dialog", "Rotate").await).await;
    let shown = b.wait_text("code.secret", "whsec_").await;
    let (_, after) = app.get(&format!("/webhooks/{id}/secret")).await;
    assert_ne!(before["secret"], after["secret"]);
    assert_eq!(shown.trim(), after["secret"].as_str().unwrap());
}

/// Opens the new-schedule form and fills its name and webhook.
async fn new_schedule(b: &Browser, app: &TestApp, name: &str, webhook_id: &str) {
    b.goto(&format!("{}/ui/#/schedules/new", app.base)).await;
    let form = ".schedule-form";
    b.fill(&b.by_label(form, "Name").await, name).await;
    b.choose(&b.by_label(form, "Webhook").await, webhook_id)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_creates_a_cron_schedule_in_a_time_zone_and_shows_its_next_runs() {
    let app = spawn_app(&Backend::Sqlite).await;
    let hook = app
        .create_webhook(json!({"name": "exports", "url": "https://example.com/h"}))
        .await;
    let Some(b) = signed_in(&app).await else {
        return;
    };
    b.click(&b.button("header", "Schedules").await).await;
    b.wait_text(".empty", "No schedules yet").await;
    b.click(&b.button("main", "New schedule").await).await;
    let form = ".schedule-form";
    b.fill(&b.by_label(form, "Name").await, "nightly export")
        .await;
    b.choose(
        &b.by_label(form, "Webhook").await,
        hook["id"].as_str().unwrap(),
    )
    .await;
    b.fill(&b.by_label(form, "Cron expression").await, "0 2 * * *")
        .await;
    b.fill(&b.by_label(form, "Time zone").await, "Europe/Paris")
        .await;
    assert_labelled(&b).await;
    b.screenshots("schedule-new").await;
    b.click(&b.button(form, "Create schedule").await).await;

    // Saved: the next five runs, at 02:00 Paris time (+01:00 or +02:00).
    b.wait_text(".notice", "Schedule created.").await;
    let runs = b.wait_text(".next-runs", "T02:00:00+0").await;
    let at_two = runs.lines().filter(|l| l.contains("T02:00:00+0")).count();
    assert_eq!(at_two, 5, "{runs}");
    let (_, list) = app.get("/schedules").await;
    let saved = &list["data"][0];
    assert_eq!(saved["cron"], "0 2 * * *");
    assert_eq!(saved["timezone"], "Europe/Paris");
    assert_eq!(saved["webhook_id"], hook["id"]);
    assert_labelled(&b).await;
    b.screenshots("schedule").await;

    // The list pages by 50, and says when each runs, in words, and to which webhook.
    for i in 0..50 {
        let (status, _) = app
            .post(
                "/schedules",
                json!({"name": format!("hourly {i}"), "webhook_id": hook["id"], "every_seconds": 3600}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    b.click(&b.button("header", "Schedules").await).await;
    let rows = "return document.querySelectorAll('main tbody tr').length";
    b.wait_for("a first page", &format!("{rows} === 50"), vec![])
        .await;
    b.click(&b.button("main", "Load more").await).await;
    b.wait_for("the second page", &format!("{rows} === 51"), vec![])
        .await;
    b.wait_text("tbody tr", "every 1 h").await;
    let row = b.wait_text("tbody tr", "daily at 02:00").await;
    assert!(
        row.contains("Europe/Paris") && row.contains("exports"),
        "{row}"
    );
    b.screenshots("schedules").await;

    // Edit: pausing it plans no runs; the cron and zone are kept.
    b.click(&b.button("tbody", "nightly export").await).await;
    b.click(&b.by_label(form, "Active").await).await;
    b.click(&b.button(form, "Save changes").await).await;
    b.wait_text(".notice", "Saved.").await;
    b.wait_text(".side", "Paused").await;
    let (_, paused) = app
        .get(&format!("/schedules/{}", saved["id"].as_str().unwrap()))
        .await;
    assert_eq!(paused["active"], false);
    assert_eq!(paused["next_runs"], json!([]));
    assert_eq!(paused["timezone"], "Europe/Paris");

    // Delete, after confirming.
    b.click(&b.button(".side", "Delete schedule").await).await;
    b.wait_text("dialog", "cannot be undone").await;
    b.click(&b.button("dialog", "Delete").await).await;
    b.wait_text("h1", "Schedules").await;
    let (status, _) = app
        .get(&format!("/schedules/{}", saved["id"].as_str().unwrap()))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_shows_schedule_errors_next_to_the_cron_and_time_zone_fields() {
    let app = spawn_app(&Backend::Sqlite).await;
    let hook = app
        .create_webhook(json!({"name": "t", "url": "https://example.com/h"}))
        .await;
    let Some(b) = signed_in(&app).await else {
        return;
    };
    new_schedule(&b, &app, "broken", hook["id"].as_str().unwrap()).await;
    let form = ".schedule-form";
    b.fill(&b.by_label(form, "Cron expression").await, "61 * * * *")
        .await;
    b.click(&b.button(form, "Create schedule").await).await;
    let err = b.wait_text("[data-field=cron] .field-error", "cron").await;
    assert!(err.starts_with("cron:"), "{err}");
    b.screenshots("schedule-error").await;

    b.fill(&b.by_label(form, "Cron expression").await, "0 2 * * *")
        .await;
    b.fill(&b.by_label(form, "Time zone").await, "Mars/Olympus")
        .await;
    b.click(&b.button(form, "Create schedule").await).await;
    b.wait_text("[data-field=timezone] .field-error", "timezone")
        .await;
    let cron_error = b
        .eval(
            "return document.querySelector('[data-field=cron] .field-error').hidden",
            vec![],
        )
        .await;
    assert_eq!(cron_error, json!(true), "the old error is cleared");
    let (_, list) = app.get("/schedules").await;
    assert_eq!(list["data"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_runs_an_interval_schedule_now_and_the_receiver_gets_its_message() {
    let app = spawn_app(&Backend::Sqlite).await;
    let receiver = TestReceiver::start().await;
    let hook = app
        .create_webhook(json!({"name": "chat", "url": receiver.url("/hook")}))
        .await;
    let Some(b) = signed_in(&app).await else {
        return;
    };
    new_schedule(&b, &app, "backup check", hook["id"].as_str().unwrap()).await;
    let form = ".schedule-form";
    b.click(&b.by_label(form, "Every N seconds").await).await;
    b.fill(&b.by_label(form, "Every (seconds)").await, "3600")
        .await;
    let template = r#"{"text": "{{ data.name }} ran, manual={{ data.manual | tojson }}"}"#;
    b.fill(&b.by_label(form, "Message template").await, template)
        .await;
    b.click(&b.button(form, "Create schedule").await).await;
    b.wait_text(".notice", "Schedule created.").await;
    b.wait_text(".side", "every 1 h").await;
    let (_, list) = app.get("/schedules").await;
    let saved = &list["data"][0];
    assert_eq!(saved["every_seconds"], 3600);
    assert_eq!(saved["message"], template);

    // Run now: the queued delivery is shown, and the receiver gets the rendered message.
    b.click(&b.button(".side", "Run now").await).await;
    let shown = b.wait_text(".run-result", "Queued delivery dlv_").await;
    let got = receiver.wait_for(1).await;
    assert_eq!(
        got[0].json(),
        json!({"text": "backup check ran, manual=true"})
    );
    let delivery = got[0].header("webhook-id").unwrap();
    assert!(shown.contains(delivery), "{shown} names {delivery}");
    b.screenshots("schedule-run").await;

    // Its link leads to the delivery, which links back to the schedule.
    b.click(&b.find(".run-result a").await).await;
    b.wait_text(".attempt", "HTTP 200").await;
    b.wait_text(".summary", saved["id"].as_str().unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_previews_a_schedules_request_and_marks_one_whose_message_fails() {
    let app = spawn_app(&Backend::Sqlite).await;
    let receiver = TestReceiver::start().await;
    let hook = app
        .create_webhook(json!({"name": "chat", "url": receiver.url("/hook")}))
        .await;
    let Some(b) = signed_in(&app).await else {
        return;
    };
    new_schedule(&b, &app, "standup", hook["id"].as_str().unwrap()).await;
    let form = ".schedule-form";
    b.fill(&b.by_label(form, "Cron expression").await, "0 9 * * 1-5")
        .await;
    b.fill(&b.by_label(form, "Time zone").await, "UTC").await;
    let template = r#"{"text": "{{ schedule.name }} at {{ schedule.occurrence }}"}"#;
    b.fill(&b.by_label(form, "Message template").await, template)
        .await;
    // The preview follows the form: the request the next firing sends.
    let shown = b.wait_text(".preview", "standup at ").await;
    assert!(shown.contains(&receiver.url("/hook")), "{shown}");
    assert!(shown.contains("T09:00:00Z"), "{shown}");
    assert_labelled(&b).await;
    b.screenshots("schedule-preview").await;
    // A message that cannot render says why, in the preview.
    b.fill(
        &b.by_label(form, "Message template").await,
        "{{ ticket.id }}",
    )
    .await;
    b.wait_text(".preview", "Cannot preview: message").await;
    b.fill(&b.by_label(form, "Message template").await, template)
        .await;
    b.wait_text(".preview", "standup at ").await;
    b.click(&b.button(form, "Create schedule").await).await;
    b.wait_text(".notice", "Schedule created.").await;
    assert_eq!(receiver.received().len(), 0, "a preview sends nothing");

    // Broken behind the page's back and run: the side panel and the list mark it.
    let (_, list) = app.get("/schedules").await;
    let path = format!("/schedules/{}", list["data"][0]["id"].as_str().unwrap());
    let (status, _) = app
        .call("PATCH", &path, Some(json!({"message": "{{ ticket.id }}"})))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.post(&format!("{path}/run"), json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let error = b.wait_text(".side .last-error", "message: ").await;
    assert!(error.contains("undefined"), "{error}");
    b.screenshots("schedule-last-error").await;
    b.click(&b.button("header", "Schedules").await).await;
    let row = b.wait_text("tbody tr", "failing").await;
    assert!(row.contains("standup"), "{row}");
}

/// No missing value was written into the page as text.
async fn assert_no_stray_text(b: &Browser) {
    let text = b
        .eval("return document.querySelector('main').innerText", vec![])
        .await;
    let text = text.as_str().unwrap();
    assert!(
        !text.contains("undefined") && !text.contains("null"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_sets_a_webhooks_in_flight_cap_and_rate_limit() {
    let app = spawn_app(&Backend::Sqlite).await;
    let Some(b) = signed_in(&app).await else {
        return;
    };
    b.click(&b.button("main", "New webhook").await).await;
    let form = ".webhook-form";
    b.fill(&b.by_label(form, "Name").await, "throttled").await;
    b.fill(
        &b.by_label(form, "Target URL").await,
        "https://example.com/hook",
    )
    .await;
    assert_no_stray_text(&b).await;
    b.fill(&b.by_label(form, "Max in flight").await, "3").await;
    // Out of range: the API's error is shown under its field, and nothing is saved.
    b.fill(&b.by_label(form, "Rate limit per second").await, "0")
        .await;
    b.click(&b.button(form, "Create webhook").await).await;
    let err = b
        .wait_text(
            "[data-field=rate_limit_per_second] .field-error",
            "must be between",
        )
        .await;
    assert!(err.starts_with("rate_limit_per_second:"), "{err}");
    let (_, list) = app.get("/webhooks").await;
    assert_eq!(list["data"], json!([]));
    b.screenshots("webhook-limits-error").await;

    b.fill(&b.by_label(form, "Rate limit per second").await, "20")
        .await;
    b.click(&b.button(form, "Create webhook").await).await;
    b.wait_text(".notice", "Webhook created.").await;
    let (_, list) = app.get("/webhooks").await;
    let hook = &list["data"][0];
    assert_eq!(hook["max_in_flight"], 3);
    assert_eq!(hook["rate_limit_per_second"], 20);
    let id = hook["id"].as_str().unwrap();
    // The webhook's page shows both limits beside its (closed) circuit.
    let health = b.wait_text(".health", "20 per second").await;
    assert!(
        health.contains("closed") && health.contains("Max in flight\n3"),
        "{health}"
    );
    assert_no_stray_text(&b).await;
    assert_labelled(&b).await;

    // Blank again: saved as null, shown as the server default.
    b.fill(&b.by_label(form, "Max in flight").await, "").await;
    b.click(&b.button(form, "Save changes").await).await;
    b.wait_text(".notice", "Saved.").await;
    let (_, saved) = app.get(&format!("/webhooks/{id}")).await;
    assert_eq!(saved["max_in_flight"], json!(null));
    assert_eq!(saved["rate_limit_per_second"], 20);
    b.wait_text(".health", "server default").await;
    b.screenshots("webhook-limits").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_shows_an_open_circuit_in_the_list_and_on_the_webhook_page() {
    // A cool-down longer than the test: the circuit stays open while the browser looks at it.
    let mut settings = test_settings();
    settings.delivery.circuit.cooldown = Duration::from_secs(600);
    let app = spawn_app_with(
        &Backend::Sqlite,
        settings,
        hookd_server::WorkerMode::Embedded,
    )
    .await;
    // A port nothing listens on: every attempt is a connection error.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let hook = app
        .create_webhook(
            json!({"name": "down crm", "url": format!("http://127.0.0.1:{port}/hook"),
            "events": [{"type": "crm.*"}], "timeout_ms": 500}),
        )
        .await;
    let id = hook["id"].as_str().unwrap();
    app.create_webhook(json!({"name": "steady", "url": "https://example.com/h",
        "events": [{"type": "other.*"}], "rate_limit_per_second": 5}))
        .await;
    // Five first attempts fail in a row: the default policy opens the circuit.
    for i in 0..5 {
        let (status, _) = app
            .post("/events", json!({"type": "crm.updated", "data": {"i": i}}))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let open = loop {
        let (_, w) = app.get(&format!("/webhooks/{id}")).await;
        if w["circuit"] == "open" {
            break w;
        }
        assert!(Instant::now() < deadline, "the circuit never opened: {w}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(open["circuit_failures"].as_u64().unwrap() >= 5, "{open}");
    assert!(open["circuit_open_until"].is_string(), "{open}");

    // The list: a badge on the row whose circuit is open, none on the other.
    let Some(b) = signed_in(&app).await else {
        return;
    };
    let rows = b
        .wait_for(
            "both rows with their statistics",
            "const rows = [...document.querySelectorAll('main tbody tr')].map(r => r.innerText); \
             return rows.length === 2 && !rows.some(r => r.includes('…')) && rows;",
            vec![],
        )
        .await;
    let rows: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    let down = rows.iter().find(|r| r.contains("down crm")).unwrap();
    let steady = rows.iter().find(|r| r.contains("steady")).unwrap();
    assert!(down.contains("circuit open until "), "{down}");
    assert!(!steady.contains("circuit"), "{steady}");
    let badge = b
        .eval(
            "return document.querySelector('main tbody .c-open').title",
            vec![],
        )
        .await;
    assert!(
        badge.as_str().unwrap().contains("failures in a row"),
        "{badge}"
    );
    // The circuit came with the list: one statistics call for the page, no call per webhook.
    let calls = b
        .eval(
            "return performance.getEntriesByType('resource').map(e => new URL(e.name).pathname) \
               .filter(p => p.startsWith('/api/v1/webhooks/'))",
            vec![],
        )
        .await;
    assert_eq!(calls, json!(["/api/v1/webhooks/stats"]));
    b.screenshots("webhooks-circuit").await;

    // The webhook's page: the state, until when, the failures, and the limits' defaults.
    b.click(&b.button("tbody", "down crm").await).await;
    b.wait_text(".health .c-open", "open").await;
    let health = b.wait_text(".health", "Open until").await;
    let failures = open["circuit_failures"].to_string();
    for want in [
        "Failures in a row",
        failures.as_str(),
        "server default",
        "unlimited",
    ] {
        assert!(health.contains(want), "{want:?} in {health}");
    }
    b.screenshots("webhook-circuit").await;
}
