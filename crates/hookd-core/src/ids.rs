//! Prefixed, time-sortable identifiers (`wh_`, `evt_`, `dlv_`, `att_`, `tok_`).
//!
//! The body is 26 Crockford base32 characters: 48 bits of milliseconds then 80 random bits, so ids
//! sort by creation time as plain strings. That is what list cursors rely on.

use std::fmt;
use std::sync::Mutex;

use rand::RngCore;
use serde::{Deserialize, Deserializer, Serialize};

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const BODY_LEN: usize = 26;

/// Why a string is not an id of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid {kind} id (expected `{prefix}` followed by 26 base32 characters)")]
pub struct IdError {
    pub kind: &'static str,
    pub prefix: &'static str,
}

/// The last id value handed out in this process: a new id that would not sort after it (made in
/// the same millisecond, or from a clock read that lost a race) counts up from it instead, so a
/// process's ids sort in creation order (ULID's monotonic mode).
static LAST: Mutex<u128> = Mutex::new(0);

/// Generates a new id body for the time `now_ms`.
fn new_body(now_ms: i64) -> String {
    let mut random = [0u8; 10];
    rand::thread_rng().fill_bytes(&mut random);
    let mut value: u128 = (now_ms.max(0) as u128 & 0xFFFF_FFFF_FFFF) << 80;
    for (i, b) in random.iter().enumerate() {
        value |= (*b as u128) << (8 * (9 - i));
    }
    {
        let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
        if value <= *last {
            value = *last + 1;
        }
        *last = value;
    }
    let mut out = [0u8; BODY_LEN];
    for (i, slot) in out.iter_mut().enumerate() {
        let shift = 5 * (BODY_LEN - 1 - i);
        *slot = ALPHABET[((value >> shift) & 0x1F) as usize];
    }
    String::from_utf8(out.to_vec()).expect("alphabet is ASCII")
}

/// The smallest id body of the millisecond `ms`: every id made at or after `ms` sorts at or
/// after it, every id made before sorts before.
fn first_body_at(ms: i64) -> String {
    let value: u128 = (ms.max(0) as u128 & 0xFFFF_FFFF_FFFF) << 80;
    let mut out = [0u8; BODY_LEN];
    for (i, slot) in out.iter_mut().enumerate() {
        let shift = 5 * (BODY_LEN - 1 - i);
        *slot = ALPHABET[((value >> shift) & 0x1F) as usize];
    }
    String::from_utf8(out.to_vec()).expect("alphabet is ASCII")
}

/// The first 16 characters of an id body for bulk rows made at `ms`: the time as ids encode it,
/// then six random characters. Ten more base32 characters (decimal digits, say) make a valid id;
/// two prefixes made for one instant still differ.
fn bulk_prefix_body(ms: i64) -> String {
    let mut body = first_body_at(ms);
    body.truncate(10);
    let mut random = [0u8; 6];
    rand::thread_rng().fill_bytes(&mut random);
    body.extend(
        random
            .iter()
            .map(|b| char::from(ALPHABET[usize::from(b & 0x1F)])),
    );
    body
}

fn valid_body(body: &str) -> bool {
    body.len() == BODY_LEN && body.bytes().all(|b| ALPHABET.contains(&b))
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
        #[serde(transparent)]
        #[schema(value_type = String, example = json!(concat!($prefix, "01JD8Z0Q9V4W6XKJ3M2N5P7R8S")))]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A new id for something created at `now_ms`.
            pub fn generate(now_ms: i64) -> Self {
                Self(format!("{}{}", $prefix, new_body(now_ms)))
            }

            /// The smallest id of the millisecond `ms`, to bound a range of ids by time.
            pub fn first_at(ms: i64) -> String {
                format!("{}{}", $prefix, first_body_at(ms))
            }

            /// The kind and the first 16 body characters of ids for rows made in bulk at `ms`
            /// (retained history in benchmarks): append 10 base32 characters for each id.
            pub fn bulk_prefix(ms: i64) -> String {
                format!("{}{}", $prefix, bulk_prefix_body(ms))
            }

            /// Parses an id received from outside (a path, a query, a body).
            pub fn parse(s: &str) -> Result<Self, IdError> {
                match s.strip_prefix($prefix) {
                    Some(body) if valid_body(body) => Ok(Self(s.to_owned())),
                    _ => Err(IdError { kind: $kind, prefix: $prefix }),
                }
            }

            /// Wraps a value read back from the database, which only ever holds valid ids.
            pub fn from_trusted(s: String) -> Self {
                Self(s)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

prefixed_id!(/// A webhook (an outbound subscription).
    WebhookId, "wh_", "webhook");
prefixed_id!(/// An event published into hookd.
    EventId, "evt_", "event");
prefixed_id!(/// One event sent to one webhook; stable across retries, sent as `webhook-id`.
    DeliveryId, "dlv_", "delivery");
prefixed_id!(/// One HTTP try of a delivery.
    AttemptId, "att_", "attempt");
prefixed_id!(/// A schedule: a message sent to a webhook on a cron expression or an interval.
    ScheduleId, "sch_", "schedule");
prefixed_id!(/// An inbound hook (a generated URL with verification, parsing and a workflow).
    InboundId, "in_", "inbound hook");
prefixed_id!(/// One inbound request run through its hook's workflow.
    ExecutionId, "exe_", "execution");
prefixed_id!(/// An admin API token (its id; the token itself is only stored hashed).
    TokenId, "tok_", "token");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_creation_time() {
        let a = EventId::generate(1_700_000_000_000);
        let b = EventId::generate(1_700_000_000_001);
        assert!(a < b, "{a} < {b}");
        assert!(a.as_str().starts_with("evt_"));
        assert_eq!(EventId::parse(a.as_str()), Ok(a.clone()));
    }

    #[test]
    fn ids_made_in_one_millisecond_still_sort_in_order() {
        let ids: Vec<_> = (0..1000)
            .map(|_| DeliveryId::generate(1_700_000_000_000))
            .collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn parse_refuses_wrong_prefix_and_malformed_bodies() {
        let wh = WebhookId::generate(1);
        assert!(EventId::parse(wh.as_str()).is_err());
        assert!(WebhookId::parse("wh_short").is_err());
        assert!(WebhookId::parse("wh_01JD8Z0Q9V4W6XKJ3M2N5P7R8!").is_err());
        assert!(WebhookId::parse("").is_err());
    }
}
