//! `/api/v1/webhooks`: create, list, get, patch, delete, enable, disable, test, secrets.
//! (Preview is in `preview.rs`, statistics in `webhook_stats.rs`.)

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use hookd_core::signature::SigningSecret;
use hookd_core::store::{EventToStore, NewDelivery, Written};
use hookd_core::webhook::PreviousSecret;
use hookd_core::{DeliveryId, DeliveryStatus, EventId, EventType, NewEvent, Webhook, WebhookId};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::deliveries::AttemptOut;
use super::extract::{JsonBody, OptionalJsonBody, QueryParams};
use super::pagination::{paginate, ListOut, PageQuery};
use super::webhook_wire::{WebhookIn, WebhookOut, WebhookPatch};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::worker::send;
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_webhooks, create_webhook))
        .routes(routes!(get_webhook, patch_webhook, delete_webhook))
        .routes(routes!(enable_webhook))
        .routes(routes!(disable_webhook))
        .routes(routes!(test_webhook))
        .routes(routes!(rotate_secret))
        .routes(routes!(get_secret))
        .routes(routes!(recover_webhook))
}

/// The signing secret of a webhook.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SecretOut {
    pub secret: String,
    /// For the `ed25519` scheme: the `whpk_...` key receivers verify with. Absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
}

impl SecretOut {
    fn of(secret: &SigningSecret) -> Self {
        Self {
            secret: secret.expose().to_owned(),
            public_key: secret.public_key(),
        }
    }
}

/// The event a test sends; defaults to a `webhook.test` event.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestIn {
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    pub model: Option<String>,
    /// Any JSON value.
    #[serde(default)]
    #[schema(value_type = Value)]
    pub data: Option<serde_json::Value>,
}

/// Which failed deliveries to send again.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoverIn {
    /// RFC 3339: failed deliveries created at or after this instant are queued again.
    pub since: String,
}

/// How many deliveries a recovery queued again.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RecoverOut {
    pub recovered: u64,
}

/// The event `input` describes for `webhook_id`: a `webhook.test` event unless it says otherwise.
/// `at` is where the input sits in the request body (`""` or `"event."`), for error fields.
pub(super) fn test_event(
    input: TestIn,
    at: &str,
    webhook_id: &WebhookId,
    now: i64,
) -> ApiResult<NewEvent> {
    let event_type = input.event_type.as_deref().unwrap_or("webhook.test");
    let event_type =
        EventType::parse(event_type).map_err(|m| ApiError::invalid(format!("{at}type"), m))?;
    let data = input
        .data
        .unwrap_or_else(|| json!({"webhook_id": webhook_id}));
    Ok(NewEvent {
        event_type,
        model: input.model,
        data,
        occurred_at: now,
        idempotency_key: None,
    })
}

pub(super) async fn load(state: &AppState, id: &str) -> ApiResult<Webhook> {
    let id = WebhookId::parse(id).map_err(|_| ApiError::not_found("webhook"))?;
    state
        .store
        .get_webhook(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))
}

#[utoipa::path(post, path = "/webhooks", tag = "webhooks", request_body = WebhookIn,
    responses((status = 201, body = WebhookOut), (status = 422, body = ErrorBody)))]
async fn create_webhook(
    State(state): State<AppState>,
    JsonBody(input): JsonBody<WebhookIn>,
) -> ApiResult<(StatusCode, Json<WebhookOut>)> {
    let now = crate::now_ms();
    let active = input.active;
    let webhook = Webhook {
        id: WebhookId::generate(now),
        active,
        disabled_reason: None,
        failing_since: None,
        spec: input.into_spec(&state.settings)?,
        created_at: now,
        updated_at: now,
        circuit: Default::default(),
    };
    state.store.insert_webhook(&webhook).await?;
    Ok((StatusCode::CREATED, Json(WebhookOut::from_domain(&webhook))))
}

#[utoipa::path(get, path = "/webhooks", tag = "webhooks", params(PageQuery),
    responses((status = 200, body = ListOut<WebhookOut>)))]
async fn list_webhooks(
    State(state): State<AppState>,
    QueryParams(q): QueryParams<PageQuery>,
) -> ApiResult<Json<ListOut<WebhookOut>>> {
    let page = q.parse(|c| WebhookId::parse(c).is_ok())?;
    let rows = state.store.list_webhooks(&page).await?;
    Ok(Json(paginate(
        rows,
        &page,
        |w| w.id.to_string(),
        |w| WebhookOut::from_domain(&w),
    )))
}

#[utoipa::path(get, path = "/webhooks/{id}", tag = "webhooks",
    responses((status = 200, body = WebhookOut), (status = 404, body = ErrorBody)))]
