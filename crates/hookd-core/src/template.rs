//! Templates and conditions (SPEC §6): Jinja syntax through minijinja, run in a sandbox.
//!
//! The sandbox has no loader and no `include`, `import` or `extends` (minijinja is built without
//! `multi_template`), so a template cannot read files; nothing in it reaches the network. A fuel
//! budget bounds how many instructions one render or evaluation may run, and output is capped.
//! Sources are compiled when a webhook is saved (to refuse errors with their position) and again
//! when it is loaded for use.
//!
//! Undefined values are **lenient**, as in Jinja and Frappe: a missing field prints as nothing,
//! iterates as an empty list and is false in `if`, so `data.status == "Open"` is simply false for
//! an event without a `status` and `{% if doc.note %}` works for optional fields. Event data has no
//! schema, and a strict mode would turn every optional field into an error per event. Looking up a
//! field *of* a missing value (`data.missing.x`) is still an error. Typos are best caught with
//! `POST /webhooks/{id}/preview`.
//!
//! This module knows nothing of HTTP: [`crate::outbound`] decides what a rendering means for a
//! request.

use std::fmt;
use std::io;
use std::sync::LazyLock;

use minijinja::value::{merge_maps, Serde, Value};
use minijinja::{AutoEscape, Environment, ErrorKind, Expression, UndefinedBehavior};

use crate::event::Event;
use crate::route_call;
use crate::time::rfc3339;

/// Largest output one template may render; past it the render fails.
pub const MAX_OUTPUT: usize = 256 * 1024;

/// Instructions one render or evaluation may run (a few milliseconds of work); a template that
/// needs more, such as a huge loop, fails with "out of fuel" instead of holding a worker.
pub const FUEL: u64 = 1_000_000;

/// The name a body template is stored under in its environment.
const NAME: &str = "template";

/// A template or condition that did not compile or render, with where it went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct TemplateError {
    /// 1-based line in the source, when known.
    pub line: Option<usize>,
    /// 1-based column (in characters) in that line, when known.
    pub column: Option<usize>,
    pub message: String,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "line {l}, column {c}: {}", self.message),
            (Some(l), None) => write!(f, "line {l}: {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

impl TemplateError {
    fn new(e: &minijinja::Error, source: &str) -> Self {
        let message = match (e.kind(), e.detail()) {
            (ErrorKind::OutOfFuel, _) => format!("ran out of fuel ({FUEL} instructions)"),
            (kind, Some(detail)) => format!("{kind}: {detail}"),
            (kind, None) => kind.to_string(),
        };
        let column = e.range().and_then(|r| column_of(source, r.start));
        Self {
            line: e.line(),
            column,
            message,
        }
    }
}

/// The 1-based column of byte `offset` within its line.
fn column_of(source: &str, offset: usize) -> Option<usize> {
    let before = source.get(..offset)?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    Some(before[line_start..].chars().count() + 1)
}

/// An environment with the sandbox's limits and no loader.
fn sandbox() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_fuel(Some(FUEL));
    env.set_undefined_behavior(UndefinedBehavior::Lenient);
    // Bodies are JSON, form values or plain text, never HTML: nothing is escaped implicitly.
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env
}

/// Conditions need no templates of their own, so they share one environment.
static CONDITIONS: LazyLock<Environment<'static>> = LazyLock::new(sandbox);

/// A compiled body template.
pub struct Template {
    /// Holds exactly one template, named [`NAME`].
    env: Environment<'static>,
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Template").finish_non_exhaustive()
    }
}

impl Template {
    /// Compiles `source`; a syntax error comes back with its line.
    pub fn compile(source: &str) -> Result<Self, TemplateError> {
        let mut env = sandbox();
        env.add_template_owned(NAME, source.to_owned())
            .map_err(|e| TemplateError::new(&e, source))?;
        Ok(Self { env })
    }

    /// Renders the template in `ctx`, within the fuel budget and [`MAX_OUTPUT`].
    pub fn render(&self, ctx: &Context) -> Result<String, TemplateError> {
        let template = self
            .env
            .get_template(NAME)
            .map_err(|e| TemplateError::new(&e, ""))?;
        let mut out = Capped::default();
        match template.render_captured_to(ctx.0.clone(), &mut out) {
            Ok(_) => String::from_utf8(out.buf).map_err(|_| TemplateError {
                line: None,
                column: None,
                message: "rendered invalid UTF-8".into(),
            }),
            Err(e) if out.overflowed => Err(TemplateError {
                line: e.line(),
                column: None,
                message: format!("output is larger than {} KiB", MAX_OUTPUT / 1024),
            }),
            Err(e) => Err(TemplateError::new(&e, template.source())),
        }
    }
}

/// A writer that refuses to grow past [`MAX_OUTPUT`].
#[derive(Default)]
struct Capped {
    buf: Vec<u8>,
    overflowed: bool,
}

