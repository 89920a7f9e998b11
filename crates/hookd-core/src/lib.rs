//! hookd's domain: identifiers, events, webhooks and how they match, default payloads, templates
//! and conditions, signatures, the retry policy, inbound hooks (verification, request parsing and
//! their workflows), and the [`Store`] trait that the database backends implement.
//!
//! This crate does no IO. Clocks and randomness are passed in as values (`now_ms`, jitter), so every
//! rule here is a plain function, tested without sockets or databases. It must not know axum,
//! sqlx or reqwest.

#[cfg(feature = "conformance")]
pub mod conformance;
pub mod delivery;
pub mod event;
pub mod flow;
pub mod ids;
pub mod inbound;
pub mod net;
pub mod outbound;
pub mod payload;
pub mod retry;
pub mod route_call;
pub mod schedule;
pub mod series;
pub mod share;
pub mod signature;
pub mod store;
pub mod template;
pub mod time;
pub mod webhook;

pub use delivery::{Attempt, AttemptResult, Delivery, DeliveryStatus, ErrorKind};
pub use event::{Event, EventType, NewEvent};
pub use ids::{
    AttemptId, DeliveryId, EventId, ExecutionId, IdError, InboundId, ScheduleId, TokenId, WebhookId,
};
pub use store::{Store, StoreError};
pub use webhook::{Webhook, WebhookSpec};

/// The version string sent as `User-Agent: hookd/<version>`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
