//! Inbound hooks at run time (SPEC §4 "Inbound hooks"): the public `/hooks/{key}` endpoint.
//! The admin API is `http/inbound.rs`; async executions are run by `worker/executions.rs`.
//!
//! - `gate`: the checks a call passes, in order, before anything is stored (key, method, rate
//!   limits, room to run, size, verification);
//! - `record`: what a call leaves in its execution record (credentials masked);
//! - `commit`: the group commit that stores executions;
//! - `runtime`: what the process keeps per hook (compiled workflows, runs in flight, limits);
//! - `limit`: the rate limiter and the client address;
//! - `effects`: the workflow's effects and running it under its `timeout_ms`.
//!
//! An admitted call is then:
//! - rejected (verification failed): answered 401; recorded without its body, at most
//!   `inbound.rejected_records_per_minute` times a minute per hook (the rest only counted in
//!   `/metrics`), so a flood of forged calls cannot fill the disk;
//! - `async`: the execution is stored `queued` (committed) before the caller gets the configured
//!   response; a worker runs it later, here or in another process, and a restart loses nothing;
//! - `sync`: the workflow runs in the request's own task under `timeout_ms`, so the caller is
//!   always answered: by the response node, else 200/500, or 504 when time runs out.

mod commit;
mod effects;
mod gate;
mod limit;
mod record;
mod runtime;

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use hookd_core::inbound::record::{
    Execution, ExecutionRecord, ExecutionRequest, ExecutionStatus, InboundHook,
};
use hookd_core::inbound::workflow;
use hookd_core::inbound::{parse, Mode, Run, RunStatus};
use hookd_core::ExecutionId;
use serde_json::{json, Map, Value};
use tracing::Instrument as _;

pub use commit::ExecutionCommitter;
pub use effects::{run_async, ServerEffects};
pub use record::MAX_RECORDED_BODY;
pub use runtime::{Compiled, Runtime};

use crate::error::ApiError;
use crate::AppState;

/// Every answer of a hook names the execution it recorded.
const EXECUTION_HEADER: HeaderName = HeaderName::from_static("x-hookd-execution");

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
    let store = &*state.store;
    let admitted =
        match gate::admit(&state.inbound, store, &state.settings, key, request, now).await {
            Ok(admitted) => admitted,
            Err(refusal) => return Ok(refusal.into_response()),
        };
    let gate::Admitted {
        hook,
        parts,
        bytes,
        headers,
        slot,
        rejection,
    } = admitted;
    let auth = &hook.spec.auth;
    let query_raw = parts.uri.query().unwrap_or("");

    if let Some(rejection) = rejection {
        let reason = format!("{}: {}", rejection.code.as_str(), rejection.reason);
        let mut response = ApiError::unauthorized_because(&reason).into_response();
        if let Some(challenge) = rejection.challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        // Past the hook's allowance of recorded rejections, the call is only counted.
        if state
            .inbound
            .rejected_records
            .check(&hook.id, now.saturating_mul(1000))
            .is_err()
        {
            return Ok(response);
        }
        // The body of a forged call is nobody's data: it is not kept, nor is the query.
        let record = ExecutionRecord {
            request: ExecutionRequest {
                method: parts.method.to_string(),
                path: record::masked_path(""),
                headers: record::rejected_headers(&headers, auth),
                query: Value::Object(Map::new()),
                body: Value::Null,
                body_truncated: false,
            },
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

    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let body_value = parse::parse_body(content_type, &bytes);
    let query = parse::parse_query(query_raw);
    let record_request = ExecutionRequest {
        method: parts.method.to_string(),
        path: record::masked_path(query_raw),
        headers: record::masked_headers(&headers, auth),
        query: query.clone(),
        body: record::recorded_body(&body_value, &bytes),
        body_truncated: bytes.len() > MAX_RECORDED_BODY,
    };
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
                variables: record::masked_variables(vars, &hook),
                trace: Vec::new(),
                response: Some(answer.clone()),
                error: None,
                duration_ms: None,
            };
            let mut execution = new_execution(&hook, ExecutionStatus::Queued, record, now);
            execution.next_attempt_at = Some(now);
            state.executions.commit(&execution).await?;
            state.wake.executions();
            Ok(answer_response(&answer, &execution.id))
        }
        Mode::Sync => {
            let compiled = state
                .inbound
                .compiled(&hook)
                .map_err(|e| ApiError::internal(&e))?;
            let effects = ServerEffects::new(state.committer.clone(), state.sender.clone());
            let span = tracing::info_span!(
                "execution",
                inbound_id = %hook.id,
                mode = "sync",
                execution_id = tracing::field::Empty
            );
            let ran = effects::run_bounded(&compiled, &hook, vars.clone(), &effects, Mode::Sync)
                .instrument(span.clone())
                .await;
            let duration_ms = u64::try_from(crate::now_ms() - now).unwrap_or(0);
            let mut record = ExecutionRecord {
                request: record_request,
                variables: record::masked_variables(vars, &hook),
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
            let secrets = record::secret_values(&headers, auth);
            let mut answer = answer;
            record::redact_response(&mut answer, &secrets);
            record.error = record.error.map(|e| record::redact_text(e, &secrets));
            record.trace = record::redact_serde(std::mem::take(&mut record.trace), &secrets);
            record.response = Some(answer.clone());
            let execution = new_execution(&hook, status, record, now);
            span.record("execution_id", tracing::field::display(&execution.id));
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
