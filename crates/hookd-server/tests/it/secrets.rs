//! Secrets at rest: what the database holds (searched byte by byte on SQLite, row by row on
//! PostgreSQL) after creating, rotating and patching secrets; a wrong key; plain rows from
//! before sealing; and a key rotation while deliveries are in flight.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hookd_core::Store;
use hookd_server::WorkerMode;
use hookd_store_sql::secrets::{Keys, MasterKey};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::{Connection, Row};

use crate::backend_test;
use crate::support::{
    random_suffix, spawn_on, test_settings, Backend, TempDb, TestApp, TestReceiver,
};

/// A database this test opens, reopens and reads raw.
enum Place {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Place {
    /// A fresh database, and the guard that removes it at the end of the test.
    async fn new(b: &Backend) -> (Self, Option<TempDb>) {
        let (url, temp) = b.fresh_db().await;
        let place = match (b, &temp) {
            (Backend::Sqlite, Some(TempDb::File(path))) => Self::Sqlite(path.clone()),
            _ => Self::Postgres(url),
        };
        (place, temp)
    }

    fn url(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("sqlite://{}", path.display()),
            Self::Postgres(url) => url.clone(),
        }
    }

    /// A migrated store sealing with `key` and opening `old` too.
    async fn open(&self, key: &str, old: &[&str]) -> Result<Arc<dyn Store>, String> {
        let old = old.iter().map(|k| MasterKey::parse(k).unwrap()).collect();
        let keys = Keys::new(MasterKey::parse(key).unwrap(), old);
        let store: Arc<dyn Store> = match self {
            Self::Sqlite(_) => Arc::new(
                hookd_store_sqlite::SqliteStore::connect(&self.url(), keys)
                    .await
                    .map_err(|e| e.to_string())?,
            ),
            Self::Postgres(url) => Arc::new(
                hookd_store_postgres::PgStore::connect(url, keys)
                    .await
                    .map_err(|e| e.to_string())?,
            ),
        };
        store.migrate().await.map_err(|e| e.to_string())?;
        Ok(store)
    }

    /// Everything the database holds: the SQLite file and its WAL as bytes, or every row of
    /// every table of the PostgreSQL schema as text.
    async fn raw(&self) -> Vec<u8> {
        match self {
            Self::Sqlite(path) => {
                let mut bytes = Vec::new();
                for ext in ["", "-wal"] {
                    let file = format!("{}{ext}", path.display());
                    bytes.extend(std::fs::read(file).unwrap_or_default());
                }
                bytes
            }
            Self::Postgres(url) => {
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                let tables: Vec<String> = sqlx::query(
                    "SELECT table_name::text AS t FROM information_schema.tables
                     WHERE table_schema = current_schema()",
                )
                .fetch_all(&mut conn)
                .await
                .unwrap()
                .iter()
                .map(|r| r.get("t"))
                .collect();
                assert!(tables.iter().any(|t| t == "webhooks"), "{tables:?}");
                let mut text = String::new();
                for table in tables {
                    let sql = format!(
                        "SELECT COALESCE(string_agg(t::text, ' '), '') AS s FROM {table} t"
                    );
                    let row = sqlx::query(&sql).fetch_one(&mut conn).await.unwrap();
                    text.push_str(row.get::<&str, _>("s"));
                }
                text.into_bytes()
            }
        }
    }

