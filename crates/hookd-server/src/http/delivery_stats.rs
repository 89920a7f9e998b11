//! `/api/v1/stats/deliveries`: attempts over the last hour or day, bucket by bucket, of every
//! webhook or one (what the web UI's dashboard draws), in one aggregate whose cost follows the
//! window (see `Store::attempt_series`).

use axum::extract::State;
use axum::Json;
use hookd_core::series::{AttemptBucket, AttemptWindow};
use hookd_core::time::rfc3339;
use hookd_core::WebhookId;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::QueryParams;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(delivery_stats))
}

/// The windows the dashboard offers, each with its bucket length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub enum StatsWindow {
    /// The last hour in 60 one-minute buckets.
    #[serde(rename = "1h")]
    Hour,
    /// The last day in 24 one-hour buckets.
    #[serde(rename = "24h")]
    Day,
}

impl StatsWindow {
    fn parse(s: Option<&str>) -> Result<Self, ApiError> {
        match s {
            None | Some("1h") => Ok(Self::Hour),
            Some("24h") => Ok(Self::Day),
            Some(_) => Err(ApiError::bad_param("window", "must be 1h or 24h")),
        }
    }

    /// `(bucket length in seconds, buckets)`.
    fn buckets(self) -> (i64, u32) {
        match self {
            Self::Hour => (60, 60),
            Self::Day => (3600, 24),
        }
    }
}

/// Which window, and whose attempts.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryStatsQuery {
    /// `1h` (default: 60 one-minute buckets) or `24h` (24 one-hour buckets).
    #[param(value_type = Option<StatsWindow>)]
    pub window: Option<String>,
    /// Only this webhook's attempts (a deleted or unknown webhook has none); default every
    /// webhook's.
    pub webhook_id: Option<String>,
}

/// One bucket: the attempts that started in it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryStatsBucket {
    /// When the bucket starts (RFC 3339); it lasts `bucket_seconds`.
    pub start: String,
    /// Attempts the endpoint answered with a 2xx status.
    pub succeeded: u64,
    /// The other attempts: another status, no answer (timeout, connection error), or nothing
    /// sent (the webhook was disabled or gone, the payload could not be built).
    pub failed: u64,
    /// All attempts started in the bucket (`succeeded + failed`).
    pub attempts: u64,
    /// The median attempt latency in ms (nearest rank) over attempts that sent a request; null
    /// when there were none.
    pub latency_p50_ms: Option<u64>,
    /// The 95th percentile (nearest rank), as `latency_p50_ms`.
    pub latency_p95_ms: Option<u64>,
}

/// Delivery attempts over the window, every bucket present (zeros when empty), oldest first;
/// the last bucket holds the time of the request. Buckets are aligned on whole minutes (1h) or
/// hours (24h, UTC).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryStats {
    pub window: StatsWindow,
    pub bucket_seconds: i64,
    /// The webhook asked about; null for all.
    pub webhook_id: Option<String>,
    pub buckets: Vec<DeliveryStatsBucket>,
}

impl DeliveryStatsBucket {
    fn from_domain(b: AttemptBucket) -> Self {
        Self {
            start: rfc3339(b.start_ms),
            succeeded: b.succeeded,
            failed: b.failed,
            attempts: b.attempts,
            latency_p50_ms: b.latency_p50_ms,
            latency_p95_ms: b.latency_p95_ms,
        }
    }
}

/// Attempts over the last hour or day.
///
/// Counts delivery attempts by the time they started: each attempt is `succeeded` (a 2xx
/// answer) or `failed` (anything else), so a delivery retried three times before it succeeded
/// counts three attempts, one of them succeeded. Latencies are those of attempts that sent a
/// request. Reads only the window's attempts (an index range), whatever retention keeps.
#[utoipa::path(get, path = "/stats/deliveries", tag = "deliveries", params(DeliveryStatsQuery),
    responses((status = 200, body = DeliveryStats), (status = 400, body = ErrorBody)))]
async fn delivery_stats(
    State(state): State<AppState>,
    QueryParams(q): QueryParams<DeliveryStatsQuery>,
) -> ApiResult<Json<DeliveryStats>> {
    let window = StatsWindow::parse(q.window.as_deref())?;
    let webhook_id = match q.webhook_id.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(id) => Some(
            WebhookId::parse(id).map_err(|e| ApiError::bad_param("webhook_id", e.to_string()))?,
        ),
    };
    let (seconds, buckets) = window.buckets();
    let range =
        AttemptWindow::ending_at(crate::now_ms(), seconds * 1000, buckets, webhook_id.clone());
    let found = state.store.attempt_series(&range).await?;
    Ok(Json(DeliveryStats {
        window,
        bucket_seconds: seconds,
        webhook_id: webhook_id.map(|id| id.to_string()),
        buckets: found
            .into_iter()
            .map(DeliveryStatsBucket::from_domain)
            .collect(),
    }))
}
