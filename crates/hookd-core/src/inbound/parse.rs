//! The request as workflow variables, as NocoBase's webhook trigger parses it (seed 003).
//!
//! A body is JSON when its `Content-Type` says so (`application/json`, `*+json`), a form when it is
//! `application/x-www-form-urlencoded`, and otherwise the raw text. The query string follows the
//! form rules. A repeated form key becomes an array of its values.
//!
//! Paths are written as NocoBase writes them: names joined by `.`, array indexes in brackets:
//! `a`, `b.c`, `items[0].id`, `query[0].a`; a body that is an array starts with `[0]`. Index `[0]`
//! of a value that is not an array is the value itself, so `tag[0]` reads a form field whether it
//! came once or several times.
//!
//! The paths a sample offers, for the API's parse button, are in [`super::sample`].

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{is_identifier, FieldError};
use crate::route_call::is_http_token;

/// Longest path accepted in a parse item.
pub const MAX_PATH_LEN: usize = 500;

/// Which parts of a request become top-level variables (the hook's `parse`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParseSpec {
    #[serde(default)]
    pub headers: Vec<HeaderItem>,
    #[serde(default)]
    pub query: Vec<PathItem>,
    #[serde(default)]
    pub body: Vec<PathItem>,
}

/// A header to expose, looked up case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderItem {
    pub name: String,
    /// The variable's name; without one, the header name as written here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
}

/// A query or body path to expose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathItem {
    pub path: String,
    /// The variable's name; without one, the path itself (reachable by name only when it is a
    /// plain identifier, so give paths such as `b.c` an alias).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
}

impl ParseSpec {
    /// Checks header names, path syntax and aliases; errors name `parse.<part>[i].<field>`.
    pub fn check(&self) -> Result<(), FieldError> {
        for (i, h) in self.headers.iter().enumerate() {
            if !is_http_token(&h.name) {
                let msg = "is not a valid HTTP header name";
                return Err(FieldError::new(format!("parse.headers[{i}].name"), msg));
            }
            check_alias(&format!("parse.headers[{i}].alias"), h.alias.as_deref())?;
        }
        for (part, items) in [("query", &self.query), ("body", &self.body)] {
            for (i, item) in items.iter().enumerate() {
                parse_path(&item.path)
                    .map_err(|m| FieldError::new(format!("parse.{part}[{i}].path"), m))?;
                check_alias(&format!("parse.{part}[{i}].alias"), item.alias.as_deref())?;
            }
        }
        Ok(())
    }
}

fn check_alias(field: &str, alias: Option<&str>) -> Result<(), FieldError> {
    match alias {
        Some("request") => Err(FieldError::new(field, "`request` is reserved")),
        Some(a) if !is_identifier(a) => Err(FieldError::new(
            field,
            "must be an identifier (letters, digits and `_`, not starting with a digit)",
        )),
        _ => Ok(()),
    }
}

/// One step of a path: a name, or an array index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// Splits a path into its steps, or says what is wrong with it.
pub fn parse_path(path: &str) -> Result<Vec<Step<'_>>, String> {
    if path.is_empty() || path.len() > MAX_PATH_LEN {
        return Err(format!("must be 1 to {MAX_PATH_LEN} characters"));
    }
    let mut steps = Vec::new();
    let mut rest = path;
    loop {
        let end = rest.find(['.', '[', ']']).unwrap_or(rest.len());
        let key = &rest[..end];
        rest = &rest[end..];
        if !key.is_empty() {
            steps.push(Step::Key(key));
        } else if !(steps.is_empty() && rest.starts_with('[')) {
            return Err("has an empty name (write `a.b`, `items[0].id`)".into());
        }
        while let Some(after) = rest.strip_prefix('[') {
            let close = after.find(']').ok_or("has a `[` without `]`")?;
            let digits = &after[..close];
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!(
                    "has `[{digits}]`; an index is a number such as `[0]`"
                ));
            }
            steps.push(Step::Index(
                digits.parse().map_err(|_| "has too large an index")?,
            ));
            rest = &after[close + 1..];
        }
        match rest.strip_prefix('.') {
            Some(after) => rest = after,
            None if rest.is_empty() => return Ok(steps),
            None => {
                let next = rest.chars().next().unwrap_or_default();
                return Err(format!("has an unexpected `{next}`"));
            }
        }
    }
}

