//! The OpenAPI document served at `/api/v1/openapi.json`: generated from the handlers'
//! annotations, then completed with what the annotations would repeat on every operation, so
//! that it describes every answer the server gives:
//!
//! - every `/api/v1` operation: 401 (no or a wrong admin token) and 503 with `Retry-After` (the
//!   database is unavailable);
//! - operations with a body: 400 (not JSON), 413 (over `inbound.max_body_bytes`) and 422 (a field
//!   is invalid); with query parameters: 400 and 422; with an id in the path: 404;
//! - the endpoints outside `/api/v1`, with no token: `/hooks/{key}`, `/health`, `/ready`,
//!   `/metrics`.
//!
//! Paths are given whole (`/api/v1/webhooks`) under the server `/`, so both kinds sit in one
//! document.

use serde_json::{json, Map, Value};

/// Where the admin API is mounted.
const API_PREFIX: &str = "/api/v1";

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

fn error(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    })
}

fn unavailable() -> Value {
    let mut response = error("The database is unavailable; try again after `Retry-After` seconds");
    response["headers"] = json!({"Retry-After": {
        "description": "Seconds to wait", "schema": {"type": "integer"}}});
    response
}

/// Completes the generated document (see the module's documentation).
pub fn complete(doc: &utoipa::openapi::OpenApi) -> Value {
    let mut doc = serde_json::to_value(doc).expect("the OpenAPI document serialises");
    let paths = doc["paths"].as_object().cloned().unwrap_or_default();
    let mut whole = Map::new();
    for (path, mut item) in paths {
        for method in METHODS {
            if let Some(op) = item.get_mut(method) {
                complete_operation(&path, op);
            }
        }
        whole.insert(format!("{API_PREFIX}{path}"), item);
    }
    for (path, item) in public_paths() {
        whole.insert(path.to_owned(), item);
    }
    doc["paths"] = Value::Object(whole);
    let schemas = &mut doc["components"]["schemas"];
    schemas["InboundIn"] = inbound_schema(false);
    schemas["InboundPatch"] = inbound_schema(true);
    set_body(&mut doc, "/api/v1/inbound", "post", "InboundIn");
    set_body(&mut doc, "/api/v1/inbound/{id}", "patch", "InboundPatch");
    patch_bodies_need_no_field(&mut doc);
    doc["servers"] = json!([{"url": "/"}]);
    doc
}

fn complete_operation(path: &str, op: &mut Value) {
    let has_body = op.get("requestBody").is_some();
    let has_query = op["parameters"]
        .as_array()
        .is_some_and(|ps| ps.iter().any(|p| p["in"] == "query"));
    let has_id = path.contains('{');
    let mut add = |status: &str, response: Value| {
        let responses = op["responses"]
            .as_object_mut()
            .expect("operations have responses");
        responses.entry(status).or_insert(response);
    };
    add("401", error("No admin token, or not a valid one"));
    add("503", unavailable());
    if has_body || has_query {
        add(
            "400",
            error(
                "The request cannot be read (its body is not JSON, a query parameter is malformed)",
            ),
        );
        add("422", error("A field is invalid; `field` names it"));
    }
    if has_body {
        add(
            "413",
            error("The body is larger than `inbound.max_body_bytes`"),
        );
    }
    if has_id {
        add("404", error("No such resource"));
    }
}

fn set_body(doc: &mut Value, path: &str, method: &str, schema: &str) {
    doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"] =
        json!({"$ref": format!("#/components/schemas/{schema}")});
}

/// A `PATCH` body gives only the fields it changes: where it shares the create body's schema,
/// it gets a copy with nothing required (`ScheduleIn` → `ScheduleInPatch`).
fn patch_bodies_need_no_field(doc: &mut Value) {
    let mut copies = Vec::new();
    if let Some(paths) = doc["paths"].as_object_mut() {
        for item in paths.values_mut() {
            // `get_mut`, not indexing: indexing a missing key would add it.
            let Some(schema) = item
                .get_mut("patch")
                .and_then(|op| op.pointer_mut("/requestBody/content/application~1json/schema"))
            else {
                continue;
            };
            let Some(name) = schema["$ref"].as_str().and_then(|r| r.rsplit('/').next()) else {
                continue;
            };
            if name.ends_with("Patch") {
                continue;
            }
            let copy = format!("{name}Patch");
            copies.push((name.to_owned(), copy.clone()));
            *schema = json!({"$ref": format!("#/components/schemas/{copy}")});
        }
    }
    let schemas = &mut doc["components"]["schemas"];
    for (name, copy) in copies {
        let mut schema = schemas[&name].clone();
        if let Some(object) = schema.as_object_mut() {
            object.remove("required");
        }
        schemas[copy] = schema;
    }
}

