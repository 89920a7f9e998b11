//! The command line (SPEC §3) as clap definitions: what each command takes, nothing it does.

use std::path::PathBuf;

use clap::builder::TypedValueParser as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use hookd_core::delivery::DeliveryStatus;

/// hookd: a self-hosted webhook server that sends and receives webhooks.
#[derive(Debug, Parser)]
#[command(name = "hookd", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the API, inbound URLs and (unless --no-worker) the delivery worker.
    Serve(ServeArgs),
    /// Run a delivery worker only (any number of them may share a PostgreSQL database).
    Worker(WorkerArgs),
    /// Apply the database schema migrations.
    Migrate(ConfigArgs),
    /// Manage admin API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Seal stored secrets: make a master key, or rotate the data key.
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
    },
    /// Manage webhooks on a running server.
    Webhooks {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: WebhooksCommand,
    },
    /// Publish and inspect events on a running server.
    Events {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: EventsCommand,
    },
    /// Inspect and retry deliveries on a running server.
    Deliveries {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: DeliveriesCommand,
    },
    /// Manage scheduled webhooks (cron or fixed interval) on a running server.
    Schedules {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: SchedulesCommand,
    },
    /// Manage inbound webhook URLs and inspect their executions on a running server.
    Inbound {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: InboundCommand,
    },
    /// Follow deliveries live: one line per new or changed delivery among the latest 50 (with
    /// --json, the delivery's JSON on one line).
    Tail(ClientArgs),
    /// Verify the signature of a received webhook.
    Verify(VerifyArgs),
    /// Load-test hookd: publish events, receive the deliveries locally, report throughput,
    /// latency, losses, duplicates and memory.
    Bench(BenchArgs),
    /// Print a shell completion script, e.g.
    /// `hookd completions bash > ~/.local/share/bash-completion/completions/hookd`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

impl Command {
    /// Whether the command reads the server configuration (and logs with its `log` filter).
    pub fn loads_config(&self) -> bool {
        matches!(
            self,
            Self::Serve(_)
                | Self::Worker(_)
                | Self::Migrate(_)
                | Self::Token { .. }
                | Self::Secrets {
                    command: SecretsCommand::RotateKey { .. }
                }
        )
    }
}

/// Where the server configuration comes from (beside `hookd.toml` and `HOOKD_*`).
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Configuration file (default: hookd.toml in the working directory, if present).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Database URL (sqlite://… or postgres://…), over the file and HOOKD_DATABASE_URL.
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Address to serve /health, /ready and /metrics on (port 0: any free one), over the file's
    /// and HOOKD_WORKER_LISTEN's `worker_listen`; "" serves none.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Run the API only; deliveries are made by separate `hookd worker` processes.
    #[arg(long)]
    pub no_worker: bool,
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Address to listen on (e.g. 0.0.0.0:8080), over the file and HOOKD_LISTEN.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an admin API token and print it (it is stored hashed and shown only once).
    Create {
        /// A name to recognise the token by.
        #[arg(long, default_value = "cli")]
        name: String,
        #[command(flatten)]
        config: ConfigArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Print a new random master key for `secrets_key` (32 bytes, base64).
    GenerateKey,
    /// Seal every stored secret with a new data key, itself sealed by the configured
    /// `secrets_key`, then delete the old data keys, in one transaction. Servers keep serving
    /// meanwhile; an interrupted rotation changes nothing (run it again).
    RotateKey {
        #[command(flatten)]
        config: ConfigArgs,
    },
}

/// How to reach a running server.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// Base URL of the hookd server.
    #[arg(
        long,
        global = true,
        env = "HOOKD_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    pub server: String,
    /// Admin API token.
    #[arg(long, global = true, env = "HOOKD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print the server's JSON answer instead of a table (for scripts).
    #[arg(long, global = true)]
    pub json: bool,
    /// Longest wait for the server's answer, in seconds [default: 30; `webhooks test`, which
    /// waits for the target, 150].
    #[arg(long, global = true, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: Option<u64>,
}

