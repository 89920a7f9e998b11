//! One `request` span around every HTTP request, so that what a request logs (and what it
//! exports with OpenTelemetry) carries its method, route and answer. The route is the pattern
//! (`/hooks/{key}`), never the path itself, which may hold a hook's key.

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use tracing::field::Empty;
use tracing::Instrument as _;

pub async fn span(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("(no route)", MatchedPath::as_str);
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        route,
        status = Empty
    );
    let response = next.run(request).instrument(span.clone()).await;
    span.record("status", response.status().as_u16());
    response
}
