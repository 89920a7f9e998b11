//! hookd's HTTP side: the admin API under `/api/v1`, operations endpoints, and the delivery worker.
//!
//! It knows axum and reqwest, and talks to the database only through [`hookd_core::Store`].
//! Configuration arrives already parsed as [`Settings`].

pub mod auth;
pub mod bench;
pub mod error;
pub mod http;
pub mod inbound;
pub mod listener;
pub mod metrics;
pub mod proxy;
pub mod publish;
pub mod settings;
pub mod worker;

use std::future::Future;
use std::sync::Arc;

use hookd_core::{Store, StoreError};
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};

pub use auth::create_token;
pub use settings::{
    DeliverySettings, HttpSettings, InboundSettings, ProxyRoute, ProxySettings, Settings,
};
use worker::send::HttpSender;
use worker::Worker;

/// Whether `serve` also runs the delivery worker in its process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerMode {
    /// API and worker in one process, with in-process hand-off of new work.
    Embedded,
    /// API only (`hookd serve --no-worker`); separate `hookd worker` processes deliver.
    Separate,
}

/// State shared by every handler.
#[derive(Debug, Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub store: Arc<dyn Store>,
    /// Wakes an embedded worker's loops when work is queued, so it starts at once.
    pub wake: Arc<worker::Wakes>,
    /// Notified when a schedule is written, so an embedded scheduler looks again at once.
    pub schedules: Arc<Notify>,
    /// Inbound hooks' compiled workflows and running executions in this process.
    pub inbound: Arc<inbound::Runtime>,
    /// Stores inbound executions, grouping concurrent requests into one transaction.
    pub executions: inbound::ExecutionCommitter,
    pub sender: HttpSender,
    pub webhooks: Arc<publish::WebhookCache>,
    /// Commits published events, grouping concurrent requests into one transaction.
    pub committer: publish::Committer,
    pub tokens: Arc<auth::TokenCache>,
    pub metrics: Arc<metrics::Metrics>,
    /// The reverse proxy's routes and upstream client.
    pub proxy: proxy::Proxy,
    /// What publishes hand to this process's worker, when one runs.
    pub handoff: Arc<worker::Handoff>,
}

impl AppState {
    /// Builds the state and starts its group-commit task (so it needs a Tokio runtime).
    pub fn new(settings: Settings, store: Arc<dyn Store>) -> Self {
        let wake: Arc<worker::Wakes> = Arc::default();
        let sender = HttpSender::new(&settings.delivery.allow_networks);
        let proxy = proxy::Proxy::new(&settings.proxy);
        let webhooks: Arc<publish::WebhookCache> = Arc::default();
        let handoff = Arc::new(worker::Handoff::new(&settings.delivery));
        let inbound = Arc::new(inbound::Runtime::new(&settings.inbound));
        Self {
            settings: Arc::new(settings),
            committer: publish::Committer::start(
                store.clone(),
                webhooks.clone(),
                wake.clone(),
                handoff.clone(),
            ),
            executions: inbound::ExecutionCommitter::start(store.clone()),
            store,
            wake,
            schedules: Arc::default(),
            inbound,
            sender,
            webhooks,
            tokens: Arc::default(),
            metrics: Arc::default(),
            proxy,
            handoff,
        }
    }

    fn worker(&self) -> Worker {
        Worker {
            store: self.store.clone(),
            settings: self.settings.clone(),
            sender: self.sender.clone(),
            wake: self.wake.clone(),
            schedules: self.schedules.clone(),
            committer: self.committer.clone(),
            inbound: self.inbound.clone(),
            metrics: self.metrics.clone(),
            handoff: self.handoff.clone(),
        }
    }
}

/// Milliseconds since the Unix epoch: hookd's one clock.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Runs the API (and the worker, with [`WorkerMode::Embedded`]) on `listener` until `shutdown`
/// resolves; then stops taking requests, lets in-flight deliveries finish and returns.
pub async fn serve(
    settings: Settings,
    store: Arc<dyn Store>,
    listener: TcpListener,
    mode: WorkerMode,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let state = AppState::new(settings, store);
    let (stop_tx, stop_rx) = watch::channel(false);
    let worker =
        (mode == WorkerMode::Embedded).then(|| tokio::spawn(state.worker().run(stop_rx.clone())));
    let http_stop = stop_rx.clone();
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let limits = state.settings.http.clone();
    listener::serve(listener, http::app(state), &limits, http_stop).await;
    if let Some(worker) = worker {
        let _ = worker.await;
    }
    Ok(())
}

/// Runs a delivery worker until `shutdown` resolves, with `/health`, `/ready` and `/metrics`
/// (its own counters) on `ops` when given.
pub async fn work(
    settings: Settings,
    store: Arc<dyn Store>,
    ops: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let state = AppState::new(settings, store);
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let ops = ops.map(|listener| {
        let (limits, stop) = (state.settings.http.clone(), stop_rx.clone());
        let app = http::ops_app(state.clone());
        tokio::spawn(async move { listener::serve(listener, app, &limits, stop).await })
    });
    state.worker().run(stop_rx).await;
    if let Some(ops) = ops {
        let _ = ops.await;
    }
    Ok(())
}

/// On first start (no stored tokens and none configured) creates an admin token and returns it
/// so the caller can print it once.
pub async fn bootstrap_admin_token(
    store: &dyn Store,
    settings: &Settings,
) -> Result<Option<String>, StoreError> {
    if settings.admin_token.is_some() || store.count_tokens().await? > 0 {
        return Ok(None);
    }
    create_token(store, "admin").await.map(Some)
}
