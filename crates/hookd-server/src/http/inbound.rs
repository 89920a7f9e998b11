//! `/api/v1/inbound`: inbound hooks (create, list, get, patch, delete, their executions), one
//! execution, and the parse button. The hooks themselves answer at `/hooks/{key}`
//! (`crate::inbound`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use hookd_core::inbound::record::{Execution, InboundHook};
use hookd_core::inbound::{sample_paths, FieldError, InboundSpec, SamplePaths};
use hookd_core::store::Written;
use hookd_core::time::rfc3339;
use hookd_core::{ExecutionId, InboundId};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{merge_patch, only_fields, JsonBody, QueryParams};
use super::pagination::{paginate, ListOut, PageQuery};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_hooks, create_hook))
        .routes(routes!(parse_sample))
        .routes(routes!(get_hook, patch_hook, delete_hook))
        .routes(routes!(list_executions))
        .routes(routes!(get_execution))
}

/// An inbound hook as the API shows it: the stored definition (secrets masked) with its id and
/// public URL.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HookOut {
    pub id: String,
    /// The public URL callers use: `{public_url}/hooks/{key}`.
    pub url: String,
    /// The unguessable part of `url`.
    pub key: String,
    /// Every field of the definition (SPEC §4), `auth` secrets as `****`.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub spec: Value,
    pub created_at: String,
    pub updated_at: String,
}

impl HookOut {
    fn from_domain(h: &InboundHook, public_url: &str) -> Self {
        Self {
            id: h.id.to_string(),
            url: format!("{public_url}/hooks/{}", h.key),
            key: h.key.clone(),
            spec: serde_json::to_value(h.spec.masked()).unwrap_or(Value::Null),
            created_at: rfc3339(h.created_at),
            updated_at: rfc3339(h.updated_at),
        }
    }
}

/// One execution: the request (secrets masked), variables, node trace, response, status.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExecutionOut {
    pub id: String,
    pub hook_id: String,
    #[schema(value_type = String)]
    pub mode: Value,
    pub status: hookd_core::inbound::record::ExecutionStatus,
    #[schema(value_type = Object)]
    pub request: Value,
    #[schema(value_type = Object)]
    pub variables: Value,
    #[schema(value_type = Vec<Object>)]
    pub trace: Value,
    #[schema(value_type = Object)]
    pub response: Value,
    pub error: Option<String>,
    pub duration_ms: Option<u64>,
    /// Runs started (async); more than one means a worker died mid-run.
    pub attempts: u32,
    pub created_at: String,
    pub updated_at: String,
}

impl ExecutionOut {
    fn from_domain(e: Execution) -> Self {
        let r = e.record;
        Self {
            id: e.id.to_string(),
            hook_id: e.hook_id.to_string(),
            mode: serde_json::to_value(e.mode).unwrap_or(Value::Null),
            status: e.status,
            request: serde_json::to_value(r.request).unwrap_or(Value::Null),
            variables: Value::Object(r.variables),
            trace: serde_json::to_value(r.trace).unwrap_or(Value::Null),
            response: serde_json::to_value(r.response).unwrap_or(Value::Null),
            error: r.error,
            duration_ms: r.duration_ms,
            attempts: e.attempts,
            created_at: rfc3339(e.created_at),
            updated_at: rfc3339(e.updated_at),
        }
    }
}

/// A sample to list variable paths from: a URL (its query parameters) and/or a JSON body (a
/// value, or JSON text to keep its key order).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ParseIn {
    pub url: Option<String>,
    /// A sample body: any JSON value.
    #[serde(default)]
    #[schema(value_type = Value)]
    pub json: Option<Value>,
}

/// The paths found, each usable in `parse.query[].path` or `parse.body[].path`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ParseOut {
    pub query: Vec<String>,
    pub body: Vec<String>,
}

fn invalid(e: FieldError) -> ApiError {
    ApiError::invalid(e.path, e.message)
}

/// A new URL key: 24 random bytes, URL-safe base64 (192 bits).
fn new_key() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

async fn load(state: &AppState, id: &str) -> ApiResult<InboundHook> {
    let id = InboundId::parse(id).map_err(|_| ApiError::not_found("inbound hook"))?;
    state
        .store
        .get_inbound(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("inbound hook"))
}

#[utoipa::path(post, path = "/inbound", tag = "inbound", request_body = Object,
    responses((status = 201, body = HookOut), (status = 422, body = ErrorBody)))]
async fn create_hook(
    State(state): State<AppState>,
    JsonBody(input): JsonBody<Value>,
) -> ApiResult<(StatusCode, Json<HookOut>)> {
    if !input.is_object() {
        return Err(ApiError::invalid("body", "must be a JSON object"));
    }
    let spec = InboundSpec::from_json(&input).map_err(invalid)?;
    let now = crate::now_ms();
    let hook = InboundHook {
        id: InboundId::generate(now),
        key: new_key(),
        spec,
        created_at: now,
        updated_at: now,
    };
    state.store.insert_inbound(&hook).await?;
    let out = HookOut::from_domain(&hook, &state.settings.public_url);
    Ok((StatusCode::CREATED, Json(out)))
}

