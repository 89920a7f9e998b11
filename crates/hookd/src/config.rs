//! hookd's configuration (SPEC §8): one typed [`Config`], loaded and validated once at start-up.
//!
//! Sources, later wins: the built-in defaults (documented in `config.default.toml` at the
//! repository root), `hookd.toml` in the working directory or the `--config` file, `HOOKD_*`
//! environment variables (`__` between nested keys), and the `--database-url`/`--listen` flags.
//! [`Config::from_sources`] does no IO, so tests pass the file text, the environment and the flags
//! as values; [`Config::load`] reads the real ones. Every problem names its key path.

mod layers;
mod raw;
mod validate;
mod values;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use hookd_core::flow::CircuitPolicy;
use hookd_server::{DeliverySettings, ProxySettings, Settings};

pub use layers::NON_CONFIG_VARS;
pub use values::{Backend, Cidr, DatabaseUrl};

/// The file read when `--config` is not given, if it exists.
pub const DEFAULT_FILE: &str = "hookd.toml";

/// Values given on the command line, which win over every other source.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--database-url`.
    pub database_url: Option<String>,
    /// `--listen`.
    pub listen: Option<String>,
    /// `hookd worker --listen`.
    pub worker_listen: Option<String>,
}

/// A configuration file's text and where it came from (for messages).
#[derive(Debug, Clone)]
pub struct ConfigFile {
    pub origin: String,
    pub text: String,
}

/// The validated configuration.
#[derive(Clone, PartialEq)]
pub struct Config {
    pub listen: SocketAddr,
    /// Base URL users reach hookd at, without a trailing slash.
    pub public_url: String,
    pub database_url: DatabaseUrl,
    /// PostgreSQL: how long a statement waits for a pooled connection before the API answers
    /// 503 `unavailable`.
    pub database_acquire_timeout_seconds: u32,
    /// PostgreSQL: connections in each process's pool.
    pub database_pool_size: u32,
    /// PostgreSQL: the server cancels a statement running longer; 0 never does.
    pub database_statement_timeout_seconds: u32,
    /// An admin API token accepted beside the stored ones; redacted in `Debug`.
    pub admin_token: Option<String>,
    /// What seals the secrets stored in the database; redacted in `Debug`.
    pub secrets: SecretsConfig,
    /// Headers every webhook sends unless it overrides or removes them.
    pub default_headers: Vec<(String, String)>,
    pub retention_days: u32,
    /// The tracing filter (`HOOKD_LOG` overrides it when logging starts).
    pub log: String,
    /// How log lines are written.
    pub log_format: LogFormat,
    /// Where `hookd worker` serves `/health`, `/ready` and `/metrics`; `None`: nowhere.
    pub worker_listen: Option<SocketAddr>,
    /// The OTLP/HTTP collector spans are exported to (`…/v1/traces` is added); `None`: none.
    pub otlp_endpoint: Option<String>,
    pub delivery: DeliveryConfig,
    /// `inbound.max_body_bytes`: the largest request body accepted.
    pub max_body_bytes: usize,
    /// The rest of `[inbound]`: the public intake's bounds.
    pub inbound: InboundConfig,
    /// `[http]`: the listener's limits.
    pub http: HttpConfig,
    /// `proxy.max_body_bytes`: proxied bodies are recorded up to this many bytes.
    pub proxy_max_body_bytes: usize,
    /// `proxy.routes`: what the reverse proxy forwards where.
    pub proxy_routes: Vec<ProxyRoute>,
}

/// `log_format`: lines for people, or one JSON object per line for a log pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// `secrets_key`, `secrets_key_file`, `secrets_old_keys`: the master keys that seal the data
/// keys of the secrets at rest. Neither key nor file on SQLite: a key file beside the database.
#[derive(Clone, PartialEq, Default)]
pub struct SecretsConfig {
    /// The key itself (checked), base64.
    pub key: Option<String>,
    pub key_file: Option<std::path::PathBuf>,
    /// Keys still opened (a master key rotation's old one), never sealed with.
    pub old_keys: Vec<String>,
}

