//! The loader, through [`Config::from_sources`]: every source, their order, and the messages of
//! refused configurations. No test reads the real environment or the working directory.

use std::time::Duration;

use super::raw::RawConfig;
use super::*;

/// The documented defaults, as shipped at the repository root.
const DEFAULT_TOML: &str = include_str!("../../../../config.default.toml");

fn file(text: &str) -> ConfigFile {
    ConfigFile {
        origin: "hookd.toml".into(),
        text: text.into(),
    }
}

/// A master key for `secrets_key` (32 bytes, base64).
const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// Environment variables as name/value pairs.
type Env<'a> = &'a [(&'a str, &'a str)];

fn vars(pairs: Env<'_>) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn load(text: &str, env: Env<'_>) -> anyhow::Result<Config> {
    Config::from_sources(Some(&file(text)), vars(env), &Overrides::default())
}

/// The whole error chain on one line, as `main` would print it.
fn error(text: &str, env: Env<'_>) -> String {
    format!(
        "{:#}",
        load(text, env).expect_err("configuration should be refused")
    )
}

#[test]
fn no_source_gives_the_defaults_of_the_spec() {
    let config = Config::from_sources(None, vars(&[]), &Overrides::default()).unwrap();
    assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(config.public_url, "http://127.0.0.1:8080");
    assert_eq!(config.database_url.expose(), "sqlite://hookd.db");
    assert_eq!(config.database_url.backend(), Backend::Sqlite);
    assert_eq!(config.admin_token, None);
    assert_eq!(config.retention_days, 30);
    assert_eq!(config.log, "info");
    assert_eq!(config.log_format, crate::config::LogFormat::Text);
    assert_eq!(
        config.worker_listen.map(|a| a.to_string()).as_deref(),
        Some("127.0.0.1:8081")
    );
    assert_eq!(config.otlp_endpoint, None);
    assert_eq!(
        config.delivery.retry_schedule,
        [5, 300, 1800, 7200, 18000, 36000, 36000]
    );
    assert_eq!(config.max_body_bytes, 1_048_576);
    assert!(config.proxy_routes.is_empty());
    let settings = format!("{:?}", config.to_settings());
    assert_eq!(settings, format!("{:?}", Settings::default()));
}

#[test]
fn config_default_toml_matches_the_built_in_defaults() {
    let documented: toml::Table = toml::from_str(DEFAULT_TOML).unwrap();
    let built_in = toml::Table::try_from(RawConfig::default()).unwrap();
    assert_eq!(
        documented, built_in,
        "config.default.toml and RawConfig::default() drifted"
    );
    for optional in [
        "# public_url = ",
        "# admin_token = ",
        "# secrets_key = ",
        "# secrets_key_file = ",
        "# secrets_old_keys = ",
        "# [[proxy.routes]]",
    ] {
        assert!(
            DEFAULT_TOML.contains(optional),
            "config.default.toml does not document {optional}"
        );
    }
    let from_file = load(DEFAULT_TOML, &[]).unwrap();
    let built_in = Config::from_sources(None, vars(&[]), &Overrides::default()).unwrap();
    assert_eq!(from_file, built_in);
}

