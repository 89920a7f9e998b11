//! Inbound hooks at run time (SPEC §4 "Inbound hooks"): the public `/hooks/{key}` endpoint, the
//! workflow's effects (publish into the outbound pipeline, guarded HTTP calls), and running an
//! execution. The admin API is `http/inbound.rs`; async executions are run by
//! `worker/executions.rs`.
//!
//! A request is checked in this order, each failure answered before the next step: the key (404,
//! also for an inactive hook), the method (405 with `Allow`), for sync hooks the number of runs
//! in flight in this process (429 past `max_concurrency`), the body size (413, read no further than the limit), verification over the raw bytes (401, and a
//! `rejected` execution with the reason). Then:
//! - `async`: the execution is stored `queued` (committed) before the caller gets the configured
//!   response; a worker runs it later, here or in another process, and a restart loses nothing;
//! - `sync`: the workflow runs in the request's own task under `timeout_ms`, so the caller is
//!   always answered: by the response node, else 200/500, or 504 when time runs out.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use hookd_core::inbound::record::{
    Execution, ExecutionRecord, ExecutionRequest, ExecutionStatus, InboundHook,
};
use hookd_core::inbound::spec::{AsyncResponse, InboundAuth, SignaturePreset};
use hookd_core::inbound::workflow::{self, OutgoingRequest, ResponseValue};
use hookd_core::inbound::{compile, parse, verify, Effects, Mode, Run, RunStatus, Workflow};
use hookd_core::store::Enqueued;
use hookd_core::{EventType, ExecutionId, InboundId, NewEvent, Store, StoreError};
use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;
use crate::publish::Committer;
use crate::worker::send::HttpSender;
use crate::AppState;

/// Request bodies are kept in execution records up to this many bytes.
pub const MAX_RECORDED_BODY: usize = 64 * 1024;
/// Largest response body a `request` node keeps.
const MAX_REQUEST_NODE_BODY: usize = 1024 * 1024;
/// Headers whose values are credentials: masked in execution records.
const SECRET_HEADERS: [&str; 9] = [
    "authorization",
    "cookie",
    "proxy-authorization",
    "x-hub-signature",
    "x-hub-signature-256",
    "stripe-signature",
    "x-slack-signature",
    "x-shopify-hmac-sha256",
    "webhook-signature",
];
const MASK: &str = "****";
/// Every answer of a hook names the execution it recorded.
const EXECUTION_HEADER: HeaderName = HeaderName::from_static("x-hookd-execution");

/// What the process keeps per hook: its compiled templates and how many executions are running.
#[derive(Debug, Default)]
pub struct Runtime {
    compiled: Mutex<HashMap<InboundId, (i64, Arc<Compiled>)>>,
    running: Mutex<HashMap<InboundId, (u32, Arc<Semaphore>)>>,
}

/// A hook's workflow and async answer, compiled.
#[derive(Debug)]
pub struct Compiled {
    pub workflow: Workflow,
    pub answer: AsyncResponse,
}

impl Runtime {
    /// The hook's workflow and async answer, compiled once per version of the hook. Both were
    /// checked at save, so an error here means the stored hook is broken.
    pub fn compiled(&self, hook: &InboundHook) -> Result<Arc<Compiled>, String> {
        let mut cache = self.compiled.lock().expect("not poisoned");
        if let Some((at, c)) = cache.get(&hook.id) {
            if *at == hook.updated_at {
                return Ok(c.clone());
            }
        }
        let broken =
            |e: &dyn std::fmt::Display| format!("inbound hook {} does not compile: {e}", hook.id);
        let compiled = Arc::new(Compiled {
            workflow: compile(&hook.spec.workflow).map_err(|e| broken(&e))?,
            answer: hook.spec.async_response().map_err(|e| broken(&e))?,
        });
        cache.insert(hook.id.clone(), (hook.updated_at, compiled.clone()));
        Ok(compiled)
    }

