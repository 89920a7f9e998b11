//! Runs a parsed command line. One module per command group; this file holds what they share:
//! loading the configuration, starting logs and opening the database.

/// `println!` that returns the error of a standard output its reader closed (`hookd … | head`)
/// instead of panicking; `main` ends such a command quietly.
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::commands::out(format!("{}\n", format_args!($($arg)*)).as_bytes())
    };
}

mod bench;
mod client;
mod logs;
mod secrets;
mod serve;
mod table;
mod token;
mod verify;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use hookd_core::Store;
use hookd_store_postgres::{PgOptions, PgStore};
use hookd_store_sql::secrets::Keys;
use hookd_store_sqlite::SqliteStore;

use crate::cli::{Cli, Command, ConfigArgs, SecretsCommand, TokenCommand};
use crate::config::{Backend, Config, LogFormat, Overrides};

/// Writes `bytes` to standard output; an error (a reader that went away) is returned, not a
/// panic as `print!` makes it.
pub(crate) fn out(bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(bytes)?;
    stdout.flush()?;
    Ok(())
}

/// Log filter of the commands that load no configuration.
const CLIENT_LOG: &str = "warn";
/// `hookd bench`'s: the client's, without sqlx's slow-statement warnings.
const BENCH_LOG: &str = "warn,sqlx::query=error";

/// Runs `cli`'s command to its end.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    if !cli.command.loads_config() {
        let filter = match cli.command {
            // Seeding a history runs statements that take seconds on purpose: sqlx's
            // slow-statement warnings (each with the whole statement) are not news there.
            Command::Bench(_) => BENCH_LOG,
            _ => CLIENT_LOG,
        };
        logs::init(logs::Logging {
            filter,
            format: LogFormat::Text,
            otlp: None,
        })?;
    }
    let result = run_command(cli).await;
    logs::flush().await;
    result
}

async fn run_command(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve::serve(args).await,
        Command::Worker(args) => serve::worker(&args).await,
        Command::Migrate(args) => serve::migrate(&args).await,
        Command::Token {
            command: TokenCommand::Create { name, config },
        } => token::create(&name, &config).await,
        Command::Secrets {
            command: SecretsCommand::GenerateKey,
        } => secrets::generate_key(),
        Command::Secrets {
            command: SecretsCommand::RotateKey { config },
        } => secrets::rotate_key(&config).await,
        Command::Webhooks { client, command } => client::webhooks(&client, command).await,
        Command::Events { client, command } => client::events(&client, command).await,
        Command::Deliveries { client, command } => client::deliveries(&client, command).await,
        Command::Schedules { client, command } => client::schedules(&client, command).await,
        Command::Inbound { client, command } => client::inbound(&client, command).await,
        Command::Tail(client) => client::tail(&client).await,
        Command::Verify(args) => verify::run(&args),
        Command::Bench(args) => bench::run(&args).await,
        Command::Completions { shell } => {
            use clap::CommandFactory as _;
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "hookd", &mut script);
            out(&script)
        }
    }
}

/// Loads the configuration with the flags of `args` (and `--listen`, for `serve`) and starts
/// logging with its `log` filter (the commands that load none log with [`CLIENT_LOG`]).
fn load_config(args: &ConfigArgs, listen: Option<String>) -> anyhow::Result<Config> {
    load_config_with(
        args,
        Overrides {
            listen,
            ..Overrides::default()
        },
    )
}

/// [`load_config`] with every flag's override.
fn load_config_with(args: &ConfigArgs, overrides: Overrides) -> anyhow::Result<Config> {
    let overrides = Overrides {
        database_url: args.database_url.clone(),
        ..overrides
    };
    let config = Config::load(args.config.as_deref(), &overrides)?;
    logs::init(logs::Logging {
        filter: &config.log,
        format: config.log_format,
        otlp: config.otlp_endpoint.as_deref(),
    })?;
    tracing::debug!(?config, "configuration loaded");
    Ok(config)
}

/// Connects to the configured database and applies pending migrations (which checks that the
/// configured keys open the stored secrets).
async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let keys = secrets::keys(config)?;
    let generated = keys.generated.clone();
    let opened = connect(config, keys.keys).await;
    opened.map_err(|e| secrets::explain(e, generated.as_deref()))
}

async fn connect(config: &Config, keys: Keys) -> anyhow::Result<Arc<dyn Store>> {
    let url = &config.database_url;
    let context = || format!("database_url: cannot open {url}");
    let store: Arc<dyn Store> = match url.backend() {
        Backend::Sqlite => Arc::new(
            SqliteStore::connect(url.expose(), keys)
                .await
                .with_context(context)?,
        ),
        Backend::Postgres => {
            let timeout = config.database_statement_timeout_seconds;
            let options = PgOptions {
                acquire_timeout: Duration::from_secs(
                    config.database_acquire_timeout_seconds.into(),
                ),
                pool_size: config.database_pool_size,
                statement_timeout: (timeout > 0).then(|| Duration::from_secs(timeout.into())),
            };
            Arc::new(
                PgStore::connect_with(url.expose(), options, keys)
                    .await
                    .with_context(context)?,
            )
        }
    };
    store
        .migrate()
        .await
        .with_context(|| format!("applying migrations to {url}"))?;
    Ok(store)
}
