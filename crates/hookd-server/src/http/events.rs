//! `/api/v1/events`: publish one or a batch, list, get.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use hookd_core::store::Enqueued;
use hookd_core::time::{parse_rfc3339, rfc3339};
use hookd_core::{Event, EventId, EventType, NewEvent};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{JsonBody, QueryParams};
use super::pagination::{paginate, ListOut, PageQuery};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::publish::publish;
use crate::AppState;

/// Most events in one batch.
pub const MAX_BATCH: usize = 1000;
/// Longest idempotency key or model name accepted.
const MAX_KEY: usize = 200;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_events, publish_event))
        .routes(routes!(publish_batch))
        .routes(routes!(get_event))
}

/// An event to publish.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventIn {
    /// Dot-separated type, e.g. `entry.create`: letters, digits and `. _ - : /`, no empty
    /// segment.
    #[serde(rename = "type")]
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[A-Za-z0-9_:/-]+(\.[A-Za-z0-9_:/-]+)*$"
    )]
    pub event_type: String,
    /// Strapi model or Frappe DocType.
    #[schema(min_length = 1, max_length = 200)]
    pub model: Option<String>,
    /// Any JSON value; `{}` when absent.
    #[serde(default)]
    #[schema(value_type = Value)]
    pub data: Option<Value>,
    /// A repeat of a key returns the first event and queues nothing.
    #[schema(min_length = 1, max_length = 200)]
    pub idempotency_key: Option<String>,
    /// RFC 3339; defaults to now.
    #[schema(format = DateTime)]
    pub occurred_at: Option<String>,
}

/// A batch of events, stored in one transaction.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchIn {
    #[schema(min_items = 1, max_items = 1000)]
    pub events: Vec<EventIn>,
}

/// What publishing one event did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PublishedOut {
    pub id: String,
    /// Deliveries queued for it.
    pub deliveries: u32,
    /// True when its idempotency key had been used: nothing was queued.
    pub duplicate: bool,
}

/// The result of a batch, in input order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchOut {
    pub data: Vec<PublishedOut>,
}

/// A stored event.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventOut {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub model: Option<String>,
    #[schema(value_type = Value)]
    pub data: Value,
    pub idempotency_key: Option<String>,
    pub occurred_at: String,
    pub created_at: String,
}

impl EventOut {
    pub fn from_domain(e: Event) -> Self {
        Self {
            id: e.id.to_string(),
            event_type: e.event_type,
            model: e.model,
            data: e.data,
            idempotency_key: e.idempotency_key,
            occurred_at: rfc3339(e.occurred_at),
            created_at: rfc3339(e.created_at),
        }
    }
}

impl EventIn {
    /// Validates; `at` prefixes field names in batches (`events[3].`).
    fn parse(self, at: &str, now: i64) -> Result<NewEvent, ApiError> {
        let event_type = EventType::parse(&self.event_type)
            .map_err(|m| ApiError::invalid(format!("{at}type"), m))?;
        let occurred_at = match self.occurred_at.as_deref() {
            None => now,
            Some(s) => parse_rfc3339(s).ok_or_else(|| {
                ApiError::invalid(format!("{at}occurred_at"), "must be an RFC 3339 timestamp")
            })?,
        };
        for (name, v) in [
            ("model", &self.model),
            ("idempotency_key", &self.idempotency_key),
        ] {
            if v.as_ref()
                .is_some_and(|v| v.is_empty() || v.len() > MAX_KEY)
            {
                let msg = format!("must be 1 to {MAX_KEY} characters");
                return Err(ApiError::invalid(format!("{at}{name}"), msg));
            }
        }
        Ok(NewEvent {
            event_type,
            model: self.model,
            data: self
                .data
                .unwrap_or_else(|| Value::Object(Default::default())),
            occurred_at,
            idempotency_key: self.idempotency_key,
        })
    }
}

/// A body that is not an object, at `/events`: most often a list of events meant for the batch
/// endpoint, so the message says where those go.
fn batch_hint(mut e: ApiError) -> ApiError {
    if e.field.as_deref() == Some("body") {
        e.message.push_str(
            " (one event; to publish several, POST {\"events\": [...]} to /events/batch)",
        );
    }
    e
}

#[utoipa::path(post, path = "/events", tag = "events", request_body = EventIn,
    responses((status = 202, body = PublishedOut, description = "Stored, deliveries queued"),
              (status = 200, body = EventOut, description = "Idempotency key seen before: the first event"),
              (status = 422, body = ErrorBody)))]
async fn publish_event(
    State(state): State<AppState>,
    input: Result<JsonBody<EventIn>, ApiError>,
) -> ApiResult<Response> {
    let JsonBody(input) = input.map_err(batch_hint)?;
    let event = input.parse("", crate::now_ms())?;
    let result = publish(&state, vec![event]).await?;
    Ok(match result.into_iter().next() {
        Some(Enqueued::Created { id, deliveries }) => {
            let out = PublishedOut {
                id: id.to_string(),
                deliveries,
                duplicate: false,
            };
            (StatusCode::ACCEPTED, Json(out)).into_response()
        }
        Some(Enqueued::Duplicate(first)) => Json(EventOut::from_domain(first)).into_response(),
        None => return Err(ApiError::internal(&"the store returned no result")),
    })
}

#[utoipa::path(post, path = "/events/batch", tag = "events", request_body = BatchIn,
    responses((status = 202, body = BatchOut), (status = 422, body = ErrorBody)))]
async fn publish_batch(
    State(state): State<AppState>,
    JsonBody(input): JsonBody<BatchIn>,
) -> ApiResult<(StatusCode, Json<BatchOut>)> {
    if input.events.is_empty() || input.events.len() > MAX_BATCH {
        return Err(ApiError::invalid(
            "events",
            format!("must hold 1 to {MAX_BATCH} events"),
        ));
    }
    let now = crate::now_ms();
    let events = input
        .events
        .into_iter()
        .enumerate()
        .map(|(i, e)| e.parse(&format!("events[{i}]."), now))
        .collect::<Result<Vec<_>, _>>()?;
    let data = publish(&state, events)
        .await?
        .into_iter()
        .map(|r| match r {
            Enqueued::Created { id, deliveries } => PublishedOut {
                id: id.to_string(),
                deliveries,
                duplicate: false,
            },
            Enqueued::Duplicate(e) => PublishedOut {
                id: e.id.to_string(),
                deliveries: 0,
                duplicate: true,
            },
        })
        .collect();
    Ok((StatusCode::ACCEPTED, Json(BatchOut { data })))
}

#[utoipa::path(get, path = "/events", tag = "events", params(PageQuery),
    responses((status = 200, body = ListOut<EventOut>)))]
async fn list_events(
    State(state): State<AppState>,
    QueryParams(q): QueryParams<PageQuery>,
) -> ApiResult<Json<ListOut<EventOut>>> {
    let page = q.parse(|c| EventId::parse(c).is_ok())?;
    let rows = state.store.list_events(&page).await?;
    Ok(Json(paginate(
        rows,
        &page,
        |e| e.id.to_string(),
        EventOut::from_domain,
    )))
}

#[utoipa::path(get, path = "/events/{id}", tag = "events",
    responses((status = 200, body = EventOut), (status = 404, body = ErrorBody)))]
async fn get_event(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<EventOut>> {
    let id = EventId::parse(&id).map_err(|_| ApiError::not_found("event"))?;
    let event = state
        .store
        .get_event(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("event"))?;
    Ok(Json(EventOut::from_domain(event)))
}
