//! `/api/v1/schedules`: create, list, get, patch, delete, and run now (SPEC §4 "Schedules").
//! The scheduler that fires them is `worker::scheduler`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use hookd_core::schedule::{local_rfc3339, Schedule, ScheduleSpec, Timing};
use hookd_core::store::Written;
use hookd_core::template::Template;
use hookd_core::time::rfc3339;
use hookd_core::{ScheduleId, WebhookId};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{merge_patch, only_fields, parse_json, JsonBody, QueryParams};
use super::pagination::{paginate, ListOut, PageQuery};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::worker::scheduler::{firing, firing_error};
use crate::AppState;

/// Longest `name` accepted.
const MAX_NAME: usize = 200;
/// Longest `description` accepted.
const MAX_DESCRIPTION: usize = 2000;
/// Longest `message` template accepted.
const MAX_MESSAGE: usize = 64 * 1024;
/// How many upcoming run times a schedule shows.
const UPCOMING: usize = 5;
/// Attempts at a patch that keeps meeting a concurrent firing.
const PATCH_ATTEMPTS: usize = 3;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_schedules, create_schedule))
        .routes(routes!(get_schedule, patch_schedule, delete_schedule))
        .routes(routes!(run_schedule))
}

/// A schedule as created (and as a patch is merged into). Give `cron` (with an optional
/// `timezone`, default UTC) or `every_seconds`, not both.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleIn {
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 2000)]
    pub description: Option<String>,
    #[serde(default = "yes")]
    pub active: bool,
    /// The webhook the message is sent to (its URL, auth, headers and signature apply).
    pub webhook_id: String,
    /// A template (SPEC §6) rendered as the request body. Absent: the webhook's own body for the
    /// `schedule.fired` event (by default its Standard Webhooks payload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Five fields: minute hour day-of-month month day-of-week (`0 2 * * *`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// The IANA time zone `cron` is read in (`Europe/Paris`); default `UTC`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Fire every N seconds (1 to a year) instead of on a cron expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 31_622_400)]
    pub every_seconds: Option<i64>,
}

fn yes() -> bool {
    true
}

/// A schedule as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ScheduleOut {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub active: bool,
    pub webhook_id: String,
    pub message: Option<String>,
    pub cron: Option<String>,
    pub timezone: Option<String>,
    pub every_seconds: Option<u64>,
    /// The occurrence it fires next (RFC 3339, UTC); `null` while inactive.
    pub next_run_at: Option<String>,
    /// The next five run times, in the schedule's time zone; empty while inactive.
    pub next_runs: Vec<String>,
    /// When it last fired, scheduled or by hand.
    pub last_run_at: Option<String>,
    /// Why its last firing's request could not be built (its message does not render, its
    /// webhook is gone); `null` when it could. Cleared by an edit of `message` or `webhook_id`.
    pub last_error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl ScheduleOut {
    fn from_domain(s: &Schedule) -> Self {
        let (cron, timezone, every_seconds) = timing_fields(&s.spec.timing);
        let next_runs = match s.next_run_at {
            Some(next) => std::iter::once(next)
                .chain(s.spec.timing.upcoming(next, UPCOMING - 1))
                .map(|ms| local_rfc3339(&s.spec.timing, ms))
                .collect(),
            None => Vec::new(),
        };
        Self {
            id: s.id.to_string(),
            name: s.spec.name.clone(),
            description: s.spec.description.clone(),
            active: s.active,
            webhook_id: s.spec.webhook_id.to_string(),
            message: s.spec.message.clone(),
            cron,
            timezone,
            every_seconds,
            next_run_at: s.next_run_at.map(rfc3339),
            next_runs,
            last_run_at: s.last_run_at.map(rfc3339),
            last_error: s.last_error.clone(),
            created_at: rfc3339(s.created_at),
            updated_at: rfc3339(s.updated_at),
        }
    }
}

/// What a run by hand queued.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunOut {
    /// The `schedule.fired` event.
    pub event_id: String,
    /// Its delivery to the schedule's webhook (see `/deliveries/{id}`).
    pub delivery_id: String,
    /// The occurrence recorded on the delivery: the time of the run.
    pub occurrence: String,
}

/// A timing as the wire's `cron`, `timezone` and `every_seconds` fields.
fn timing_fields(timing: &Timing) -> (Option<String>, Option<String>, Option<u64>) {
    match timing {
        Timing::Cron(cron) => (
            Some(cron.expression().to_owned()),
            Some(cron.timezone().to_owned()),
            None,
        ),
        Timing::Every { seconds } => (None, None, Some(*seconds)),
    }
}

