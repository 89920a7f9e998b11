//! The stored definition of an inbound hook: the API body of SPEC §4 "Inbound hooks".
//!
//! [`InboundSpec::from_json`] is the one way in from the API: it refuses unknown fields, fills the
//! defaults, upper-cases `methods`, and checks every field, including compiling the response
//! template and the workflow. Each error is a [`FieldError`] with the JSON path of the field
//! (`auth.secret`, `methods[1]`, `parse.body[0].path`, `workflow[0].then[1].expression`).
//!
//! Secrets (`auth.password`, `auth.secret`) are [`SigningSecret`]s, so `Debug` masks them;
//! [`InboundSpec::masked`] is the copy for API output. A `public_key` is not secret and is shown.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::parse::ParseSpec;
use super::workflow::{self, Node};
use super::FieldError;
use crate::route_call::is_http_token;
use crate::signature::{ed25519, HmacEncoding, SigningSecret};
use crate::template::{Context, Template, TemplateError};

/// What secrets are replaced with in [`InboundSpec::masked`].
pub const MASK: &str = "****";
/// How long a sync caller waits for the workflow, when not configured.
pub const DEFAULT_TIMEOUT_MS: u32 = 10_000;
/// The longest `timeout_ms` accepted (five minutes).
pub const MAX_TIMEOUT_MS: u32 = 300_000;
/// Executions of one hook running at once, when not configured; past it callers get 429.
pub const DEFAULT_MAX_CONCURRENCY: u32 = 16;
/// Longest hook name accepted.
pub const MAX_NAME_LEN: usize = 200;

/// Everything about an inbound hook that its owner sets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundSpec {
    pub name: String,
    /// An inactive hook answers 404, as if it did not exist.
    #[serde(default = "yes")]
    pub active: bool,
    /// Upper-cased HTTP method tokens; other methods get 405 with `Allow`.
    #[serde(default = "default_methods")]
    pub methods: Vec<String>,
    #[serde(default)]
    pub auth: InboundAuth,
    #[serde(default)]
    pub parse: ParseSpec,
    #[serde(default)]
    pub mode: Mode,
    /// The answer in async mode, given before the workflow runs.
    #[serde(default)]
    pub response: ResponseSpec,
    #[serde(default = "default_timeout")]
    pub timeout_ms: u32,
    #[serde(default = "default_concurrency")]
    pub max_concurrency: u32,
    #[serde(default)]
    pub workflow: Vec<Node>,
}

fn yes() -> bool {
    true
}

fn default_methods() -> Vec<String> {
    vec!["POST".into()]
}

fn default_timeout() -> u32 {
    DEFAULT_TIMEOUT_MS
}

fn default_concurrency() -> u32 {
    DEFAULT_MAX_CONCURRENCY
}

/// How a caller proves who it is. Stored as `{"type": "...", ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum InboundAuth {
    /// Anyone with the URL (its key is unguessable).
    None {},
    /// HTTP Basic; a mismatch answers 401 with `WWW-Authenticate`.
    Basic {
        username: String,
        password: SigningSecret,
    },
    /// A signature over the raw body, in the way a known sender signs.
    Signature(SignaturePreset),
}

impl Default for InboundAuth {
    fn default() -> Self {
        Self::None {}
    }
}

/// The signature schemes a sender may use. Stored as `{"preset": "...", ...}` beside
/// `"type": "signature"`. See [`mod@super::verify`] for what each checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "preset", rename_all = "snake_case", deny_unknown_fields)]
pub enum SignaturePreset {
    /// `X-Hub-Signature-256: sha256=<hex>`.
    Github { secret: SigningSecret },
    /// `Stripe-Signature: t=…,v1=…`; the whole secret string (`whsec_…`) is the key.
    Stripe { secret: SigningSecret },
    /// `X-Slack-Signature: v0=<hex>` with `X-Slack-Request-Timestamp`.
    Slack { secret: SigningSecret },
    /// `X-Shopify-Hmac-Sha256: <base64>`.
    Shopify { secret: SigningSecret },
    /// Standard Webhooks: `v1` with a `whsec_` secret, or `v1a` with a trusted `whpk_` key.
    /// Exactly one of the two is set.
    Standard {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret: Option<SigningSecret>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        public_key: Option<String>,
    },
    /// An HMAC of the body alone in a header of the owner's choosing.
    Hmac {
        secret: SigningSecret,
        header: String,
        #[serde(default)]
        encoding: HmacEncoding,
        /// Text before the encoded HMAC, such as `sha256=`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prefix: Option<String>,
        #[serde(default)]
        algorithm: HmacAlgorithm,
    },
}

