//! Inbound hooks (SPEC §4 "Inbound hooks"): URLs that third parties call, verified, parsed and run
//! through a small workflow.
//!
//! - [`spec`]: the stored definition of a hook, read from the API's JSON with every error naming
//!   its field, and its masked copy for API output.
//! - [`mod@verify`]: basic auth and the signature presets, over the raw body bytes.
//! - [`parse`]: the request as workflow variables (NocoBase's header, query and body paths).
//! - [`sample`]: the paths a sample URL or JSON offers (the API's parse button).
//! - [`workflow`]: the nodes, compiled once, run against an [`workflow::Effects`] that does the IO.
//! - [`record`]: a stored hook and its executions, as the [`crate::Store`] keeps them.
//!
//! Like the rest of the crate this does no IO: no sockets, no clock (`now_secs` and
//! [`workflow::Effects::now_ms`] come from the caller), and it knows no HTTP library. The server
//! owns the URL key, the body limit, concurrency, timeouts and storage of executions.

pub mod parse;
pub mod record;
pub mod sample;
pub mod spec;
pub mod verify;
pub mod workflow;

use std::fmt;

pub use parse::{variables, ParseSpec};
pub use sample::{sample_paths, SamplePaths};
pub use spec::{InboundAuth, InboundSpec, Mode, SignaturePreset};
pub use verify::{verify, Rejection, RejectionCode};
pub use workflow::{compile, Effects, Run, RunStatus, Workflow};

/// A refused field of a hook definition: where (`auth.secret`, `parse.body[0].path`,
/// `workflow[0].then[1].expression`) and why. The server answers it as a 422 with `field`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct FieldError {
    /// The JSON path of the field, as the API's client wrote it.
    pub path: String,
    pub message: String,
}

impl FieldError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Whether `s` can name a variable in templates: an ASCII letter or `_`, then letters, digits or
/// `_`, at most 64 characters.
pub(crate) fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    s.len() <= 64
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
