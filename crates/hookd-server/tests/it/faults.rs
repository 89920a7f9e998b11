//! Faults a client can cause: input the database cannot store, and input that once panicked a
//! handler. Each gets a clear answer and harms no other request.

use hookd_store_sql::secrets::Keys;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use hookd_core::Store;
use hookd_server::WorkerMode;
use hookd_store_sqlite::SqliteStore;
use serde_json::{json, Value};

use crate::backend_test;
use crate::support::{
    random_suffix, spawn_app, spawn_app_with, spawn_on, test_settings, Backend, TestReceiver,
};

backend_test!(nul_characters_are_refused_by_field_beside_valid_publishers);
async fn nul_characters_are_refused_by_field_beside_valid_publishers(b: Backend) {
    let app = Arc::new(spawn_app(&b).await);
    let rx = TestReceiver::start().await;
    app.create_webhook(json!({"name": "all", "url": rx.url("/h")}))
        .await;
    let mut valid = tokio::task::JoinSet::new();
    for client in 0..8 {
        let app = app.clone();
        valid.spawn(async move {
            for n in 0..20 {
                let event =
                    json!({"type": "a.b", "model": "x", "data": {"client": client, "n": n}});
                let (status, out) = app.post("/events", event).await;
                assert_eq!(
                    status,
                    StatusCode::ACCEPTED,
                    "a valid event beside NULs: {out}"
                );
            }
        });
    }
    let poison: [(&str, Value, &str); 5] = [
        (
            "/events",
            json!({"type": "a.b", "model": "x\u{0}y"}),
            "model",
        ),
        (
            "/events",
            json!({"type": "a.b", "idempotency_key": "k\u{0}"}),
            "idempotency_key",
        ),
        (
            "/events",
            json!({"type": "a.b", "data": {"list": ["ok", "n\u{0}"]}}),
            "data.list[1]",
        ),
        (
            "/events/batch",
            json!({"events": [{"type": "a.b"}, {"type": "a.b", "model": "\u{0}"}]}),
            "events[1].model",
        ),
        (
            "/webhooks",
            json!({"name": "n\u{0}", "url": rx.url("/h")}),
            "name",
        ),
    ];
    for _ in 0..5 {
        for (path, body, field) in &poison {
            let (status, err) = app.post(path, body.clone()).await;
            assert_eq!(
                status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{path} {body}: {err}"
            );
            assert_eq!(err["error"]["field"], *field, "{err}");
            assert!(
                err["error"]["message"].as_str().unwrap().contains("NUL"),
                "{err}"
            );
        }
    }
    let (status, err) = app.get("/deliveries?webhook=wh%00x").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert_eq!(err["error"]["field"], "webhook", "{err}");
    while let Some(done) = valid.join_next().await {
        done.expect("a valid publisher");
    }
    assert_eq!(
        rx.wait_for(160).await.len(),
        160,
        "every valid event delivered"
    );
}

