//! `POST /api/v1/webhooks/{id}/preview` and `POST /api/v1/webhooks/preview`: the exact request a
//! delivery of an event would send (method, URL, headers with secrets masked, body), built by the
//! same [`build_request`] as real deliveries. Nothing is sent and nothing is stored.
//!
//! The delivery id is a placeholder ([`PREVIEW_DELIVERY_ID`]) and the timestamp is now: a real
//! delivery has its own id and time, so its signature headers differ from the preview's.

use axum::extract::{Path, State};
use axum::Json;
use hookd_core::outbound::{build_request, BuildError, SendContext};
use hookd_core::webhook::EventMatcher;
use hookd_core::{Event, EventId, Webhook, WebhookId};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{JsonBody, OptionalJsonBody};
use super::webhook_wire::WebhookIn;
use super::webhooks::{load, test_event, TestIn};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::AppState;

/// The delivery id a preview is built with (`webhook-id`, `delivery.id` in templates).
pub const PREVIEW_DELIVERY_ID: &str = "dlv_preview";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(preview_webhook))
        .routes(routes!(preview_unsaved))
}

/// What to preview a saved webhook with.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewIn {
    /// The event; a `webhook.test` event when absent.
    #[serde(default)]
    pub event: Option<TestIn>,
}

/// What to preview an unsaved webhook with.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewUnsavedIn {
    /// The webhook as it would be created; validated as `POST /webhooks` does.
    pub webhook: WebhookIn,
    #[serde(default)]
    pub event: Option<TestIn>,
}

/// The request a delivery would send.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PreviewOut {
    pub method: String,
    pub url: String,
    /// `[name, value]` pairs in sending order; secrets masked as in attempt records.
    #[schema(value_type = Vec<Vec<String>>)]
    pub headers: Vec<(String, String)>,
    /// The exact body text.
    pub body: String,
}

#[utoipa::path(post, path = "/webhooks/{id}/preview", tag = "webhooks",
    request_body(content = Option<PreviewIn>),
    responses((status = 200, body = PreviewOut), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody, description = "The event or a template is invalid")))]
async fn preview_webhook(
    State(state): State<AppState>,
    Path(id): Path<String>,
    OptionalJsonBody(input): OptionalJsonBody<PreviewIn>,
) -> ApiResult<Json<PreviewOut>> {
    let webhook = load(&state, &id).await?;
    let event = input.unwrap_or_default().event.unwrap_or_default();
    preview(&state, &webhook, event).map(Json)
}

#[utoipa::path(post, path = "/webhooks/preview", tag = "webhooks",
    request_body = PreviewUnsavedIn,
    responses((status = 200, body = PreviewOut),
              (status = 422, body = ErrorBody, description = "The webhook, event or a template is invalid")))]
async fn preview_unsaved(
    State(state): State<AppState>,
    JsonBody(input): JsonBody<PreviewUnsavedIn>,
) -> ApiResult<Json<PreviewOut>> {
    let now = crate::now_ms();
    let webhook = Webhook {
        id: WebhookId::generate(now),
        active: input.webhook.active,
        disabled_reason: None,
        failing_since: None,
        spec: input.webhook.into_spec(&state.settings)?,
        created_at: now,
        updated_at: now,
        circuit: Default::default(),
    };
    preview(&state, &webhook, input.event.unwrap_or_default()).map(Json)
}

/// Builds the request `webhook` would send for the event `input` describes.
fn preview(state: &AppState, webhook: &Webhook, input: TestIn) -> ApiResult<PreviewOut> {
    let now = crate::now_ms();
    let event =
        test_event(input, "event.", &webhook.id, now)?.into_event(EventId::generate(now), now);
    // The entry a real delivery of this event would be queued for (APIO's `event.id`).
    let entry_index = EventMatcher::compile(&webhook.spec.events)
        .ok()
        .and_then(|m| m.matches(&event))
        .and_then(|m| m.entry);
    request_of(state, webhook, &event, entry_index, None)
}

/// The request a delivery of `event` to `webhook` sends (`message`: a schedule's, in place of
/// the body), as [`PREVIEW_DELIVERY_ID`] at its first attempt, now.
pub(super) fn request_of(
    state: &AppState,
    webhook: &Webhook,
    event: &Event,
    entry_index: Option<u32>,
    message: Option<&str>,
) -> ApiResult<PreviewOut> {
    let now = crate::now_ms();
    let ctx = SendContext {
        delivery_id: PREVIEW_DELIVERY_ID,
        attempt: 1,
        now_secs: now / 1000,
        now_ms: now,
        default_headers: &state.settings.default_headers,
        entry_index,
        message,
    };
    let request = build_request(webhook, event, &ctx).map_err(invalid)?;
    Ok(PreviewOut::of(&request))
}

impl PreviewOut {
    /// The request as shown: secrets masked as in attempt records, the body as text.
    pub(super) fn of(request: &hookd_core::outbound::OutboundRequest) -> Self {
        let record = request.record();
        Self {
            method: record.method,
            url: record.url,
            headers: record.headers,
            body: String::from_utf8_lossy(&request.body).into_owned(),
        }
    }
}

/// A request that cannot be built is the webhook's fault: 422 naming the field (a template, or
/// else the secret, which is then unfit for the signature scheme).
fn invalid(e: BuildError) -> ApiError {
    let field = e.field.unwrap_or_else(|| "secret".to_owned());
    ApiError::invalid(field, e.message)
}
