//! Separate processes on one database: first start, worker sharing, and crash safety.

use std::time::Duration;

use serde_json::json;

use crate::backend_test;
use crate::support::{free_port, hookd, read_until, wait_ready, Api, Backend, Counter, TOKEN};

backend_test!(first_start_prints_an_admin_token_once);
async fn first_start_prints_an_admin_token_once(b: Backend) {
    let (db, _temp) = b.fresh_db().await;
    let listen = format!("127.0.0.1:{}", free_port());
    let mut first = hookd(&["serve", "--listen", &listen], &db, &[]);
    let lines = read_until(&mut first, |l| l.contains("Admin token"));
    let token_line = lines
        .iter()
        .find(|l| l.contains("Admin token"))
        .expect("token printed");
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("http://{listen}/api/v1"))),
        "{lines:?}"
    );
    let token = token_line.rsplit(' ').next().unwrap().to_owned();
    let base = format!("http://{listen}");
    wait_ready(&base).await;
    let resp = reqwest::Client::new()
        .get(format!("{base}/api/v1/webhooks"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200, "the printed token works");
    drop(first);

    let mut second = hookd(&["serve", "--listen", &listen], &db, &[]);
    wait_ready(&base).await;
    let _ = second.0.kill();
    let lines = read_until(&mut second, |_| false);
    assert!(
        !lines.iter().any(|l| l.contains("Admin token")),
        "printed again: {lines:?}"
    );
}

/// Settings for the worker tests: a short lease so a killed worker's deliveries come back fast.
const WORKER_ENV: [(&str, &str); 4] = [
    ("HOOKD_ADMIN_TOKEN", TOKEN),
    ("HOOKD_DELIVERY__ALLOW_NETWORKS", "[\"127.0.0.0/8\"]"),
    ("HOOKD_DELIVERY__TIMEOUT_MS", "2000"),
    ("HOOKD_DELIVERY__LEASE_SECONDS", "8"),
];

async fn api_only(db: &str) -> (crate::support::Proc, Api) {
    let listen = format!("127.0.0.1:{}", free_port());
    let proc = hookd(
        &["serve", "--no-worker", "--listen", &listen],
        db,
        &WORKER_ENV,
    );
    let base = format!("http://{listen}");
    wait_ready(&base).await;
    (proc, Api::new(&base))
}

backend_test!(two_workers_share_the_work_without_duplicates);
async fn two_workers_share_the_work_without_duplicates(b: Backend) {
    let (db, _temp) = b.fresh_db().await;
    let (_api_proc, api) = api_only(&db).await;
    let rx = Counter::start(Duration::from_millis(2)).await;
    api.post(
        "/webhooks",
        json!({"name": "r", "url": format!("http://{}/", rx.addr)}),
    )
    .await;
    let _w1 = hookd(&["worker"], &db, &WORKER_ENV);
    let _w2 = hookd(&["worker"], &db, &WORKER_ENV);
    let events: Vec<_> = (0..300)
        .map(|i| json!({"type": "a.b", "data": {"i": i}}))
        .collect();
    api.post("/events/batch", json!({"events": events})).await;
    rx.wait_distinct(300, Duration::from_secs(60)).await;
    let seen = rx.seen.lock().unwrap().clone();
    let dups: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dups.is_empty(), "sent twice by live workers: {dups:?}");
}

