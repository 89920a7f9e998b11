//! Builds the exact HTTP request a delivery sends: method, URL, merged headers, auth, body
//! (default payload or rendered template) and signature. The worker sends it, the test endpoint
//! sends it, preview shows it, and records keep a masked copy.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use crate::delivery::RequestRecord;
use crate::event::Event;
use crate::payload::{default_payload, PayloadContext};
use crate::route_call::EntryRef;
use crate::signature::{sign_ed25519, sign_hmac_sha256, sign_standard, SigningSecret};
use crate::template::{Context, Template};
use crate::webhook::{AuthConfig, BodyConfig, SignatureConfig, Webhook, WebhookSpec};

/// What a masked header value is replaced with.
pub const MASK: &str = "****";

/// Words in a header name that suggest its value is a credential (`Authorization`,
/// `X-Api-Key`, `X-Auth-Token`, `Cookie`, ...).
const SENSITIVE_WORDS: [&str; 6] = ["auth", "token", "key", "secret", "password", "cookie"];

/// Whether a header's value should be masked wherever it is shown or stored.
pub fn is_sensitive_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SENSITIVE_WORDS.iter().any(|w| name.contains(w))
}

/// `value`, or [`MASK`] when the header's name suggests a credential.
pub fn masked_header_value<'a>(name: &str, value: &'a str) -> &'a str {
    if is_sensitive_header(name) {
        MASK
    } else {
        value
    }
}

/// A request ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboundRequest {
    pub method: &'static str,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Lower-case names of headers whose values are secrets (masked in records and logs).
    pub sensitive: Vec<String>,
}

impl OutboundRequest {
    /// The request as it may be stored or shown: secret header values masked.
    pub fn record(&self) -> RequestRecord {
        let headers = self
            .headers
            .iter()
            .map(|(k, v)| {
                let masked = is_sensitive_header(k)
                    || self.sensitive.iter().any(|s| s.eq_ignore_ascii_case(k));
                (k.clone(), if masked { mask_value(v) } else { v.clone() })
            })
            .collect();
        RequestRecord {
            method: self.method.to_owned(),
            url: self.url.clone(),
            headers,
        }
    }
}

/// Masks a header value, keeping an auth scheme word (`Basic ****`) so records stay readable.
fn mask_value(v: &str) -> String {
    match v.split_once(' ') {
        Some((scheme, _)) if matches!(scheme, "Basic" | "Bearer") => format!("{scheme} {MASK}"),
        _ => MASK.to_owned(),
    }
}

/// Why a request could not be built; the delivery fails permanently with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct BuildError {
    /// The webhook field at fault (`body.template`, `body.fields[0].value`), when one is.
    pub field: Option<String>,
    pub message: String,
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{field}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl BuildError {
    fn new(message: impl Into<String>) -> Self {
        Self {
            field: None,
            message: message.into(),
        }
    }

    fn at(field: impl Into<String>, message: impl std::fmt::Display) -> Self {
        Self {
            field: Some(field.into()),
            message: message.to_string(),
        }
    }
}

/// Everything about one try that is not in the webhook or the event.
#[derive(Debug, Clone, Copy)]
pub struct SendContext<'a> {
    /// The delivery id: the `webhook-id` header, and `delivery.id` in templates.
    pub delivery_id: &'a str,
    /// The attempt number, from 1: `delivery.attempt` in templates.
    pub attempt: u32,
    /// Seconds since the epoch: the `webhook-timestamp` header.
    pub now_secs: i64,
    pub now_ms: i64,
    /// The server's `default_headers`, under the webhook's own.
    pub default_headers: &'a [(String, String)],
    /// The webhook's `events` entry the delivery was queued for (APIO's `event.id`); `None` for
    /// webhooks without entries and for test sends.
    pub entry_index: Option<u32>,
    /// A schedule's `message` template: when set, it is the body in place of the webhook's own
    /// (rendered like a `text` body).
    pub message: Option<&'a str>,
}

