//! The checks a call to `/hooks/{key}` passes before anything is stored, in this order, each
//! failure answered before the next check runs (so a refused call costs no more than it must):
//!
//! 1. the key: 404, also for an inactive hook;
//! 2. the method: 405 with `Allow`;
//! 3. the rate limits, the client address's (`inbound.client_rate_limit_per_second`) then the
//!    hook's (`inbound.rate_limit_per_second`): 429 with `Retry-After`;
//! 4. room to run: a sync hook's `max_concurrency` runs in this process, an async hook's queue
//!    (`inbound.max_queued_executions`): 429 with `Retry-After`;
//! 5. the body size: 413, read no further than the limit (408 when it arrives too slowly);
//! 6. verification over the raw bytes: the call is admitted either way, carrying the
//!    rejection, since a rejected call is recorded (see `super::handle`).

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use hookd_core::inbound::record::InboundHook;
use hookd_core::inbound::verify::Rejection;
use hookd_core::inbound::{verify, Mode};
use hookd_core::{Store, StoreError};
use tokio::sync::OwnedSemaphorePermit;

use super::limit::{client_address, retry_after_secs};
use super::runtime::Runtime;
use crate::error::ApiError;
use crate::settings::Settings;

/// What a full queue tells the caller to wait: about one recount of the queue.
const QUEUE_RETRY_AFTER: Duration = Duration::from_secs(1);

/// A call turned away before anything was stored.
#[derive(Debug)]
pub(super) enum Refusal {
    NotFound,
    Method { allow: String },
    RateLimited { what: &'static str, wait: Duration },
    Busy { max_concurrency: u32 },
    QueueFull { max_queued: u32 },
    TooLarge { limit: usize },
    BodyTimeout,
    Store(StoreError),
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let with_header = |mut response: Response, name, value: String| {
            if let Ok(v) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, v);
            }
            response
        };
        let too_many = |message: String, wait: Duration| {
            let response = ApiError::too_many(message).into_response();
            with_header(
                response,
                header::RETRY_AFTER,
                retry_after_secs(wait).to_string(),
            )
        };
        match self {
            Self::NotFound => ApiError::not_found("hook").into_response(),
            Self::Method { allow } => with_header(
                ApiError::method_not_allowed().into_response(),
                header::ALLOW,
                allow,
            ),
            Self::RateLimited { what, wait } => too_many(
                format!("{what} is over its rate limit; try again later"),
                wait,
            ),
            Self::Busy { max_concurrency } => too_many(
                format!("this hook already runs {max_concurrency} executions; try again later"),
                Duration::from_secs(1),
            ),
            Self::QueueFull { max_queued } => too_many(
                format!("this hook has {max_queued} executions waiting; try again later"),
                QUEUE_RETRY_AFTER,
            ),
            Self::TooLarge { limit } => ApiError::too_large(limit).into_response(),
            Self::BodyTimeout => ApiError::request_timeout().into_response(),
            Self::Store(e) => ApiError::from(e).into_response(),
        }
    }
}

/// A call that passed the checks up to verification.
#[derive(Debug)]
pub(super) struct Admitted {
    pub hook: InboundHook,
    pub parts: Parts,
    pub bytes: Bytes,
    /// The headers as name/value text (names as sent).
    pub headers: Vec<(String, String)>,
    /// A sync run's slot among the hook's `max_concurrency`; held until it is answered.
    pub slot: Option<OwnedSemaphorePermit>,
    /// Why verification failed, if it did.
    pub rejection: Option<Rejection>,
}

