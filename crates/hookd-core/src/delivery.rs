//! Deliveries (one event to one webhook) and their attempts (each HTTP try).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ids::{AttemptId, DeliveryId, EventId, ScheduleId, WebhookId};

/// Where a delivery is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its first attempt.
    Pending,
    /// Claimed by a worker that holds its lease.
    Delivering,
    /// Delivered: the endpoint answered 2xx.
    Succeeded,
    /// Failed at least once; the next attempt is scheduled.
    Retrying,
    /// Attempts exhausted or a permanent error.
    Failed,
    /// Will not be attempted again (its webhook was deleted).
    Cancelled,
}

impl DeliveryStatus {
    pub const ALL: [Self; 6] = [
        Self::Pending,
        Self::Delivering,
        Self::Succeeded,
        Self::Retrying,
        Self::Failed,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivering => "delivering",
            Self::Succeeded => "succeeded",
            Self::Retrying => "retrying",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// A stored delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub id: DeliveryId,
    pub event_id: EventId,
    pub webhook_id: WebhookId,
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the next attempt is due (or, while `delivering`, when the lease runs out).
    pub next_attempt_at: Option<i64>,
    /// Index of the webhook's `events` entry that matched (APIO's `event.id`).
    pub entry_index: Option<u32>,
    pub last_status_code: Option<u16>,
    pub last_error: Option<String>,
    /// The schedule that made it, for deliveries of `schedule.fired` events.
    pub schedule_id: Option<ScheduleId>,
    /// The schedule occurrence it was made for (epoch ms).
    pub occurrence: Option<i64>,
    /// The schedule's `message` template when it fired: the body, in place of the webhook's.
    pub message: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What went wrong when no HTTP response came back (or the request was never sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    Dns,
    Connect,
    Tls,
    Timeout,
    /// The connection broke while sending or reading.
    Io,
    /// The target resolves to an address the SSRF guard refuses.
    BlockedAddress,
    /// The request could not be built (a template rendered something invalid).
    InvalidPayload,
    /// Nothing was sent: the webhook is disabled.
    WebhookDisabled,
    /// Nothing was sent: the webhook or the event no longer exists.
    Gone,
    /// Anything else; the message says what.
    Other,
}

/// The outcome of one HTTP try, as the retry policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptResult {
    Response {
        status: u16,
        retry_after: Option<Duration>,
    },
    Error(ErrorKind),
}

/// One recorded HTTP try: what was sent (secrets masked) and what came back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub id: AttemptId,
    pub delivery_id: DeliveryId,
    pub webhook_id: WebhookId,
    /// 1-based attempt number.
    pub attempt: u32,
    pub started_at: i64,
    pub duration_ms: u64,
    pub request: RequestRecord,
    pub response: Option<ResponseRecord>,
    pub error_kind: Option<ErrorKind>,
    pub error: Option<String>,
}

/// The request as sent, with secret header values masked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
}

/// The response as received; the body is cut at [`MAX_RECORDED_BODY`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseRecord {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// True when the body was longer than what is recorded.
    pub body_truncated: bool,
}

/// Response bodies are recorded up to 64 KiB.
pub const MAX_RECORDED_BODY: usize = 64 * 1024;

/// Cuts `bytes` to the recording limit, on a character boundary, replacing invalid UTF-8.
pub fn record_body(bytes: &[u8]) -> (String, bool) {
    let truncated = bytes.len() > MAX_RECORDED_BODY;
    let kept = &bytes[..bytes.len().min(MAX_RECORDED_BODY)];
    let mut text = String::from_utf8_lossy(kept).into_owned();
    if truncated && text.ends_with('\u{FFFD}') {
        text.pop();
    }
    (text, truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip() {
        for s in DeliveryStatus::ALL {
            assert_eq!(DeliveryStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(DeliveryStatus::parse("done"), None);
    }

    #[test]
    fn bodies_are_cut_at_64_kib() {
        let (b, t) = record_body(b"ok");
        assert_eq!((b.as_str(), t), ("ok", false));
        let big = vec![b'a'; MAX_RECORDED_BODY + 10];
        let (b, t) = record_body(&big);
        assert_eq!((b.len(), t), (MAX_RECORDED_BODY, true));
    }
}