/// Builds the request `webhook` sends for `event`.
pub fn build_request(
    webhook: &Webhook,
    event: &Event,
    ctx: &SendContext<'_>,
) -> Result<OutboundRequest, BuildError> {
    let spec = &webhook.spec;
    let (body, content_type) = render_body(webhook, event, ctx)?;
    let mut headers = HeaderList::default();
    headers.set("Content-Type", content_type);
    headers.set("User-Agent", &format!("hookd/{}", crate::VERSION));
    for (k, v) in ctx.default_headers {
        headers.set(k, v);
    }
    for (k, v) in &spec.headers {
        match v {
            Some(v) => headers.set(k, v),
            None => headers.remove(k),
        }
    }
    let mut sensitive = Vec::new();
    match &spec.auth {
        AuthConfig::None => {}
        AuthConfig::Basic { username, password } => {
            let token = B64.encode(format!("{username}:{password}"));
            headers.set("Authorization", &format!("Basic {token}"));
            sensitive.push("authorization".to_owned());
        }
        AuthConfig::Bearer { token } => {
            headers.set("Authorization", &format!("Bearer {token}"));
            sensitive.push("authorization".to_owned());
        }
        AuthConfig::ApiKey { header, value } => {
            headers.set(header, value);
            sensitive.push(header.to_ascii_lowercase());
        }
    }
    sign(&mut headers, spec, ctx, &body)?;
    Ok(OutboundRequest {
        method: spec.method.as_str(),
        url: spec.url.clone(),
        headers: headers.0,
        body,
        sensitive,
    })
}

/// The body `webhook` sends for `event`, and the `Content-Type` it goes with unless the headers
/// say otherwise.
fn render_body(
    webhook: &Webhook,
    event: &Event,
    ctx: &SendContext<'_>,
) -> Result<(Vec<u8>, &'static str), BuildError> {
    const JSON: &str = "application/json";
    let spec = &webhook.spec;
    let scope = || {
        Context::for_event(event)
            .with_webhook(webhook.id.as_str(), &spec.name)
            .with_delivery(ctx.delivery_id, ctx.attempt)
    };
    if let Some(message) = ctx.message {
        return Ok((render("message", message, &scope())?.into_bytes(), JSON));
    }
    match &spec.body {
        BodyConfig::Default => {
            let secret = spec.include_secret.then(|| spec.secret.expose());
            let payload = PayloadContext {
                delivery_id: ctx.delivery_id,
                entry: entry_ref(spec, ctx.entry_index),
            };
            let body = serde_json::to_vec(&default_payload(event, &payload, secret))
                .map_err(|e| BuildError::new(format!("payload is not serialisable: {e}")))?;
            Ok((body, JSON))
        }
        BodyConfig::Json { template } => {
            let text = render("body.template", template, &scope())?;
            if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&text) {
                let msg = format!("rendered invalid JSON ({e})");
                return Err(BuildError::at("body.template", msg));
            }
            Ok((text.into_bytes(), JSON))
        }
        BodyConfig::Form { fields } => {
            let scope = scope();
            let mut pairs = Vec::with_capacity(fields.len());
            for (i, f) in fields.iter().enumerate() {
                let value = render(&format!("body.fields[{i}].value"), &f.value, &scope)?;
                pairs.push((f.key.as_str(), value));
            }
            let body = form_urlencode(pairs.iter().map(|(k, v)| (*k, v.as_str())));
            Ok((body.into_bytes(), "application/x-www-form-urlencoded"))
        }
        BodyConfig::Text { template } => Ok((
            render("body.template", template, &scope())?.into_bytes(),
            JSON,
        )),
    }
}

/// The `events` entry at `index` with its label. An index past the entries (they were edited
/// since the delivery was queued) keeps its number without a label.
fn entry_ref(spec: &WebhookSpec, index: Option<u32>) -> Option<EntryRef<'_>> {
    let index = index?;
    let label = spec
        .events
        .get(index as usize)
        .and_then(|f| f.label.as_deref());
    Some(EntryRef { index, label })
}

/// Compiles and renders one template of the body, naming `field` on error.
fn render(field: &str, source: &str, scope: &Context) -> Result<String, BuildError> {
    Template::compile(source)
        .and_then(|t| t.render(scope))
        .map_err(|e| BuildError::at(field, e))
}

