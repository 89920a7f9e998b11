//! `/api/v1/route-calls`: report an API route call (APIO, SPEC §4). The call is stored as a
//! `route.call` event through the normal publish path; webhooks fire only for 2xx responses.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use hookd_core::route_call::{is_http_token, RouteCall, RouteResponse};
use hookd_core::store::Enqueued;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::JsonBody;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::publish::publish;
use crate::AppState;

/// Longest `tag` accepted.
const MAX_TAG: usize = 200;
/// Longest `url` accepted, as for webhook targets.
const MAX_URL: usize = 2048;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(report_route_call))
}

/// A route call as reported.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteCallIn {
    /// Which API or route family the call belongs to (1–200 characters).
    #[schema(min_length = 1, max_length = 200)]
    pub tag: String,
    /// The request's HTTP method (any token; matched case-insensitively).
    #[schema(pattern = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")]
    pub method: String,
    /// The request's path (`/api/v01/orders/1`) or full URL, without spaces or control
    /// characters.
    #[schema(
        min_length = 1,
        max_length = 2048,
        pattern = r"^(/|[A-Za-z][A-Za-z0-9+.-]*:)[^\s\x00-\x1f\x7f]*$"
    )]
    pub url: String,
    /// The request body; `null` when absent.
    #[serde(default)]
    #[schema(value_type = Value)]
    pub body: Value,
    pub response: RouteResponseIn,
}

/// The response the route answered with.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteResponseIn {
    /// 100–599; only 2xx calls fire webhooks.
    #[schema(minimum = 100, maximum = 599)]
    pub status: i64,
    /// The response body; `null` when absent.
    #[serde(default)]
    #[schema(value_type = Value)]
    pub body: Value,
}

/// What reporting the call did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RouteCallOut {
    /// The stored `route.call` event.
    pub id: String,
    /// Deliveries queued (always 0 for a non-2xx response).
    pub deliveries: u32,
}

impl RouteCallIn {
    /// Validates at the edge; every error names its field.
    fn parse(self) -> Result<RouteCall, ApiError> {
        let tag_len = self.tag.chars().count();
        if self.tag.trim().is_empty() || tag_len > MAX_TAG {
            let msg = format!("must be 1 to {MAX_TAG} characters");
            return Err(ApiError::invalid("tag", msg));
        }
        if !is_http_token(&self.method) {
            return Err(ApiError::invalid(
                "method",
                "must be an HTTP method such as POST",
            ));
        }
        check_url(&self.url)?;
        let status = u16::try_from(self.response.status)
            .ok()
            .filter(|s| (100..=599).contains(s))
            .ok_or_else(|| ApiError::invalid("response.status", "must be 100 to 599"))?;
        Ok(RouteCall {
            tag: self.tag,
            method: self.method,
            url: self.url,
            body: self.body,
            response: RouteResponse {
                status,
                body: self.response.body,
            },
        })
    }
}

/// A path starting with `/`, or an absolute URL; no whitespace or control characters.
fn check_url(url: &str) -> Result<(), ApiError> {
    if url.is_empty() || url.len() > MAX_URL {
        let msg = format!("must be 1 to {MAX_URL} characters");
        return Err(ApiError::invalid("url", msg));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ApiError::invalid(
            "url",
            "must not contain spaces or control characters",
        ));
    }
    if !url.starts_with('/') && reqwest::Url::parse(url).is_err() {
        let msg = "must be a path starting with / or an absolute URL";
        return Err(ApiError::invalid("url", msg));
    }
    Ok(())
}

#[utoipa::path(post, path = "/route-calls", tag = "events", request_body = RouteCallIn,
    responses((status = 202, body = RouteCallOut, description = "Stored as a `route.call` event"),
              (status = 422, body = ErrorBody)))]
async fn report_route_call(
    State(state): State<AppState>,
    JsonBody(input): JsonBody<RouteCallIn>,
) -> ApiResult<(StatusCode, Json<RouteCallOut>)> {
    let event = input.parse()?.into_event(crate::now_ms());
    match publish(&state, vec![event]).await?.into_iter().next() {
        Some(Enqueued::Created { id, deliveries }) => {
            let out = RouteCallOut {
                id: id.to_string(),
                deliveries,
            };
            Ok((StatusCode::ACCEPTED, Json(out)))
        }
        // Route calls carry no idempotency key, so a duplicate cannot happen.
        Some(Enqueued::Duplicate(_)) | None => {
            Err(ApiError::internal(&"the store returned no new event"))
        }
    }
}