    /// A slot among the hook's `max_concurrency` running executions in this process, if free.
    fn try_slot(&self, hook: &InboundHook) -> Option<OwnedSemaphorePermit> {
        let limit = hook.spec.max_concurrency;
        let sem = {
            let mut map = self.running.lock().expect("not poisoned");
            let entry = map
                .entry(hook.id.clone())
                .or_insert_with(|| (limit, Arc::new(Semaphore::new(limit as usize))));
            if entry.0 != limit {
                *entry = (limit, Arc::new(Semaphore::new(limit as usize)));
            }
            entry.1.clone()
        };
        sem.try_acquire_owned().ok()
    }
}

/// Most executions stored in one transaction.
const GROUP_MAX: usize = 512;

type Job = (Execution, oneshot::Sender<Result<(), StoreError>>);

/// Stores the executions of concurrent requests together: one transaction (one commit, one
/// fsync) for every request that arrived while the previous one was being written. Each request
/// is answered only after the transaction holding its execution committed.
#[derive(Debug, Clone)]
pub struct ExecutionCommitter {
    tx: mpsc::Sender<Job>,
}

impl ExecutionCommitter {
    /// Starts the group-commit task (so it needs a Tokio runtime).
    pub fn start(store: Arc<dyn Store>) -> Self {
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(group_commit(store, rx));
        Self { tx }
    }

    /// Stores `execution`; returns once it is committed.
    pub async fn commit(&self, execution: &Execution) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        let gone = || StoreError::Backend("the execution writer stopped".into());
        self.tx
            .send((execution.clone(), reply))
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

async fn group_commit(store: Arc<dyn Store>, mut rx: mpsc::Receiver<Job>) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < GROUP_MAX {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let (batch, replies): (Vec<_>, Vec<_>) = jobs.into_iter().unzip();
        match store.insert_executions(&batch).await {
            Ok(()) => replies.into_iter().for_each(|r| {
                let _ = r.send(Ok(()));
            }),
            Err(e) => {
                tracing::warn!(error = %e, executions = batch.len(), "storing executions failed");
                for r in replies {
                    let _ = r.send(Err(e.to_owned_error()));
                }
            }
        }
    }
}

/// `/hooks/{key}`: public, no admin token.
pub fn router() -> Router<AppState> {
    Router::new().route("/hooks/{key}", any(receive))
}

async fn receive(
    State(state): State<AppState>,
    Path(key): Path<String>,
    request: Request,
) -> Response {
    let response = match handle(&state, &key, request).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    };
    state.metrics.inbound(response.status().as_u16());
    response
}

