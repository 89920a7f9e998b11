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