/// The hash of a generic `hmac` preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HmacAlgorithm {
    #[default]
    Sha256,
    Sha512,
}

/// When the caller is answered: after the workflow (`sync`), or at once (`async`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Sync,
    #[default]
    Async,
}

/// The configured answer of an async hook (NocoBase's default: 200 `ok`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseSpec {
    #[serde(default = "ok_status")]
    pub status: u16,
    /// Fixed header values (not templates).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A template over the request's variables ([`super::parse::variables`]).
    #[serde(default = "ok_body")]
    pub body: String,
}

fn ok_status() -> u16 {
    200
}

fn ok_body() -> String {
    "ok".into()
}

impl Default for ResponseSpec {
    fn default() -> Self {
        Self {
            status: ok_status(),
            headers: BTreeMap::new(),
            body: ok_body(),
        }
    }
}

/// [`ResponseSpec`] with its body template compiled.
#[derive(Debug)]
pub struct AsyncResponse {
    status: u16,
    headers: BTreeMap<String, String>,
    body: Template,
}

impl AsyncResponse {
    /// The answer for one request: the body rendered over its variables
    /// ([`super::parse::variables`]). A render error is the server's to answer (500).
    pub fn render(&self, vars: &Map<String, Value>) -> Result<workflow::Response, TemplateError> {
        Ok(workflow::Response {
            status: self.status,
            headers: self.headers.clone(),
            body: self.body.render(&Context::from_value(vars))?,
        })
    }
}

impl InboundSpec {
    /// Reads and checks an API body for a new hook.
    pub fn from_json(value: &Value) -> Result<Self, FieldError> {
        Self::read(value, None)
    }

    /// Reads and checks an API body that replaces `stored`. A password or secret sent back as
    /// [`MASK`] (a client saving what it read) keeps the stored one, as long as the auth type
    /// and preset are unchanged.
    pub fn from_json_replacing(value: &Value, stored: &InboundSpec) -> Result<Self, FieldError> {
        Self::read(value, Some(stored))
    }

    fn read(value: &Value, stored: Option<&InboundSpec>) -> Result<Self, FieldError> {
        let mut spec: Self =
            serde_path_to_error::deserialize(value).map_err(|e| locate(value, e))?;
        for m in &mut spec.methods {
            m.make_ascii_uppercase();
        }
        if let Some(stored) = stored {
            spec.auth.restore_masked(&stored.auth);
            restore_masked_headers(&mut spec.workflow, &stored.workflow)?;
        }
        spec.check()?;
        Ok(spec)
    }

    /// Checks every field; [`Self::from_json`] calls it.
    pub fn check(&self) -> Result<(), FieldError> {
        let name_len = self.name.trim().chars().count();
        if name_len == 0 || name_len > MAX_NAME_LEN {
            let msg = format!("must be 1 to {MAX_NAME_LEN} characters");
            return Err(FieldError::new("name", msg));
        }
        if self.methods.is_empty() {
            return Err(FieldError::new("methods", "must list at least one method"));
        }
        for (i, m) in self.methods.iter().enumerate() {
            if !is_http_token(m) {
                let msg = "must be an HTTP method such as POST";
                return Err(FieldError::new(format!("methods[{i}]"), msg));
            }
        }
        check_auth(&self.auth)?;
        self.parse.check()?;
        check_response(&self.response)?;
        if !(1..=MAX_TIMEOUT_MS).contains(&self.timeout_ms) {
            let msg = format!("must be 1 to {MAX_TIMEOUT_MS} milliseconds");
            return Err(FieldError::new("timeout_ms", msg));
        }
        if self.max_concurrency == 0 {
            return Err(FieldError::new("max_concurrency", "must be at least 1"));
        }
        workflow::compile(&self.workflow).map(|_| ())
    }

