//! `/api/v1/deliveries`: history with filters, one delivery with its attempts, retry now.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use hookd_core::delivery::ErrorKind;
use hookd_core::store::DeliveryFilter;
use hookd_core::time::rfc3339;
use hookd_core::{Attempt, Delivery, DeliveryId, DeliveryStatus, EventId, WebhookId};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::QueryParams;
use super::pagination::{paginate, ListOut, PageQuery};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_deliveries))
        .routes(routes!(get_delivery))
        .routes(routes!(retry_delivery))
}

/// Filters and paging of the delivery history.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    pub webhook_id: Option<String>,
    pub event_id: Option<String>,
    /// `pending`, `delivering`, `succeeded`, `retrying`, `failed` or `cancelled`.
    pub status: Option<String>,
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

/// A delivery: one event to one webhook.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryOut {
    /// Also the `webhook-id` header the receiver sees.
    pub id: String,
    pub event_id: String,
    pub webhook_id: String,
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempt_count: u32,
    /// When the next attempt is due (pending/retrying), RFC 3339.
    pub next_attempt_at: Option<String>,
    pub last_status_code: Option<u16>,
    pub last_error: Option<String>,
    /// The schedule that made it (deliveries of `schedule.fired` events), else `null`.
    pub schedule_id: Option<String>,
    /// The schedule occurrence it was made for (RFC 3339), else `null`.
    pub occurrence: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl DeliveryOut {
    pub fn from_domain(d: Delivery) -> Self {
        let next = d
            .next_attempt_at
            .filter(|_| matches!(d.status, DeliveryStatus::Pending | DeliveryStatus::Retrying));
        Self {
            id: d.id.to_string(),
            event_id: d.event_id.to_string(),
            webhook_id: d.webhook_id.to_string(),
            status: d.status,
            attempt_count: d.attempts,
            next_attempt_at: next.map(rfc3339),
            last_status_code: d.last_status_code,
            last_error: d.last_error,
            schedule_id: d.schedule_id.map(|s| s.to_string()),
            occurrence: d.occurrence.map(rfc3339),
            created_at: rfc3339(d.created_at),
            updated_at: rfc3339(d.updated_at),
        }
    }
}

/// A delivery with its attempts.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryDetailOut {
    #[serde(flatten)]
    pub delivery: DeliveryOut,
    /// Every attempt, oldest first.
    pub attempts: Vec<AttemptOut>,
}

/// One HTTP try, as recorded (request headers with secrets masked).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AttemptOut {
    pub id: String,
    pub delivery_id: String,
    pub webhook_id: String,
    /// 1-based attempt number.
    pub attempt: u32,
    pub started_at: String,
    pub duration_ms: u64,
    pub request: RequestOut,
    /// The response; `null` when none came back (see `error_kind`).
    pub response: Option<ResponseOut>,
    pub error_kind: Option<ErrorKind>,
    pub error: Option<String>,
}

/// The request an attempt sent.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RequestOut {
    pub method: String,
    pub url: String,
    /// Name and value pairs; secret values masked as `****`.
    #[schema(value_type = Vec<Vec<String>>)]
    pub headers: Vec<(String, String)>,
}

/// The response an attempt got.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ResponseOut {
    pub status: u16,
    #[schema(value_type = Vec<Vec<String>>)]
    pub headers: Vec<(String, String)>,
    /// Up to 64 KiB.
    pub body: String,
    pub body_truncated: bool,
}

impl AttemptOut {
    pub fn from_domain(a: Attempt) -> Self {
        Self {
            id: a.id.to_string(),
            delivery_id: a.delivery_id.to_string(),
            webhook_id: a.webhook_id.to_string(),
            attempt: a.attempt,
            started_at: rfc3339(a.started_at),
            duration_ms: a.duration_ms,
            request: RequestOut {
                method: a.request.method,
                url: a.request.url,
                headers: a.request.headers,
            },
            response: a.response.map(|r| ResponseOut {
                status: r.status,
                headers: r.headers,
                body: r.body,
                body_truncated: r.body_truncated,
            }),
            error_kind: a.error_kind,
            error: a.error,
        }
    }
}

