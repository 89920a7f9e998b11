//! One attempt: build the request, send it with the pooled client, read the answer, and decide
//! what happens next. Used by the worker and by `POST /webhooks/{id}/test`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hookd_core::delivery::{record_body, RequestRecord, ResponseRecord, MAX_RECORDED_BODY};
use hookd_core::flow;
use hookd_core::net::Cidr;
use hookd_core::outbound::{build_request, OutboundRequest, SendContext};
use hookd_core::retry::{decide, parse_retry_after, Decision, RetryPolicy, WebhookEffect};
use hookd_core::store::{NextState, Outcome};
use hookd_core::{Attempt, AttemptId, AttemptResult, Delivery, ErrorKind, Event, Webhook};
use rand::Rng;

use super::guard::{check_literal, Blocked, GuardedResolver};

use crate::settings::Settings;

/// Keep-alive connections kept per target host.
const IDLE_PER_HOST: usize = 256;

/// Pooled HTTP clients: one that verifies TLS certificates and one for `tls_verify: false`. Both
/// resolve names through the SSRF guard and ignore proxy variables.
#[derive(Debug, Clone)]
pub struct HttpSender {
    verified: reqwest::Client,
    insecure: reqwest::Client,
    allow: Arc<[Cidr]>,
}

impl HttpSender {
    /// Clients that may reach public addresses and the `allow` networks.
    pub fn new(allow: &[Cidr]) -> Self {
        let allow: Arc<[Cidr]> = Arc::from(allow.to_vec());
        Self {
            verified: client(true, &allow),
            insecure: client(false, &allow),
            allow,
        }
    }
}

impl HttpSender {
    /// One HTTP call through the verifying, SSRF-guarded client (a workflow's `request` node):
    /// status, lower-case headers and the body up to `max_body` bytes. `Err` is a transport
    /// error, described without secrets.
    pub async fn guarded_call(
        &self,
        method: reqwest::Method,
        url: &str,
        headers: &[(String, String)],
        body: Option<Vec<u8>>,
        timeout: Duration,
        max_body: usize,
    ) -> Result<(u16, std::collections::BTreeMap<String, String>, Vec<u8>), String> {
        check_literal(url, &self.allow).map_err(|b| b.to_string())?;
        let mut builder = self.verified.request(method, url).timeout(timeout);
        for (k, v) in headers {
            builder = builder.header(k, v);
        }
        if let Some(body) = body {
            builder = builder.body(body);
        }
        let mut resp = builder.send().await.map_err(|e| classify(e).1)?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
                (k.as_str().to_owned(), v)
            })
            .collect();
        let mut body = Vec::new();
        while body.len() < max_body {
            match resp.chunk().await.map_err(|e| classify(e).1)? {
                Some(chunk) => body.extend_from_slice(&chunk),
                None => break,
            }
        }
        body.truncate(max_body);
        Ok((status, headers, body))
    }
}

fn client(verify: bool, allow: &Arc<[Cidr]>) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(Arc::new(GuardedResolver {
            allow: allow.clone(),
        }))
        .tcp_nodelay(true)
        .pool_max_idle_per_host(IDLE_PER_HOST)
        .pool_idle_timeout(Duration::from_secs(60))
        .connect_timeout(Duration::from_secs(10))
        .danger_accept_invalid_certs(!verify)
        .build()
        .expect("the HTTP client configuration is static and valid")
}

