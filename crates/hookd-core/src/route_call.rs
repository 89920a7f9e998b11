//! Route calls (APIO, SPEC §4 and §5): a call to an API route reported to hookd, stored as an event
//! of type `route.call` whose `data` is `{"tag", "method", "url", "body", "response": {"status",
//! "body"}}`.
//!
//! Only calls that "completed and successful" (a 2xx response) fire webhooks; others are stored
//! and queue nothing. This module reads route calls back out of events (for matching, payloads and
//! templates) without copying their bodies. It knows nothing of HTTP servers.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::event::{Event, EventType, NewEvent};

/// The event type route calls are stored under.
pub const ROUTE_CALL: &str = "route.call";

/// A route call as reported, already validated at the edge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteCall {
    /// Which API or route family the call belongs to.
    pub tag: String,
    /// The HTTP method, as the caller spelt it (APIO sends `post`).
    pub method: String,
    /// A path (`/api/v01/orders/1`) or a full URL.
    pub url: String,
    pub body: Value,
    pub response: RouteResponse,
}

/// The response the route answered with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteResponse {
    pub status: u16,
    pub body: Value,
}

impl RouteCall {
    /// The event that stores this call.
    pub fn into_event(self, occurred_at: i64) -> NewEvent {
        let data = json!({
            "tag": self.tag,
            "method": self.method,
            "url": self.url,
            "body": self.body,
            "response": {"status": self.response.status, "body": self.response.body},
        });
        NewEvent {
            event_type: EventType::route_call(),
            model: None,
            data,
            occurred_at,
            idempotency_key: None,
        }
    }
}

/// The parts of a stored route call that matching needs, borrowed from the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteCallView<'a> {
    pub method: &'a str,
    pub url: &'a str,
    /// `None` when the stored data has no usable status (an event published by hand).
    pub status: Option<u16>,
}

impl RouteCallView<'_> {
    /// "Completed and successful": a 2xx response.
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// The route call `event` records, or `None` when it is not a `route.call` event. Missing fields
/// read as empty, so a hand-made `route.call` event never matches a `method` or `url` filter.
pub fn view(event: &Event) -> Option<RouteCallView<'_>> {
    if event.event_type != ROUTE_CALL {
        return None;
    }
    let d = &event.data;
    Some(RouteCallView {
        method: d["method"].as_str().unwrap_or(""),
        url: d["url"].as_str().unwrap_or(""),
        status: d["response"]["status"]
            .as_u64()
            .and_then(|s| u16::try_from(s).ok()),
    })
}

/// `request` as APIO shows it: `{"tag", "method", "url", "body"}` (missing fields are `null`).
pub fn request_value(event: &Event) -> Value {
    let d = &event.data;
    json!({"tag": d["tag"], "method": d["method"], "url": d["url"], "body": d["body"]})
}

/// `response` as APIO shows it: `{"status", "body"}`.
pub fn response_value(event: &Event) -> Value {
    let r = &event.data["response"];
    json!({"status": r["status"], "body": r["body"]})
}

/// An `events` entry as APIO's payload names it: its index and label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryRef<'a> {
    pub index: u32,
    pub label: Option<&'a str>,
}

/// APIO's payload (SPEC §5): `{"event": {"id", "label"}, "id", "request", "response"}`, plus
/// `"secret"` when given. Without an entry (a webhook with no `events`, a test send) `event.id`
/// and `event.label` are `null`.
pub fn apio_payload(
    event: &Event,
    entry: Option<EntryRef<'_>>,
    delivery_id: &str,
    secret: Option<&str>,
) -> Value {
    let mut body = json!({
        "event": {
            "id": entry.map(|e| e.index),
            "label": entry.and_then(|e| e.label),
        },
        "id": delivery_id,
        "request": request_value(event),
        "response": response_value(event),
    });
    if let Some(s) = secret {
        body["secret"] = Value::String(s.to_owned());
    }
    body
}

/// Whether `s` is an HTTP method token (RFC 9110 `token`: visible ASCII except separators).
pub fn is_http_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(status: u16) -> Event {
        let new = RouteCall {
            tag: "tag-1".into(),
            method: "post".into(),
            url: "/api/v01/some/url/path".into(),
            body: json!({"foo": "bar"}),
            response: RouteResponse {
                status,
                body: json!({}),
            },
        }
        .into_event(0);
        Event {
            id: crate::EventId::generate(0),
            event_type: new.event_type.as_str().to_owned(),
            model: None,
            data: new.data,
            occurred_at: 0,
            idempotency_key: None,
            created_at: 0,
        }
    }

    #[test]
    fn the_apio_payload_is_the_seed_example() {
        let entry = EntryRef {
            index: 1,
            label: Some("event-1"),
        };
        let id = "70195486-8934-4a31-a504-a97a72c7f322";
        let want = json!({
            "event": {"id": 1, "label": "event-1"},
            "id": id,
            "request": {"tag": "tag-1", "method": "post", "url": "/api/v01/some/url/path",
                        "body": {"foo": "bar"}},
            "response": {"status": 200, "body": {}},
        });
        assert_eq!(apio_payload(&call(200), Some(entry), id, None), want);
        let mut with_secret = want.clone();
        with_secret["secret"] = json!("secret-1");
        let got = apio_payload(&call(200), Some(entry), id, Some("secret-1"));
        assert_eq!(got, with_secret);
        let none = apio_payload(&call(200), None, id, None);
        assert_eq!(none["event"], json!({"id": null, "label": null}));
    }

    #[test]
    fn views_read_the_call_and_only_2xx_succeeds() {
        let e = call(201);
        let v = view(&e).unwrap();
        assert_eq!((v.method, v.url), ("post", "/api/v01/some/url/path"));
        assert!(v.succeeded());
        assert!(!view(&call(500)).unwrap().succeeded());
        assert!(!view(&call(199)).unwrap().succeeded());
        let mut other = call(200);
        other.event_type = "order.paid".into();
        assert_eq!(view(&other), None);
    }

    #[test]
    fn method_tokens() {
        for ok in ["GET", "post", "M-SEARCH", "X_Y"] {
            assert!(is_http_token(ok), "{ok}");
        }
        for bad in ["", "GE T", "GET/", "ÉTÉ", "a:b"] {
            assert!(!is_http_token(bad), "{bad}");
        }
    }
}
