//! What a request leaves in its execution record: credential headers masked wherever their
//! values flow (the recorded request, the variables, a sync run's trace and answer), the key
//! left out of the path, and the body cut at [`MAX_RECORDED_BODY`].

use std::collections::BTreeMap;

use axum::body::Bytes;
use hookd_core::inbound::record::InboundHook;
use hookd_core::inbound::spec::{InboundAuth, SignaturePreset};
use hookd_core::inbound::workflow;
use serde_json::{Map, Value};

/// Request bodies are kept in execution records up to this many bytes.
pub const MAX_RECORDED_BODY: usize = 64 * 1024;
/// Header values of a rejected call are kept up to this many bytes each: what a flood of
/// unverified calls can write stays small.
pub const MAX_REJECTED_HEADER: usize = 256;
/// Headers whose values are credentials: masked in execution records.
const SECRET_HEADERS: [&str; 9] = [
    "authorization",
    "cookie",
    "proxy-authorization",
    "x-hub-signature",
    "x-hub-signature-256",
    "stripe-signature",
    "x-slack-signature",
    "x-shopify-hmac-sha256",
    "webhook-signature",
];
pub(super) const MASK: &str = "****";

/// Whether the header (lower-case name) carries a credential: one of [`SECRET_HEADERS`] or the
/// hook's own signature header.
pub(super) fn is_secret_header(name: &str, auth: &InboundAuth) -> bool {
    SECRET_HEADERS.contains(&name)
        || matches!(auth, InboundAuth::Signature(SignaturePreset::Hmac { header, .. })
            if header.eq_ignore_ascii_case(name))
}

/// The variables as stored: credential headers masked in `request.headers` and `headers`, and
/// in parsed items taken from such headers. Sync runs use the real values; async runs start from
/// the stored ones, so their workflows see credentials as `****` (verification already ran).
pub(super) fn masked_variables(
    mut vars: Map<String, Value>,
    hook: &InboundHook,
) -> Map<String, Value> {
    let auth = &hook.spec.auth;
    let mask_map = |headers: Option<&mut Value>| {
        if let Some(Value::Object(h)) = headers {
            for (k, v) in h.iter_mut() {
                if is_secret_header(k, auth) {
                    *v = Value::String(MASK.into());
                }
            }
        }
    };
    mask_map(vars.get_mut("request").and_then(|r| r.get_mut("headers")));
    mask_map(vars.get_mut("headers"));
    for item in &hook.spec.parse.headers {
        if is_secret_header(&item.name.to_ascii_lowercase(), auth) {
            let key = item.alias.as_deref().unwrap_or(&item.name);
            if let Some(v) = vars.get_mut(key) {
                *v = Value::String(MASK.into());
            }
        }
    }
    vars
}

/// The credentials a request carried, as text a workflow could copy: each credential header's
/// value, its words (a bearer token), and a basic password decoded. Short strings are left out,
/// so masking does not blank ordinary text.
pub(super) fn secret_values(headers: &[(String, String)], auth: &InboundAuth) -> Vec<String> {
    use base64::Engine as _;
    const SHORTEST: usize = 6;
    let mut out = Vec::new();
    for (k, v) in headers {
        if !is_secret_header(&k.to_ascii_lowercase(), auth) {
            continue;
        }
        out.push(v.clone());
        for word in v.split([' ', ',', ';']) {
            out.push(word.to_owned());
            // A cookie's or a signature's `name=value`.
            if let Some((_, value)) = word.split_once('=') {
                out.push(value.to_owned());
            }
            let decoded = base64::engine::general_purpose::STANDARD.decode(word);
            if let Some(text) = decoded.ok().and_then(|d| String::from_utf8(d).ok()) {
                if let Some((_, password)) = text.split_once(':') {
                    out.push(password.to_owned());
                }
                out.push(text);
            }
        }
    }
    out.retain(|s| s.len() >= SHORTEST);
    // Longest first, so a whole value is masked before a word of it.
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out.dedup();
    out
}

pub(super) fn redact_text(mut text: String, secrets: &[String]) -> String {
    for secret in secrets {
        if text.contains(secret.as_str()) {
            text = text.replace(secret.as_str(), MASK);
        }
    }
    text
}

pub(super) fn redact_json(value: &mut Value, secrets: &[String]) {
    match value {
        Value::String(s) => *s = redact_text(std::mem::take(s), secrets),
        Value::Array(items) => items.iter_mut().for_each(|v| redact_json(v, secrets)),
        Value::Object(map) => map.values_mut().for_each(|v| redact_json(v, secrets)),
        _ => {}
    }
}

/// `value` with every credential in its text masked (through its JSON form).
pub(super) fn redact_serde<T: serde::Serialize + serde::de::DeserializeOwned>(
    value: T,
    secrets: &[String],
) -> T {
    if secrets.is_empty() {
        return value;
    }
    let Ok(mut json) = serde_json::to_value(&value) else {
        return value;
    };
    redact_json(&mut json, secrets);
    serde_json::from_value(json).unwrap_or(value)
}

pub(super) fn redact_response(answer: &mut workflow::Response, secrets: &[String]) {
    answer.body = redact_text(std::mem::take(&mut answer.body), secrets);
    for v in answer.headers.values_mut() {
        *v = redact_text(std::mem::take(v), secrets);
    }
}

/// Headers for the record: names lower-case, credentials and the hook's own signature header
/// masked.
pub(super) fn masked_headers(
    headers: &[(String, String)],
    auth: &InboundAuth,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in headers {
        let k = k.to_ascii_lowercase();
        let secret = is_secret_header(&k, auth);
        let v = if secret { MASK.to_owned() } else { v.clone() };
        out.entry(k)
            .and_modify(|joined: &mut String| {
                joined.push_str(", ");
                joined.push_str(&v);
            })
            .or_insert(v);
    }
    out
}

/// `/hooks/****?query`: the key is the hook's only secret in a `none` hook, so it is not kept.
pub(super) fn masked_path(query: &str) -> String {
    if query.is_empty() {
        format!("/hooks/{MASK}")
    } else {
        format!("/hooks/{MASK}?{query}")
    }
}

/// The body as recorded: the parsed value when the raw body fits the cap, else the text cut at
/// the cap.
pub(super) fn recorded_body(parsed: &Value, raw: &Bytes) -> Value {
    if raw.len() <= MAX_RECORDED_BODY {
        return parsed.clone();
    }
    let mut end = MAX_RECORDED_BODY;
    while end > 0 && (raw[end] & 0xC0) == 0x80 {
        end -= 1;
    }
    Value::String(String::from_utf8_lossy(&raw[..end]).into_owned())
}

/// The headers of a call that failed verification, as recorded: masked, each value cut at
/// [`MAX_REJECTED_HEADER`] bytes.
pub(super) fn rejected_headers(
    headers: &[(String, String)],
    auth: &InboundAuth,
) -> BTreeMap<String, String> {
    let mut out = masked_headers(headers, auth);
    for v in out.values_mut() {
        if v.len() > MAX_REJECTED_HEADER {
            let mut end = MAX_REJECTED_HEADER;
            while !v.is_char_boundary(end) {
                end -= 1;
            }
            v.truncate(end);
            v.push('…');
        }
    }
    out
}