/// A page of a list.
#[derive(Debug, Args)]
pub struct PageArgs {
    /// Rows to return (server default 50, at most 1000).
    #[arg(long)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[arg(long)]
    pub cursor: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// List webhooks.
    List(PageArgs),
    /// Show one webhook.
    Get { id: String },
    /// Create a webhook from JSON.
    Create(DataArg),
    /// Change a webhook: only the fields given in the JSON.
    Update {
        id: String,
        #[command(flatten)]
        data: DataArg,
    },
    /// Delete a webhook.
    Delete { id: String },
    /// Turn a webhook on.
    Enable { id: String },
    /// Turn a webhook off.
    Disable { id: String },
    /// Send a `webhook.test` event (or the event given with --data) now and show the attempt.
    Test {
        id: String,
        #[command(flatten)]
        data: OptionalDataArg,
    },
    /// Show the request a webhook would send, without sending it: a saved one by ID (--data: the
    /// event, `{"type", "model", "data"}`), or an unsaved one from --data
    /// `{"webhook": {…}, "event": {…}}`.
    #[command(group = clap::ArgGroup::new("what").required(true).args(["id", "data"]).multiple(true))]
    Preview {
        id: Option<String>,
        #[command(flatten)]
        data: OptionalDataArg,
    },
    /// Show a webhook's signing secret (and its public key for ed25519).
    Secret { id: String },
    /// Give a webhook a new signing secret; the old one still signs during the grace period.
    RotateSecret { id: String },
    /// Queue again the webhook's failed deliveries created since a time.
    Recover {
        id: String,
        /// RFC 3339, e.g. 2026-12-01T00:00:00Z.
        #[arg(long)]
        since: String,
    },
    /// Per webhook: latest status and counts of succeeded, failed and pending deliveries.
    Stats {
        /// Comma-separated webhook ids, at most 1000 [default: the first 1000 webhooks].
        #[arg(long, value_name = "ID,…")]
        ids: Option<String>,
        /// RFC 3339: count deliveries created since then [default: 24 hours ago].
        #[arg(long)]
        since: Option<String>,
    },
}

/// A JSON body: inline, `@file`, or `@-` for standard input.
#[derive(Debug, Args)]
pub struct DataArg {
    /// JSON text, @FILE to read a file, or @- to read standard input.
    #[arg(long, value_name = "JSON|@FILE")]
    pub data: String,
}

#[derive(Debug, Args)]
pub struct OptionalDataArg {
    /// JSON text, @FILE to read a file, or @- to read standard input.
    #[arg(long, value_name = "JSON|@FILE")]
    pub data: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Publish an event; matching webhooks get a delivery each.
    Publish(PublishArgs),
    /// Publish up to 1000 events in one request, from --data `{"events": […]}` or a JSON array
    /// of events.
    Batch(DataArg),
    /// Publish an event addressed by URL to the route-call filters (`POST /route-calls`).
    RouteCall(DataArg),
    /// List events.
    List(PageArgs),
    /// Show one event.
    Get { id: String },
}

