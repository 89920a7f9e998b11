//! `hookd serve`, `hookd worker` and `hookd migrate`: the server processes and the schema.

use anyhow::Context as _;
use hookd_core::Store;
use hookd_server::{Settings, WorkerMode};
use tokio::net::TcpListener;

use super::{load_config, load_config_with, open_store};
use crate::cli::{ConfigArgs, ServeArgs, WorkerArgs};
use crate::config::Overrides;

/// Runs the API (and the worker unless `--no-worker`) until Ctrl-C or SIGTERM.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = load_config(&args.config, args.listen)?;
    let store = open_store(&config).await?;
    let mut settings = config.to_settings();
    let listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("listen: cannot listen on {}", settings.listen))?;
    let address = listener.local_addr().context("listen: no local address")?;
    if settings.public_url == format!("http://{}", settings.listen) {
        // The default public URL follows the address actually bound (port 0 picks one).
        settings.public_url = format!("http://{address}");
    }
    tracing::info!(%address, public_url = %settings.public_url, "hookd listening");
    announce_admin_token(store.as_ref(), &settings).await?;
    let mode = if args.no_worker {
        WorkerMode::Separate
    } else {
        warn_if_too_few_open_files(settings.delivery.concurrency);
        WorkerMode::Embedded
    };
    hookd_server::serve(settings, store, listener, mode, shutdown_signal())
        .await
        .context("the server stopped with an error")
}

/// Prints where the admin API and UI are; on the first start (no token, no `admin_token`)
/// creates an admin token and prints it, once.
async fn announce_admin_token(store: &dyn Store, settings: &Settings) -> anyhow::Result<()> {
    let token = hookd_server::bootstrap_admin_token(store, settings)
        .await
        .context("creating the first admin token")?;
    let mut lines = format!(
        "Admin API: {url}/api/v1\nAdmin UI: {url}/ui/\n",
        url = settings.public_url
    );
    if let Some(token) = &token {
        lines.push_str(&format!("Admin token (shown once): {token}\n"));
    }
    // A closed standard output does not stop the server; the token is then lost, so say how
    // to make another.
    if let Err(e) = super::out(lines.as_bytes()) {
        tracing::warn!(
            error = %e,
            token_lost = token.is_some(),
            "cannot print the admin URLs to standard output (`hookd token create` makes a token)"
        );
    }
    Ok(())
}

/// Runs a delivery worker (and its operations endpoints on `worker_listen`) until Ctrl-C or
/// SIGTERM.
pub async fn worker(args: &WorkerArgs) -> anyhow::Result<()> {
    let overrides = Overrides {
        worker_listen: args.listen.clone(),
        ..Overrides::default()
    };
    let config = load_config_with(&args.config, overrides)?;
    let store = open_store(&config).await?;
    let ops = match config.worker_listen {
        Some(address) => {
            let listener = TcpListener::bind(address).await.with_context(|| {
                format!(
                    "worker_listen: cannot listen on {address}: give each worker on this host \
                     its own (`hookd worker --listen 127.0.0.1:0` picks a free port), or \
                     \"\" for none"
                )
            })?;
            let bound = listener
                .local_addr()
                .context("worker_listen: no local address")?;
            tracing::info!(address = %bound, "worker serving /health, /ready and /metrics");
            Some(listener)
        }
        None => None,
    };
    tracing::info!(database = %config.database_url, "hookd worker started");
    warn_if_too_few_open_files(config.delivery.concurrency);
    hookd_server::work(config.to_settings(), store, ops, shutdown_signal())
        .await
        .context("the worker stopped with an error")
}

/// Files a worker keeps open beside its delivery sockets: database connections, the API's
/// clients, logs.
const OTHER_FILES: u64 = 256;

/// Warns when the process may open fewer files than `delivery.concurrency` requests in flight
/// need (each holds a socket): past the limit, connections fail with "too many open files".
fn warn_if_too_few_open_files(concurrency: usize) {
    let Some(limit) = open_files_limit() else {
        return;
    };
    let needed = concurrency as u64 + OTHER_FILES;
    if limit < needed {
        tracing::warn!(
            limit,
            needed,
            "the open-files limit is below delivery.concurrency plus {OTHER_FILES}: raise it \
             (ulimit -n, or LimitNOFILE= in a systemd unit) or lower delivery.concurrency"
        );
    }
}

/// The soft limit on open files (Linux `/proc/self/limits`); `None` when unknown or unlimited.
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_open_files_limit(&limits)
}

fn parse_open_files_limit(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Applies pending migrations and says to which database.
pub async fn migrate(args: &ConfigArgs) -> anyhow::Result<()> {
    let config = load_config(args, None)?;
    open_store(&config).await?;
    say!("Database {} is migrated.", config.database_url)?;
    Ok(())
}

/// Resolves on Ctrl-C, or on SIGTERM where there are signals.
async fn shutdown_signal() {
    let interrupt = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        () = interrupt => {}
        () = terminate() => {}
    }
    tracing::info!("shutting down");
}

#[cfg(unix)]
async fn terminate() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut sigterm) => {
            sigterm.recv().await;
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(not(unix))]
async fn terminate() {
    std::future::pending::<()>().await;
}

#[cfg(test)]
mod tests {
    use super::parse_open_files_limit;

    #[test]
    fn reads_the_soft_open_files_limit() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            1024                 524288               files
Max locked memory         8388608              8388608              bytes";
        assert_eq!(parse_open_files_limit(limits), Some(1024));
        let unlimited = "Max open files            unlimited            unlimited            files";
        assert_eq!(parse_open_files_limit(unlimited), None);
        assert_eq!(parse_open_files_limit(""), None);
    }
}