    /// The answer of an async hook, compiled once per version of the hook (it is rendered for
    /// every request).
    pub fn async_response(&self) -> Result<AsyncResponse, TemplateError> {
        Ok(AsyncResponse {
            status: self.response.status,
            headers: self.response.headers.clone(),
            body: Template::compile(&self.response.body)?,
        })
    }

    /// Every secret of the spec with its field path: the verification password or secret
    /// (`auth.password`, `auth.secret`) and the credential-like header values of request nodes
    /// (`workflow[1].then[0].headers.Authorization`). The stores seal exactly these at rest.
    pub fn secrets_mut(&mut self) -> Vec<(String, &mut String)> {
        let mut out = Vec::new();
        let field = match &self.auth {
            InboundAuth::Basic { .. } => "auth.password",
            _ => "auth.secret",
        };
        if let Some(secret) = self.auth.secret_mut() {
            out.push((field.to_owned(), secret.stored_text_mut()));
        }
        let mut requests = Vec::new();
        request_nodes(&mut self.workflow, "workflow", &mut requests);
        for (at, node) in requests {
            for (name, value) in node.headers.iter_mut() {
                if crate::outbound::is_sensitive_header(name) {
                    out.push((format!("{at}.headers.{name}"), value));
                }
            }
        }
        out
    }

    /// A copy for API output: the password or secret replaced by [`MASK`].
    pub fn masked(&self) -> Self {
        let mut out = self.clone();
        if let Some(secret) = out.auth.secret_mut() {
            *secret = SigningSecret::parse_plain(MASK).expect("the mask is not empty");
        }
        let mut requests = Vec::new();
        request_nodes(&mut out.workflow, "workflow", &mut requests);
        for (_, node) in requests {
            for (name, value) in node.headers.iter_mut() {
                if crate::outbound::is_sensitive_header(name) {
                    *value = MASK.to_owned();
                }
            }
        }
        out
    }
}

/// Every request node of `nodes` (conditions' branches included) with its path
/// (`workflow[1].then[0]`).
fn request_nodes<'a>(
    nodes: &'a mut [Node],
    path: &str,
    out: &mut Vec<(String, &'a mut workflow::RequestNode)>,
) {
    for (i, node) in nodes.iter_mut().enumerate() {
        let at = format!("{path}[{i}]");
        match node {
            Node::Request(r) => out.push((at, r)),
            Node::Condition(c) => {
                request_nodes(&mut c.then, &format!("{at}.then"), out);
                request_nodes(&mut c.otherwise, &format!("{at}.else"), out);
            }
            _ => {}
        }
    }
}

/// A credential header a PATCH sent back as [`MASK`] keeps its stored value: the request node
/// at the same place (and the same header) in the stored workflow has it. One with no such
/// stored value is refused, so the mask itself is never stored as a credential.
fn restore_masked_headers(workflow: &mut [Node], stored: &[Node]) -> Result<(), FieldError> {
    let mut stored = stored.to_vec();
    let mut old = Vec::new();
    request_nodes(&mut stored, "workflow", &mut old);
    let old: BTreeMap<String, &workflow::RequestNode> =
        old.into_iter().map(|(at, r)| (at, &*r)).collect();
    let mut new = Vec::new();
    request_nodes(workflow, "workflow", &mut new);
    for (at, node) in new {
        for (name, value) in node.headers.iter_mut() {
            if value != MASK || !crate::outbound::is_sensitive_header(name) {
                continue;
            }
            let kept = old.get(&at).and_then(|o| o.headers.get(name));
            match kept {
                Some(v) => *value = v.clone(),
                None => {
                    let msg = "is masked but no stored value is at this place: send the value";
                    return Err(FieldError::new(format!("{at}.headers.{name}"), msg));
                }
            }
        }
    }
    Ok(())
}

