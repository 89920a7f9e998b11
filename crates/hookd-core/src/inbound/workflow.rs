//! Inbound workflows: the nodes a hook runs, compiled once, run against [`Effects`].
//!
//! Nodes (stored as `{"type": "...", ...}`):
//! - `condition` (`expression`, `then`, `else`): runs one branch. An expression that fails to
//!   evaluate (for example a field of a missing value, `a.missing.x`) **fails the run**; it is
//!   not taken as false, so a broken condition never silently picks the `else` branch.
//! - `set` (`name`, `value` template): adds a string variable.
//! - `publish` (`event_type`, `model`?, `data` template that must render JSON, `save_as`?): an
//!   event into the outbound pipeline; with `save_as`, `{id, type}` of the event is saved.
//! - `request` (`method` = POST, `url`, `headers`, `body`? templates, `save_as`, `timeout_ms`?):
//!   an HTTP call; `{status, headers, body}` is saved under `save_as`. A non-2xx answer is a
//!   result, not a failure (branch on `x.status`); a transport error fails the run.
//! - `response` (`status` = 200, `headers`, `body` templates): the answer to a sync caller; it
//!   ends the run. In async mode the caller was already answered; the node is still recorded.
//!
//! Templates and conditions see the variables of [`super::parse::variables`] plus what earlier
//! nodes saved. A render error fails the run, naming the node's field
//! (`workflow[0].then[0].data: …`). Limits are checked at compile: [`MAX_DEPTH`], [`MAX_NODES`].
//!
//! [`Workflow::run`] does no IO itself: publishing, HTTP and the clock are [`Effects`].

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::spec::{field_error, Mode};
use super::{is_identifier, FieldError};
use crate::event::EventType;
use crate::route_call::is_http_token;
use crate::template::{Condition, Context, Template};

/// Deepest nesting of `condition` branches (top-level nodes are at depth 1).
pub const MAX_DEPTH: usize = 16;
/// Most nodes in one workflow, counting every branch.
pub const MAX_NODES: usize = 200;
/// A `request` node's timeout when it sets none.
pub const DEFAULT_REQUEST_TIMEOUT_MS: u32 = 10_000;

/// One workflow node, as stored and as the API takes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Node {
    Condition(ConditionNode),
    Set(SetNode),
    Publish(PublishNode),
    Request(RequestNode),
    Response(ResponseNode),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionNode {
    pub expression: String,
    #[serde(default)]
    pub then: Vec<Node>,
    #[serde(default, rename = "else")]
    pub otherwise: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetNode {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishNode {
    pub event_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub data: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub save_as: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestNode {
    #[serde(default = "post")]
    pub method: String,
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    pub save_as: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u32>,
}

fn post() -> String {
    "POST".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseNode {
    #[serde(default = "ok_status")]
    pub status: u16,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: String,
}

fn ok_status() -> u16 {
    200
}

/// The IO a workflow asks for, done by the server (the outbound pipeline, its guarded HTTP client,
/// its clock).
#[async_trait::async_trait]
pub trait Effects: Send + Sync {
    /// Publishes an event; returns its id.
    async fn publish(
        &self,
        event_type: &str,
        model: Option<&str>,
        data: Value,
    ) -> Result<String, String>;

    /// Makes an HTTP call. `Err` is a transport error (refused, DNS, TLS, timeout); any status
    /// the server answered is `Ok`.
    async fn request(&self, req: OutgoingRequest) -> Result<ResponseValue, String>;

    /// Milliseconds on some clock, for the trace's `duration_ms`.
    fn now_ms(&self) -> i64;
}

/// An HTTP call a `request` node makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    pub timeout: Duration,
}

/// What a `request` node saves: the body JSON-parsed when it is JSON, else the text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseValue {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: Value,
}

/// The answer a `response` node gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

/// How a run ended. Stored as `{"state": "succeeded"}` or `{"state": "failed", "error": …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RunStatus {
    Succeeded,
    /// `error` starts with the node's path: `workflow[0].then[1].url: …`.
    Failed {
        error: String,
    },
}

/// One executed node, in the execution record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeTrace {
    /// `workflow[0].then[1]`.
    pub path: String,
    pub node_type: String,
    /// What the node did: the condition's value, the variable set, the event id, the HTTP
    /// exchange, the response.
    pub result: Value,
    pub error: Option<String>,
    pub duration_ms: u64,
}

