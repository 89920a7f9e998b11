//! Helpers: database URLs per backend, child processes, a counting receiver.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use tokio::net::TcpListener;

pub const TOKEN: &str = "process-test-admin-token";

pub use hookd_testkit::{Backend, TempDb};

/// A free port on 127.0.0.1 (bound, then released for the child to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `hookd` child process, killed when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The master key of the PostgreSQL tests' processes, which must share one (on SQLite they
/// use the key file hookd makes beside the database).
pub const POSTGRES_SECRETS_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// `hookd <args>` on `db`, with the test settings in its environment, not started.
pub fn command(args: &[&str], db: &str, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hookd"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOOKD_DATABASE_URL", db)
        .env("HOOKD_LOG", "warn")
        // Workers run side by side: each takes a free port for its operations endpoints.
        .env("HOOKD_WORKER_LISTEN", "127.0.0.1:0")
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if db.starts_with("postgres") {
        cmd.env("HOOKD_SECRETS_KEY", POSTGRES_SECRETS_KEY);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Starts `hookd <args>` with the database and test settings in its environment.
pub fn hookd(args: &[&str], db: &str, env: &[(&str, &str)]) -> Proc {
    Proc(command(args, db, env).spawn().expect("start hookd"))
}

/// Reads the child's stdout lines until one satisfies `pred` (or the deadline passes).
pub fn read_until(proc: &mut Proc, pred: impl Fn(&str) -> bool) -> Vec<String> {
    let out = proc.0.stdout.take().expect("stdout piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut lines = Vec::new();
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        let done = pred(&line);
        lines.push(line);
        if done {
            break;
        }
    }
    lines
}

/// Polls `url` until it answers 200.
pub async fn wait_ready(base: &str) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = client.get(format!("{base}/ready")).send().await {
            if r.status().is_success() {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "hookd at {base} never became ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A receiver that counts requests per `webhook-id`, answering after `delay`; it also notes the
/// most requests it was answering at once.
#[derive(Clone)]
pub struct Counter {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<HashMap<String, u32>>>,
    /// Requests being answered now, and the most at once.
    pub open: Arc<Mutex<(usize, usize)>>,
}

impl Counter {
    pub async fn start(delay: Duration) -> Self {
        let counter = Self {
            addr: "127.0.0.1:0".parse().unwrap(),
            seen: Arc::default(),
            open: Arc::default(),
        };
        let c = counter.clone();
        let app = axum::Router::new().fallback(move |headers: HeaderMap| {
            let c = c.clone();
            async move {
                let id = headers
                    .get("webhook-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                *c.seen.lock().unwrap().entry(id.to_owned()).or_default() += 1;
                {
                    let mut open = c.open.lock().unwrap();
                    open.0 += 1;
                    open.1 = open.1.max(open.0);
                }
                tokio::time::sleep(delay).await;
                c.open.lock().unwrap().0 -= 1;
                StatusCode::OK
            }
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, ..counter }
    }

    pub fn distinct(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    pub async fn wait_distinct(&self, n: usize, within: Duration) {
        let deadline = Instant::now() + within;
        while self.distinct() < n {
            assert!(
                Instant::now() < deadline,
                "received {} of {n} deliveries",
                self.distinct()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A small API client.
pub struct Api {
    pub base: String,
    pub client: reqwest::Client,
}

impl Api {
    pub fn new(base: &str) -> Self {
        Self {
            base: base.to_owned(),
            client: reqwest::Client::new(),
        }
    }

    pub async fn post(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let resp = self
            .client
            .post(format!("{}/api/v1{path}", self.base))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "POST {path}: {}", resp.status());
        resp.json().await.unwrap()
    }

    pub async fn get(&self, path: &str) -> serde_json::Value {
        let resp = self
            .client
            .get(format!("{}/api/v1{path}", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
        resp.json().await.unwrap()
    }

    /// Polls until `n` deliveries are recorded as succeeded.
    pub async fn wait_all_succeeded(&self, n: usize, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let list = self.get("/deliveries?status=succeeded&limit=1000").await;
            let done = list["data"].as_array().map_or(0, Vec::len);
            if done >= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{done} of {n} deliveries succeeded"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
