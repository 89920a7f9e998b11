//! `/api/v1/webhooks/stats`: the recent deliveries of many webhooks at a glance, in one
//! aggregate (what the web UI's webhooks list shows per row).

use axum::extract::State;
use axum::Json;
use hookd_core::store::WebhookStats;
use hookd_core::time::{parse_rfc3339, rfc3339};
use hookd_core::{DeliveryStatus, WebhookId};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::QueryParams;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::AppState;

/// The most webhooks one request may ask about (a page of the webhooks list holds fewer).
const MAX_IDS: usize = 1000;
/// The default window: the last 24 hours.
const DEFAULT_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(webhook_stats))
}

/// Which webhooks, and since when deliveries count.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// Comma-separated webhook ids, at most 1000.
    pub ids: Option<String>,
    /// RFC 3339: count deliveries created at or after this instant; default 24 hours ago.
    pub since: Option<String>,
}

/// One webhook's recent deliveries.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookStatsOut {
    pub webhook_id: String,
    /// The status of its newest delivery, however old; null when it has none.
    pub last_status: Option<DeliveryStatus>,
    /// When that delivery last changed.
    pub last_at: Option<String>,
    /// Deliveries created in the window that succeeded.
    pub succeeded: u64,
    /// Deliveries created in the window that failed for good.
    pub failed: u64,
    /// Deliveries created in the window not finished yet (pending, delivering, retrying).
    pub pending: u64,
    /// `succeeded / (succeeded + failed)`; null when both are 0.
    pub success_rate: Option<f64>,
}

/// The answer: one entry per requested id, in the order asked.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookStatsList {
    pub data: Vec<WebhookStatsOut>,
}

impl WebhookStatsOut {
    fn from_domain(s: WebhookStats) -> Self {
        let finished = s.succeeded + s.failed;
        Self {
            webhook_id: s.webhook_id.to_string(),
            last_status: s.last_status,
            last_at: s.last_at.map(rfc3339),
            succeeded: s.succeeded,
            failed: s.failed,
            pending: s.pending,
            success_rate: (finished > 0).then(|| s.succeeded as f64 / finished as f64),
        }
    }
}

impl StatsQuery {
    fn ids(&self) -> Result<Vec<WebhookId>, ApiError> {
        let ids: Vec<&str> = match self.ids.as_deref() {
            None | Some("") => Vec::new(),
            Some(list) => list.split(',').map(str::trim).collect(),
        };
        if ids.len() > MAX_IDS {
            return Err(ApiError::bad_param("ids", format!("at most {MAX_IDS} ids")));
        }
        ids.into_iter()
            .map(|id| {
                WebhookId::parse(id).map_err(|e| ApiError::bad_param("ids", format!("{id:?}: {e}")))
            })
            .collect()
    }

    fn since_ms(&self, now_ms: i64) -> Result<i64, ApiError> {
        match self.since.as_deref().filter(|s| !s.is_empty()) {
            None => Ok(now_ms - DEFAULT_WINDOW_MS),
            Some(s) => parse_rfc3339(s)
                .ok_or_else(|| ApiError::bad_param("since", "must be an RFC 3339 timestamp")),
        }
    }
}

#[utoipa::path(get, path = "/webhooks/stats", tag = "webhooks", params(StatsQuery),
    responses((status = 200, body = WebhookStatsList), (status = 400, body = ErrorBody)))]
async fn webhook_stats(
    State(state): State<AppState>,
    QueryParams(q): QueryParams<StatsQuery>,
) -> ApiResult<Json<WebhookStatsList>> {
    let ids = q.ids()?;
    let since = q.since_ms(crate::now_ms())?;
    let stats = state.store.webhook_stats(&ids, since).await?;
    let data = stats
        .into_iter()
        .map(WebhookStatsOut::from_domain)
        .collect();
    Ok(Json(WebhookStatsList { data }))
}
