//! `POST /api/v1/schedules/preview` and `POST /api/v1/schedules/{id}/preview`: the exact request
//! a firing of a schedule would send to its webhook (method, URL, headers with secrets masked,
//! body), built by the same `build_request` as real deliveries, for the schedule's next
//! occurrence. Nothing is sent and nothing is stored.

use axum::extract::{Path, State};
use axum::Json;
use hookd_core::outbound::{build_request, SendContext};
use hookd_core::schedule::Schedule;
use hookd_core::ScheduleId;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::JsonBody;
use super::preview::{invalid, PreviewOut, PREVIEW_DELIVERY_ID};
use super::schedules::{first_run, load, ScheduleIn};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::worker::scheduler::{fired_event, firing};
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(preview_saved))
        .routes(routes!(preview_unsaved))
}

#[utoipa::path(post, path = "/schedules/{id}/preview", tag = "schedules",
    responses((status = 200, body = PreviewOut), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "The schedule's webhook no longer exists"),
              (status = 422, body = ErrorBody, description = "The message (or the webhook's body) does not render")))]
async fn preview_saved(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<PreviewOut>> {
    let schedule = load(&state, &id).await?;
    preview(&state, &schedule).await.map(Json)
}

/// The schedule as it would be created; validated as `POST /schedules` does.
#[utoipa::path(post, path = "/schedules/preview", tag = "schedules",
    request_body = ScheduleIn,
    responses((status = 200, body = PreviewOut),
              (status = 422, body = ErrorBody, description = "The schedule or its message is invalid")))]
async fn preview_unsaved(
    State(state): State<AppState>,
    JsonBody(input): JsonBody<ScheduleIn>,
) -> ApiResult<Json<PreviewOut>> {
    let (active, spec) = input.into_spec(&state).await?;
    let now = crate::now_ms();
    let schedule = Schedule {
        id: ScheduleId::generate(now),
        active,
        next_run_at: first_run(true, &spec.timing, now),
        spec,
        last_run_at: None,
        last_error: None,
        version: 1,
        created_at: now,
        updated_at: now,
    };
    preview(&state, &schedule).await.map(Json)
}

/// The request the schedule's next occurrence (now, for a paused one) would send.
async fn preview(state: &AppState, schedule: &Schedule) -> ApiResult<PreviewOut> {
    let now = crate::now_ms();
    let occurrence = schedule
        .next_run_at
        .or_else(|| schedule.spec.timing.next_after(now))
        .unwrap_or(now);
    let f = firing(schedule, occurrence, 0, Some(occurrence), None, now);
    let webhook = state
        .store
        .get_webhook(&f.webhook_id)
        .await?
        .ok_or_else(|| ApiError::conflict("the schedule's webhook no longer exists"))?;
    let ctx = SendContext {
        delivery_id: PREVIEW_DELIVERY_ID,
        attempt: 1,
        now_secs: now / 1000,
        now_ms: now,
        default_headers: &state.settings.default_headers,
        entry_index: None,
        message: f.message.as_deref(),
    };
    let request = build_request(&webhook, &fired_event(&f), &ctx).map_err(invalid)?;
    Ok(PreviewOut::of(&request))
}
