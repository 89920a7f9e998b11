//! The server's own settings, already parsed and validated by the binary's configuration loader.

use std::net::SocketAddr;
use std::time::Duration;

/// Settings of the API, the worker and the delivery client.
#[derive(Clone)]
pub struct Settings {
    /// Where the HTTP server listens.
    pub listen: SocketAddr,
    /// Base URL users reach hookd at (for printed links and inbound URLs), no trailing slash.
    pub public_url: String,
    /// An admin token from the configuration, accepted beside stored tokens.
    pub admin_token: Option<String>,
    /// Headers every webhook sends unless it overrides or removes them (`default_headers`).
    pub default_headers: Vec<(String, String)>,
    pub delivery: DeliverySettings,
    /// Deliveries, attempts and events older than this are pruned by the worker.
    pub retention: Duration,
    /// Largest request body the API accepts.
    pub max_body_bytes: usize,
    pub proxy: ProxySettings,
    pub http: HttpSettings,
    pub inbound: InboundSettings,
}

/// Bounds of the public `/hooks/{key}` intake (`[inbound]`), so that whoever learns a hook's URL
/// cannot fill the disk or the queue. Every limit is per process; `0` turns one off.
#[derive(Debug, Clone)]
pub struct InboundSettings {
    /// Requests per second one hook takes (bursts up to one second's worth); 429 past it.
    pub rate_limit_per_second: u32,
    /// Requests per second one client address makes to all hooks together; 429 past it.
    pub client_rate_limit_per_second: u32,
    /// Requests from these networks are from a reverse proxy: their client is the last address
    /// of `X-Forwarded-For` that is not itself one of them.
    pub trusted_proxies: Vec<hookd_core::net::Cidr>,
    /// Queued (and running) async executions a hook may have; 429 past it.
    pub max_queued_executions: u32,
    /// Rejected calls (failed verification) recorded per hook and minute; the rest are answered
    /// alike and only counted in `/metrics`.
    pub rejected_records_per_minute: u32,
}

impl Default for InboundSettings {
    fn default() -> Self {
        Self {
            rate_limit_per_second: 100,
            client_rate_limit_per_second: 100,
            trusted_proxies: Vec::new(),
            max_queued_executions: 10_000,
            rejected_records_per_minute: 60,
        }
    }
}

/// The HTTP listener's limits (`[http]`), so slow or idle clients cannot hold connections.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// A request's line and headers must arrive within this, from the connection opening (or
    /// the end of its previous request): slow or idle connections are closed past it.
    pub header_timeout: Duration,
    /// A request's body must arrive within this, from its headers; past it the request fails
    /// with 408.
    pub body_timeout: Duration,
    /// Connections served at once; more wait in the listen queue until one closes.
    pub max_connections: usize,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(60),
            max_connections: 1024,
        }
    }
}

/// The reverse proxy (`[proxy]`): which requests are forwarded where, and how much is recorded.
#[derive(Debug, Clone)]
pub struct ProxySettings {
    /// Forwarding rules; a request goes to the route with the longest matching prefix.
    pub routes: Vec<ProxyRoute>,
    /// Request and response bodies are recorded up to this many bytes (the rest is passed
    /// through but cut from the record, which is marked `body_truncated`).
    pub max_recorded_body_bytes: usize,
}

impl Default for ProxySettings {
    fn default() -> Self {
        Self {
            routes: Vec::new(),
            max_recorded_body_bytes: 64 * 1024,
        }
    }
}

/// One `[[proxy.routes]]` entry, validated by the configuration loader.
#[derive(Clone)]
pub struct ProxyRoute {
    /// Paths starting with this string (always starting with `/`) are forwarded.
    pub prefix: String,
    /// An http(s) URL; the request path (less `prefix` with `strip_prefix`) is appended to it.
    pub upstream: String,
    /// The `tag` of the route calls recorded for this route.
    pub tag: String,
    /// Whether `prefix` is removed from the path sent upstream.
    pub strip_prefix: bool,
}

impl std::fmt::Debug for ProxyRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The upstream URL may carry credentials; only its scheme and host are shown.
        let upstream = reqwest::Url::parse(&self.upstream)
            .map(|u| format!("{}://{}", u.scheme(), u.host_str().unwrap_or("")))
            .unwrap_or_else(|_| "****".into());
        f.debug_struct("ProxyRoute")
            .field("prefix", &self.prefix)
            .field("upstream", &upstream)
            .field("tag", &self.tag)
            .field("strip_prefix", &self.strip_prefix)
            .finish()
    }
}

/// How deliveries are made (`[delivery]`).
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// Per-request timeout unless a webhook sets `timeout_ms`.
    pub timeout: Duration,
    /// Attempts in all unless a webhook sets `max_attempts`.
    pub max_attempts: u32,
    /// Seconds after each failed attempt unless a webhook sets `retry_schedule`.
    pub retry_schedule: Vec<u32>,
    /// Requests in flight per worker process, both lanes together; retries may hold at most half
    /// of it, so first attempts always have the other half.
    pub concurrency: usize,
    /// In-flight cap of webhooks that set no `max_in_flight`, over all worker processes.
    pub max_in_flight_per_webhook: u32,
    /// When a webhook's circuit opens and for how long.
    pub circuit: hookd_core::flow::CircuitPolicy,
    /// How long a claimed delivery stays leased; a worker that dies frees it after this.
    pub lease: Duration,
    /// A webhook failing for this long with no success is disabled.
    pub disable_after: Duration,
    /// Networks deliveries may reach although they are not public (the SSRF guard's exceptions).
    pub allow_networks: Vec<hookd_core::net::Cidr>,
    /// Grace period during which a rotated-out secret keeps signing.
    pub rotation_grace: Duration,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(15),
            max_attempts: hookd_core::retry::DEFAULT_MAX_ATTEMPTS,
            retry_schedule: hookd_core::retry::DEFAULT_SCHEDULE.to_vec(),
            concurrency: 1024,
            max_in_flight_per_webhook: 64,
            circuit: hookd_core::flow::CircuitPolicy::default(),
            lease: Duration::from_secs(120),
            disable_after: Duration::from_secs(5 * 24 * 3600),
            allow_networks: Vec::new(),
            rotation_grace: Duration::from_secs(24 * 3600),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: "http://127.0.0.1:8080".into(),
            admin_token: None,
            default_headers: Vec::new(),
            delivery: DeliverySettings::default(),
            retention: Duration::from_secs(30 * 24 * 3600),
            max_body_bytes: 1024 * 1024,
            proxy: ProxySettings::default(),
            http: HttpSettings::default(),
            inbound: InboundSettings::default(),
        }
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("listen", &self.listen)
            .field("public_url", &self.public_url)
            .field("admin_token", &self.admin_token.as_ref().map(|_| "****"))
            .field("default_headers", &masked_headers(&self.default_headers))
            .field("delivery", &self.delivery)
            .field("retention", &self.retention)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("proxy", &self.proxy)
            .field("http", &self.http)
            .field("inbound", &self.inbound)
            .finish()
    }
}

fn masked_headers(headers: &[(String, String)]) -> Vec<(&str, &str)> {
    headers
        .iter()
        .map(|(k, v)| (k.as_str(), hookd_core::outbound::masked_header_value(k, v)))
        .collect()
}