backend_test!(a_rate_limit_and_an_in_flight_cap_hold_across_two_workers);
async fn a_rate_limit_and_an_in_flight_cap_hold_across_two_workers(b: Backend) {
    let (db, _temp) = b.fresh_db().await;
    let (_api_proc, api) = api_only(&db).await;
    let limited = Counter::start(Duration::from_millis(1)).await;
    let capped = Counter::start(Duration::from_millis(50)).await;
    let limited_hook = api
        .post(
            "/webhooks",
            json!({"name": "limited", "url": format!("http://{}/", limited.addr),
                "rate_limit_per_second": 20, "events": [{"type": "limited.*"}]}),
        )
        .await;
    api.post(
        "/webhooks",
        json!({"name": "capped", "url": format!("http://{}/", capped.addr),
            "max_in_flight": 3, "events": [{"type": "capped.*"}]}),
    )
    .await;
    let _w1 = hookd(&["worker"], &db, &WORKER_ENV);
    let _w2 = hookd(&["worker"], &db, &WORKER_ENV);
    for kind in ["limited", "capped"] {
        let events: Vec<_> = (0..80)
            .map(|i| json!({"type": format!("{kind}.x"), "data": {"i": i}}))
            .collect();
        api.post("/events/batch", json!({"events": events})).await;
    }
    limited.wait_distinct(80, Duration::from_secs(60)).await;
    capped.wait_distinct(80, Duration::from_secs(60)).await;
    api.wait_all_succeeded(160, Duration::from_secs(60)).await;
    // When the workers started each request (what the limit governs; arrivals add jitter).
    let id = limited_hook["id"].as_str().unwrap();
    let list = api
        .get(&format!("/deliveries?webhook_id={id}&limit=1000"))
        .await;
    let mut starts = Vec::new();
    for d in list["data"].as_array().unwrap() {
        let detail = api
            .get(&format!("/deliveries/{}", d["id"].as_str().unwrap()))
            .await;
        let at = detail["attempts"][0]["started_at"]
            .as_str()
            .unwrap()
            .to_owned();
        starts.push(
            chrono::DateTime::parse_from_rfc3339(&at)
                .unwrap()
                .timestamp_millis(),
        );
    }
    starts.sort();
    let busiest = (0..starts.len())
        .map(|i| {
            starts[i..]
                .iter()
                .take_while(|&&t| t < starts[i] + 1000)
                .count()
        })
        .max()
        .unwrap();
    assert_eq!(starts.len(), 80);
    assert!(
        busiest <= 24,
        "{busiest} requests started in one second at 20/s over two workers"
    );
    let max_open = capped.open.lock().unwrap().1;
    assert!(
        max_open <= 3,
        "{max_open} requests at once with max_in_flight 3"
    );
    api.wait_all_succeeded(160, Duration::from_secs(60)).await;
}

backend_test!(a_killed_worker_loses_nothing);
async fn a_killed_worker_loses_nothing(b: Backend) {
    let (db, _temp) = b.fresh_db().await;
    let (_api_proc, api) = api_only(&db).await;
    // A slow receiver keeps deliveries in flight when the worker dies.
    let rx = Counter::start(Duration::from_millis(300)).await;
    api.post(
        "/webhooks",
        json!({"name": "r", "url": format!("http://{}/", rx.addr)}),
    )
    .await;
    let events: Vec<_> = (0..40)
        .map(|i| json!({"type": "a.b", "data": {"i": i}}))
        .collect();
    api.post("/events/batch", json!({"events": events})).await;
    let mut doomed = hookd(&["worker"], &db, &WORKER_ENV);
    rx.wait_distinct(5, Duration::from_secs(30)).await;
    doomed.0.kill().unwrap(); // SIGKILL
    doomed.0.wait().unwrap();
    // Requests the worker had written before it died may still be arriving: they were in
    // flight too. No other worker runs yet, so once nothing new has come for a while, the
    // receiver has seen all of them.
    let mut quiet_since = (rx.distinct(), std::time::Instant::now());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while quiet_since.1.elapsed() < Duration::from_millis(500) {
        assert!(
            std::time::Instant::now() < deadline,
            "arrivals never stopped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        if rx.distinct() != quiet_since.0 {
            quiet_since = (rx.distinct(), std::time::Instant::now());
        }
    }
    let before: std::collections::HashMap<String, u32> = rx.seen.lock().unwrap().clone();
    let _next = hookd(&["worker"], &db, &WORKER_ENV);
    // Every delivery ends recorded as succeeded: the ones the killed worker had in flight come
    // back when their lease runs out.
    api.wait_all_succeeded(40, Duration::from_secs(60)).await;
    let after = rx.seen.lock().unwrap().clone();
    assert_eq!(after.len(), 40);
    let resent: Vec<_> = after
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| id)
        .collect();
    for id in &resent {
        assert!(
            before.contains_key(*id),
            "{id} was sent twice but was not in flight at the kill"
        );
    }
    assert!(
        !resent.is_empty(),
        "the deliveries in flight at the kill were sent again"
    );
}