async fn handle(state: &AppState, key: &str, request: Request) -> Result<Response, ApiError> {
    let now = crate::now_ms();
    let hook = match state.store.get_inbound_by_key(key).await? {
        Some(h) if h.spec.active => h,
        _ => return Err(ApiError::not_found("hook")),
    };
    let (parts, body) = request.into_parts();
    if !hook.spec.methods.iter().any(|m| m == parts.method.as_str()) {
        let allow = hook.spec.methods.join(", ");
        let mut response = ApiError::method_not_allowed().into_response();
        if let Ok(v) = HeaderValue::from_str(&allow) {
            response.headers_mut().insert(header::ALLOW, v);
        }
        return Ok(response);
    }
    // Sync runs hold the caller; past `max_concurrency` of them, new callers are turned away.
    // Async requests are only stored here, so they are always taken.
    let slot = match hook.spec.mode {
        Mode::Sync => match state.inbound.try_slot(&hook) {
            Some(slot) => Some(slot),
            None => {
                return Err(ApiError::too_many(format!(
                    "this hook already runs {} executions; try again later",
                    hook.spec.max_concurrency
                )))
            }
        },
        Mode::Async => None,
    };
    let limit = state.settings.max_body_bytes;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::too_large(limit));
    }
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => bytes,
        Err(e) if crate::listener::is_body_timeout(&e) => {
            return Err(ApiError::request_timeout());
        }
        Err(_) => return Err(ApiError::too_large(limit)),
    };
    let headers = header_list(&parts.headers);
    let query_raw = parts.uri.query().unwrap_or("");
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let body_value = parse::parse_body(content_type, &bytes);
    let query = parse::parse_query(query_raw);
    let record_request = ExecutionRequest {
        method: parts.method.to_string(),
        path: masked_path(query_raw),
        headers: masked_headers(&headers, &hook.spec.auth),
        query: query.clone(),
        body: recorded_body(&body_value, &bytes),
        body_truncated: bytes.len() > MAX_RECORDED_BODY,
    };

    if let Err(rejection) = verify(&hook.spec.auth, &headers, &bytes, now / 1000) {
        let reason = format!("{}: {}", rejection.code.as_str(), rejection.reason);
        let mut response = ApiError::unauthorized_because(&reason).into_response();
        if let Some(challenge) = rejection.challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        let record = ExecutionRecord {
            request: record_request,
            variables: Map::new(),
            trace: Vec::new(),
            response: Some(workflow::Response {
                status: 401,
                headers: BTreeMap::new(),
                body: String::new(),
            }),
            error: Some(reason),
            duration_ms: Some(0),
        };
        let execution = new_execution(&hook, ExecutionStatus::Rejected, record, now);
        state.executions.commit(&execution).await?;
        if let Ok(v) = HeaderValue::from_str(execution.id.as_str()) {
            response.headers_mut().insert(EXECUTION_HEADER, v);
        }
        return Ok(response);
    }

    let vars = parse::variables(
        &hook.spec.parse,
        parts.method.as_str(),
        &headers,
        &query,
        &body_value,
    );
    match hook.spec.mode {
        Mode::Async => {
            let answer = state
                .inbound
                .compiled(&hook)
                .map_err(|e| ApiError::internal(&e))?
                .answer
                .render(&vars)
                .map_err(|e| ApiError::internal(&format!("the response template failed: {e}")))?;
            let record = ExecutionRecord {
                request: record_request,
                variables: masked_variables(vars, &hook),
                trace: Vec::new(),
                response: Some(answer.clone()),
                error: None,
                duration_ms: None,
            };
            let mut execution = new_execution(&hook, ExecutionStatus::Queued, record, now);
            execution.next_attempt_at = Some(now);
            state.executions.commit(&execution).await?;
            state.wake.notify_waiters();
            Ok(answer_response(&answer, &execution.id))
        }
        Mode::Sync => {
            let compiled = state
                .inbound
                .compiled(&hook)
                .map_err(|e| ApiError::internal(&e))?;
            let effects = ServerEffects::new(state.committer.clone(), state.sender.clone());
            let ran = run_bounded(&compiled, &hook, vars.clone(), &effects, Mode::Sync).await;
            let duration_ms = u64::try_from(crate::now_ms() - now).unwrap_or(0);
            let mut record = ExecutionRecord {
                request: record_request,
                variables: masked_variables(vars, &hook),
                trace: Vec::new(),
                response: None,
                error: None,
                duration_ms: Some(duration_ms),
            };
            let (status, answer) = match ran {
                Ok(run) => {
                    let (status, answer) = sync_answer(&run);
                    record.trace = run.trace;
                    if let RunStatus::Failed { error } = run.status {
                        record.error = Some(error);
                    }
                    (status, answer)
                }
                Err(msg) => {
                    record.error = Some(msg.clone());
                    let body = json!({"error": {"code": "timeout", "message": msg}});
                    (ExecutionStatus::TimedOut, json_answer(504, &body))
                }
            };
            // The run saw the caller's real credentials: wherever they flowed (a `set` result,
            // a node's trace, the answer), they are masked before anything is kept or sent.
            let secrets = secret_values(&headers, &hook.spec.auth);
            let mut answer = answer;
            redact_response(&mut answer, &secrets);
            record.error = record.error.map(|e| redact_text(e, &secrets));
            record.trace = redact_serde(std::mem::take(&mut record.trace), &secrets);
            record.response = Some(answer.clone());
            let execution = new_execution(&hook, status, record, now);
            state.executions.commit(&execution).await?;
            drop(slot);
            Ok(answer_response(&answer, &execution.id))
        }
    }
}