#[test]
fn the_file_overrides_defaults() {
    let config = load(
        r#"
        listen = "0.0.0.0:9000"
        public_url = "https://hooks.example.com/"
        database_url = "postgres://hookd@db/hookd"
        secrets_key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
        admin_token = "0123456789abcdef"
        retention_days = 7
        log = "hookd=debug,warn"
        [default_headers]
        X-Tenant = "acme"
        [delivery]
        timeout_ms = 5000
        retry_schedule = [1, 2]
        allow_networks = ["10.0.0.0/8", "::1/128"]
        [inbound]
        max_body_bytes = 2048
        rate_limit_per_second = 0
        trusted_proxies = ["10.0.0.0/8"]
        max_queued_executions = 50
        [http]
        header_timeout_seconds = 5
        [[proxy.routes]]
        prefix = "/api/"
        upstream = "http://127.0.0.1:3000"
        tag = "api"
        "#,
        &[],
    )
    .unwrap();
    assert_eq!(config.listen.to_string(), "0.0.0.0:9000");
    assert_eq!(config.public_url, "https://hooks.example.com");
    assert_eq!(config.database_url.backend(), Backend::Postgres);
    assert_eq!(config.admin_token.as_deref(), Some("0123456789abcdef"));
    assert_eq!(
        config.default_headers,
        [("X-Tenant".to_string(), "acme".to_string())]
    );
    assert_eq!(config.delivery.timeout_ms, 5000);
    assert_eq!(
        config.delivery.max_attempts, 8,
        "keys left out keep their default"
    );
    assert_eq!(config.delivery.retry_schedule, [1, 2]);
    assert_eq!(config.max_body_bytes, 2048);
    assert_eq!(config.proxy_routes.len(), 1);
    assert!(!config.proxy_routes[0].strip_prefix);
    let settings = config.to_settings();
    assert_eq!(settings.proxy.routes[0].upstream, "http://127.0.0.1:3000");
    assert_eq!(settings.proxy.max_recorded_body_bytes, 65_536);
    assert_eq!(settings.retention, Duration::from_secs(7 * 86_400));
    assert_eq!(settings.delivery.timeout, Duration::from_millis(5000));
    let nets: Vec<String> = settings
        .delivery
        .allow_networks
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(nets, ["10.0.0.0/8", "::1/128"]);
    assert_eq!(settings.max_body_bytes, 2048);
    assert_eq!(settings.http.header_timeout, Duration::from_secs(5));
    assert_eq!(settings.http.body_timeout, Duration::from_secs(60));
    assert_eq!(settings.http.max_connections, 1024);
    assert_eq!(settings.inbound.rate_limit_per_second, 0);
    assert_eq!(settings.inbound.client_rate_limit_per_second, 100);
    assert_eq!(
        settings.inbound.trusted_proxies[0].to_string(),
        "10.0.0.0/8"
    );
    assert_eq!(settings.inbound.max_queued_executions, 50);
    assert_eq!(settings.inbound.rejected_records_per_minute, 60);
}

#[test]
fn environment_sets_nested_keys_with_double_underscores_over_the_file() {
    let config = load(
        "[delivery]\ntimeout_ms = 5000\nmax_attempts = 3",
        &[
            ("HOOKD_DELIVERY__TIMEOUT_MS", "7000"),
            ("HOOKD_DELIVERY__RETRY_SCHEDULE", "[1,2,3]"),
            ("HOOKD_DATABASE_URL", "postgresql://u@h/db"),
            ("HOOKD_SECRETS_KEY_FILE", "/run/secrets/hookd.key"),
            ("HOOKD_DEFAULT_HEADERS", "{ X-Tenant = \"acme\" }"),
            ("HOOKD_LISTEN", "127.0.0.1:9999"),
        ],
    )
    .unwrap();
    assert_eq!(config.delivery.timeout_ms, 7000);
    assert_eq!(
        config.delivery.max_attempts, 3,
        "the file's other keys stay"
    );
    assert_eq!(config.delivery.retry_schedule, [1, 2, 3]);
    assert_eq!(config.database_url.expose(), "postgresql://u@h/db");
    assert_eq!(
        config.default_headers,
        [("X-Tenant".to_string(), "acme".to_string())]
    );
    assert_eq!(config.public_url, "http://127.0.0.1:9999");
}

#[test]
fn environment_text_is_kept_when_the_key_wants_text() {
    let config = load(
        "",
        &[
            ("HOOKD_ADMIN_TOKEN", "1234567890123456"),
            ("HOOKD_DEFAULT_HEADERS__X_COUNT", "true"),
        ],
    )
    .unwrap();
    assert_eq!(config.admin_token.as_deref(), Some("1234567890123456"));
    assert_eq!(
        config.default_headers,
        [("x_count".to_string(), "true".to_string())]
    );
}

