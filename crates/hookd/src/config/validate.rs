//! Turns a [`RawConfig`] into a [`Config`]: ranges, formats and relations between keys, every
//! problem reported as `key.path: what is wrong, got what`.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::net::SocketAddr;
use std::ops::RangeInclusive;

use super::raw::{RawConfig, RawDelivery, RawInbound, RawRoute};
use hookd_store_sql::secrets::MasterKey;

use super::values::{self, Backend, Cidr, DatabaseUrl};
use super::{
    Config, DeliveryConfig, HttpConfig, InboundConfig, LogFormat, ProxyRoute, SecretsConfig,
};

/// Allowed ranges, as documented in `config.default.toml`.
const RETENTION_DAYS: RangeInclusive<i64> = 1..=36_500;
const MAX_BODY_BYTES: RangeInclusive<i64> = 1..=104_857_600;
const HTTP_TIMEOUT_SECONDS: RangeInclusive<i64> = 1..=3_600;
const ACQUIRE_TIMEOUT_SECONDS: RangeInclusive<i64> = 1..=300;
const POOL_SIZE: RangeInclusive<i64> = 1..=1000;
/// 0 turns the timeout off.
const STATEMENT_TIMEOUT_SECONDS: RangeInclusive<i64> = 0..=86_400;
const MAX_CONNECTIONS: RangeInclusive<i64> = 1..=1_000_000;
const INBOUND_RATE: RangeInclusive<i64> = 0..=1_000_000;
const MAX_QUEUED_EXECUTIONS: RangeInclusive<i64> = 0..=100_000_000;
const PROXY_MAX_BODY_BYTES: RangeInclusive<i64> = 0..=104_857_600;
/// Paths hookd serves itself: a proxy prefix may not fall inside them.
const RESERVED_PATHS: [&str; 6] = ["/api/v1", "/health", "/ready", "/metrics", "/ui", "/hooks"];
const TIMEOUT_MS: RangeInclusive<i64> = 1..=120_000;
const MAX_ATTEMPTS: RangeInclusive<i64> = 1..=50;
const RETRY_DELAY_SECONDS: RangeInclusive<i64> = 0..=604_800;
const MAX_RETRY_ENTRIES: usize = 50;
const CONCURRENCY: RangeInclusive<i64> = 1..=10_000;
const MAX_IN_FLIGHT_PER_WEBHOOK: RangeInclusive<i64> = 1..=10_000;
const CIRCUIT_FAILURES: RangeInclusive<i64> = 0..=1_000;
const CIRCUIT_COOLDOWN_SECONDS: RangeInclusive<i64> = 1..=86_400;
const LEASE_SECONDS: RangeInclusive<i64> = 1..=86_400;
const DISABLE_AFTER_DAYS: RangeInclusive<i64> = 1..=36_500;
const ROTATION_GRACE_SECONDS: RangeInclusive<i64> = 0..=31_536_000;
/// A lease must outlast a request by this much, so a slow answer is recorded before another
/// worker may claim the delivery again.
const LEASE_MARGIN_MS: i64 = 5_000;
const MIN_ADMIN_TOKEN_LEN: usize = 16;

/// Collects the problems found so far; each check returns a placeholder value after a problem so
/// that all of them are reported at once.
#[derive(Debug, Default)]
struct Checker {
    problems: Vec<String>,
}

impl Checker {
    fn problem(&mut self, key: impl Display, problem: impl Display) {
        self.problems.push(format!("{key}: {problem}"));
    }

    fn int<T: TryFrom<i64> + Default>(
        &mut self,
        key: impl Display,
        value: i64,
        range: RangeInclusive<i64>,
    ) -> T {
        match T::try_from(value) {
            Ok(v) if range.contains(&value) => v,
            _ => {
                let (lo, hi) = range.into_inner();
                self.problem(key, format!("must be between {lo} and {hi}, got {value}"));
                T::default()
            }
        }
    }

    fn ok<T: Default>(&mut self, key: impl Display, result: Result<T, String>) -> T {
        result.unwrap_or_else(|problem| {
            self.problem(key, problem);
            T::default()
        })
    }
}