async fn get_webhook(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<WebhookOut>> {
    Ok(Json(WebhookOut::from_domain(&load(&state, &id).await?)))
}

#[utoipa::path(patch, path = "/webhooks/{id}", tag = "webhooks", request_body = WebhookPatch,
    responses((status = 200, body = WebhookOut), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
async fn patch_webhook(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(patch): JsonBody<WebhookPatch>,
) -> ApiResult<Json<WebhookOut>> {
    let read = load(&state, &id).await?;
    let mut webhook = read.clone();
    let reactivated = patch.active == Some(true) && !webhook.active;
    let mut input = WebhookIn::from_domain(&webhook);
    input.apply(patch);
    webhook.active = input.active;
    let previous = webhook.spec.previous_secret.take();
    webhook.spec = input.into_spec(&state.settings)?;
    // A secret being rotated out that cannot sign under a new scheme is dropped.
    webhook.spec.previous_secret = previous.filter(|p| p.secret.fits(&webhook.spec.signature));
    if reactivated {
        webhook.disabled_reason = None;
        webhook.failing_since = None;
    }
    save(&state, &read, webhook).await
}

async fn save(
    state: &AppState,
    read: &Webhook,
    mut webhook: Webhook,
) -> ApiResult<Json<WebhookOut>> {
    // Strictly later than what was read, so every write is a new `updated_at`.
    webhook.updated_at = crate::now_ms().max(read.updated_at + 1);
    match state.store.update_webhook(&webhook, read).await? {
        Written::Done => Ok(Json(WebhookOut::from_domain(&webhook))),
        Written::NotFound => Err(ApiError::not_found("webhook")),
        Written::Changed => Err(ApiError::conflict(
            "the webhook changed while this request was handled (hookd may have disabled it); \
             read it again and retry",
        )),
    }
}

#[utoipa::path(delete, path = "/webhooks/{id}", tag = "webhooks",
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_webhook(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = WebhookId::parse(&id).map_err(|_| ApiError::not_found("webhook"))?;
    if state.store.delete_webhook(&id, crate::now_ms()).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("webhook"))
    }
}

#[utoipa::path(post, path = "/webhooks/{id}/enable", tag = "webhooks",
    responses((status = 200, body = WebhookOut), (status = 404, body = ErrorBody)))]
async fn enable_webhook(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<WebhookOut>> {
    let read = load(&state, &id).await?;
    let mut webhook = read.clone();
    webhook.active = true;
    webhook.disabled_reason = None;
    webhook.failing_since = None;
    save(&state, &read, webhook).await
}

#[utoipa::path(post, path = "/webhooks/{id}/disable", tag = "webhooks",
    responses((status = 200, body = WebhookOut), (status = 404, body = ErrorBody)))]
async fn disable_webhook(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<WebhookOut>> {
    let read = load(&state, &id).await?;
    let mut webhook = read.clone();
    webhook.active = false;
    save(&state, &read, webhook).await
}

#[utoipa::path(post, path = "/webhooks/{id}/rotate-secret", tag = "webhooks",
    responses((status = 200, body = SecretOut), (status = 404, body = ErrorBody)))]
async fn rotate_secret(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<SecretOut>> {
    let read = load(&state, &id).await?;
    let mut webhook = read.clone();
    let now = crate::now_ms();
    let grace = state.settings.delivery.rotation_grace.as_millis() as i64;
    let fresh = SigningSecret::generate_for(&webhook.spec.signature);
    let old = std::mem::replace(&mut webhook.spec.secret, fresh.clone());
    webhook.spec.previous_secret = Some(PreviousSecret {
        secret: old,
        expires_at: now + grace,
    });
    let _saved = save(&state, &read, webhook).await?;
    Ok(Json(SecretOut::of(&fresh)))
}

#[utoipa::path(get, path = "/webhooks/{id}/secret", tag = "webhooks",
    responses((status = 200, body = SecretOut), (status = 404, body = ErrorBody)))]
async fn get_secret(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<SecretOut>> {
    let webhook = load(&state, &id).await?;
    Ok(Json(SecretOut::of(&webhook.spec.secret)))
}

#[utoipa::path(post, path = "/webhooks/{id}/test", tag = "webhooks", request_body(content = Option<TestIn>),
    responses((status = 200, body = AttemptOut, description = "The attempt: response or error"),
              (status = 404, body = ErrorBody)))]
async fn test_webhook(
    State(state): State<AppState>,
    Path(id): Path<String>,
    OptionalJsonBody(input): OptionalJsonBody<TestIn>,
) -> ApiResult<Json<AttemptOut>> {
    let webhook = load(&state, &id).await?;
    let now = crate::now_ms();
    let event = test_event(input.unwrap_or_default(), "", &webhook.id, now)?;
    let lease = crate::auth::generate_token();
    let delivery = NewDelivery {
        id: DeliveryId::generate(now),
        webhook_id: webhook.id.clone(),
        entry_index: None,
        status: DeliveryStatus::Delivering,
        next_attempt_at: now + state.settings.delivery.lease.as_millis() as i64,
        lease: Some(lease.clone()),
    };
    let stored = EventToStore {
        id: EventId::generate(now),
        event,
        deliveries: vec![delivery],
    };
    state
        .store
        .enqueue_events(std::slice::from_ref(&stored), now)
        .await?;
    let event = state
        .store
        .get_event(&stored.id)
        .await?
        .ok_or_else(|| ApiError::not_found("event"))?;
    let delivery = state
        .store
        .get_delivery(&stored.deliveries[0].id)
        .await?
        .ok_or_else(|| ApiError::not_found("delivery"))?;
    let outcome = send::attempt(
        &state.sender,
        &state.settings,
        &webhook,
        &event,
        &delivery,
        &lease,
    )
    .await;
    state
        .store
        .record_outcomes(std::slice::from_ref(&outcome))
        .await?;
    Ok(Json(AttemptOut::from_domain(outcome.attempt)))
}

#[utoipa::path(post, path = "/webhooks/{id}/recover", tag = "webhooks", request_body = RecoverIn,
    responses((status = 202, body = RecoverOut), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
async fn recover_webhook(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<RecoverIn>,
) -> ApiResult<(StatusCode, Json<RecoverOut>)> {
    let webhook = load(&state, &id).await?;
    let since = hookd_core::time::parse_rfc3339(&input.since)
        .ok_or_else(|| ApiError::invalid("since", "must be an RFC 3339 timestamp"))?;
    let recovered = state
        .store
        .recover_failed(&webhook.id, since, crate::now_ms())
        .await?;
    if recovered > 0 {
        state.wake.deliveries();
    }
    Ok((StatusCode::ACCEPTED, Json(RecoverOut { recovered })))
}
