//! Extractors that turn bad input into [`ApiError`]s naming the field: JSON bodies (with the path
//! of the offending value), query strings, and prefixed ids in paths.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::AppState;

/// A JSON body. Syntax errors are 400; a value of the wrong shape is 422 naming its path.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| body_error(e, state))?;
        object_body(&bytes).map(JsonBody)
    }
}

/// Every body the API takes is a JSON object: serde would read a struct from an array too, so
/// other JSON is refused here (422 naming `body`); what is not JSON is a 400 from [`parse_json`].
fn object_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let text = bytes.trim_ascii();
    if !text.starts_with(b"{") && serde_json::from_slice::<serde::de::IgnoredAny>(text).is_ok() {
        return Err(ApiError::invalid("body", "must be a JSON object"));
    }
    parse_json(bytes)
}

/// A JSON body that may be absent (an empty body reads as `None`).
#[derive(Debug)]
pub struct OptionalJsonBody<T>(pub Option<T>);

impl<T: DeserializeOwned> FromRequest<AppState> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| body_error(e, state))?;
        // No body, or `null`: as if none was sent.
        let text = bytes.trim_ascii();
        if text.is_empty() || text == b"null" {
            return Ok(Self(None));
        }
        object_body(&bytes).map(|v| Self(Some(v)))
    }
}

fn body_error(e: BytesRejection, state: &AppState) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::too_large(state.settings.max_body_bytes)
    } else if crate::listener::is_body_timeout(&e) {
        ApiError::request_timeout()
    } else {
        ApiError::malformed(format!("could not read the request body: {e}"))
    }
}

/// Refuses a `PATCH` key that is no field of the resource (`null` ones too, which would
/// otherwise remove nothing and pass), naming it.
pub fn only_fields(
    patch: &serde_json::Map<String, serde_json::Value>,
    fields: &[&str],
) -> Result<(), ApiError> {
    match patch.keys().find(|k| !fields.contains(&k.as_str())) {
        Some(k) => Err(ApiError::invalid(
            k.clone(),
            format!("is not a field; the fields are {}", fields.join(", ")),
        )),
        None => Ok(()),
    }
}

/// Applies a `PATCH` body to a stored document: each top-level key of `patch` replaces the
/// stored one, and `null` removes it (the field falls back to its default or absence).
pub fn merge_patch(
    stored: &mut serde_json::Map<String, serde_json::Value>,
    patch: serde_json::Map<String, serde_json::Value>,
) {
    for (k, v) in patch {
        if v.is_null() {
            stored.remove(&k);
        } else {
            stored.insert(k, v);
        }
    }
}

/// Parses JSON, reporting where it went wrong. Text holding the NUL character (`\u0000`) is
/// refused wherever it is (a value or a key): PostgreSQL cannot store it in a text column, and
/// both backends must accept the same input.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if let Some(field) = nul_at(bytes) {
        return Err(ApiError::invalid(field, NUL_MESSAGE));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, T>(de) {
        Ok(v) => Ok(v),
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                return Err(ApiError::malformed(format!(
                    "request body is not valid JSON: {inner}"
                )));
            }
            let message = strip_position(&inner.to_string());
            // serde names a missing or unknown field in the message, at the parent's path.
            let named = ["missing field `", "unknown field `"]
                .iter()
                .find_map(|p| message.strip_prefix(p))
                .and_then(|rest| rest.split('`').next());
            let field = match (named, path.as_str()) {
                (Some(name), ".") => name.to_owned(),
                // Some shapes already end the path at the unknown field itself.
                (Some(name), at) if at == name || at.ends_with(&format!(".{name}")) => path,
                (Some(name), parent) => format!("{parent}.{name}"),
                (None, ".") => "body".to_owned(),
                (None, _) => path,
            };
            Err(ApiError::invalid(field, message))
        }
    }
}

const NUL_MESSAGE: &str = "must not contain the NUL character (\\u0000)";

/// The path (as serde_path_to_error writes it) of the first string or key holding NUL, when the
/// body is JSON and has one. Only bodies that spell `u0000` somewhere are parsed twice.
fn nul_at(bytes: &[u8]) -> Option<String> {
    if !bytes.windows(5).any(|w| w == b"u0000") {
        return None;
    }
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    fn walk(value: &serde_json::Value, at: &str) -> Option<String> {
        let join = |key: &str| match at {
            "" => key.to_owned(),
            _ => format!("{at}.{key}"),
        };
        match value {
            serde_json::Value::String(s) if s.contains('\0') => Some(if at.is_empty() {
                "body".into()
            } else {
                at.into()
            }),
            serde_json::Value::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, v)| walk(v, &format!("{at}[{i}]"))),
            serde_json::Value::Object(map) => map.iter().find_map(|(k, v)| {
                if k.contains('\0') {
                    Some(join(&k.replace('\0', "\\u0000")))
                } else {
                    walk(v, &join(k))
                }
            }),
            _ => None,
        }
    }
    walk(&value, "")
}

/// serde_json appends " at line 1 column 42"; the field path says more.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}

/// A query string of text parameters (each handler parses its own, naming the one that is wrong).
#[derive(Debug)]
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        // A parameter holding NUL (`%00`) is refused by name, as in JSON bodies.
        let query = parts.uri.query().unwrap_or_default();
        if let Some(pair) = query.split('&').find(|p| p.contains("%00")) {
            let name = pair.split('=').next().unwrap_or_default();
            return Err(ApiError::bad_param(name, NUL_MESSAGE));
        }
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|q| QueryParams(q.0))
            .map_err(|e| ApiError::malformed(format!("invalid query string: {}", e.body_text())))
    }
}