/// The answer of a finished sync run: its response node, else 200 (success) or 500 (failure).
fn sync_answer(run: &Run) -> (ExecutionStatus, workflow::Response) {
    let status = match run.status {
        RunStatus::Succeeded => ExecutionStatus::Succeeded,
        RunStatus::Failed { .. } => ExecutionStatus::Failed,
    };
    let answer = match (&run.response, &run.status) {
        (Some(r), _) => r.clone(),
        (None, RunStatus::Succeeded) => json_answer(200, &json!({"status": "succeeded"})),
        // The caller is outside: what failed (a URL, a query, an upstream's answer) stays in the
        // execution record, which the admin API shows.
        (None, RunStatus::Failed { .. }) => json_answer(
            500,
            &json!({"error": {"code": "workflow_failed",
                              "message": "the workflow failed; its execution record says why"}}),
        ),
    };
    (status, answer)
}

fn json_answer(status: u16, body: &Value) -> workflow::Response {
    let mut headers = BTreeMap::new();
    headers.insert("content-type".into(), "application/json".into());
    workflow::Response {
        status,
        headers,
        body: body.to_string(),
    }
}

fn answer_response(answer: &workflow::Response, execution: &ExecutionId) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let mut response = (status, Body::from(answer.body.clone())).into_response();
    let headers = response.headers_mut();
    for (k, v) in &answer.headers {
        if let (Ok(k), Ok(v)) = (HeaderName::try_from(k.as_str()), HeaderValue::from_str(v)) {
            headers.insert(k, v);
        }
    }
    if !headers.contains_key(header::CONTENT_TYPE) {
        let looks_json = serde_json::from_str::<serde::de::IgnoredAny>(&answer.body).is_ok()
            && answer.body.trim_start().starts_with(['{', '[']);
        let ct = if looks_json {
            "application/json"
        } else {
            "text/plain; charset=utf-8"
        };
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    if let Ok(v) = HeaderValue::from_str(execution.as_str()) {
        headers.insert(EXECUTION_HEADER, v);
    }
    response
}

fn new_execution(
    hook: &InboundHook,
    status: ExecutionStatus,
    record: ExecutionRecord,
    now: i64,
) -> Execution {
    Execution {
        id: ExecutionId::generate(now),
        hook_id: hook.id.clone(),
        mode: hook.spec.mode,
        status,
        record,
        attempts: 0,
        next_attempt_at: None,
        created_at: now,
        updated_at: now,
    }
}

