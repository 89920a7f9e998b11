//! Compiling a workflow: every template and expression compiled, every name and limit checked,
//! errors named by the path of the node's field; and finding the field of a node serde refused.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::{
    ConditionNode, Kind, Node, PublishNode, RequestNode, RequestStep, ResponseNode, SetNode, Step,
    Workflow, DEFAULT_REQUEST_TIMEOUT_MS, MAX_DEPTH, MAX_NODES,
};
use crate::event::EventType;
use crate::inbound::spec::{field_error, MAX_TIMEOUT_MS};
use crate::inbound::{is_identifier, FieldError};
use crate::route_call::is_http_token;
use crate::template::{Condition, Template};

/// Compiles `nodes` (the hook's `workflow`), refusing the first bad field by its path.
pub fn compile(nodes: &[Node]) -> Result<Workflow, FieldError> {
    let mut count = 0;
    let steps = compile_list(nodes, "workflow", 1, &mut count)?;
    Ok(Workflow { steps })
}

fn compile_list(
    nodes: &[Node],
    path: &str,
    depth: usize,
    count: &mut usize,
) -> Result<Vec<Step>, FieldError> {
    nodes
        .iter()
        .enumerate()
        .map(|(i, node)| compile_node(node, format!("{path}[{i}]"), depth, count))
        .collect()
}

fn compile_node(
    node: &Node,
    path: String,
    depth: usize,
    count: &mut usize,
) -> Result<Step, FieldError> {
    *count += 1;
    if *count > MAX_NODES {
        let msg = format!("the workflow has more than {MAX_NODES} nodes");
        return Err(FieldError::new(path, msg));
    }
    if depth > MAX_DEPTH {
        let msg = format!("conditions are nested more than {MAX_DEPTH} deep");
        return Err(FieldError::new(path, msg));
    }
    let at = |field: &str| format!("{path}.{field}");
    let kind = match node {
        Node::Condition(c) => Kind::Condition {
            expr: Condition::compile(&c.expression)
                .map_err(|e| FieldError::new(at("expression"), format!("does not compile: {e}")))?,
            then: compile_list(&c.then, &at("then"), depth + 1, count)?,
            otherwise: compile_list(&c.otherwise, &at("else"), depth + 1, count)?,
        },
        Node::Set(s) => Kind::Set {
            name: identifier(&at("name"), &s.name)?,
            value: template(&at("value"), &s.value)?,
        },
        Node::Publish(p) => Kind::Publish {
            event_type: EventType::parse(&p.event_type)
                .map_err(|m| FieldError::new(at("event_type"), m))?
                .as_str()
                .to_owned(),
            model: p.model.clone(),
            data: template(&at("data"), &p.data)?,
            save_as: match &p.save_as {
                Some(name) => Some(identifier(&at("save_as"), name)?),
                None => None,
            },
        },
        Node::Request(r) => compile_request(r, &path)?,
        Node::Response(r) => {
            if !(100..=599).contains(&r.status) {
                return Err(FieldError::new(at("status"), "must be 100 to 599"));
            }
            Kind::Response {
                status: r.status,
                headers: header_templates(&at("headers"), &r.headers)?,
                body: template(&at("body"), &r.body)?,
            }
        }
    };
    Ok(Step { path, kind })
}

fn compile_request(r: &RequestNode, path: &str) -> Result<Kind, FieldError> {
    let at = |field: &str| format!("{path}.{field}");
    let method = r.method.to_ascii_uppercase();
    if !is_http_token(&method) {
        let msg = "must be an HTTP method such as POST";
        return Err(FieldError::new(at("method"), msg));
    }
    let timeout_ms = r.timeout_ms.unwrap_or(DEFAULT_REQUEST_TIMEOUT_MS);
    if !(1..=MAX_TIMEOUT_MS).contains(&timeout_ms) {
        let msg = format!("must be 1 to {} milliseconds", MAX_TIMEOUT_MS);
        return Err(FieldError::new(at("timeout_ms"), msg));
    }
    if carries_credentials(&r.url) {
        let msg = "must not carry credentials (`user:password@`): send them in `headers`";
        return Err(FieldError::new(at("url"), msg));
    }
    Ok(Kind::Request(Box::new(RequestStep {
        method,
        url: template(&at("url"), &r.url)?,
        headers: header_templates(&at("headers"), &r.headers)?,
        body: r
            .body
            .as_deref()
            .map(|b| template(&at("body"), b))
            .transpose()?,
        save_as: identifier(&at("save_as"), &r.save_as)?,
        timeout_ms,
    })))
}

/// Whether a URL (template) names user info in its authority: `scheme://user:pw@host/...`.
/// URLs end up in traces and logs; credentials belong in headers, which are masked.
pub(crate) fn carries_credentials(url: &str) -> bool {
    let Some((_, rest)) = url.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    authority.contains('@')
}

fn template(field: &str, source: &str) -> Result<Template, FieldError> {
    Template::compile(source).map_err(|e| FieldError::new(field, format!("does not compile: {e}")))
}

fn identifier(field: &str, name: &str) -> Result<String, FieldError> {
    if name == "request" {
        return Err(FieldError::new(field, "`request` is reserved"));
    }
    if !is_identifier(name) {
        let msg = "must be an identifier (letters, digits and `_`, not starting with a digit)";
        return Err(FieldError::new(field, msg));
    }
    Ok(name.to_owned())
}

fn header_templates(
    field: &str,
    headers: &BTreeMap<String, String>,
) -> Result<Vec<(String, Template)>, FieldError> {
    headers
        .iter()
        .map(|(name, source)| {
            let at = format!("{field}.{name}");
            if !is_http_token(name) {
                return Err(FieldError::new(at, "is not a valid HTTP header name"));
            }
            Ok((name.clone(), template(&at, source)?))
        })
        .collect()
}

