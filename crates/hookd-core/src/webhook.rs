//! Webhooks: outbound subscriptions, and which events they fire for.
//!
//! [`WebhookSpec`] is everything a user configures. It is stored as one JSON document beside a few
//! columns the database needs to query (`active`, timestamps), so new fields need no migration.
//! Enums here are tagged (`scheme`, `type`, `format`) so that later auth types, signature schemes
//! and body formats are new variants, not new shapes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::event::Event;
use crate::ids::WebhookId;
use crate::route_call;
use crate::signature::{HmacEncoding, SigningSecret, DEFAULT_HMAC_HEADER};

/// A stored webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    pub id: WebhookId,
    pub active: bool,
    /// Set when hookd itself turned `active` off (a `410 Gone`, or the failure window elapsed).
    pub disabled_reason: Option<String>,
    /// Start of the current run of failed attempts; cleared by any success.
    pub failing_since: Option<i64>,
    pub spec: WebhookSpec,
    pub created_at: i64,
    pub updated_at: i64,
    /// Its circuit breaker, kept by the worker ([`crate::flow`]); not part of what users set.
    pub circuit: crate::flow::Circuit,
}

/// Everything about a webhook that its owner sets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookSpec {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub url: String,
    pub method: HttpMethod,
    /// Empty: every event. Otherwise the webhook fires when any entry matches.
    #[serde(default)]
    pub events: Vec<EventFilter>,
    /// An expression (SPEC §6) that must be true for the webhook to fire; compiled at save.
    #[serde(default)]
    pub condition: Option<String>,
    /// Header overrides merged over the server's `default_headers`; `None` removes one.
    #[serde(default)]
    pub headers: BTreeMap<String, Option<String>>,
    #[serde(default)]
    pub auth: AuthConfig,
    pub secret: SigningSecret,
    /// The secret being rotated out, still signing until `expires_at` (epoch ms).
    #[serde(default)]
    pub previous_secret: Option<PreviousSecret>,
    #[serde(default)]
    pub signature: SignatureConfig,
    #[serde(default)]
    pub include_secret: bool,
    #[serde(default)]
    pub body: BodyConfig,
    #[serde(default = "default_true")]
    pub tls_verify: bool,
    /// `None`: the server's `delivery.timeout_ms`.
    #[serde(default)]
    pub timeout_ms: Option<u32>,
    /// `None`: the server's `delivery.max_attempts`.
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// Seconds to wait after each failed attempt; `None`: the server's schedule.
    #[serde(default)]
    pub retry_schedule: Option<Vec<u32>>,
    /// Most requests in flight at once; `None`: the server's `delivery.max_in_flight_per_webhook`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<u32>,
    /// Most requests started per second, across all workers; `None`: unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_second: Option<u32>,
}

fn default_true() -> bool {
    true
}

impl WebhookSpec {
    /// Every secret of the spec with its field path: the signing secret and the one being
    /// rotated out, the target credential (`auth.password`, `auth.token`, `auth.value`) and
    /// the values of credential-like headers ([`crate::outbound::is_sensitive_header`]). The
    /// stores seal exactly these at rest.
    pub fn secrets_mut(&mut self) -> Vec<(String, &mut String)> {
        let mut out = vec![("secret".to_owned(), self.secret.stored_text_mut())];
        if let Some(previous) = &mut self.previous_secret {
            out.push((
                "previous_secret.secret".into(),
                previous.secret.stored_text_mut(),
            ));
        }
        match &mut self.auth {
            AuthConfig::None => {}
            AuthConfig::Basic { password, .. } => out.push(("auth.password".into(), password)),
            AuthConfig::Bearer { token } => out.push(("auth.token".into(), token)),
            AuthConfig::ApiKey { value, .. } => out.push(("auth.value".into(), value)),
        }
        for (name, value) in &mut self.headers {
            if let Some(value) = value {
                if crate::outbound::is_sensitive_header(name) {
                    out.push((format!("headers.{name}"), value));
                }
            }
        }
        out
    }
}

/// A secret kept signing during a rotation's grace period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreviousSecret {
    pub secret: SigningSecret,
    pub expires_at: i64,
}

/// The HTTP methods a webhook may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    Post,
    Put,
    Patch,
    Get,
    Delete,
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Get => "GET",
            Self::Delete => "DELETE",
        }
    }

    /// Parses a method name case-insensitively.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_uppercase().as_str() {
            "POST" => Some(Self::Post),
            "PUT" => Some(Self::Put),
            "PATCH" => Some(Self::Patch),
            "GET" => Some(Self::Get),
            "DELETE" => Some(Self::Delete),
            _ => None,
        }
    }
}