    /// Runs one statement on the database directly (`$1`, `$2` bound).
    async fn execute(&self, sql: &str, a: &str, b: &str) {
        match self {
            Self::Sqlite(_) => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url()).await.unwrap();
                sqlx::query(sql)
                    .bind(a)
                    .bind(b)
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
            Self::Postgres(url) => {
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                sqlx::query(sql)
                    .bind(a)
                    .bind(b)
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
        }
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// A `whsec_` secret of random bytes.
fn whsec() -> String {
    use base64::Engine as _;
    let key: [u8; 32] = rand::random();
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    )
}

/// Secrets a test sets, distinct and easy to search for.
fn secret(name: &str) -> String {
    format!("{name}-{}", random_suffix())
}

async fn app_on(store: Arc<dyn Store>) -> TestApp {
    spawn_on(store, test_settings(), WorkerMode::Embedded).await
}

async fn patch(app: &TestApp, path: &str, body: Value) -> Value {
    let (status, answer) = app.call("PATCH", path, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer
}

/// A webhook with a signing secret, a basic password and a credential header, and an inbound
/// hook with a verification secret and a request node's credential. Returns both ids.
async fn create_both(app: &TestApp, rx: &TestReceiver, s: &Secrets) -> (String, String) {
    let webhook = app
        .create_webhook(json!({
            "name": "sealed", "url": rx.url("/h"), "secret": s.signing,
            "auth": {"type": "basic", "username": "hookd", "password": s.password},
            "headers": {"X-Api-Key": s.header, "X-Tenant": "acme"},
        }))
        .await;
    let (status, hook) = app
        .post(
            "/inbound",
            json!({"name": "sealed-in",
                   "auth": {"type": "signature", "preset": "github", "secret": s.verify},
                   "workflow": [{"type": "request", "url": rx.url("/fwd"), "save_as": "r",
                                 "headers": {"Authorization": format!("Bearer {}", s.node)}}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{hook}");
    let id = |v: &Value| v["id"].as_str().unwrap().to_owned();
    (id(&webhook), id(&hook))
}

struct Secrets {
    signing: String,
    password: String,
    header: String,
    verify: String,
    node: String,
}

impl Secrets {
    fn new() -> Self {
        Self {
            signing: whsec(),
            password: secret("password"),
            header: secret("api-key"),
            verify: secret("github"),
            node: secret("node-token"),
        }
    }

    fn all(&self) -> Vec<&str> {
        vec![
            &self.signing,
            &self.password,
            &self.header,
            &self.verify,
            &self.node,
        ]
    }
}

backend_test!(no_secret_is_stored_readable_after_create_rotate_and_patch);
async fn no_secret_is_stored_readable_after_create_rotate_and_patch(b: Backend) {
    let (place, _temp) = Place::new(&b).await;
    let key = MasterKey::generate_text();
    let app = app_on(place.open(&key, &[]).await.unwrap()).await;
    let rx = TestReceiver::start().await;
    let s = Secrets::new();
    let (webhook, hook) = create_both(&app, &rx, &s).await;
    let mut stored: Vec<String> = s.all().into_iter().map(str::to_owned).collect();

    let (status, rotated) = app
        .post(&format!("/webhooks/{webhook}/rotate-secret"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let (_, now) = app.get(&format!("/webhooks/{webhook}/secret")).await;
    let new_secret = now["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, s.signing);
    stored.push(new_secret.clone());
    let token = secret("bearer");
    patch(
        &app,
        &format!("/webhooks/{webhook}"),
        json!({"auth": {"type": "bearer", "token": token}}),
    )
    .await;
    stored.push(token.clone());
    let verify = secret("stripe");
    patch(
        &app,
        &format!("/inbound/{hook}"),
        json!({"auth": {"type": "signature", "preset": "stripe", "secret": verify}}),
    )
    .await;
    stored.push(verify);

    let raw = place.raw().await;
    for value in &stored {
        assert!(!contains(&raw, value), "{value} is stored readable");
    }
    assert!(
        contains(&raw, "hookd-sealed:v1:"),
        "sealed values are there"
    );
    assert!(
        contains(&raw, "X-Tenant") && contains(&raw, "acme"),
        "the rest stays plain"
    );
    // The API still has every secret: the webhook signs with the new one, and sends the token.
    let (_, read) = app.get(&format!("/webhooks/{webhook}/secret")).await;
    assert_eq!(read["secret"], new_secret.as_str());
    let (status, _) = app
        .post("/events", json!({"type": "sealed.test", "data": {"n": 1}}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let got = rx.wait_for(1).await;
    assert_eq!(
        got[0].header("authorization"),
        Some(format!("Bearer {token}").as_str())
    );
    assert_eq!(got[0].header("x-api-key"), Some(s.header.as_str()));
    verify_signature(&got[0], &new_secret);
}

fn verify_signature(got: &crate::support::Received, secret: &str) {
    let now = chrono::Utc::now().timestamp();
    hookd_core::signature::verify_standard(
        secret,
        got.header("webhook-id"),
        got.header("webhook-timestamp"),
        got.header("webhook-signature"),
        &got.body,
        now,
    )
    .unwrap_or_else(|e| {
        panic!(
            "signature of {:?} does not verify: {e}",
            got.header("webhook-id")
        )
    });
}

backend_test!(a_wrong_key_stops_the_store_and_the_old_key_opens_it);
async fn a_wrong_key_stops_the_store_and_the_old_key_opens_it(b: Backend) {
    let (place, _temp) = Place::new(&b).await;
    let (key, other) = (MasterKey::generate_text(), MasterKey::generate_text());
    let app = app_on(place.open(&key, &[]).await.unwrap()).await;
    let rx = TestReceiver::start().await;
    let s = Secrets::new();
    let (webhook, _) = create_both(&app, &rx, &s).await;
    drop(app);

    let refused = place
        .open(&other, &[])
        .await
        .expect_err("a wrong key is refused");
    let key_id = MasterKey::parse(&key).unwrap().id().to_owned();
    assert!(
        refused.contains("secrets_key") && refused.contains(&key_id),
        "the error names the key and the one that sealed: {refused}"
    );
    // The new key with the old one beside it opens everything.
    let store = place.open(&other, &[&key]).await.unwrap();
    let id = hookd_core::ids::WebhookId::parse(&webhook).unwrap();
    let read = store.get_webhook(&id).await.unwrap().unwrap();
    assert_eq!(read.spec.secret.expose(), s.signing);
    // Rotated under the new key, the old one is no longer needed.
    let done = store
        .rotate_secrets_key(chrono::Utc::now().timestamp_millis())
        .await
        .unwrap();
    assert_eq!(done.master_key_id, MasterKey::parse(&other).unwrap().id());
    assert_eq!((done.resealed, done.retired), (2, 1), "{done:?}");
    drop(store);
    let store = place.open(&other, &[]).await.unwrap();
    let read = store.get_webhook(&id).await.unwrap().unwrap();
    assert_eq!(read.spec.secret.expose(), s.signing);
    assert!(
        place.open(&key, &[]).await.is_err(),
        "the old key alone opens nothing now"
    );
}

backend_test!(plain_rows_from_before_sealing_are_sealed_on_upgrade_and_read_the_same);
async fn plain_rows_from_before_sealing_are_sealed_on_upgrade_and_read_the_same(b: Backend) {
    let (place, _temp) = Place::new(&b).await;
    let key = MasterKey::generate_text();
    let store = place.open(&key, &[]).await.unwrap();
    let app = app_on(store.clone()).await;
    let rx = TestReceiver::start().await;
    let s = Secrets::new();
    let (webhook, hook) = create_both(&app, &rx, &s).await;
    let paths = [
        format!("/webhooks/{webhook}"),
        format!("/webhooks/{webhook}/secret"),
        format!("/inbound/{hook}"),
    ];
    let mut before = Vec::new();
    for path in &paths {
        before.push(app.get(path).await.1);
    }
    // Write the specs back as hookd stored them before sealing: plain JSON.
    let w = store
        .get_webhook(&hookd_core::ids::WebhookId::parse(&webhook).unwrap())
        .await
        .unwrap()
        .unwrap();
    let h = store
        .get_inbound(&hookd_core::ids::InboundId::parse(&hook).unwrap())
        .await
        .unwrap()
        .unwrap();
    drop(app);
    drop(store);
    let plain_webhook = serde_json::to_string(&w.spec).unwrap();
    let plain_hook = serde_json::to_string(&h.spec).unwrap();
    place
        .execute(
            "UPDATE webhooks SET spec = $1 WHERE id = $2",
            &plain_webhook,
            &webhook,
        )
        .await;
    place
        .execute(
            "UPDATE inbound_hooks SET spec = $1 WHERE id = $2",
            &plain_hook,
            &hook,
        )
        .await;
    place
        .execute(
            "DELETE FROM secret_keys WHERE id <> $1 AND id <> $2",
            "",
            "",
        )
        .await;
    assert!(
        contains(&place.raw().await, &s.password),
        "the rows are plain now"
    );

    let app = app_on(place.open(&key, &[]).await.unwrap()).await;
    let raw = place.raw().await;
    for value in s.all() {
        assert!(
            !contains(&raw, value),
            "{value} is still stored readable after the upgrade"
        );
    }
    // Masked secrets read the same through the API either way: compare what the store opens.
    let fresh = place.open(&key, &[]).await.unwrap();
    assert_eq!(
        fresh.get_webhook(&w.id).await.unwrap().unwrap().spec,
        w.spec
    );
    assert_eq!(
        fresh.get_inbound(&h.id).await.unwrap().unwrap().spec,
        h.spec
    );
    for (path, before) in paths.iter().zip(&before) {
        assert_eq!(&app.get(path).await.1, before, "{path} reads the same");
    }
}

backend_test!(rotating_the_key_while_deliveries_are_in_flight_keeps_every_signature_valid);
async fn rotating_the_key_while_deliveries_are_in_flight_keeps_every_signature_valid(b: Backend) {
    const EVENTS: usize = 60;
    let (place, _temp) = Place::new(&b).await;
    let key = MasterKey::generate_text();
    let store = place.open(&key, &[]).await.unwrap();
    let app = app_on(store.clone()).await;
    let rx = TestReceiver::start().await;
    let w = app
        .create_webhook(json!({"name": "rotating", "url": rx.url("/h")}))
        .await;
    let id = w["id"].as_str().unwrap();
    let (_, secret) = app.get(&format!("/webhooks/{id}/secret")).await;
    let secret = secret["secret"].as_str().unwrap().to_owned();

    // Two other handles (as two `hookd secrets rotate-key` runs would be) rotate at once, with
    // their own keys: the server's store learns each new data key from the table.
    let mut rotations = tokio::task::JoinSet::new();
    for _ in 0..2 {
        let rotator = place.open(&key, &[]).await.unwrap();
        rotations.spawn(async move {
            let mut done = Vec::new();
            for _ in 0..3 {
                let now = chrono::Utc::now().timestamp_millis();
                done.push(rotator.rotate_secrets_key(now).await.expect("rotation"));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            done
        });
    }
    for n in 0..EVENTS {
        let (status, _) = app
            .post("/events", json!({"type": "rotate.test", "data": {"n": n}}))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        if n % 20 == 10 {
            // A write meanwhile: it seals with whichever key is active, and every process
            // reads the webhook again.
            let description = format!("edited at event {n}");
            patch(
                &app,
                &format!("/webhooks/{id}"),
                json!({"description": description}),
            )
            .await;
        }
    }
    let mut done = Vec::new();
    while let Some(rotated) = rotations.join_next().await {
        done.extend(rotated.unwrap());
    }
    let got = rx.wait_for(EVENTS).await;
    for request in &got {
        verify_signature(request, &secret);
    }
    assert_eq!(done.len(), 6);
    let keys: std::collections::BTreeSet<_> = done.iter().map(|d| d.key_id.clone()).collect();
    assert_eq!(keys.len(), 6, "each rotation made its own key: {done:?}");
    assert!(
        done.iter().all(|d| d.retired == 1),
        "one key retired each time: {done:?}"
    );
    let raw = place.raw().await;
    assert!(!contains(&raw, &secret));
    let fresh = place.open(&key, &[]).await.unwrap();
    let read = fresh
        .get_webhook(&hookd_core::ids::WebhookId::parse(id).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        read.spec.secret.expose(),
        secret,
        "after {} rotations",
        done.len()
    );
}