impl ScheduleIn {
    /// What is stored, as a create body (a patch is merged into it).
    fn from_domain(s: &Schedule) -> Self {
        let (cron, timezone, every_seconds) = timing_fields(&s.spec.timing);
        Self {
            name: s.spec.name.clone(),
            description: s.spec.description.clone(),
            active: s.active,
            webhook_id: s.spec.webhook_id.to_string(),
            message: s.spec.message.clone(),
            cron,
            timezone,
            every_seconds: every_seconds.map(|s| s as i64),
        }
    }

    /// Validates at the edge; every error names its field. Checks the webhook exists.
    pub(super) async fn into_spec(self, state: &AppState) -> ApiResult<(bool, ScheduleSpec)> {
        let name_len = self.name.chars().count();
        if self.name.trim().is_empty() || name_len > MAX_NAME {
            let msg = format!("must be 1 to {MAX_NAME} characters");
            return Err(ApiError::invalid("name", msg));
        }
        if let Some(d) = &self.description {
            if d.chars().count() > MAX_DESCRIPTION {
                let msg = format!("must be at most {MAX_DESCRIPTION} characters");
                return Err(ApiError::invalid("description", msg));
            }
        }
        if let Some(m) = &self.message {
            if m.len() > MAX_MESSAGE {
                let msg = format!("must be at most {MAX_MESSAGE} bytes");
                return Err(ApiError::invalid("message", msg));
            }
            Template::compile(m).map_err(|e| ApiError::invalid("message", e.to_string()))?;
        }
        let timing = match (&self.cron, self.every_seconds) {
            (Some(_), Some(_)) => {
                return Err(ApiError::invalid(
                    "every_seconds",
                    "give either cron or every_seconds, not both",
                ))
            }
            (None, None) => {
                return Err(ApiError::invalid(
                    "cron",
                    "give a cron expression or every_seconds",
                ))
            }
            (Some(cron), None) => {
                let tz = self.timezone.as_deref().unwrap_or("UTC");
                Timing::cron(cron, tz)
            }
            (None, Some(seconds)) => {
                if self.timezone.is_some() {
                    return Err(ApiError::invalid(
                        "timezone",
                        "applies to cron schedules only",
                    ));
                }
                Timing::every(seconds)
            }
        }
        .map_err(|e| ApiError::invalid(e.field, e.message))?;
        let webhook_id = WebhookId::parse(&self.webhook_id)
            .map_err(|e| ApiError::invalid("webhook_id", e.to_string()))?;
        if state.store.get_webhook(&webhook_id).await?.is_none() {
            return Err(ApiError::invalid("webhook_id", "no such webhook"));
        }
        let spec = ScheduleSpec {
            name: self.name,
            description: self.description,
            webhook_id,
            message: self.message,
            timing,
        };
        Ok((self.active, spec))
    }
}

/// Merges a patch into what is stored, top-level key by key; `null` removes an optional field.
/// Giving one kind of timing drops the other, so a cron schedule can become an interval.
fn merge(current: &ScheduleIn, patch: Map<String, Value>) -> ApiResult<ScheduleIn> {
    only_fields(
        &patch,
        &[
            "name",
            "description",
            "active",
            "webhook_id",
            "message",
            "cron",
            "timezone",
            "every_seconds",
        ],
    )?;
    let mut merged = match serde_json::to_value(current) {
        Ok(Value::Object(m)) => m,
        _ => return Err(ApiError::internal(&"a schedule did not serialise")),
    };
    let gives = |k: &str| patch.get(k).is_some_and(|v| !v.is_null());
    if gives("cron") && !patch.contains_key("every_seconds") {
        merged.remove("every_seconds");
    }
    if gives("every_seconds") && !patch.contains_key("cron") {
        merged.remove("cron");
        merged.remove("timezone");
    }
    merge_patch(&mut merged, patch);
    let bytes = serde_json::to_vec(&Value::Object(merged))
        .map_err(|e| ApiError::malformed(e.to_string()))?;
    parse_json(&bytes)
}

pub(super) async fn load(state: &AppState, id: &str) -> ApiResult<Schedule> {
    let id = ScheduleId::parse(id).map_err(|_| ApiError::not_found("schedule"))?;
    state
        .store
        .get_schedule(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("schedule"))
}

/// A schedule made at `now`, not yet stored, planned from now.
pub(super) fn new_schedule(active: bool, spec: ScheduleSpec, now: i64) -> Schedule {
    Schedule {
        id: ScheduleId::generate(now),
        active,
        next_run_at: first_run(active, &spec.timing, now),
        spec,
        last_run_at: None,
        last_error: None,
        version: 1,
        created_at: now,
        updated_at: now,
    }
}

/// The first occurrence after `now` of an active schedule; `None` while inactive.
fn first_run(active: bool, timing: &Timing, now: i64) -> Option<i64> {
    active.then(|| timing.next_after(now)).flatten()
}