/// `application/x-www-form-urlencoded` (WHATWG URL §5): alphanumerics and `*-._` as they are,
/// space as `+`, every other byte as `%XX`.
pub fn form_urlencode<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    fn encode(out: &mut String, s: &str) {
        for b in s.bytes() {
            match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                    out.push(b as char)
                }
                b' ' => out.push('+'),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
    }
    let mut out = String::new();
    for (i, (k, v)) in pairs.into_iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        encode(&mut out, k);
        out.push('=');
        encode(&mut out, v);
    }
    out
}

/// Adds the signature headers of `spec`'s scheme.
fn sign(
    headers: &mut HeaderList,
    spec: &WebhookSpec,
    ctx: &SendContext<'_>,
    body: &[u8],
) -> Result<(), BuildError> {
    // A previous secret of another scheme (left by a scheme change) cannot sign: it is skipped.
    let previous = spec
        .previous_secret
        .as_ref()
        .filter(|p| p.expires_at > ctx.now_ms && p.secret.fits(&spec.signature))
        .map(|p| &p.secret);
    let (id, ts) = (ctx.delivery_id, ctx.now_secs);
    let list = match &spec.signature {
        SignatureConfig::Standard => signature_list(&spec.secret, previous, |s| {
            Ok(sign_standard(s, id, ts, body))
        })?,
        SignatureConfig::Ed25519 => {
            signature_list(&spec.secret, previous, |s| sign_ed25519(s, id, ts, body))?
        }
        SignatureConfig::HmacSha256 {
            header,
            encoding,
            prefix,
        } => {
            // The header holds exactly one value, and the receivers of this scheme (Frappe,
            // GitHub style) compare against one value: a second, space-separated signature would
            // break them all. So during a rotation only the new secret signs; receivers switch
            // secrets when they fetch the new one.
            let value = sign_hmac_sha256(&spec.secret, body, *encoding, prefix.as_deref());
            headers.set(header, &value);
            return Ok(());
        }
        SignatureConfig::None => return Ok(()),
    };
    headers.set("webhook-id", id);
    headers.set("webhook-timestamp", &ts.to_string());
    headers.set("webhook-signature", &list);
    Ok(())
}

/// The space-separated `webhook-signature` entries: the current secret's, then the previous one's.
fn signature_list(
    current: &SigningSecret,
    previous: Option<&SigningSecret>,
    sign: impl Fn(&SigningSecret) -> Result<String, String>,
) -> Result<String, BuildError> {
    let mut list = sign(current).map_err(|e| {
        BuildError::new(format!(
            "the signing secret does not fit the signature scheme: it {e}"
        ))
    })?;
    if let Some(Ok(old)) = previous.map(&sign) {
        list.push(' ');
        list.push_str(&old);
    }
    Ok(list)
}

/// Headers with case-insensitive replacement that keeps the first spelling's position.
#[derive(Debug, Default)]
struct HeaderList(Vec<(String, String)>);

impl HeaderList {
    fn set(&mut self, name: &str, value: &str) {
        match self
            .0
            .iter_mut()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
        {
            Some(slot) => *slot = (name.to_owned(), value.to_owned()),
            None => self.0.push((name.to_owned(), value.to_owned())),
        }
    }