/// Validates `raw`; the error lists every problem, one per entry.
pub fn config(raw: RawConfig) -> Result<Config, Vec<String>> {
    let mut c = Checker::default();
    let listen = c.ok("listen", parse_listen(&raw.listen).map(Some));
    let public_url = match (&raw.public_url, listen) {
        (Some(url), _) => c.ok("public_url", public_url(url)),
        (None, Some(listen)) => format!("http://{listen}"),
        (None, None) => String::new(),
    };
    let database_url = c.ok(
        "database_url",
        DatabaseUrl::parse(&raw.database_url)
            .and_then(on_disk)
            .map(Some),
    );
    let database_acquire_timeout_seconds = c.int(
        "database_acquire_timeout_seconds",
        raw.database_acquire_timeout_seconds,
        ACQUIRE_TIMEOUT_SECONDS,
    );
    let database_pool_size = c.int("database_pool_size", raw.database_pool_size, POOL_SIZE);
    let database_statement_timeout_seconds = c.int(
        "database_statement_timeout_seconds",
        raw.database_statement_timeout_seconds,
        STATEMENT_TIMEOUT_SECONDS,
    );
    let secrets = secrets(&mut c, &raw, database_url.as_ref());
    let admin_token = raw
        .admin_token
        .map(|t| c.ok("admin_token", admin_token(&t).map(|()| t)));
    let default_headers = default_headers(&mut c, raw.default_headers);
    let retention_days = c.int("retention_days", raw.retention_days, RETENTION_DAYS);
    let log = c.ok("log", log_filter(&raw.log).map(|()| raw.log));
    let log_format = c.ok("log_format", log_format(&raw.log_format));
    let worker_listen = match raw.worker_listen.as_str() {
        "" => None,
        text => c.ok("worker_listen", parse_listen(text).map(Some)),
    };
    let otlp_endpoint = raw
        .otlp_endpoint
        .as_deref()
        .map(|url| c.ok("otlp_endpoint", values::http_url(url)));
    let delivery = delivery(&mut c, &raw.delivery);
    let max_body_bytes = c.int(
        "inbound.max_body_bytes",
        raw.inbound.max_body_bytes,
        MAX_BODY_BYTES,
    );
    let inbound = inbound(&mut c, &raw.inbound);
    let proxy_max_body_bytes = c.int(
        "proxy.max_body_bytes",
        raw.proxy.max_body_bytes,
        PROXY_MAX_BODY_BYTES,
    );
    let http = HttpConfig {
        header_timeout_seconds: c.int(
            "http.header_timeout_seconds",
            raw.http.header_timeout_seconds,
            HTTP_TIMEOUT_SECONDS,
        ),
        body_timeout_seconds: c.int(
            "http.body_timeout_seconds",
            raw.http.body_timeout_seconds,
            HTTP_TIMEOUT_SECONDS,
        ),
        max_connections: c.int(
            "http.max_connections",
            raw.http.max_connections,
            MAX_CONNECTIONS,
        ),
    };
    let proxy_routes = proxy_routes(&mut c, raw.proxy.routes);
    match (listen, database_url) {
        (Some(listen), Some(database_url)) if c.problems.is_empty() => Ok(Config {
            listen,
            public_url,
            database_url,
            database_acquire_timeout_seconds,
            database_pool_size,
            database_statement_timeout_seconds,
            admin_token,
            secrets,
            default_headers,
            retention_days,
            log,
            log_format,
            worker_listen,
            otlp_endpoint,
            delivery,
            max_body_bytes,
            inbound,
            http,
            proxy_max_body_bytes,
            proxy_routes,
        }),
        _ => Err(c.problems),
    }
}

fn inbound(c: &mut Checker, raw: &RawInbound) -> InboundConfig {
    let trusted_proxies = raw
        .trusted_proxies
        .iter()
        .enumerate()
        .filter_map(|(i, text)| {
            c.ok(
                format!("inbound.trusted_proxies[{i}]"),
                Cidr::parse(text).map(Some),
            )
        })
        .collect();
    InboundConfig {
        rate_limit_per_second: c.int(
            "inbound.rate_limit_per_second",
            raw.rate_limit_per_second,
            INBOUND_RATE,
        ),
        client_rate_limit_per_second: c.int(
            "inbound.client_rate_limit_per_second",
            raw.client_rate_limit_per_second,
            INBOUND_RATE,
        ),
        trusted_proxies,
        max_queued_executions: c.int(
            "inbound.max_queued_executions",
            raw.max_queued_executions,
            MAX_QUEUED_EXECUTIONS,
        ),
        rejected_records_per_minute: c.int(
            "inbound.rejected_records_per_minute",
            raw.rejected_records_per_minute,
            INBOUND_RATE,
        ),
    }
}

fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    text.parse()
        .map_err(|_| format!("must be an IP address and port like 127.0.0.1:8080, got `{text}`"))
}

