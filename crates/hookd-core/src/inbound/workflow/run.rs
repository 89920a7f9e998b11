//! Running a compiled workflow: one node after the other, into `condition` branches, until the
//! end, a `response` node or the first failure.

use std::time::Duration;

use serde_json::{json, Map, Value};

use super::{Effects, Kind, NodeTrace, OutgoingRequest, Response, Run, RunStatus, Step, Workflow};
use crate::inbound::spec::Mode;
use crate::template::{Context, Template};

/// What a node did and where the run goes next.
enum Flow<'w> {
    Next,
    Enter(&'w [Step]),
    Stop(Response),
}

impl Workflow {
    /// Runs the workflow over `vars` (from [`crate::inbound::parse::variables`]). The first
    /// failing node ends the run; a `response` node ends it too.
    pub async fn run(&self, vars: Map<String, Value>, effects: &dyn Effects, mode: Mode) -> Run {
        let mut run = Run {
            status: RunStatus::Succeeded,
            trace: Vec::new(),
            response: None,
            vars,
        };
        let mut stack = vec![self.steps.iter()];
        while let Some(next) = stack.last_mut().map(Iterator::next) {
            let Some(step) = next else {
                stack.pop();
                continue;
            };
            let started = effects.now_ms();
            let outcome = step.execute(&mut run.vars, effects, mode).await;
            let duration_ms = u64::try_from(effects.now_ms() - started).unwrap_or(0);
            let (result, flow) = match outcome {
                Ok(done) => done,
                Err((field, error)) => {
                    let error = format!("{}{field}: {error}", step.path);
                    run.trace
                        .push(step.trace(Value::Null, Some(error.clone()), duration_ms));
                    run.status = RunStatus::Failed { error };
                    break;
                }
            };
            run.trace.push(step.trace(result, None, duration_ms));
            match flow {
                Flow::Next => {}
                Flow::Enter(branch) => stack.push(branch.iter()),
                Flow::Stop(response) => {
                    run.response = Some(response);
                    break;
                }
            }
        }
        run
    }
}

