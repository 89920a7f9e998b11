//! The configuration as written: serde structs mirroring `config.default.toml` key for key,
//! with the built-in defaults.
//!
//! Unknown keys are refused here (`deny_unknown_fields`); ranges and formats are checked later by
//! `validate`. Numbers are read as `i64` so that an out-of-range value gets the validator's message
//! ("must be between …, got -1") instead of a serde type error.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The whole file (top-level keys and the `[delivery]`, `[inbound]`, `[http]`, `[proxy]` tables).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawConfig {
    pub listen: String,
    /// `None` means `http://<listen>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    pub database_url: String,
    pub database_acquire_timeout_seconds: i64,
    pub database_pool_size: i64,
    pub database_statement_timeout_seconds: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secrets_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secrets_key_file: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secrets_old_keys: Vec<String>,
    pub retention_days: i64,
    pub log: String,
    pub log_format: String,
    /// `""` turns the worker's operations listener off.
    pub worker_listen: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otlp_endpoint: Option<String>,
    pub default_headers: BTreeMap<String, String>,
    pub delivery: RawDelivery,
    pub inbound: RawInbound,
    pub http: RawHttp,
    pub proxy: RawProxy,
}

/// `[http]`: the listener's limits against slow and idle clients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawHttp {
    pub header_timeout_seconds: i64,
    pub body_timeout_seconds: i64,
    pub max_connections: i64,
}

/// `[delivery]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawDelivery {
    pub timeout_ms: i64,
    pub max_attempts: i64,
    pub retry_schedule: Vec<i64>,
    pub concurrency: i64,
    pub max_in_flight_per_webhook: i64,
    pub circuit_failures: i64,
    pub circuit_cooldown_seconds: i64,
    pub circuit_max_cooldown_seconds: i64,
    pub lease_seconds: i64,
    pub disable_after_days: i64,
    pub allow_networks: Vec<String>,
    pub rotation_grace_seconds: i64,
}

/// `[inbound]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawInbound {
    pub max_body_bytes: i64,
    pub rate_limit_per_second: i64,
    pub client_rate_limit_per_second: i64,
    pub trusted_proxies: Vec<String>,
    pub max_queued_executions: i64,
    pub rejected_records_per_minute: i64,
}

/// `[proxy]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawProxy {
    /// Request and response bodies are recorded up to this many bytes.
    pub max_body_bytes: i64,
    /// Empty by default; left out when serializing so that the defaults file can show
    /// `[[proxy.routes]]` examples without also declaring `routes = []`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RawRoute>,
}

/// One `[[proxy.routes]]` entry; every field but `strip_prefix` is required.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub prefix: String,
    pub upstream: String,
    pub tag: String,
    #[serde(default)]
    pub strip_prefix: bool,
}

impl Default for RawConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            public_url: None,
            database_url: "sqlite://hookd.db".into(),
            database_acquire_timeout_seconds: hookd_store_postgres::DEFAULT_ACQUIRE_TIMEOUT
                .as_secs() as i64,
            database_pool_size: hookd_store_postgres::DEFAULT_POOL_SIZE.into(),
            database_statement_timeout_seconds: hookd_store_postgres::DEFAULT_STATEMENT_TIMEOUT
                .as_secs() as i64,
            admin_token: None,
            secrets_key: None,
            secrets_key_file: None,
            secrets_old_keys: Vec::new(),
            retention_days: 30,
            log: "info".into(),
            log_format: "text".into(),
            worker_listen: "127.0.0.1:8081".into(),
            otlp_endpoint: None,
            default_headers: BTreeMap::new(),
            delivery: RawDelivery::default(),
            inbound: RawInbound::default(),
            http: RawHttp::default(),
            proxy: RawProxy::default(),
        }
    }
}

impl Default for RawProxy {
    fn default() -> Self {
        Self {
            max_body_bytes: 65_536,
            routes: Vec::new(),
        }
    }
}

impl Default for RawDelivery {
    fn default() -> Self {
        Self {
            timeout_ms: 15_000,
            max_attempts: hookd_core::retry::DEFAULT_MAX_ATTEMPTS.into(),
            retry_schedule: hookd_core::retry::DEFAULT_SCHEDULE.map(i64::from).to_vec(),
            concurrency: 1024,
            max_in_flight_per_webhook: 64,
            circuit_failures: 5,
            circuit_cooldown_seconds: 10,
            circuit_max_cooldown_seconds: 600,
            lease_seconds: 120,
            disable_after_days: 5,
            allow_networks: Vec::new(),
            rotation_grace_seconds: 86_400,
        }
    }
}

impl Default for RawHttp {
    fn default() -> Self {
        Self {
            header_timeout_seconds: 30,
            body_timeout_seconds: 60,
            max_connections: 1024,
        }
    }
}

impl Default for RawInbound {
    fn default() -> Self {
        Self {
            max_body_bytes: 1_048_576,
            rate_limit_per_second: 100,
            client_rate_limit_per_second: 100,
            trusted_proxies: Vec::new(),
            max_queued_executions: 10_000,
            rejected_records_per_minute: 60,
        }
    }
}
