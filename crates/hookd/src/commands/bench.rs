//! `hookd bench`: runs a scenario against an embedded hookd on a fresh database, or against a
//! running server, and prints the report. The `proxy` scenario always embeds hookd, since it
//! configures a proxy route to its own upstream; so do the inbound and `noisy` scenarios.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use hookd_core::Store;
use hookd_server::bench::noisy::NoisyBenchOptions;
use hookd_server::bench::proxy::ProxyBenchOptions;
use hookd_server::bench::{BenchOptions, BenchReport};
use hookd_server::{ProxyRoute, Settings, WorkerMode};
use hookd_store_sql::secrets::Keys;
use tokio::net::TcpListener;

use crate::cli::{BenchArgs, Scenario};

/// Scenario defaults: (events, webhooks, failing share, rate).
fn defaults(s: Scenario) -> (u64, u32, f64, u32) {
    match s {
        Scenario::Single => (50_000, 1, 0.0, 0),
        Scenario::Fanout => (1_000, 50, 0.0, 0),
        Scenario::Failing => (5_000, 10, 0.2, 500),
        Scenario::Latency => (2_000, 1, 0.0, 200),
        Scenario::Proxy => (20_000, 0, 0.0, 0),
        Scenario::InboundAsync => (20_000, 0, 0.0, 0),
        Scenario::InboundSync => (2_000, 0, 0.0, 200),
        Scenario::Noisy => (4_000, 12, 0.0, 200),
        Scenario::Seed => (0, 0, 0.0, 0),
    }
}

pub async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.history.is_none() || args.server.is_none() || args.scenario == Scenario::Seed,
        "--history seeds an embedded hookd's database; with --server, seed it first with \
         --scenario seed"
    );
    match args.scenario {
        Scenario::Proxy => return proxy(args).await,
        Scenario::InboundAsync | Scenario::InboundSync => return inbound(args).await,
        Scenario::Noisy => return noisy(args).await,
        Scenario::Seed => return seed(args).await,
        _ => {}
    }
    let (events, webhooks, failing, rate) = defaults(args.scenario);
    let rate = args.rate.unwrap_or(rate);
    let events = match (args.events, args.scenario) {
        (Some(n), _) => n,
        // Ten seconds at the chosen rate.
        (None, Scenario::Latency) => u64::from(rate.max(1)) * 10,
        (None, _) => events,
    };
    let mut opts = BenchOptions {
        server: String::new(),
        token: String::new(),
        events,
        webhooks: args.webhooks.unwrap_or(webhooks).max(1),
        failing_share: args.failing_share.unwrap_or(failing).clamp(0.0, 1.0),
        rate,
        concurrency: args.concurrency.max(1),
        deadline: Duration::from_secs(args.deadline_secs),
    };
    say!(
        "scenario {:?}: {} events × {} webhooks ({:.0} % failing), rate {}, {} publishers",
        args.scenario,
        opts.events,
        opts.webhooks,
        opts.failing_share * 100.0,
        if opts.rate == 0 {
            "max".to_string()
        } else {
            format!("{}/s", opts.rate)
        },
        opts.concurrency
    )?;
    let report = match (&args.server, &args.token) {
        (Some(server), Some(token)) => {
            opts.server = server.trim_end_matches('/').to_owned();
            opts.token = token.clone();
            run_opts(opts).await?
        }
        _ => embedded(args, opts).await?,
    };
    say!("{report}")?;
    Ok(())
}

async fn run_opts(opts: BenchOptions) -> anyhow::Result<BenchReport> {
    hookd_server::bench::run(opts).await.map_err(|e| anyhow!(e))
}

/// Starts hookd in this process on a fresh database and benchmarks it.
async fn embedded(args: &BenchArgs, mut opts: BenchOptions) -> anyhow::Result<BenchReport> {
    let hookd = Embedded::start(args, Settings::default()).await?;
    opts.server = hookd.base.clone();
    opts.token = hookd.token.clone();
    let report = run_opts(opts).await;
    hookd.stop().await;
    report
}

/// The `proxy` scenario: an upstream on 127.0.0.1, an embedded hookd proxying `/up/` to it.
async fn proxy(args: &BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.server.is_none(),
        "the proxy scenario runs an embedded hookd; --server is not supported"
    );
    let upstream = hookd_server::bench::proxy::upstream().await?;
    let mut settings = Settings::default();
    settings.proxy.routes = vec![ProxyRoute {
        prefix: "/up/".into(),
        upstream: format!("http://{upstream}"),
        tag: "bench".into(),
        strip_prefix: true,
    }];
    let opts = ProxyBenchOptions {
        direct_url: format!("http://{upstream}/item"),
        proxied_url: String::new(),
        unrecorded_url: String::new(),
        requests: args.events.unwrap_or(20_000),
        concurrency: args.concurrency.max(1),
    };
    say!(
        "scenario Proxy: {} requests × 3 (direct; proxied; proxied and recorded), {} in flight",
        opts.requests,
        opts.concurrency
    )?;
    let hookd = Embedded::start(args, settings).await?;
    let opts = ProxyBenchOptions {
        proxied_url: format!("{}/up/item", hookd.base),
        unrecorded_url: format!("{}/up/missing", hookd.base),
        ..opts
    };
    let report = hookd_server::bench::proxy::run(opts).await;
    hookd.stop().await;
    say!("{}", report.map_err(|e| anyhow!(e))?)?;
    Ok(())
}