#[test]
fn client_variables_and_other_variables_are_not_keys() {
    let env = [
        ("HOOKD_SERVER", "http://x"),
        ("HOOKD_TOKEN", "t"),
        ("HOOKD_TEST_DATABASE_URL", "postgres://x"),
        ("HOOKD_TEST_BROWSER", "required"),
        ("HOOKD_TEST_CHROMEDRIVER", "/usr/bin/chromedriver"),
        ("HOOKD_TEST_POSTGRES", "required"),
        ("HOOKD_LOG", "debug"),
        ("PATH", "/usr/bin"),
    ];
    assert_eq!(load("", &env).unwrap().log, "info");
}

#[test]
fn flags_win_over_environment_and_file() {
    let overrides = Overrides {
        database_url: Some("sqlite://flag.db".into()),
        listen: Some("127.0.0.1:7000".into()),
        worker_listen: None,
    };
    let env = vars(&[
        ("HOOKD_DATABASE_URL", "sqlite://env.db"),
        ("HOOKD_LISTEN", "127.0.0.1:1"),
    ]);
    let text = file("database_url = \"sqlite://file.db\"\nlisten = \"127.0.0.1:2\"");
    let config = Config::from_sources(Some(&text), env, &overrides).unwrap();
    assert_eq!(config.database_url.expose(), "sqlite://flag.db");
    assert_eq!(config.listen.to_string(), "127.0.0.1:7000");
}

#[test]
fn file_strings_take_environment_variables() {
    let config = load(
        r#"
        database_url = "postgres://hookd:${DB_PASSWORD}@${DB_HOST}/hookd"
        secrets_key = "${MASTER_KEY}"
        [default_headers]
        Authorization = "Bearer ${PARTNER_TOKEN}"
        [delivery]
        timeout_ms = "${TIMEOUT}"
        allow_networks = ["${NET}"]
        "#,
        &[
            ("DB_PASSWORD", "s3cret"),
            ("DB_HOST", "db"),
            ("MASTER_KEY", KEY),
            ("PARTNER_TOKEN", "abc"),
            ("TIMEOUT", "2500"),
            ("NET", "10.0.0.0/8"),
        ],
    )
    .unwrap();
    assert_eq!(
        config.database_url.expose(),
        "postgres://hookd:s3cret@db/hookd"
    );
    assert_eq!(config.default_headers[0].1, "Bearer abc");
    assert_eq!(config.delivery.timeout_ms, 2500);
    assert_eq!(config.delivery.allow_networks[0].to_string(), "10.0.0.0/8");
}

#[test]
fn a_missing_variable_names_the_variable_and_the_key() {
    let message = error("database_url = \"${DB_URL}\"", &[]);
    assert!(
        message.contains("database_url: environment variable DB_URL is not set"),
        "{message}"
    );
    let message = error(
        "[[proxy.routes]]\nprefix = \"/\"\nupstream = \"${UP}\"\ntag = \"t\"",
        &[],
    );
    assert!(
        message.contains("proxy.routes[0].upstream: environment variable UP"),
        "{message}"
    );
    let message = error("log = \"${unterminated\"", &[]);
    assert!(message.contains("log: unterminated"), "{message}");
}

