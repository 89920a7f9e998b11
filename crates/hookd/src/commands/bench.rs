//! `hookd bench`: runs a scenario against an embedded hookd on a fresh database, or against a
//! running server, and prints the report.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use hookd_core::Store;
use hookd_server::bench::{BenchOptions, BenchReport};
use hookd_server::{Settings, WorkerMode};
use tokio::net::TcpListener;

use crate::cli::{BenchArgs, Scenario};

/// Scenario defaults: (events, webhooks, failing share, rate).
fn defaults(s: Scenario) -> (u64, u32, f64, u32) {
    match s {
        Scenario::Single => (50_000, 1, 0.0, 0),
        Scenario::Fanout => (1_000, 50, 0.0, 0),
        Scenario::Failing => (5_000, 10, 0.2, 500),
        Scenario::Latency => (2_000, 1, 0.0, 200),
    }
}

pub async fn run(args: &BenchArgs) -> anyhow::Result<()> {
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
    println!(
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
    );
    let report = match (&args.server, &args.token) {
        (Some(server), Some(token)) => {
            opts.server = server.trim_end_matches('/').to_owned();
            opts.token = token.clone();
            run_opts(opts).await?
        }
        _ => embedded(args, opts).await?,
    };
    println!("{report}");
    Ok(())
}

async fn run_opts(opts: BenchOptions) -> anyhow::Result<BenchReport> {
    hookd_server::bench::run(opts).await.map_err(|e| anyhow!(e))
}

/// Starts hookd in this process on a fresh database and benchmarks it.
async fn embedded(args: &BenchArgs, mut opts: BenchOptions) -> anyhow::Result<BenchReport> {
    let suffix = format!("bench_{}", chrono::Utc::now().timestamp_millis());
    let temp = std::env::temp_dir().join(format!("hookd-{suffix}.db"));
    let url = match &args.database_url {
        Some(u) if u.starts_with("postgres") => {
            hookd_store_postgres::testing::fresh_schema_url(u, &suffix)
                .await
                .context("database_url: cannot create a bench schema")?
        }
        Some(u) => u.clone(),
        None => format!("sqlite://{}", temp.display()),
    };
    let store: Arc<dyn Store> = if url.starts_with("postgres") {
        Arc::new(hookd_store_postgres::PgStore::connect(&url).await?)
    } else {
        Arc::new(hookd_store_sqlite::SqliteStore::connect(&url).await?)
    };
    store.migrate().await.context("applying migrations")?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let token = hookd_server::auth::generate_token();
    let mut settings = Settings {
        listen: addr,
        public_url: format!("http://{addr}"),
        admin_token: Some(token.clone()),
        ..Settings::default()
    };
    // The benchmark's receiver listens on loopback, which the SSRF guard refuses by default.
    settings.delivery.allow_networks =
        vec![hookd_core::net::Cidr::parse("127.0.0.0/8").map_err(|e| anyhow!(e))?];
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(hookd_server::serve(
        settings,
        store,
        listener,
        WorkerMode::Embedded,
        async {
            let _ = stopped.await;
        },
    ));
    opts.server = format!("http://{addr}");
    opts.token = token;
    let report = run_opts(opts).await;
    let _ = stop.send(());
    let _ = server.await;
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", temp.display()));
    }
    report
}