    fn remove(&mut self, name: &str) {
        self.0.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::signature::{verify_ed25519, verify_standard, HmacEncoding};
    use crate::webhook::{HttpMethod, PreviousSecret};
    use crate::{EventId, WebhookId};

    fn webhook(headers: BTreeMap<String, Option<String>>, auth: AuthConfig) -> Webhook {
        Webhook {
            id: WebhookId::generate(0),
            active: true,
            disabled_reason: None,
            failing_since: None,
            spec: WebhookSpec {
                name: "w".into(),
                description: None,
                url: "http://example.com/h".into(),
                method: HttpMethod::Post,
                events: vec![],
                condition: None,
                headers,
                auth,
                secret: SigningSecret::parse_standard("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
                    .unwrap(),
                previous_secret: None,
                signature: SignatureConfig::Standard,
                include_secret: false,
                body: BodyConfig::Default,
                tls_verify: true,
                timeout_ms: None,
                max_attempts: None,
                retry_schedule: None,
                max_in_flight: None,
                rate_limit_per_second: None,
            },
            created_at: 0,
            updated_at: 0,
            circuit: Default::default(),
        }
    }

    fn event() -> Event {
        Event {
            id: EventId::generate(0),
            event_type: "invoice.paid".into(),
            model: None,
            data: json!({"n": 1}),
            occurred_at: 0,
            idempotency_key: None,
            created_at: 0,
        }
    }

    fn header<'a>(r: &'a OutboundRequest, name: &str) -> Option<&'a str> {
        r.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    const CTX: SendContext<'static> = SendContext {
        delivery_id: "dlv_x",
        attempt: 1,
        now_secs: 1_700_000_000,
        now_ms: 0,
        default_headers: &[],
        entry_index: None,
        message: None,
    };

    #[test]
    fn a_schedule_message_replaces_the_body() {
        let mut w = webhook(BTreeMap::new(), AuthConfig::None);
        w.spec.body = BodyConfig::Form { fields: vec![] };
        let ctx = SendContext {
            message: Some(r#"{"text": "n is {{ data.n }}"}"#),
            ..CTX
        };
        let r = build_request(&w, &event(), &ctx).unwrap();
        assert_eq!(r.body, br#"{"text": "n is 1"}"#);
        assert_eq!(header(&r, "content-type"), Some("application/json"));
        let bad = SendContext {
            message: Some("{{ oops"),
            ..CTX
        };
        let err = build_request(&w, &event(), &bad).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("message"));
    }

    #[test]
    fn headers_merge_case_insensitively_and_null_removes_content_type() {
        let defaults = vec![("X-Env".to_string(), "prod".to_string())];
        let ctx = SendContext {
            default_headers: &defaults,
            ..CTX
        };
        let mut h = BTreeMap::new();
        h.insert("content-type".to_string(), None);
        h.insert("x-env".to_string(), Some("staging".to_string()));
        let r = build_request(&webhook(h, AuthConfig::None), &event(), &ctx).unwrap();
        assert_eq!(header(&r, "Content-Type"), None);
        assert_eq!(header(&r, "X-Env"), Some("staging"));
        assert_eq!(
            r.headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case("x-env"))
                .count(),
            1
        );
        assert_eq!(
            header(&r, "User-Agent"),
            Some(format!("hookd/{}", crate::VERSION).as_str())
        );
    }

    fn with_body(body: BodyConfig) -> Result<OutboundRequest, BuildError> {
        let mut w = webhook(BTreeMap::new(), AuthConfig::None);
        w.spec.body = body;
        build_request(&w, &event(), &CTX)
    }

    #[test]
    fn template_bodies_are_sent_as_rendered_with_their_content_type() {
        let r = with_body(BodyConfig::Json {
            template: r#"{"n": {{ data.n }}, "d": "{{ delivery.id }}/{{ delivery.attempt }}"}"#
                .into(),
        })
        .unwrap();
        assert_eq!(r.body, br#"{"n": 1, "d": "dlv_x/1"}"#);
        assert_eq!(header(&r, "content-type"), Some("application/json"));
        let r = with_body(BodyConfig::Form {
            fields: vec![crate::webhook::FormField {
                key: "a b".into(),
                value: "{{ event.type }}&=é".into(),
            }],
        })
        .unwrap();
        assert_eq!(r.body, b"a+b=invoice.paid%26%3D%C3%A9");
        let form = "application/x-www-form-urlencoded";
        assert_eq!(header(&r, "content-type"), Some(form));
        let r = with_body(BodyConfig::Text {
            template: "paid: {{ data.n }}".into(),
        })
        .unwrap();
        assert_eq!(r.body, b"paid: 1");
    }

    #[test]
    fn a_json_template_that_renders_invalid_json_fails_naming_the_field() {
        let e = with_body(BodyConfig::Json {
            template: "{{ data.n }},".into(),
        })
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("body.template"));
        assert!(e.message.contains("invalid JSON"), "{e}");
    }

