//! Default payloads (SPEC §5): APIO style for `route.call`, Strapi style for `entry.*`/`media.*`,
//! Standard Webhooks style for everything else.

use serde_json::{json, Value};

use crate::event::Event;
use crate::route_call::{apio_payload, EntryRef, ROUTE_CALL};
use crate::time::{rfc3339, rfc3339_ms};

/// What a payload needs beyond the event: APIO's payload names the delivery and the matching
/// `events` entry.
#[derive(Debug, Clone, Copy)]
pub struct PayloadContext<'a> {
    pub delivery_id: &'a str,
    /// The `events` entry the delivery was queued for, if any.
    pub entry: Option<EntryRef<'a>>,
}

/// The body a webhook with `body.format: default` sends for `event`. `secret` is added as
/// `"secret"` when the webhook has `include_secret`.
pub fn default_payload(event: &Event, ctx: &PayloadContext<'_>, secret: Option<&str>) -> Value {
    if event.event_type == ROUTE_CALL {
        return apio_payload(event, ctx.entry, ctx.delivery_id, secret);
    }
    let mut body = if let Some(key) = strapi_key(&event.event_type) {
        let mut v = json!({
            "event": event.event_type,
            "created_at": rfc3339_ms(event.occurred_at),
        });
        if key == "entry" {
            v["model"] = event
                .model
                .clone()
                .map(Value::String)
                .unwrap_or(Value::Null);
        }
        v[key] = event.data.clone();
        v
    } else {
        json!({
            "type": event.event_type,
            "timestamp": rfc3339(event.occurred_at),
            "data": event.data,
        })
    };
    if let Some(s) = secret {
        body["secret"] = Value::String(s.to_owned());
    }
    body
}

fn strapi_key(event_type: &str) -> Option<&'static str> {
    if event_type.starts_with("entry.") {
        Some("entry")
    } else if event_type.starts_with("media.") {
        Some("media")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CTX: PayloadContext<'static> = PayloadContext {
        delivery_id: "dlv_1",
        entry: None,
    };

    fn event(t: &str, model: Option<&str>) -> Event {
        Event {
            id: crate::EventId::generate(0),
            event_type: t.into(),
            model: model.map(Into::into),
            data: json!({"id": 1, "city": "Paris"}),
            occurred_at: 1_578_646_056_649,
            idempotency_key: None,
            created_at: 0,
        }
    }

    #[test]
    fn strapi_entry_payload() {
        let p = default_payload(&event("entry.create", Some("address")), &CTX, None);
        assert_eq!(
            p,
            json!({"event": "entry.create", "created_at": "2020-01-10T08:47:36.649Z",
                   "model": "address", "entry": {"id": 1, "city": "Paris"}})
        );
    }

    #[test]
    fn strapi_media_payload_has_no_model() {
        let p = default_payload(&event("media.delete", None), &CTX, None);
        assert_eq!(
            p,
            json!({"event": "media.delete", "created_at": "2020-01-10T08:47:36.649Z",
                   "media": {"id": 1, "city": "Paris"}})
        );
    }

    #[test]
    fn standard_payload_with_secret() {
        let p = default_payload(&event("invoice.paid", None), &CTX, Some("s3"));
        assert_eq!(
            p,
            json!({"type": "invoice.paid", "timestamp": "2020-01-10T08:47:36.649Z",
                   "data": {"id": 1, "city": "Paris"}, "secret": "s3"})
        );
    }

    #[test]
    fn route_calls_get_the_apio_payload_with_entry_and_delivery() {
        let mut e = event(ROUTE_CALL, None);
        e.data = json!({"tag": "t", "method": "POST", "url": "/o/1", "body": {"a": 1},
                        "response": {"status": 201, "body": {"ok": true}}});
        let ctx = PayloadContext {
            delivery_id: "dlv_9",
            entry: Some(EntryRef {
                index: 0,
                label: Some("order posted"),
            }),
        };
        let want = json!({"event": {"id": 0, "label": "order posted"}, "id": "dlv_9",
            "request": {"tag": "t", "method": "POST", "url": "/o/1", "body": {"a": 1}},
            "response": {"status": 201, "body": {"ok": true}}});
        assert_eq!(default_payload(&e, &ctx, None), want);
        let mut with_secret = want;
        with_secret["secret"] = json!("s");
        assert_eq!(default_payload(&e, &ctx, Some("s")), with_secret);
    }
}