/// Runs the checks on a call to `/hooks/{key}` at `now_ms`.
pub(super) async fn admit(
    runtime: &Runtime,
    store: &dyn Store,
    settings: &Settings,
    key: &str,
    request: Request,
    now_ms: i64,
) -> Result<Admitted, Refusal> {
    let hook = match store.get_inbound_by_key(key).await? {
        Some(h) if h.spec.active => h,
        _ => return Err(Refusal::NotFound),
    };
    let (parts, body) = request.into_parts();
    if !hook.spec.methods.iter().any(|m| m == parts.method.as_str()) {
        let allow = hook.spec.methods.join(", ");
        return Err(Refusal::Method { allow });
    }

    let now_us = now_ms.saturating_mul(1000);
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    if let Some(client) = client_address(peer, &parts.headers, &settings.inbound.trusted_proxies) {
        runtime
            .per_client
            .check(&client, now_us)
            .map_err(|wait| Refusal::RateLimited {
                what: "this client address",
                wait,
            })?;
    }
    runtime
        .per_hook
        .check(&hook.id, now_us)
        .map_err(|wait| Refusal::RateLimited {
            what: "this hook",
            wait,
        })?;

    // Sync runs hold the caller; past `max_concurrency` of them, new callers are turned away.
    // Async calls are stored and wait for a worker, up to the queue's cap.
    let slot = match hook.spec.mode {
        Mode::Sync => Some(runtime.try_slot(&hook).ok_or(Refusal::Busy {
            max_concurrency: hook.spec.max_concurrency,
        })?),
        Mode::Async => {
            if !runtime.admit_queued(store, &hook.id, now_ms).await? {
                return Err(Refusal::QueueFull {
                    max_queued: runtime.max_queued,
                });
            }
            None
        }
    };

    let limit = settings.max_body_bytes;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(Refusal::TooLarge { limit });
    }
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => bytes,
        Err(e) if crate::listener::is_body_timeout(&e) => return Err(Refusal::BodyTimeout),
        Err(_) => return Err(Refusal::TooLarge { limit }),
    };

    let headers = header_list(&parts.headers);
    let rejection = verify(&hook.spec.auth, &headers, &bytes, now_ms / 1000).err();
    Ok(Admitted {
        hook,
        parts,
        bytes,
        headers,
        slot,
        rejection,
    })
}