/// An inbound hook's definition (`hookd_core::inbound::spec::InboundSpec`, checked in full by
/// the server: a bad node or auth is a 422 naming it). In a `PATCH`, every field is optional
/// and `null` resets one to its default.
fn inbound_schema(patch: bool) -> Value {
    use hookd_core::inbound::spec::MAX_TIMEOUT_MS;
    let field = |mut schema: Value, description: &str| {
        schema["description"] = json!(description);
        if patch {
            let kind = schema["type"].clone();
            schema["type"] = json!([kind, "null"]);
        }
        schema
    };
    let mut schema = json!({
        "type": "object",
        "additionalProperties": false,
        "description": "An inbound hook (SPEC §4): its public URL is generated.",
        "properties": {
            "name": {"type": "string", "minLength": 1, "description": "1 to 200 characters"},
            "active": field(json!({"type": "boolean"}), "false: the URL answers 404"),
            "methods": field(json!({"type": "array", "items": {"type": "string"}}),
                "HTTP methods taken (default [\"POST\"]); others get 405"),
            "auth": field(json!({"type": "object"}),
                "{\"type\": \"none\"}, {\"type\": \"basic\", ...} or {\"type\": \"signature\", \"preset\": ...}"),
            "parse": field(json!({"type": "object"}), "headers, query and body items to parse, with aliases"),
            "mode": field(json!({"type": "string", "enum": ["async", "sync"]}), "default async"),
            "response": field(json!({"type": "object"}), "the async answer: status, headers, body"),
            "timeout_ms": field(json!({"type": "integer", "minimum": 1, "maximum": MAX_TIMEOUT_MS}),
                "default 10000"),
            "max_concurrency": field(json!({"type": "integer", "minimum": 1, "maximum": u32::MAX}),
                "sync runs in flight per process (default 16)"),
            "workflow": field(json!({"type": "array", "items": {"type": "object"}}),
                "nodes: condition, set, publish, request, response"),
        }
    });
    if !patch {
        schema["required"] = json!(["name"]);
    }
    schema
}

/// The endpoints outside `/api/v1`; none takes the admin token.
fn public_paths() -> Vec<(&'static str, Value)> {
    let no_token = json!([]);
    let text = |description: &str| json!({"description": description, "content": {"text/plain": {"schema": {"type": "string"}}}});
    let status = |value: &str| {
        json!({"description": format!("`{{\"status\": \"{value}\"}}`"),
               "content": {"application/json": {"schema": {
                   "type": "object", "required": ["status"],
                   "properties": {"status": {"type": "string", "enum": [value]}}}}}})
    };
    let hook = |method: &str| {
        json!({
            "tags": ["public"],
            "operationId": format!("hook_{method}"),
            "summary": "An inbound hook's public URL",
            "description": "Checked in order: the key (404, also for an inactive hook), the \
                method (405 with `Allow`), the client address's then the hook's rate limit \
                (429), room to run (429: a sync hook's `max_concurrency`, an async hook's \
                queue), the body size (413, 408 when it arrives too slowly), verification \
                (401). Then an async hook answers its configured response and a sync hook its \
                workflow's. Every answer after the key check names its execution in \
                `X-Hookd-Execution` (except refusals that store nothing).",
            "security": [],
            "parameters": [{"name": "key", "in": "path", "required": true,
                            "schema": {"type": "string"}}],
            "requestBody": {"required": false, "content": {"*/*": {"schema": {}}}},
            "responses": {
                "default": {"description": "The hook's answer: its async `response`, or its \
                    sync workflow's response node (200 on success, 500 on failure without one)"},
                "401": error("Verification failed (with `WWW-Authenticate` for basic auth)"),
                "404": error("No such hook, or it is inactive"),
                "405": error("The hook does not take this method; `Allow` lists those it takes"),
                "408": error("The body did not arrive within `http.body_timeout_seconds`"),
                "413": error("The body is larger than `inbound.max_body_bytes`"),
                "429": error("Over a rate limit, the hook's `max_concurrency` or its queue cap; \
                    see `Retry-After`"),
                "503": unavailable(),
                "504": error("A sync workflow ran past its `timeout_ms`")
            }
        })
    };
    let mut hooks = Map::new();
    for method in METHODS {
        hooks.insert(method.to_owned(), hook(method));
    }
    vec![
        ("/hooks/{key}", Value::Object(hooks)),
        (
            "/health",
            json!({"get": {"tags": ["operations"], "operationId": "health",
                "summary": "Liveness: answers while the process runs", "security": no_token,
                "responses": {"200": status("ok")}}}),
        ),
        (
            "/ready",
            json!({"get": {"tags": ["operations"], "operationId": "ready",
                "summary": "Readiness: the database answers", "security": no_token,
                "responses": {"200": status("ready"), "503": unavailable()}}}),
        ),
        (
            "/metrics",
            json!({"get": {"tags": ["operations"], "operationId": "metrics",
                "summary": "Prometheus text exposition", "security": no_token,
                "responses": {"200": text("Counters of this process and gauges from the database")}}}),
        ),
    ]
}