impl fmt::Debug for SecretsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretsConfig")
            .field("key", &self.key.as_ref().map(|_| "****"))
            .field("key_file", &self.key_file)
            .field("old_keys", &vec!["****"; self.old_keys.len()])
            .finish()
    }
}

/// `[inbound]`, less `max_body_bytes` (which bounds every request body).
#[derive(Debug, Clone, PartialEq)]
pub struct InboundConfig {
    pub rate_limit_per_second: u32,
    pub client_rate_limit_per_second: u32,
    pub trusted_proxies: Vec<Cidr>,
    pub max_queued_executions: u32,
    pub rejected_records_per_minute: u32,
}

/// `[http]`.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpConfig {
    pub header_timeout_seconds: u32,
    pub body_timeout_seconds: u32,
    pub max_connections: u32,
}

/// `[delivery]`.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryConfig {
    pub timeout_ms: u32,
    pub max_attempts: u32,
    pub retry_schedule: Vec<u32>,
    pub concurrency: usize,
    pub max_in_flight_per_webhook: u32,
    pub circuit_failures: u32,
    pub circuit_cooldown_seconds: u32,
    pub circuit_max_cooldown_seconds: u32,
    pub lease_seconds: u32,
    pub disable_after_days: u32,
    pub allow_networks: Vec<Cidr>,
    pub rotation_grace_seconds: u32,
}

/// One `[[proxy.routes]]` entry: requests under `prefix` go to `upstream` and are recorded as
/// route calls tagged `tag`.
#[derive(Clone, PartialEq)]
pub struct ProxyRoute {
    pub prefix: String,
    pub upstream: String,
    pub tag: String,
    /// Whether `prefix` is removed from the path sent upstream.
    pub strip_prefix: bool,
}

