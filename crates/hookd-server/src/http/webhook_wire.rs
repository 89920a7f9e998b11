//! Wire types of the webhooks API (`WebhookIn`, `WebhookPatch`, `WebhookOut`) and their conversion
//! to and from the domain's [`WebhookSpec`]. Validation happens here, once, at the edge: every
//! error names the field.

use std::collections::BTreeMap;

use hookd_core::outbound::{masked_header_value, MASK};
use hookd_core::signature::SigningSecret;
use hookd_core::time::rfc3339;
use hookd_core::webhook::{AuthConfig, EventFilter, Webhook, WebhookSpec};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::error::ApiError;
use crate::settings::Settings;

use super::webhook_fields::{
    check_auth, check_condition, check_events, check_headers, check_range, check_schedule,
    check_timeout, parse_body, parse_method, parse_secret, parse_signature, parse_url, tagged,
    text, MAX_IN_FLIGHT, MAX_NAME, MAX_RATE,
};

/// A webhook as created (`POST /webhooks`).
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookIn {
    #[schema(min_length = 1)]
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default = "yes")]
    pub active: bool,
    /// The target: an `http` or `https` URL.
    #[schema(min_length = 1)]
    pub url: String,
    /// `POST` (default), `PUT`, `PATCH`, `GET` or `DELETE`.
    #[serde(default)]
    pub method: Option<String>,
    /// Which events fire the webhook; empty or absent: every event.
    #[serde(default)]
    pub events: Vec<EventFilter>,
    /// An expression over the event (`doc.status == "Open"`) that must be true for the webhook
    /// to fire; absent, `null` or blank: always.
    #[serde(default)]
    pub condition: Option<String>,
    /// Merged over the server's `default_headers`; `null` removes one (even `Content-Type`).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub headers: BTreeMap<String, Option<String>>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub auth: Option<Value>,
    /// Generated when omitted: `whsec_...` for `standard` and `none`, a `whsk_...` keypair for
    /// `ed25519`, random text for `hmac-sha256` (which takes any non-empty string).
    #[serde(default)]
    pub secret: Option<String>,
    /// `{"scheme": "standard"}` (default), `{"scheme": "ed25519"}`, `{"scheme": "none"}` or
    /// `{"scheme": "hmac-sha256", "header": "X-Hookd-Signature", "encoding": "base64"|"hex",
    /// "prefix": null}`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub signature: Option<Value>,
    #[serde(default)]
    pub include_secret: bool,
    /// `{"format": "default"}`, `{"format": "json", "template": "..."}` (must render JSON),
    /// `{"format": "form", "fields": [{"key": "id", "value": "{{ doc.name }}"}]}` or
    /// `{"format": "text", "template": "..."}`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub body: Option<Value>,
    #[serde(default = "yes")]
    pub tls_verify: bool,
    /// Per-request timeout (at most 120000, and 5 s under `delivery.lease_seconds`).
    #[schema(minimum = 1, maximum = 120_000)]
    pub timeout_ms: Option<u32>,
    #[schema(minimum = 1, maximum = 50)]
    pub max_attempts: Option<u32>,
    /// Seconds to wait after each failed attempt (1 to 50 delays, each at most 604800).
    #[schema(min_items = 1, max_items = 50)]
    pub retry_schedule: Option<Vec<u32>>,
    /// Most requests started per second to this webhook, across all workers; `null`: no limit.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 100_000)]
    pub rate_limit_per_second: Option<u32>,
    /// Most requests in flight at once to this webhook, across all workers; `null`: the
    /// server's `delivery.max_in_flight_per_webhook`.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 10_000)]
    pub max_in_flight: Option<u32>,
}

fn yes() -> bool {
    true
}