    #[test]
    fn signature_verifies_and_auth_is_masked_in_the_record() {
        let auth = AuthConfig::Basic {
            username: "u".into(),
            password: "p".into(),
        };
        let r = build_request(&webhook(BTreeMap::new(), auth), &event(), &CTX).unwrap();
        verify_standard(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            header(&r, "webhook-id"),
            header(&r, "webhook-timestamp"),
            header(&r, "webhook-signature"),
            &r.body,
            1_700_000_000,
        )
        .unwrap();
        let rec = r.record();
        let auth = rec
            .headers
            .iter()
            .find(|(k, _)| k == "Authorization")
            .unwrap();
        assert_eq!(auth.1, "Basic ****");
    }

    fn signed_with(signature: SignatureConfig) -> Webhook {
        let mut w = webhook(BTreeMap::new(), AuthConfig::None);
        w.spec.secret = SigningSecret::generate_for(&signature);
        w.spec.signature = signature;
        w
    }

    fn rotated(w: &mut Webhook) -> SigningSecret {
        let fresh = SigningSecret::generate_for(&w.spec.signature);
        let old = std::mem::replace(&mut w.spec.secret, fresh);
        w.spec.previous_secret = Some(PreviousSecret {
            secret: old.clone(),
            expires_at: CTX.now_ms + 1,
        });
        old
    }

    #[test]
    fn ed25519_signs_with_both_keys_during_a_rotation() {
        let mut w = signed_with(SignatureConfig::Ed25519);
        let old = rotated(&mut w);
        let r = build_request(&w, &event(), &CTX).unwrap();
        let sigs = header(&r, "webhook-signature").unwrap();
        assert_eq!(sigs.matches("v1a,").count(), 2, "{sigs}");
        for secret in [&w.spec.secret, &old] {
            let pk = secret.public_key().unwrap();
            let headers = ["webhook-id", "webhook-timestamp"].map(|h| header(&r, h));
            verify_ed25519(
                &pk,
                headers[0],
                headers[1],
                Some(sigs),
                &r.body,
                CTX.now_secs,
            )
            .unwrap();
        }
    }

    #[test]
    fn hmac_sha256_sends_one_value_in_its_header_even_during_a_rotation() {
        let mut w = signed_with(SignatureConfig::HmacSha256 {
            header: "X-Hub-Signature-256".into(),
            encoding: HmacEncoding::Hex,
            prefix: Some("sha256=".into()),
        });
        rotated(&mut w);
        let r = build_request(&w, &event(), &CTX).unwrap();
        let value = header(&r, "x-hub-signature-256").unwrap();
        assert!(
            value.starts_with("sha256=") && !value.contains(' '),
            "{value}"
        );
        assert_eq!(header(&r, "webhook-signature"), None);
        let secret = w.spec.secret.expose();
        let prefix = Some("sha256=");
        let r = verify_hmac(secret, value, &r.body, HmacEncoding::Hex, prefix);
        assert_eq!(r, Ok(()));
    }

    fn verify_hmac(
        secret: &str,
        value: &str,
        body: &[u8],
        encoding: HmacEncoding,
        prefix: Option<&str>,
    ) -> Result<(), crate::signature::VerifyError> {
        crate::signature::verify_hmac_sha256(secret, "h", Some(value), body, encoding, prefix)
    }

    #[test]
    fn a_secret_that_does_not_fit_the_scheme_fails_the_build_and_an_old_one_is_skipped() {
        let mut w = signed_with(SignatureConfig::Standard);
        rotated(&mut w);
        w.spec.signature = SignatureConfig::Ed25519;
        assert!(build_request(&w, &event(), &CTX).is_err());
        w.spec.secret = SigningSecret::generate_for(&SignatureConfig::Ed25519);
        let r = build_request(&w, &event(), &CTX).unwrap();
        let sigs = header(&r, "webhook-signature").unwrap();
        assert!(sigs.starts_with("v1a,") && !sigs.contains(' '), "{sigs}");
    }
}