#[utoipa::path(get, path = "/inbound", tag = "inbound", params(PageQuery),
    responses((status = 200, body = ListOut<HookOut>)))]
async fn list_hooks(
    State(state): State<AppState>,
    QueryParams(q): QueryParams<PageQuery>,
) -> ApiResult<Json<ListOut<HookOut>>> {
    let page = q.parse(|c| InboundId::parse(c).is_ok())?;
    let rows = state.store.list_inbound(&page).await?;
    let public_url = state.settings.public_url.clone();
    Ok(Json(paginate(
        rows,
        &page,
        |h| h.id.to_string(),
        |h| HookOut::from_domain(&h, &public_url),
    )))
}

#[utoipa::path(get, path = "/inbound/{id}", tag = "inbound",
    responses((status = 200, body = HookOut), (status = 404, body = ErrorBody)))]
async fn get_hook(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<HookOut>> {
    let hook = load(&state, &id).await?;
    Ok(Json(HookOut::from_domain(
        &hook,
        &state.settings.public_url,
    )))
}

/// Replaces each top-level field given; `auth` secrets sent back as `****` are kept.
#[utoipa::path(patch, path = "/inbound/{id}", tag = "inbound", request_body = Object,
    responses((status = 200, body = HookOut), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn patch_hook(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(patch): JsonBody<Map<String, Value>>,
) -> ApiResult<Json<HookOut>> {
    only_fields(
        &patch,
        &[
            "name",
            "active",
            "methods",
            "auth",
            "parse",
            "mode",
            "response",
            "timeout_ms",
            "max_concurrency",
            "workflow",
        ],
    )?;
    let read = load(&state, &id).await?;
    let mut merged = match serde_json::to_value(&read.spec) {
        Ok(Value::Object(m)) => m,
        _ => return Err(ApiError::internal(&"a hook did not serialise")),
    };
    merge_patch(&mut merged, patch);
    let spec =
        InboundSpec::from_json_replacing(&Value::Object(merged), &read.spec).map_err(invalid)?;
    let hook = InboundHook {
        spec,
        updated_at: crate::now_ms().max(read.updated_at + 1),
        ..read.clone()
    };
    match state.store.update_inbound(&hook, read.updated_at).await? {
        Written::Done => Ok(Json(HookOut::from_domain(
            &hook,
            &state.settings.public_url,
        ))),
        Written::NotFound => Err(ApiError::not_found("inbound hook")),
        Written::Changed => Err(ApiError::conflict(
            "the hook changed while this request was handled; read it again and retry",
        )),
    }
}

#[utoipa::path(delete, path = "/inbound/{id}", tag = "inbound",
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_hook(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = InboundId::parse(&id).map_err(|_| ApiError::not_found("inbound hook"))?;
    if state.store.delete_inbound(&id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("inbound hook"))
    }
}

#[utoipa::path(get, path = "/inbound/{id}/executions", tag = "inbound", params(PageQuery),
    responses((status = 200, body = ListOut<ExecutionOut>), (status = 404, body = ErrorBody)))]
async fn list_executions(
    State(state): State<AppState>,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<PageQuery>,
) -> ApiResult<Json<ListOut<ExecutionOut>>> {
    let hook = load(&state, &id).await?;
    let page = q.parse(|c| ExecutionId::parse(c).is_ok())?;
    let rows = state.store.list_executions(&hook.id, &page).await?;
    Ok(Json(paginate(
        rows,
        &page,
        |e| e.id.to_string(),
        ExecutionOut::from_domain,
    )))
}

#[utoipa::path(get, path = "/executions/{id}", tag = "inbound",
    responses((status = 200, body = ExecutionOut), (status = 404, body = ErrorBody)))]
async fn get_execution(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<ExecutionOut>> {
    let id = ExecutionId::parse(&id).map_err(|_| ApiError::not_found("execution"))?;
    let execution = state
        .store
        .get_execution(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("execution"))?;
    Ok(Json(ExecutionOut::from_domain(execution)))
}

/// Lists the variable paths of a sample, as NocoBase's parse button does.
#[utoipa::path(post, path = "/inbound/parse", tag = "inbound", request_body = ParseIn,
    responses((status = 200, body = ParseOut), (status = 422, body = ErrorBody)))]
async fn parse_sample(JsonBody(input): JsonBody<ParseIn>) -> ApiResult<Json<ParseOut>> {
    if input.url.is_none() && input.json.is_none() {
        return Err(ApiError::invalid("url", "give a sample `url` or `json`"));
    }
    let field = if input.json.is_some() { "json" } else { "url" };
    let SamplePaths { query, body } = sample_paths(input.url.as_deref(), input.json.as_ref())
        .map_err(|m| ApiError::invalid(field, m))?;
    Ok(Json(ParseOut { query, body }))
}
