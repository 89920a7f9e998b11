//! Recording proxied calls as route calls (`route.call` events, the same event as
//! `POST /api/v1/route-calls`), through the normal publish path and its group commit.
//!
//! **Durability.** A client must never see a complete 2xx response that was not recorded, and
//! recording must not slow the call down noticeably. So the upstream's body is streamed to the
//! client as it arrives, teed into a buffer capped at `max_recorded_body_bytes`; when the
//! upstream body ends, the call is committed *before* the last bytes reach the client: with a
//! `Content-Length`, before the final chunk is passed on; without one, before the end of the
//! chunked body. A response with no body (204, HEAD, `Content-Length: 0`) is committed
//! before its headers are sent. If the commit fails the body is aborted, so the client sees a
//! broken response, never a clean success. The cost is one group commit per call, paid once at
//! the end of the body rather than before the first byte.
//!
//! Bodies are recorded JSON-parsed when they are JSON (by `Content-Type`, or when it is absent),
//! else as a string (invalid UTF-8 replaced); `null` when empty. A body larger than the cap is
//! recorded as the string of its first bytes, and `"body_truncated": true` is set beside it.

use std::io;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use futures_util::stream::{BoxStream, Stream, StreamExt};
use hookd_core::route_call::{RouteCall, RouteResponse};
use serde_json::Value;

use crate::error::ApiError;
use crate::AppState;

/// A body as far as it is recorded: its first `cap` bytes and whether more went past.
#[derive(Debug, Clone)]
pub struct Capture(Arc<Mutex<Captured>>);

#[derive(Debug, Default)]
struct Captured {
    bytes: Vec<u8>,
    cap: usize,
    truncated: bool,
}

impl Captured {
    fn push(&mut self, chunk: &[u8]) {
        let room = self.cap.saturating_sub(self.bytes.len());
        if chunk.len() > room {
            self.truncated = true;
        }
        self.bytes
            .extend_from_slice(&chunk[..chunk.len().min(room)]);
    }
}

impl Capture {
    pub fn new(cap: usize) -> Self {
        Self(Arc::new(Mutex::new(Captured {
            cap,
            ..Captured::default()
        })))
    }

    /// Passes `stream` through unchanged, keeping a copy of its first bytes.
    pub fn tee<S, E>(&self, stream: S) -> impl Stream<Item = Result<Bytes, E>> + Send + 'static
    where
        S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    {
        let capture = self.clone();
        stream.map(move |chunk| {
            if let Ok(bytes) = &chunk {
                capture.push(bytes);
            }
            chunk
        })
    }

    fn push(&self, chunk: &[u8]) {
        // A poisoned lock only means another chunk's copy panicked: keep recording.
        let mut captured = self.0.lock().unwrap_or_else(|e| e.into_inner());
        captured.push(chunk);
    }

    /// The recorded value and whether it was truncated.
    fn value(&self, content_type: Option<&str>) -> (Value, bool) {
        let captured = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let value = body_value(&captured.bytes, captured.truncated, content_type);
        (value, captured.truncated)
    }
}

/// What is known of a proxied call when the upstream has answered.
#[derive(Debug)]
pub struct Call {
    pub tag: String,
    pub method: String,
    /// The path and query the client called (before any prefix stripping).
    pub url: String,
    pub request_type: Option<String>,
    pub request: Capture,
    /// A HEAD request: the response has no body whatever its headers say.
    pub head_only: bool,
}

/// The response body for a 2xx answer: streamed from `upstream`, and recorded before the client
/// can see it complete (see the module documentation).
pub async fn recorded_body(
    state: AppState,
    call: Call,
    upstream: reqwest::Response,
) -> Result<Body, ApiError> {
    let status = upstream.status();
    let expected = upstream.content_length();
    let no_body =
        call.head_only || status == reqwest::StatusCode::NO_CONTENT || expected == Some(0);
    let cap = state.proxy.cap;
    let recorder = Recorder {
        state,
        call,
        status: status.as_u16(),
        response_type: super::content_type(upstream.headers()),
        response: Capture::new(cap),
    };
    if no_body {
        recorder
            .commit()
            .await
            .map_err(|e| ApiError::internal(&e))?;
        return Ok(Body::empty());
    }
    let tee = Tee {
        upstream: upstream.bytes_stream().boxed(),
        expected,
        received: 0,
        recorder: Some(recorder),
    };
    Ok(Body::from_stream(futures_util::stream::unfold(
        Some(tee),
        next_chunk,
    )))
}