/// The outcome of [`Workflow::run`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub status: RunStatus,
    pub trace: Vec<NodeTrace>,
    /// Set when a `response` node ran. Without one a sync caller gets 200 on success, 500 on
    /// failure (NocoBase).
    pub response: Option<Response>,
    /// The variables when the run ended.
    pub vars: Map<String, Value>,
}

/// A workflow whose templates and conditions are compiled.
#[derive(Debug)]
pub struct Workflow {
    steps: Vec<Step>,
}

#[derive(Debug)]
struct Step {
    /// `workflow[0].then[1]`, for the trace and for errors.
    path: String,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Condition {
        expr: Condition,
        then: Vec<Step>,
        otherwise: Vec<Step>,
    },
    Set {
        name: String,
        value: Template,
    },
    Publish {
        event_type: String,
        model: Option<String>,
        data: Template,
        save_as: Option<String>,
    },
    /// Boxed: it holds the most templates, and would make every node as large.
    Request(Box<RequestStep>),
    Response {
        status: u16,
        headers: Vec<(String, Template)>,
        body: Template,
    },
}

#[derive(Debug)]
struct RequestStep {
    method: String,
    url: Template,
    headers: Vec<(String, Template)>,
    body: Option<Template>,
    save_as: String,
    timeout_ms: u32,
}

impl Kind {
    fn name(&self) -> &'static str {
        match self {
            Self::Condition { .. } => "condition",
            Self::Set { .. } => "set",
            Self::Publish { .. } => "publish",
            Self::Request(_) => "request",
            Self::Response { .. } => "response",
        }
    }
}

/// Compiles `nodes` (the hook's `workflow`), refusing the first bad field by its path.
pub fn compile(nodes: &[Node]) -> Result<Workflow, FieldError> {
    let mut count = 0;
    let steps = compile_list(nodes, "workflow", 1, &mut count)?;
    Ok(Workflow { steps })
}

fn compile_list(
    nodes: &[Node],
    path: &str,
    depth: usize,
    count: &mut usize,
) -> Result<Vec<Step>, FieldError> {
    nodes
        .iter()
        .enumerate()
        .map(|(i, node)| compile_node(node, format!("{path}[{i}]"), depth, count))
        .collect()
}

fn compile_node(
    node: &Node,
    path: String,
    depth: usize,
    count: &mut usize,
) -> Result<Step, FieldError> {
    *count += 1;
    if *count > MAX_NODES {
        let msg = format!("the workflow has more than {MAX_NODES} nodes");
        return Err(FieldError::new(path, msg));
    }
    if depth > MAX_DEPTH {
        let msg = format!("conditions are nested more than {MAX_DEPTH} deep");
        return Err(FieldError::new(path, msg));
    }
    let at = |field: &str| format!("{path}.{field}");
    let kind = match node {
        Node::Condition(c) => Kind::Condition {
            expr: Condition::compile(&c.expression)
                .map_err(|e| FieldError::new(at("expression"), format!("does not compile: {e}")))?,
            then: compile_list(&c.then, &at("then"), depth + 1, count)?,
            otherwise: compile_list(&c.otherwise, &at("else"), depth + 1, count)?,
        },
        Node::Set(s) => Kind::Set {
            name: identifier(&at("name"), &s.name)?,
            value: template(&at("value"), &s.value)?,
        },
        Node::Publish(p) => Kind::Publish {
            event_type: EventType::parse(&p.event_type)
                .map_err(|m| FieldError::new(at("event_type"), m))?
                .as_str()
                .to_owned(),
            model: p.model.clone(),
            data: template(&at("data"), &p.data)?,
            save_as: match &p.save_as {
                Some(name) => Some(identifier(&at("save_as"), name)?),
                None => None,
            },
        },
        Node::Request(r) => compile_request(r, &path)?,
        Node::Response(r) => {
            if !(100..=599).contains(&r.status) {
                return Err(FieldError::new(at("status"), "must be 100 to 599"));
            }
            Kind::Response {
                status: r.status,
                headers: header_templates(&at("headers"), &r.headers)?,
                body: template(&at("body"), &r.body)?,
            }
        }
    };
    Ok(Step { path, kind })
}