#[derive(Debug, Subcommand)]
pub enum SchedulesCommand {
    /// List schedules.
    List(PageArgs),
    /// Show one schedule with its next run times.
    Get { id: String },
    /// Create a schedule from JSON (`name`, `webhook_id`, `cron` or `every_seconds`, …).
    Create(DataArg),
    /// Change a schedule: only the fields given in the JSON.
    Update {
        id: String,
        #[command(flatten)]
        data: DataArg,
    },
    /// Delete a schedule.
    Delete { id: String },
    /// Start firing a schedule.
    Enable { id: String },
    /// Stop firing a schedule (it keeps its settings).
    Disable { id: String },
    /// Fire a schedule now, once, outside its timing.
    Run { id: String },
    /// Show the request a schedule's next run would send: a saved one by ID, or an unsaved one
    /// from --data (the JSON `create` takes).
    #[command(group = clap::ArgGroup::new("what").required(true).args(["id", "data"]))]
    Preview {
        id: Option<String>,
        #[command(flatten)]
        data: OptionalDataArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum InboundCommand {
    /// List inbound hooks with their URLs.
    List(PageArgs),
    /// Show one inbound hook.
    Get { id: String },
    /// Create an inbound hook from JSON (`name`, `auth`, `parse`, `mode`, `workflow`, …).
    Create(DataArg),
    /// Change an inbound hook: only the fields given in the JSON.
    Update {
        id: String,
        #[command(flatten)]
        data: DataArg,
    },
    /// Delete an inbound hook (its URL then answers 404).
    Delete { id: String },
    /// Accept requests on a hook's URL.
    Enable { id: String },
    /// Refuse requests on a hook's URL (it keeps its settings).
    Disable { id: String },
    /// List a hook's executions, newest first.
    Executions {
        id: String,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show one execution: request, variables, node trace, response.
    Execution { id: String },
    /// Show the fields a parse configuration would take from a sample
    /// (--data `{"url": …, "json": …}`).
    Parse(DataArg),
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// Event type, e.g. entry.create or invoice.paid.
    #[arg(long = "type", value_name = "TYPE")]
    pub event_type: String,
    /// Model (Strapi model, Frappe doctype).
    #[arg(long)]
    pub model: Option<String>,
    #[command(flatten)]
    pub data: OptionalDataArg,
    /// Publishing again with the same key returns the first event and queues nothing.
    #[arg(long)]
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum DeliveriesCommand {
    /// List deliveries, newest first.
    List {
        /// Only those to this webhook.
        #[arg(
            long = "webhook",
            visible_alias = "webhook-id",
            value_name = "WEBHOOK_ID"
        )]
        webhook_id: Option<String>,
        /// Only those of this event.
        #[arg(long = "event", visible_alias = "event-id", value_name = "EVENT_ID")]
        event_id: Option<String>,
        /// Only those in this state.
        #[arg(long, value_parser = delivery_status())]
        status: Option<DeliveryStatus>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show one delivery with its attempts.
    Get { id: String },
    /// Send a delivery again now.
    Retry { id: String },
    /// Attempts per minute over the last hour (or per hour over the last day): succeeded,
    /// failed, p50/p95 latency, of every webhook or of one (the dashboard's numbers).
    Stats {
        /// 1h (60 one-minute buckets) or 24h (24 one-hour buckets).
        #[arg(long, value_parser = ["1h", "24h"], default_value = "1h")]
        window: String,
        /// Only this webhook's attempts.
        #[arg(
            long = "webhook",
            visible_alias = "webhook-id",
            value_name = "WEBHOOK_ID"
        )]
        webhook_id: Option<String>,
    },
}

/// `--status`: the names of [`DeliveryStatus`], each offered (and listed in errors) by clap.
fn delivery_status() -> impl clap::builder::TypedValueParser<Value = DeliveryStatus> {
    clap::builder::PossibleValuesParser::new(DeliveryStatus::ALL.map(DeliveryStatus::as_str))
        .map(|name| DeliveryStatus::parse(&name).expect("one of the possible values"))
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The signing secret: whsec_… (standard), whsk_… (ed25519, instead of --public-key), or the
    /// secret text itself (hmac-sha256).
    #[arg(long)]
    pub secret: Option<String>,
    /// ed25519: the webhook's whpk_… public key (`GET /webhooks/{id}/secret` shows it).
    #[arg(long, value_name = "whpk_…")]
    pub public_key: Option<String>,
    /// A received header, as `Name: value` (repeat for each; names ignore case).
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE", value_parser = parse_header)]
    pub headers: Vec<(String, String)>,
    /// File holding the exact received body (default: standard input).
    #[arg(long, value_name = "FILE")]
    pub body_file: Option<PathBuf>,
    /// Signature scheme.
    #[arg(long, value_enum, default_value_t = Scheme::Standard)]
    pub scheme: Scheme,
    /// hmac-sha256: the header holding the signature [default: X-Hookd-Signature].
    #[arg(long, value_name = "NAME")]
    pub signature_header: Option<String>,
    /// hmac-sha256: how the HMAC is written [default: base64].
    #[arg(long, value_enum)]
    pub encoding: Option<Encoding>,
    /// hmac-sha256: text before the encoded HMAC, e.g. `sha256=`.
    #[arg(long, value_name = "P")]
    pub prefix: Option<String>,
}

/// Signature schemes `hookd verify` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scheme {
    /// Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature (v1, HMAC-SHA256).
    Standard,
    /// Standard Webhooks v1a: the same headers, an Ed25519 signature (whpk_ public key).
    Ed25519,
    /// HMAC-SHA256 of the body in one header (Frappe, GitHub style).
    #[value(name = "hmac-sha256")]
    HmacSha256,
}

/// How an hmac-sha256 signature is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Encoding {
    Base64,
    Hex,
}

