//! Faults a client can cause: input the database cannot store, and input that once panicked a
//! handler. Each gets a clear answer and harms no other request.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use hookd_core::Store;
use hookd_server::WorkerMode;
use hookd_store_sqlite::SqliteStore;
use serde_json::{json, Value};

use crate::backend_test;
use crate::support::{random_suffix, spawn_app, spawn_on, test_settings, Backend, TestReceiver};

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

/// A tmpfs of a few MiB mounted for one test (needs root, as CI runs), unmounted on drop.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(mib: u32) -> Option<Self> {
        let uid = std::process::Command::new("id").arg("-u").output().ok()?;
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
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
    let store: Arc<dyn Store> = Arc::new(SqliteStore::connect(&url).await.expect("open"));
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
    assert!(
        rx.wait_for(accepted).await.len() >= accepted,
        "every accepted event is delivered"
    );
}
