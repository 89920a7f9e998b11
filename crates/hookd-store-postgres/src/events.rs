//! Events and the deliveries they cause, written together in one statement, and event reads.

use std::collections::HashMap;

use hookd_core::delivery::DeliveryStatus;
use hookd_core::event::Event;
use hookd_core::flow;
use hookd_core::ids::{EventId, WebhookId};
use hookd_core::store::{Claim, Claimed, Enqueued, EventToStore, NewDelivery, Page};
use hookd_store_sql::deliveries::lease_until;
use hookd_store_sql::events::{self as sql, sort_out};
use sqlx::{PgPool, Postgres, Row};

use crate::rows::{self, encode_err, event_columns, int};

/// The publish in one statement (`hookd_publish`, migration 0010): the events (an event whose
/// idempotency key is taken is skipped with its deliveries), their deliveries, with `claim`
/// the claim of first attempts of the webhooks it may take ([`grants`]) as the lanes' claim
/// makes it ([`crate::deliveries`]), and the notification naming the webhooks it left pending.
/// One call is one transaction and one round trip, where separate statements took seven.
pub(crate) async fn enqueue(
    pool: &PgPool,
    channel: &str,
    events: &[EventToStore],
    now_ms: i64,
    claim: Option<&Claim>,
) -> sqlx::Result<(Vec<Enqueued>, Option<Claimed>)> {
    // Events go in in the order of their keys, so two publishes that share keys wait for each
    // other in the same order and cannot deadlock. `ON CONFLICT DO NOTHING` waits for a
    // concurrent transaction holding the same key, so of two concurrent publishes exactly one
    // stores the event; within one call a repeated key is stored once, for its first event.
    let mut order: Vec<&EventToStore> = events.iter().collect();
    order.sort_by(|a, b| {
        (a.event.idempotency_key.as_deref()).cmp(&b.event.idempotency_key.as_deref())
    });
    let mut data = Vec::with_capacity(events.len());
    for e in &order {
        data.push(serde_json::to_string(&e.event.data).map_err(encode_err)?);
    }
    let deliveries: Vec<(&EventId, &NewDelivery)> = events
        .iter()
        .flat_map(|e| e.deliveries.iter().map(move |d| (&e.id, d)))
        .collect();
    let grants = claim.map(|c| grants(c, &deliveries)).unwrap_or_default();
    let claim = claim.filter(|_| !grants.is_empty());
    let rows = sqlx::query(PUBLISH)
        .bind(now_ms)
        .bind(channel)
        .bind(i32::try_from(crate::wake::MAX_NAMED).unwrap_or(i32::MAX))
        .bind(column(&order, |e| e.id.as_str()))
        .bind(column(&order, |e| e.event.event_type.as_str()))
        .bind(column(&order, |e| e.event.model.as_deref()))
        .bind(data)
        .bind(column(&order, |e| e.event.occurred_at))
        .bind(column(&order, |e| e.event.idempotency_key.as_deref()))
        .bind(column(&deliveries, |(_, d)| d.id.as_str()))
        .bind(column(&deliveries, |(e, _)| e.as_str()))
        .bind(column(&deliveries, |(_, d)| d.webhook_id.as_str()))
        .bind(column(&deliveries, |(_, d)| d.status.as_str()))
        .bind(column(&deliveries, |(_, d)| d.next_attempt_at))
        .bind(column(&deliveries, |(_, d)| d.entry_index.map(int)))
        .bind(column(&deliveries, |(_, d)| d.lease.as_deref()))
        .bind(claim.map(|c| c.lease_token.as_str()))
        .bind(claim.map(lease_until))
        .bind(claim.map(|c| i64::from(c.limit)))
        .bind(column(&grants, |(w, _)| w.as_str()))
        .bind(column(&grants, |(_, n)| *n))
        .bind(claim.map(|c| i64::from(c.default_max_in_flight)))
        .bind(flow::RATE_TOLERANCE_US)
        .bind(deliveries.len() <= LEASED_INSERT_MAX)
        .fetch_all(pool)
        .await?;
    let mut holders: HashMap<String, Event> = HashMap::new();
    let mut claimed = claim.map(|_| Claimed {
        deliveries: Vec::new(),
        next_at: None,
        waits_for_a_slot: false,
        candidates: Vec::new(),
    });
    for row in &rows {
        let kind: &str = row.try_get("kind")?;
        match (kind, claimed.as_mut()) {
            ("duplicate", _) => {
                let holder = rows::event(row)?;
                if let Some(key) = holder.idempotency_key.clone() {
                    holders.insert(key, holder);
                }
            }
            ("claimed", Some(claimed)) => {
                let delivery = rows::delivery(row)?;
                if !claimed
                    .candidates
                    .iter()
                    .any(|c| c.webhook_id == delivery.webhook_id)
                {
                    claimed.candidates.push(rows::candidate(row)?);
                }
                claimed.deliveries.push(delivery);
            }
            _ => {
                return Err(sqlx::Error::Protocol(format!(
                    "hookd_publish returned a {kind:?} row"
                )))
            }
        }
    }
    if let Some(claimed) = claimed.as_mut() {
        claimed.deliveries.sort_by(|a, b| a.id.cmp(&b.id));
    }
    // An event whose key another event holds was skipped; the holder may be one of this call's.
    let firsts = events.iter().map(|e| {
        let key = e.event.idempotency_key.as_deref()?;
        holders.get(key).filter(|h| h.id != e.id).cloned()
    });
    let (results, _) = sort_out(events, firsts);
    Ok((results, claimed))
}