impl InboundAuth {
    /// The password or secret, when this auth has one (a `public_key` is not secret).
    fn secret_mut(&mut self) -> Option<&mut SigningSecret> {
        match self {
            Self::None {} => None,
            Self::Basic { password, .. } => Some(password),
            Self::Signature(
                SignaturePreset::Github { secret }
                | SignaturePreset::Stripe { secret }
                | SignaturePreset::Slack { secret }
                | SignaturePreset::Shopify { secret }
                | SignaturePreset::Hmac { secret, .. },
            ) => Some(secret),
            Self::Signature(SignaturePreset::Standard { secret, .. }) => secret.as_mut(),
        }
    }

    /// Replaces a [`MASK`]ed secret with the one of `stored`, when both are the same kind.
    fn restore_masked(&mut self, stored: &InboundAuth) {
        let same_kind = match (&*self, stored) {
            (Self::Signature(new), Self::Signature(old)) => {
                std::mem::discriminant(new) == std::mem::discriminant(old)
            }
            (new, old) => std::mem::discriminant(new) == std::mem::discriminant(old),
        };
        let mut stored = stored.clone();
        match (self.secret_mut(), stored.secret_mut()) {
            (Some(new), Some(old)) if same_kind && new.expose() == MASK => *new = old.clone(),
            _ => {}
        }
    }
}

fn check_auth(auth: &InboundAuth) -> Result<(), FieldError> {
    let empty = |field: &str| FieldError::new(field, "must not be empty");
    match auth {
        InboundAuth::None {} => Ok(()),
        InboundAuth::Basic { username, password } => {
            if username.is_empty() {
                return Err(empty("auth.username"));
            }
            if username.contains(':') {
                return Err(FieldError::new("auth.username", "must not contain `:`"));
            }
            if password.expose().is_empty() {
                return Err(empty("auth.password"));
            }
            Ok(())
        }
        InboundAuth::Signature(SignaturePreset::Standard { secret, public_key }) => {
            match (secret, public_key) {
                (Some(s), None) => SigningSecret::parse_standard(s.expose())
                    .map(|_| ())
                    .map_err(|m| FieldError::new("auth.secret", m)),
                (None, Some(k)) => {
                    ed25519::parse_public_key(k).map_err(|m| FieldError::new("auth.public_key", m))
                }
                _ => Err(FieldError::new(
                    "auth.secret",
                    "give either `secret` (whsec_…, v1) or `public_key` (whpk_…, v1a)",
                )),
            }
        }
        InboundAuth::Signature(SignaturePreset::Hmac { secret, header, .. }) => {
            if !is_http_token(header) {
                let msg = "is not a valid HTTP header name";
                return Err(FieldError::new("auth.header", msg));
            }
            if secret.expose().is_empty() {
                return Err(empty("auth.secret"));
            }
            Ok(())
        }
        InboundAuth::Signature(
            SignaturePreset::Github { secret }
            | SignaturePreset::Stripe { secret }
            | SignaturePreset::Slack { secret }
            | SignaturePreset::Shopify { secret },
        ) if secret.expose().is_empty() => Err(empty("auth.secret")),
        InboundAuth::Signature(_) => Ok(()),
    }
}

fn check_response(r: &ResponseSpec) -> Result<(), FieldError> {
    if !(100..=599).contains(&r.status) {
        return Err(FieldError::new("response.status", "must be 100 to 599"));
    }
    for (name, value) in &r.headers {
        let field = format!("response.headers.{name}");
        if !is_http_token(name) {
            return Err(FieldError::new(field, "is not a valid HTTP header name"));
        }
        if value.contains(['\r', '\n']) {
            return Err(FieldError::new(field, "must not contain line breaks"));
        }
    }
    Template::compile(&r.body)
        .map(|_| ())
        .map_err(|e| FieldError::new("response.body", format!("does not compile: {e}")))
}