#[test]
fn unknown_keys_are_refused_with_their_path() {
    let cases: &[(&str, Env<'_>, &str)] = &[
        (
            "lisen = \"127.0.0.1:1\"",
            &[],
            "lisen: unknown field `lisen`",
        ),
        (
            "[delivery]\ntimeout = 5",
            &[],
            "delivery.timeout: unknown field `timeout`, expected one of `timeout_ms`",
        ),
        (
            "[[proxy.routes]]\nprefix = '/'\nupstream = 'http://u'\ntag = 't'\nstrip = true",
            &[],
            "proxy.routes[0].strip: unknown field `strip`",
        ),
        (
            "",
            &[("HOOKD_DELIVERY__TIMEOUTMS", "5")],
            "delivery.timeoutms: unknown field",
        ),
        (
            "",
            &[("HOOKD_DELIVERY__", "5")],
            "HOOKD_DELIVERY__: not a configuration key",
        ),
    ];
    for (text, env, want) in cases {
        let message = error(text, env);
        assert!(message.contains(want), "{text:?} {env:?}: {message}");
    }
    let message = error("", &[("HOOKD_FOO", "1")]);
    assert!(
        message.contains("HOOKD_FOO") && message.contains("foo: unknown field `foo`"),
        "{message}"
    );
}

#[test]
fn invalid_values_are_refused_with_their_path() {
    let cases = [
        (
            r#"listen = "localhost""#,
            "listen: must be an IP address and port",
        ),
        (
            r#"public_url = "ftp://x""#,
            "public_url: must be an http:// or https:// URL",
        ),
        (
            r#"database_url = "mysql://x""#,
            "database_url: unsupported scheme `mysql`",
        ),
        (
            r#"admin_token = "short""#,
            "admin_token: must be at least 16 characters long, got 5",
        ),
        (
            "retention_days = 0",
            "retention_days: must be between 1 and 36500, got 0",
        ),
        (r#"log = "a=b=c""#, "log: not a valid tracing filter"),
        (
            r#"log_format = "xml""#,
            r#"log_format: must be "text" or "json", got `xml`"#,
        ),
        (
            r#"worker_listen = "8081""#,
            "worker_listen: must be an IP address and port",
        ),
        (
            r#"otlp_endpoint = "grpc://collector:4317""#,
            "otlp_endpoint: must be an http:// or https:// URL",
        ),
        (
            "[default_headers]\n'X Bad' = 'v'",
            "default_headers.X Bad: not a valid HTTP header name",
        ),
        (
            "[default_headers]\nX-A = \"a\\nb\"",
            "default_headers.X-A: header value must be",
        ),
        (
            "[delivery]\ntimeout_ms = 0",
            "delivery.timeout_ms: must be between 1 and 120000, got 0",
        ),
        (
            "[delivery]\ntimeout_ms = 'fast'",
            r#"delivery.timeout_ms: invalid type: string "fast""#,
        ),
        (
            "[delivery]\nmax_attempts = 51",
            "delivery.max_attempts: must be between 1 and 50",
        ),
        (
            "[delivery]\nretry_schedule = []",
            "delivery.retry_schedule: must not be empty",
        ),
        (
            "[delivery]\nretry_schedule = [5, -1]",
            "delivery.retry_schedule[1]: must be between 0 and 604800, got -1",
        ),
        (
            "[delivery]\nconcurrency = 0",
            "delivery.concurrency: must be between 1 and 10000",
        ),
        (
            "[delivery]\ntimeout_ms = 20000\nlease_seconds = 25",
            "delivery.lease_seconds: must exceed delivery.timeout_ms in seconds plus 5 (25), got",
        ),
        (
            "[delivery]\ndisable_after_days = 0",
            "delivery.disable_after_days: must be between 1 and 36500, got 0",
        ),
        (
            "[delivery]\nallow_networks = ['10.0.0.1/8']",
            "delivery.allow_networks[0]: `10.0.0.1/8` has host bits set",
        ),
        (
            "[delivery]\nrotation_grace_seconds = -1",
            "delivery.rotation_grace_seconds: must be between 0 and 31536000, got -1",
        ),
        (
            "[inbound]\nmax_body_bytes = 0",
            "inbound.max_body_bytes: must be between 1 and 104857600, got 0",
        ),
        (
            "database_acquire_timeout_seconds = 0",
            "database_acquire_timeout_seconds: must be between 1 and 300, got 0",
        ),
        (
            "database_pool_size = 0",
            "database_pool_size: must be between 1 and 1000, got 0",
        ),
        (
            "database_statement_timeout_seconds = -1",
            "database_statement_timeout_seconds: must be between 0 and 86400, got -1",
        ),
        (
            "[http]\nheader_timeout_seconds = 0",
            "http.header_timeout_seconds: must be between 1 and 3600, got 0",
        ),
        (
            "[http]\nbody_timeout_seconds = 3601",
            "http.body_timeout_seconds: must be between 1 and 3600, got 3601",
        ),
        (
            "[inbound]\nclient_rate_limit_per_second = -1",
            "inbound.client_rate_limit_per_second: must be between 0 and 1000000, got -1",
        ),
        (
            "[inbound]\ntrusted_proxies = ['10.0.0.1/8']",
            "inbound.trusted_proxies[0]: `10.0.0.1/8` has host bits set; did you mean 10.0.0.0/8?",
        ),
        (
            "[inbound]\nmax_queued_executions = 100000001",
            "inbound.max_queued_executions: must be between 0 and 100000000, got 100000001",
        ),
        (
            "[http]\nmax_connections = 0",
            "http.max_connections: must be between 1 and 1000000, got 0",
        ),
        (
            "[[proxy.routes]]\nprefix = 'api'\nupstream = 'http://u'\ntag = 't'",
            "proxy.routes[0].prefix: must start with `/`",
        ),
        (
            "[[proxy.routes]]\nprefix = '/api/v1/x'\nupstream = 'http://u'\ntag = 't'",
            "proxy.routes[0].prefix: must not be inside `/api/v1`, which hookd serves itself",
        ),
        (
            "[[proxy.routes]]\nprefix = '/health'\nupstream = 'http://u'\ntag = 't'",
            "proxy.routes[0].prefix: must not be inside `/health`",
        ),
        (
            "[proxy]\nmax_body_bytes = -1",
            "proxy.max_body_bytes: must be between 0 and 104857600, got -1",
        ),
        (
            "[[proxy.routes]]\nprefix = '/'\nupstream = 'u'\ntag = 't'",
            "proxy.routes[0].upstream: `u` is not a URL",
        ),
        (
            "[[proxy.routes]]\nprefix = '/'\nupstream = 'http://u'\ntag = ' '",
            "proxy.routes[0].tag: must not be empty",
        ),
        (
            "[[proxy.routes]]\nprefix = '/'\ntag = 't'",
            "proxy.routes[0]: missing field `upstream`",
        ),
        (
            "[[proxy.routes]]\nprefix = '/'\nupstream = 'http://u'\ntag = 't'\n\
             [[proxy.routes]]\nprefix = '/'\nupstream = 'http://v'\ntag = 'v'",
            "proxy.routes[1].prefix: same prefix as proxy.routes[0]",
        ),
        (
            "[default_headers]\nX-A = 'a'\nx-a = 'b'",
            "default_headers.x-a: same header as default_headers.X-A",
        ),
        ("retention_days = ", "hookd.toml: TOML parse error"),
    ];
    for (text, want) in cases {
        let message = error(text, &[]);
        assert!(message.contains(want), "{text:?}:\n{message}");
        assert!(message.contains("invalid configuration (from built-in defaults, hookd.toml)"));
    }
}

#[test]
fn an_environment_value_no_reading_fits_is_reported_as_read() {
    let message = error("", &[("HOOKD_DELIVERY__TIMEOUT_MS", "1.5")]);
    assert!(
        message.contains("delivery.timeout_ms: invalid type: floating point `1.5`"),
        "{message}"
    );
    assert!(message.contains("HOOKD_DELIVERY__TIMEOUT_MS"), "{message}");
}

#[test]
fn every_problem_is_reported_at_once() {
    let message = error(
        "retention_days = 0\n[delivery]\ntimeout_ms = 0\nconcurrency = 0",
        &[],
    );
    for key in [
        "retention_days:",
        "delivery.timeout_ms:",
        "delivery.concurrency:",
    ] {
        assert!(message.contains(key), "{message}");
    }
}

#[test]
fn debug_hides_tokens_and_passwords() {
    let config = load(
        r#"
        database_url = "postgres://hookd:db-password@db/hookd"
        admin_token = "super-secret-admin-token"
        secrets_key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
        secrets_old_keys = ["HyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4="]
        [default_headers]
        Authorization = "Bearer partner-secret"
        X-Tenant = "acme"
        [[proxy.routes]]
        prefix = "/"
        upstream = "http://user:upstream-password@api"
        tag = "t"
        "#,
        &[],
    )
    .unwrap();
    let debug = format!("{config:?}");
    for secret in [
        "db-password",
        "super-secret-admin-token",
        "partner-secret",
        "upstream-password",
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        "HyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4=",
    ] {
        assert!(!debug.contains(secret), "{secret} leaked: {debug}");
    }
    assert!(
        debug.contains("acme") && debug.contains("postgres://hookd:****@db/hookd"),
        "{debug}"
    );
}

#[test]
fn a_missing_config_file_named_by_flag_is_an_error() {
    let path = Path::new("/nonexistent/hookd-test.toml");
    let message = format!(
        "{:#}",
        Config::load(Some(path), &Overrides::default()).unwrap_err()
    );
    assert!(
        message.contains("/nonexistent/hookd-test.toml"),
        "{message}"
    );
}

#[test]
fn secrets_keys_are_checked_and_named() {
    let message = error("secrets_key = \"c2hvcnQ=\"", &[]);
    assert!(
        message.contains("secrets_key: must be 32 bytes in base64") && message.contains("5 bytes"),
        "{message}"
    );
    let message = error("secrets_key = \"not base64!\"", &[]);
    assert!(message.contains("secrets_key: must be base64"), "{message}");
    let text = format!("secrets_old_keys = [\"{KEY}\", \"c2hvcnQ=\"]");
    let message = error(&text, &[]);
    assert!(
        message.contains("secrets_old_keys[1]: must be 32 bytes"),
        "{message}"
    );
    let text = format!("secrets_key = \"{KEY}\"\nsecrets_key_file = \"/k\"");
    let message = error(&text, &[]);
    assert!(
        message.contains("secrets_key_file: set secrets_key or secrets_key_file, not both"),
        "{message}"
    );
    let config = load(&format!("secrets_key = \" {KEY}\\n\""), &[]).unwrap();
    assert_eq!(
        config.secrets.key.as_deref(),
        Some(KEY),
        "surrounding space is not the key"
    );
}

#[test]
fn postgres_needs_a_secrets_key_and_sqlite_does_not() {
    let message = error("database_url = \"postgres://h/db\"", &[]);
    assert!(
        message.contains("secrets_key: required with a PostgreSQL database_url")
            && message.contains("hookd secrets generate-key"),
        "{message}"
    );
    let config = load("database_url = \"sqlite://data/hookd.db\"", &[]).unwrap();
    assert_eq!(config.secrets, SecretsConfig::default());
    assert_eq!(
        config.database_url.sqlite_file(),
        Some(std::path::PathBuf::from("data/hookd.db"))
    );
    for in_memory in [
        "sqlite::memory:",
        "sqlite://",
        "sqlite://file.db?mode=memory",
    ] {
        let message = error(&format!("database_url = \"{in_memory}\""), &[]);
        assert!(
            message.contains("database_url: names no SQLite file"),
            "{in_memory}: {message}"
        );
    }
}

#[test]
fn an_empty_worker_listen_turns_the_workers_endpoints_off() {
    let config = load("worker_listen = \"\"\nlog_format = \"json\"", &[]).unwrap();
    assert_eq!(config.worker_listen, None);
    assert_eq!(config.log_format, crate::config::LogFormat::Json);
    let flag = Overrides {
        worker_listen: Some("127.0.0.1:0".into()),
        ..Overrides::default()
    };
    let config = Config::from_sources(None, vars(&[]), &flag).unwrap();
    assert_eq!(config.worker_listen.map(|a| a.port()), Some(0));
}