fn compile_request(r: &RequestNode, path: &str) -> Result<Kind, FieldError> {
    let at = |field: &str| format!("{path}.{field}");
    let method = r.method.to_ascii_uppercase();
    if !is_http_token(&method) {
        let msg = "must be an HTTP method such as POST";
        return Err(FieldError::new(at("method"), msg));
    }
    let timeout_ms = r.timeout_ms.unwrap_or(DEFAULT_REQUEST_TIMEOUT_MS);
    if !(1..=super::spec::MAX_TIMEOUT_MS).contains(&timeout_ms) {
        let msg = format!("must be 1 to {} milliseconds", super::spec::MAX_TIMEOUT_MS);
        return Err(FieldError::new(at("timeout_ms"), msg));
    }
    Ok(Kind::Request(Box::new(RequestStep {
        method,
        url: template(&at("url"), &r.url)?,
        headers: header_templates(&at("headers"), &r.headers)?,
        body: r
            .body
            .as_deref()
            .map(|b| template(&at("body"), b))
            .transpose()?,
        save_as: identifier(&at("save_as"), &r.save_as)?,
        timeout_ms,
    })))
}

fn template(field: &str, source: &str) -> Result<Template, FieldError> {
    Template::compile(source).map_err(|e| FieldError::new(field, format!("does not compile: {e}")))
}

fn identifier(field: &str, name: &str) -> Result<String, FieldError> {
    if name == "request" {
        return Err(FieldError::new(field, "`request` is reserved"));
    }
    if !is_identifier(name) {
        let msg = "must be an identifier (letters, digits and `_`, not starting with a digit)";
        return Err(FieldError::new(field, msg));
    }
    Ok(name.to_owned())
}

fn header_templates(
    field: &str,
    headers: &BTreeMap<String, String>,
) -> Result<Vec<(String, Template)>, FieldError> {
    headers
        .iter()
        .map(|(name, source)| {
            let at = format!("{field}.{name}");
            if !is_http_token(name) {
                return Err(FieldError::new(at, "is not a valid HTTP header name"));
            }
            Ok((name.clone(), template(&at, source)?))
        })
        .collect()
}

/// Finds where a workflow that serde refused went wrong, node by node, so the error names the
/// field (`workflow[0].then[1].status`) instead of only the outer node. `None` when every node
/// reads on its own (the caller keeps serde's error).
pub(crate) fn locate_error(workflow: &Value) -> Option<FieldError> {
    locate_in(workflow, "workflow")
}

fn locate_in(nodes: &Value, path: &str) -> Option<FieldError> {
    let Some(nodes) = nodes.as_array() else {
        return Some(FieldError::new(path, "must be a list of nodes"));
    };
    nodes.iter().enumerate().find_map(|(i, node)| {
        let path = format!("{path}[{i}]");
        let Some(fields) = node.as_object() else {
            return Some(FieldError::new(path, "must be an object with a `type`"));
        };
        let mut fields = fields.clone();
        let kind = fields.remove("type");
        let check = |fields: Map<String, Value>, f: fn(&Value) -> Result<(), FieldError>| {
            f(&Value::Object(fields)).err().map(|e| {
                let inner = if e.path.is_empty() {
                    path.clone()
                } else {
                    format!("{path}.{}", e.path)
                };
                FieldError::new(inner, e.message)
            })
        };
        match kind.as_ref().and_then(Value::as_str) {
            Some("condition") => {
                let then = fields.insert("then".into(), json!([]));
                let otherwise = fields.insert("else".into(), json!([]));
                check(fields, read::<ConditionNode>)
                    .or_else(|| then.and_then(|t| locate_in(&t, &format!("{path}.then"))))
                    .or_else(|| otherwise.and_then(|o| locate_in(&o, &format!("{path}.else"))))
            }
            Some("set") => check(fields, read::<SetNode>),
            Some("publish") => check(fields, read::<PublishNode>),
            Some("request") => check(fields, read::<RequestNode>),
            Some("response") => check(fields, read::<ResponseNode>),
            Some(other) => Some(FieldError::new(
                format!("{path}.type"),
                format!(
                    "unknown node type `{other}`; use condition, set, publish, request or response"
                ),
            )),
            None => Some(FieldError::new(format!("{path}.type"), "is required")),
        }
    })
}