fn header_list(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// Whether the header (lower-case name) carries a credential: one of [`SECRET_HEADERS`] or the
/// hook's own signature header.
fn is_secret_header(name: &str, auth: &InboundAuth) -> bool {
    SECRET_HEADERS.contains(&name)
        || matches!(auth, InboundAuth::Signature(SignaturePreset::Hmac { header, .. })
            if header.eq_ignore_ascii_case(name))
}

/// The variables as stored: credential headers masked in `request.headers` and `headers`, and
/// in parsed items taken from such headers. Sync runs use the real values; async runs start from
/// the stored ones, so their workflows see credentials as `****` (verification already ran).
fn masked_variables(mut vars: Map<String, Value>, hook: &InboundHook) -> Map<String, Value> {
    let auth = &hook.spec.auth;
    let mask_map = |headers: Option<&mut Value>| {
        if let Some(Value::Object(h)) = headers {
            for (k, v) in h.iter_mut() {
                if is_secret_header(k, auth) {
                    *v = Value::String(MASK.into());
                }
            }
        }
    };
    mask_map(vars.get_mut("request").and_then(|r| r.get_mut("headers")));
    mask_map(vars.get_mut("headers"));
    for item in &hook.spec.parse.headers {
        if is_secret_header(&item.name.to_ascii_lowercase(), auth) {
            let key = item.alias.as_deref().unwrap_or(&item.name);
            if let Some(v) = vars.get_mut(key) {
                *v = Value::String(MASK.into());
            }
        }
    }
    vars
}

/// The credentials a request carried, as text a workflow could copy: each credential header's
/// value, its words (a bearer token), and a basic password decoded. Short strings are left out,
/// so masking does not blank ordinary text.
fn secret_values(headers: &[(String, String)], auth: &InboundAuth) -> Vec<String> {
    use base64::Engine as _;
    const SHORTEST: usize = 6;
    let mut out = Vec::new();
    for (k, v) in headers {
        if !is_secret_header(&k.to_ascii_lowercase(), auth) {
            continue;
        }
        out.push(v.clone());
        for word in v.split([' ', ',', ';']) {
            out.push(word.to_owned());
            // A cookie's or a signature's `name=value`.
            if let Some((_, value)) = word.split_once('=') {
                out.push(value.to_owned());
            }
            let decoded = base64::engine::general_purpose::STANDARD.decode(word);
            if let Some(text) = decoded.ok().and_then(|d| String::from_utf8(d).ok()) {
                if let Some((_, password)) = text.split_once(':') {
                    out.push(password.to_owned());
                }
                out.push(text);
            }
        }
    }
    out.retain(|s| s.len() >= SHORTEST);
    // Longest first, so a whole value is masked before a word of it.
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out.dedup();
    out
}

fn redact_text(mut text: String, secrets: &[String]) -> String {
    for secret in secrets {
        if text.contains(secret.as_str()) {
            text = text.replace(secret.as_str(), MASK);
        }
    }
    text
}

fn redact_json(value: &mut Value, secrets: &[String]) {
    match value {
        Value::String(s) => *s = redact_text(std::mem::take(s), secrets),
        Value::Array(items) => items.iter_mut().for_each(|v| redact_json(v, secrets)),
        Value::Object(map) => map.values_mut().for_each(|v| redact_json(v, secrets)),
        _ => {}
    }
}

/// `value` with every credential in its text masked (through its JSON form).
fn redact_serde<T: serde::Serialize + serde::de::DeserializeOwned>(
    value: T,
    secrets: &[String],
) -> T {
    if secrets.is_empty() {
        return value;
    }
    let Ok(mut json) = serde_json::to_value(&value) else {
        return value;
    };
    redact_json(&mut json, secrets);
    serde_json::from_value(json).unwrap_or(value)
}

fn redact_response(answer: &mut workflow::Response, secrets: &[String]) {
    answer.body = redact_text(std::mem::take(&mut answer.body), secrets);
    for v in answer.headers.values_mut() {
        *v = redact_text(std::mem::take(v), secrets);
    }
}

/// Headers for the record: names lower-case, credentials and the hook's own signature header
/// masked.
fn masked_headers(headers: &[(String, String)], auth: &InboundAuth) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in headers {
        let k = k.to_ascii_lowercase();
        let secret = is_secret_header(&k, auth);
        let v = if secret { MASK.to_owned() } else { v.clone() };
        out.entry(k)
            .and_modify(|joined: &mut String| {
                joined.push_str(", ");
                joined.push_str(&v);
            })
            .or_insert(v);
    }
    out
}

/// `/hooks/****?query`: the key is the hook's only secret in a `none` hook, so it is not kept.
fn masked_path(query: &str) -> String {
    if query.is_empty() {
        format!("/hooks/{MASK}")
    } else {
        format!("/hooks/{MASK}?{query}")
    }
}

/// The body as recorded: the parsed value when the raw body fits the cap, else the text cut at
/// the cap.
fn recorded_body(parsed: &Value, raw: &Bytes) -> Value {
    if raw.len() <= MAX_RECORDED_BODY {
        return parsed.clone();
    }
    let mut end = MAX_RECORDED_BODY;
    while end > 0 && (raw[end] & 0xC0) == 0x80 {
        end -= 1;
    }
    Value::String(String::from_utf8_lossy(&raw[..end]).into_owned())
}

