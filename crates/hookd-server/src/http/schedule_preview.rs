//! `POST /api/v1/schedules/preview` and `POST /api/v1/schedules/{id}/preview`: the exact request
//! a firing of a schedule would send to its webhook (method, URL, headers with secrets masked,
//! body), built by the same `build_request` as real deliveries, for the schedule's next
//! occurrence. Nothing is sent and nothing is stored.

use axum::extract::{Path, State};
use axum::Json;
use hookd_core::schedule::Schedule;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::JsonBody;
use super::preview::{request_of, PreviewOut};
use super::schedules::{load, new_schedule, ScheduleIn};
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
    let (_, spec) = input.into_spec(&state).await?;
    // Previewed as active, so a paused schedule shows its next occurrence too.
    let schedule = new_schedule(true, spec, crate::now_ms());
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
    // Firings queue their delivery for no `events` entry.
    request_of(
        state,
        &webhook,
        &fired_event(&f),
        None,
        f.message.as_deref(),
    )
}