/// Turns a deserialisation error into the most precise [`FieldError`]: a missing or unknown
/// field is named in the path, and errors inside the workflow (whose tagged nodes hide the
/// path from serde) are found again node by node.
fn locate(value: &Value, e: serde_path_to_error::Error<serde_json::Error>) -> FieldError {
    let path = e.path().to_string();
    let path = if path == "." { String::new() } else { path };
    if path.starts_with("workflow") {
        if let Some(found) = value.get("workflow").and_then(workflow::locate_error) {
            return found;
        }
    }
    field_error(&path, &e.inner().to_string())
}

/// A serde message at `path`, with `missing field `x`` and `unknown field `x`` moved into the path.
pub(crate) fn field_error(path: &str, message: &str) -> FieldError {
    for (lead, msg) in [
        ("missing field `", "is required"),
        ("unknown field `", "is not a known field"),
    ] {
        let Some(rest) = message.strip_prefix(lead) else {
            continue;
        };
        let Some((name, _)) = rest.split_once('`') else {
            continue;
        };
        // serde_path_to_error already names unknown fields of plain structs, not of tagged enums.
        let field = if path.is_empty() {
            name.to_owned()
        } else if path == name || path.ends_with(&format!(".{name}")) {
            path.to_owned()
        } else {
            format!("{path}.{name}")
        };
        let msg = if lead.starts_with("unknown") {
            message.to_owned()
        } else {
            msg.to_owned()
        };
        return FieldError::new(field, msg);
    }
    FieldError::new(path, message)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The example of SPEC §4 "Inbound hooks", with a real-looking secret.
    fn spec_example() -> Value {
        json!({
          "name": "payment callback",
          "active": true,
          "methods": ["POST"],
          "auth": {"type": "signature", "preset": "stripe", "secret": "whsec_test_secret"},
          "parse": {"headers": [{"name": "X-Request-Id", "alias": "request_id"}],
                    "query": [{"path": "order", "alias": "order_id"}],
                    "body": [{"path": "data.object.amount", "alias": "amount"}]},
          "mode": "sync",
          "response": {"status": 200, "headers": {}, "body": "ok"},
          "timeout_ms": 10000,
          "max_concurrency": 16,
          "workflow": [
            {"type": "condition", "expression": "amount > 100",
             "then": [{"type": "publish", "event_type": "payment.large", "data": "{{ request.body | tojson }}"},
                      {"type": "response", "status": 200, "body": "{\"accepted\": true}"}],
             "else": [{"type": "response", "status": 422, "body": "{\"error\": \"too small\"}"}]}
          ]
        })
    }

    /// An edit of the example that makes it invalid.
    type Patch = Box<dyn Fn(&mut Value)>;

    fn error_of(mut patch: impl FnMut(&mut Value)) -> FieldError {
        let mut v = spec_example();
        patch(&mut v);
        InboundSpec::from_json(&v).unwrap_err()
    }

    #[test]
    fn the_spec_example_reads_and_round_trips() {
        let spec = InboundSpec::from_json(&spec_example()).unwrap();
        assert_eq!(spec.mode, Mode::Sync);
        assert_eq!(spec.parse.body[0].alias.as_deref(), Some("amount"));
        let stored = serde_json::to_value(&spec).unwrap();
        assert_eq!(InboundSpec::from_json(&stored).unwrap(), spec);
    }

    #[test]
    fn defaults_are_nocobase_s() {
        let spec =
            InboundSpec::from_json(&json!({"name": "n", "methods": ["post", "put"]})).unwrap();
        assert!(spec.active);
        assert_eq!(spec.methods, ["POST", "PUT"]);
        assert_eq!(spec.auth, InboundAuth::None {});
        assert_eq!(spec.mode, Mode::Async);
        assert_eq!(spec.response, ResponseSpec::default());
        assert_eq!(
            (spec.response.status, spec.response.body.as_str()),
            (200, "ok")
        );
        assert_eq!((spec.timeout_ms, spec.max_concurrency), (10_000, 16));
        let spec = InboundSpec::from_json(&json!({"name": "n"})).unwrap();
        assert_eq!(spec.methods, ["POST"]);
    }

    #[test]
    fn errors_name_the_exact_field() {
        let cases: Vec<(&str, Patch)> = vec![
            (
                "auth.secret",
                Box::new(|v| v["auth"] = json!({"type": "signature", "preset": "github"})),
            ),
            ("auth.secret", Box::new(|v| v["auth"]["secret"] = json!(""))),
            ("auth.bogus", Box::new(|v| v["auth"]["bogus"] = json!(1))),
            (
                "auth.password",
                Box::new(|v| v["auth"] = json!({"type": "basic", "username": "u", "password": ""})),
            ),
            (
                "auth.username",
                Box::new(|v| {
                    v["auth"] = json!({"type": "basic", "username": "a:b", "password": "p"})
                }),
            ),
            (
                "auth.secret",
                Box::new(|v| {
                    v["auth"] =
                        json!({"type": "signature", "preset": "standard", "secret": "whsec_!!"})
                }),
            ),
            (
                "auth.public_key",
                Box::new(|v| {
                    v["auth"] = json!({"type": "signature", "preset": "standard", "public_key": "whpk_AAAA"})
                }),
            ),
            (
                "auth.secret",
                Box::new(|v| v["auth"] = json!({"type": "signature", "preset": "standard"})),
            ),
            (
                "auth.header",
                Box::new(|v| {
                    v["auth"] = json!({"type": "signature", "preset": "hmac", "secret": "s", "header": "a b"})
                }),
            ),
            ("bogus", Box::new(|v| v["bogus"] = json!(true))),
            ("name", Box::new(|v| v["name"] = json!(" "))),
            (
                "methods[1]",
                Box::new(|v| v["methods"] = json!(["POST", "GE T"])),
            ),
            ("methods", Box::new(|v| v["methods"] = json!([]))),
            (
                "parse.body[0].path",
                Box::new(|v| v["parse"]["body"][0]["path"] = json!("data..amount")),
            ),
            (
                "parse.query[0].extra",
                Box::new(|v| v["parse"]["query"][0]["extra"] = json!(1)),
            ),
            ("timeout_ms", Box::new(|v| v["timeout_ms"] = json!(300_001))),
            ("timeout_ms", Box::new(|v| v["timeout_ms"] = json!(0))),
            (
                "max_concurrency",
                Box::new(|v| v["max_concurrency"] = json!(0)),
            ),
            ("mode", Box::new(|v| v["mode"] = json!("later"))),
            (
                "response.status",
                Box::new(|v| v["response"]["status"] = json!(99)),
            ),
            (
                "response.body",
                Box::new(|v| v["response"]["body"] = json!("{% if %}")),
            ),
            (
                "response.headers.bad header",
                Box::new(|v| v["response"]["headers"] = json!({"bad header": "x"})),
            ),
            (
                "workflow[0].expression",
                Box::new(|v| v["workflow"][0]["expression"] = json!("amount >")),
            ),
            (
                "workflow[0].then[1].status",
                Box::new(|v| v["workflow"][0]["then"][1]["status"] = json!("abc")),
            ),
            (
                "workflow[0].then[0].bogus",
                Box::new(|v| v["workflow"][0]["then"][0]["bogus"] = json!(1)),
            ),
            (
                "workflow[0].then[0].event_type",
                Box::new(|v| v["workflow"][0]["then"][0]["event_type"] = json!("a..b")),
            ),
            (
                "workflow[0].else[0].type",
                Box::new(|v| v["workflow"][0]["else"][0]["type"] = json!("email")),
            ),
            (
                "workflow[0].then[0].data",
                Box::new(|v| {
                    v["workflow"][0]["then"][0]
                        .as_object_mut()
                        .unwrap()
                        .remove("data")
                        .map(|_| ())
                        .unwrap()
                }),
            ),
        ];
        for (want, patch) in cases {
            let e = error_of(patch);
            assert_eq!(e.path, want, "{e}");
        }
        let e = error_of(|v| v["workflow"][0]["expression"] = json!("amount >"));
        assert!(e.message.starts_with("does not compile: line 1"), "{e}");
    }

    #[test]
    fn secrets_are_masked_in_output_and_debug() {
        let basic = json!({"name": "n", "auth": {"type": "basic", "username": "u", "password": "pw-secret"}});
        let stripe = spec_example();
        let standard = json!({"name": "n", "auth": {"type": "signature", "preset": "standard",
                             "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}});
        let hmac = json!({"name": "n", "auth": {"type": "signature", "preset": "hmac", "secret": "hush-secret",
                         "header": "X-Sig", "encoding": "hex", "prefix": "sha256=", "algorithm": "sha512"}});
        for (v, secret) in [
            (basic, "pw-secret"),
            (stripe, "whsec_test_secret"),
            (standard, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            (hmac, "hush-secret"),
        ] {
            let spec = InboundSpec::from_json(&v).unwrap();
            assert!(
                serde_json::to_string(&spec).unwrap().contains(secret),
                "stored as is"
            );
            let out = serde_json::to_string(&spec.masked()).unwrap();
            assert!(!out.contains(secret) && out.contains(MASK), "{out}");
            assert!(!format!("{spec:?}").contains(secret));
        }
    }

    #[test]
    fn a_replace_that_sends_the_mask_back_keeps_the_secret() {
        let standard = json!({"name": "n", "auth": {"type": "signature", "preset": "standard",
                             "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}});
        let stored = InboundSpec::from_json(&standard).unwrap();
        let mut echoed = serde_json::to_value(stored.masked()).unwrap();
        echoed["name"] = json!("renamed");
        let replaced = InboundSpec::from_json_replacing(&echoed, &stored).unwrap();
        assert_eq!(
            (replaced.name.as_str(), &replaced.auth),
            ("renamed", &stored.auth)
        );
        // A create, or a change of preset, takes the mask literally (and a whsec_ refuses it).
        assert_eq!(
            InboundSpec::from_json(&echoed).unwrap_err().path,
            "auth.secret"
        );
        let github =
            json!({"name": "n", "auth": {"type": "signature", "preset": "github", "secret": MASK}});
        let replaced = InboundSpec::from_json_replacing(&github, &stored).unwrap();
        assert_eq!(
            replaced.auth,
            InboundAuth::Signature(SignaturePreset::Github {
                secret: SigningSecret::parse_plain(MASK).unwrap(),
            })
        );
    }

    #[test]
    fn the_async_response_renders_over_the_request() {
        let mut v = spec_example();
        v["response"] = json!({"status": 202, "headers": {"X-Kind": "hookd"},
                               "body": "got {{ order_id }}"});
        let spec = InboundSpec::from_json(&v).unwrap();
        let vars = json!({"order_id": "42"});
        let r = spec
            .async_response()
            .unwrap()
            .render(vars.as_object().unwrap())
            .unwrap();
        assert_eq!((r.status, r.body.as_str()), (202, "got 42"));
        assert_eq!(r.headers["X-Kind"], "hookd");
    }

    #[test]
    fn public_keys_are_not_masked() {
        let pk = "whpk_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4=";
        let v1a = json!({"name": "n", "auth": {"type": "signature", "preset": "standard", "public_key": pk}});
        let masked = InboundSpec::from_json(&v1a).unwrap().masked();
        assert_eq!(
            serde_json::to_value(&masked).unwrap()["auth"]["public_key"],
            pk
        );
    }
}
