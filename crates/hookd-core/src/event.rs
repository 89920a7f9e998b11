//! Events: something that happened, published into hookd.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::EventId;

/// A dot-separated event type such as `entry.create` or `invoice.paid`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventType(String);

/// Longest event type accepted; longer ones are almost certainly payloads in the wrong field.
pub const MAX_EVENT_TYPE_LEN: usize = 200;

impl EventType {
    /// Accepts 1–200 characters of ASCII letters, digits and `._-:/`, with no empty
    /// dot-separated segment.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("must not be empty".into());
        }
        if s.len() > MAX_EVENT_TYPE_LEN {
            return Err(format!("must be at most {MAX_EVENT_TYPE_LEN} characters"));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '/')))
        {
            return Err(format!(
                "contains the character {c:?}; use letters, digits and . _ - : /"
            ));
        }
        if s.split('.').any(str::is_empty) {
            return Err("has an empty segment between dots".into());
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `route.call`, the type of reported route calls ([`crate::route_call`]).
    pub fn route_call() -> Self {
        Self(crate::route_call::ROUTE_CALL.to_owned())
    }
}

/// An event as the API accepted it, before it is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub event_type: EventType,
    pub model: Option<String>,
    pub data: Value,
    pub occurred_at: i64,
    pub idempotency_key: Option<String>,
}

impl NewEvent {
    /// The event as it reads once stored as `id` at `created_at`.
    pub fn into_event(self, id: EventId, created_at: i64) -> Event {
        Event {
            id,
            event_type: self.event_type.as_str().to_owned(),
            model: self.model,
            data: self.data,
            occurred_at: self.occurred_at,
            idempotency_key: self.idempotency_key,
            created_at,
        }
    }
}

/// A stored event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: EventId,
    pub event_type: String,
    pub model: Option<String>,
    pub data: Value,
    pub occurred_at: i64,
    pub idempotency_key: Option<String>,
    pub created_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_are_checked() {
        assert!(EventType::parse("entry.create").is_ok());
        assert!(EventType::parse("invoice.paid_v2").is_ok());
        assert!(EventType::parse("").is_err());
        assert!(EventType::parse("a..b").is_err());
        assert!(EventType::parse("has space").is_err());
        assert!(EventType::parse(&"x".repeat(201)).is_err());
    }
}
