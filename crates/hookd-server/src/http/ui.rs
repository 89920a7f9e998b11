//! The admin web UI at `/ui/`: static files compiled into the binary (`ui/` beside `src/`), served
//! with their content type, a strict Content-Security-Policy and no caching of the page itself.
//!
//! The UI is a client of the public `/api/v1` only: these routes need no token (the page is
//! public; its API calls carry the token the user signs in with). Nothing here knows the store.

use axum::extract::Path;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

/// Scripts, styles and API calls only from this origin; no inline script, no plugins, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

/// One embedded file: its path under `/ui/`, content type and bytes.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

macro_rules! assets {
    ($(($path:literal, $ct:literal)),* $(,)?) => {
        &[$(Asset { path: $path, content_type: $ct, body: include_str!(concat!("../../ui/", $path)) }),*]
    };
}

/// Every file of the UI. A page of the app is one module under `pages/`.
const ASSETS: &[Asset] = assets![
    ("index.html", "text/html; charset=utf-8"),
    ("style.css", "text/css; charset=utf-8"),
    ("app.js", "text/javascript; charset=utf-8"),
    ("api.js", "text/javascript; charset=utf-8"),
    ("dom.js", "text/javascript; charset=utf-8"),
    ("pages/signin.js", "text/javascript; charset=utf-8"),
    ("pages/dashboard.js", "text/javascript; charset=utf-8"),
    ("pages/webhooks.js", "text/javascript; charset=utf-8"),
    ("pages/webhook_form.js", "text/javascript; charset=utf-8"),
    ("pages/webhook_editors.js", "text/javascript; charset=utf-8"),
    ("pages/webhook_preview.js", "text/javascript; charset=utf-8"),
    ("pages/deliveries.js", "text/javascript; charset=utf-8"),
    ("pages/events.js", "text/javascript; charset=utf-8"),
    ("pages/schedules.js", "text/javascript; charset=utf-8"),
    ("pages/inbound.js", "text/javascript; charset=utf-8"),
    ("pages/inbound_editors.js", "text/javascript; charset=utf-8"),
    ("pages/workflow.js", "text/javascript; charset=utf-8"),
    ("pages/executions.js", "text/javascript; charset=utf-8"),
];

pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(|| async { serve("index.html") }))
        .route(
            "/ui/{*path}",
            get(|Path(path): Path<String>| async move { serve(&path) }),
        )
}

fn serve(path: &str) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.path == path) else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    // The page is small and must pick up a new version at once; modules are revalidated too,
    // since their names carry no version.
    let mut resp = asset.body.into_response();
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file under `ui/` is embedded: a page module added without its `ASSETS` line would
    /// fail to load in the browser.
    #[test]
    fn every_file_of_the_ui_directory_is_served() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ui");
        let mut dirs = vec![root.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                let rel = path
                    .strip_prefix(&root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                assert!(
                    ASSETS.iter().any(|a| a.path == rel),
                    "ui/{rel} is not in ASSETS"
                );
            }
        }
    }

    #[test]
    fn files_have_their_content_type_and_the_policy() {
        let resp = serve("pages/events.js");
        assert_eq!(resp.status(), StatusCode::OK);
        let h = resp.headers();
        assert_eq!(h[CONTENT_TYPE], "text/javascript; charset=utf-8");
        assert_eq!(h[CONTENT_SECURITY_POLICY], CSP);
        assert_eq!(serve("../Cargo.toml").status(), StatusCode::NOT_FOUND);
    }
}