/// Finds where a workflow that serde refused went wrong, node by node, so the error names the
/// field (`workflow[0].then[1].status`) instead of only the outer node. `None` when every node
/// reads on its own (the caller keeps serde's error).
pub(crate) fn locate_error(workflow: &Value) -> Option<FieldError> {
    locate_in(workflow, "workflow")
}

fn locate_in(nodes: &Value, path: &str) -> Option<FieldError> {
    let Some(nodes) = nodes.as_array() else {
        return Some(FieldError::new(path, "must be a list of nodes"));
    };
    nodes.iter().enumerate().find_map(|(i, node)| {
        let path = format!("{path}[{i}]");
        let Some(fields) = node.as_object() else {
            return Some(FieldError::new(path, "must be an object with a `type`"));
        };
        let mut fields = fields.clone();
        let kind = fields.remove("type");
        let check = |fields: Map<String, Value>, f: fn(&Value) -> Result<(), FieldError>| {
            f(&Value::Object(fields)).err().map(|e| {
                let inner = if e.path.is_empty() {
                    path.clone()
                } else {
                    format!("{path}.{}", e.path)
                };
                FieldError::new(inner, e.message)
            })
        };
        match kind.as_ref().and_then(Value::as_str) {
            Some("condition") => {
                let then = fields.insert("then".into(), json!([]));
                let otherwise = fields.insert("else".into(), json!([]));
                check(fields, read::<ConditionNode>)
                    .or_else(|| then.and_then(|t| locate_in(&t, &format!("{path}.then"))))
                    .or_else(|| otherwise.and_then(|o| locate_in(&o, &format!("{path}.else"))))
            }
            Some("set") => check(fields, read::<SetNode>),
            Some("publish") => check(fields, read::<PublishNode>),
            Some("request") => check(fields, read::<RequestNode>),
            Some("response") => check(fields, read::<ResponseNode>),
            Some(other) => Some(FieldError::new(
                format!("{path}.type"),
                format!(
                    "unknown node type `{other}`; use condition, set, publish, request or response"
                ),
            )),
            None => Some(FieldError::new(format!("{path}.type"), "is required")),
        }
    })
}

/// Reads one node's fields with serde, the error's path relative to the node.
fn read<T: serde::de::DeserializeOwned>(fields: &Value) -> Result<(), FieldError> {
    serde_path_to_error::deserialize::<_, T>(fields)
        .map(|_| ())
        .map_err(|e| {
            let path = e.path().to_string();
            let path = if path == "." { String::new() } else { path };
            field_error(&path, &e.inner().to_string())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(v: Value) -> Vec<Node> {
        serde_json::from_value(v).unwrap()
    }

    fn compile_error(workflow: Value) -> FieldError {
        compile(&nodes(workflow)).unwrap_err()
    }

    #[test]
    fn compile_refuses_bad_nodes_by_path() {
        let e = compile_error(json!([{"type": "set", "name": "ok", "value": "x"},
            {"type": "condition", "expression": "true", "then": [
                {"type": "set", "name": "a", "value": "x"},
                {"type": "publish", "event_type": "a.b", "data": "line one\n{{ x }\n"}]}]));
        assert_eq!(e.path, "workflow[1].then[1].data");
        assert!(e.message.contains("line 2"), "{e}");
        for (workflow, path) in [
            (
                json!([{"type": "set", "name": "1x", "value": ""}]),
                "workflow[0].name",
            ),
            (
                json!([{"type": "set", "name": "request", "value": ""}]),
                "workflow[0].name",
            ),
            (
                json!([{"type": "request", "url": "u", "save_as": "a-b"}]),
                "workflow[0].save_as",
            ),
            (
                json!([{"type": "request", "url": "u", "save_as": "r", "timeout_ms": 0}]),
                "workflow[0].timeout_ms",
            ),
            (
                json!([{"type": "request", "url": "u", "save_as": "r", "method": "G T"}]),
                "workflow[0].method",
            ),
            (
                json!([{"type": "request", "url": "{{", "save_as": "r"}]),
                "workflow[0].url",
            ),
            (
                json!([{"type": "request", "url": "http://me:pw@api.test/x", "save_as": "r"}]),
                "workflow[0].url",
            ),
            (
                json!([{"type": "request", "url": "u", "save_as": "r", "headers": {"X": "{% x %}"}}]),
                "workflow[0].headers.X",
            ),
            (
                json!([{"type": "publish", "event_type": "bad type", "data": "{}"}]),
                "workflow[0].event_type",
            ),
            (
                json!([{"type": "response", "status": 600}]),
                "workflow[0].status",
            ),
            (
                json!([{"type": "condition", "expression": "a ==", "then": []}]),
                "workflow[0].expression",
            ),
        ] {
            assert_eq!(compile_error(workflow).path, path);
        }
    }

    #[test]
    fn compile_bounds_depth_and_size() {
        let leaf = json!({"type": "set", "name": "a", "value": "x"});
        let nest = |levels: usize| {
            (0..levels).fold(
                leaf.clone(),
                |inner, _| json!({"type": "condition", "expression": "true", "then": [inner]}),
            )
        };
        assert!(
            compile(&nodes(json!([nest(15)]))).is_ok(),
            "16 levels: 15 conditions and a leaf"
        );
        let e = compile_error(json!([nest(16)]));
        assert_eq!(e.path, format!("workflow[0]{}", ".then[0]".repeat(16)));
        assert!(compile(&nodes(Value::Array(vec![leaf.clone(); MAX_NODES]))).is_ok());
        let e = compile_error(Value::Array(vec![leaf; MAX_NODES + 1]));
        assert_eq!(e.path, format!("workflow[{MAX_NODES}]"));
    }
}