/// The upstream body on its way to the client, with the call still to record.
struct Tee {
    upstream: BoxStream<'static, reqwest::Result<Bytes>>,
    /// The upstream's `Content-Length`, if it gave one.
    expected: Option<u64>,
    received: u64,
    /// Taken when the call is committed.
    recorder: Option<Recorder>,
}

type Step = Option<(io::Result<Bytes>, Option<Tee>)>;

/// One step of the client's body: the next chunk, committing first when it is the last one.
async fn next_chunk(tee: Option<Tee>) -> Step {
    let mut tee = tee?;
    match tee.upstream.next().await {
        Some(Ok(chunk)) => {
            tee.received += chunk.len() as u64;
            if let Some(recorder) = &tee.recorder {
                recorder.response.push(&chunk);
            }
            if tee.expected.is_some_and(|n| tee.received >= n) {
                if let Err(e) = tee.commit().await {
                    return Some((Err(e), None));
                }
            }
            Some((Ok(chunk), Some(tee)))
        }
        Some(Err(e)) => {
            tracing::warn!(error = %e, "the proxy upstream's body broke off; call not recorded");
            Some((Err(io::Error::other(e)), None))
        }
        None => match tee.commit().await {
            Ok(()) => None,
            Err(e) => Some((Err(e), None)),
        },
    }
}

impl Tee {
    async fn commit(&mut self) -> io::Result<()> {
        match self.recorder.take() {
            Some(recorder) => recorder.commit().await.map_err(io::Error::other),
            None => Ok(()),
        }
    }
}

/// Everything needed to store the call once its response body is known.
struct Recorder {
    state: AppState,
    call: Call,
    status: u16,
    response_type: Option<String>,
    response: Capture,
}

impl Recorder {
    /// Stores the call as a `route.call` event (and its deliveries) through group commit.
    async fn commit(self) -> Result<(), hookd_core::StoreError> {
        let (body, body_truncated) = self.call.request.value(self.call.request_type.as_deref());
        let (response_body, response_truncated) =
            self.response.value(self.response_type.as_deref());
        let call = RouteCall {
            tag: self.call.tag,
            method: self.call.method,
            url: self.call.url,
            body,
            response: RouteResponse {
                status: self.status,
                body: response_body,
            },
        };
        let mut event = call.into_event(crate::now_ms());
        if body_truncated {
            event.data["body_truncated"] = Value::Bool(true);
        }
        if response_truncated {
            event.data["response"]["body_truncated"] = Value::Bool(true);
        }
        crate::publish::publish(&self.state, vec![event])
            .await
            .map(drop)
            .inspect_err(|e| tracing::error!(error = %e, "recording a proxied call failed"))
    }
}

/// A recorded body: JSON when it is JSON, else a string; `null` when empty.
fn body_value(bytes: &[u8], truncated: bool, content_type: Option<&str>) -> Value {
    if bytes.is_empty() && !truncated {
        return Value::Null;
    }
    let json_like = content_type.is_none_or(|ct| ct.to_ascii_lowercase().contains("json"));
    if json_like && !truncated {
        if let Ok(value) = serde_json::from_slice(bytes) {
            return value;
        }
    }
    Value::String(String::from_utf8_lossy(bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bodies_are_json_when_json_else_strings() {
        let cases = [
            (&b""[..], None, json!(null)),
            (&b"{\"a\":1}"[..], None, json!({"a": 1})),
            (&b"{\"a\":1}"[..], Some("application/json"), json!({"a": 1})),
            (&b"{\"a\":1}"[..], Some("text/plain"), json!("{\"a\":1}")),
            (
                &b"not json"[..],
                Some("application/json"),
                json!("not json"),
            ),
            (&b"42"[..], Some("application/problem+json"), json!(42)),
        ];
        for (bytes, ct, want) in cases {
            assert_eq!(body_value(bytes, false, ct), want, "{ct:?}");
        }
        assert_eq!(body_value(b"{\"a\"", true, None), json!("{\"a\""));
    }

    #[test]
    fn a_capture_keeps_the_first_bytes_and_marks_the_cut() {
        let mut c = Captured {
            cap: 4,
            ..Captured::default()
        };
        c.push(b"ab");
        assert!(!c.truncated);
        c.push(b"cdef");
        c.push(b"g");
        assert_eq!(c.bytes, b"abcd");
        assert!(c.truncated);
    }
}
