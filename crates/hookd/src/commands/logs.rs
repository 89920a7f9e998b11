//! Logs and traces: `tracing` lines on standard error, as text or JSON, and (with
//! `otlp_endpoint`) the same spans exported to an OpenTelemetry collector.

use std::io::IsTerminal as _;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use crate::config::LogFormat;

/// The OTLP path of spans, added to `otlp_endpoint` unless it ends in it.
const TRACES_PATH: &str = "/v1/traces";
/// Longest wait for the collector, per export.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The exporting tracer provider, when `otlp_endpoint` is set: kept to flush it at exit.
static PROVIDER: OnceLock<opentelemetry_sdk::trace::SdkTracerProvider> = OnceLock::new();

/// Environment variable whose tracing filter wins over the `log` key.
const LOG_VAR: &str = "HOOKD_LOG";

/// How a process logs.
#[derive(Debug, Clone, Copy)]
pub struct Logging<'a> {
    /// The `log` key's filter (`HOOKD_LOG` wins over it).
    pub filter: &'a str,
    pub format: LogFormat,
    /// `otlp_endpoint`: the collector spans are exported to, if any.
    pub otlp: Option<&'a str>,
}

/// Added to a filter that does not name sqlx.
const QUIET_NOTICES: &str = "sqlx::postgres::notice=warn";

/// Logs to standard error (standard output is for results).
pub fn init(logging: Logging<'_>) -> anyhow::Result<()> {
    let filter = || {
        let (text, key) = match std::env::var(LOG_VAR) {
            Ok(from_env) => (from_env, LOG_VAR),
            Err(_) => (logging.filter.to_owned(), "log"),
        };
        // PostgreSQL's notices ("relation … already exists, skipping" from the idempotent
        // migrations) are not news at info; a filter that names sqlx decides for itself.
        let text = if text.contains("sqlx") {
            text
        } else {
            format!("{text},{QUIET_NOTICES}")
        };
        EnvFilter::try_new(&text).with_context(|| format!("{key}: not a valid tracing filter"))
    };
    let lines = match logging.format {
        LogFormat::Text => {
            // Colour only for a person at a terminal: none in files, pipes and journals, or
            // with `NO_COLOR` set (https://no-color.org).
            let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            tracing_subscriber::fmt::layer()
                .with_ansi(colour)
                .with_writer(std::io::stderr)
                .boxed()
        }
        // One object per line: the event's fields, its span's and its parents' (the ids).
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    // The spans the filter lets through, exported too (the same filter: what is logged is
    // what is traced).
    let export = match logging.otlp {
        Some(endpoint) => Some(otlp_layer(endpoint)?.with_filter(filter()?)),
        None => None,
    };
    tracing_subscriber::registry()
        .with(lines.with_filter(filter()?))
        .with(export)
        .try_init()
        .map_err(|e| anyhow!(e).context("cannot start logging"))
}

/// A layer exporting spans to the OTLP/HTTP collector at `endpoint`, in batches sent by the
/// SDK's own thread.
fn otlp_layer<S>(endpoint: &str) -> anyhow::Result<impl tracing_subscriber::Layer<S>>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::{Protocol, WithExportConfig as _, WithHttpConfig as _};

    let url = traces_url(endpoint);
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(&url)
        .with_timeout(EXPORT_TIMEOUT)
        .with_headers(Default::default())
        .build()
        .with_context(|| format!("otlp_endpoint: cannot export to {url}"))?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name("hookd")
        .build();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("hookd");
    let _ = PROVIDER.set(provider);
    Ok(tracing_opentelemetry::layer().with_tracer(tracer))
}

/// `endpoint` with the OTLP traces path, unless it already ends in it.
fn traces_url(endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    if base.ends_with(TRACES_PATH) {
        base.to_owned()
    } else {
        format!("{base}{TRACES_PATH}")
    }
}

/// Sends the spans not exported yet (on a thread of its own: the SDK's flush blocks).
pub async fn flush() {
    if let Some(provider) = PROVIDER.get() {
        let provider = provider.clone();
        let flushed = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(e)) = flushed {
            eprintln!("otlp_endpoint: the last spans were not exported: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::traces_url;

    #[test]
    fn the_traces_path_is_added_once() {
        assert_eq!(
            traces_url("http://127.0.0.1:4318"),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(traces_url("http://c/otel/"), "http://c/otel/v1/traces");
        assert_eq!(traces_url("http://c/v1/traces"), "http://c/v1/traces");
    }
}