/// One entry of a webhook's `events`: all fields given must match.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventFilter {
    /// Shown in APIO-style payloads as `event.label`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Exact type or a glob with `*` (`entry.*`, `*`).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// Exact model (Strapi model, Frappe DocType).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// A route call's HTTP method, compared case-insensitively. Only route calls match it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// A regex searched in a route call's URL (`^/api/v01/orders/.*$`). Only route calls match it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// Longest `url` pattern accepted in an `events` entry.
pub const MAX_URL_PATTERN: usize = 1000;

/// Most memory one compiled `url` pattern may take; bounds what a hostile pattern costs.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Why an `events` entry is refused: `events[index].field`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("events[{index}].{field}: {message}")]
pub struct FilterError {
    pub index: usize,
    pub field: &'static str,
    pub message: String,
}

/// A webhook's `events` entries compiled for matching. Built once per load of the active
/// webhooks (URL regexes included), then matched against every published event.
#[derive(Debug, Default)]
pub struct EventMatcher {
    entries: Vec<CompiledFilter>,
}

/// One entry with its `url` regex compiled.
#[derive(Debug)]
struct CompiledFilter {
    event_type: Option<String>,
    model: Option<String>,
    method: Option<String>,
    url: Option<regex::Regex>,
}

impl EventMatcher {
    /// Compiles `filters`; a bad `method` or `url` is refused naming its entry.
    pub fn compile(filters: &[EventFilter]) -> Result<Self, FilterError> {
        let entries = filters
            .iter()
            .enumerate()
            .map(|(index, f)| {
                CompiledFilter::compile(f).map_err(|(field, message)| FilterError {
                    index,
                    field,
                    message,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { entries })
    }

    /// Which entry the event matches (its index is APIO's `event.id`), or `None` when the webhook
    /// does not fire for it. Without entries every event fires, with no entry index. A route call
    /// that did not succeed (no 2xx response) never fires anything.
    pub fn matches(&self, event: &Event) -> Option<Match> {
        let call = route_call::view(event);
        if event.event_type == route_call::ROUTE_CALL && !call.is_some_and(|c| c.succeeded()) {
            return None;
        }
        if self.entries.is_empty() {
            return Some(Match { entry: None });
        }
        self.entries
            .iter()
            .position(|f| f.matches(event, call.as_ref()))
            .map(|i| Match {
                entry: Some(i as u32),
            })
    }
}

impl CompiledFilter {
    fn compile(f: &EventFilter) -> Result<Self, (&'static str, String)> {
        if let Some(m) = &f.method {
            if !route_call::is_http_token(m) {
                return Err(("method", "must be an HTTP method such as POST".into()));
            }
        }
        let url = match &f.url {
            None => None,
            Some(p) if p.is_empty() || p.chars().count() > MAX_URL_PATTERN => {
                let msg = format!("must be a regex of 1 to {MAX_URL_PATTERN} characters");
                return Err(("url", msg));
            }
            Some(p) => Some(
                regex::RegexBuilder::new(p)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|e| ("url", format!("is not a valid regex: {e}")))?,
            ),
        };
        Ok(Self {
            event_type: f.event_type.clone(),
            model: f.model.clone(),
            method: f.method.clone(),
            url,
        })
    }

    /// All fields given must match; `method` and `url` need a route call (`call`).
    fn matches(&self, event: &Event, call: Option<&route_call::RouteCallView<'_>>) -> bool {
        let type_ok = self
            .event_type
            .as_deref()
            .is_none_or(|g| glob_match(g, &event.event_type));
        let model_ok = self
            .model
            .as_deref()
            .is_none_or(|m| event.model.as_deref() == Some(m));
        if !(type_ok && model_ok) {
            return false;
        }
        if self.method.is_none() && self.url.is_none() {
            return true;
        }
        let Some(call) = call else { return false };
        let method_ok = self
            .method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(call.method));
        let url_ok = self.url.as_ref().is_none_or(|r| r.is_match(call.url));
        method_ok && url_ok
    }
}

/// The result of matching an event against a webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match {
    /// Index of the first matching `events` entry.
    pub entry: Option<u32>,
}

