//! Merges the configuration sources (file, `HOOKD_*` environment, flags) into one TOML table and
//! reads it into [`RawConfig`], naming the key path of the first value that does not fit.
//!
//! Environment values are TOML when they parse as TOML (`[1, 2, 3]`, `5000`, `true`), text
//! otherwise; a file string with `${NAME}` in it is the text after substitution. Either reading
//! can be wrong for the key (a numeric admin token, `timeout_ms = "${TIMEOUT}"`), so such a value
//! keeps its other reading as an [`Alternate`], tried when the key refuses the first one.
//! This module does no IO: sources arrive as text and maps.

use std::collections::BTreeMap;
use std::fmt;

use toml::{Table, Value};

use super::raw::RawConfig;
use super::Overrides;

/// Variables named `HOOKD_*` that are not configuration keys: client settings and the log filter
/// override, read elsewhere. Every `HOOKD_TEST_*` variable (the tests' own settings) is skipped
/// too ([`TEST_VAR_PREFIX`]), so a shell that exports one still starts hookd.
pub const NON_CONFIG_VARS: &[&str] = &["HOOKD_SERVER", "HOOKD_TOKEN", "HOOKD_LOG"];

/// Prefix of the test suite's variables (`HOOKD_TEST_DATABASE_URL`, `HOOKD_TEST_BROWSER`, ...).
pub const TEST_VAR_PREFIX: &str = "HOOKD_TEST_";

/// Prefix of environment variables that set configuration keys.
const ENV_PREFIX: &str = "HOOKD_";

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

/// A key path, displayed as `serde_path_to_error` displays one (`proxy.routes[0].upstream`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct KeyPath(Vec<Segment>);

