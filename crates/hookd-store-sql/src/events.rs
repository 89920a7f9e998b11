//! SQL text for reading events, and how a batch of events to store becomes the results and the
//! deliveries to insert once the backend knows which events were stored.

use hookd_core::event::Event;
use hookd_core::ids::EventId;
use hookd_core::store::{Enqueued, EventToStore, NewDelivery};

use crate::event_columns;

/// `$1`: id.
pub const GET: &str = concat!("SELECT ", event_columns!(), " FROM events WHERE id = $1");
/// The first page: `$1` limit.
pub const LIST: &str = concat!(
    "SELECT ",
    event_columns!(),
    " FROM events ORDER BY id DESC LIMIT $1"
);
/// A later page: `$1` limit, `$2` the last id of the previous page.
pub const LIST_BEFORE: &str = concat!(
    "SELECT ",
    event_columns!(),
    " FROM events WHERE id < $2 ORDER BY id DESC LIMIT $1"
);

/// The deliveries to insert, each with its event's id.
pub type DeliveriesToInsert<'a> = Vec<(&'a EventId, &'a NewDelivery)>;

/// Given, for each event in order, `None` when it was stored or the event that had taken its
/// idempotency key, returns the results in input order and the deliveries of the stored events.
pub fn sort_out<'a>(
    events: &'a [EventToStore],
    firsts: impl IntoIterator<Item = Option<Event>>,
) -> (Vec<Enqueued>, DeliveriesToInsert<'a>) {
    let mut results = Vec::with_capacity(events.len());
    let mut deliveries = Vec::new();
    for (e, first) in events.iter().zip(firsts) {
        match first {
            Some(first) => results.push(Enqueued::Duplicate(first)),
            None => {
                deliveries.extend(e.deliveries.iter().map(|d| (&e.id, d)));
                let count = u32::try_from(e.deliveries.len()).unwrap_or(u32::MAX);
                results.push(Enqueued::Created {
                    id: e.id.clone(),
                    deliveries: count,
                });
            }
        }
    }
    (results, deliveries)
}