/// The inbound scenarios: an embedded hookd with one hook, called over HTTP.
async fn inbound(args: &BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.server.is_none(),
        "the inbound scenarios run an embedded hookd; --server is not supported"
    );
    let sync = args.scenario == Scenario::InboundSync;
    let (requests, _, _, rate) = defaults(args.scenario);
    let rate = args.rate.unwrap_or(rate);
    let requests = match args.events {
        Some(n) => n,
        None if rate > 0 => u64::from(rate) * 10,
        None => requests,
    };
    let hookd = Embedded::start(args, Settings::default()).await?;
    let created: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/api/v1/inbound", hookd.base))
        .bearer_auth(&hookd.token)
        .json(&hookd_server::bench::inbound::hook(sync))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let url = created["url"]
        .as_str()
        .ok_or_else(|| anyhow!("no url in {created}"))?
        .to_owned();
    say!(
        "scenario {:?}: {requests} requests, rate {}, {} callers",
        args.scenario,
        if rate == 0 {
            "max".to_string()
        } else {
            format!("{rate}/s")
        },
        args.concurrency
    )?;
    let opts = hookd_server::bench::inbound::InboundBenchOptions {
        url,
        requests,
        concurrency: args.concurrency.max(1),
        rate,
        status: 200,
    };
    let report = hookd_server::bench::inbound::run(opts).await;
    hookd.stop().await;
    say!("{}", report.map_err(|e| anyhow!(e))?)?;
    Ok(())
}

/// The `noisy` scenario: three phases on one embedded hookd, its bad webhooks left hanging.
async fn noisy(args: &BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.server.is_none(),
        "the noisy scenario runs an embedded hookd; --server is not supported"
    );
    let (_, _, _, rate) = defaults(args.scenario);
    let rate = args.rate.unwrap_or(rate);
    let settings = Settings::default();
    let opts = NoisyBenchOptions {
        server: String::new(),
        token: String::new(),
        // Twenty seconds at the chosen rate: the hanging webhooks' first requests time out
        // (15 s) and their circuits open within each phase.
        events: args.events.unwrap_or(u64::from(rate.max(1)) * 20),
        rate,
        concurrency: args.concurrency.max(1),
        deadline: Duration::from_secs(args.deadline_secs.min(NOISY_PHASE_WAIT_SECS)),
        max_in_flight: settings.delivery.max_in_flight_per_webhook,
    };
    say!(
        "scenario Noisy: 3 phases of {} events to the healthy webhook and {} to the bad ones, \
         rate {}, {} publishers each; hanging webhooks time out after {} s",
        opts.events,
        opts.events,
        if rate == 0 {
            "max".to_string()
        } else {
            format!("{rate}/s")
        },
        opts.concurrency,
        settings.delivery.timeout.as_secs()
    )?;
    let hookd = Embedded::start(args, settings).await?;
    let opts = NoisyBenchOptions {
        server: hookd.base.clone(),
        token: hookd.token.clone(),
        ..opts
    };
    let report = hookd_server::bench::noisy::run(opts).await;
    // Hanging requests would hold a graceful stop for the delivery timeout: print and go.
    if let Ok(report) = &report {
        say!("{report}")?;
    }
    hookd.abandon().await;
    report.map(drop).map_err(|e| anyhow!(e))
}

/// The `seed` scenario: history into `--database-url` itself (not a fresh schema), through an
/// embedded hookd without a worker.
async fn seed(args: &BenchArgs) -> anyhow::Result<()> {
    let url = args
        .database_url
        .as_deref()
        .ok_or_else(|| anyhow!("the seed scenario needs --database-url"))?;
    anyhow::ensure!(
        args.server.is_none(),
        "the seed scenario writes the database itself; --server is not supported"
    );
    let store = open_store(url, served_keys(url)?).await?;
    let count = args.history.unwrap_or(1_000_000);
    let hookd = Embedded::start_on(store, Settings::default(), WorkerMode::Separate, None).await?;
    let seeded = hookd.seed_history(count).await;
    hookd.stop().await;
    seeded
}

/// Longest wait, in the `noisy` scenario, for a phase's healthy deliveries after publishing.
const NOISY_PHASE_WAIT_SECS: u64 = 60;

/// A hookd running in this process on a fresh database.
struct Embedded {
    base: String,
    token: String,
    store: Arc<dyn Store>,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    /// The temporary SQLite file to delete at the end.
    temp: Option<std::path::PathBuf>,
}