/// Runs a claimed async execution's workflow (bounded by the hook's `timeout_ms`) and returns
/// the finished execution.
pub async fn run_async(
    runtime: &Runtime,
    committer: &Committer,
    sender: &HttpSender,
    hook: &InboundHook,
    mut execution: Execution,
) -> Execution {
    let started = crate::now_ms();
    let finish = |mut e: Execution, status, error: Option<String>| {
        e.status = status;
        e.record.error = error;
        e.record.duration_ms = Some(u64::try_from(crate::now_ms() - started).unwrap_or(0));
        e.next_attempt_at = None;
        e.updated_at = crate::now_ms();
        e
    };
    let compiled = match runtime.compiled(hook) {
        Ok(c) => c,
        Err(e) => return finish(execution, ExecutionStatus::Failed, Some(e)),
    };
    let effects = ServerEffects::new(committer.clone(), sender.clone());
    let vars = execution.record.variables.clone();
    match run_bounded(&compiled, hook, vars, &effects, Mode::Async).await {
        Ok(run) => {
            execution.record.trace = run.trace;
            match run.status {
                RunStatus::Succeeded => finish(execution, ExecutionStatus::Succeeded, None),
                RunStatus::Failed { error } => {
                    finish(execution, ExecutionStatus::Failed, Some(error))
                }
            }
        }
        Err(msg) => finish(execution, ExecutionStatus::TimedOut, Some(msg)),
    }
}

/// Runs the hook's workflow under its `timeout_ms`; `Err` says it ran out of time.
async fn run_bounded(
    compiled: &Compiled,
    hook: &InboundHook,
    vars: Map<String, Value>,
    effects: &ServerEffects,
    mode: Mode,
) -> Result<Run, String> {
    let timeout = Duration::from_millis(u64::from(hook.spec.timeout_ms));
    tokio::time::timeout(timeout, compiled.workflow.run(vars, effects, mode))
        .await
        .map_err(|_| {
            format!(
                "the workflow did not finish within timeout_ms ({} ms)",
                hook.spec.timeout_ms
            )
        })
}

/// A workflow's IO: events into the outbound pipeline, HTTP calls through the SSRF-guarded
/// delivery client.
#[derive(Debug)]
pub struct ServerEffects {
    committer: Committer,
    sender: HttpSender,
}

impl ServerEffects {
    pub fn new(committer: Committer, sender: HttpSender) -> Self {
        Self { committer, sender }
    }
}

#[async_trait::async_trait]
impl Effects for ServerEffects {
    async fn publish(
        &self,
        event_type: &str,
        model: Option<&str>,
        data: Value,
    ) -> Result<String, String> {
        let event_type = EventType::parse(event_type)?;
        // As at the API: text a database cannot store is refused here, on both backends alike.
        if model.is_some_and(|m| m.contains('\0')) {
            return Err("model must not contain the NUL character (\\u0000)".into());
        }
        let event = NewEvent {
            event_type,
            model: model.map(str::to_owned),
            data,
            occurred_at: crate::now_ms(),
            idempotency_key: None,
        };
        match self.committer.commit(vec![event]).await {
            Ok(mut done) => match done.pop() {
                Some(Enqueued::Created { id, .. }) => Ok(id.to_string()),
                Some(Enqueued::Duplicate(e)) => Ok(e.id.to_string()),
                None => Err("the event was not stored".into()),
            },
            Err(e) => {
                tracing::warn!(error = %e, "publishing from a workflow failed");
                Err("the event could not be stored".into())
            }
        }
    }

    async fn request(&self, req: OutgoingRequest) -> Result<ResponseValue, String> {
        let method = Method::from_bytes(req.method.as_bytes()).map_err(|e| e.to_string())?;
        // A rendered URL may carry what its template did not: credentials belong in headers,
        // which are masked; URLs are recorded as they are.
        if reqwest::Url::parse(&req.url)
            .is_ok_and(|u| !u.username().is_empty() || u.password().is_some())
        {
            return Err("the URL must not carry credentials (`user:password@`)".into());
        }
        let (status, headers, body) = self
            .sender
            .guarded_call(
                method,
                &req.url,
                &req.headers,
                req.body.map(String::into_bytes),
                req.timeout,
                MAX_REQUEST_NODE_BODY,
            )
            .await?;
        let is_json = headers
            .get("content-type")
            .is_some_and(|ct| ct.contains("json"));
        let text = String::from_utf8_lossy(&body).into_owned();
        let body = if is_json {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        } else {
            Value::String(text)
        };
        Ok(ResponseValue {
            status,
            headers,
            body,
        })
    }

    fn now_ms(&self) -> i64 {
        crate::now_ms()
    }
}