/// Glob matching where `*` stands for any run of characters (dots included) and `?` for one.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            backtrack = Some((pi, ti));
            pi += 1;
        } else if let Some((bp, bt)) = backtrack {
            pi = bp + 1;
            ti = bt + 1;
            backtrack = Some((bp, bt + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// How hookd authenticates to the target.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AuthConfig {
    #[default]
    None,
    Basic {
        username: String,
        password: String,
    },
    Bearer {
        token: String,
    },
    ApiKey {
        header: String,
        value: String,
    },
}

/// How deliveries are signed. Stored as `{"scheme": "...", ...}`; see [`crate::signature`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "scheme", rename_all = "kebab-case")]
pub enum SignatureConfig {
    /// Standard Webhooks `v1`: `webhook-id`, `webhook-timestamp`, `webhook-signature` (HMAC).
    #[default]
    Standard,
    /// Standard Webhooks `v1a`: the same headers, signed with an Ed25519 `whsk_` keypair.
    Ed25519,
    /// HMAC-SHA256 of the raw body in one header (Frappe, GitHub, Shopify style).
    HmacSha256 {
        #[serde(default = "default_hmac_header")]
        header: String,
        #[serde(default)]
        encoding: HmacEncoding,
        /// Written before the encoded HMAC, e.g. `sha256=`.
        #[serde(default)]
        prefix: Option<String>,
    },
    /// No signature headers.
    None,
}

fn default_hmac_header() -> String {
    DEFAULT_HMAC_HEADER.to_owned()
}

impl SignatureConfig {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Ed25519 => "ed25519",
            Self::HmacSha256 { .. } => "hmac-sha256",
            Self::None => "none",
        }
    }
}

/// How the request body is built. Templates are Jinja (see [`crate::template`]).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "format", rename_all = "snake_case")]
pub enum BodyConfig {
    /// The default payload of SPEC §5.
    #[default]
    Default,
    /// A template that must render valid JSON; sent exactly as rendered.
    Json { template: String },
    /// Fields whose values are templates, sent `application/x-www-form-urlencoded` (Frappe).
    Form { fields: Vec<FormField> },
    /// A template sent exactly as rendered, with whatever `Content-Type` the headers say
    /// (`application/json` by default, which suits a Slack `{"text": ...}` message).
    Text { template: String },
}