#[utoipa::path(post, path = "/schedules", tag = "schedules", request_body = ScheduleIn,
    responses((status = 201, body = ScheduleOut), (status = 422, body = ErrorBody)))]
async fn create_schedule(
    State(state): State<AppState>,
    JsonBody(input): JsonBody<ScheduleIn>,
) -> ApiResult<(StatusCode, Json<ScheduleOut>)> {
    let (active, spec) = input.into_spec(&state).await?;
    let schedule = new_schedule(active, spec, crate::now_ms());
    state.store.insert_schedule(&schedule).await?;
    state.schedules.notify_waiters();
    Ok((
        StatusCode::CREATED,
        Json(ScheduleOut::from_domain(&schedule)),
    ))
}

#[utoipa::path(get, path = "/schedules", tag = "schedules", params(PageQuery),
    responses((status = 200, body = ListOut<ScheduleOut>)))]
async fn list_schedules(
    State(state): State<AppState>,
    QueryParams(q): QueryParams<PageQuery>,
) -> ApiResult<Json<ListOut<ScheduleOut>>> {
    let page = q.parse(|c| ScheduleId::parse(c).is_ok())?;
    let rows = state.store.list_schedules(&page).await?;
    Ok(Json(paginate(
        rows,
        &page,
        |s| s.id.to_string(),
        |s| ScheduleOut::from_domain(&s),
    )))
}

#[utoipa::path(get, path = "/schedules/{id}", tag = "schedules",
    responses((status = 200, body = ScheduleOut), (status = 404, body = ErrorBody)))]
async fn get_schedule(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<ScheduleOut>> {
    Ok(Json(ScheduleOut::from_domain(&load(&state, &id).await?)))
}

/// Any field of [`ScheduleIn`]; `null` removes `description` or `message`.
#[utoipa::path(patch, path = "/schedules/{id}", tag = "schedules", request_body = ScheduleIn,
    responses((status = 200, body = ScheduleOut), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn patch_schedule(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(patch): JsonBody<Map<String, Value>>,
) -> ApiResult<Json<ScheduleOut>> {
    // A firing bumps the version too; a patch that meets one reads the schedule again.
    for _ in 0..PATCH_ATTEMPTS {
        let read = load(&state, &id).await?;
        let input = merge(&ScheduleIn::from_domain(&read), patch.clone())?;
        let (active, spec) = input.into_spec(&state).await?;
        let now = crate::now_ms();
        let timing_changed = spec.timing != read.spec.timing || active != read.active;
        let next_run_at = if timing_changed {
            first_run(active, &spec.timing, now)
        } else {
            read.next_run_at
        };
        // The last firing's error was about the message or the webhook: a new one of either
        // is unproven until it fires (or is previewed).
        let last_error = read.last_error.clone().filter(|_| {
            spec.message == read.spec.message && spec.webhook_id == read.spec.webhook_id
        });
        let schedule = Schedule {
            active,
            spec,
            next_run_at,
            last_error,
            updated_at: now.max(read.updated_at + 1),
            version: read.version + 1,
            ..read.clone()
        };
        match state.store.update_schedule(&schedule, read.version).await? {
            Written::Done => {
                state.schedules.notify_waiters();
                return Ok(Json(ScheduleOut::from_domain(&schedule)));
            }
            Written::NotFound => return Err(ApiError::not_found("schedule")),
            Written::Changed => continue,
        }
    }
    Err(ApiError::conflict(
        "the schedule kept changing while this request was handled; read it again and retry",
    ))
}

#[utoipa::path(delete, path = "/schedules/{id}", tag = "schedules",
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_schedule(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = ScheduleId::parse(&id).map_err(|_| ApiError::not_found("schedule"))?;
    if state.store.delete_schedule(&id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("schedule"))
    }
}

/// Fires the schedule now, whether active or not, without moving its next run.
#[utoipa::path(post, path = "/schedules/{id}/run", tag = "schedules",
    responses((status = 202, body = RunOut), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
async fn run_schedule(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<RunOut>)> {
    let schedule = load(&state, &id).await?;
    let now = crate::now_ms();
    let mut f = firing(&schedule, now, 0, None, None, now);
    let Some(webhook) = state.store.get_webhook(&f.webhook_id).await? else {
        return Err(ApiError::conflict(
            "the schedule's webhook no longer exists",
        ));
    };
    f.last_error = firing_error(&webhook, &f);
    if !state.store.fire_schedule(&f).await? {
        return Err(ApiError::not_found("schedule"));
    }
    state.wake.queued();
    Ok((
        StatusCode::ACCEPTED,
        Json(RunOut {
            event_id: f.event_id.to_string(),
            delivery_id: f.delivery_id.to_string(),
            occurrence: rfc3339(now),
        }),
    ))
}