fn header_list(headers: &axum::http::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::{Method, StatusCode};
    use hookd_core::inbound::record::{
        Execution, ExecutionRecord, ExecutionRequest, ExecutionStatus,
    };
    use hookd_core::{ExecutionId, InboundId};
    use hookd_store_sqlite::SqliteStore;
    use serde_json::{json, Map, Value};

    use super::*;
    use crate::settings::InboundSettings;

    const NOW: i64 = 1_800_000_000_000;

    struct Fixture {
        _dir: TempDir,
        store: Arc<dyn Store>,
        settings: Settings,
    }

    /// A directory removed when dropped.
    struct TempDir(std::path::PathBuf);

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    async fn fixture(inbound: InboundSettings) -> Fixture {
        let dir = std::env::temp_dir().join(format!(
            "hookd-gate-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}", dir.join("t.db").display());
        let store = SqliteStore::connect(&url, hookd_store_sql::secrets::Keys::ephemeral())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        Fixture {
            _dir: TempDir(dir),
            store: Arc::new(store),
            settings: Settings {
                max_body_bytes: 100,
                inbound,
                ..Settings::default()
            },
        }
    }

    impl Fixture {
        async fn hook(&self, key: &str, spec: Value) -> InboundHook {
            let hook = InboundHook {
                id: InboundId::generate(NOW),
                key: key.into(),
                spec: serde_json::from_value(spec).unwrap(),
                created_at: NOW,
                updated_at: NOW,
            };
            self.store.insert_inbound(&hook).await.unwrap();
            hook
        }

        async fn admit(
            &self,
            runtime: &Runtime,
            key: &str,
            call: Call,
        ) -> Result<Admitted, Refusal> {
            let mut request = Request::builder()
                .method(call.method)
                .uri(format!("/hooks/{key}"))
                .header("content-length", call.body.len());
            if let Some(auth) = call.auth {
                request = request.header("authorization", auth);
            }
            let mut request = request.body(Body::from(call.body)).unwrap();
            let peer: SocketAddr = "192.0.2.1:1000".parse().unwrap();
            request.extensions_mut().insert(ConnectInfo(peer));
            admit(runtime, &*self.store, &self.settings, key, request, NOW).await
        }
    }

    /// A call; each field can be made to fail its check.
    #[derive(Clone)]
    struct Call {
        method: Method,
        body: Vec<u8>,
        auth: Option<&'static str>,
    }

    /// `alice:secret`.
    const GOOD_AUTH: &str = "Basic YWxpY2U6c2VjcmV0";

    fn good() -> Call {
        Call {
            method: Method::POST,
            body: b"{}".to_vec(),
            auth: Some(GOOD_AUTH),
        }
    }

    fn status(result: &Result<Admitted, Refusal>) -> StatusCode {
        match result {
            Ok(a) if a.rejection.is_some() => StatusCode::UNAUTHORIZED,
            Ok(_) => StatusCode::OK,
            Err(r) => match r {
                Refusal::NotFound => StatusCode::NOT_FOUND,
                Refusal::Method { .. } => StatusCode::METHOD_NOT_ALLOWED,
                Refusal::RateLimited { .. } | Refusal::Busy { .. } | Refusal::QueueFull { .. } => {
                    StatusCode::TOO_MANY_REQUESTS
                }
                Refusal::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                Refusal::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
                Refusal::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            },
        }
    }

    fn spec(mode: &str) -> Value {
        json!({"name": "h", "mode": mode, "max_concurrency": 1,
               "auth": {"type": "basic", "username": "alice", "password": "secret"}})
    }

    #[tokio::test]
    async fn each_check_answers_before_the_next_runs() {
        let f = fixture(InboundSettings::default()).await;
        f.hook("sync-key", spec("sync")).await;
        let mut inactive = spec("sync");
        inactive["active"] = json!(false);
        f.hook("off-key", inactive).await;
        let runtime = Runtime::new(&f.settings.inbound);
        let every_fault = Call {
            method: Method::GET,
            body: vec![b'x'; 500],
            auth: Some("Basic d3Jvbmc6d3Jvbmc="),
        };

        // Every check would fail: the first one answers.
        let r = f.admit(&runtime, "no-such-key", every_fault.clone()).await;
        assert_eq!(status(&r), StatusCode::NOT_FOUND);
        let r = f.admit(&runtime, "off-key", good()).await;
        assert_eq!(status(&r), StatusCode::NOT_FOUND);
        // A known key: the method is next.
        let r = f.admit(&runtime, "sync-key", every_fault.clone()).await;
        assert_eq!(status(&r), StatusCode::METHOD_NOT_ALLOWED);
        if let Err(Refusal::Method { allow }) = r {
            assert_eq!(allow, "POST");
        }
        // Then the size, before verification.
        let too_big = Call {
            method: Method::POST,
            ..every_fault.clone()
        };
        let r = f.admit(&runtime, "sync-key", too_big.clone()).await;
        assert_eq!(status(&r), StatusCode::PAYLOAD_TOO_LARGE);
        // Then verification: admitted, carrying the rejection.
        let bad_auth = Call {
            body: b"{}".to_vec(),
            ..too_big.clone()
        };
        let r = f.admit(&runtime, "sync-key", bad_auth).await;
        assert_eq!(status(&r), StatusCode::UNAUTHORIZED);
        drop(r);
        // All good: admitted with a slot.
        let held = f.admit(&runtime, "sync-key", good()).await.unwrap();
        assert!(held.rejection.is_none() && held.slot.is_some());
        // While it runs, the concurrency check comes before size and verification...
        let r = f.admit(&runtime, "sync-key", too_big).await;
        assert_eq!(status(&r), StatusCode::TOO_MANY_REQUESTS);
        assert!(matches!(r, Err(Refusal::Busy { max_concurrency: 1 })));
        // ... and after the method.
        let r = f.admit(&runtime, "sync-key", every_fault).await;
        assert_eq!(status(&r), StatusCode::METHOD_NOT_ALLOWED);
        drop(held);
        assert_eq!(
            status(&f.admit(&runtime, "sync-key", good()).await),
            StatusCode::OK
        );
    }

    #[tokio::test]
    async fn rate_limits_come_after_the_method_and_before_everything_else() {
        let f = fixture(InboundSettings {
            rate_limit_per_second: 3,
            client_rate_limit_per_second: 5,
            ..InboundSettings::default()
        })
        .await;
        f.hook("a", spec("async")).await;
        f.hook("b", spec("async")).await;
        let runtime = Runtime::new(&f.settings.inbound);
        let wrong_method = Call {
            method: Method::PUT,
            ..good()
        };
        // Refused methods do not use the allowance.
        for _ in 0..10 {
            let r = f.admit(&runtime, "a", wrong_method.clone()).await;
            assert_eq!(status(&r), StatusCode::METHOD_NOT_ALLOWED);
        }
        for _ in 0..3 {
            assert_eq!(
                status(&f.admit(&runtime, "a", good()).await),
                StatusCode::OK
            );
        }
        let too_big = Call {
            body: vec![b'x'; 500],
            ..good()
        };
        let r = f.admit(&runtime, "a", too_big).await;
        match r {
            Err(Refusal::RateLimited { what, wait }) => {
                assert_eq!(what, "this hook");
                assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1));
            }
            other => panic!("expected the hook's rate limit, got {other:?}"),
        }
        // Another hook has its own allowance, but the client's is shared, and it counted
        // every call that reached it (the one the hook refused too): 5 in all.
        assert_eq!(
            status(&f.admit(&runtime, "b", good()).await),
            StatusCode::OK
        );
        match f.admit(&runtime, "b", good()).await {
            Err(Refusal::RateLimited { what, .. }) => assert_eq!(what, "this client address"),
            other => panic!("expected the client's rate limit, got {other:?}"),
        }
        // The answer carries Retry-After.
        let response = Refusal::RateLimited {
            what: "this hook",
            wait: Duration::from_millis(1500),
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()["retry-after"], "2");
    }

    fn queued(hook: &InboundHook, n: i64) -> Execution {
        Execution {
            id: ExecutionId::generate(NOW + n),
            hook_id: hook.id.clone(),
            mode: Mode::Async,
            status: ExecutionStatus::Queued,
            record: ExecutionRecord {
                request: ExecutionRequest {
                    method: "POST".into(),
                    path: "/hooks/****".into(),
                    headers: Default::default(),
                    query: Value::Object(Map::new()),
                    body: Value::Null,
                    body_truncated: false,
                },
                variables: Map::new(),
                trace: Vec::new(),
                response: None,
                error: None,
                duration_ms: None,
            },
            attempts: 0,
            next_attempt_at: Some(NOW),
            created_at: NOW,
            updated_at: NOW,
        }
    }

    #[tokio::test]
    async fn an_async_hook_past_its_queue_cap_is_refused_before_the_body_is_read() {
        let f = fixture(InboundSettings {
            max_queued_executions: 3,
            ..InboundSettings::default()
        })
        .await;
        let hook = f.hook("q", spec("async")).await;
        let other = f.hook("other", spec("async")).await;
        let stored: Vec<_> = (0..2).map(|n| queued(&hook, n)).collect();
        f.store.insert_executions(&stored).await.unwrap();
        f.store
            .insert_executions(&[queued(&other, 9)])
            .await
            .unwrap();
        let runtime = Runtime::new(&f.settings.inbound);
        // Two stored, so one more fits; this process's admission counts until the recount.
        assert_eq!(
            status(&f.admit(&runtime, "q", good()).await),
            StatusCode::OK
        );
        let too_big = Call {
            body: vec![b'x'; 500],
            ..good()
        };
        let r = f.admit(&runtime, "q", too_big).await;
        assert!(
            matches!(r, Err(Refusal::QueueFull { max_queued: 3 })),
            "{r:?}"
        );
        // The other hook's queue is its own.
        assert_eq!(
            status(&f.admit(&runtime, "other", good()).await),
            StatusCode::OK
        );
        assert_eq!(
            f.store
                .count_unfinished_executions(&hook.id, 100)
                .await
                .unwrap(),
            2
        );
    }
}
