//! Retained history for benchmarks and plan tests: finished events, each with one succeeded
//! delivery and its one attempt, made in bulk by SQL from a few prefixes, so a million rows
//! take seconds. The backends keep the statements (row generators differ); this is what they
//! bind.

use hookd_core::delivery::{Attempt, RequestRecord, ResponseRecord};
use hookd_core::ids::{AttemptId, DeliveryId, EventId, WebhookId};

/// Rows per transaction.
pub const CHUNK: u64 = 100_000;

/// Where [`History::attempt_record`] holds the attempt's and the delivery's ids.
pub const ATTEMPT_MARK: &str = "@attempt@";
pub const DELIVERY_MARK: &str = "@delivery@";

/// What the statements bind: the id of row `n` is its prefix followed by `n` in ten decimal
/// digits (digits are base32 too, so the ids are valid); the prefixes come from `bulk_prefix`
/// of each id kind, so two seedings do not collide.
#[derive(Debug, Clone)]
pub struct History {
    pub event_prefix: String,
    pub delivery_prefix: String,
    pub attempt_prefix: String,
    pub webhook_id: String,
    pub at_ms: i64,
    /// The attempt's latency (its `duration_ms`), for the `latency_ms` column.
    pub latency_ms: i64,
    /// The JSON of an attempt answered 200, with [`ATTEMPT_MARK`] and [`DELIVERY_MARK`] for
    /// its ids.
    pub attempt_record: String,
}

impl History {
    pub fn new(webhook: &WebhookId, at_ms: i64) -> Self {
        let attempt = Attempt {
            id: AttemptId::from_trusted(ATTEMPT_MARK.to_owned()),
            delivery_id: DeliveryId::from_trusted(DELIVERY_MARK.to_owned()),
            webhook_id: webhook.clone(),
            attempt: 1,
            started_at: at_ms,
            duration_ms: 3,
            request: RequestRecord {
                method: "POST".into(),
                url: "http://127.0.0.1/history".into(),
                headers: vec![("content-type".into(), "application/json".into())],
            },
            response: Some(ResponseRecord {
                status: 200,
                headers: Vec::new(),
                body: String::new(),
                body_truncated: false,
            }),
            error_kind: None,
            error: None,
        };
        Self {
            event_prefix: EventId::bulk_prefix(at_ms),
            delivery_prefix: DeliveryId::bulk_prefix(at_ms),
            attempt_prefix: AttemptId::bulk_prefix(at_ms),
            webhook_id: webhook.as_str().to_owned(),
            at_ms,
            latency_ms: attempt.duration_ms as i64,
            attempt_record: serde_json::to_string(&attempt).expect("an attempt serializes"),
        }
    }

    /// `[from, to]` chunks covering `1..=count`.
    pub fn chunks(count: u64) -> impl Iterator<Item = (i64, i64)> {
        (0..count.div_ceil(CHUNK)).map(move |i| {
            let from = i * CHUNK + 1;
            let to = (from + CHUNK - 1).min(count);
            (from as i64, to as i64)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_every_row_once() {
        let all: Vec<_> = History::chunks(250_001).collect();
        assert_eq!(all, [(1, 100_000), (100_001, 200_000), (200_001, 250_001)]);
        assert_eq!(History::chunks(0).count(), 0);
    }

    #[test]
    fn prefixes_make_valid_ids() {
        let h = History::new(&WebhookId::generate(1_700_000_000_000), 1_700_000_000_000);
        let id = format!("{}{:010}", h.delivery_prefix, 42);
        DeliveryId::parse(&id).unwrap();
        let made_then = DeliveryId::generate(1_700_000_000_000);
        assert_eq!(id[..13], made_then.as_str()[..13], "the time part");
        let again = History::new(&WebhookId::generate(1_700_000_000_000), 1_700_000_000_000);
        assert_ne!(h.delivery_prefix, again.delivery_prefix);
        assert!(h.attempt_record.contains(ATTEMPT_MARK));
        assert!(h.attempt_record.contains(DELIVERY_MARK));
    }
}