/// A partial update (`PATCH /webhooks/{id}`): each field given replaces the stored one.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookPatch {
    #[schema(min_length = 1)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    pub active: Option<bool>,
    #[schema(min_length = 1)]
    pub url: Option<String>,
    pub method: Option<String>,
    pub events: Option<Vec<EventFilter>>,
    /// `null` removes the condition.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub condition: Option<Option<String>>,
    #[schema(value_type = Option<Object>)]
    pub headers: Option<BTreeMap<String, Option<String>>>,
    /// `null` resets it to the default.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Object>)]
    pub auth: Option<Option<Value>>,
    pub secret: Option<String>,
    /// `null` resets it to the default.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Object>)]
    pub signature: Option<Option<Value>>,
    pub include_secret: Option<bool>,
    /// `null` resets it to the default.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Object>)]
    pub body: Option<Option<Value>>,
    pub tls_verify: Option<bool>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 120_000)]
    pub timeout_ms: Option<Option<u32>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 50)]
    pub max_attempts: Option<Option<u32>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Vec<u32>>, min_items = 1, max_items = 50)]
    pub retry_schedule: Option<Option<Vec<u32>>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 100_000)]
    pub rate_limit_per_second: Option<Option<u32>>,
    /// `null` resets it to the server's default.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 10_000)]
    pub max_in_flight: Option<Option<u32>>,
}

/// Tells "absent" (`None`) from "null" (`Some(None)`).
fn double_option<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A webhook as returned. Secrets are not in it (see `GET /webhooks/{id}/secret`); auth values are
/// masked.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookOut {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub active: bool,
    /// Why hookd turned the webhook off itself, if it did.
    pub disabled_reason: Option<String>,
    pub url: String,
    pub method: String,
    pub events: Vec<EventFilter>,
    pub condition: Option<String>,
    #[schema(value_type = Object)]
    pub headers: BTreeMap<String, Option<String>>,
    #[schema(value_type = Object)]
    pub auth: Value,
    #[schema(value_type = Object)]
    pub signature: Value,
    pub include_secret: bool,
    #[schema(value_type = Object)]
    pub body: Value,
    pub tls_verify: bool,
    pub timeout_ms: Option<u32>,
    pub max_attempts: Option<u32>,
    pub retry_schedule: Option<Vec<u32>>,
    pub rate_limit_per_second: Option<u32>,
    /// `null`: the server's `delivery.max_in_flight_per_webhook`.
    pub max_in_flight: Option<u32>,
    /// The circuit breaker: `closed`, `open` (deliveries wait until `circuit_open_until`) or
    /// `half_open` (one probe request may go).
    pub circuit: String,
    pub circuit_open_until: Option<String>,
    /// Failures in a row (timeouts, connection errors, 5xx, 429) since the last answer.
    pub circuit_failures: u32,
    pub created_at: String,
    pub updated_at: String,
}

impl WebhookOut {
    pub fn from_domain(w: &Webhook) -> Self {
        let s = &w.spec;
        Self {
            id: w.id.to_string(),
            name: s.name.clone(),
            description: s.description.clone(),
            active: w.active,
            disabled_reason: w.disabled_reason.clone(),
            url: s.url.clone(),
            method: s.method.as_str().to_owned(),
            events: s.events.clone(),
            condition: s.condition.clone(),
            headers: masked_headers(&s.headers),
            auth: masked_auth(&s.auth),
            signature: serde_json::to_value(&s.signature).unwrap_or(Value::Null),
            include_secret: s.include_secret,
            body: serde_json::to_value(&s.body).unwrap_or(Value::Null),
            tls_verify: s.tls_verify,
            timeout_ms: s.timeout_ms,
            max_attempts: s.max_attempts,
            retry_schedule: s.retry_schedule.clone(),
            rate_limit_per_second: s.rate_limit_per_second,
            max_in_flight: s.max_in_flight,
            circuit: w.circuit.state(crate::now_ms()).as_str().to_owned(),
            circuit_open_until: w.circuit.open_until.map(rfc3339),
            circuit_failures: w.circuit.consecutive_failures,
            created_at: rfc3339(w.created_at),
            updated_at: rfc3339(w.updated_at),
        }
    }
}

/// Header overrides as shown: values of credential-like headers masked.
fn masked_headers(h: &BTreeMap<String, Option<String>>) -> BTreeMap<String, Option<String>> {
    h.iter()
        .map(|(k, v)| {
            let v = v.as_deref().map(|v| masked_header_value(k, v).to_owned());
            (k.clone(), v)
        })
        .collect()
}