fn public_url(text: &str) -> Result<String, String> {
    let url = values::http_url(text)?;
    if url.contains(['?', '#']) {
        return Err(format!("must not have a query or fragment, got `{text}`"));
    }
    Ok(url)
}

/// A SQLite URL must name a file: an in-memory database would be a different, empty one for
/// each of hookd's connections (its tables missing on all but the one that migrated).
fn on_disk(url: DatabaseUrl) -> Result<DatabaseUrl, String> {
    if url.backend() == Backend::Sqlite && url.sqlite_file().is_none() {
        return Err(
            "names no SQLite file (an in-memory database is not supported: each connection \
             would see its own); write sqlite://hookd.db or sqlite:///var/lib/hookd/hookd.db"
                .into(),
        );
    }
    Ok(url)
}

/// `secrets_key`, `secrets_key_file` and `secrets_old_keys`. Keys are checked here; a key file
/// is read when the store opens. PostgreSQL needs a key: its processes must share one, and
/// there is no file beside the database to keep it in.
fn secrets(c: &mut Checker, raw: &RawConfig, url: Option<&DatabaseUrl>) -> SecretsConfig {
    let key = raw.secrets_key.as_ref().map(|k| {
        let parsed = MasterKey::parse(k).map(|_| k.trim().to_owned());
        c.ok("secrets_key", parsed)
    });
    let key_file = raw.secrets_key_file.as_ref().map(std::path::PathBuf::from);
    if key.is_some() && key_file.is_some() {
        c.problem(
            "secrets_key_file",
            "set secrets_key or secrets_key_file, not both",
        );
    }
    let on_postgres = url.is_some_and(|u| u.backend() == Backend::Postgres);
    if on_postgres && key.is_none() && key_file.is_none() {
        c.problem(
            "secrets_key",
            "required with a PostgreSQL database_url (or secrets_key_file): every process must \
             seal secrets with the same key; make one with `hookd secrets generate-key`",
        );
    }
    let old_keys = raw
        .secrets_old_keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let parsed = MasterKey::parse(k).map(|_| k.trim().to_owned());
            c.ok(format!("secrets_old_keys[{i}]"), parsed)
        })
        .collect();
    SecretsConfig {
        key,
        key_file,
        old_keys,
    }
}

fn admin_token(token: &str) -> Result<(), String> {
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must be printable ASCII without spaces".into());
    }
    if token.len() < MIN_ADMIN_TOKEN_LEN {
        let n = token.len();
        return Err(format!(
            "must be at least {MIN_ADMIN_TOKEN_LEN} characters long, got {n}"
        ));
    }
    Ok(())
}

fn log_format(text: &str) -> Result<LogFormat, String> {
    match text {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(format!("must be \"text\" or \"json\", got `{text}`")),
    }
}

fn log_filter(filter: &str) -> Result<(), String> {
    tracing_subscriber::EnvFilter::try_new(filter)
        .map(drop)
        .map_err(|e| format!("not a valid tracing filter: {e}"))
}

fn default_headers(c: &mut Checker, headers: BTreeMap<String, String>) -> Vec<(String, String)> {
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut out = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let key = format!("default_headers.{name}");
        c.ok(&key, values::header_name(&name));
        c.ok(&key, values::header_value(&value));
        if let Some(first) = seen.insert(name.to_ascii_lowercase(), name.clone()) {
            c.problem(
                &key,
                format!("same header as default_headers.{first} (names ignore case)"),
            );
        }
        out.push((name, value));
    }
    out
}