/// The value at `path` in `value`; `None` when a step is missing or the path is not valid.
pub fn lookup<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    parse_path(path)
        .ok()?
        .into_iter()
        .try_fold(value, |v, step| match (step, v) {
            (Step::Key(k), Value::Object(map)) => map.get(k),
            (Step::Index(i), Value::Array(items)) => items.get(i),
            (Step::Index(0), other) => Some(other),
            _ => None,
        })
}

/// The body as workflow data: JSON parsed (or, when it does not parse, the raw text), a form as an
/// object, anything else as text (invalid UTF-8 replaced).
pub fn parse_body(content_type: Option<&str>, bytes: &[u8]) -> Value {
    let essence = content_type
        .and_then(|c| c.split(';').next())
        .map(|c| c.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let text = || String::from_utf8_lossy(bytes).into_owned();
    if essence == "application/json" || essence.ends_with("+json") {
        serde_json::from_slice(bytes).unwrap_or_else(|_| Value::String(text()))
    } else if essence == "application/x-www-form-urlencoded" {
        parse_query(&text())
    } else {
        Value::String(text())
    }
}

/// A query string (without `?`) or form body as an object; repeated keys become arrays.
pub fn parse_query(raw_query: &str) -> Value {
    let mut out = Map::new();
    for (key, value) in form_pairs(raw_query) {
        match out.get_mut(&key) {
            None => {
                out.insert(key, Value::String(value));
            }
            Some(Value::Array(values)) => values.push(Value::String(value)),
            Some(first) => *first = Value::Array(vec![first.take(), Value::String(value)]),
        }
    }
    Value::Object(out)
}

/// The decoded `name=value` pairs of a form, in order; a pair without `=` has an empty value.
pub(super) fn form_pairs(raw: &str) -> impl Iterator<Item = (String, String)> + '_ {
    raw.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (decode_component(k), decode_component(v))
    })
}

