//! Test support: a real hookd on 127.0.0.1:0 over a fresh database, a typed client, and a real
//! receiver that records what it is sent.

use hookd_store_sql::secrets::Keys;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use hookd_core::Store;
use hookd_server::{Settings, WorkerMode};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub use hookd_testkit::{random_suffix, Backend, TempDb};

/// A store on a fresh database (a new SQLite file, or a new PostgreSQL schema), migrated, and
/// the guard that removes that database at the end of the test.
pub async fn fresh_store(backend: &Backend) -> (Arc<dyn Store>, Option<TempDb>) {
    let (url, temp) = backend.fresh_db().await;
    let store: Arc<dyn Store> = match backend {
        Backend::Sqlite => Arc::new(
            hookd_store_sqlite::SqliteStore::connect(&url, Keys::ephemeral())
                .await
                .expect("sqlite"),
        ),
        Backend::Postgres(_) => Arc::new(
            hookd_store_postgres::PgStore::connect(&url, Keys::ephemeral())
                .await
                .expect("postgres"),
        ),
    };
    store.migrate().await.expect("migrations");
    (store, temp)
}

/// The admin token every test app accepts.
pub const TOKEN: &str = "test-admin-token-0123456789";

/// What [`TestApp::good_and_bad`] made; its receivers answer as long as it is kept.
pub struct GoodAndBad {
    _receivers: (TestReceiver, TestReceiver),
    pub good_hook: Value,
    pub bad_hook: Value,
}

/// A running hookd.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub store: Arc<dyn Store>,
    _stop: oneshot::Sender<()>,
    _temp: Option<TempDb>,
}

/// Settings for tests: a short lease, and loopback allowed past the SSRF guard (the receivers
/// run on 127.0.0.1).
pub fn test_settings() -> Settings {
    let mut s = Settings {
        admin_token: Some(TOKEN.into()),
        ..Settings::default()
    };
    s.delivery.lease = Duration::from_secs(30);
    s.delivery.allow_networks = vec![hookd_core::net::Cidr::parse("127.0.0.0/8").unwrap()];
    s
}

pub async fn spawn_app(backend: &Backend) -> TestApp {
    spawn_app_with(backend, test_settings(), WorkerMode::Embedded).await
}

pub async fn spawn_app_with(backend: &Backend, settings: Settings, mode: WorkerMode) -> TestApp {
    let (store, temp) = fresh_store(backend).await;
    let mut app = spawn_on(store, settings, mode).await;
    app._temp = temp;
    app
}

pub async fn spawn_on(store: Arc<dyn Store>, mut settings: Settings, mode: WorkerMode) -> TestApp {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    settings.listen = addr;
    let (stop, stopped) = oneshot::channel::<()>();
    let s = store.clone();
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.await;
        };
        hookd_server::serve(settings, s, listener, mode, shutdown)
            .await
            .unwrap();
    });
    TestApp {
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
        store,
        _stop: stop,
        _temp: None,
    }
}

impl TestApp {
    /// An inbound hook's public URL as this server answers it: hooks are given the default
    /// `public_url`, while the test server listens on a port of its own.
    pub fn hook_url(&self, hook: &Value) -> String {
        let url = hook["url"].as_str().expect("the hook has a url");
        url.replace("http://127.0.0.1:8080", &self.base)
    }