/// One field of a form body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormField {
    pub key: String,
    /// A template.
    pub value: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(t: &str, model: Option<&str>) -> Event {
        Event {
            id: crate::EventId::generate(0),
            event_type: t.into(),
            model: model.map(Into::into),
            data: serde_json::json!({}),
            occurred_at: 0,
            idempotency_key: None,
            created_at: 0,
        }
    }

    #[test]
    fn signature_configs_keep_their_stored_shape() {
        let hmac = SignatureConfig::HmacSha256 {
            header: "X-Hub-Signature-256".into(),
            encoding: HmacEncoding::Hex,
            prefix: Some("sha256=".into()),
        };
        let cases = [
            (SignatureConfig::Standard, r#"{"scheme":"standard"}"#),
            (SignatureConfig::None, r#"{"scheme":"none"}"#),
            (SignatureConfig::Ed25519, r#"{"scheme":"ed25519"}"#),
            (
                hmac,
                r#"{"scheme":"hmac-sha256","header":"X-Hub-Signature-256","encoding":"hex","prefix":"sha256="}"#,
            ),
        ];
        for (config, json) in cases {
            assert_eq!(serde_json::to_string(&config).unwrap(), json);
            assert_eq!(
                serde_json::from_str::<SignatureConfig>(json).unwrap(),
                config
            );
        }
        let defaults: SignatureConfig =
            serde_json::from_str(r#"{"scheme":"hmac-sha256"}"#).unwrap();
        assert_eq!(
            defaults,
            SignatureConfig::HmacSha256 {
                header: "X-Hookd-Signature".into(),
                encoding: HmacEncoding::Base64,
                prefix: None,
            }
        );
    }

    #[test]
    fn body_configs_keep_their_stored_shape() {
        let form = BodyConfig::Form {
            fields: vec![FormField {
                key: "id".into(),
                value: "{{ doc.name }}".into(),
            }],
        };
        let cases = [
            (BodyConfig::Default, r#"{"format":"default"}"#),
            (
                BodyConfig::Json {
                    template: "{}".into(),
                },
                r#"{"format":"json","template":"{}"}"#,
            ),
            (
                form,
                r#"{"format":"form","fields":[{"key":"id","value":"{{ doc.name }}"}]}"#,
            ),
            (
                BodyConfig::Text {
                    template: "hi".into(),
                },
                r#"{"format":"text","template":"hi"}"#,
            ),
        ];
        for (config, json) in cases {
            assert_eq!(serde_json::to_string(&config).unwrap(), json);
            assert_eq!(serde_json::from_str::<BodyConfig>(json).unwrap(), config);
        }
    }

    #[test]
    fn globs() {
        for (p, t, want) in [
            ("*", "entry.create", true),
            ("entry.*", "entry.create", true),
            ("entry.*", "media.create", false),
            ("entry.create", "entry.create", true),
            ("entry.create", "entry.created", false),
            ("*.delete", "media.delete", true),
            ("a.*.c", "a.b.x.c", true),
            ("a.?", "a.b", true),
            ("a.?", "a.bc", false),
            ("", "", true),
            ("", "a", false),
        ] {
            assert_eq!(glob_match(p, t), want, "{p} ~ {t}");
        }
    }

    fn matcher(filters: &[EventFilter]) -> EventMatcher {
        EventMatcher::compile(filters).unwrap()
    }

    fn entry(m: &EventMatcher, e: &Event) -> Option<u32> {
        m.matches(e).and_then(|m| m.entry)
    }

    #[test]
    fn filters_need_every_given_field_and_return_the_entry_index() {
        let m = matcher(&[
            EventFilter {
                model: Some("address".into()),
                event_type: Some("entry.create".into()),
                ..Default::default()
            },
            EventFilter {
                event_type: Some("media.*".into()),
                ..Default::default()
            },
        ]);
        assert_eq!(entry(&m, &event("entry.create", Some("address"))), Some(0));
        assert_eq!(m.matches(&event("entry.create", Some("user"))), None);
        assert_eq!(m.matches(&event("entry.create", None)), None);
        assert_eq!(entry(&m, &event("media.delete", None)), Some(1));
    }

    fn call(method: &str, url: &str, status: u16) -> Event {
        let mut e = event(route_call::ROUTE_CALL, None);
        e.data = serde_json::json!({"tag": "t", "method": method, "url": url, "body": null,
                                    "response": {"status": status, "body": null}});
        e
    }

    fn route_filter(method: Option<&str>, url: Option<&str>) -> EventFilter {
        EventFilter {
            method: method.map(Into::into),
            url: url.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn route_filters_compare_methods_case_insensitively_and_search_urls() {
        let m = matcher(&[
            route_filter(Some("post"), Some("^/api/v01/orders/.*$")),
            route_filter(None, Some("customers")),
        ]);
        assert_eq!(entry(&m, &call("POST", "/api/v01/orders/1", 200)), Some(0));
        assert_eq!(entry(&m, &call("Post", "/api/v01/orders/", 201)), Some(0));
        assert_eq!(m.matches(&call("GET", "/api/v01/orders/1", 200)), None);
        assert_eq!(m.matches(&call("POST", "/x/api/v01/orders/1", 200)), None);
        // `url` is searched, not anchored, unless the pattern anchors it.
        assert_eq!(entry(&m, &call("GET", "/api/customers/7", 200)), Some(1));
        assert_eq!(m.matches(&event("order.paid", None)), None);
    }

    #[test]
    fn route_calls_without_a_2xx_response_never_match() {
        let any = matcher(&[]);
        let typed = matcher(&[EventFilter {
            event_type: Some("*".into()),
            ..Default::default()
        }]);
        let route = matcher(&[route_filter(Some("POST"), None)]);
        for m in [&any, &typed, &route] {
            assert!(m.matches(&call("POST", "/a", 204)).is_some());
            for status in [199, 302, 404, 500] {
                assert_eq!(m.matches(&call("POST", "/a", status)), None, "{status}");
            }
        }
        let mut no_status = call("POST", "/a", 200);
        no_status.data["response"] = serde_json::json!(null);
        assert_eq!(any.matches(&no_status), None);
    }

    #[test]
    fn type_only_entries_are_unaffected_by_route_fields() {
        let m = matcher(&[
            route_filter(Some("POST"), None),
            EventFilter {
                event_type: Some("entry.*".into()),
                ..Default::default()
            },
        ]);
        assert_eq!(entry(&m, &event("entry.create", None)), Some(1));
        assert_eq!(entry(&matcher(&[]), &event("x.y", None)), None);
        assert!(matcher(&[]).matches(&event("x.y", None)).is_some());
    }

    #[test]
    fn bad_route_fields_are_refused_naming_the_entry() {
        let e = EventMatcher::compile(&[route_filter(None, None), route_filter(None, Some("(["))])
            .unwrap_err();
        assert_eq!((e.index, e.field), (1, "url"));
        let e = EventMatcher::compile(&[route_filter(Some("GE T"), None)]).unwrap_err();
        assert_eq!((e.index, e.field), (0, "method"));
    }

    #[test]
    fn stored_filters_without_route_fields_still_load() {
        let f: EventFilter = serde_json::from_str(r#"{"type": "entry.create"}"#).unwrap();
        assert_eq!((f.method, f.url), (None, None));
        let json = serde_json::to_string(&route_filter(Some("POST"), Some("^/a"))).unwrap();
        assert_eq!(json, r#"{"method":"POST","url":"^/a"}"#);
    }
}