/// A worker's `/metrics` until `hookd_workers` says `n`.
async fn wait_workers(metrics: &str, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let want = format!("hookd_workers {n}\n");
    loop {
        let body = match reqwest::get(metrics).await {
            Ok(resp) => resp.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if body.contains(&want) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{metrics} never counted {n} workers"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

backend_test!(a_killed_workers_share_of_the_webhooks_is_still_delivered);
async fn a_killed_workers_share_of_the_webhooks_is_still_delivered(b: Backend) {
    let (db, _temp) = b.fresh_db().await;
    let (_api_proc, api) = api_only(&db).await;
    let rx = Counter::start(Duration::ZERO).await;
    // Twenty webhooks: each worker owns some (all on one side has odds of one in half a million).
    for i in 0..20 {
        api.post(
            "/webhooks",
            json!({"name": format!("r{i}"), "url": format!("http://{}/{i}", rx.addr)}),
        )
        .await;
    }
    let (one, two) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let mut doomed = hookd(&["worker", "--listen", &one], &db, &WORKER_ENV);
    let _survivor = hookd(&["worker", "--listen", &two], &db, &WORKER_ENV);
    let survivor_metrics = format!("http://{two}/metrics");
    wait_workers(&format!("http://{one}/metrics"), 2).await;
    wait_workers(&survivor_metrics, 2).await;
    api.post("/events", json!({"type": "a.b", "data": {"round": 1}}))
        .await;
    rx.wait_distinct(20, Duration::from_secs(30)).await;
    doomed.0.kill().unwrap(); // SIGKILL: it never says it stopped
    doomed.0.wait().unwrap();
    // The dead worker still counts as alive for a while (10 s); its webhooks' deliveries go
    // through the survivor once they have waited a second, long before it is forgotten.
    api.post("/events", json!({"type": "a.b", "data": {"round": 2}}))
        .await;
    rx.wait_distinct(40, Duration::from_secs(30)).await;
    let metrics = reqwest::get(&survivor_metrics)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("hookd_workers 2\n"),
        "delivered only once the dead worker was forgotten"
    );
    // Once the dead worker is forgotten, the survivor owns every webhook.
    wait_workers(&survivor_metrics, 1).await;
    api.post("/events", json!({"type": "a.b", "data": {"round": 3}}))
        .await;
    rx.wait_distinct(60, Duration::from_secs(30)).await;
    api.wait_all_succeeded(60, Duration::from_secs(30)).await;
}

backend_test!(ambient_proxy_variables_are_ignored);
async fn ambient_proxy_variables_are_ignored(b: Backend) {
    let (db, _temp) = b.fresh_db().await;
    let listen = format!("127.0.0.1:{}", free_port());
    // A proxy that does not exist: a delivery that went through it would fail.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let mut env = WORKER_ENV.to_vec();
    env.extend([
        ("HTTP_PROXY", dead.as_str()),
        ("http_proxy", dead.as_str()),
        ("ALL_PROXY", dead.as_str()),
    ]);
    let _proc = hookd(&["serve", "--listen", &listen], &db, &env);
    let base = format!("http://{listen}");
    wait_ready(&base).await;
    let api = Api::new(&base);
    let rx = Counter::start(Duration::ZERO).await;
    api.post(
        "/webhooks",
        json!({"name": "r", "url": format!("http://{}/", rx.addr)}),
    )
    .await;
    api.post("/events", json!({"type": "a.b"})).await;
    rx.wait_distinct(1, Duration::from_secs(30)).await;
}

backend_test!(worker_processes_fire_each_schedule_occurrence_once);
async fn worker_processes_fire_each_schedule_occurrence_once(b: Backend) {
    let (db, _temp) = b.fresh_db().await;
    let (_api_proc, api) = api_only(&db).await;
    let rx = Counter::start(Duration::from_millis(1)).await;
    let wh = api
        .post(
            "/webhooks",
            json!({"name": "r", "url": format!("http://{}/", rx.addr)}),
        )
        .await;
    let _workers: Vec<_> = (0..3)
        .map(|_| hookd(&["worker"], &db, &WORKER_ENV))
        .collect();
    api.post(
        "/schedules",
        json!({"name": "every second", "webhook_id": wh["id"], "every_seconds": 1}),
    )
    .await;
    rx.wait_distinct(5, Duration::from_secs(60)).await;
    let seen = rx.seen.lock().unwrap().clone();
    let dups: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dups.is_empty(), "sent twice: {dups:?}");
    // Every stored firing is a distinct occurrence, one period (or as many as it folded in)
    // after the one before.
    let events = api.get("/events?limit=1000").await;
    let mut fired: Vec<(i64, i64)> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "schedule.fired")
        .map(|e| {
            let at = e["data"]["occurrence"].as_str().unwrap();
            let at = chrono::DateTime::parse_from_rfc3339(at).unwrap();
            (
                at.timestamp_millis(),
                e["data"]["skipped"].as_i64().unwrap(),
            )
        })
        .collect();
    fired.sort();
    assert!(fired.len() >= 5, "{fired:?}");
    for pair in fired.windows(2) {
        let ((a, _), (b, skipped)) = (pair[0], pair[1]);
        assert_eq!(b - a, 1000 * (1 + skipped), "occurrences {fired:?}");
    }
}

