//! A panic in a handler becomes a 500 and one log line, not a dropped connection. The log names
//! the route's pattern (`/hooks/{key}`), never the path itself, which may hold a hook's key.

use std::any::Any;
use std::panic::AssertUnwindSafe;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt as _;

use crate::error::ApiError;

/// Runs the rest of the request; answers 500 `internal` if it panics.
pub async fn catch(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("(no route)", MatchedPath::as_str)
        .to_owned();
    match AssertUnwindSafe(next.run(request)).catch_unwind().await {
        Ok(response) => response,
        Err(panic) => {
            let why = format!(
                "{method} {route}: the handler panicked: {}",
                message(&*panic)
            );
            ApiError::internal(&why).into_response()
        }
    }
}

fn message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

#[cfg(test)]
mod tests {
    use axum::routing::get;
    use axum::{middleware, Router};

    #[tokio::test]
    async fn a_panicking_handler_answers_500_and_the_server_goes_on() {
        let app = Router::new()
            .route(
                "/boom/{key}",
                get(|| async { panic!("slice out of range") as &'static str }),
            )
            .route("/fine", get(|| async { "fine" }))
            .layer(middleware::from_fn(super::catch));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let client = reqwest::Client::new();
        for _ in 0..2 {
            let boom = client.get(format!("{base}/boom/k3y")).send().await;
            let boom = boom.expect("answered, not dropped");
            assert_eq!(boom.status(), 500);
            let body: serde_json::Value = boom.json().await.unwrap();
            assert_eq!(body["error"]["code"], "internal");
        }
        let fine = client.get(format!("{base}/fine")).send().await.unwrap();
        assert_eq!(fine.text().await.unwrap(), "fine");
    }
}
