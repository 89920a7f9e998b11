//! The reverse proxy (SPEC §4, `[[proxy.routes]]`): a request whose path starts with a route's
//! prefix is forwarded to the route's upstream, and the upstream's answer (status, headers,
//! streaming body) is returned unchanged. Calls answered 2xx are recorded as route calls
//! ([`record`]).
//!
//! Routes are mounted as the application's fallback, so `/api/v1`, `/health`, `/ready` and
//! `/metrics` always win; the configuration loader refuses prefixes inside them. This module
//! knows HTTP and the publish path, not the store.

mod record;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{CONNECTION, HOST};
use axum::http::{HeaderMap, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::settings::{ProxyRoute, ProxySettings};
use crate::AppState;

/// Longest wait for a TCP (and TLS) connection to an upstream.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest silence while reading an upstream's answer; a slow but steady stream is not cut.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle keep-alive connections kept per upstream host.
const IDLE_PER_HOST: usize = 256;

/// Headers that describe one connection, not the message: never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The configured routes and the HTTP client that reaches their upstreams.
#[derive(Debug, Clone)]
pub struct Proxy {
    /// A client of its own: keep-alive pool, no redirects followed (the client sees the
    /// upstream's redirect, as from any proxy), no proxy taken from the environment. Unlike the
    /// delivery client it has no SSRF guard: upstreams are set by the operator in the
    /// configuration, not by API users, and are usually on a private network or loopback.
    client: reqwest::Client,
    /// Longest prefix first, so the first match is the most specific route.
    routes: Arc<[ProxyRoute]>,
    /// Bodies are recorded up to this many bytes.
    cap: usize,
}

impl Proxy {
    pub fn new(settings: &ProxySettings) -> Self {
        let mut routes = settings.routes.clone();
        routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(IDLE_PER_HOST)
            .pool_idle_timeout(Duration::from_secs(60))
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .build()
            .expect("the HTTP client configuration is static and valid");
        Self {
            client,
            routes: routes.into(),
            cap: settings.max_recorded_body_bytes,
        }
    }

    /// Whether any route is configured (without one, nothing is mounted).
    pub fn is_enabled(&self) -> bool {
        !self.routes.is_empty()
    }

    /// The route with the longest prefix of `path`.
    fn route(&self, path: &str) -> Option<&ProxyRoute> {
        self.routes.iter().find(|r| path.starts_with(&r.prefix))
    }
}

/// The fallback handler: forwards the request if a route matches, else 404.
pub async fn handle(State(state): State<AppState>, req: Request) -> Response {
    forward(&state, req)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn forward(state: &AppState, req: Request) -> Result<Response, ApiError> {
    let proxy = &state.proxy;
    let route = proxy
        .route(req.uri().path())
        .ok_or_else(|| ApiError::not_found("route"))?
        .clone();
    let target = upstream_url(&route, req.uri());
    let (parts, body) = req.into_parts();
    let client_ip = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let request_capture = record::Capture::new(proxy.cap);
    let mut upstream_req = proxy
        .client
        .request(parts.method.clone(), target)
        .headers(forwarded_headers(&parts.headers, client_ip));
    // A request without a body must not gain a chunked empty one.
    if body.size_hint().exact() != Some(0) {
        let stream = request_capture.tee(body.into_data_stream());
        upstream_req = upstream_req.body(reqwest::Body::wrap_stream(stream));
    }
    let upstream = upstream_req.send().await.map_err(|e| {
        tracing::warn!(tag = %route.tag, error = %e, "the proxy upstream did not answer");
        ApiError::bad_gateway(format!("upstream of `{}` did not answer", route.prefix))
    })?;
    let call = record::Call {
        tag: route.tag,
        method: parts.method.to_string(),
        url: parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .into(),
        request_type: content_type(&parts.headers),
        request: request_capture,
        head_only: parts.method == axum::http::Method::HEAD,
    };
    respond(state, call, upstream).await
}

/// Builds the client's response: the upstream's status and headers, and its body (recorded
/// when the status is 2xx).
async fn respond(
    state: &AppState,
    call: record::Call,
    upstream: reqwest::Response,
) -> Result<Response, ApiError> {
    let status = upstream.status();
    let mut headers = upstream.headers().clone();
    strip_hop_by_hop(&mut headers);
    let body = if status.is_success() {
        record::recorded_body(state.clone(), call, upstream).await?
    } else {
        Body::from_stream(upstream.bytes_stream())
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok(response)
}

/// `upstream` + the path (less the prefix with `strip_prefix`) + the query string.
fn upstream_url(route: &ProxyRoute, uri: &Uri) -> String {
    let path = uri.path();
    let rest = if route.strip_prefix {
        path.strip_prefix(route.prefix.as_str()).unwrap_or(path)
    } else {
        path
    };
    let base = route.upstream.trim_end_matches('/');
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    match uri.query() {
        Some(q) => format!("{base}/{rest}?{q}"),
        None => format!("{base}/{rest}"),
    }
}

/// The request's headers as sent upstream: hop-by-hop headers removed, `Host` left to the
/// client (the upstream's own), and the `X-Forwarded-*` headers a production proxy sets. hookd
/// listens on plain HTTP, so `X-Forwarded-Proto` is `http`.
fn forwarded_headers(incoming: &HeaderMap, client: Option<IpAddr>) -> HeaderMap {
    let mut headers = incoming.clone();
    strip_hop_by_hop(&mut headers);
    let host = headers.remove(HOST);
    if let Some(ip) = client {
        let chain = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(prior) => format!("{prior}, {ip}"),
            None => ip.to_string(),
        };
        if let Ok(value) = HeaderValue::from_str(&chain) {
            headers.insert("x-forwarded-for", value);
        }
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    match host {
        Some(host) => headers.insert("x-forwarded-host", host),
        None => headers.remove("x-forwarded-host"),
    };
    headers
}

/// Removes the hop-by-hop headers, including those the `Connection` header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<String> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect();
    for name in HOP_BY_HOP
        .iter()
        .copied()
        .chain(named.iter().map(String::as_str))
    {
        headers.remove(name);
    }
}

fn content_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(prefix: &str, upstream: &str, strip_prefix: bool) -> ProxyRoute {
        ProxyRoute {
            prefix: prefix.into(),
            upstream: upstream.into(),
            tag: "t".into(),
            strip_prefix,
        }
    }

    #[test]
    fn upstream_urls_keep_or_strip_the_prefix_and_keep_the_query() {
        let cases = [
            (
                route("/api/", "http://u:1", false),
                "/api/a?x=1",
                "http://u:1/api/a?x=1",
            ),
            (
                route("/api/", "http://u:1/", true),
                "/api/a/b",
                "http://u:1/a/b",
            ),
            (
                route("/svc", "http://u/base", true),
                "/svc/a?q",
                "http://u/base/a?q",
            ),
            (route("/svc", "http://u", true), "/svc", "http://u/"),
        ];
        for (route, uri, want) in cases {
            let uri: Uri = uri.parse().unwrap();
            assert_eq!(upstream_url(&route, &uri), want);
        }
    }

    #[test]
    fn the_longest_prefix_wins() {
        let settings = ProxySettings {
            routes: vec![
                route("/a", "http://x", false),
                route("/a/b", "http://y", false),
            ],
            ..ProxySettings::default()
        };
        let proxy = Proxy::new(&settings);
        assert_eq!(proxy.route("/a/b/c").unwrap().upstream, "http://y");
        assert_eq!(proxy.route("/a/c").unwrap().upstream, "http://x");
        assert!(proxy.route("/b").is_none());
    }

    #[test]
    fn hop_by_hop_headers_are_dropped_and_forwarding_headers_set() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-private"),
        );
        h.insert("x-private", HeaderValue::from_static("1"));
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert("host", HeaderValue::from_static("hooks.example.com"));
        h.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        h.insert("x-kept", HeaderValue::from_static("yes"));
        let out = forwarded_headers(&h, Some([127, 0, 0, 1].into()));
        for gone in ["connection", "x-private", "te", "host"] {
            assert!(out.get(gone).is_none(), "{gone}");
        }
        assert_eq!(out["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
        assert_eq!(out["x-forwarded-host"], "hooks.example.com");
        assert_eq!(out["x-forwarded-proto"], "http");
        assert_eq!(out["x-kept"], "yes");
    }
}