impl io::Write for Capped {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() + data.len() > MAX_OUTPUT {
            self.overflowed = true;
            return Err(io::Error::other("output too large"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A compiled condition: an expression whose truth decides whether a webhook fires.
pub struct Condition {
    expr: Expression<'static, 'static>,
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condition").finish_non_exhaustive()
    }
}

impl Condition {
    /// Compiles `expr`; a syntax error comes back with its line and column.
    pub fn compile(expr: &str) -> Result<Self, TemplateError> {
        let compiled = CONDITIONS
            .compile_expression_owned(expr.to_owned())
            .map_err(|e| TemplateError::new(&e, expr))?;
        Ok(Self { expr: compiled })
    }

    /// Whether the condition holds in `ctx` (Jinja truth: empty, zero, `none` and undefined
    /// are false).
    pub fn evaluate(&self, ctx: &Context) -> Result<bool, TemplateError> {
        self.expr
            .eval(ctx.0.clone())
            .map(|v| v.is_true())
            .map_err(|e| TemplateError::new(&e, ""))
    }
}

/// `schedule` (`id`, `name`, `occurrence`, `skipped`) of a `schedule.fired` event (SPEC §6),
/// from the event's data ([`crate::schedule::fired_data`]).
fn schedule_value(data: &serde_json::Value) -> Value {
    let text = |key: &str| Value::from(data.get(key).and_then(|v| v.as_str()).map(str::to_owned));
    Value::from_pairs([
        ("id", text("schedule_id")),
        ("name", text("name")),
        ("occurrence", text("occurrence")),
        (
            "skipped",
            Value::from(
                data.get("skipped")
                    .and_then(serde_json::Value::as_u64)
                    .unwrap_or(0),
            ),
        ),
    ])
}

/// The variables templates and conditions see. Built once per event; webhook and delivery
/// variables are layered on top without copying the event data. Route calls add `request` and
/// `response` (APIO's names).
#[derive(Debug, Clone)]
pub struct Context(Value);

impl Context {
    /// `event` (`id`, `type`, `model`, `occurred_at` in RFC 3339), and `data` with its alias
    /// `doc` (Frappe's name for the document). For a `route.call` event, also `request` (`tag`,
    /// `method`, `url`, `body`) and `response` (`status`, `body`).
    pub fn for_event(event: &Event) -> Self {
        let base = Self::for_any_event(event);
        if event.event_type == crate::schedule::SCHEDULE_FIRED {
            return base.layer("schedule", schedule_value(&event.data));
        }
        if event.event_type != route_call::ROUTE_CALL {
            return base;
        }
        let request = Value::from(Serde(&route_call::request_value(event)));
        let response = Value::from(Serde(&route_call::response_value(event)));
        base.layer("request", request).layer("response", response)
    }

    fn for_any_event(event: &Event) -> Self {
        let data = Value::from(Serde(&event.data));
        let meta = Value::from_pairs([
            ("id", Value::from(event.id.to_string())),
            ("type", Value::from(event.event_type.as_str())),
            ("model", Value::from(event.model.clone())),
            ("occurred_at", Value::from(rfc3339(event.occurred_at))),
        ]);
        Self(Value::from_pairs([
            ("event", meta),
            ("data", data.clone()),
            ("doc", data),
        ]))
    }

    /// Any JSON object as the variables, each key a top-level name (inbound workflows, whose
    /// scope is [`crate::inbound::parse::variables`] plus what earlier nodes saved).
    pub fn from_value<T: serde::Serialize + ?Sized>(value: &T) -> Self {
        Self(Value::from(Serde(value)))
    }

    /// Adds `webhook` (`id`, `name`).
    pub fn with_webhook(&self, id: &str, name: &str) -> Self {
        let webhook = Value::from_pairs([("id", id), ("name", name)]);
        self.layer("webhook", webhook)
    }

    /// Adds `delivery` (`id`, `attempt`, counted from 1).
    pub fn with_delivery(&self, id: &str, attempt: u32) -> Self {
        let delivery = Value::from_pairs([("id", Value::from(id)), ("attempt", attempt.into())]);
        self.layer("delivery", delivery)
    }

    fn layer(&self, name: &str, value: Value) -> Self {
        let top = Value::from_pairs([(name, value)]);
        Self(merge_maps([top, self.0.clone()]))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ctx(data: serde_json::Value) -> Context {
        let event = Event {
            id: crate::EventId::generate(0),
            event_type: "doc.update".into(),
            model: Some("Lead".into()),
            data,
            occurred_at: 1_578_646_056_649,
            idempotency_key: None,
            created_at: 0,
        };
        Context::for_event(&event)
            .with_webhook("wh_1", "crm")
            .with_delivery("dlv_1", 2)
    }

    fn render(source: &str, data: serde_json::Value) -> Result<String, TemplateError> {
        Template::compile(source)?.render(&ctx(data))
    }

    #[test]
    fn a_schedule_message_can_name_its_schedule() {
        let event = Event {
            id: crate::EventId::generate(0),
            event_type: crate::schedule::SCHEDULE_FIRED.into(),
            model: None,
            data: json!({"schedule_id": "sch_1", "name": "nightly",
                         "occurrence": "2026-12-01T02:00:00Z", "skipped": 3, "manual": false}),
            occurred_at: 0,
            idempotency_key: None,
            created_at: 0,
        };
        let t = Template::compile(
            "tick {{ schedule.name }} {{ schedule.id }} {{ schedule.occurrence }} {{ schedule.skipped }}",
        )
        .unwrap();
        assert_eq!(
            t.render(&Context::for_event(&event)).unwrap(),
            "tick nightly sch_1 2026-12-01T02:00:00Z 3"
        );
        let other = Template::compile("[{{ schedule }}]").unwrap();
        assert_eq!(
            other.render(&ctx(json!({}))).unwrap(),
            "[]",
            "other events have no schedule"
        );
    }

    #[test]
    fn the_context_has_event_data_doc_webhook_and_delivery() {
        let out = render(
            "{{ event.type }} {{ event.model }} {{ event.occurred_at }} {{ data.n }} {{ doc.n }} \
             {{ webhook.id }} {{ webhook.name }} {{ delivery.id }} {{ delivery.attempt }}",
            json!({"n": 7}),
        );
        assert_eq!(
            out.unwrap(),
            "doc.update Lead 2020-01-10T08:47:36.649Z 7 7 wh_1 crm dlv_1 2"
        );
    }

    #[test]
    fn route_calls_have_request_and_response() {
        let event = Event {
            id: crate::EventId::generate(0),
            event_type: route_call::ROUTE_CALL.into(),
            model: None,
            data: json!({"tag": "shop", "method": "POST", "url": "/orders/1", "body": {"n": 2},
                         "response": {"status": 201, "body": {"ok": true}}}),
            occurred_at: 0,
            idempotency_key: None,
            created_at: 0,
        };
        let source =
            "{{ request.tag }} {{ request.method }} {{ request.url }} {{ request.body.n }} \
                      {{ response.status }} {{ response.body | tojson }}";
        let out = Template::compile(source)
            .unwrap()
            .render(&Context::for_event(&event));
        assert_eq!(out.unwrap(), r#"shop POST /orders/1 2 201 {"ok": true}"#);
        let c = Condition::compile("response.status == 201").unwrap();
        assert_eq!(c.evaluate(&Context::for_event(&event)), Ok(true));
    }

    #[test]
    fn tojson_output_is_valid_json_even_for_hostile_strings() {
        let hostile = "quote \" back \\ new\nline </script> & 'x' \u{2028}";
        let out = render(
            r#"{"name": {{ data.name | tojson }}, "all": {{ data | tojson }}}"#,
            json!({"name": hostile}),
        )
        .unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed["name"], hostile);
        assert_eq!(parsed["all"]["name"], hostile);
        assert!(!out.contains("</script>"), "{out}");
    }

    #[test]
    fn a_huge_loop_runs_out_of_fuel() {
        let e = render(
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            json!({}),
        )
        .unwrap_err();
        assert!(e.message.contains("fuel"), "{e}");
    }

    #[test]
    fn output_is_capped() {
        let e = render(
            "{% for i in range(100) %}{{ 'x' * 10000 }}{% endfor %}",
            json!({}),
        )
        .unwrap_err();
        assert!(e.message.contains("larger than 256 KiB"), "{e}");
        assert!(render("{{ 'x' * 1000 }}", json!({})).is_ok());
    }

    #[test]
    fn undefined_values_are_lenient_but_their_fields_are_not() {
        assert_eq!(render("[{{ data.missing }}]", json!({})).unwrap(), "[]");
        let cond = Condition::compile(r#"doc.status == "Open""#).unwrap();
        assert_eq!(cond.evaluate(&ctx(json!({}))), Ok(false));
        assert!(render("{{ data.missing.deeper }}", json!({})).is_err());
    }

    #[test]
    fn conditions_evaluate_with_jinja_truth() {
        let open = ctx(json!({"status": "Open", "grand_total": 1500}));
        for (expr, want) in [
            (r#"doc.status == "Open""#, true),
            (r#"data.status == "Closed""#, false),
            ("doc.grand_total > 1000", true),
            (r#"event.model == "Lead" and webhook.name == "crm""#, true),
            ("data.missing", false),
        ] {
            let c = Condition::compile(expr).unwrap();
            assert_eq!(c.evaluate(&open), Ok(want), "{expr}");
        }
    }

    #[test]
    fn compile_errors_carry_their_position() {
        let e = Template::compile("line one\n{{ data.x }}\n{% if %}").unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        let e = Condition::compile(r#"doc.status == "Open" and"#).unwrap_err();
        assert_eq!(e.line, Some(1), "{e}");
        assert!(e.column.is_some(), "{e}");
        assert!(e.to_string().starts_with("line 1, column "), "{e}");
    }

    #[test]
    fn there_is_no_file_access() {
        // Without the `multi_template` feature there is no `include`, `import` or `extends`.
        let e = Template::compile("{% include '/etc/passwd' %}").unwrap_err();
        assert!(e.message.contains("unknown statement"), "{e}");
    }
}