/// Makes attempt number `delivery.attempts + 1` of `delivery` and returns its outcome.
pub async fn attempt(
    sender: &HttpSender,
    settings: &Settings,
    webhook: &Webhook,
    event: &Event,
    delivery: &Delivery,
    lease_token: &str,
) -> Outcome {
    let number = delivery.attempts + 1;
    let now_ms = crate::now_ms();
    let ctx = SendContext {
        delivery_id: delivery.id.as_str(),
        attempt: number,
        now_secs: now_ms / 1000,
        now_ms,
        default_headers: &settings.default_headers,
        entry_index: delivery.entry_index,
        message: delivery.message.as_deref(),
    };
    let started = Instant::now();
    let (record, response, error) = match build_request(webhook, event, &ctx) {
        Ok(req) => {
            let timeout = effective_timeout(webhook, settings);
            let client = if webhook.spec.tls_verify {
                &sender.verified
            } else {
                &sender.insecure
            };
            let record = req.record();
            let sent = match check_literal(&req.url, &sender.allow) {
                Ok(()) => send(client, req, timeout).await,
                Err(blocked) => Err((ErrorKind::BlockedAddress, blocked.to_string())),
            };
            match sent {
                Ok(resp) => (record, Some(resp), None),
                Err(e) => (record, None, Some(e)),
            }
        }
        Err(e) => {
            let record = RequestRecord {
                method: webhook.spec.method.as_str().to_owned(),
                url: webhook.spec.url.clone(),
                headers: Vec::new(),
            };
            (
                record,
                None,
                Some((ErrorKind::InvalidPayload, e.to_string())),
            )
        }
    };
    let duration_ms = started.elapsed().as_millis() as u64;
    let result = match (&response, &error) {
        (Some(r), _) => AttemptResult::Response {
            status: r.record.status,
            retry_after: r
                .retry_after
                .as_deref()
                .and_then(|v| parse_retry_after(v, now_ms)),
        },
        (None, Some((kind, _))) => AttemptResult::Error(*kind),
        (None, None) => AttemptResult::Error(ErrorKind::Other),
    };
    let policy = policy(webhook, settings);
    let (decision, effect) = decide(&policy, number, &result, rand::thread_rng().gen());
    let done_ms = crate::now_ms();
    let next = match decision {
        Decision::Succeeded => NextState::Succeeded,
        Decision::Failed => NextState::Failed,
        Decision::Retry(d) => NextState::Retry {
            at_ms: done_ms + d.as_millis() as i64,
        },
    };
    Outcome {
        attempt: Attempt {
            id: AttemptId::generate(now_ms),
            delivery_id: delivery.id.clone(),
            webhook_id: webhook.id.clone(),
            attempt: number,
            started_at: now_ms,
            duration_ms,
            request: record,
            response: response.map(|r| r.record),
            error_kind: error.as_ref().map(|e| e.0),
            error: error.map(|e| e.1),
        },
        lease_token: lease_token.to_owned(),
        next,
        webhook: effect,
        disable_if_failing_since_before: done_ms
            - settings.delivery.disable_after.as_millis() as i64,
        circuit: flow::signal(&result),
        circuit_policy: settings.delivery.circuit,
        now_ms: done_ms,
    }
}

/// Time left between the end of a request and the end of its lease, for recording the outcome.
const LEASE_MARGIN: Duration = Duration::from_secs(10);

/// The webhook's timeout (or the server's), never so long that the lease could run out before
/// the outcome is recorded (the lease may have been shortened after the webhook was saved).
fn effective_timeout(webhook: &Webhook, settings: &Settings) -> Duration {
    let wanted = webhook
        .spec
        .timeout_ms
        .map_or(settings.delivery.timeout, |ms| {
            Duration::from_millis(ms.into())
        });
    let cap = settings
        .delivery
        .lease
        .saturating_sub(LEASE_MARGIN)
        .max(Duration::from_secs(1));
    wanted.min(cap)
}

