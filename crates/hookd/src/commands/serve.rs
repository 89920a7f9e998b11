//! `hookd serve`, `hookd worker` and `hookd migrate`: the server processes and the schema.

use anyhow::Context as _;
use hookd_core::Store;
use hookd_server::{Settings, WorkerMode};
use tokio::net::TcpListener;

use super::{load_config, open_store};
use crate::cli::{ConfigArgs, ServeArgs};

/// Runs the API (and the worker unless `--no-worker`) until Ctrl-C or SIGTERM.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = load_config(&args.config, args.listen)?;
    let store = open_store(&config.database_url).await?;
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
        WorkerMode::Embedded
    };
    hookd_server::serve(settings, store, listener, mode, shutdown_signal())
        .await
        .context("the server stopped with an error")
}

/// On the first start, creates an admin token and prints it, once, with where to use it.
async fn announce_admin_token(store: &dyn Store, settings: &Settings) -> anyhow::Result<()> {
    let token = hookd_server::bootstrap_admin_token(store, settings)
        .await
        .context("creating the first admin token")?;
    if let Some(token) = token {
        println!("Admin API: {}/api/v1", settings.public_url);
        println!("Admin UI: {}/ui/", settings.public_url);
        println!("Admin token (shown once): {token}");
    }
    Ok(())
}

/// Runs a delivery worker until Ctrl-C or SIGTERM.
pub async fn worker(args: &ConfigArgs) -> anyhow::Result<()> {
    let config = load_config(args, None)?;
    let store = open_store(&config.database_url).await?;
    tracing::info!(database = %config.database_url, "hookd worker started");
    hookd_server::work(config.to_settings(), store, shutdown_signal())
        .await
        .context("the worker stopped with an error")
}

/// Applies pending migrations and says to which database.
pub async fn migrate(args: &ConfigArgs) -> anyhow::Result<()> {
    let config = load_config(args, None)?;
    open_store(&config.database_url).await?;
    println!("Database {} is migrated.", config.database_url);
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
