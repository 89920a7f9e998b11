//! The HTTP surface: `/api/v1` (behind the admin token, one module per resource, each ending in
//! `fn router()`), the OpenAPI document generated from those handlers, operations endpoints, and
//! the reverse proxy's routes as the fallback.

pub mod deliveries;
mod delivery_stats;
pub mod events;
mod extract;
pub mod inbound;
mod openapi;
mod ops;
mod pagination;
mod panics;
mod preview;
pub mod route_calls;
mod schedule_preview;
pub mod schedules;
mod trace;
mod ui;
mod webhook_fields;
mod webhook_stats;
mod webhook_wire;
pub mod webhooks;

use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::error::ApiError;
use crate::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "hookd", description = "Self-hosted webhook server: admin API."),
    modifiers(&BearerAuth),
    security(("admin_token" = []))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let scheme = HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build();
        components.add_security_scheme("admin_token", SecurityScheme::Http(scheme));
    }
}

/// The operations endpoints alone: what a `hookd worker` serves.
pub fn ops_app(state: AppState) -> Router {
    ops::router()
        .fallback(|| async { ApiError::not_found("route") })
        .layer(middleware::from_fn(panics::catch))
        .layer(middleware::from_fn(trace::span))
        .with_state(state)
}

/// The whole application router.
pub fn app(state: AppState) -> Router {
    let (api, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(webhooks::router())
        .merge(webhook_stats::router())
        .merge(preview::router())
        .merge(events::router())
        .merge(route_calls::router())
        .merge(schedules::router())
        .merge(schedule_preview::router())
        .merge(inbound::router())
        .merge(deliveries::router())
        .merge(delivery_stats::router())
        .split_for_parts();
    let doc = Json(openapi::complete(&doc));
    let api = api
        .route("/openapi.json", get(move || async move { doc.clone() }))
        .fallback(|| async { ApiError::not_found("route") })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        // Last, so it also guards unknown paths: nothing under /api/v1 answers without a token.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::auth::require_token,
        ));
    let mut app = Router::new().nest("/api/v1", api).merge(ops::router());
    app = app.merge(ui::router()).merge(crate::inbound::router());
    if state.proxy.is_enabled() {
        // The fallback: every route above wins over a proxy prefix. Proxied bodies are streamed,
        // so the body limit (which applies to extractors) does not cap them.
        app = app.fallback(crate::proxy::handle);
    }
    app.layer(DefaultBodyLimit::max(state.settings.max_body_bytes))
        .layer(middleware::from_fn(panics::catch))
        .layer(middleware::from_fn(trace::span))
        .with_state(state)
}