impl Config {
    /// Reads `path` (which must exist), or `hookd.toml` in the working directory if there is
    /// one, and the process environment, then builds the configuration.
    pub fn load(path: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Self> {
        let file = match path {
            Some(path) => Some(read_file(path)?),
            None if Path::new(DEFAULT_FILE).exists() => Some(read_file(Path::new(DEFAULT_FILE))?),
            None => None,
        };
        Self::from_sources(file.as_ref(), process_env(), overrides)
    }

    /// Builds the configuration from the defaults, `file`, the variables in `env` (all of
    /// them: `HOOKD_*` set keys, any may be named by `${NAME}`) and `overrides`.
    pub fn from_sources(
        file: Option<&ConfigFile>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &Overrides,
    ) -> anyhow::Result<Self> {
        let env: BTreeMap<String, String> = env.into_iter().collect();
        let mut sources = vec!["built-in defaults".to_owned()];
        let merged = merge_sources(file, &env, overrides, &mut sources);
        let raw = merged.and_then(layers::Layers::read);
        let checked = raw.and_then(|raw| validate::config(raw).map_err(|p| p.join("\n")));
        checked
            .map_err(|problems| anyhow!(problems))
            .with_context(|| format!("invalid configuration (from {})", sources.join(", ")))
    }

    /// The server's settings.
    pub fn to_settings(&self) -> Settings {
        let d = &self.delivery;
        Settings {
            listen: self.listen,
            public_url: self.public_url.clone(),
            admin_token: self.admin_token.clone(),
            default_headers: self.default_headers.clone(),
            delivery: DeliverySettings {
                timeout: Duration::from_millis(d.timeout_ms.into()),
                max_attempts: d.max_attempts,
                retry_schedule: d.retry_schedule.clone(),
                concurrency: d.concurrency,
                max_in_flight_per_webhook: d.max_in_flight_per_webhook,
                circuit: CircuitPolicy {
                    failures: d.circuit_failures,
                    cooldown: Duration::from_secs(d.circuit_cooldown_seconds.into()),
                    max_cooldown: Duration::from_secs(d.circuit_max_cooldown_seconds.into()),
                },
                lease: Duration::from_secs(d.lease_seconds.into()),
                disable_after: days(d.disable_after_days),
                allow_networks: d.allow_networks.clone(),
                rotation_grace: Duration::from_secs(d.rotation_grace_seconds.into()),
            },
            retention: days(self.retention_days),
            max_body_bytes: self.max_body_bytes,
            http: hookd_server::HttpSettings {
                header_timeout: Duration::from_secs(self.http.header_timeout_seconds.into()),
                body_timeout: Duration::from_secs(self.http.body_timeout_seconds.into()),
                max_connections: self.http.max_connections as usize,
            },
            inbound: hookd_server::InboundSettings {
                rate_limit_per_second: self.inbound.rate_limit_per_second,
                client_rate_limit_per_second: self.inbound.client_rate_limit_per_second,
                trusted_proxies: self.inbound.trusted_proxies.clone(),
                max_queued_executions: self.inbound.max_queued_executions,
                rejected_records_per_minute: self.inbound.rejected_records_per_minute,
            },
            proxy: ProxySettings {
                routes: self
                    .proxy_routes
                    .iter()
                    .map(ProxyRoute::to_settings)
                    .collect(),
                max_recorded_body_bytes: self.proxy_max_body_bytes,
            },
        }
    }
}

impl ProxyRoute {
    fn to_settings(&self) -> hookd_server::ProxyRoute {
        hookd_server::ProxyRoute {
            prefix: self.prefix.clone(),
            upstream: self.upstream.clone(),
            tag: self.tag.clone(),
            strip_prefix: self.strip_prefix,
        }
    }
}

fn days(n: u32) -> Duration {
    Duration::from_secs(u64::from(n) * 24 * 3600)
}

/// Merges the sources into layers, appending a name for each source used to `sources`.
fn merge_sources(
    file: Option<&ConfigFile>,
    env: &BTreeMap<String, String>,
    overrides: &Overrides,
    sources: &mut Vec<String>,
) -> Result<layers::Layers, String> {
    let mut merged = layers::Layers::default();
    if let Some(file) = file {
        sources.push(file.origin.clone());
        merged.apply(layers::file_layer(&file.origin, &file.text, env)?);
    }
    let (env_layer, vars) = layers::env_layer(env)?;
    sources.extend(vars);
    merged.apply(env_layer);
    let flags = [
        ("--database-url", &overrides.database_url),
        ("--listen", &overrides.listen),
        ("worker --listen", &overrides.worker_listen),
    ];
    sources.extend(
        flags
            .iter()
            .filter(|(_, v)| v.is_some())
            .map(|(flag, _)| flag.to_string()),
    );
    merged.apply(layers::flags_layer(overrides));
    Ok(merged)
}

fn read_file(path: &Path) -> anyhow::Result<ConfigFile> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read configuration file {}", path.display()))?;
    Ok(ConfigFile {
        origin: path.display().to_string(),
        text,
    })
}

/// The process environment, less the variables that are not valid UTF-8 (no key can use them).
fn process_env() -> impl Iterator<Item = (String, String)> {
    std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .default_headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str(),
                    hookd_core::outbound::masked_header_value(name, value),
                )
            })
            .collect();
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("public_url", &self.public_url)
            .field("database_url", &self.database_url)
            .field(
                "database_acquire_timeout_seconds",
                &self.database_acquire_timeout_seconds,
            )
            .field("database_pool_size", &self.database_pool_size)
            .field(
                "database_statement_timeout_seconds",
                &self.database_statement_timeout_seconds,
            )
            .field("admin_token", &self.admin_token.as_ref().map(|_| "****"))
            .field("secrets", &self.secrets)
            .field("default_headers", &headers)
            .field("retention_days", &self.retention_days)
            .field("log", &self.log)
            .field("log_format", &self.log_format)
            .field("worker_listen", &self.worker_listen)
            .field(
                "otlp_endpoint",
                &self.otlp_endpoint.as_deref().map(values::redact_url),
            )
            .field("delivery", &self.delivery)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("inbound", &self.inbound)
            .field("http", &self.http)
            .field("proxy_max_body_bytes", &self.proxy_max_body_bytes)
            .field("proxy_routes", &self.proxy_routes)
            .finish()
    }
}

impl fmt::Debug for ProxyRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyRoute")
            .field("prefix", &self.prefix)
            .field("upstream", &values::redact_url(&self.upstream))
            .field("tag", &self.tag)
            .field("strip_prefix", &self.strip_prefix)
            .finish()
    }
}
