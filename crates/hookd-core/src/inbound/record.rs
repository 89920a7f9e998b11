//! A stored inbound hook and its executions, as the [`crate::Store`] keeps them.
//!
//! An execution is one inbound request. Sync executions are stored once, finished. Async ones are
//! stored `queued` before the caller is answered (that is the durability promise), then claimed by
//! a worker under a lease like deliveries, run, and finished; a worker that dies mid-run leaves
//! the lease to expire and the execution runs again.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::spec::{InboundSpec, Mode};
use super::workflow::{NodeTrace, Response};
use crate::ids::{ExecutionId, InboundId};

/// A stored inbound hook.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundHook {
    pub id: InboundId,
    /// The unguessable part of its public URL, `/hooks/{key}`.
    pub key: String,
    pub spec: InboundSpec,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Where an execution is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionStatus {
    /// Async: stored, waiting for a worker.
    Queued,
    /// Async: a worker holds its lease.
    Running,
    Succeeded,
    Failed,
    /// Sync: the caller got 504 before the workflow finished.
    TimedOut,
    /// Verification refused the request (401); no workflow ran.
    Rejected,
}

impl ExecutionStatus {
    pub const ALL: [Self; 6] = [
        Self::Queued,
        Self::Running,
        Self::Succeeded,
        Self::Failed,
        Self::TimedOut,
        Self::Rejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::TimedOut => "timed_out",
            Self::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Whether nothing more will happen to it.
    pub fn is_final(self) -> bool {
        !matches!(self, Self::Queued | Self::Running)
    }
}

/// The request as received: secret headers masked, the body parsed and capped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionRequest {
    pub method: String,
    /// The path and query string as called (`/hooks/{key}` with the key masked).
    pub path: String,
    /// Lower-case names; credentials (`authorization`, signature headers, cookies) masked.
    pub headers: BTreeMap<String, String>,
    pub query: Value,
    /// JSON or form bodies parsed, else the text; cut at the record cap.
    pub body: Value,
    /// The body was longer than the record cap and is cut.
    #[serde(default)]
    pub body_truncated: bool,
}

/// Everything recorded about an execution, stored as one JSON document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionRecord {
    pub request: ExecutionRequest,
    /// The workflow's variables when it started (parsed aliases and `request`).
    pub variables: Map<String, Value>,
    /// The nodes that ran, in order.
    #[serde(default)]
    pub trace: Vec<NodeTrace>,
    /// What the caller was answered.
    pub response: Option<Response>,
    /// Why it failed, timed out or was rejected.
    pub error: Option<String>,
    /// How long the workflow ran (the whole request for sync hooks).
    pub duration_ms: Option<u64>,
}

/// A stored execution.
#[derive(Debug, Clone, PartialEq)]
pub struct Execution {
    pub id: ExecutionId,
    pub hook_id: InboundId,
    pub mode: Mode,
    pub status: ExecutionStatus,
    pub record: ExecutionRecord,
    /// Runs started (async): more than one means a worker died mid-run.
    pub attempts: u32,
    /// Async: when it is due (queued) or when the lease ends (running).
    pub next_attempt_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}
