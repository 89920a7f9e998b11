//! The dashboard in a real headless Chromium: real deliveries to a receiver that answers and
//! one that fails, drawn as totals, bars and latency lines from `/stats/deliveries`, and
//! narrowed to one webhook and to the last day from its controls. Saved as screenshots like
//! the other pages.

use serde_json::{json, Value};

use crate::support::{spawn_app, Backend};
use crate::ui::{assert_labelled, signed_in};
use crate::webdriver::Browser;

/// The totals the summary shows, once it shows exactly these (visible elements only).
async fn wait_totals(b: &Browser, what: &str, attempts: u64, succeeded: u64, failed: u64) {
    b.wait_for(
        what,
        "const read = (k) => { const e = document.querySelector(`main [data-total=\"${k}\"]`); \
           return e && e.getClientRects().length ? e.innerText.trim() : null; }; \
         return read('attempts') === arguments[0] && read('succeeded') === arguments[1] \
           && read('failed') === arguments[2];",
        vec![
            json!(attempts.to_string()),
            json!(succeeded.to_string()),
            json!(failed.to_string()),
        ],
    )
    .await;
}

/// `[number of rects, sum of their counts]` of the bar chart's `kind` bars.
async fn bars(b: &Browser, kind: &str) -> Value {
    b.eval(
        "const r = [...document.querySelectorAll(`main svg rect[data-kind=\"${arguments[0]}\"]`)] \
           .filter(e => e.getClientRects().length); \
         return [r.length, r.reduce((n, e) => n + Number(e.dataset.count), 0)];",
        vec![json!(kind)],
    )
    .await
}

/// Waits until a chart shows the axis title `title` (SVG text has no `innerText`).
async fn wait_axis(b: &Browser, title: &str) {
    b.wait_for(
        &format!("the axis title {title:?}"),
        "return [...document.querySelectorAll('main svg text')] \
           .some(t => t.getClientRects().length && t.textContent === arguments[0]);",
        vec![json!(title)],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_dashboard_draws_the_windows_attempts_and_narrows_to_a_webhook() {
    let app = spawn_app(&Backend::Sqlite).await;
    let hooks = app.good_and_bad(500, 4).await;
    let bad_hook = &hooks.bad_hook;
    let Some(b) = signed_in(&app).await else {
        return;
    };

    b.click(&b.button("header", "Dashboard").await).await;
    b.wait_text("h1", "Dashboard").await;
    wait_totals(&b, "the last hour's totals", 8, 4, 4).await;
    let (succeeded, failed) = (bars(&b, "succeeded").await, bars(&b, "failed").await);
    assert!(succeeded[0].as_u64().unwrap() >= 1, "{succeeded}");
    assert_eq!((&succeeded[1], &failed[1]), (&json!(4), &json!(4)));
    let points = b
        .eval(
            "return document.querySelectorAll('main svg circle[data-series=\"p95\"]').length",
            vec![],
        )
        .await;
    assert!(points.as_u64().unwrap() >= 1, "latency points: {points}");
    b.wait_text("main figcaption", "p95 latency").await;
    wait_axis(&b, "Minute started (local time)").await;
    assert_labelled(&b).await;
    b.screenshots("dashboard").await;

    // One webhook: the failing one.
    let webhook = b.by_label(".filters", "Webhook").await;
    b.choose(&webhook, bad_hook["id"].as_str().unwrap()).await;
    wait_totals(&b, "the failing webhook's totals", 4, 0, 4).await;
    assert_eq!(bars(&b, "succeeded").await, json!([0, 0]));
    assert_eq!(bars(&b, "failed").await[1], json!(4));
    assert!(b.current_url().await.contains("webhook_id="));

    // The last day, per hour, still of that webhook.
    b.choose(&b.by_label(".filters", "Window").await, "24h")
        .await;
    wait_axis(&b, "Hour started (local time)").await;
    wait_totals(&b, "the failing webhook's day", 4, 0, 4).await;
    assert_eq!(b.value_of(".filters", "Webhook").await, bad_hook["id"]);
    b.screenshots("dashboard-day").await;
}