impl Embedded {
    /// Starts hookd with `settings` (its address, token and SSRF exceptions are set here).
    /// With `--history`, the history is stored before this returns.
    async fn start(args: &BenchArgs, settings: Settings) -> anyhow::Result<Self> {
        let suffix = format!("bench_{}", chrono::Utc::now().timestamp_millis());
        let temp = std::env::temp_dir().join(format!("hookd-{suffix}.db"));
        let store = fresh_store(args, &suffix, &temp).await?;
        let hookd = Self::start_on(store, settings, WorkerMode::Embedded, Some(temp)).await?;
        if let Some(count) = args.history {
            hookd.seed_history(count).await?;
        }
        Ok(hookd)
    }

    async fn start_on(
        store: Arc<dyn Store>,
        mut settings: Settings,
        mode: WorkerMode,
        temp: Option<std::path::PathBuf>,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let token = hookd_server::auth::generate_token();
        settings.listen = addr;
        settings.public_url = format!("http://{addr}");
        settings.admin_token = Some(token.clone());
        // The benchmark's receiver listens on loopback, which the SSRF guard refuses by default.
        settings.delivery.allow_networks =
            vec![hookd_core::net::Cidr::parse("127.0.0.0/8").map_err(|e| anyhow!(e))?];
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(hookd_server::serve(
            settings,
            store.clone(),
            listener,
            mode,
            async {
                let _ = stopped.await;
            },
        ));
        Ok(Self {
            base: format!("http://{addr}"),
            token,
            store,
            stop,
            server,
            temp,
        })
    }

    /// Stores `count` finished deliveries of a webhook that no benchmark event matches, made an
    /// hour ago (well inside retention).
    async fn seed_history(&self, count: u64) -> anyhow::Result<()> {
        let created: serde_json::Value = reqwest::Client::new()
            .post(format!("{}/api/v1/webhooks", self.base))
            .bearer_auth(&self.token)
            .json(&serde_json::json!({
                "name": "history",
                "url": "http://127.0.0.1:9/history",
                "events": [{"type": "bench.history"}],
            }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let id = created["id"].as_str().unwrap_or_default();
        let id = hookd_core::ids::WebhookId::parse(id).map_err(|e| anyhow!("{e}: {created}"))?;
        let started = std::time::Instant::now();
        let an_hour_ago = chrono::Utc::now().timestamp_millis() - 3_600_000;
        self.store
            .seed_history(&id, count, an_hour_ago)
            .await
            .context("storing the history")?;
        say!(
            "history: {count} finished deliveries (with their events and attempts) stored in \
             {:.1} s",
            started.elapsed().as_secs_f64()
        )?;
        Ok(())
    }

    /// Stops the server and deletes its temporary database.
    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.server.await;
        remove_temp(self.temp.as_deref());
    }

    /// Asks the server to stop without waiting for its deliveries in flight (at most a second),
    /// and deletes its temporary database.
    async fn abandon(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(1), self.server).await;
        remove_temp(self.temp.as_deref());
    }
}

/// Deletes a temporary SQLite database with its WAL files.
fn remove_temp(temp: Option<&std::path::Path>) {
    let Some(temp) = temp else { return };
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", temp.display()));
    }
}

/// A migrated store: `--database-url` (a fresh schema on PostgreSQL) or a temporary SQLite file.
async fn fresh_store(
    args: &BenchArgs,
    suffix: &str,
    temp: &std::path::Path,
) -> anyhow::Result<Arc<dyn Store>> {
    let (url, keys) = match &args.database_url {
        Some(u) if u.starts_with("postgres") => {
            let url = hookd_store_postgres::testing::fresh_schema_url(u, suffix)
                .await
                .context("database_url: cannot create a bench schema")?;
            (url, Keys::ephemeral())
        }
        Some(u) => (u.clone(), served_keys(u)?),
        None => (format!("sqlite://{}", temp.display()), Keys::ephemeral()),
    };
    open_store(&url, keys).await
}

/// The keys `hookd serve --database-url url` seals with (`hookd.toml` and `HOOKD_*` apply), for
/// a database a server opens too.
fn served_keys(url: &str) -> anyhow::Result<Keys> {
    let overrides = crate::config::Overrides {
        database_url: Some(url.to_owned()),
        ..crate::config::Overrides::default()
    };
    let config = crate::config::Config::load(None, &overrides)?;
    Ok(super::secrets::keys(&config)?.keys)
}

/// A migrated store on `url` as it is, its secrets sealed with `keys`.
async fn open_store(url: &str, keys: Keys) -> anyhow::Result<Arc<dyn Store>> {
    let store: Arc<dyn Store> = if url.starts_with("postgres") {
        Arc::new(hookd_store_postgres::PgStore::connect(url, keys).await?)
    } else {
        Arc::new(hookd_store_sqlite::SqliteStore::connect(url, keys).await?)
    };
    store.migrate().await.context("applying migrations")?;
    Ok(store)
}