/// `Name: value` → (`name` lower-cased, `value` trimmed).
fn parse_header(text: &str) -> Result<(String, String), String> {
    let (name, value) = text.split_once(':').ok_or("expected `Name: value`")?;
    let name = name.trim();
    if name.is_empty() {
        return Err("expected `Name: value`, the name is empty".into());
    }
    Ok((name.to_ascii_lowercase(), value.trim().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Command {
        Cli::try_parse_from(std::iter::once("hookd").chain(args.iter().copied()))
            .unwrap()
            .command
    }

    #[test]
    fn the_definitions_are_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_takes_config_flags() {
        let Command::Serve(args) = parse(&[
            "serve",
            "--no-worker",
            "--listen",
            "0.0.0.0:1",
            "--database-url",
            "sqlite:",
        ]) else {
            panic!("not serve");
        };
        assert!(args.no_worker);
        assert_eq!(args.listen.as_deref(), Some("0.0.0.0:1"));
        assert_eq!(args.config.database_url.as_deref(), Some("sqlite:"));
    }

    #[test]
    fn client_flags_may_follow_the_subcommand() {
        let Command::Webhooks {
            client,
            command: WebhooksCommand::Get { id },
        } = parse(&[
            "webhooks",
            "get",
            "wh_1",
            "--server",
            "http://h:1",
            "--token",
            "t",
        ])
        else {
            panic!("not webhooks get");
        };
        assert_eq!(
            (client.server.as_str(), client.token.as_deref()),
            ("http://h:1", Some("t"))
        );
        assert_eq!(id, "wh_1");
    }

    #[test]
    fn headers_are_split_and_lower_cased() {
        assert_eq!(
            parse_header("Webhook-Id: msg_1").unwrap(),
            ("webhook-id".into(), "msg_1".into())
        );
        assert_eq!(parse_header("a:b:c").unwrap(), ("a".into(), "b:c".into()));
        assert!(parse_header("no colon").is_err());
        assert!(parse_header(": v").is_err());
    }
}

/// The benchmark scenarios (SPEC §10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// One webhook; 50,000 events published as fast as the API takes them.
    Single,
    /// Each event fans out to 50 webhooks.
    Fanout,
    /// 10 webhooks, 20 % of them answering 500, at 500 events/s: healthy latency must hold.
    Failing,
    /// One webhook at a fixed rate (`--rate`, default 200/s) for 10 s: publish→arrival latency.
    Latency,
    /// `--events` requests (default 20,000) to a local upstream directly, through hookd's
    /// reverse proxy unrecorded (404) and recorded (200): the proxy's and the recording's cost.
    Proxy,
    /// `--events` requests (default 20,000) to an async inbound hook as fast as `--concurrency`
    /// callers go: requests durably accepted per second, and the callers' latency.
    InboundAsync,
    /// A sync inbound hook with a condition and a response node at `--rate` (default 200/s)
    /// for 10 s: the callers' latency.
    InboundSync,
    /// Isolation: one healthy webhook's publish→arrival latency alone, beside 1 hanging webhook,
    /// and beside 10 hanging and 1 failing (500, retried every second), in three phases of
    /// `--events` (default 20 s at `--rate`, default 200/s) on one embedded hookd.
    Noisy,
    /// Stores `--history` (default 1,000,000) finished deliveries, each with its event and
    /// attempt, into `--database-url` and exits: a retained history to run `hookd serve` and a
    /// load tool beside.
    Seed,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[arg(long, value_enum, default_value = "single")]
    pub scenario: Scenario,
    /// Events to publish (default per scenario).
    #[arg(long)]
    pub events: Option<u64>,
    /// Webhooks each event goes to (default per scenario).
    #[arg(long)]
    pub webhooks: Option<u32>,
    /// Share of webhooks whose receiver answers 500 (default per scenario).
    #[arg(long)]
    pub failing_share: Option<f64>,
    /// Events per second; 0 publishes as fast as the API accepts (default per scenario).
    #[arg(long)]
    pub rate: Option<u32>,
    /// Concurrent publishing connections.
    #[arg(long, default_value_t = 32)]
    pub concurrency: u32,
    /// Database of the embedded server: a temporary SQLite file by default; a postgres:// URL
    /// gets a schema of its own in that database.
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// Drive a running hookd instead of an embedded one.
    #[arg(long, value_name = "URL", requires = "token")]
    pub server: Option<String>,
    /// Admin token of the running hookd (`--server`).
    #[arg(long, env = "HOOKD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Finished deliveries (each with its event and attempt) stored before measuring, so the
    /// figures show what retained history costs. Embedded hookd only.
    #[arg(long, value_name = "N")]
    pub history: Option<u64>,
    /// Seconds to wait for deliveries after publishing.
    #[arg(long, default_value_t = 300)]
    pub deadline_secs: u64,
}