fn masked_auth(auth: &AuthConfig) -> Value {
    let mut masked = auth.clone();
    match &mut masked {
        AuthConfig::None => {}
        AuthConfig::Basic { password, .. } => *password = MASK.into(),
        AuthConfig::Bearer { token } => *token = MASK.into(),
        AuthConfig::ApiKey { value, .. } => *value = MASK.into(),
    }
    serde_json::to_value(masked).unwrap_or(Value::Null)
}

impl WebhookIn {
    /// The input that would recreate `w` (secrets included), for applying a patch.
    pub fn from_domain(w: &Webhook) -> Self {
        let s = &w.spec;
        Self {
            name: s.name.clone(),
            description: s.description.clone(),
            active: w.active,
            url: s.url.clone(),
            method: Some(s.method.as_str().to_owned()),
            events: s.events.clone(),
            condition: s.condition.clone(),
            headers: s.headers.clone(),
            auth: serde_json::to_value(&s.auth).ok(),
            secret: Some(s.secret.expose().to_owned()),
            signature: serde_json::to_value(&s.signature).ok(),
            include_secret: s.include_secret,
            body: serde_json::to_value(&s.body).ok(),
            tls_verify: s.tls_verify,
            timeout_ms: s.timeout_ms,
            max_attempts: s.max_attempts,
            retry_schedule: s.retry_schedule.clone(),
            rate_limit_per_second: s.rate_limit_per_second,
            max_in_flight: s.max_in_flight,
        }
    }

    /// Applies a patch: every field it gives replaces ours. A kept secret that does not fit a newly
    /// given scheme (a `whsec_` one for `ed25519`) is dropped, so that a fresh one is generated.
    pub fn apply(&mut self, p: WebhookPatch) {
        let new_scheme_kept_secret = p.signature.is_some() && p.secret.is_none();
        macro_rules! take {
            ($($f:ident),*) => { $(if let Some(v) = p.$f { self.$f = v; })* };
        }
        take!(
            name,
            description,
            active,
            url,
            events,
            condition,
            headers,
            include_secret,
            tls_verify
        );
        take!(
            timeout_ms,
            max_attempts,
            retry_schedule,
            rate_limit_per_second,
            max_in_flight,
            auth,
            signature,
            body
        );
        macro_rules! take_some {
            ($($f:ident),*) => { $(if let Some(v) = p.$f { self.$f = Some(v); })* };
        }
        take_some!(method, secret);
        if new_scheme_kept_secret {
            self.drop_secret_unless_it_fits();
        }
    }

    fn drop_secret_unless_it_fits(&mut self) {
        // An invalid `signature` is reported by `into_spec`; the secret is left alone for it.
        let Ok(scheme) = parse_signature(self.signature.clone()) else {
            return;
        };
        let fits = self
            .secret
            .as_deref()
            .is_some_and(|s| SigningSecret::parse_for(&scheme, s).is_ok());
        if !fits {
            self.secret = None;
        }
    }

    /// Validates and converts to the domain spec.
    pub fn into_spec(self, settings: &Settings) -> Result<WebhookSpec, ApiError> {
        let signature = parse_signature(self.signature)?;
        let secret = parse_secret(self.secret.as_deref(), &signature)?;
        Ok(WebhookSpec {
            name: text("name", &self.name, MAX_NAME)?,
            description: self.description,
            url: parse_url(&self.url)?,
            method: parse_method(self.method.as_deref())?,
            events: check_events(self.events)?,
            condition: check_condition(self.condition)?,
            headers: check_headers(self.headers)?,
            auth: check_auth(tagged(self.auth, "auth")?)?,
            secret,
            previous_secret: None,
            signature,
            include_secret: self.include_secret,
            body: parse_body(self.body)?,
            tls_verify: self.tls_verify,
            timeout_ms: check_timeout(self.timeout_ms, settings)?,
            max_attempts: check_range("max_attempts", self.max_attempts, 1, 50)?,
            retry_schedule: check_schedule(self.retry_schedule)?,
            max_in_flight: check_range("max_in_flight", self.max_in_flight, 1, MAX_IN_FLIGHT)?,
            rate_limit_per_second: check_range(
                "rate_limit_per_second",
                self.rate_limit_per_second,
                1,
                MAX_RATE,
            )?,
        })
    }
}