impl KeyPath {
    fn join(&self, segment: Segment) -> Self {
        let mut segments = self.0.clone();
        segments.push(segment);
        Self(segments)
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if i == 0 => f.write_str(key)?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// The other reading of a value at `path`, used if the key refuses the one in the table.
#[derive(Debug, Clone)]
struct Alternate {
    path: KeyPath,
    value: Value,
}

/// Configuration merged so far.
#[derive(Debug, Default)]
pub struct Layers {
    table: Table,
    alternates: Vec<Alternate>,
}

impl Layers {
    /// Puts `over` on top: tables merge key by key, any other value replaces the one below.
    pub fn apply(&mut self, over: Layers) {
        merge(
            &mut self.table,
            over.table,
            &KeyPath::default(),
            &mut self.alternates,
        );
        self.alternates.extend(over.alternates);
    }

    /// Reads the merged table, trying alternates for refused values; the error names the key.
    pub fn read(mut self) -> Result<RawConfig, String> {
        let mut refused: BTreeMap<String, String> = BTreeMap::new();
        loop {
            let value = Value::Table(self.table.clone());
            let error = match serde_path_to_error::deserialize::<_, RawConfig>(value) {
                Ok(raw) => return Ok(raw),
                Err(error) => error,
            };
            let path = error.path().to_string();
            let message = match path.as_str() {
                "." => error.inner().message().to_owned(),
                _ => format!("{path}: {}", error.inner().message()),
            };
            let Some(i) = self
                .alternates
                .iter()
                .position(|a| a.path.to_string() == path)
            else {
                return Err(refused.remove(&path).unwrap_or(message));
            };
            let alternate = self.alternates.swap_remove(i);
            set(&mut self.table, &alternate.path.0, alternate.value);
            refused.insert(path, message);
        }
    }
}

fn merge(base: &mut Table, over: Table, path: &KeyPath, alternates: &mut Vec<Alternate>) {
    for (key, value) in over {
        let here = path.join(Segment::Key(key.clone()));
        match (base.get_mut(&key), value) {
            (Some(Value::Table(below)), Value::Table(above)) => {
                merge(below, above, &here, alternates)
            }
            (_, value) => {
                alternates.retain(|a| !a.path.0.starts_with(&here.0));
                base.insert(key, value);
            }
        }
    }
}

/// Replaces the value at `path`, if it is there.
fn set(table: &mut Table, path: &[Segment], value: Value) {
    let Some((Segment::Key(first), rest)) = path.split_first() else {
        return;
    };
    let mut slot = table.get_mut(first);
    for segment in rest {
        slot = match (slot, segment) {
            (Some(Value::Table(t)), Segment::Key(key)) => t.get_mut(key),
            (Some(Value::Array(a)), Segment::Index(i)) => a.get_mut(*i),
            _ => None,
        };
    }
    if let Some(slot) = slot {
        *slot = value;
    }
}

/// The file layer: `text` parsed as TOML, `${NAME}` in string values replaced from `env`.
pub fn file_layer(
    origin: &str,
    text: &str,
    env: &BTreeMap<String, String>,
) -> Result<Layers, String> {
    let mut layer = Layers {
        table: toml::from_str(text).map_err(|e| format!("{origin}: {e}"))?,
        alternates: Vec::new(),
    };
    for (key, value) in layer.table.iter_mut() {
        let path = KeyPath(vec![Segment::Key(key.clone())]);
        interpolate(value, &path, env, &mut layer.alternates)?;
    }
    Ok(layer)
}

fn interpolate(
    value: &mut Value,
    path: &KeyPath,
    env: &BTreeMap<String, String>,
    alternates: &mut Vec<Alternate>,
) -> Result<(), String> {
    match value {
        Value::String(text) if text.contains("${") => {
            *text = substitute(text, env).map_err(|e| format!("{path}: {e}"))?;
            if let Some(typed) = parse_toml_value(text).filter(|v| !v.is_str()) {
                alternates.push(Alternate {
                    path: path.clone(),
                    value: typed,
                });
            }
        }
        Value::Table(table) => {
            for (key, item) in table.iter_mut() {
                interpolate(item, &path.join(Segment::Key(key.clone())), env, alternates)?;
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate(item, &path.join(Segment::Index(i)), env, alternates)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// `text` with every `${NAME}` replaced by the variable `NAME` from `env`.
fn substitute(text: &str, env: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or("unterminated `${` (write `${NAME}`)")?;
        let name = &after[..end];
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!(
                "`${{{name}}}` is not a variable reference (write `${{NAME}}`)"
            ));
        }
        let value = env
            .get(name)
            .ok_or_else(|| format!("environment variable {name} is not set"))?;
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The layer of `HOOKD_*` variables in `env`; returns the names it used beside it.
pub fn env_layer(env: &BTreeMap<String, String>) -> Result<(Layers, Vec<String>), String> {
    let mut layer = Layers::default();
    let mut used = Vec::new();
    let config_vars = env.iter().filter(|(name, _)| {
        name.starts_with(ENV_PREFIX)
            && !name.starts_with(TEST_VAR_PREFIX)
            && !NON_CONFIG_VARS.contains(&name.as_str())
    });
    for (name, raw) in config_vars {
        let path = env_key_path(name)?;
        let (value, alternate) = match parse_toml_value(raw) {
            Some(typed) if !typed.is_str() => (typed, Some(Value::String(raw.clone()))),
            _ => (Value::String(raw.clone()), None),
        };
        insert(&mut layer.table, &path, value).map_err(|e| format!("{name}: {e}"))?;
        if let Some(value) = alternate {
            layer.alternates.push(Alternate { path, value });
        }
        used.push(name.clone());
    }
    Ok((layer, used))
}

/// `HOOKD_DELIVERY__TIMEOUT_MS` → `delivery.timeout_ms`.
fn env_key_path(name: &str) -> Result<KeyPath, String> {
    let keys = name[ENV_PREFIX.len()..].to_ascii_lowercase();
    if keys.split("__").any(str::is_empty) {
        return Err(format!(
            "{name}: not a configuration key (nested keys are joined with `__`, \
             as in HOOKD_DELIVERY__TIMEOUT_MS)"
        ));
    }
    Ok(KeyPath(
        keys.split("__")
            .map(|k| Segment::Key(k.to_owned()))
            .collect(),
    ))
}

fn insert(table: &mut Table, path: &KeyPath, value: Value) -> Result<(), String> {
    let (last, parents) = path.0.split_last().ok_or("empty key")?;
    let mut table = table;
    for segment in parents {
        let Segment::Key(key) = segment else {
            return Err("array index in key".into());
        };
        let slot = table
            .entry(key.clone())
            .or_insert_with(|| Value::Table(Table::new()));
        table = slot
            .as_table_mut()
            .ok_or_else(|| format!("`{key}` is set to a value that is not a table"))?;
    }
    let Segment::Key(last) = last else {
        return Err("array index in key".into());
    };
    table.insert(last.clone(), value);
    Ok(())
}

/// `text` read as a TOML value (`5000`, `[1, 2]`, `true`, `{ a = "b" }`), if it is one.
fn parse_toml_value(text: &str) -> Option<Value> {
    let mut table: Table = toml::from_str(&format!("value = {text}")).ok()?;
    (table.len() == 1).then(|| table.remove("value")).flatten()
}

/// The layer of command-line flags.
pub fn flags_layer(overrides: &Overrides) -> Layers {
    let mut layer = Layers::default();
    let flags = [
        ("database_url", &overrides.database_url),
        ("listen", &overrides.listen),
        ("worker_listen", &overrides.worker_listen),
    ];
    for (key, value) in flags {
        if let Some(value) = value {
            layer.table.insert(key.into(), Value::String(value.clone()));
        }
    }
    layer
}
