//! The client commands against a running server: tables by default, the server's JSON with
//! `--json`, and each resource group (webhooks, events, deliveries, schedules, inbound).

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::backend_test;
use crate::support::{command, free_port, hookd, wait_ready, Backend, Counter, Proc, TOKEN};

/// A server with its worker, delivering to loopback.
async fn server(db: &str) -> (Proc, String) {
    let listen = format!("127.0.0.1:{}", free_port());
    let base = format!("http://{listen}");
    let proc = hookd(
        &["serve", "--listen", &listen],
        db,
        &[
            ("HOOKD_ADMIN_TOKEN", TOKEN),
            ("HOOKD_PUBLIC_URL", &base),
            ("HOOKD_DELIVERY__ALLOW_NETWORKS", "[\"127.0.0.0/8\"]"),
        ],
    );
    wait_ready(&base).await;
    (proc, base)
}

/// What one CLI run printed.
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        assert!(self.ok, "failed: {}", self.stderr);
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }

    fn text(&self) -> &str {
        assert!(self.ok, "failed: {}", self.stderr);
        &self.stdout
    }
}

/// `hookd <args>` as a client of `base`, with the admin token in its environment.
async fn cli(base: &str, args: &[&str]) -> Run {
    let mut cmd = command(args, "", &[("HOOKD_SERVER", base), ("HOOKD_TOKEN", TOKEN)]);
    cmd.env_remove("HOOKD_DATABASE_URL").stderr(Stdio::piped());
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("run hookd"))
        .await
        .unwrap();
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `hookd <resource> create --data <body> --json`: the created record.
async fn create(base: &str, resource: &str, body: &Value) -> Value {
    let data = body.to_string();
    cli(base, &[resource, "create", "--data", &data, "--json"])
        .await
        .json()
}

/// The line of `text` that starts with `field` (a `field  value` line of one object).
fn field_line<'t>(text: &'t str, field: &str) -> &'t str {
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(field))
        .unwrap_or_else(|| panic!("no `{field}` line in:\n{text}"))
}

/// The table row of `text` that names `id`.
fn row<'t>(text: &'t str, id: &str) -> Vec<&'t str> {
    text.lines()
        .find(|l| l.split_whitespace().any(|w| w == id))
        .unwrap_or_else(|| panic!("no row for {id} in:\n{text}"))
        .split_whitespace()
        .collect()
}