/// Form decoding: `+` is a space, `%XX` a byte; a `%` not followed by two hex digits stays.
fn decode_component(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |j: usize| bytes.get(j).and_then(|b| (*b as char).to_digit(16));
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if hex(i + 1).is_some() && hex(i + 2).is_some() => {
                out.push((hex(i + 1).unwrap_or(0) * 16 + hex(i + 2).unwrap_or(0)) as u8);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The workflow's variables for one request (SPEC §4): `request` with `method`, `headers` (names
/// lower-cased, repeated headers joined with `, `), `query` and `body`; then each parse item at
/// the top level under its alias (or its header name or path), `null` when the request lacks it;
/// and `method`, `headers`, `query` and `body` at the top level too, as shortcuts for
/// `request.*` (SPEC's own example writes `{{ body | tojson }}`), where no alias took the name.
pub fn variables(
    spec: &ParseSpec,
    method: &str,
    headers: &[(String, String)],
    query: &Value,
    body: &Value,
) -> Map<String, Value> {
    let mut header_map = Map::new();
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        match header_map.get_mut(&name) {
            Some(Value::String(joined)) => {
                joined.push_str(", ");
                joined.push_str(value);
            }
            _ => {
                header_map.insert(name, Value::String(value.clone()));
            }
        }
    }
    let mut vars = Map::new();
    for h in &spec.headers {
        let value = header_map.get(&h.name.to_ascii_lowercase()).cloned();
        let key = h.alias.clone().unwrap_or_else(|| h.name.clone());
        vars.insert(key, value.unwrap_or(Value::Null));
    }
    for (items, source) in [(&spec.query, query), (&spec.body, body)] {
        for item in items {
            let value = lookup(source, &item.path).cloned().unwrap_or(Value::Null);
            vars.insert(
                item.alias.clone().unwrap_or_else(|| item.path.clone()),
                value,
            );
        }
    }
    let request = serde_json::json!({
        "method": method,
        "headers": header_map,
        "query": query,
        "body": body,
    });
    for name in ["method", "headers", "query", "body"] {
        if !vars.contains_key(name) {
            vars.insert(name.into(), request[name].clone());
        }
    }
    vars.insert("request".into(), request);
    vars
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn bodies_parse_by_content_type() {
        let json_body = br#"{"a": 1, "b": {"c": [1, 2]}}"#;
        for ct in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/cloudevents+json",
        ] {
            assert_eq!(
                parse_body(Some(ct), json_body),
                json!({"a": 1, "b": {"c": [1, 2]}}),
                "{ct}"
            );
        }
        assert_eq!(
            parse_body(Some("application/json"), b"{nope"),
            json!("{nope")
        );
        let form = b"a=1&b=x+y%21&a=2&empty=&flag";
        assert_eq!(
            parse_body(Some("application/x-www-form-urlencoded"), form),
            json!({"a": ["1", "2"], "b": "x y!", "empty": "", "flag": ""})
        );
        assert_eq!(
            parse_body(Some("text/plain"), b"hi \xff"),
            json!("hi \u{fffd}")
        );
        assert_eq!(parse_body(None, br#"{"a":1}"#), json!(r#"{"a":1}"#));
        assert_eq!(
            parse_query("order=7&tag=a&tag=b&tag=c&bad=%zz"),
            json!({"order": "7", "tag": ["a", "b", "c"], "bad": "%zz"})
        );
        assert_eq!(parse_query(""), json!({}));
    }

    #[test]
    fn paths_look_up_as_nocobase_writes_them() {
        let v = json!({"a": 1, "b": {"c": 2}, "items": [{"id": "x"}, {"id": "y"}],
                       "query": [{"a": "q"}], "tag": "one"});
        for (path, want) in [
            ("a", Some(json!(1))),
            ("b.c", Some(json!(2))),
            ("items[1].id", Some(json!("y"))),
            ("query[0].a", Some(json!("q"))),
            ("tag[0]", Some(json!("one"))),
            ("items[2].id", None),
            ("b.missing", None),
            ("a.b", None),
        ] {
            assert_eq!(lookup(&v, path).cloned(), want, "{path}");
        }
        assert_eq!(lookup(&json!([{"a": 5}]), "[0].a"), Some(&json!(5)));
        assert_eq!(
            parse_path("m[2][3].k").unwrap(),
            vec![
                Step::Key("m"),
                Step::Index(2),
                Step::Index(3),
                Step::Key("k")
            ]
        );
        for bad in [
            "", "a..b", ".a", "a.", "a[", "a[x]", "a[-1]", "a]", "a[0]b", "b.[0]",
        ] {
            assert!(parse_path(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_path("a[0]é").unwrap_err(),
            "has an unexpected `é`",
            "a character of several bytes after `]` is named, not sliced"
        );
        assert_eq!(lookup(&json!({"a": [1]}), "a[0]é"), None);
    }

    #[test]
    fn variables_hold_the_request_and_each_parsed_item() {
        let spec = ParseSpec {
            headers: vec![
                HeaderItem {
                    name: "X-Request-Id".into(),
                    alias: Some("request_id".into()),
                },
                HeaderItem {
                    name: "X-Missing".into(),
                    alias: None,
                },
            ],
            query: vec![PathItem {
                path: "order".into(),
                alias: Some("order_id".into()),
            }],
            body: vec![
                PathItem {
                    path: "data.object.amount".into(),
                    alias: Some("amount".into()),
                },
                PathItem {
                    path: "kind".into(),
                    alias: None,
                },
            ],
        };
        let headers = vec![
            ("x-request-ID".to_string(), "r-1".to_string()),
            ("Accept".to_string(), "a".to_string()),
            ("accept".to_string(), "b".to_string()),
        ];
        let query = parse_query("order=42");
        let body = json!({"kind": "charge", "data": {"object": {"amount": 1500}}});
        let vars = variables(&spec, "POST", &headers, &query, &body);
        assert_eq!(
            Value::Object(vars),
            json!({
                "request_id": "r-1", "X-Missing": null, "order_id": "42", "amount": 1500,
                "kind": "charge",
                "request": {"method": "POST", "query": {"order": "42"}, "body": body,
                            "headers": {"x-request-id": "r-1", "accept": "a, b"}},
                "method": "POST", "query": {"order": "42"}, "body": body,
                "headers": {"x-request-id": "r-1", "accept": "a, b"},
            })
        );
    }

    #[test]
    fn checks_name_the_bad_item() {
        let mut spec = ParseSpec::default();
        spec.body.push(PathItem {
            path: "a".into(),
            alias: None,
        });
        spec.body.push(PathItem {
            path: "a..b".into(),
            alias: None,
        });
        assert_eq!(spec.check().unwrap_err().path, "parse.body[1].path");
        spec.body.pop();
        spec.query.push(PathItem {
            path: "q".into(),
            alias: Some("1x".into()),
        });
        assert_eq!(spec.check().unwrap_err().path, "parse.query[0].alias");
        spec.query[0].alias = Some("request".into());
        assert_eq!(spec.check().unwrap_err().path, "parse.query[0].alias");
        spec.query.clear();
        spec.headers.push(HeaderItem {
            name: "Bad Header".into(),
            alias: None,
        });
        assert_eq!(spec.check().unwrap_err().path, "parse.headers[0].name");
    }
}