/// `hookd_publish`'s arguments: `$1` now, `$2` channel, `$3` longest payload naming webhooks,
/// `$4`–`$9` the events' columns, `$10`–`$16` the deliveries', `$17` the lease token (null: no
/// claim), `$18` lease end, `$19` the claim's limit, `$20`/`$21` webhook ids and counts it may
/// take, `$22` the default cap, `$23` the rate limiter's tolerance (µs), `$24` whether the
/// deliveries may be inserted leased ([`LEASED_INSERT_MAX`]).
const PUBLISH: &str = "SELECT * FROM hookd_publish($1, $2, $3, $4::text[], $5::text[], $6::text[],
    $7::text[], $8::bigint[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[],
    $14::bigint[], $15::integer[], $16::text[], $17, $18, $19, $20::text[], $21::bigint[], $22, $23,
    $24)";

/// A publish of at most this many deliveries may insert them already leased, which holds the
/// claim lock across the insert; a larger one (a fan-out) inserts first and claims after, so
/// other claims do not wait for its insert (measured: fan-out ×50 lost a fifth of its
/// throughput to lock waits otherwise).
const LEASED_INSERT_MAX: usize = 64;

/// What a publish's claim may take: each webhook of the claim's share with first attempts in
/// the publish, as many as it has there (at most the claim's limit). The claim cuts each to
/// what the webhook's limits allow and takes its oldest due deliveries first, so a webhook
/// with a backlog still sends in order; the lanes take what is left, and other webhooks.
fn grants<'a>(
    claim: &Claim,
    deliveries: &[(&EventId, &'a NewDelivery)],
) -> Vec<(&'a WebhookId, i64)> {
    // Each webhook's place in `grants`, or `None` when another worker owns it.
    let mut places: HashMap<&WebhookId, Option<usize>> = HashMap::new();
    let mut grants: Vec<(&WebhookId, i64)> = Vec::new();
    for (_, d) in deliveries {
        if d.status != DeliveryStatus::Pending {
            continue;
        }
        let place = places.entry(&d.webhook_id).or_insert_with(|| {
            claim.share.owns(&d.webhook_id).then(|| {
                grants.push((&d.webhook_id, 0));
                grants.len() - 1
            })
        });
        if let Some(i) = *place {
            grants[i].1 = (grants[i].1 + 1).min(i64::from(claim.limit));
        }
    }
    grants
}

/// One column of `rows`, as the array a statement binds.
fn column<'a, T, U>(rows: &'a [T], value: impl Fn(&'a T) -> U) -> Vec<U> {
    rows.iter().map(value).collect()
}

pub(crate) async fn get(pool: &PgPool, id: &EventId) -> sqlx::Result<Option<Event>> {
    sqlx::query(sql::GET)
        .bind(id.as_str())
        .fetch_optional(pool)
        .await?
        .as_ref()
        .map(rows::event)
        .transpose()
}

pub(crate) async fn list(pool: &PgPool, page: &Page) -> sqlx::Result<Vec<Event>> {
    hookd_store_sql::page::query::<Postgres>(sql::LIST, sql::LIST_BEFORE, page)
        .fetch_all(pool)
        .await?
        .iter()
        .map(rows::event)
        .collect()
}

/// Events by id. Not kept as a prepared statement (see "Plans" in the crate's documentation):
/// planned each time with its ids, so it stays an index lookup as the table grows.
pub(crate) async fn by_ids(pool: &PgPool, ids: &[EventId]) -> sqlx::Result<Vec<Event>> {
    let ids: Vec<&str> = ids.iter().map(EventId::as_str).collect();
    sqlx::query(concat!(
        "SELECT ",
        event_columns!(),
        " FROM events WHERE id = ANY($1)"
    ))
    .persistent(false)
    .bind(ids)
    .fetch_all(pool)
    .await?
    .iter()
    .map(rows::event)
    .collect()
}
