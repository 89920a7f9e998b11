//! Field-by-field validation of webhook input: each function parses one field (or one part of
//! one) and returns an [`ApiError`] that names it. `webhook_wire.rs` composes them.

use std::collections::BTreeMap;

use axum::http::{HeaderName, HeaderValue};
use hookd_core::signature::{HmacEncoding, SigningSecret, DEFAULT_HMAC_HEADER};
use hookd_core::template::{Condition, Template};
use hookd_core::webhook::{
    AuthConfig, BodyConfig, EventFilter, EventMatcher, FormField, HttpMethod, SignatureConfig,
};
use serde::Deserialize;
use serde_json::Value;

use crate::error::ApiError;
use crate::settings::Settings;

/// Longest `name`, `label` or `model` accepted.
pub(super) const MAX_NAME: usize = 200;
/// Largest `max_in_flight`: more requests at once to one endpoint than any budget holds.
pub(super) const MAX_IN_FLIGHT: u32 = 10_000;
/// Largest `rate_limit_per_second`.
pub(super) const MAX_RATE: u32 = 100_000;
/// Headers hookd sets itself or that would break the request.
const RESERVED_HEADERS: [&str; 6] = [
    "host",
    "content-length",
    "connection",
    "transfer-encoding",
    "upgrade",
    "te",
];

/// Deserialises an internally tagged enum from an optional JSON value, naming the field on error.
pub(super) fn tagged<T: serde::de::DeserializeOwned + Default>(
    v: Option<Value>,
    field: &str,
) -> Result<T, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(T::default()),
        Some(v) => serde_json::from_value(v).map_err(|e| ApiError::invalid(field, e.to_string())),
    }
}