/// The outcome of a delivery that is not sent at all: its webhook is disabled (it fails, and
/// `recover` can send it once the webhook is enabled again) or gone (it is cancelled).
pub fn not_sent(
    delivery: &Delivery,
    webhook: Option<&Webhook>,
    lease_token: &str,
    kind: ErrorKind,
    message: &str,
) -> Outcome {
    let now_ms = crate::now_ms();
    let next = if kind == ErrorKind::Gone {
        NextState::Cancelled
    } else {
        NextState::Failed
    };
    let request = RequestRecord {
        method: webhook.map_or("", |w| w.spec.method.as_str()).to_owned(),
        url: webhook.map_or(String::new(), |w| w.spec.url.clone()),
        headers: Vec::new(),
    };
    Outcome {
        attempt: Attempt {
            id: AttemptId::generate(now_ms),
            delivery_id: delivery.id.clone(),
            webhook_id: delivery.webhook_id.clone(),
            attempt: delivery.attempts + 1,
            started_at: now_ms,
            duration_ms: 0,
            request,
            response: None,
            error_kind: Some(kind),
            error: Some(message.to_owned()),
        },
        lease_token: lease_token.to_owned(),
        next,
        webhook: WebhookEffect::Unchanged,
        disable_if_failing_since_before: 0,
        circuit: flow::Signal::Neutral,
        circuit_policy: flow::CircuitPolicy::default(),
        now_ms,
    }
}

/// The webhook's retry policy with server defaults filled in.
pub fn policy(webhook: &Webhook, settings: &Settings) -> RetryPolicy {
    RetryPolicy {
        max_attempts: webhook
            .spec
            .max_attempts
            .unwrap_or(settings.delivery.max_attempts),
        schedule: webhook
            .spec
            .retry_schedule
            .clone()
            .unwrap_or_else(|| settings.delivery.retry_schedule.clone()),
    }
}

struct Received {
    record: ResponseRecord,
    retry_after: Option<String>,
}

async fn send(
    client: &reqwest::Client,
    req: OutboundRequest,
    timeout: Duration,
) -> Result<Received, (ErrorKind, String)> {
    let method = reqwest::Method::from_bytes(req.method.as_bytes()).expect("known method");
    let mut builder = client.request(method, &req.url).timeout(timeout);
    for (k, v) in &req.headers {
        builder = builder.header(k, v);
    }
    if req.method != "GET" {
        builder = builder.body(req.body);
    }
    let mut resp = builder.send().await.map_err(classify)?;
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut body = Vec::new();
    let mut cut_short = false;
    // Read a little past the limit so truncation is known, then stop: the rest is not ours to keep.
    while body.len() <= MAX_RECORDED_BODY {
        match resp.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => break,
            // The receiver answered: its status decides the outcome, even when the body after it
            // broke off (shorter than its Content-Length, a TLS peer closing without
            // close_notify, a stall past the timeout). What arrived is kept, marked truncated.
            Err(_) => {
                cut_short = true;
                break;
            }
        }
    }
    let (text, truncated) = record_body(&body);
    let body_truncated = truncated || cut_short;
    Ok(Received {
        record: ResponseRecord {
            status,
            headers,
            body: text,
            body_truncated,
        },
        retry_after,
    })
}

/// Maps a transport error to its kind, with a message free of secrets (URLs carry no secrets:
/// credentials travel in headers).
fn classify(e: reqwest::Error) -> (ErrorKind, String) {
    let chain = error_chain(&e);
    let kind = if blocked(&e) {
        ErrorKind::BlockedAddress
    } else if e.is_timeout() {
        ErrorKind::Timeout
    } else if chain.contains("dns error") || chain.contains("failed to lookup address") {
        ErrorKind::Dns
    } else if chain.contains("certificate") || chain.contains("tls") || chain.contains("TLS") {
        ErrorKind::Tls
    } else if e.is_connect() {
        ErrorKind::Connect
    } else if e.is_body() || e.is_decode() || e.is_request() {
        ErrorKind::Io
    } else {
        ErrorKind::Other
    };
    (kind, chain)
}

/// Whether the SSRF guard refused the connection somewhere down the error chain.
fn blocked(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(s) = source {
        if s.is::<Blocked>() {
            return true;
        }
        source = s.source();
    }
    false
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