    /// `/metrics` as text.
    pub async fn metrics(&self) -> String {
        let url = format!("{}/metrics", self.base);
        let resp = self.client.get(url).send().await.unwrap();
        resp.text().await.unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .client
            .request(method, self.url(path))
            .bearer_auth(TOKEN);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.unwrap();
        let status = StatusCode::from_u16(resp.status().as_u16()).unwrap();
        let text = resp.text().await.unwrap();
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        };
        (status, json)
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call("POST", path, Some(body)).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call("GET", path, None).await
    }

    /// Creates a webhook and returns its JSON; panics unless 201.
    pub async fn create_webhook(&self, body: Value) -> Value {
        let (status, json) = self.post("/webhooks", body).await;
        assert_eq!(status, StatusCode::CREATED, "{json}");
        json
    }

    /// Polls a delivery until `done` holds or the deadline passes.
    pub async fn wait_delivery(&self, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (_, d) = self.get(&format!("/deliveries/{id}")).await;
            if done(&d) {
                return d;
            }
            assert!(
                Instant::now() < deadline,
                "delivery never reached the state: {d}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls until `n` deliveries have finished (succeeded or failed), or the deadline passes.
    pub async fn wait_finished(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (_, list) = self.get("/deliveries?limit=100").await;
            let done = list["data"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["status"] == "succeeded" || d["status"] == "failed")
                .count();
            if done >= n {
                return;
            }
            assert!(Instant::now() < deadline, "{done} of {n} finished");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Two webhooks, `good` to a receiver that answers 200 and `bad` (one attempt) to one that
    /// answers `bad_status`, and `events` events (`x.y`) that go to both, every delivery
    /// finished.
    pub async fn good_and_bad(&self, bad_status: u16, events: usize) -> GoodAndBad {
        let (good, bad) = (TestReceiver::start().await, TestReceiver::start().await);
        bad.always(Reply::status(bad_status));
        let good_hook = self
            .create_webhook(json!({"name": "good", "url": good.url("/")}))
            .await;
        let bad_hook = self
            .create_webhook(json!({"name": "bad", "url": bad.url("/"), "max_attempts": 1}))
            .await;
        let batch: Vec<_> = (0..events)
            .map(|i| json!({"type": "x.y", "data": {"i": i}}))
            .collect();
        let (status, _) = self.post("/events/batch", json!({ "events": batch })).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        self.wait_finished(2 * events).await;
        GoodAndBad {
            _receivers: (good, bad),
            good_hook,
            bad_hook,
        }
    }

    /// The deliveries of an event.
    pub async fn deliveries_of(&self, event_id: &str) -> Vec<Value> {
        let (_, list) = self.get(&format!("/deliveries?event_id={event_id}")).await;
        list["data"].as_array().unwrap().clone()
    }
}

/// A request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// How the receiver answers: scripted responses first, then `default`.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    pub delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: vec![],
            body: String::new(),
            delay: Duration::ZERO,
        }
    }
}

#[derive(Default)]
struct ReceiverState {
    got: Mutex<Vec<Received>>,
    script: Mutex<VecDeque<Reply>>,
    default: Mutex<Option<Reply>>,
    /// Requests being answered now, and the most there were at once.
    open: Mutex<(usize, usize)>,
}

/// Counts a request as open until it is answered or its connection goes away.
struct Open(Arc<ReceiverState>);

impl Open {
    fn new(state: &Arc<ReceiverState>) -> Self {
        let mut open = state.open.lock().unwrap();
        open.0 += 1;
        open.1 = open.1.max(open.0);
        Self(state.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.lock().unwrap().0 -= 1;
    }
}

/// A real HTTP receiver on 127.0.0.1 that records every request.
#[derive(Clone)]
pub struct TestReceiver {
    pub addr: SocketAddr,
    state: Arc<ReceiverState>,
}

impl TestReceiver {
    pub async fn start() -> Self {
        let state = Arc::new(ReceiverState::default());
        let app = axum::Router::new()
            .fallback(receive)
            .with_state(state.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Answers the next requests with these replies, in order.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.script.lock().unwrap().extend(replies);
    }

    /// Answers every unscripted request with this reply (200 when unset).
    pub fn always(&self, reply: Reply) {
        *self.state.default.lock().unwrap() = Some(reply);
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.got.lock().unwrap().clone()
    }

    /// The most requests it was answering at once.
    pub fn max_open(&self) -> usize {
        self.state.open.lock().unwrap().1
    }

    /// Polls until at least `n` requests arrived.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "receiver got {} of {n} requests",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn receive(
    State(state): State<Arc<ReceiverState>>,
    req: axum::extract::Request,
) -> impl IntoResponse {
    let _open = Open::new(&state);
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    state.got.lock().unwrap().push(Received {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        headers: parts.headers,
        body,
    });
    let scripted = state.script.lock().unwrap().pop_front();
    let reply = scripted
        .or_else(|| state.default.lock().unwrap().clone())
        .unwrap_or_else(|| Reply::status(200));
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut resp = (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
    for (k, v) in reply.headers {
        resp.headers_mut().insert(k, v.parse().unwrap());
    }
    resp
}