/// Reads one node's fields with serde, the error's path relative to the node.
fn read<T: serde::de::DeserializeOwned>(fields: &Value) -> Result<(), FieldError> {
    serde_path_to_error::deserialize::<_, T>(fields)
        .map(|_| ())
        .map_err(|e| {
            let path = e.path().to_string();
            let path = if path == "." { String::new() } else { path };
            field_error(&path, &e.inner().to_string())
        })
}

/// What a node did and where the run goes next.
enum Flow<'w> {
    Next,
    Enter(&'w [Step]),
    Stop(Response),
}

impl Workflow {
    /// Runs the workflow over `vars` (from [`super::parse::variables`]). The first failing node
    /// ends the run; a `response` node ends it too.
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

    use super::*;

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

    fn compile_error(workflow: Value) -> FieldError {
        compile(&nodes(workflow)).unwrap_err()
    }

    #[test]
    fn compile_refuses_bad_nodes_by_path() {
        let e = compile_error(json!([{"type": "set", "name": "ok", "value": "x"},
            {"type": "condition", "expression": "true", "then": [
                {"type": "set", "name": "a", "value": "x"},
                {"type": "publish", "event_type": "a.b", "data": "line one\n{{ x }\n"}]}]));
        assert_eq!(e.path, "workflow[1].then[1].data");
        assert!(e.message.contains("line 2"), "{e}");
        for (workflow, path) in [
            (
                json!([{"type": "set", "name": "1x", "value": ""}]),
                "workflow[0].name",
            ),
            (
                json!([{"type": "set", "name": "request", "value": ""}]),
                "workflow[0].name",
            ),
            (
                json!([{"type": "request", "url": "u", "save_as": "a-b"}]),
                "workflow[0].save_as",
            ),
            (
                json!([{"type": "request", "url": "u", "save_as": "r", "timeout_ms": 0}]),
                "workflow[0].timeout_ms",
            ),
            (
                json!([{"type": "request", "url": "u", "save_as": "r", "method": "G T"}]),
                "workflow[0].method",
            ),
            (
                json!([{"type": "request", "url": "{{", "save_as": "r"}]),
                "workflow[0].url",
            ),
            (
                json!([{"type": "request", "url": "u", "save_as": "r", "headers": {"X": "{% x %}"}}]),
                "workflow[0].headers.X",
            ),
            (
                json!([{"type": "publish", "event_type": "bad type", "data": "{}"}]),
                "workflow[0].event_type",
            ),
            (
                json!([{"type": "response", "status": 600}]),
                "workflow[0].status",
            ),
            (
                json!([{"type": "condition", "expression": "a ==", "then": []}]),
                "workflow[0].expression",
            ),
        ] {
            assert_eq!(compile_error(workflow).path, path);
        }
    }

    #[test]
    fn compile_bounds_depth_and_size() {
        let leaf = json!({"type": "set", "name": "a", "value": "x"});
        let nest = |levels: usize| {
            (0..levels).fold(
                leaf.clone(),
                |inner, _| json!({"type": "condition", "expression": "true", "then": [inner]}),
            )
        };
        assert!(
            compile(&nodes(json!([nest(15)]))).is_ok(),
            "16 levels: 15 conditions and a leaf"
        );
        let e = compile_error(json!([nest(16)]));
        assert_eq!(e.path, format!("workflow[0]{}", ".then[0]".repeat(16)));
        assert!(compile(&nodes(Value::Array(vec![leaf.clone(); MAX_NODES]))).is_ok());
        let e = compile_error(Value::Array(vec![leaf; MAX_NODES + 1]));
        assert_eq!(e.path, format!("workflow[{MAX_NODES}]"));
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