pub(super) fn text(field: &str, v: &str, max: usize) -> Result<String, ApiError> {
    let v = v.trim();
    if v.is_empty() {
        return Err(ApiError::invalid(field, "must not be empty"));
    }
    if v.chars().count() > max {
        return Err(ApiError::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(v.to_owned())
}

pub(super) fn parse_url(raw: &str) -> Result<String, ApiError> {
    let url = reqwest::Url::parse(raw.trim())
        .map_err(|e| ApiError::invalid("url", format!("is not a valid URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ApiError::invalid("url", "must use http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ApiError::invalid("url", "must have a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        let msg = "must not carry credentials: use `auth` (they are masked; URLs are not)";
        return Err(ApiError::invalid("url", msg));
    }
    if raw.len() > 2048 {
        return Err(ApiError::invalid("url", "must be at most 2048 characters"));
    }
    Ok(url.to_string())
}

pub(super) fn parse_method(m: Option<&str>) -> Result<HttpMethod, ApiError> {
    match m {
        None => Ok(HttpMethod::Post),
        Some(m) => HttpMethod::parse(m).ok_or_else(|| {
            ApiError::invalid("method", "must be one of POST, PUT, PATCH, GET, DELETE")
        }),
    }
}

pub(super) fn check_events(events: Vec<EventFilter>) -> Result<Vec<EventFilter>, ApiError> {
    for (i, e) in events.iter().enumerate() {
        if let Some(t) = &e.event_type {
            let ok = !t.is_empty()
                && t.len() <= 200
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-:/*?".contains(c));
            if !ok {
                let msg = "must be an event type or a glob of letters, digits, . _ - : / * ?";
                return Err(ApiError::invalid(format!("events[{i}].type"), msg));
            }
        }
        for (name, v) in [("label", &e.label), ("model", &e.model)] {
            if let Some(v) = v {
                text(&format!("events[{i}].{name}"), v, MAX_NAME)?;
            }
        }
    }
    // `method` and `url` (a regex) are checked by compiling them as publishing will.
    EventMatcher::compile(&events)
        .map_err(|e| ApiError::invalid(format!("events[{}].{}", e.index, e.field), e.message))?;
    Ok(events)
}

/// A blank condition is no condition; any other must compile.
pub(super) fn check_condition(condition: Option<String>) -> Result<Option<String>, ApiError> {
    let Some(expr) = condition.filter(|c| !c.trim().is_empty()) else {
        return Ok(None);
    };
    if expr.len() > MAX_TEMPLATE {
        let msg = format!("must be at most {MAX_TEMPLATE} bytes");
        return Err(ApiError::invalid("condition", msg));
    }
    Condition::compile(&expr)
        .map_err(|e| ApiError::invalid("condition", format!("does not compile: {e}")))?;
    Ok(Some(expr))
}

/// The wire shape of `body`: one flat object, checked field by field.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BodyIn {
    format: String,
    template: Option<String>,
    fields: Option<Vec<FormFieldIn>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FormFieldIn {
    key: String,
    value: String,
}

/// Parses `body`; absent or `null` is the default payload. Templates must compile.
pub(super) fn parse_body(v: Option<Value>) -> Result<BodyConfig, ApiError> {
    let input: BodyIn = match v {
        None | Some(Value::Null) => return Ok(BodyConfig::Default),
        Some(v) => {
            serde_json::from_value(v).map_err(|e| ApiError::invalid("body", e.to_string()))?
        }
    };
    let format = input.format.as_str();
    if input.fields.is_some() && format != "form" {
        return Err(ApiError::invalid(
            "body.fields",
            "is only used by the form format",
        ));
    }
    if input.template.is_some() && !matches!(format, "json" | "text") {
        let msg = "is only used by the json and text formats";
        return Err(ApiError::invalid("body.template", msg));
    }
    match format {
        "default" => Ok(BodyConfig::Default),
        "json" => Ok(BodyConfig::Json {
            template: check_template("body.template", input.template)?,
        }),
        "text" => Ok(BodyConfig::Text {
            template: check_template("body.template", input.template)?,
        }),
        "form" => check_form(input.fields),
        _ => Err(ApiError::invalid(
            "body.format",
            "must be one of default, json, form, text",
        )),
    }
}

fn check_form(fields: Option<Vec<FormFieldIn>>) -> Result<BodyConfig, ApiError> {
    let fields =
        fields.ok_or_else(|| ApiError::invalid("body.fields", "is required by the form format"))?;
    let mut out = Vec::with_capacity(fields.len());
    for (i, f) in fields.into_iter().enumerate() {
        if f.key.is_empty() {
            return Err(ApiError::invalid(
                format!("body.fields[{i}].key"),
                "must not be empty",
            ));
        }
        let value = check_template(&format!("body.fields[{i}].value"), Some(f.value))?;
        out.push(FormField { key: f.key, value });
    }
    Ok(BodyConfig::Form { fields: out })
}

/// Longest template or condition accepted.
const MAX_TEMPLATE: usize = 64 * 1024;

/// A template that is present, not too long, and compiles.
fn check_template(field: &str, source: Option<String>) -> Result<String, ApiError> {
    let source = source.ok_or_else(|| ApiError::invalid(field, "is required by this format"))?;
    if source.len() > MAX_TEMPLATE {
        let msg = format!("must be at most {MAX_TEMPLATE} bytes");
        return Err(ApiError::invalid(field, msg));
    }
    Template::compile(&source)
        .map_err(|e| ApiError::invalid(field, format!("does not compile: {e}")))?;
    Ok(source)
}

pub(super) fn check_headers(
    headers: BTreeMap<String, Option<String>>,
) -> Result<BTreeMap<String, Option<String>>, ApiError> {
    for (name, value) in &headers {
        let field = format!("headers.{name}");
        if HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(ApiError::invalid(field, "is not a valid HTTP header name"));
        }
        if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(ApiError::invalid(
                field,
                "is set by hookd and cannot be configured",
            ));
        }
        if let Some(v) = value {
            if HeaderValue::from_str(v).is_err() {
                return Err(ApiError::invalid(field, "is not a valid HTTP header value"));
            }
        }
    }
    Ok(headers)
}

pub(super) fn check_auth(auth: AuthConfig) -> Result<AuthConfig, ApiError> {
    let required = |field: &str, v: &str| {
        if v.is_empty() {
            Err(ApiError::invalid(
                format!("auth.{field}"),
                "must not be empty",
            ))
        } else if HeaderValue::from_str(v).is_err() {
            Err(ApiError::invalid(
                format!("auth.{field}"),
                "must be printable text",
            ))
        } else {
            Ok(())
        }
    };
    match &auth {
        AuthConfig::None => {}
        AuthConfig::Basic { username, .. } if username.contains(':') => {
            return Err(ApiError::invalid("auth.username", "must not contain `:`"));
        }
        AuthConfig::Basic { username, password } => {
            required("username", username)?;
            required("password", password)?;
        }
        AuthConfig::Bearer { token } => required("token", token)?,
        AuthConfig::ApiKey { header, value } => {
            if HeaderName::from_bytes(header.as_bytes()).is_err() {
                return Err(ApiError::invalid(
                    "auth.header",
                    "is not a valid HTTP header name",
                ));
            }
            required("value", value)?;
        }
    }
    Ok(auth)
}

/// The wire shape of `signature`: one flat object, checked field by field.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignatureIn {
    scheme: String,
    header: Option<String>,
    encoding: Option<String>,
    prefix: Option<String>,
}

/// Parses `signature`; absent or `null` is the `standard` scheme. Errors name the field.
pub(super) fn parse_signature(v: Option<Value>) -> Result<SignatureConfig, ApiError> {
    let input: SignatureIn = match v {
        None | Some(Value::Null) => return Ok(SignatureConfig::default()),
        Some(v) => {
            serde_json::from_value(v).map_err(|e| ApiError::invalid("signature", e.to_string()))?
        }
    };
    let config = match input.scheme.as_str() {
        "standard" => SignatureConfig::Standard,
        "ed25519" => SignatureConfig::Ed25519,
        "none" => SignatureConfig::None,
        "hmac-sha256" => {
            return Ok(SignatureConfig::HmacSha256 {
                header: check_signature_header(input.header)?,
                encoding: parse_encoding(input.encoding.as_deref())?,
                prefix: check_prefix(input.prefix)?,
            })
        }
        _ => {
            let msg = "must be one of standard, ed25519, hmac-sha256, none";
            return Err(ApiError::invalid("signature.scheme", msg));
        }
    };
    let extra = [
        ("header", input.header.is_some()),
        ("encoding", input.encoding.is_some()),
        ("prefix", input.prefix.is_some()),
    ];
    match extra.iter().find(|(_, given)| *given) {
        Some((field, _)) => Err(ApiError::invalid(
            format!("signature.{field}"),
            "is only used by the hmac-sha256 scheme",
        )),
        None => Ok(config),
    }
}

fn check_signature_header(header: Option<String>) -> Result<String, ApiError> {
    let header = header.unwrap_or_else(|| DEFAULT_HMAC_HEADER.to_owned());
    if HeaderName::from_bytes(header.as_bytes()).is_err() {
        let msg = "is not a valid HTTP header name";
        return Err(ApiError::invalid("signature.header", msg));
    }
    if RESERVED_HEADERS.contains(&header.to_ascii_lowercase().as_str()) {
        let msg = "is set by hookd and cannot carry the signature";
        return Err(ApiError::invalid("signature.header", msg));
    }
    Ok(header)
}

fn parse_encoding(encoding: Option<&str>) -> Result<HmacEncoding, ApiError> {
    match encoding {
        None => Ok(HmacEncoding::default()),
        Some(e) => HmacEncoding::parse(e)
            .ok_or_else(|| ApiError::invalid("signature.encoding", "must be base64 or hex")),
    }
}

/// An empty prefix is no prefix.
fn check_prefix(prefix: Option<String>) -> Result<Option<String>, ApiError> {
    match prefix {
        Some(p) if p.is_empty() => Ok(None),
        Some(p) if p.len() > 100 || HeaderValue::from_str(&p).is_err() => Err(ApiError::invalid(
            "signature.prefix",
            "must be at most 100 characters of printable text",
        )),
        other => Ok(other),
    }
}

pub(super) fn parse_secret(
    raw: Option<&str>,
    scheme: &SignatureConfig,
) -> Result<SigningSecret, ApiError> {
    match raw {
        None => Ok(SigningSecret::generate_for(scheme)),
        Some(s) => SigningSecret::parse_for(scheme, s).map_err(|m| {
            ApiError::invalid("secret", format!("{m} (for the {} scheme)", scheme.name()))
        }),
    }
}

pub(super) fn check_timeout(v: Option<u32>, settings: &Settings) -> Result<Option<u32>, ApiError> {
    let lease_ms = settings.delivery.lease.as_millis() as u32;
    let max = 120_000.min(lease_ms.saturating_sub(5_000)).max(1);
    check_range("timeout_ms", v, 1, max)
}

pub(super) fn check_range(
    field: &str,
    v: Option<u32>,
    lo: u32,
    hi: u32,
) -> Result<Option<u32>, ApiError> {
    match v {
        Some(n) if !(lo..=hi).contains(&n) => Err(ApiError::invalid(
            field,
            format!("must be between {lo} and {hi}, got {n}"),
        )),
        other => Ok(other),
    }
}

pub(super) fn check_schedule(v: Option<Vec<u32>>) -> Result<Option<Vec<u32>>, ApiError> {
    let Some(s) = v else { return Ok(None) };
    if s.is_empty() || s.len() > 50 {
        return Err(ApiError::invalid(
            "retry_schedule",
            "must hold 1 to 50 delays",
        ));
    }
    if let Some(i) = s.iter().position(|&d| d > 7 * 24 * 3600) {
        return Err(ApiError::invalid(
            format!("retry_schedule[{i}]"),
            "must be at most 604800 s",
        ));
    }
    Ok(Some(s))
}