/// A node's failure: the field (`.url`, or empty for the node itself) and the message.
type Failure = (&'static str, String);

impl Step {
    fn trace(&self, result: Value, error: Option<String>, duration_ms: u64) -> NodeTrace {
        NodeTrace {
            path: self.path.clone(),
            node_type: self.kind.name().to_owned(),
            result,
            error,
            duration_ms,
        }
    }

    async fn execute(
        &self,
        vars: &mut Map<String, Value>,
        effects: &dyn Effects,
        mode: Mode,
    ) -> Result<(Value, Flow<'_>), Failure> {
        let ctx = Context::from_value(&*vars);
        let render =
            |field: &'static str, t: &Template| t.render(&ctx).map_err(|e| (field, e.to_string()));
        match &self.kind {
            Kind::Condition {
                expr,
                then,
                otherwise,
            } => {
                let holds = expr
                    .evaluate(&ctx)
                    .map_err(|e| (".expression", e.to_string()))?;
                let (branch, steps) = if holds {
                    ("then", then)
                } else {
                    ("else", otherwise)
                };
                Ok((
                    json!({"value": holds, "branch": branch}),
                    Flow::Enter(steps),
                ))
            }
            Kind::Set { name, value } => {
                let value = Value::String(render(".value", value)?);
                vars.insert(name.clone(), value.clone());
                Ok((json!({"name": name, "value": value}), Flow::Next))
            }
            Kind::Publish {
                event_type,
                model,
                data,
                save_as,
            } => {
                let text = render(".data", data)?;
                let data: Value = serde_json::from_str(&text)
                    .map_err(|e| (".data", format!("did not render JSON: {e}")))?;
                let id = effects
                    .publish(event_type, model.as_deref(), data)
                    .await
                    .map_err(|e| ("", format!("publish failed: {e}")))?;
                let saved = json!({"id": id, "type": event_type});
                if let Some(name) = save_as {
                    vars.insert(name.clone(), saved.clone());
                }
                Ok((saved, Flow::Next))
            }
            Kind::Request(r) => {
                let req = OutgoingRequest {
                    method: r.method.clone(),
                    url: render(".url", &r.url)?,
                    headers: render_headers(&r.headers, &ctx)?,
                    body: r.body.as_ref().map(|b| render(".body", b)).transpose()?,
                    timeout: Duration::from_millis(u64::from(r.timeout_ms)),
                };
                let sent = json!({"method": req.method, "url": req.url});
                let response = effects
                    .request(req)
                    .await
                    .map_err(|e| ("", format!("request failed: {e}")))?;
                let saved = serde_json::to_value(&response).unwrap_or(Value::Null);
                vars.insert(r.save_as.clone(), saved.clone());
                Ok((json!({"request": sent, "response": saved}), Flow::Next))
            }
            Kind::Response {
                status,
                headers,
                body,
            } => {
                let response = Response {
                    status: *status,
                    headers: render_headers(headers, &ctx)?.into_iter().collect(),
                    body: render(".body", body)?,
                };
                let mut result = serde_json::to_value(&response).unwrap_or(Value::Null);
                if mode == Mode::Async {
                    result["note"] = "async hook: the caller was already answered".into();
                }
                Ok((result, Flow::Stop(response)))
            }
        }
    }
}

fn render_headers(
    headers: &[(String, Template)],
    ctx: &Context,
) -> Result<Vec<(String, String)>, Failure> {
    headers
        .iter()
        .map(|(name, t)| {
            let value = t
                .render(ctx)
                .map_err(|e| (".headers", format!("{name}: {e}")))?;
            if value.contains(['\r', '\n']) {
                return Err((".headers", format!("{name}: rendered a line break")));
            }
            Ok((name.clone(), value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::sync::Mutex;
    use std::task::{Context as TaskContext, Poll, Waker};

    use std::collections::BTreeMap;

    use super::*;
    use crate::inbound::workflow::{compile, Node, ResponseValue};

    /// Runs a future whose effects never wait (the fake below answers at once).
    fn block_on<F: Future>(f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        let mut cx = TaskContext::from_waker(Waker::noop());
        loop {
            if let Poll::Ready(out) = f.as_mut().poll(&mut cx) {
                return out;
            }
        }
    }

    /// Records what the workflow asked for and answers with `reply`.
    struct Fake {
        published: Mutex<Vec<(String, Option<String>, Value)>>,
        requests: Mutex<Vec<OutgoingRequest>>,
        reply: Result<ResponseValue, String>,
        clock: Mutex<i64>,
    }

    impl Fake {
        fn replying(reply: Result<ResponseValue, String>) -> Self {
            Self {
                published: Mutex::default(),
                requests: Mutex::default(),
                reply,
                clock: Mutex::new(1_000),
            }
        }

        fn new() -> Self {
            Self::replying(Ok(ResponseValue {
                status: 200,
                headers: BTreeMap::new(),
                body: json!({"ok": true}),
            }))
        }
    }

    #[async_trait::async_trait]
    impl Effects for Fake {
        async fn publish(
            &self,
            event_type: &str,
            model: Option<&str>,
            data: Value,
        ) -> Result<String, String> {
            let mut published = self.published.lock().unwrap();
            published.push((event_type.into(), model.map(Into::into), data));
            Ok(format!("evt_{}", published.len()))
        }

        async fn request(&self, req: OutgoingRequest) -> Result<ResponseValue, String> {
            self.requests.lock().unwrap().push(req);
            self.reply.clone()
        }

        fn now_ms(&self) -> i64 {
            let mut clock = self.clock.lock().unwrap();
            *clock += 5;
            *clock
        }
    }

    fn nodes(v: Value) -> Vec<Node> {
        serde_json::from_value(v).unwrap()
    }

    fn run(workflow: Value, vars: Value, effects: &Fake, mode: Mode) -> Run {
        let wf = compile(&nodes(workflow)).unwrap();
        let Value::Object(vars) = vars else {
            panic!("vars must be an object")
        };
        block_on(wf.run(vars, effects, mode))
    }

    /// The workflow of SPEC §4's example.
    fn payment() -> Value {
        json!([{"type": "condition", "expression": "amount > 100",
                "then": [{"type": "publish", "event_type": "payment.large", "model": "charge",
                          "data": "{{ request.body | tojson }}"},
                         {"type": "response", "status": 200, "body": "{\"accepted\": true}"}],
                "else": [{"type": "response", "status": 422, "body": "{\"error\": \"too small\"}"}]}])
    }

    #[test]
    fn the_spec_example_publishes_and_answers() {
        let fake = Fake::new();
        let vars = json!({"amount": 150, "request": {"body": {"amount": 150}}});
        let out = run(payment(), vars, &fake, Mode::Sync);
        assert_eq!(out.status, RunStatus::Succeeded);
        let response = out.response.unwrap();
        assert_eq!(
            (response.status, response.body.as_str()),
            (200, r#"{"accepted": true}"#)
        );
        let published = fake.published.lock().unwrap();
        assert_eq!(
            *published,
            [(
                "payment.large".into(),
                Some("charge".into()),
                json!({"amount": 150})
            )]
        );
        let paths: Vec<_> = out
            .trace
            .iter()
            .map(|t| (t.path.as_str(), t.node_type.as_str()))
            .collect();
        assert_eq!(
            paths,
            [
                ("workflow[0]", "condition"),
                ("workflow[0].then[0]", "publish"),
                ("workflow[0].then[1]", "response")
            ]
        );
        assert_eq!(
            out.trace[0].result,
            json!({"value": true, "branch": "then"})
        );
        assert_eq!(
            out.trace[1].result,
            json!({"id": "evt_1", "type": "payment.large"})
        );
        assert_eq!(out.trace[1].duration_ms, 5);

        let fake = Fake::new();
        let out = run(
            payment(),
            json!({"amount": 5, "request": {}}),
            &fake,
            Mode::Sync,
        );
        assert_eq!(out.response.unwrap().status, 422);
        assert!(fake.published.lock().unwrap().is_empty());
    }

    #[test]
    fn set_and_request_save_variables_and_non_2xx_is_a_result() {
        let fake = Fake::replying(Ok(ResponseValue {
            status: 503,
            headers: BTreeMap::from([("retry-after".into(), "5".into())]),
            body: json!("busy"),
        }));
        let workflow = json!([
            {"type": "set", "name": "greeting", "value": "hi {{ who }}"},
            {"type": "request", "url": "https://api.test/{{ who }}", "method": "put",
             "headers": {"X-Greeting": "{{ greeting }}"}, "body": "{\"n\": {{ n }}}", "save_as": "api"},
            {"type": "condition", "expression": "api.status >= 500",
             "then": [{"type": "response", "status": 502, "headers": {"X-Upstream": "{{ api.status }}"},
                       "body": "{{ api.body }}"}]},
            {"type": "set", "name": "never", "value": "x"}
        ]);
        let out = run(workflow, json!({"who": "bob", "n": 3}), &fake, Mode::Sync);
        assert_eq!(out.status, RunStatus::Succeeded);
        let requests = fake.requests.lock().unwrap();
        assert_eq!(
            *requests,
            [OutgoingRequest {
                method: "PUT".into(),
                url: "https://api.test/bob".into(),
                headers: vec![("X-Greeting".into(), "hi bob".into())],
                body: Some(r#"{"n": 3}"#.into()),
                timeout: Duration::from_millis(10_000),
            }]
        );
        assert_eq!(out.vars["greeting"], "hi bob");
        assert_eq!(
            out.vars["api"],
            json!({"status": 503, "headers": {"retry-after": "5"}, "body": "busy"})
        );
        assert!(
            !out.vars.contains_key("never"),
            "the response node ended the run"
        );
        let response = out.response.unwrap();
        assert_eq!(response.headers["X-Upstream"], "503");
        assert_eq!((response.status, response.body.as_str()), (502, "busy"));
    }

    fn failed(out: &Run) -> &str {
        match &out.status {
            RunStatus::Failed { error } => error,
            RunStatus::Succeeded => panic!("the run succeeded: {out:?}"),
        }
    }

    #[test]
    fn failures_end_the_run_and_name_the_node() {
        let fake = Fake::replying(Err("connection refused".into()));
        let transport = json!([{"type": "request", "url": "https://x.test", "save_as": "r"},
                               {"type": "set", "name": "after", "value": "x"}]);
        let out = run(transport, json!({}), &fake, Mode::Sync);
        assert_eq!(
            failed(&out),
            "workflow[0]: request failed: connection refused"
        );
        assert_eq!(out.trace.len(), 1);
        assert_eq!(out.trace[0].error.as_deref(), Some(failed(&out)));
        assert!(out.response.is_none() && !out.vars.contains_key("after"));

        let fake = Fake::new();
        let render = json!([{"type": "condition", "expression": "true",
                             "then": [{"type": "set", "name": "a", "value": "{{ missing.deeper }}"}]}]);
        let out = run(render, json!({}), &fake, Mode::Sync);
        assert!(
            failed(&out).starts_with("workflow[0].then[0].value: line 1"),
            "{}",
            failed(&out)
        );

        let not_json = json!([{"type": "publish", "event_type": "a.b", "data": "{{ text }}"}]);
        let out = run(not_json, json!({"text": "plain"}), &fake, Mode::Sync);
        assert!(
            failed(&out).starts_with("workflow[0].data: did not render JSON"),
            "{}",
            failed(&out)
        );
        assert!(fake.published.lock().unwrap().is_empty());

        // A condition that cannot be evaluated fails the run instead of taking `else`.
        let broken = json!([{"type": "condition", "expression": "missing.deeper == 1",
                             "else": [{"type": "set", "name": "took_else", "value": "yes"}]}]);
        let out = run(broken, json!({}), &fake, Mode::Sync);
        assert!(
            failed(&out).starts_with("workflow[0].expression: "),
            "{}",
            failed(&out)
        );
        assert!(!out.vars.contains_key("took_else"));
    }

    #[test]
    fn in_async_mode_the_response_is_recorded_too() {
        let fake = Fake::new();
        let workflow = json!([{"type": "response", "status": 201, "body": "late"}]);
        let out = run(workflow, json!({}), &fake, Mode::Async);
        assert_eq!(out.response.map(|r| r.status), Some(201));
        assert!(out.trace[0].result["note"].is_string());
    }

    #[test]
    fn publish_may_save_its_event() {
        let fake = Fake::new();
        let workflow = json!([{"type": "publish", "event_type": "a.b", "data": "[1]", "save_as": "evt"},
                              {"type": "set", "name": "id", "value": "{{ evt.id }}"}]);
        let out = run(workflow, json!({}), &fake, Mode::Sync);
        assert_eq!(out.vars["id"], "evt_1");
    }

    #[test]
    fn the_run_future_can_be_spawned() {
        fn assert_send<T: Send>(_: &T) {}
        let wf = compile(&[]).unwrap();
        let fake = Fake::new();
        let fut = wf.run(Map::new(), &fake, Mode::Sync);
        assert_send(&fut);
        assert_eq!(block_on(fut).status, RunStatus::Succeeded);
    }
}