impl DeliveryQuery {
    fn filter(&self) -> Result<DeliveryFilter, ApiError> {
        let id = |field: &str, v: &Option<String>| -> Result<Option<String>, ApiError> {
            Ok(v.as_deref().filter(|s| !s.is_empty()).map(str::to_owned)).and_then(|s| match s {
                Some(s) if !s.contains('_') => Err(ApiError::bad_param(field, "is not an id")),
                other => Ok(other),
            })
        };
        let webhook_id = id("webhook_id", &self.webhook_id)?
            .map(|s| {
                WebhookId::parse(&s).map_err(|e| ApiError::bad_param("webhook_id", e.to_string()))
            })
            .transpose()?;
        let event_id = id("event_id", &self.event_id)?
            .map(|s| EventId::parse(&s).map_err(|e| ApiError::bad_param("event_id", e.to_string())))
            .transpose()?;
        let status = match self.status.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => Some(DeliveryStatus::parse(s).ok_or_else(|| {
                ApiError::bad_param(
                    "status",
                    "must be pending, delivering, succeeded, retrying, failed or cancelled",
                )
            })?),
        };
        Ok(DeliveryFilter {
            webhook_id,
            event_id,
            status,
        })
    }
}

#[utoipa::path(get, path = "/deliveries", tag = "deliveries", params(DeliveryQuery),
    responses((status = 200, body = ListOut<DeliveryOut>), (status = 400, body = ErrorBody)))]
async fn list_deliveries(
    State(state): State<AppState>,
    QueryParams(q): QueryParams<DeliveryQuery>,
) -> ApiResult<Json<ListOut<DeliveryOut>>> {
    let filter = q.filter()?;
    let paging = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    };
    let page = paging.parse(|c| DeliveryId::parse(c).is_ok())?;
    let rows = state.store.list_deliveries(&filter, &page).await?;
    Ok(Json(paginate(
        rows,
        &page,
        |d| d.id.to_string(),
        DeliveryOut::from_domain,
    )))
}

async fn load(state: &AppState, id: &str) -> ApiResult<Delivery> {
    let id = DeliveryId::parse(id).map_err(|_| ApiError::not_found("delivery"))?;
    state
        .store
        .get_delivery(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("delivery"))
}

#[utoipa::path(get, path = "/deliveries/{id}", tag = "deliveries",
    responses((status = 200, body = DeliveryDetailOut), (status = 404, body = ErrorBody)))]
async fn get_delivery(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<DeliveryDetailOut>> {
    let delivery = load(&state, &id).await?;
    let attempts = state.store.list_attempts(&delivery.id).await?;
    Ok(Json(DeliveryDetailOut {
        delivery: DeliveryOut::from_domain(delivery),
        attempts: attempts.into_iter().map(AttemptOut::from_domain).collect(),
    }))
}

#[utoipa::path(post, path = "/deliveries/{id}/retry", tag = "deliveries",
    responses((status = 202, body = DeliveryOut, description = "Due now; the worker sends it"),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn retry_delivery(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<DeliveryOut>)> {
    let delivery = load(&state, &id).await?;
    if delivery.status == DeliveryStatus::Cancelled {
        return Err(ApiError::conflict(
            "the delivery was cancelled: its webhook is gone",
        ));
    }
    match state
        .store
        .retry_delivery_now(&delivery.id, crate::now_ms())
        .await?
    {
        None => Err(ApiError::not_found("delivery")),
        Some(false) => Err(ApiError::conflict(
            "the delivery is being delivered right now",
        )),
        Some(true) => {
            state.wake.deliveries();
            let fresh = load(&state, &id).await?;
            Ok((StatusCode::ACCEPTED, Json(DeliveryOut::from_domain(fresh))))
        }
    }
}
