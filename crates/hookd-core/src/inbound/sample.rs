//! The paths a sample request offers, as NocoBase's "parse" button lists them (seed 003), for
//! the API's `POST /api/v1/inbound/parse` with `{"url": ...}` or `{"json": ...}`.
//!
//! A sample URL gives its query parameter names; a sample JSON gives every path in it, parents
//! before children, arrays as `[0]` (see [`super::parse`] for the path syntax).

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Serialize;
use serde_json::Value;

use super::parse::{form_pairs, parse_path};

/// The paths a sample offers, as `POST /api/v1/inbound/parse` answers: `{"query": [...],
/// "body": [...]}`, each list in the sample's order (empty when that sample was not given).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct SamplePaths {
    pub query: Vec<String>,
    pub body: Vec<String>,
}

/// The paths of a sample URL (its query parameter names) and a sample JSON. `json` given as a
/// string is read as JSON text, which keeps the document's key order; given as a JSON value its
/// object keys come sorted (serde_json's maps are ordered by key).
pub fn sample_paths(url: Option<&str>, json: Option<&Value>) -> Result<SamplePaths, String> {
    let query = url.map(paths_from_url).transpose()?.unwrap_or_default();
    let body = match json {
        None => Vec::new(),
        Some(Value::String(text)) => find_paths_in_text(text)?,
        Some(sample) => find_paths(sample),
    };
    Ok(SamplePaths { query, body })
}

/// The query parameter names of a sample URL, in order, each once. A text without `?` that is
/// not a URL (no `://`, not starting with `/`) is read as the query itself, so `a=1&b=2` works too.
pub fn paths_from_url(url: &str) -> Result<Vec<String>, String> {
    let url = url.trim();
    if url.is_empty() {
        return Err("is empty".into());
    }
    let query = match url.split_once('?') {
        Some((_, q)) => q,
        None if url.contains("://") || url.starts_with('/') => "",
        None => url,
    };
    let query = query.split('#').next().unwrap_or("");
    let mut names: Vec<String> = Vec::new();
    for (name, _) in form_pairs(query) {
        if parse_path(&name).is_ok() && !names.contains(&name) {
            names.push(name);
        }
    }
    Ok(names)
}

/// Every path in `sample`: objects and leaves, parents before children; an array contributes
/// `[0]` and the paths of its first element. Keys that a path cannot spell (empty, or holding
/// `.`, `[` or `]`) are left out with everything under them.
pub fn find_paths(sample: &Value) -> Vec<String> {
    let mut out = Vec::new();
    // A `Value` deserialises infallibly into the collector.
    let _ = Collect::new(&mut out).deserialize(sample);
    out
}

/// [`find_paths`] over JSON text, in the document's key order.
pub fn find_paths_in_text(json: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut de = serde_json::Deserializer::from_str(json);
    Collect::new(&mut out)
        .deserialize(&mut de)
        .and_then(|()| de.end())
        .map_err(|e| format!("is not valid JSON: {e}"))?;
    Ok(out)
}

/// Walks a JSON document once, pushing each path as it is met.
struct Collect<'a> {
    prefix: String,
    out: &'a mut Vec<String>,
}

impl<'a> Collect<'a> {
    fn new(out: &'a mut Vec<String>) -> Self {
        Self {
            prefix: String::new(),
            out,
        }
    }

    fn child(&mut self, path: String) -> Collect<'_> {
        self.out.push(path.clone());
        Collect {
            prefix: path,
            out: self.out,
        }
    }
}

impl<'de> DeserializeSeed<'de> for Collect<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Collect<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JSON")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if key.is_empty() || key.contains(['.', '[', ']']) {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let path = if self.prefix.is_empty() {
                key
            } else {
                format!("{}.{key}", self.prefix)
            };
            map.next_value_seed(self.child(path))?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        // The element's own path goes before its children, once we know there is one.
        let path = format!("{}[0]", self.prefix);
        let at = self.out.len();
        let first = Collect {
            prefix: path.clone(),
            out: &mut *self.out,
        };
        if seq.next_element_seed(first)?.is_some() {
            self.out.insert(at, path);
        }
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn samples_list_their_paths() {
        let text = r#"{"z": 1, "b": {"c": 2, "a": [{"id": 1, "n": {"m": 0}}, {"other": 1}]},
                       "e": [], "odd.key": {"x": 1}, "s": "t"}"#;
        let want = [
            "z",
            "b",
            "b.c",
            "b.a",
            "b.a[0]",
            "b.a[0].id",
            "b.a[0].n",
            "b.a[0].n.m",
            "e",
            "s",
        ];
        assert_eq!(find_paths_in_text(text).unwrap(), want);
        let sorted = find_paths(&serde_json::from_str(text).unwrap());
        assert_eq!(
            sorted,
            [
                "b",
                "b.a",
                "b.a[0]",
                "b.a[0].id",
                "b.a[0].n",
                "b.a[0].n.m",
                "b.c",
                "e",
                "s",
                "z"
            ]
        );
        assert_eq!(find_paths(&json!([{"a": 1}])), ["[0]", "[0].a"]);
        assert!(find_paths_in_text("{").is_err());
        assert!(find_paths_in_text("{} x").is_err());

        let url = "http://localhost:13000/api/webhook:trigger/1hfmkioou0d?query=1&b=2&query=3#frag";
        assert_eq!(paths_from_url(url).unwrap(), ["query", "b"]);
        assert_eq!(paths_from_url("a=1&c=2").unwrap(), ["a", "c"]);
        assert_eq!(
            paths_from_url("https://x.test/path").unwrap(),
            Vec::<String>::new()
        );
        assert!(paths_from_url("  ").is_err());

        let out = sample_paths(Some("?order=1"), Some(&json!(r#"{"y": 1, "x": 2}"#))).unwrap();
        assert_eq!(
            serde_json::to_value(&out).unwrap(),
            json!({"query": ["order"], "body": ["y", "x"]})
        );
    }
}