backend_test!(a_multibyte_character_after_an_index_is_a_field_error);
async fn a_multibyte_character_after_an_index_is_a_field_error(b: Backend) {
    let app = spawn_app(&b).await;
    let (status, out) = app
        .post(
            "/inbound/parse",
            json!({"url": "https://shop.example.com/cb?a[0]%C3%A9=1"}),
        )
        .await;
    assert!(
        status.is_success() || status.is_client_error(),
        "{status} {out}"
    );
    let (status, err) = app
        .post(
            "/inbound",
            json!({"name": "h", "mode": "async",
                   "parse": {"query": [{"path": "a[0]é", "alias": "x"}]}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_eq!(err["error"]["field"], "parse.query[0].path", "{err}");
    let (status, _) = app.get("/webhooks").await;
    assert_eq!(status, StatusCode::OK, "the server goes on");
}

/// `GET /ready`, on a connection of its own (a pooled one may have been cut by the outage).
async fn ready(app: &crate::support::TestApp) -> reqwest::Response {
    reqwest::get(format!("{}/ready", app.base)).await.unwrap()
}

/// A tmpfs of a few MiB mounted for one test (needs root, as CI runs), unmounted on drop.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(mib: u32) -> Option<Self> {
        if !is_root() {
            eprintln!("not root: the disk-full case needs to mount a tmpfs and is skipped");
            return None;
        }
        let dir = std::env::temp_dir().join(format!("hookd-full-{}", random_suffix()));
        std::fs::create_dir_all(&dir).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(&dir)
            .status()
            .expect("run mount");
        assert!(
            mounted.success(),
            "mount a {mib} MiB tmpfs on {}",
            dir.display()
        );
        Some(Self(dir))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Writes zeros to `path` until the disk is full.
fn fill(path: &std::path::Path) {
    use std::io::Write as _;
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while file.write_all(&chunk).is_ok() {}
    let _ = file.sync_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_writes_recover_by_themselves_once_a_full_disk_has_room() {
    let Some(disk) = SmallDisk::mount(8) else {
        return;
    };
    let url = format!("sqlite://{}", disk.0.join("hookd.db").display());
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::connect(&url, Keys::ephemeral())
            .await
            .expect("open"),
    );
    store.migrate().await.expect("migrate");
    let app = spawn_on(store, test_settings(), WorkerMode::Embedded).await;
    let rx = TestReceiver::start().await;
    app.create_webhook(json!({"name": "all", "url": rx.url("/h")}))
        .await;
    let mut accepted = 0;
    let (status, _) = app.post("/events", json!({"type": "a.b"})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    accepted += 1;

    let filler = disk.0.join("filler");
    fill(&filler);
    let big = "x".repeat(200 * 1024);
    let mut refused = None;
    for _ in 0..40 {
        let (status, out) = app
            .post("/events", json!({"type": "a.b", "data": {"big": big}}))
            .await;
        if status == StatusCode::ACCEPTED {
            accepted += 1;
        } else {
            refused = Some((status, out));
            break;
        }
    }
    let (status, out) = refused.expect("a write failed while the disk was full");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{out}");
    assert_eq!(out["error"]["code"], "unavailable", "{out}");

    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, out) = app.post("/events", json!({"type": "a.b"})).await;
        if status == StatusCode::ACCEPTED {
            accepted += 1;
            break;
        }
        assert!(
            Instant::now() < deadline,
            "writes still fail after the disk has room again: {status} {out}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, _) = app
        .post("/webhooks", json!({"name": "after", "url": rx.url("/h")}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "other writes work again too");
    assert_eq!(ready(&app).await.status(), 200, "ready again");
    assert!(
        rx.wait_for(accepted).await.len() >= accepted,
        "every accepted event is delivered"
    );
}

backend_test!(slow_clients_are_cut_and_do_not_starve_the_others);
async fn slow_clients_are_cut_and_do_not_starve_the_others(b: Backend) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut settings = test_settings();
    settings.http.header_timeout = Duration::from_secs(1);
    settings.http.body_timeout = Duration::from_secs(1);
    settings.http.max_connections = 8;
    let app = spawn_app_with(&b, settings, WorkerMode::Embedded).await;
    let addr = app.base.trim_start_matches("http://").to_owned();

    // More stalled connections than the server serves at once: half a request, then nothing.
    let mut stalled = Vec::new();
    for _ in 0..20 {
        let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
        tcp.write_all(b"GET /health HTTP/1.1\r\nHost: hookd\r\n")
            .await
            .unwrap();
        stalled.push(tcp);
    }
    // Fresh clients: a pooled keep-alive connection idle past the (short) header timeout may
    // be closed by the server just as it is reused.
    let started = Instant::now();
    let health = reqwest::Client::new()
        .get(format!("{}/health", app.base))
        .send()
        .await;
    assert_eq!(health.expect("/health answers").status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "/health waited {:?} behind stalled clients",
        started.elapsed()
    );
    let mut first = stalled.remove(0);
    let mut rest = Vec::new();
    let cut = tokio::time::timeout(Duration::from_secs(5), first.read_to_end(&mut rest)).await;
    assert!(
        cut.is_ok(),
        "a client that never finishes its headers is disconnected"
    );

    // A body that stops half way gets 408, not a connection held open.
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /api/v1/events HTTP/1.1\r\nHost: hookd\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"type\": ",
        crate::support::TOKEN
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 1024];
        loop {
            match slow.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
            if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the slow body was answered in time");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let webhooks = reqwest::Client::new()
        .get(app.url("/webhooks"))
        .bearer_auth(crate::support::TOKEN)
        .send()
        .await;
    assert_eq!(webhooks.unwrap().status(), 200, "the server goes on");
}

/// A PostgreSQL cluster of the test's own: initdb into a temporary directory, on a free port on
/// 127.0.0.1, stopped and removed on drop. The machine's shared server is never touched.
struct PrivatePg {
    bin: std::path::PathBuf,
    dir: std::path::PathBuf,
    port: u16,
}

impl PrivatePg {
    /// `None` (the case is skipped) where PostgreSQL's server binaries are not installed.
    fn start() -> Option<Self> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .find(|b| b.join("initdb").exists());
        let Some(bin) = bin else {
            eprintln!("no PostgreSQL server binaries: the outage case is skipped");
            return None;
        };
        let dir = std::env::temp_dir().join(format!("hookd-pg-{}", random_suffix()));
        std::fs::create_dir_all(&dir).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pg = Self { bin, dir, port };
        // initdb refuses to run as root: the cluster then belongs to the `postgres` user.
        if is_root() {
            let owned = std::process::Command::new("chown")
                .args(["-R", "postgres"])
                .arg(&pg.dir)
                .status();
            assert!(owned.expect("run chown").success());
        }
        pg.ctl(&format!(
            "{} -D {} -A trust -U postgres --no-sync",
            pg.bin.join("initdb").display(),
            pg.data()
        ));
        pg.up();
        Some(pg)
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn up(&self) {
        self.ctl(&format!(
            "{} -D {} -w -l {}/log -o '-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off' start",
            self.bin.join("pg_ctl").display(),
            self.data(),
            self.dir.display(),
            self.port,
            self.dir.display()
        ));
    }

    fn down(&self) {
        self.ctl(&format!(
            "{} -D {} -w -m fast stop",
            self.bin.join("pg_ctl").display(),
            self.data()
        ));
    }

    /// Runs a shell command line as the cluster's owner (`postgres` when the test runs as root).
    fn ctl(&self, line: &str) {
        let status = as_owner(line).status();
        assert!(status.expect("run").success(), "failed: {line}");
    }
}

/// `sh -c line`, as the `postgres` user when the test runs as root (initdb and the server
/// refuse to run as root).
fn as_owner(line: &str) -> std::process::Command {
    let mut cmd = if is_root() {
        let mut su = std::process::Command::new("su");
        su.args(["postgres", "-s", "/bin/sh", "-c"]);
        su
    } else {
        let mut sh = std::process::Command::new("sh");
        sh.arg("-c");
        sh
    };
    cmd.arg(line);
    cmd
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let line = format!(
            "{} -D {} -m immediate stop",
            self.bin.join("pg_ctl").display(),
            self.data()
        );
        let _ = as_owner(&line).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Polls `f` until it gives `Some`, for at most `within`.
async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    within: Duration,
    what: &str,
    mut f: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_answers_503_fast_and_recovers_by_itself() {
    let Some(pg) = PrivatePg::start() else {
        return;
    };
    let url = hookd_store_postgres::testing::fresh_schema_url(&pg.url(), &random_suffix())
        .await
        .expect("a schema in the private cluster");
    let store: Arc<dyn Store> = Arc::new(
        hookd_store_postgres::PgStore::connect(&url, Keys::ephemeral())
            .await
            .expect("connect"),
    );
    store.migrate().await.expect("migrate");
    let app = spawn_on(store, test_settings(), WorkerMode::Embedded).await;
    let rx = TestReceiver::start().await;
    app.create_webhook(json!({"name": "all", "url": rx.url("/h")}))
        .await;
    let mut accepted = 0;
    for n in 0..5 {
        let (status, _) = app
            .post("/events", json!({"type": "a.b", "data": {"n": n}}))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        accepted += 1;
    }
    rx.wait_for(accepted).await;
    // An async inbound hook: its public URL reads the hook and counts its queue.
    let (status, hook) = app
        .post("/inbound", json!({"name": "in", "mode": "async"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{hook}");
    let hook_url = app.hook_url(&hook);
    let call_hook = || async {
        let fresh = reqwest::Client::new();
        fresh.post(&hook_url).body("{}").send().await.unwrap()
    };
    assert_eq!(call_hook().await.status(), 200);

    pg.down();
    let started = Instant::now();
    let refused = call_hook().await;
    assert_eq!(
        refused.status(),
        503,
        "an inbound call while the database is down"
    );
    assert!(refused.headers().contains_key("retry-after"));
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    for (method, path) in [("POST", "/events"), ("GET", "/webhooks")] {
        let body = (method == "POST").then(|| json!({"type": "a.b"}));
        let started = Instant::now();
        let (status, err) = app.call(method, path, body).await;
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{method} {path}: {err}"
        );
        assert_eq!(err["error"]["code"], "unavailable", "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "{method} {path} answered after {:?}",
            started.elapsed()
        );
    }
    let started = Instant::now();
    let not_ready = ready(&app).await;
    assert_eq!(not_ready.status(), 503);
    assert!(not_ready.headers().contains_key("retry-after"));
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );

    pg.up();
    eventually(
        Duration::from_secs(30),
        "publishing works again",
        || async {
            let (status, _) = app
                .post("/events", json!({"type": "a.b", "data": {"n": "after"}}))
                .await;
            (status == StatusCode::ACCEPTED).then_some(())
        },
    )
    .await;
    accepted += 1;
    // A restart with no request in between leaves the pool full of connections the server
    // dropped; a connection idle that long is checked before use and replaced, so none of
    // them fails a request.
    pg.down();
    pg.up();
    for n in 0..20 {
        let (status, out) = app
            .post("/events", json!({"type": "a.b", "data": {"n": n}}))
            .await;
        assert_eq!(
            status,
            StatusCode::ACCEPTED,
            "publish {n} after the outage: {out}"
        );
        accepted += 1;
    }
    assert_eq!(ready(&app).await.status(), 200, "ready again");
    assert_eq!(
        call_hook().await.status(),
        200,
        "inbound calls are taken again"
    );
    assert!(
        rx.wait_for(accepted).await.len() >= accepted,
        "every accepted event is delivered"
    );
}

backend_test!(expensive_conditions_stop_at_their_time_budget);
async fn expensive_conditions_stop_at_their_time_budget(b: Backend) {
    let app = spawn_app(&b).await;
    let rx = TestReceiver::start().await;
    app.create_webhook(json!({"name": "costly", "url": rx.url("/costly"),
        "events": [{"type": "costly.*"}], "condition": "range(99000) | sum > 0"}))
        .await;
    // A batch whose conditions together take longer than the budget: the first events are
    // evaluated (and delivered), the rest count as not admitted.
    let events: Vec<Value> = (0..400)
        .map(|n| json!({"type": "costly.x", "data": {"n": n}}))
        .collect();
    let (status, out) = app.post("/events/batch", json!({"events": events})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{out}");
    let counts: Vec<u64> = out["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["deliveries"].as_u64().unwrap())
        .collect();
    assert_eq!(counts[0], 1, "the first event's condition was evaluated");
    assert_eq!(counts[399], 0, "past the budget, conditions count as false");
    let admitted = counts.iter().filter(|&&n| n == 1).count();
    assert!(
        counts[..admitted].iter().all(|&n| n == 1),
        "evaluated in order, then cut: {counts:?}"
    );
    // Events the costly webhook does not match are published as usual.
    let (status, out) = app.post("/events", json!({"type": "plain.x"})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{out}");
    assert_eq!(rx.wait_for(admitted).await.len(), admitted);
}

/// What the API refuses never reaches the commit, but an input no check foresaw could: here a
/// NUL in `model` handed to the group commit directly, which PostgreSQL refuses. Only that
/// request fails; the ones sharing its transaction are committed one by one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_commit_the_database_refuses_fails_only_the_bad_request() {
    use hookd_core::{EventType, NewEvent};
    use hookd_server::publish::{Committer, WebhookCache};
    let Some(b) = Backend::postgres() else {
        return;
    };
    let (store, _temp) = crate::support::fresh_store(&b).await;
    let committer = Committer::start(
        store.clone(),
        Arc::new(WebhookCache::default()),
        Arc::new(hookd_server::worker::Wakes::default()),
        Arc::new(hookd_server::worker::Handoff::new(
            &hookd_server::DeliverySettings::default(),
        )),
    );
    let event = |model: &str| NewEvent {
        event_type: EventType::parse("a.b").unwrap(),
        model: Some(model.to_owned()),
        data: json!({}),
        occurred_at: 1,
        idempotency_key: None,
    };
    let mut valid_ok = 0;
    for _ in 0..5 {
        let mut requests = tokio::task::JoinSet::new();
        for n in 0..17 {
            let (committer, model) = (committer.clone(), if n == 8 { "x\u{0}y" } else { "ok" });
            let e = event(model);
            requests.spawn(async move { (n == 8, committer.commit(vec![e]).await) });
        }
        while let Some(done) = requests.join_next().await {
            match done.unwrap() {
                (true, result) => assert!(result.is_err(), "the poison request fails"),
                (false, result) => {
                    result.expect("a valid request beside the poison one");
                    valid_ok += 1;
                }
            }
        }
    }
    assert_eq!(valid_ok, 80);
    let page = hookd_core::store::Page {
        limit: 1000,
        before: None,
    };
    assert_eq!(
        store.list_events(&page).await.unwrap().len(),
        80,
        "every valid event stored"
    );
}

/// The SQLite store on `url` with the master key `key` (the same on every opening).
async fn sqlite_with_key(url: &str, key: &str) -> hookd_core::store::StoreResult<SqliteStore> {
    let keys = Keys::new(
        hookd_store_sql::secrets::MasterKey::parse(key).unwrap(),
        Vec::new(),
    );
    SqliteStore::connect(url, keys).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_migration_on_a_full_disk_changes_nothing_and_runs_once_there_is_room() {
    let Some(disk) = SmallDisk::mount(16) else {
        return;
    };
    let key = hookd_store_sql::secrets::MasterKey::generate_text();
    let url = format!("sqlite://{}", disk.0.join("hookd.db").display());
    let store = sqlite_with_key(&url, &key).await.expect("open");
    store.migrate().await.expect("migrate");
    let webhook = hookd_core::ids::WebhookId::generate(1_600_000_000_000);
    store
        .seed_history(&webhook, 3_000, 1_600_000_000_000)
        .await
        .expect("seed");
    drop(store);
    // Back to the previous release's schema: before the attempt series (version 7).
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let schema = |pool: sqlx::SqlitePool| async move {
        let index: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'attempts_started'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        let recorded: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM hookd_migrations WHERE version = 7")
                .fetch_one(&pool)
                .await
                .unwrap();
        pool.close().await;
        (index, recorded)
    };
    for sql in [
        "DROP INDEX attempts_started",
        "ALTER TABLE attempts DROP COLUMN webhook_id",
        "ALTER TABLE attempts DROP COLUMN succeeded",
        "ALTER TABLE attempts DROP COLUMN latency_ms",
        "DELETE FROM hookd_migrations WHERE version = 7",
        "PRAGMA wal_checkpoint(TRUNCATE)",
    ] {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    pool.close().await;

    let filler = disk.0.join("filler");
    fill(&filler);
    let failed = match sqlite_with_key(&url, &key).await {
        Ok(store) => store.migrate().await.err(),
        Err(e) => Some(e),
    };
    let failed = failed.expect("the migration cannot be written on a full disk");
    assert!(failed.to_string().contains("full"), "{failed}");
    std::fs::remove_file(&filler).unwrap();
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    assert_eq!(
        schema(pool).await,
        (0, 0),
        "nothing of the migration was kept"
    );

    let store = sqlite_with_key(&url, &key).await.expect("open with room");
    store
        .migrate()
        .await
        .expect("the migration runs once there is room");
    drop(store);
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    assert_eq!(schema(pool).await, (1, 1));
}
