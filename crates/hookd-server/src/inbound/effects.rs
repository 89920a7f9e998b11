//! A workflow's effects on the world (events into the outbound pipeline, guarded HTTP calls)
//! and running a workflow under its hook's `timeout_ms`.

use std::time::Duration;

use axum::http::Method;
use hookd_core::inbound::record::{Execution, ExecutionStatus, InboundHook};
use hookd_core::inbound::workflow::{OutgoingRequest, ResponseValue};
use hookd_core::inbound::{Effects, Mode, Run, RunStatus};
use hookd_core::store::Enqueued;
use hookd_core::{EventType, NewEvent};
use serde_json::{Map, Value};

use super::runtime::{Compiled, Runtime};
use crate::publish::Committer;
use crate::worker::send::HttpSender;

/// Largest response body a `request` node keeps.
const MAX_REQUEST_NODE_BODY: usize = 1024 * 1024;

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
pub(super) async fn run_bounded(
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
