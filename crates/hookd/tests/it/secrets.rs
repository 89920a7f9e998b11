//! The secrets key as processes see it: the key file a SQLite start makes, a lost key file,
//! PostgreSQL's required key, and `hookd secrets rotate-key` beside a running server.

use std::time::Duration;

use serde_json::json;

use crate::backend_test;
use crate::support::{command, free_port, hookd, wait_ready, Api, Backend, Counter, TOKEN};

const ENV: [(&str, &str); 2] = [
    ("HOOKD_ADMIN_TOKEN", TOKEN),
    ("HOOKD_DELIVERY__ALLOW_NETWORKS", "[\"127.0.0.0/8\"]"),
];

/// Runs `hookd <args>` to its end: exit success, standard output and standard error.
fn run(args: &[&str], db: &str, env: &[(&str, &str)]) -> (bool, String, String) {
    let out = command(args, db, env)
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("run hookd");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

async fn serve(db: &str) -> (crate::support::Proc, Api) {
    let listen = format!("127.0.0.1:{}", free_port());
    let proc = hookd(&["serve", "--listen", &listen], db, &ENV);
    let base = format!("http://{listen}");
    wait_ready(&base).await;
    (proc, Api::new(&base))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_start_makes_a_private_key_file_once_and_keeps_using_it() {
    let (db, temp) = Backend::Sqlite.fresh_db().await;
    let temp = temp.unwrap();
    let (ok, _, stderr) = run(&["migrate"], &db, &[]);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("made a new secrets key file"), "{stderr}");
    let key_file = temp.key_file();
    let key = std::fs::read_to_string(&key_file).expect("a key file beside the database");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "only the owner reads the key");
    }
    assert!(
        hookd_store_sql::secrets::MasterKey::parse(&key).is_ok(),
        "{key}"
    );
    let (ok, _, stderr) = run(&["migrate"], &db, &[]);
    assert!(ok, "{stderr}");
    assert!(
        !stderr.contains("made a new secrets key file"),
        "said once: {stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(&key_file).unwrap(),
        key,
        "the same key"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_key_file_stops_hookd_and_says_what_to_restore() {
    let (db, temp) = Backend::Sqlite.fresh_db().await;
    let temp = temp.unwrap();
    let (proc, api) = serve(&db).await;
    api.post(
        "/webhooks",
        json!({"name": "w", "url": "http://127.0.0.1:9/"}),
    )
    .await;
    drop(proc);
    std::fs::remove_file(temp.key_file()).unwrap();
    let (ok, _, stderr) = run(&["migrate"], &db, &[]);
    assert!(!ok, "hookd must not start with secrets it cannot read");
    assert!(
        stderr.contains("secrets key file")
            && stderr.contains("is missing")
            && stderr.contains("restore"),
        "{stderr}"
    );
    assert!(!temp.key_file().exists(), "no new key is left to seal with");
    // A wrong key given instead is refused as well, naming the key.
    let wrong = hookd_store_sql::secrets::MasterKey::generate_text();
    let (ok, _, stderr) = run(&["migrate"], &db, &[("HOOKD_SECRETS_KEY", &wrong)]);
    assert!(!ok);
    assert_eq!(
        stderr.matches("secrets_key:").count(),
        1,
        "named once, not again as its own cause: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_without_a_key_is_refused_before_connecting() {
    // The URL names no reachable server: the configuration is refused first.
    let (ok, _, stderr) = run(
        &["migrate"],
        "sqlite://unused.db",
        &[("HOOKD_DATABASE_URL", "postgres://hookd@127.0.0.1:1/none")],
    );
    assert!(!ok);
    assert!(
        stderr.contains("secrets_key: required with a PostgreSQL database_url"),
        "{stderr}"
    );
    let (ok, _, stderr) = run(
        &["migrate"],
        "postgres://hookd@127.0.0.1:1/none",
        &[("HOOKD_SECRETS_KEY", "c2hvcnQ=")],
    );
    assert!(!ok);
    assert!(stderr.contains("secrets_key: must be 32 bytes"), "{stderr}");
}

backend_test!(rotate_key_reseals_beside_a_running_server_that_keeps_signing);
async fn rotate_key_reseals_beside_a_running_server_that_keeps_signing(b: Backend) {
    let (db, _temp) = b.fresh_db().await;
    let (_server, api) = serve(&db).await;
    let rx = Counter::start(Duration::from_millis(1)).await;
    let created = api
        .post(
            "/webhooks",
            json!({"name": "r", "url": format!("http://{}/", rx.addr)}),
        )
        .await;
    let id = created["id"].as_str().unwrap();
    let secret = api.get(&format!("/webhooks/{id}/secret")).await["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let events: Vec<_> = (0..50)
        .map(|i| json!({"type": "a.b", "data": {"i": i}}))
        .collect();
    api.post("/events/batch", json!({"events": events.clone()}))
        .await;
    let (ok, _, stderr) = run(&["secrets", "rotate-key"], &db, &ENV);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("Every stored secret is sealed with data key"),
        "{stderr}"
    );
    assert!(
        stderr.contains("1 records resealed, 1 old data keys deleted"),
        "{stderr}"
    );
    api.post("/events/batch", json!({"events": events})).await;
    rx.wait_distinct(100, Duration::from_secs(60)).await;
    let after = api.get(&format!("/webhooks/{id}/secret")).await;
    assert_eq!(
        after["secret"],
        secret.as_str(),
        "the secret itself is unchanged"
    );
    // A server started after the rotation signs with the same secret.
    let (_second, api2) = serve(&db).await;
    let again = api2.get(&format!("/webhooks/{id}/secret")).await;
    assert_eq!(again["secret"], secret.as_str());
}
