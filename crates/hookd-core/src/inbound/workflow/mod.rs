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
use serde_json::{Map, Value};

use crate::template::{Condition, Template};

mod compile;
mod run;

pub use compile::compile;
pub(crate) use compile::locate_error;

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