backend_test!(an_async_execution_survives_a_kill_between_answer_and_run);
async fn an_async_execution_survives_a_kill_between_answer_and_run(b: Backend) {
    let (db, _temp) = b.fresh_db().await;
    // An API without a worker answers the hook; nothing runs the workflow before the kill.
    let (mut api_proc, api) = api_only(&db).await;
    let rx = Counter::start(Duration::from_millis(1)).await;
    api.post(
        "/webhooks",
        json!({"name": "r", "url": format!("http://{}/", rx.addr),
               "events": [{"type": "payment.*"}]}),
    )
    .await;
    let hook = api
        .post(
            "/inbound",
            json!({"name": "payments",
                   "workflow": [{"type": "publish", "event_type": "payment.received",
                                 "data": "{{ body | tojson }}"}]}),
        )
        .await;
    let key = hook["key"].as_str().unwrap();
    let answer = reqwest::Client::new()
        .post(format!("{}/hooks/{key}", api.base))
        .header("content-type", "application/json")
        .body(r#"{"amount": 12}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    let execution = answer.headers()["x-hookd-execution"]
        .to_str()
        .unwrap()
        .to_owned();
    api_proc.0.kill().unwrap(); // SIGKILL, right after the answer
    api_proc.0.wait().unwrap();

    // Restarted with its worker, hookd runs the stored execution.
    let listen = format!("127.0.0.1:{}", free_port());
    let _again = hookd(&["serve", "--listen", &listen], &db, &WORKER_ENV);
    let base = format!("http://{listen}");
    wait_ready(&base).await;
    rx.wait_distinct(1, Duration::from_secs(30)).await;
    let api = Api::new(&base);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let e = api.get(&format!("/executions/{execution}")).await;
        if e["status"] == "succeeded" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never finished: {e}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

backend_test!(a_server_killed_while_publishing_loses_no_accepted_event);
async fn a_server_killed_while_publishing_loses_no_accepted_event(b: Backend) {
    let (db, _temp) = b.fresh_db().await;
    let (mut doomed, api) = api_only(&db).await;
    let rx = Counter::start(Duration::ZERO).await;
    api.post(
        "/webhooks",
        json!({"name": "r", "url": format!("http://{}/", rx.addr)}),
    )
    .await;
    // Publishers that go on until the server is gone, keeping every event it accepted.
    let accepted = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut publishers = tokio::task::JoinSet::new();
    for p in 0..4 {
        let (base, accepted) = (api.base.clone(), accepted.clone());
        publishers.spawn(async move {
            let client = reqwest::Client::new();
            for i in 0.. {
                let sent = client
                    .post(format!("{base}/api/v1/events"))
                    .bearer_auth(TOKEN)
                    .json(&json!({"type": "a.b", "data": {"p": p, "i": i}}))
                    .send()
                    .await;
                let Ok(resp) = sent else { return };
                if resp.status() != 202 {
                    return;
                }
                let Ok(body) = resp.json::<serde_json::Value>().await else {
                    return;
                };
                accepted
                    .lock()
                    .unwrap()
                    .push(body["id"].as_str().unwrap().to_owned());
            }
        });
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while accepted.lock().unwrap().len() < 200 {
        assert!(std::time::Instant::now() < deadline, "publishing too slow");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    doomed.0.kill().unwrap(); // SIGKILL, mid-load
    doomed.0.wait().unwrap();
    while publishers.join_next().await.is_some() {}
    let accepted = accepted.lock().unwrap().clone();

    let (_api_proc, api) = api_only(&db).await;
    let _worker = hookd(&["worker"], &db, &WORKER_ENV);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    for id in &accepted {
        loop {
            let list = api.get(&format!("/deliveries?event_id={id}")).await;
            let statuses: Vec<&str> = list["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["status"].as_str().unwrap())
                .collect();
            assert_eq!(statuses.len(), 1, "accepted event {id} kept its delivery");
            if statuses[0] == "succeeded" {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{id}: still {statuses:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert!(rx.distinct() >= accepted.len());
}

#[test]
fn an_unreachable_postgres_is_named_at_start_within_the_acquire_timeout() {
    // A closed local port: nothing listens there.
    let url = format!("postgres://postgres@127.0.0.1:{}/hookd", free_port());
    let started = std::time::Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hookd"))
        .args(["migrate"])
        .env_clear()
        .env("HOOKD_DATABASE_URL", &url)
        .env("HOOKD_DATABASE_ACQUIRE_TIMEOUT_SECONDS", "1")
        .env("HOOKD_SECRETS_KEY", crate::support::POSTGRES_SECRETS_KEY)
        .current_dir(std::env::temp_dir())
        .output()
        .expect("run hookd");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("database_url: cannot open"), "{stderr}");
    assert!(
        stderr.to_lowercase().contains("refused"),
        "the cause is named: {stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "gave up after {:?}",
        started.elapsed()
    );
}

#[test]
fn logs_have_no_colour_when_standard_error_is_not_a_terminal() {
    let temp = std::env::temp_dir().join(format!("hookd-log-{:016x}.db", rand::random::<u64>()));
    let out = crate::support::command(&["migrate"], &format!("sqlite://{}", temp.display()), &[])
        .env("HOOKD_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("run hookd");
    drop(crate::support::TempDb::new(temp));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("INFO") || stderr.contains("WARN"),
        "it logged: {stderr}"
    );
    assert!(
        !stderr.contains('\u{1b}'),
        "colour codes in a pipe: {stderr:?}"
    );
}

#[test]
fn shell_completions_name_every_command() {
    for shell in ["bash", "zsh", "fish"] {
        let out = crate::support::command(&["completions", shell], "sqlite://unused.db", &[])
            .output()
            .expect("run hookd");
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{shell}: {out:?}");
        for command in ["serve", "worker", "deliveries", "verify", "secrets"] {
            assert!(script.contains(command), "{shell} script lacks {command}");
        }
    }
}

#[test]
fn a_mistyped_delivery_status_is_refused_naming_the_flag_and_the_choices() {
    let out = crate::support::command(
        &["deliveries", "list", "--status", "faild", "--token", "t"],
        "sqlite://unused.db",
        &[],
    )
    .stderr(std::process::Stdio::piped())
    .output()
    .expect("run hookd");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("--status") && stderr.contains("faild") && stderr.contains("failed"),
        "{stderr}"
    );
}

#[test]
fn output_cut_off_by_its_reader_ends_the_command_quietly() {
    // `hookd completions bash | head -1`: the reader goes away before the output is written.
    for args in [&["completions", "bash"][..], &["secrets", "generate-key"]] {
        let mut child = crate::support::command(args, "", &[])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {:?}: {stderr}", out.status);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}
