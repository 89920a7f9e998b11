//! PostgreSQL keeps reading by index as retained history grows: a server that served its first
//! requests on empty tables (when PostgreSQL may settle on generic plans for its prepared
//! statements) then serves more beside 100,000 finished deliveries, events, attempts and
//! executions, and no statement of the publish → claim → send → record path, the inbound
//! intake, the execution worker or the dashboard's last hour (its history is older) reads any
//! of those tables whole. Measured with the server's
//! own table statistics, flushed once its connections have ended.

use hookd_store_sql::secrets::Keys;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use hookd_core::ids::WebhookId;
use hookd_core::Store;
use hookd_server::WorkerMode;
use hookd_store_postgres::{testing, PgStore};
use serde_json::json;

use crate::support::{random_suffix, spawn_on, test_settings, Backend, TestApp, TestReceiver};

/// Rows of history per table: one whole read of any of them reads at least this many rows,
/// more than all the reads of the small tables before.
const HISTORY: u64 = 100_000;
/// Rounds on each side of the growth; PostgreSQL considers a generic plan after five runs.
const ROUNDS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_statements_read_no_table_whole_as_history_grows() {
    let Some(Backend::Postgres(base)) = Backend::postgres() else {
        return;
    };
    let suffix = random_suffix();
    let schema = format!("hookd_test_{suffix}");
    let name = format!("hookd_plans_{suffix}");
    let url = testing::fresh_schema_url(&base, &suffix).await.unwrap();
    let url = testing::with_application_name(&url, &name);
    let pg = PgStore::connect(&url, Keys::ephemeral()).await.unwrap();
    pg.migrate().await.unwrap();
    let app = spawn_on(Arc::new(pg.clone()), test_settings(), WorkerMode::Embedded).await;
    let rx = TestReceiver::start().await;
    let webhook = app
        .create_webhook(json!({"name": "r", "url": rx.url("/"), "events": [{"type": "plan.*"}]}))
        .await;
    let (status, hook) = app
        .post("/inbound", json!({"name": "h", "mode": "async"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{hook}");
    let hook_url = app.hook_url(&hook);

    let mut expected = 0;
    for round in 0..ROUNDS {
        expected = serve_a_round(&app, &rx, &hook_url, ("small", round), expected).await;
    }
    let an_hour_ago = chrono::Utc::now().timestamp_millis() - 3_600_000;
    let webhook_id = WebhookId::parse(webhook["id"].as_str().unwrap()).unwrap();
    pg.seed_history(&webhook_id, HISTORY, an_hour_ago)
        .await
        .unwrap();
    testing::seed_executions(&url, hook["id"].as_str().unwrap(), HISTORY, an_hour_ago)
        .await
        .unwrap();
    for round in 0..ROUNDS {
        expected = serve_a_round(&app, &rx, &hook_url, ("grown", round), expected).await;
    }

    drop(app);
    pg.close().await;
    testing::end_connections(&base, &name, Duration::from_secs(20))
        .await
        .unwrap();
    let reads = testing::sequential_reads(&base, &schema).await.unwrap();
    for table in ["deliveries", "events", "attempts", "executions"] {
        let (_, scans, rows) = reads
            .iter()
            .find(|(t, _, _)| t == table)
            .unwrap_or_else(|| panic!("no statistics for {table}: {reads:?}"));
        assert!(
            *rows < HISTORY as i64,
            "{table}: {scans} sequential scans read {rows} rows; some statement reads the \
             table whole (all tables: {reads:?})"
        );
    }
    testing::drop_schema(&base, &schema).await.unwrap();
}

/// One of each hot request, each waited for to its end: an event, the same event again under
/// its idempotency key, a batch of two, and a call to the async inbound hook. Returns how many
/// deliveries the receiver has had.
async fn serve_a_round(
    app: &TestApp,
    rx: &TestReceiver,
    hook_url: &str,
    (phase, round): (&str, usize),
    mut expected: usize,
) -> usize {
    let key = format!("{phase}-{round}");
    let event = json!({"type": "plan.one", "data": {"round": round}, "idempotency_key": key});
    let (status, first) = app.post("/events", event.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    let (status, again) = app.post("/events", event).await;
    assert!(status.is_success(), "{again}");
    assert_eq!(again["id"], first["id"], "the key's first event");
    let batch = json!({"events": [{"type": "plan.two"}, {"type": "plan.three"}]});
    let (status, out) = app.post("/events/batch", batch).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{out}");
    expected += 3;
    rx.wait_for(expected).await;
    for event in std::iter::once(&first).chain(out["data"].as_array().unwrap()) {
        let id = event["id"].as_str().unwrap();
        for d in app.deliveries_of(id).await {
            app.wait_delivery(d["id"].as_str().unwrap(), |d| d["status"] == "succeeded")
                .await;
        }
    }
    let answer = reqwest::Client::new()
        .post(hook_url)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    let execution = answer.headers()["x-hookd-execution"]
        .to_str()
        .unwrap()
        .to_owned();
    crate::inbound::finished(app, &execution).await;
    let webhook = app.deliveries_of(first["id"].as_str().unwrap()).await[0]["webhook_id"].clone();
    for query in [
        String::new(),
        format!("?webhook_id={}", webhook.as_str().unwrap()),
    ] {
        let (status, stats) = app.get(&format!("/stats/deliveries{query}")).await;
        assert_eq!(status, StatusCode::OK, "{stats}");
    }
    expected
}