fn delivery(c: &mut Checker, raw: &RawDelivery) -> DeliveryConfig {
    let both_in_range =
        TIMEOUT_MS.contains(&raw.timeout_ms) && LEASE_SECONDS.contains(&raw.lease_seconds);
    if both_in_range && raw.lease_seconds * 1000 <= raw.timeout_ms + LEASE_MARGIN_MS {
        let floor = (raw.timeout_ms + LEASE_MARGIN_MS) as f64 / 1000.0;
        let problem = format!(
            "must exceed delivery.timeout_ms in seconds plus 5 ({floor}), got {}",
            raw.lease_seconds
        );
        c.problem("delivery.lease_seconds", problem);
    }
    let cooldowns_in_range = CIRCUIT_COOLDOWN_SECONDS.contains(&raw.circuit_cooldown_seconds)
        && CIRCUIT_COOLDOWN_SECONDS.contains(&raw.circuit_max_cooldown_seconds);
    if cooldowns_in_range && raw.circuit_max_cooldown_seconds < raw.circuit_cooldown_seconds {
        let problem = format!(
            "must be at least delivery.circuit_cooldown_seconds ({}), got {}",
            raw.circuit_cooldown_seconds, raw.circuit_max_cooldown_seconds
        );
        c.problem("delivery.circuit_max_cooldown_seconds", problem);
    }
    let allow_networks = raw
        .allow_networks
        .iter()
        .enumerate()
        .filter_map(|(i, text)| {
            c.ok(
                format!("delivery.allow_networks[{i}]"),
                Cidr::parse(text).map(Some),
            )
        });
    DeliveryConfig {
        allow_networks: allow_networks.collect(),
        timeout_ms: c.int("delivery.timeout_ms", raw.timeout_ms, TIMEOUT_MS),
        max_attempts: c.int("delivery.max_attempts", raw.max_attempts, MAX_ATTEMPTS),
        retry_schedule: retry_schedule(c, &raw.retry_schedule),
        concurrency: c.int("delivery.concurrency", raw.concurrency, CONCURRENCY),
        max_in_flight_per_webhook: c.int(
            "delivery.max_in_flight_per_webhook",
            raw.max_in_flight_per_webhook,
            MAX_IN_FLIGHT_PER_WEBHOOK,
        ),
        circuit_failures: c.int(
            "delivery.circuit_failures",
            raw.circuit_failures,
            CIRCUIT_FAILURES,
        ),
        circuit_cooldown_seconds: c.int(
            "delivery.circuit_cooldown_seconds",
            raw.circuit_cooldown_seconds,
            CIRCUIT_COOLDOWN_SECONDS,
        ),
        circuit_max_cooldown_seconds: c.int(
            "delivery.circuit_max_cooldown_seconds",
            raw.circuit_max_cooldown_seconds,
            CIRCUIT_COOLDOWN_SECONDS,
        ),
        lease_seconds: c.int("delivery.lease_seconds", raw.lease_seconds, LEASE_SECONDS),
        disable_after_days: c.int(
            "delivery.disable_after_days",
            raw.disable_after_days,
            DISABLE_AFTER_DAYS,
        ),
        rotation_grace_seconds: c.int(
            "delivery.rotation_grace_seconds",
            raw.rotation_grace_seconds,
            ROTATION_GRACE_SECONDS,
        ),
    }
}

fn retry_schedule(c: &mut Checker, schedule: &[i64]) -> Vec<u32> {
    match schedule.len() {
        0 => c.problem("delivery.retry_schedule", "must not be empty"),
        n if n > MAX_RETRY_ENTRIES => c.problem(
            "delivery.retry_schedule",
            format!("must have at most {MAX_RETRY_ENTRIES} entries, got {n}"),
        ),
        _ => {}
    }
    let key = |i| format!("delivery.retry_schedule[{i}]");
    schedule
        .iter()
        .enumerate()
        .map(|(i, s)| c.int(key(i), *s, RETRY_DELAY_SECONDS))
        .collect()
}

/// The reserved path `prefix` falls inside (`/health`, `/api/v1/x`), if any. A shorter prefix
/// such as `/` or `/api` is allowed: hookd's own routes win over the proxy.
fn reserved_path(prefix: &str) -> Option<&'static str> {
    RESERVED_PATHS.into_iter().find(|r| {
        prefix
            .strip_prefix(r)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

fn proxy_routes(c: &mut Checker, routes: Vec<RawRoute>) -> Vec<ProxyRoute> {
    let mut prefixes: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = Vec::with_capacity(routes.len());
    for (i, route) in routes.into_iter().enumerate() {
        let key = format!("proxy.routes[{i}]");
        if !route.prefix.starts_with('/') {
            c.problem(
                format!("{key}.prefix"),
                format!("must start with `/`, got `{}`", route.prefix),
            );
        } else if let Some(reserved) = reserved_path(&route.prefix) {
            c.problem(
                format!("{key}.prefix"),
                format!("must not be inside `{reserved}`, which hookd serves itself"),
            );
        } else if let Some(first) = prefixes.insert(route.prefix.clone(), i) {
            c.problem(
                format!("{key}.prefix"),
                format!("same prefix as proxy.routes[{first}]"),
            );
        }
        if route.tag.trim().is_empty() {
            c.problem(format!("{key}.tag"), "must not be empty");
        }
        let upstream = c.ok(format!("{key}.upstream"), values::http_url(&route.upstream));
        out.push(ProxyRoute {
            prefix: route.prefix,
            upstream,
            tag: route.tag,
            strip_prefix: route.strip_prefix,
        });
    }
    out
}