backend_test!(webhooks_events_and_deliveries_from_the_command_line);
async fn webhooks_events_and_deliveries_from_the_command_line(b: Backend) {
    let (db, _temp) = b.fresh_db().await;
    let (_server, base) = server(&db).await;
    let receiver = Counter::start(Duration::ZERO).await;
    let url = format!("http://{}/orders", receiver.addr);

    let body = json!({"name": "orders", "url": url, "events": [{"type": "order.*"}]});
    let webhook = create(&base, "webhooks", &body).await;
    let webhook_id = webhook["id"].as_str().unwrap().to_owned();

    let list = cli(&base, &["webhooks", "list"]).await;
    let header: Vec<&str> = list
        .text()
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(header, ["ID", "NAME", "ACTIVE", "URL", "EVENTS", "CIRCUIT"]);
    assert_eq!(
        row(list.text(), &webhook_id)[1..5],
        ["orders", "true", &url, "order.*"]
    );

    let published = cli(
        &base,
        &[
            "events",
            "publish",
            "--type",
            "order.paid",
            "--data",
            r#"{"n": 1}"#,
            "--json",
        ],
    )
    .await;
    let event_id = published.json()["id"].as_str().unwrap().to_owned();
    let event = cli(&base, &["events", "get", &event_id]).await;
    assert!(field_line(event.text(), "type").ends_with("order.paid"));
    assert!(field_line(event.text(), "data").ends_with(r#"{"n":1}"#));

    // The delivery succeeds; the filters find it, and a failed-only list is empty.
    let deadline = Instant::now() + Duration::from_secs(30);
    let succeeded = loop {
        let page = cli(
            &base,
            &[
                "deliveries",
                "list",
                "--status",
                "succeeded",
                "--webhook",
                &webhook_id,
                "--json",
            ],
        )
        .await
        .json();
        if page["data"].as_array().is_some_and(|d| !d.is_empty()) {
            break page;
        }
        assert!(Instant::now() < deadline, "never delivered: {page}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(succeeded["data"][0]["event_id"], event_id.as_str());
    let delivery_id = succeeded["data"][0]["id"].as_str().unwrap().to_owned();
    let failed = cli(
        &base,
        &[
            "deliveries",
            "list",
            "--status",
            "failed",
            "--webhook",
            &webhook_id,
        ],
    )
    .await;
    assert_eq!(failed.text(), "(none)\n");
    let by_event = cli(&base, &["deliveries", "list", "--event", &event_id]).await;
    assert_eq!(row(by_event.text(), &delivery_id)[1], "succeeded");
    // One delivery with its attempts beneath.
    let shown = cli(&base, &["deliveries", "get", &delivery_id]).await;
    assert!(field_line(shown.text(), "status").ends_with("succeeded"));
    assert!(shown.text().contains("\nattempts:\n"), "{}", shown.text());

    // A batch, from a bare array, answers one row per event.
    let batch = json!([{"type": "order.a", "data": {}}, {"type": "order.b", "data": {}}]);
    let answer = cli(&base, &["events", "batch", "--data", &batch.to_string()]).await;
    assert_eq!(answer.text().lines().count(), 3, "{}", answer.text());
    receiver.wait_distinct(3, Duration::from_secs(30)).await;

    // The dashboard's numbers: the three attempts, once their outcomes are recorded.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let series = cli(&base, &["deliveries", "stats", "--webhook", &webhook_id]).await;
        let rows: Vec<Vec<&str>> = series
            .text()
            .lines()
            .skip_while(|l| *l != "buckets:")
            .skip(2)
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(rows.len(), 60, "60 minutes: {}", series.text());
        let sum =
            |column: usize| -> u64 { rows.iter().map(|r| r[column].parse::<u64>().unwrap()).sum() };
        if sum(1) == 3 {
            assert_eq!(
                (sum(2), sum(3)),
                (3, 0),
                "succeeded, failed: {}",
                series.text()
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never counted: {}",
            series.text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let day = cli(&base, &["deliveries", "stats", "--window", "24h", "--json"])
        .await
        .json();
    assert_eq!(day["buckets"].as_array().map(Vec::len), Some(24), "{day}");

    let stats = cli(&base, &["webhooks", "stats", "--json"]).await.json();
    assert_eq!(stats["data"][0]["webhook_id"], webhook_id.as_str());
    let secret = cli(&base, &["webhooks", "secret", &webhook_id, "--json"])
        .await
        .json();
    assert!(
        secret["secret"].as_str().unwrap().starts_with("whsec_"),
        "{secret}"
    );
    let preview = cli(&base, &["webhooks", "preview", &webhook_id, "--json"])
        .await
        .json();
    assert_eq!(preview["url"], url.as_str());

    let off = cli(&base, &["webhooks", "disable", &webhook_id, "--json"])
        .await
        .json();
    assert_eq!(off["active"], false);
    let gone = cli(&base, &["webhooks", "delete", &webhook_id]).await;
    assert_eq!(
        gone.text().split_whitespace().collect::<Vec<_>>(),
        ["deleted", &webhook_id]
    );
    let missing = cli(&base, &["webhooks", "get", &webhook_id]).await;
    assert!(!missing.ok);
    assert!(missing.stderr.contains("404"), "{}", missing.stderr);
}

backend_test!(schedules_and_inbound_hooks_from_the_command_line);
async fn schedules_and_inbound_hooks_from_the_command_line(b: Backend) {
    let (db, _temp) = b.fresh_db().await;
    let (_server, base) = server(&db).await;
    let receiver = Counter::start(Duration::ZERO).await;
    let url = format!("http://{}/nightly", receiver.addr);
    let body = json!({"name": "target", "url": url});
    let webhook = create(&base, "webhooks", &body).await;
    let webhook_id = webhook["id"].as_str().unwrap().to_owned();

    let body = json!({"name": "nightly", "webhook_id": webhook_id, "cron": "0 3 * * *"});
    let schedule = create(&base, "schedules", &body).await;
    let schedule_id = schedule["id"].as_str().unwrap().to_owned();
    assert_eq!(schedule["active"], true);

    let paused = cli(&base, &["schedules", "disable", &schedule_id, "--json"])
        .await
        .json();
    assert_eq!(
        (&paused["active"], &paused["next_run_at"]),
        (&json!(false), &Value::Null)
    );
    let resumed = cli(&base, &["schedules", "enable", &schedule_id]).await;
    assert!(field_line(resumed.text(), "active").ends_with("true"));
    let list = cli(&base, &["schedules", "list"]).await;
    assert_eq!(
        row(list.text(), &schedule_id)[1..5],
        ["nightly", "true", &webhook_id, "0"]
    );
    let preview = cli(&base, &["schedules", "preview", &schedule_id, "--json"])
        .await
        .json();
    assert_eq!(preview["url"], url.as_str());
    let unsaved = cli(
        &base,
        &[
            "schedules",
            "preview",
            "--data",
            &body.to_string(),
            "--json",
        ],
    )
    .await;
    assert_eq!(unsaved.json()["url"], url.as_str());
    let neither = cli(&base, &["schedules", "preview"]).await;
    assert!(
        !neither.ok && neither.stderr.contains("--data"),
        "{}",
        neither.stderr
    );

    let run = cli(&base, &["schedules", "run", &schedule_id, "--json"])
        .await
        .json();
    assert!(run["delivery_id"].is_string(), "{run}");
    receiver.wait_distinct(1, Duration::from_secs(30)).await;
    let gone = cli(&base, &["schedules", "delete", &schedule_id]).await;
    assert!(gone.text().starts_with("deleted"));

    // An inbound hook: its URL takes a request, which shows as an execution.
    let body = json!({"name": "orders in", "mode": "sync", "workflow": []});
    let hook = create(&base, "inbound", &body).await;
    let hook_id = hook["id"].as_str().unwrap().to_owned();
    let hook_url = hook["url"].as_str().unwrap().to_owned();
    let list = cli(&base, &["inbound", "list"]).await;
    assert_eq!(
        row(list.text(), &hook_id)[1..],
        ["orders", "in", "true", &hook_url]
    );
    let http = reqwest::Client::new();
    let answer = http.post(&hook_url).body("{}").send().await.unwrap();
    assert!(answer.status().is_success(), "{}", answer.status());
    let executions = cli(&base, &["inbound", "executions", &hook_id, "--json"])
        .await
        .json();
    let execution_id = executions["data"][0]["id"].as_str().unwrap().to_owned();
    let table = cli(&base, &["inbound", "executions", &hook_id]).await;
    assert_eq!(row(table.text(), &execution_id)[1], "succeeded");
    let execution = cli(&base, &["inbound", "execution", &execution_id]).await;
    assert!(field_line(execution.text(), "hook_id").ends_with(&hook_id));

    let off = cli(&base, &["inbound", "disable", &hook_id, "--json"])
        .await
        .json();
    assert_eq!(off["active"], false);
    let refused = http.post(&hook_url).body("{}").send().await.unwrap();
    assert_eq!(refused.status().as_u16(), 404);
    cli(&base, &["inbound", "enable", &hook_id]).await.text();
    let parse = json!({"url": "/x?a=1", "json": {"b": 2}});
    let parsed = cli(
        &base,
        &["inbound", "parse", "--data", &parse.to_string(), "--json"],
    )
    .await;
    assert_eq!(parsed.json()["query"], json!(["a"]));
    assert!(cli(&base, &["inbound", "delete", &hook_id]).await.ok);
    let missing = cli(&base, &["inbound", "get", &hook_id]).await;
    assert!(
        !missing.ok && missing.stderr.contains("404"),
        "{}",
        missing.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stalls_is_named_after_the_timeout() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });
    let started = Instant::now();
    let run = cli(&base, &["webhooks", "list", "--timeout", "1"]).await;
    assert!(!run.ok);
    assert!(
        run.stderr.contains("no answer within 1 s") && run.stderr.contains("--timeout"),
        "{}",
        run.stderr
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let zero = cli(&base, &["webhooks", "list", "--timeout", "0"]).await;
    assert!(
        !zero.ok && zero.stderr.contains("--timeout"),
        "{}",
        zero.stderr
    );
    held.abort();
}
