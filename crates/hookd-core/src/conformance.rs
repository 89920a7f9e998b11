//! The conformance suite every [`Store`] backend must pass (cargo feature `conformance`).
//!
//! Each case is a story told through the trait only: it writes, reads back and asserts what a
//! caller relies on. A backend runs every case on a fresh database with
//! [`conformance_tests!`](crate::conformance_tests), given something implementing
//! [`TestDatabase`]. Most cases get one migrated handle; the multi-process cases get two handles on
//! the same database (two `connect`s, as two processes would have) and migrate them concurrently
//! themselves. No case sleeps to synchronise; the wake-up case measures real time with generous
//! bounds.

use std::collections::{BTreeMap, HashSet};
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::json;

use crate::delivery::AttemptResult;
use crate::delivery::{
    Attempt, Delivery, DeliveryStatus, ErrorKind, RequestRecord, ResponseRecord,
};
use crate::event::{Event, EventType, NewEvent};
use crate::flow::{self, Circuit, CircuitPolicy, CircuitState};
use crate::ids::{
    AttemptId, DeliveryId, EventId, ExecutionId, InboundId, ScheduleId, TokenId, WebhookId,
};
use crate::inbound::record::{
    Execution, ExecutionRecord, ExecutionRequest, ExecutionStatus, InboundHook,
};
use crate::inbound::spec::{InboundSpec, Mode};
use crate::inbound::workflow::Response;
use crate::retry::WebhookEffect;
use crate::schedule::{Schedule, ScheduleSpec, Timing};
use crate::series::{AttemptBucket, AttemptWindow};
use crate::signature::SigningSecret;
use crate::store::{
    Claim, DeliveryFilter, Enqueued, EventToStore, ExecutionClaim, Firing, Lane, NewDelivery,
    NextState, Outcome, Page, Store, StoreError, TokenRecord, WebhookStats, Work, Written,
};
use crate::time::rfc3339;
use crate::webhook::{
    AuthConfig, BodyConfig, EventFilter, HttpMethod, PreviousSecret, SignatureConfig, Webhook,
    WebhookSpec,
};

/// A fresh database for one case, provided by the backend's test file.
#[async_trait]
pub trait TestDatabase: Send + Sync {
    /// Opens a new handle on this case's database, as another process would. Not migrated.
    async fn open(&self) -> Box<dyn Store>;
    /// Removes the database, best effort. Called only after the case passed, so a failed
    /// case leaves its database behind to inspect.
    async fn remove(&self);
}

/// Generates one `#[tokio::test]` per conformance case. `$fresh` is an expression evaluated once
/// per case to an `Option` of a [`TestDatabase`]; `None` skips the case (the backend prints why).
/// The calling crate needs `tokio` with the `macros` and `rt-multi-thread` features.
#[macro_export]
macro_rules! conformance_tests {
    ($fresh:expr) => {
        $crate::conformance_tests!(@single $fresh;
            tokens_count_insert_and_conflicts,
            webhook_crud_bumps_the_version,
            webhook_lists_are_newest_first_with_a_cursor,
            active_webhooks_and_webhooks_by_ids,
            deleting_a_webhook_cancels_its_unfinished_deliveries,
            enqueue_stores_events_with_their_deliveries,
            enqueue_honours_idempotency_keys,
            enqueue_fans_out_to_thousands_of_webhooks,
            claims_respect_due_time_and_lane,
            claims_take_the_oldest_due_first,
            expired_leases_are_claimable_and_stale_outcomes_do_not_move,
            caller_sent_deliveries_are_leased_to_the_caller,
            record_outcomes_moves_deliveries_and_keeps_attempts,
            failing_webhooks_are_disabled_after_the_window,
            webhook_edits_keep_the_workers_failure_clock,
            an_outcome_repeated_in_a_batch_moves_its_delivery_once,
            webhook_effects_batch_across_webhooks_in_order_within_one,
            a_batch_clears_the_failure_clock_of_more_webhooks_than_one_list_holds,
            disable_effect_turns_the_webhook_off,
            retry_delivery_now_makes_deliveries_due,
            recover_failed_requeues_failed_deliveries_since,
            list_deliveries_filters_and_pages,
            webhook_stats_count_the_window_and_show_the_newest,
            attempt_series_count_each_bucket_of_the_window,
            claims_say_when_to_look_again,
            claims_hold_each_webhooks_in_flight_cap,
            a_publish_that_claims_leases_within_each_webhooks_limits,
            a_publish_without_older_work_leases_round_robin_within_the_caps,
            claims_go_round_robin_across_webhooks,
            rate_limited_webhooks_wait_their_turn,
            open_circuits_hold_deliveries_until_a_probe_closes_them,
            a_failed_probe_reopens_the_circuit_for_longer,
            an_update_closes_the_circuit_and_disabled_webhooks_have_no_limits,
            prune_removes_old_finished_rows_only,
            schedule_crud_is_conditional_on_the_version,
            firing_a_schedule_stores_its_event_and_delivery_once,
            inbound_crud_is_conditional_on_updated_at,
            executions_are_listed_per_hook_newest_first,
            execution_claims_lease_due_queued_ones,
            prune_removes_old_finished_executions_only,
            seeded_history_is_finished_and_readable,
            workers_say_they_are_alive_and_the_silent_are_forgotten,
        );
        $crate::conformance_tests!(@pair $fresh;
            migrations_run_concurrently_and_repeat_safely,
            concurrent_enqueues_with_one_key_create_once,
            concurrent_claimers_never_share_a_delivery,
            concurrent_claimers_hold_the_in_flight_cap,
            concurrent_publishes_that_claim_hold_the_in_flight_cap,
            wait_for_work_wakes_when_another_handle_enqueues,
            concurrent_firings_of_one_occurrence_store_one,
            concurrent_claimers_never_share_an_execution,
            wait_for_work_wakes_when_another_handle_queues_an_execution,
            a_key_rotation_by_one_handle_is_read_by_the_other,
        );
    };
    (@single $fresh:expr; $($case:ident),+ $(,)?) => {$(
        #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            let Some(db) = $fresh.await else { return };
            let store = $crate::conformance::TestDatabase::open(&db).await;
            $crate::store::Store::migrate(&*store).await.expect("migrate");
            $crate::conformance::$case(&*store).await;
            drop(store);
            $crate::conformance::TestDatabase::remove(&db).await;
        }
    )+};
    (@pair $fresh:expr; $($case:ident),+ $(,)?) => {$(
        #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            let Some(db) = $fresh.await else { return };
            let store = $crate::conformance::TestDatabase::open(&db).await;
            let other = $crate::conformance::TestDatabase::open(&db).await;
            $crate::conformance::$case(&*store, &*other).await;
            drop((store, other));
            $crate::conformance::TestDatabase::remove(&db).await;
        }
    )+};
}

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// The cases' clock: fixed, so leases and due times are exact.
const T0: i64 = 1_700_000_000_000;
const DAY_MS: i64 = 86_400_000;
const LEASE: Duration = Duration::from_secs(30);
const LEASE_MS: i64 = 30_000;
/// The cases' circuit breaker: opens after three failures in a row, for 10 s, then 20 s...
const CIRCUIT: CircuitPolicy = CircuitPolicy {
    failures: 3,
    cooldown: Duration::from_secs(10),
    max_cooldown: Duration::from_secs(60),
};

/// A strictly increasing instant for generating ids, so ids sort in the order a case creates
/// them (ids made in one millisecond sort at random).
fn seq() -> i64 {
    static NEXT: AtomicI64 = AtomicI64::new(T0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn spec(name: &str) -> WebhookSpec {
    WebhookSpec {
        name: name.to_owned(),
        description: Some(format!("{name} receiver")),
        url: format!("https://example.com/{name}"),
        method: HttpMethod::Post,
        events: vec![EventFilter {
            label: Some("entries".into()),
            event_type: Some("entry.*".into()),
            model: None,
            method: None,
            url: None,
        }],
        condition: Some(r#"doc.status == "Open""#.into()),
        headers: BTreeMap::from([
            ("x-team".to_owned(), Some("core".to_owned())),
            ("user-agent".to_owned(), None),
        ]),
        auth: AuthConfig::Bearer {
            token: "t0ken".into(),
        },
        secret: SigningSecret::generate_standard(),
        previous_secret: None,
        signature: SignatureConfig::Standard,
        include_secret: false,
        body: BodyConfig::Json {
            template: "{{ doc | tojson }}".into(),
        },
        tls_verify: true,
        timeout_ms: Some(5000),
        max_attempts: None,
        retry_schedule: Some(vec![1, 2, 3]),
        max_in_flight: None,
        rate_limit_per_second: None,
    }
}

fn webhook(name: &str) -> Webhook {
    Webhook {
        id: WebhookId::generate(seq()),
        active: true,
        disabled_reason: None,
        failing_since: None,
        spec: spec(name),
        created_at: T0,
        updated_at: T0,
        circuit: Circuit::default(),
    }
}

fn event(key: Option<&str>, deliveries: Vec<NewDelivery>) -> EventToStore {
    EventToStore {
        id: EventId::generate(seq()),
        event: NewEvent {
            event_type: EventType::parse("entry.create").expect("valid event type"),
            model: Some("address".into()),
            data: json!({"id": 7, "city": "Paris", "tags": ["a", "b"], "price": 1.5, "n": null}),
            occurred_at: T0 - 10,
            idempotency_key: key.map(Into::into),
        },
        deliveries,
    }
}

fn pending(webhook_id: &WebhookId, due: i64) -> NewDelivery {
    NewDelivery {
        id: DeliveryId::generate(seq()),
        webhook_id: webhook_id.clone(),
        entry_index: None,
        status: DeliveryStatus::Pending,
        next_attempt_at: due,
        lease: None,
    }
}

fn claim(lane: Lane, now_ms: i64, limit: u32) -> Claim {
    Claim {
        lane,
        now_ms,
        limit,
        lease: LEASE,
        lease_token: format!("lease-{}", seq()),
        default_max_in_flight: 1_000,
        share: crate::share::Share::everything(),
    }
}

/// An attempt answered with `status`, or timed out when `None`.
fn attempt(d: &Delivery, number: u32, status: Option<u16>, at: i64) -> Attempt {
    let error = match status {
        None => Some("timed out after 5s".to_owned()),
        Some(s) if !(200..300).contains(&s) => Some(format!("HTTP {s}")),
        Some(_) => None,
    };
    Attempt {
        id: AttemptId::generate(seq()),
        delivery_id: d.id.clone(),
        webhook_id: d.webhook_id.clone(),
        attempt: number,
        started_at: at,
        duration_ms: 42,
        request: RequestRecord {
            method: "POST".into(),
            url: "https://example.com/hook".into(),
            headers: vec![
                ("webhook-id".into(), d.id.to_string()),
                ("x-key".into(), "****".into()),
            ],
        },
        response: status.map(|s| ResponseRecord {
            status: s,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: format!("answered {s} ✓"),
            body_truncated: false,
        }),
        error_kind: status.is_none().then_some(ErrorKind::Timeout),
        error,
    }
}

/// How an attempt went: the response status (`None`: timed out), and what follows.
type Answer = (Option<u16>, NextState, WebhookEffect);

fn ok() -> Answer {
    (Some(200), NextState::Succeeded, WebhookEffect::Healthy)
}

fn retry_at(at_ms: i64) -> Answer {
    (
        Some(500),
        NextState::Retry { at_ms },
        WebhookEffect::Failing,
    )
}

fn timed_out_for_good() -> Answer {
    (None, NextState::Failed, WebhookEffect::Failing)
}

/// The outcome of the next attempt of `d`, sent at `at` under claim `c`; recorded 42 ms later.
fn answer(c: &Claim, d: &Delivery, at: i64, (status, next, effect): Answer) -> Outcome {
    let now_ms = at + 42;
    let result = match status {
        Some(status) => AttemptResult::Response {
            status,
            retry_after: None,
        },
        None => AttemptResult::Error(ErrorKind::Timeout),
    };
    Outcome {
        attempt: attempt(d, d.attempts + 1, status, at),
        lease_token: c.lease_token.clone(),
        next,
        webhook: effect,
        disable_if_failing_since_before: now_ms - 5 * DAY_MS,
        circuit: flow::signal(&result),
        circuit_policy: CIRCUIT,
        now_ms,
    }
}

fn page(limit: u32, before: Option<&str>) -> Page {
    Page {
        limit,
        before: before.map(Into::into),
    }
}

async fn enqueue(store: &dyn Store, events: Vec<EventToStore>, now_ms: i64) -> Vec<Enqueued> {
    store
        .enqueue_events(&events, now_ms)
        .await
        .expect("enqueue_events")
}

/// Queues one event with one pending delivery to `webhook`, due at `due` (and created then).
async fn queue(store: &dyn Store, webhook: &WebhookId, due: i64) -> DeliveryId {
    let e = event(None, vec![pending(webhook, due)]);
    let id = e.deliveries[0].id.clone();
    enqueue(store, vec![e], due).await;
    id
}

/// [`queue`], with the delivery's id made at its creation time, as the server makes it.
async fn queue_created(store: &dyn Store, webhook: &WebhookId, due: i64) -> DeliveryId {
    let mut e = event(None, vec![pending(webhook, due)]);
    e.deliveries[0].id = DeliveryId::generate(due);
    let id = e.deliveries[0].id.clone();
    enqueue(store, vec![e], due).await;
    id
}

async fn delivery(store: &dyn Store, id: &DeliveryId) -> Delivery {
    store
        .get_delivery(id)
        .await
        .expect("get_delivery")
        .expect("delivery exists")
}

/// A delivery's status, attempts and `next_attempt_at`.
async fn state(store: &dyn Store, id: &DeliveryId) -> (DeliveryStatus, u32, Option<i64>) {
    let d = delivery(store, id).await;
    (d.status, d.attempts, d.next_attempt_at)
}

/// Claims, returning the deliveries in id order.
async fn claimed(store: &dyn Store, claim: &Claim) -> Vec<Delivery> {
    let mut claimed = store
        .claim_due_deliveries(claim)
        .await
        .expect("claim_due_deliveries")
        .deliveries;
    claimed.sort_by(|a, b| a.id.cmp(&b.id));
    claimed
}

async fn claim_ids(store: &dyn Store, claim: &Claim) -> Vec<DeliveryId> {
    claimed(store, claim)
        .await
        .into_iter()
        .map(|d| d.id)
        .collect()
}

async fn record(store: &dyn Store, outcomes: &[Outcome]) {
    store
        .record_outcomes(outcomes)
        .await
        .expect("record_outcomes");
}

async fn webhook_state(store: &dyn Store, id: &WebhookId) -> Webhook {
    store
        .get_webhook(id)
        .await
        .expect("get_webhook")
        .expect("webhook exists")
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

/// Claims `id` (due at `now` in `lane`) and records its next attempt.
async fn try_once(store: &dyn Store, id: &DeliveryId, lane: Lane, now: i64, how: Answer) {
    let c = claim(lane, now, 100);
    let all = claimed(store, &c).await;
    let d = all
        .iter()
        .find(|d| &d.id == id)
        .expect("the delivery is due");
    record(store, &[answer(&c, d, now, how)]).await;
}

/// Polls two futures on the current task until both finish (a dependency-free `join`).
async fn join<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    let (mut a, mut b) = (pin!(a), pin!(b));
    let (mut out_a, mut out_b) = (None, None);
    poll_fn(move |cx| {
        if out_a.is_none() {
            if let Poll::Ready(v) = a.as_mut().poll(cx) {
                out_a = Some(v);
            }
        }
        if out_b.is_none() {
            if let Poll::Ready(v) = b.as_mut().poll(cx) {
                out_b = Some(v);
            }
        }
        match (out_a.take(), out_b.take()) {
            (Some(a), Some(b)) => Poll::Ready((a, b)),
            (a, b) => {
                (out_a, out_b) = (a, b);
                Poll::Pending
            }
        }
    })
    .await
}

/// How long `f` took, with what it gave.
async fn timed<T>(f: impl Future<Output = T>) -> (Duration, T) {
    let start = Instant::now();
    let out = f.await;
    (start.elapsed(), out)
}

async fn migrate_both(store: &dyn Store, other: &dyn Store) {
    let (a, b) = join(store.migrate(), other.migrate()).await;
    a.expect("migrate (first handle)");
    b.expect("migrate (second handle)");
}

// ---------------------------------------------------------------------------------------------
// Tokens and webhooks
// ---------------------------------------------------------------------------------------------

pub async fn tokens_count_insert_and_conflicts(store: &dyn Store) {
    assert_eq!(store.count_tokens().await.unwrap(), 0);
    let token = |name: &str, hash: &str| TokenRecord {
        id: TokenId::generate(seq()),
        name: name.into(),
        hash: hash.into(),
        created_at: T0,
    };
    let (h1, h2) = ("ab".repeat(32), "cd".repeat(32));
    store.insert_token(&token("admin", &h1)).await.unwrap();
    assert_eq!(store.count_tokens().await.unwrap(), 1);
    assert!(store.token_hash_exists(&h1).await.unwrap());
    assert!(!store.token_hash_exists(&h2).await.unwrap());

    let same_name = store.insert_token(&token("admin", &h2)).await;
    assert!(
        matches!(same_name, Err(StoreError::Conflict(_))),
        "{same_name:?}"
    );
    let same_hash = store.insert_token(&token("ci", &h1)).await;
    assert!(
        matches!(same_hash, Err(StoreError::Conflict(_))),
        "{same_hash:?}"
    );
    assert_eq!(store.count_tokens().await.unwrap(), 1);
    assert!(!store.token_hash_exists(&h2).await.unwrap());
}

pub async fn webhook_crud_bumps_the_version(store: &dyn Store) {
    let version = || async { store.webhooks_version().await.unwrap() };
    let v0 = version().await;
    let mut w = webhook("crm");
    store.insert_webhook(&w).await.unwrap();
    let v1 = version().await;
    assert_ne!(v1, v0, "insert changes the version");
    assert_eq!(store.get_webhook(&w.id).await.unwrap(), Some(w.clone()));
    assert_eq!(
        store
            .get_webhook(&WebhookId::generate(seq()))
            .await
            .unwrap(),
        None
    );
    let again = store.insert_webhook(&w).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");

    let read = w.clone();
    w.active = false;
    w.disabled_reason = Some("paused by hand".into());
    w.spec.name = "crm-v2".into();
    w.spec.headers.insert("x-extra".into(), Some("1".into()));
    w.updated_at = T0 + 10;
    assert_eq!(
        store.update_webhook(&w, &read).await.unwrap(),
        Written::Done
    );
    assert_eq!(store.get_webhook(&w.id).await.unwrap(), Some(w.clone()));
    let v2 = version().await;
    assert_ne!(v2, v1, "update changes the version");
    let ghost = webhook("ghost");
    assert_eq!(
        store.update_webhook(&ghost, &ghost).await.unwrap(),
        Written::NotFound
    );
    // A write based on a stale read (the row changed since) is refused and changes nothing.
    let mut stale = read.clone();
    stale.spec.name = "lost update".into();
    assert_eq!(
        store.update_webhook(&stale, &read).await.unwrap(),
        Written::Changed
    );
    assert_eq!(store.get_webhook(&w.id).await.unwrap(), Some(w.clone()));

    assert!(store.delete_webhook(&w.id, T0 + 20).await.unwrap());
    assert_eq!(store.get_webhook(&w.id).await.unwrap(), None);
    let v3 = version().await;
    assert!(v3 != v2 && v3 != v1, "delete changes the version");
    assert!(!store.delete_webhook(&w.id, T0 + 30).await.unwrap());
}

pub async fn webhook_lists_are_newest_first_with_a_cursor(store: &dyn Store) {
    let hooks: Vec<Webhook> = (0..5).map(|i| webhook(&format!("h{i}"))).collect();
    for i in [3, 0, 4, 1, 2] {
        store.insert_webhook(&hooks[i]).await.unwrap();
    }
    let id = |i: usize| hooks[i].id.clone();
    let list = |before: Option<WebhookId>| async move {
        let p = page(2, before.as_ref().map(WebhookId::as_str));
        let found = store.list_webhooks(&p).await.unwrap();
        found.into_iter().map(|w| w.id).collect::<Vec<_>>()
    };
    assert_eq!(list(None).await, vec![id(4), id(3)]);
    assert_eq!(list(Some(id(3))).await, vec![id(2), id(1)]);
    assert_eq!(list(Some(id(1))).await, vec![id(0)]);
    assert!(list(Some(id(0))).await.is_empty());
    let all = store.list_webhooks(&page(100, None)).await.unwrap();
    let newest_first: Vec<Webhook> = hooks.iter().rev().cloned().collect();
    assert_eq!(all, newest_first, "whole rows, newest first");
}

pub async fn active_webhooks_and_webhooks_by_ids(store: &dyn Store) {
    let (a, b) = (webhook("a"), webhook("b"));
    let mut off = webhook("off");
    off.active = false;
    for w in [&a, &b, &off] {
        store.insert_webhook(w).await.unwrap();
    }
    let ids = |list: &[Webhook]| sorted(list.iter().map(|w| w.id.clone()).collect());
    let active = store.active_webhooks().await.unwrap();
    assert_eq!(ids(&active), sorted(vec![a.id.clone(), b.id.clone()]));
    assert!(active.contains(&a), "active webhooks are returned whole");

    let wanted = [a.id.clone(), off.id.clone(), WebhookId::generate(seq())];
    let found = store.webhooks_by_ids(&wanted).await.unwrap();
    assert_eq!(ids(&found), sorted(vec![a.id.clone(), off.id.clone()]));
    assert!(found.contains(&off));
    assert!(store.webhooks_by_ids(&[]).await.unwrap().is_empty());
}

pub async fn deleting_a_webhook_cancels_its_unfinished_deliveries(store: &dyn Store) {
    let (gone, kept) = (webhook("gone"), webhook("kept"));
    store.insert_webhook(&gone).await.unwrap();
    store.insert_webhook(&kept).await.unwrap();
    let done = queue(store, &gone.id, T0).await;
    try_once(store, &done, Lane::First, T0, ok()).await;
    let later = queue(store, &gone.id, T0 + DAY_MS).await;
    let other = queue(store, &kept.id, T0 + DAY_MS).await;
    let in_flight = queue(store, &gone.id, T0 + 1).await;
    let c = claim(Lane::First, T0 + 1, 10);
    let sent = claimed(store, &c).await;
    assert_eq!(
        sent.iter().map(|d| &d.id).collect::<Vec<_>>(),
        vec![&in_flight]
    );

    assert!(store.delete_webhook(&gone.id, T0 + 2).await.unwrap());
    for id in [&later, &in_flight] {
        assert_eq!(state(store, id).await, (DeliveryStatus::Cancelled, 0, None));
        assert_eq!(delivery(store, id).await.updated_at, T0 + 2);
    }
    assert_eq!(
        delivery(store, &done).await.status,
        DeliveryStatus::Succeeded
    );
    assert_eq!(
        delivery(store, &other).await.status,
        DeliveryStatus::Pending
    );

    // The attempt in flight comes back: recorded, but the delivery stays cancelled.
    record(store, &[answer(&c, &sent[0], T0 + 3, ok())]).await;
    assert_eq!(
        delivery(store, &in_flight).await.status,
        DeliveryStatus::Cancelled
    );
    assert_eq!(store.list_attempts(&in_flight).await.unwrap().len(), 1);
    let far = claim(Lane::First, T0 + 10 * DAY_MS, 10);
    assert_eq!(claim_ids(store, &far).await, vec![other]);
}

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

pub async fn enqueue_stores_events_with_their_deliveries(store: &dyn Store) {
    let (w1, w2) = (WebhookId::generate(seq()), WebhookId::generate(seq()));
    let mut e = event(None, vec![pending(&w1, T0 + 5), pending(&w2, T0 + 6)]);
    e.deliveries[0].entry_index = Some(3);
    let result = enqueue(store, vec![e.clone()], T0).await;
    assert_eq!(
        result,
        vec![Enqueued::Created {
            id: e.id.clone(),
            deliveries: 2
        }]
    );

    let stored = store.get_event(&e.id).await.unwrap().expect("event stored");
    let expected = Event {
        id: e.id.clone(),
        event_type: "entry.create".into(),
        model: Some("address".into()),
        data: e.event.data.clone(),
        occurred_at: T0 - 10,
        idempotency_key: None,
        created_at: T0,
    };
    assert_eq!(stored, expected);
    assert_eq!(
        store.get_event(&EventId::generate(seq())).await.unwrap(),
        None
    );
    assert_eq!(
        delivery(store, &e.deliveries[0].id).await,
        expected_delivery(&e, 0, Some(3))
    );
    assert_eq!(
        delivery(store, &e.deliveries[1].id).await,
        expected_delivery(&e, 1, None)
    );
    event_reads_page_and_batch(store, &expected).await;
}

/// The `i`th delivery of `e` as stored by an enqueue at `T0`.
fn expected_delivery(e: &EventToStore, i: usize, entry_index: Option<u32>) -> Delivery {
    let new = &e.deliveries[i];
    Delivery {
        id: new.id.clone(),
        event_id: e.id.clone(),
        webhook_id: new.webhook_id.clone(),
        status: DeliveryStatus::Pending,
        attempts: 0,
        next_attempt_at: Some(new.next_attempt_at),
        entry_index,
        last_status_code: None,
        last_error: None,
        schedule_id: None,
        occurrence: None,
        message: None,
        created_at: T0,
        updated_at: T0,
    }
}

async fn event_reads_page_and_batch(store: &dyn Store, first: &Event) {
    let (e2, e3) = (event(None, vec![]), event(None, vec![]));
    let result = enqueue(store, vec![e2.clone(), e3.clone()], T0 + 1).await;
    assert_eq!(
        result[1],
        Enqueued::Created {
            id: e3.id.clone(),
            deliveries: 0
        }
    );
    let ids = |list: Vec<Event>| list.into_iter().map(|e| e.id).collect::<Vec<_>>();
    let newest = ids(store.list_events(&page(2, None)).await.unwrap());
    assert_eq!(newest, vec![e3.id.clone(), e2.id.clone()]);
    let older = store
        .list_events(&page(2, Some(e2.id.as_str())))
        .await
        .unwrap();
    assert_eq!(older, vec![first.clone()]);
    let wanted = [first.id.clone(), e3.id.clone(), EventId::generate(seq())];
    let found = store.events_by_ids(&wanted).await.unwrap();
    assert_eq!(
        sorted(ids(found)),
        sorted(vec![first.id.clone(), e3.id.clone()])
    );
    assert!(store.events_by_ids(&[]).await.unwrap().is_empty());
}

pub async fn enqueue_honours_idempotency_keys(store: &dyn Store) {
    let wh = WebhookId::generate(seq());
    let original = event(Some("order-1"), vec![pending(&wh, T0)]);
    enqueue(store, vec![original.clone()], T0).await;
    let first = store
        .get_event(&original.id)
        .await
        .unwrap()
        .expect("stored");

    let mut retry = event(Some("order-1"), vec![pending(&wh, T0)]);
    retry.event.data = json!({"different": true});
    let result = enqueue(store, vec![retry.clone()], T0 + 1).await;
    assert_eq!(result, vec![Enqueued::Duplicate(first)]);
    assert_eq!(store.get_event(&retry.id).await.unwrap(), None);
    assert_eq!(
        store.get_delivery(&retry.deliveries[0].id).await.unwrap(),
        None
    );
    keys_repeated_within_a_batch(store, &wh).await;
    let all = store
        .list_deliveries(&DeliveryFilter::default(), &page(100, None))
        .await
        .unwrap();
    assert_eq!(
        all.len(),
        3,
        "one delivery each for the original and two in the batch"
    );
}

/// Within one batch, the second use of a key is a duplicate of the first.
async fn keys_repeated_within_a_batch(store: &dyn Store, wh: &WebhookId) {
    let a = event(Some("order-2"), vec![pending(wh, T0)]);
    let b = event(Some("order-2"), vec![pending(wh, T0)]);
    let c = event(None, vec![pending(wh, T0)]);
    let result = enqueue(store, vec![a.clone(), b.clone(), c.clone()], T0 + 2).await;
    assert_eq!(
        result[0],
        Enqueued::Created {
            id: a.id.clone(),
            deliveries: 1
        }
    );
    assert!(
        matches!(&result[1], Enqueued::Duplicate(e) if e.id == a.id),
        "{result:?}"
    );
    assert_eq!(
        result[2],
        Enqueued::Created {
            id: c.id,
            deliveries: 1
        }
    );
    assert_eq!(store.get_delivery(&b.deliveries[0].id).await.unwrap(), None);
}

pub async fn enqueue_fans_out_to_thousands_of_webhooks(store: &dyn Store) {
    let hooks: Vec<WebhookId> = (0..2500).map(|_| WebhookId::generate(seq())).collect();
    let big = event(None, hooks.iter().map(|w| pending(w, T0)).collect());
    let small = event(None, hooks[..1000].iter().map(|w| pending(w, T0)).collect());
    let result = enqueue(store, vec![big.clone(), small.clone()], T0).await;
    assert_eq!(
        result[0],
        Enqueued::Created {
            id: big.id.clone(),
            deliveries: 2500
        }
    );
    assert_eq!(
        result[1],
        Enqueued::Created {
            id: small.id.clone(),
            deliveries: 1000
        }
    );
    let of_event = |id: &EventId| DeliveryFilter {
        event_id: Some(id.clone()),
        ..Default::default()
    };
    let stored = store
        .list_deliveries(&of_event(&big.id), &page(10_000, None))
        .await
        .unwrap();
    assert_eq!(stored.len(), 2500);
    let distinct: HashSet<&WebhookId> = stored.iter().map(|d| &d.webhook_id).collect();
    assert_eq!(distinct.len(), 2500);
    let stored = store
        .list_deliveries(&of_event(&small.id), &page(10_000, None))
        .await
        .unwrap();
    assert_eq!(stored.len(), 1000);
    assert!(stored
        .iter()
        .all(|d| d.status == DeliveryStatus::Pending && d.attempts == 0));
}

// ---------------------------------------------------------------------------------------------
// Claims and outcomes
// ---------------------------------------------------------------------------------------------

pub async fn claims_respect_due_time_and_lane(store: &dyn Store) {
    let wh = WebhookId::generate(seq());
    let now_due = queue(store, &wh, T0).await;
    let later = queue(store, &wh, T0 + LEASE_MS).await;
    let c = claim(Lane::First, T0, 10);
    let got = claimed(store, &c).await;
    assert_eq!(got.iter().map(|d| &d.id).collect::<Vec<_>>(), [&now_due]);
    let leased = (DeliveryStatus::Delivering, 0, Some(T0 + LEASE_MS));
    assert_eq!(
        (got[0].status, got[0].attempts, got[0].next_attempt_at),
        leased
    );
    assert_eq!(
        delivery(store, &now_due).await,
        got[0],
        "the claim returns the row as stored"
    );
    assert!(
        claim_ids(store, &claim(Lane::First, T0, 10))
            .await
            .is_empty(),
        "leased"
    );

    record(store, &[answer(&c, &got[0], T0 + 1, retry_at(T0 + 5000))]).await;
    let first_lane = claim(Lane::First, T0 + 5000, 10);
    assert!(
        claim_ids(store, &first_lane).await.is_empty(),
        "a retry is not a first attempt"
    );
    let early = claim(Lane::Retry, T0 + 4999, 10);
    assert!(claim_ids(store, &early).await.is_empty(), "not due yet");
    let retried = claimed(store, &claim(Lane::Retry, T0 + 5000, 10)).await;
    let summary: Vec<(&DeliveryId, u32)> = retried.iter().map(|d| (&d.id, d.attempts)).collect();
    assert_eq!(summary, [(&now_due, 1)]);

    let retry_lane = claim(Lane::Retry, T0 + LEASE_MS, 10);
    assert!(
        claim_ids(store, &retry_lane).await.is_empty(),
        "a first attempt is not a retry"
    );
    let first_lane = claim(Lane::First, T0 + LEASE_MS, 10);
    assert_eq!(claim_ids(store, &first_lane).await, [later]);
}

pub async fn claims_take_the_oldest_due_first(store: &dyn Store) {
    let wh = WebhookId::generate(seq());
    let oldest = queue(store, &wh, T0 - 3000).await;
    let newest = queue(store, &wh, T0 - 1000).await;
    let middle = queue(store, &wh, T0 - 2000).await;
    queue(store, &wh, T0 + 1).await;
    let first = claim_ids(store, &claim(Lane::First, T0, 2)).await;
    assert_eq!(first, sorted(vec![oldest, middle]));
    assert_eq!(
        claim_ids(store, &claim(Lane::First, T0, 2)).await,
        vec![newest]
    );
    assert!(claim_ids(store, &claim(Lane::First, T0, 2))
        .await
        .is_empty());
}

pub async fn expired_leases_are_claimable_and_stale_outcomes_do_not_move(store: &dyn Store) {
    let wh = WebhookId::generate(seq());
    let id = queue(store, &wh, T0).await;
    let stale = claim(Lane::First, T0, 10);
    let first = claimed(store, &stale).await;
    assert_eq!(first.len(), 1);
    let before_expiry = claim(Lane::First, T0 + LEASE_MS - 1, 10);
    assert!(claim_ids(store, &before_expiry).await.is_empty());

    // The first worker crashed, say: its lease runs out and another worker takes the delivery.
    let fresh = claim(Lane::First, T0 + LEASE_MS, 10);
    let second = claimed(store, &fresh).await;
    assert_eq!(second.iter().map(|d| &d.id).collect::<Vec<_>>(), vec![&id]);
    assert_eq!(second[0].next_attempt_at, Some(T0 + 2 * LEASE_MS));

    record(store, &[answer(&stale, &first[0], T0 + LEASE_MS + 1, ok())]).await;
    let still_leased = (DeliveryStatus::Delivering, 0, Some(T0 + 2 * LEASE_MS));
    assert_eq!(
        state(store, &id).await,
        still_leased,
        "a stale lease does not move it"
    );
    assert_eq!(
        store.list_attempts(&id).await.unwrap().len(),
        1,
        "but the attempt is kept"
    );

    record(
        store,
        &[answer(&fresh, &second[0], T0 + LEASE_MS + 2, ok())],
    )
    .await;
    assert_eq!(
        state(store, &id).await,
        (DeliveryStatus::Succeeded, 1, None)
    );
    assert_eq!(store.list_attempts(&id).await.unwrap().len(), 2);
}

pub async fn caller_sent_deliveries_are_leased_to_the_caller(store: &dyn Store) {
    let wh = WebhookId::generate(seq());
    let leased = |lease: &str| NewDelivery {
        status: DeliveryStatus::Delivering,
        next_attempt_at: T0 + LEASE_MS,
        lease: Some(lease.into()),
        ..pending(&wh, T0)
    };
    let (sent, abandoned) = (leased("caller-1"), leased("caller-2"));
    enqueue(
        store,
        vec![event(None, vec![sent.clone(), abandoned.clone()])],
        T0,
    )
    .await;
    let d = delivery(store, &sent.id).await;
    assert_eq!(
        (d.status, d.next_attempt_at),
        (DeliveryStatus::Delivering, Some(T0 + LEASE_MS))
    );
    assert!(claim_ids(store, &claim(Lane::First, T0 + 1, 10))
        .await
        .is_empty());

    let caller = Claim {
        lease_token: "caller-1".into(),
        ..claim(Lane::First, T0, 1)
    };
    record(store, &[answer(&caller, &d, T0 + 1, ok())]).await;
    assert_eq!(
        delivery(store, &sent.id).await.status,
        DeliveryStatus::Succeeded
    );
    let expired = claim(Lane::First, T0 + LEASE_MS, 10);
    assert_eq!(claim_ids(store, &expired).await, vec![abandoned.id.clone()]);
}

pub async fn record_outcomes_moves_deliveries_and_keeps_attempts(store: &dyn Store) {
    let wh = WebhookId::generate(seq());
    for _ in 0..3 {
        queue(store, &wh, T0).await;
    }
    let c = claim(Lane::First, T0, 10);
    let got = claimed(store, &c).await;
    let (done, again, dead) = (&got[0], &got[1], &got[2]);
    let outcomes = [
        answer(&c, done, T0 + 1, ok()),
        answer(&c, again, T0 + 1, retry_at(T0 + 5000)),
        answer(&c, dead, T0 + 1, timed_out_for_good()),
    ];
    record(store, &outcomes).await;
    record(store, &[]).await;

    use DeliveryStatus::{Failed, Retrying, Succeeded};
    let after = |d: Delivery| (d.status, d.attempts, d.next_attempt_at, d.last_status_code);
    assert_eq!(
        after(delivery(store, &done.id).await),
        (Succeeded, 1, None, Some(200))
    );
    let retrying = (Retrying, 1, Some(T0 + 5000), Some(500));
    assert_eq!(after(delivery(store, &again.id).await), retrying);
    assert_eq!(
        after(delivery(store, &dead.id).await),
        (Failed, 1, None, None)
    );
    let errors = |d: Delivery| (d.last_error, d.updated_at);
    assert_eq!(errors(delivery(store, &done.id).await), (None, T0 + 43));
    let http_500 = (Some("HTTP 500".to_owned()), T0 + 43);
    assert_eq!(errors(delivery(store, &again.id).await), http_500);
    let timeout = (Some("timed out after 5s".to_owned()), T0 + 43);
    assert_eq!(errors(delivery(store, &dead.id).await), timeout);
    for (d, o) in [(again, &outcomes[1]), (dead, &outcomes[2])] {
        let kept = store.list_attempts(&d.id).await.unwrap();
        assert_eq!(
            kept,
            std::slice::from_ref(&o.attempt),
            "the attempt record is kept intact"
        );
    }
    second_attempts_are_counted(store, &again.id, &outcomes[1].attempt).await;
}

async fn second_attempts_are_counted(store: &dyn Store, id: &DeliveryId, first: &Attempt) {
    try_once(store, id, Lane::Retry, T0 + 5000, ok()).await;
    let d = delivery(store, id).await;
    let summary = (d.status, d.attempts, d.last_status_code, d.last_error);
    assert_eq!(summary, (DeliveryStatus::Succeeded, 2, Some(200), None));
    let attempts = store.list_attempts(id).await.unwrap();
    let numbers: Vec<u32> = attempts.iter().map(|a| a.attempt).collect();
    assert_eq!(numbers, vec![1, 2], "oldest first");
    assert_eq!(&attempts[0], first);
}

pub async fn failing_webhooks_are_disabled_after_the_window(store: &dyn Store) {
    let w = webhook("flaky");
    store.insert_webhook(&w).await.unwrap();
    let failing_since = || async { webhook_state(store, &w.id).await.failing_since };
    let d = queue(store, &w.id, T0).await;
    try_once(store, &d, Lane::First, T0, retry_at(T0 + 1000)).await;
    assert_eq!(
        failing_since().await,
        Some(T0 + 42),
        "the first failure starts the clock"
    );
    try_once(store, &d, Lane::Retry, T0 + 1000, retry_at(T0 + 2000)).await;
    assert_eq!(
        failing_since().await,
        Some(T0 + 42),
        "later failures keep its start"
    );
    try_once(store, &d, Lane::Retry, T0 + 2000, ok()).await;
    assert_eq!(failing_since().await, None, "a success stops the clock");
    failing_for_days_disables(store, &w).await;
}

pub async fn webhook_edits_keep_the_workers_failure_clock(store: &dyn Store) {
    let w = webhook("clock");
    store.insert_webhook(&w).await.unwrap();
    // What an API request read before the worker's first failure, and writes back later.
    let stale_read = webhook_state(store, &w.id).await;
    let d = queue(store, &w.id, T0).await;
    try_once(store, &d, Lane::First, T0, retry_at(T0 + 1000)).await;
    let started = Some(T0 + 42);
    assert_eq!(webhook_state(store, &w.id).await.failing_since, started);

    let edit = |read: &Webhook, f: &dyn Fn(&mut Webhook)| {
        let mut w = read.clone();
        w.failing_since = stale_read.failing_since;
        w.updated_at = read.updated_at + 1;
        f(&mut w);
        w
    };
    let read = webhook_state(store, &w.id).await;
    let renamed = edit(&read, &|w| w.spec.name = "clock-v2".into());
    assert_eq!(
        store.update_webhook(&renamed, &read).await.unwrap(),
        Written::Done
    );
    let after = webhook_state(store, &w.id).await;
    assert_eq!(after.spec.name, "clock-v2");
    assert_eq!(after.failing_since, started, "an edit keeps the clock");

    let disabled = edit(&after, &|w| w.active = false);
    assert_eq!(
        store.update_webhook(&disabled, &after).await.unwrap(),
        Written::Done
    );
    let after = webhook_state(store, &w.id).await;
    assert_eq!(after.failing_since, started, "disabling keeps the clock");

    let enabled = edit(&after, &|w| {
        w.active = true;
        w.failing_since = None;
    });
    assert_eq!(
        store.update_webhook(&enabled, &after).await.unwrap(),
        Written::Done
    );
    let after = webhook_state(store, &w.id).await;
    assert_eq!(after.failing_since, None, "re-enabling starts afresh");
}

/// A batch that holds two outcomes for one delivery and lease (a send reported twice): the
/// first wins, as when outcomes were applied one by one; both attempts are kept.
pub async fn an_outcome_repeated_in_a_batch_moves_its_delivery_once(store: &dyn Store) {
    let w = webhook("twice");
    store.insert_webhook(&w).await.unwrap();
    let id = queue(store, &w.id, T0).await;
    let c = claim(Lane::First, T0, 10);
    let d = claimed(store, &c).await.remove(0);
    let first = answer(&c, &d, T0, timed_out_for_good());
    let second = answer(&c, &d, T0, ok());
    record(store, &[first.clone(), second, first]).await;
    let stored = delivery(store, &id).await;
    assert_eq!(
        stored.status,
        DeliveryStatus::Failed,
        "the first outcome wins"
    );
    assert_eq!(stored.last_error.as_deref(), Some("timed out after 5s"));
    assert_eq!(store.list_attempts(&id).await.unwrap().len(), 2);
}

/// One batch across webhooks: each webhook's effects apply in the batch's order.
pub async fn webhook_effects_batch_across_webhooks_in_order_within_one(store: &dyn Store) {
    let mut hooks = Vec::new();
    for name in ["a", "b", "c", "d"] {
        let mut w = webhook(name);
        w.failing_since = (name != "d").then_some(T0 - 10);
        store.insert_webhook(&w).await.unwrap();
        hooks.push(w.id);
    }
    let mut ids = Vec::new();
    for i in [0, 1, 2, 2, 3, 3] {
        ids.push(queue(store, &hooks[i], T0).await);
    }
    let c = claim(Lane::First, T0, 100);
    let all = claimed(store, &c).await;
    let by_id = |id: &DeliveryId| all.iter().find(|d| &d.id == id).unwrap();
    let failing = || (Some(200), NextState::Succeeded, WebhookEffect::Failing);
    let answers = [ok(), ok(), ok(), failing(), failing(), ok()];
    let outcomes: Vec<Outcome> = ids
        .iter()
        .zip(answers)
        .map(|(id, how)| answer(&c, by_id(id), T0, how))
        .collect();
    record(store, &outcomes).await;
    let mut failing_since = Vec::new();
    for id in &hooks {
        failing_since.push(webhook_state(store, id).await.failing_since);
    }
    assert_eq!(
        failing_since,
        [None, None, Some(T0 + 42), None],
        "healthy clears; c fails after its success; d is healthy after failing"
    );
}

/// 600 webhooks, each failing, answer 2xx in one batch: more than a statement's list of ids
/// (500 on SQLite), so the clearing takes statements of its own; every clock stops and every
/// delivery moves.
pub async fn a_batch_clears_the_failure_clock_of_more_webhooks_than_one_list_holds(
    store: &dyn Store,
) {
    let mut hooks = Vec::new();
    for i in 0..600 {
        let mut w = webhook(&format!("h{i}"));
        w.failing_since = Some(T0 - 10);
        store.insert_webhook(&w).await.unwrap();
        hooks.push(w.id);
    }
    let e = event(None, hooks.iter().map(|w| pending(w, T0)).collect());
    enqueue(store, vec![e], T0).await;
    let c = claim(Lane::First, T0, 1_000);
    let all = claimed(store, &c).await;
    assert_eq!(all.len(), 600);
    let outcomes: Vec<Outcome> = all.iter().map(|d| answer(&c, d, T0, ok())).collect();
    record(store, &outcomes).await;
    for id in &hooks {
        assert_eq!(webhook_state(store, id).await.failing_since, None, "{id}");
    }
    for d in &all {
        assert_eq!(
            delivery(store, &d.id).await.status,
            DeliveryStatus::Succeeded
        );
    }
}

/// Fails `w` for six days; the failure window is five.
async fn failing_for_days_disables(store: &dyn Store, w: &Webhook) {
    let d = queue(store, &w.id, T0 + 3000).await;
    try_once(store, &d, Lane::First, T0 + 3000, retry_at(T0 + 6 * DAY_MS)).await;
    let started = T0 + 3042;
    let failing = webhook_state(store, &w.id).await;
    assert_eq!(
        (failing.failing_since, failing.active),
        (Some(started), true),
        "in the window"
    );
    let version = store.webhooks_version().await.unwrap();
    try_once(
        store,
        &d,
        Lane::Retry,
        T0 + 6 * DAY_MS,
        timed_out_for_good(),
    )
    .await;

    let after = webhook_state(store, &w.id).await;
    let reason = format!(
        "failing since {} with no successful delivery",
        rfc3339(started)
    );
    assert_eq!((after.active, after.disabled_reason), (false, Some(reason)));
    let changed = store.webhooks_version().await.unwrap() != version;
    assert!(changed, "disabling changes the version");
    assert!(store.active_webhooks().await.unwrap().is_empty());
    assert_eq!(delivery(store, &d).await.status, DeliveryStatus::Failed);
}

pub async fn disable_effect_turns_the_webhook_off(store: &dyn Store) {
    let w = webhook("gone");
    store.insert_webhook(&w).await.unwrap();
    let version = store.webhooks_version().await.unwrap();
    let d = queue(store, &w.id, T0).await;
    let reason = "the endpoint answered 410 Gone".to_owned();
    let gone = (
        Some(410),
        NextState::Failed,
        WebhookEffect::Disable(reason.clone()),
    );
    try_once(store, &d, Lane::First, T0, gone).await;
    let after = webhook_state(store, &w.id).await;
    assert_eq!((after.active, after.disabled_reason), (false, Some(reason)));
    assert_eq!(after.spec, w.spec, "the configuration is untouched");
    assert_ne!(store.webhooks_version().await.unwrap(), version);
    assert_eq!(delivery(store, &d).await.status, DeliveryStatus::Failed);
}

pub async fn recover_failed_requeues_failed_deliveries_since(store: &dyn Store) {
    let wh = WebhookId::generate(seq());
    let old = queue(store, &wh, T0).await;
    let recent = queue(store, &wh, T0 + 5).await;
    let c = claim(Lane::First, T0 + 5, 10);
    let got = claimed(store, &c).await;
    assert_eq!(got.len(), 2);
    let failed = (Some(500), NextState::Failed, WebhookEffect::Failing);
    let outcomes: Vec<_> = got
        .iter()
        .map(|d| answer(&c, d, T0 + 6, failed.clone()))
        .collect();
    record(store, &outcomes).await;
    assert_eq!(store.recover_failed(&wh, T0 + 5, T0 + 10).await.unwrap(), 1);
    assert_eq!(
        state(store, &recent).await,
        (DeliveryStatus::Retrying, 1, Some(T0 + 10))
    );
    assert_eq!(
        delivery(store, &old).await.status,
        DeliveryStatus::Failed,
        "older stays failed"
    );
    let other = WebhookId::generate(seq());
    assert_eq!(store.recover_failed(&other, 0, T0 + 10).await.unwrap(), 0);
}

pub async fn retry_delivery_now_makes_deliveries_due(store: &dyn Store) {
    let wh = WebhookId::generate(seq());
    let missing = DeliveryId::generate(seq());
    assert_eq!(store.retry_delivery_now(&missing, T0).await.unwrap(), None);
    let id = queue(store, &wh, T0 + DAY_MS).await;
    assert_eq!(store.retry_delivery_now(&id, T0).await.unwrap(), Some(true));
    assert_eq!(
        state(store, &id).await,
        (DeliveryStatus::Pending, 0, Some(T0))
    );
    assert_eq!(delivery(store, &id).await.updated_at, T0);

    let c = claim(Lane::First, T0, 10);
    let got = claimed(store, &c).await;
    assert_eq!(got.len(), 1);
    let in_flight = store.retry_delivery_now(&id, T0 + 1).await.unwrap();
    assert_eq!(in_flight, Some(false), "a delivery in flight is left alone");
    assert_eq!(
        delivery(store, &id).await.status,
        DeliveryStatus::Delivering
    );

    let rejected = (Some(400), NextState::Failed, WebhookEffect::Failing);
    record(store, &[answer(&c, &got[0], T0 + 2, rejected)]).await;
    assert_eq!(
        store.retry_delivery_now(&id, T0 + 100).await.unwrap(),
        Some(true)
    );
    assert_eq!(
        state(store, &id).await,
        (DeliveryStatus::Retrying, 1, Some(T0 + 100))
    );
    assert!(claim_ids(store, &claim(Lane::First, T0 + 100, 10))
        .await
        .is_empty());
    assert_eq!(
        claim_ids(store, &claim(Lane::Retry, T0 + 100, 10)).await,
        vec![id]
    );
}

pub async fn list_deliveries_filters_and_pages(store: &dyn Store) {
    let (w1, w2) = (WebhookId::generate(seq()), WebhookId::generate(seq()));
    let e1 = event(None, vec![pending(&w1, T0 + DAY_MS), pending(&w2, T0)]);
    let e2 = event(None, vec![pending(&w1, T0 + DAY_MS)]);
    let [d1, d2, d3] =
        [&e1.deliveries[0], &e1.deliveries[1], &e2.deliveries[0]].map(|d| d.id.clone());
    enqueue(store, vec![e1.clone(), e2.clone()], T0).await;
    try_once(store, &d2, Lane::First, T0, ok()).await;

    let list = |w: Option<&WebhookId>, e: Option<&EventId>, s: Option<DeliveryStatus>| {
        let filter = DeliveryFilter {
            webhook_id: w.cloned(),
            event_id: e.cloned(),
            status: s,
        };
        async move {
            let found = store
                .list_deliveries(&filter, &page(10, None))
                .await
                .unwrap();
            found.into_iter().map(|d| d.id).collect::<Vec<_>>()
        }
    };
    use DeliveryStatus::{Pending, Succeeded};
    assert_eq!(list(Some(&w1), None, None).await, [d3.clone(), d1.clone()]);
    assert_eq!(
        list(None, Some(&e1.id), None).await,
        [d2.clone(), d1.clone()]
    );
    assert_eq!(
        list(None, None, Some(Succeeded)).await,
        std::slice::from_ref(&d2)
    );
    assert_eq!(
        list(Some(&w1), None, Some(Pending)).await,
        [d3.clone(), d1.clone()]
    );
    assert!(list(Some(&w2), None, Some(Pending)).await.is_empty());
    assert_eq!(
        list(Some(&w1), Some(&e2.id), None).await,
        std::slice::from_ref(&d3)
    );
    deliveries_page_newest_first(store, [d1, d2, d3], &w1).await;
}

/// `d` in creation order: d1 and d3 to `w1`, d2 elsewhere.
async fn deliveries_page_newest_first(store: &dyn Store, d: [DeliveryId; 3], w1: &WebhookId) {
    let list = |webhook_id: Option<WebhookId>, limit: u32, before: Option<&DeliveryId>| {
        let p = page(limit, before.map(DeliveryId::as_str));
        let filter = DeliveryFilter {
            webhook_id,
            ..Default::default()
        };
        async move {
            let found = store.list_deliveries(&filter, &p).await.unwrap();
            found.into_iter().map(|d| d.id).collect::<Vec<_>>()
        }
    };
    let [d1, d2, d3] = d;
    assert_eq!(list(None, 2, None).await, [d3.clone(), d2.clone()]);
    assert_eq!(list(None, 2, Some(&d2)).await, std::slice::from_ref(&d1));
    assert!(list(None, 2, Some(&d1)).await.is_empty());
    assert_eq!(
        list(Some(w1.clone()), 1, Some(&d3)).await,
        std::slice::from_ref(&d1)
    );
}

pub async fn webhook_stats_count_the_window_and_show_the_newest(store: &dyn Store) {
    let [wh, old_only, none] = [(); 3].map(|()| WebhookId::generate(seq()));
    let since = T0 + DAY_MS;
    // As in production, a delivery's id is made when it is created (ids sort by creation time,
    // which the window relies on).
    let queue = queue_created;
    let before = queue(store, &wh, T0).await;
    try_once(store, &before, Lane::First, T0, timed_out_for_good()).await;
    let old = queue(store, &old_only, T0 + 1).await;
    try_once(store, &old, Lane::First, T0 + 1, ok()).await;
    // In the window (from its first millisecond on): two succeeded, one failed, one retrying
    // and the newest still pending.
    for at in [since, since + 1] {
        let d = queue(store, &wh, at).await;
        try_once(store, &d, Lane::First, at, ok()).await;
    }
    let dead = queue(store, &wh, since + 2).await;
    try_once(store, &dead, Lane::First, since + 2, timed_out_for_good()).await;
    let again = queue(store, &wh, since + 3).await;
    try_once(store, &again, Lane::First, since + 3, retry_at(since + 999)).await;
    queue(store, &wh, since + 4).await;

    let got = store
        .webhook_stats(&[none.clone(), wh.clone(), old_only.clone()], since)
        .await
        .expect("webhook_stats");
    let expected = [
        WebhookStats::empty(none),
        WebhookStats {
            webhook_id: wh.clone(),
            last_status: Some(DeliveryStatus::Pending),
            last_at: Some(since + 4),
            succeeded: 2,
            failed: 1,
            pending: 2,
        },
        WebhookStats {
            webhook_id: old_only,
            last_status: Some(DeliveryStatus::Succeeded),
            last_at: Some(T0 + 1 + 42),
            ..WebhookStats::empty(wh.clone())
        },
    ];
    assert_eq!(got, expected, "one entry per id, in the order asked");
    let wider = store.webhook_stats(&[wh], T0).await.unwrap();
    assert_eq!(
        (wider[0].succeeded, wider[0].failed),
        (2, 2),
        "a wider window"
    );
    assert_eq!(store.webhook_stats(&[], T0).await.unwrap(), []);
}

pub async fn attempt_series_count_each_bucket_of_the_window(store: &dyn Store) {
    let [a, b] = [(); 2].map(|()| WebhookId::generate(seq()));
    const MIN: i64 = 60_000;
    // Attempts are recorded whatever their lease says; each is made by hand here.
    let tried = |webhook: WebhookId, at: i64, status: Option<u16>, ms: u64| async move {
        let d = delivery(store, &queue(store, &webhook, at).await).await;
        let mut attempt = attempt(&d, 1, status, at);
        attempt.duration_ms = ms;
        attempt
    };
    let mut attempts = vec![
        tried(a.clone(), T0 - 1, Some(200), 1).await,
        tried(a.clone(), T0, Some(200), 10).await,
        tried(a.clone(), T0 + 1, Some(204), 30).await,
        tried(a.clone(), T0 + MIN - 1, Some(500), 100).await,
        tried(b.clone(), T0 + MIN, None, 5000).await,
        tried(b.clone(), T0 + 2 * MIN, None, 0).await,
        tried(a.clone(), T0 + 3 * MIN, Some(200), 1).await,
    ];
    // Nothing was sent: a failure without a latency.
    attempts[5].error_kind = Some(ErrorKind::Gone);
    let outcomes: Vec<Outcome> = attempts
        .into_iter()
        .map(|attempt| Outcome {
            lease_token: "no lease".into(),
            next: NextState::Failed,
            webhook: WebhookEffect::Unchanged,
            disable_if_failing_since_before: 0,
            circuit: flow::Signal::Neutral,
            circuit_policy: CIRCUIT,
            now_ms: attempt.started_at,
            attempt,
        })
        .collect();
    record(store, &outcomes).await;

    let series = |webhook_id: Option<WebhookId>| async move {
        let window = AttemptWindow {
            from_ms: T0,
            bucket_ms: MIN,
            buckets: 3,
            webhook_id,
        };
        store.attempt_series(&window).await.expect("attempt_series")
    };
    let bucket = |i: i64, [attempts, succeeded]: [u64; 2], p50: Option<u64>, p95: Option<u64>| {
        AttemptBucket {
            start_ms: T0 + i * MIN,
            attempts,
            succeeded,
            failed: attempts - succeeded,
            latency_p50_ms: p50,
            latency_p95_ms: p95,
        }
    };
    let empty = |i| bucket(i, [0, 0], None, None);
    assert_eq!(
        series(None).await,
        [
            bucket(0, [3, 2], Some(30), Some(100)),
            bucket(1, [1, 0], Some(5000), Some(5000)),
            bucket(2, [1, 0], None, None),
        ],
        "every bucket, oldest first; the window's edges are [from, to)"
    );
    assert_eq!(
        series(Some(a)).await,
        [bucket(0, [3, 2], Some(30), Some(100)), empty(1), empty(2)]
    );
    assert_eq!(
        series(Some(b)).await,
        [
            empty(0),
            bucket(1, [1, 0], Some(5000), Some(5000)),
            bucket(2, [1, 0], None, None)
        ]
    );
    let unknown = WebhookId::generate(seq());
    assert_eq!(series(Some(unknown)).await, [empty(0), empty(1), empty(2)]);
}

pub async fn claims_say_when_to_look_again(store: &dyn Store) {
    let next_at = |now| async move {
        store
            .claim_due_deliveries(&claim(Lane::First, now, 10))
            .await
            .expect("claim")
    };
    let nothing = next_at(T0).await;
    assert!(nothing.deliveries.is_empty());
    assert_eq!(nothing.next_at, None, "nothing queued");
    let wh = WebhookId::generate(seq());
    let later = queue(store, &wh, T0 + 500).await;
    let sooner = queue(store, &wh, T0 + 100).await;
    assert_eq!(next_at(T0).await.next_at, Some(T0 + 100));
    assert_eq!(store.queue_depth().await.unwrap(), 2);

    let c = claim(Lane::First, T0 + 100, 10);
    let got = claimed(store, &c).await;
    assert_eq!(got.iter().map(|d| &d.id).collect::<Vec<_>>(), vec![&sooner]);
    assert_eq!(next_at(T0 + 100).await.next_at, Some(T0 + 500));
    record(store, &[answer(&c, &got[0], T0 + 101, ok())]).await;

    try_once(store, &later, Lane::First, T0 + 500, retry_at(T0 + 9000)).await;
    assert_eq!(
        next_at(T0 + 500).await.next_at,
        None,
        "no first attempt left"
    );
    let retry = store
        .claim_due_deliveries(&claim(Lane::Retry, T0 + 500, 10))
        .await
        .unwrap();
    assert_eq!(
        retry.next_at,
        Some(T0 + 9000),
        "retries count in their lane"
    );
    try_once(store, &later, Lane::Retry, T0 + 9000, ok()).await;
    assert_eq!(store.queue_depth().await.unwrap(), 0);
}

/// Inserts a webhook with these limits.
async fn limited(store: &dyn Store, max_in_flight: Option<u32>, rate: Option<u32>) -> WebhookId {
    let mut w = webhook("limited");
    w.spec.max_in_flight = max_in_flight;
    w.spec.rate_limit_per_second = rate;
    store.insert_webhook(&w).await.expect("insert_webhook");
    w.id
}

/// Queues `n` deliveries to `webhook`, due at `due`, in one event.
async fn queue_many(store: &dyn Store, webhook: &WebhookId, n: usize, due: i64) -> Vec<DeliveryId> {
    let deliveries: Vec<NewDelivery> = (0..n).map(|_| pending(webhook, due)).collect();
    let ids = deliveries.iter().map(|d| d.id.clone()).collect();
    enqueue(store, vec![event(None, deliveries)], due).await;
    ids
}

fn per_webhook(claimed: &[Delivery]) -> BTreeMap<WebhookId, usize> {
    let mut counts = BTreeMap::new();
    for d in claimed {
        *counts.entry(d.webhook_id.clone()).or_default() += 1;
    }
    counts
}

pub async fn claims_hold_each_webhooks_in_flight_cap(store: &dyn Store) {
    let capped = limited(store, Some(2), None).await;
    let default_cap = limited(store, None, None).await;
    let free = limited(store, Some(50), None).await;
    // The capped webhook's backlog is older than everything else.
    queue_many(store, &capped, 20, T0 - 5000).await;
    queue_many(store, &default_cap, 10, T0 - 10).await;
    queue_many(store, &free, 3, T0 - 10).await;

    let c = Claim {
        default_max_in_flight: 4,
        share: crate::share::Share::everything(),
        ..claim(Lane::First, T0, 256)
    };
    let first = claimed(store, &c).await;
    let counts = per_webhook(&first);
    assert_eq!(
        counts[&capped], 2,
        "the cap of the webhook with the oldest backlog"
    );
    assert_eq!(counts[&default_cap], 4, "the server's default cap");
    assert_eq!(counts[&free], 3, "all that is due");

    let again = Claim {
        default_max_in_flight: 4,
        share: crate::share::Share::everything(),
        ..claim(Lane::First, T0 + 1, 256)
    };
    let second = store.claim_due_deliveries(&again).await.unwrap();
    assert!(
        second.deliveries.is_empty(),
        "every webhook is at its cap or done"
    );
    assert_eq!(
        second.next_at,
        Some(T0 + LEASE_MS),
        "capped webhooks wait for a finished delivery; leased ones fall due when leases end"
    );

    let done = first.iter().find(|d| d.webhook_id == capped).unwrap();
    record(store, &[answer(&c, done, T0 + 2, ok())]).await;
    let third = claimed(
        store,
        &Claim {
            default_max_in_flight: 4,
            share: crate::share::Share::everything(),
            lease_token: "third".into(),
            ..claim(Lane::First, T0 + 3, 256)
        },
    )
    .await;
    assert_eq!(per_webhook(&third), BTreeMap::from([(capped.clone(), 1)]));

    // Retries count against the same cap: one of the capped webhook's three in flight fails
    // and is retried at once; with it in flight again the first lane gets none.
    let third = third[0].clone();
    let c3 = Claim {
        default_max_in_flight: 4,
        share: crate::share::Share::everything(),
        lease_token: "third".into(),
        ..claim(Lane::First, T0 + 3, 256)
    };
    record(store, &[answer(&c3, &third, T0 + 4, retry_at(T0 + 4))]).await;
    let retries = Claim {
        default_max_in_flight: 4,
        share: crate::share::Share::everything(),
        ..claim(Lane::Retry, T0 + 5, 256)
    };
    assert_eq!(
        claimed(store, &retries).await.len(),
        1,
        "the retry takes the free slot"
    );
    let firsts = Claim {
        default_max_in_flight: 4,
        share: crate::share::Share::everything(),
        ..claim(Lane::First, T0 + 5, 256)
    };
    assert!(
        claimed(store, &firsts).await.is_empty(),
        "a retry in flight counts against the cap of first attempts"
    );
    // Expired leases are no longer in flight.
    let after_leases = Claim {
        default_max_in_flight: 4,
        share: crate::share::Share::everything(),
        ..claim(Lane::First, T0 + LEASE_MS + 10, 256)
    };
    let fourth = per_webhook(&claimed(store, &after_leases).await);
    assert_eq!(fourth[&capped], 2, "expired leases are no longer in flight");
}

pub async fn a_publish_that_claims_leases_within_each_webhooks_limits(store: &dyn Store) {
    let capped = limited(store, Some(2), None).await;
    let free = limited(store, None, None).await;
    let older = queue(store, &free, T0 - 100).await;
    let mut new: Vec<NewDelivery> = (0..3).map(|_| pending(&capped, T0)).collect();
    new.push(pending(&free, T0));
    let new_ids: Vec<DeliveryId> = new.iter().map(|d| d.id.clone()).collect();
    let published = event(None, new);
    let c = claim(Lane::First, T0, 3);
    let (results, taken) = store
        .enqueue_events_and_claim(std::slice::from_ref(&published), T0, &c)
        .await
        .expect("enqueue_events_and_claim");
    assert_eq!(
        results,
        [Enqueued::Created {
            id: published.id.clone(),
            deliveries: 4
        }]
    );
    let Some(taken) = taken else {
        // A store that claims nothing in a publish leaves everything to the lanes.
        let all = claim_ids(store, &claim(Lane::First, T0, 10)).await;
        assert_eq!(
            all.len(),
            3,
            "the older delivery and the capped webhook's cap"
        );
        return;
    };
    let mut taken = taken.deliveries;
    taken.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(
        per_webhook(&taken),
        BTreeMap::from([(capped.clone(), 2), (free.clone(), 1)]),
        "the claim's limit, within the capped webhook's cap"
    );
    assert!(
        taken.iter().any(|d| d.id == older),
        "the free webhook's oldest delivery goes first, not the one just published"
    );
    for d in &taken {
        assert_eq!(d.status, DeliveryStatus::Delivering);
        assert_eq!(d.attempts, 0);
        assert_eq!(
            state(store, &d.id).await,
            (DeliveryStatus::Delivering, 0, Some(T0 + LEASE_MS)),
            "leased when the publish committed"
        );
    }
    let waiting: Vec<&DeliveryId> = new_ids
        .iter()
        .filter(|id| !taken.iter().any(|d| &d.id == *id))
        .collect();
    assert_eq!(waiting.len(), 2);
    for id in &waiting {
        assert_eq!(state(store, id).await.0, DeliveryStatus::Pending);
    }
    // The lanes find only what the publish left, within the cap.
    let rest = claimed(store, &claim(Lane::First, T0 + 1, 10)).await;
    assert_eq!(per_webhook(&rest), BTreeMap::from([(free.clone(), 1)]));
    // The lease is the publish's claim's: an outcome under its token moves the delivery.
    let done = taken.iter().find(|d| d.webhook_id == capped).unwrap();
    record(store, &[answer(&c, done, T0 + 2, ok())]).await;
    assert_eq!(state(store, &done.id).await.0, DeliveryStatus::Succeeded);
    let after = claimed(store, &claim(Lane::First, T0 + 3, 10)).await;
    assert_eq!(per_webhook(&after), BTreeMap::from([(capped.clone(), 1)]));
}

pub async fn a_publish_without_older_work_leases_round_robin_within_the_caps(store: &dyn Store) {
    let capped = limited(store, Some(1), None).await;
    let (a, b) = (
        limited(store, None, None).await,
        limited(store, None, None).await,
    );
    // Already in flight for `a` (leased by a claim earlier): it counts against nothing here.
    let earlier = queue(store, &a, T0 - 100).await;
    assert_eq!(
        claim_ids(store, &claim(Lane::First, T0 - 50, 10)).await,
        [earlier]
    );
    let mut new: Vec<NewDelivery> = (0..3).map(|_| pending(&capped, T0)).collect();
    new.extend((0..3).map(|_| pending(&a, T0)));
    new.push(pending(&b, T0));
    let published = event(None, new);
    let c = claim(Lane::First, T0, 4);
    let (_, taken) = store
        .enqueue_events_and_claim(std::slice::from_ref(&published), T0, &c)
        .await
        .expect("enqueue_events_and_claim");
    let Some(taken) = taken else {
        return; // A store that claims nothing in a publish: the test above covers it.
    };
    assert_eq!(
        per_webhook(&taken.deliveries),
        BTreeMap::from([(capped.clone(), 1), (a.clone(), 2), (b.clone(), 1)]),
        "one round each, then `a` again; the capped webhook at its cap"
    );
    for d in &taken.deliveries {
        assert_eq!(
            state(store, &d.id).await,
            (DeliveryStatus::Delivering, 0, Some(T0 + LEASE_MS)),
            "leased when the publish committed"
        );
    }
    let rest = claimed(store, &claim(Lane::First, T0 + 1, 10)).await;
    assert_eq!(
        per_webhook(&rest),
        BTreeMap::from([(a.clone(), 1)]),
        "the lanes find what the publish left, the capped webhook's waiting"
    );
}

pub async fn claims_go_round_robin_across_webhooks(store: &dyn Store) {
    let hooks = [
        limited(store, None, None).await,
        limited(store, None, None).await,
        limited(store, None, None).await,
    ];
    // The last-made webhook (the highest id) has the oldest backlog: a turn goes by age, not id.
    for (i, wh) in hooks.iter().enumerate() {
        queue_many(store, wh, 5, T0 - 100 * (i as i64 + 1)).await;
    }
    let got = claimed(store, &claim(Lane::First, T0, 7)).await;
    let counts: Vec<usize> = hooks.iter().map(|h| per_webhook(&got)[h]).collect();
    assert_eq!(counts.iter().sum::<usize>(), 7);
    assert!(
        counts.iter().all(|&n| n == 2 || n == 3),
        "each webhook gets its turn: {counts:?}"
    );
    assert_eq!(counts[2], 3, "the oldest webhook's delivery goes first");
    let one = claimed(store, &claim(Lane::First, T0, 1)).await;
    assert_eq!(
        one[0].webhook_id, hooks[2],
        "a claim of one takes the oldest"
    );
}

pub async fn rate_limited_webhooks_wait_their_turn(store: &dyn Store) {
    let wh = limited(store, None, Some(10)).await;
    let ids = queue_many(store, &wh, 30, T0 - 1000).await;
    let mut starts = Vec::new();
    let mut now = T0;
    while now < T0 + 2000 {
        let got = store
            .claim_due_deliveries(&claim(Lane::First, now, 100))
            .await
            .unwrap();
        starts.extend(std::iter::repeat_n(now, got.deliveries.len()));
        if got.deliveries.is_empty() {
            let at = got.next_at.expect("a rate-limited backlog says when");
            assert!(at > now, "next_at {at} is after {now}");
        }
        now += 7;
    }
    for (i, &t) in starts.iter().enumerate() {
        let in_window = starts[i..].iter().take_while(|&&s| s < t + 1000).count();
        assert!(
            in_window <= 11,
            "{in_window} requests in the second from {t}"
        );
    }
    assert!(
        starts.len() >= 19,
        "the rate is used: {} in 2 s",
        starts.len()
    );
    let pending = ids.len() - starts.len();
    let waiting = DeliveryFilter {
        webhook_id: Some(wh),
        status: Some(DeliveryStatus::Pending),
        ..Default::default()
    };
    let left = store
        .list_deliveries(&waiting, &page(100, None))
        .await
        .unwrap();
    assert_eq!(left.len(), pending, "the rest wait, unattempted");
    assert!(left.iter().all(|d| d.attempts == 0));
}

pub async fn open_circuits_hold_deliveries_until_a_probe_closes_them(store: &dyn Store) {
    let wh = limited(store, None, None).await;
    queue_many(store, &wh, 10, T0).await;
    let c = claim(Lane::First, T0, 3);
    let sent = claimed(store, &c).await;
    let timeouts: Vec<Outcome> = sent
        .iter()
        .map(|d| {
            answer(
                &c,
                d,
                T0 + 100,
                (
                    None,
                    NextState::Retry { at_ms: T0 + 200 },
                    WebhookEffect::Failing,
                ),
            )
        })
        .collect();
    record(store, &timeouts).await;
    let w = webhook_state(store, &wh).await;
    assert_eq!(w.circuit.consecutive_failures, 3);
    let until = T0 + 142 + 10_000;
    assert_eq!(w.circuit.state(T0 + 142), CircuitState::Open { until });

    for lane in [Lane::First, Lane::Retry] {
        let held = store
            .claim_due_deliveries(&claim(lane, T0 + 5000, 100))
            .await
            .unwrap();
        assert!(
            held.deliveries.is_empty(),
            "{lane:?}: the circuit holds them"
        );
        assert_eq!(held.next_at, Some(until));
    }
    let queued = DeliveryFilter {
        webhook_id: Some(wh.clone()),
        status: Some(DeliveryStatus::Pending),
        ..Default::default()
    };
    let waiting = store
        .list_deliveries(&queued, &page(100, None))
        .await
        .unwrap();
    assert_eq!(waiting.len(), 7);
    assert!(
        waiting.iter().all(|d| d.attempts == 0),
        "waiting is not attempting"
    );

    let probe_claim = claim(Lane::Retry, until, 100);
    let probe = claimed(store, &probe_claim).await;
    assert_eq!(probe.len(), 1, "half open: one probe");
    assert!(claimed(store, &claim(Lane::First, until, 100))
        .await
        .is_empty());
    record(store, &[answer(&probe_claim, &probe[0], until + 1, ok())]).await;
    let w = webhook_state(store, &wh).await;
    assert_eq!(w.circuit, Circuit::default(), "the probe closed it");
    assert_eq!(
        claimed(store, &claim(Lane::First, until + 100, 100))
            .await
            .len(),
        7
    );
}

pub async fn a_failed_probe_reopens_the_circuit_for_longer(store: &dyn Store) {
    let wh = limited(store, None, None).await;
    queue_many(store, &wh, 5, T0).await;
    let c = claim(Lane::First, T0, 3);
    let sent = claimed(store, &c).await;
    let fail = |c: &Claim, d: &Delivery, at| {
        answer(
            c,
            d,
            at,
            (
                Some(503),
                NextState::Retry { at_ms: at + 1 },
                WebhookEffect::Failing,
            ),
        )
    };
    let outcomes: Vec<Outcome> = sent.iter().map(|d| fail(&c, d, T0)).collect();
    record(store, &outcomes).await;
    let until = T0 + 42 + 10_000;
    let probe_claim = claim(Lane::First, until, 100);
    let probe = claimed(store, &probe_claim).await;
    assert_eq!(probe.len(), 1);
    record(store, &[fail(&probe_claim, &probe[0], until)]).await;
    let w = webhook_state(store, &wh).await;
    assert_eq!(w.circuit.opens, 2);
    assert_eq!(
        w.circuit.state(until + 42),
        CircuitState::Open {
            until: until + 42 + 20_000
        },
        "the cool-down doubled"
    );
}

pub async fn an_update_closes_the_circuit_and_disabled_webhooks_have_no_limits(store: &dyn Store) {
    let wh = limited(store, Some(4), None).await;
    queue_many(store, &wh, 10, T0).await;
    let c = claim(Lane::First, T0, 10);
    let sent = claimed(store, &c).await;
    assert_eq!(sent.len(), 4, "the cap of four");
    let timeouts: Vec<Outcome> = sent
        .iter()
        .take(3)
        .map(|d| answer(&c, d, T0, timed_out_for_good()))
        .collect();
    record(store, &timeouts).await;
    let open = webhook_state(store, &wh).await;
    assert!(matches!(
        open.circuit.state(T0 + 100),
        CircuitState::Open { .. }
    ));
    assert!(claimed(store, &claim(Lane::First, T0 + 100, 10))
        .await
        .is_empty());

    // An update (the owner fixes the URL) closes the circuit.
    let mut fixed = open.clone();
    fixed.spec.url = "https://example.com/fixed".into();
    fixed.updated_at = T0 + 200;
    assert_eq!(
        store.update_webhook(&fixed, &open).await.unwrap(),
        Written::Done
    );
    let stored = webhook_state(store, &wh).await;
    assert_eq!(
        stored.circuit,
        Circuit::default(),
        "an update closes the circuit"
    );

    // Disabled, and its circuit opened again by a late failure: its deliveries are claimed
    // past the circuit and the cap, for the worker to fail unsent.
    let mut off = stored.clone();
    off.active = false;
    off.updated_at = T0 + 300;
    assert_eq!(
        store.update_webhook(&off, &stored).await.unwrap(),
        Written::Done
    );
    let c2 = claim(Lane::First, T0 + 400, 2);
    let two = claimed(store, &c2).await;
    let late: Vec<Outcome> = [&sent[3]]
        .into_iter()
        .chain(&two)
        .map(|d| {
            let c = if d.id == sent[3].id { &c } else { &c2 };
            answer(c, d, T0 + 400, timed_out_for_good())
        })
        .collect();
    record(store, &late).await;
    let w = webhook_state(store, &wh).await;
    assert!(
        matches!(w.circuit.state(T0 + 500), CircuitState::Open { .. }),
        "{:?}",
        w.circuit
    );
    let past = claimed(store, &claim(Lane::First, T0 + 500, 10)).await;
    assert_eq!(
        past.len(),
        4,
        "a disabled webhook's deliveries ignore its circuit and cap"
    );
}

pub async fn prune_removes_old_finished_rows_only(store: &dyn Store) {
    let wh = WebhookId::generate(seq());
    let mixed = event(
        None,
        vec![pending(&wh, T0), pending(&wh, T0 + 100 * DAY_MS)],
    );
    let failed = event(None, vec![pending(&wh, T0 + 1)]);
    let [done, waiting, dead] = [
        &mixed.deliveries[0],
        &mixed.deliveries[1],
        &failed.deliveries[0],
    ]
    .map(|d| d.id.clone());
    enqueue(store, vec![mixed.clone(), failed.clone()], T0).await;
    try_once(store, &done, Lane::First, T0, ok()).await;
    try_once(store, &dead, Lane::First, T0 + 1, timed_out_for_good()).await;
    let recent_at = T0 + 10 * DAY_MS;
    let recent = queue(store, &wh, recent_at).await;
    try_once(store, &recent, Lane::First, recent_at, ok()).await;

    // Old and finished: `done` and `dead` with an attempt each, and the event left empty.
    assert_eq!(store.prune(T0 + DAY_MS).await.unwrap(), 5);
    let all = [&done, &dead, &waiting, &recent];
    let left = [
        None,
        None,
        Some(DeliveryStatus::Pending),
        Some(DeliveryStatus::Succeeded),
    ];
    assert_eq!(statuses(store, &all).await, left);
    assert_eq!(attempt_counts(store, &all).await, [0, 0, 0, 1]);
    assert_eq!(store.get_event(&failed.id).await.unwrap(), None);
    let kept = store.get_event(&mixed.id).await.unwrap();
    assert!(kept.is_some(), "an event with an unfinished delivery stays");
    assert_eq!(store.prune(T0 + DAY_MS).await.unwrap(), 0);

    let removed = store.prune(recent_at + 1).await.unwrap();
    assert_eq!(removed, 3, "the recent delivery, its attempt and its event");
    let events = store.list_events(&page(10, None)).await.unwrap();
    assert_eq!(
        events.into_iter().map(|e| e.id).collect::<Vec<_>>(),
        [mixed.id]
    );
}

/// Each delivery's status, `None` when it is gone.
async fn statuses(store: &dyn Store, ids: &[&DeliveryId]) -> Vec<Option<DeliveryStatus>> {
    let mut found = Vec::new();
    for id in ids {
        found.push(store.get_delivery(id).await.unwrap().map(|d| d.status));
    }
    found
}

async fn attempt_counts(store: &dyn Store, ids: &[&DeliveryId]) -> Vec<usize> {
    let mut counts = Vec::new();
    for id in ids {
        counts.push(store.list_attempts(id).await.unwrap().len());
    }
    counts
}

// ---------------------------------------------------------------------------------------------
// Several processes
// ---------------------------------------------------------------------------------------------

pub async fn migrations_run_concurrently_and_repeat_safely(store: &dyn Store, other: &dyn Store) {
    migrate_both(store, other).await;
    store.migrate().await.expect("migrating again is a no-op");
    store.ping().await.unwrap();
    other.ping().await.unwrap();
    let token = TokenRecord {
        id: TokenId::generate(seq()),
        name: "admin".into(),
        hash: "ef".repeat(32),
        created_at: T0,
    };
    store.insert_token(&token).await.unwrap();
    assert_eq!(other.count_tokens().await.unwrap(), 1);

    let before = other.webhooks_version().await.unwrap();
    let w = webhook("shared");
    store.insert_webhook(&w).await.unwrap();
    assert_ne!(
        other.webhooks_version().await.unwrap(),
        before,
        "seen by the other process"
    );
    assert_eq!(other.active_webhooks().await.unwrap(), vec![w]);
}

pub async fn concurrent_enqueues_with_one_key_create_once(store: &dyn Store, other: &dyn Store) {
    migrate_both(store, other).await;
    let wh = WebhookId::generate(seq());
    for i in 0..5 {
        let key = format!("race-{i}");
        let a = event(Some(&key), vec![pending(&wh, T0)]);
        let b = event(Some(&key), vec![pending(&wh, T0)]);
        let (ra, rb) = join(
            store.enqueue_events(std::slice::from_ref(&a), T0),
            other.enqueue_events(std::slice::from_ref(&b), T0),
        )
        .await;
        let (ra, rb) = (ra.expect("first enqueue"), rb.expect("second enqueue"));
        match (&ra[0], &rb[0]) {
            (Enqueued::Created { id, .. }, Enqueued::Duplicate(first))
            | (Enqueued::Duplicate(first), Enqueued::Created { id, .. }) => {
                assert_eq!(&first.id, id, "the duplicate returns the created event");
            }
            results => panic!("exactly one enqueue must create the event: {results:?}"),
        }
    }
    let all = store
        .list_deliveries(&DeliveryFilter::default(), &page(100, None))
        .await
        .unwrap();
    assert_eq!(all.len(), 5, "one delivery per key");
}

pub async fn concurrent_claimers_never_share_a_delivery(store: &dyn Store, other: &dyn Store) {
    migrate_both(store, other).await;
    let wh = WebhookId::generate(seq());
    let deliveries: Vec<NewDelivery> = (0..200).map(|_| pending(&wh, T0)).collect();
    enqueue(store, vec![event(None, deliveries)], T0).await;

    let (a, b) = join(drain(store), drain(other)).await;
    let union: HashSet<&DeliveryId> = a.iter().chain(&b).collect();
    assert_eq!(
        a.len() + b.len(),
        200,
        "every delivery claimed once ({} + {})",
        a.len(),
        b.len()
    );
    assert_eq!(union.len(), 200, "no delivery claimed twice");
    let leased = DeliveryFilter {
        status: Some(DeliveryStatus::Delivering),
        ..Default::default()
    };
    assert_eq!(
        store
            .list_deliveries(&leased, &page(1000, None))
            .await
            .unwrap()
            .len(),
        200
    );
}

/// Claims batches of 10 until a claim comes back empty.
async fn drain(store: &dyn Store) -> Vec<DeliveryId> {
    let mut claimed = Vec::new();
    loop {
        let batch = claim_ids(store, &claim(Lane::First, T0, 10)).await;
        if batch.is_empty() {
            return claimed;
        }
        assert!(batch.len() <= 10, "a claim returns at most its limit");
        claimed.extend(batch);
    }
}

pub async fn concurrent_claimers_hold_the_in_flight_cap(store: &dyn Store, other: &dyn Store) {
    migrate_both(store, other).await;
    let wh = limited(store, Some(3), None).await;
    queue_many(store, &wh, 60, T0).await;
    let (a, b) = join(
        claim_and_finish("one", store),
        claim_and_finish("other", other),
    )
    .await;
    assert!(a + b >= 20, "both made progress: {a} + {b}");
}

pub async fn concurrent_publishes_that_claim_hold_the_in_flight_cap(
    store: &dyn Store,
    other: &dyn Store,
) {
    migrate_both(store, other).await;
    let wh = limited(store, Some(3), None).await;
    let (a, b) = join(
        publish_and_claim(store, &wh, 40),
        publish_and_claim(other, &wh, 40),
    )
    .await;
    assert_eq!(a + b, 3, "the cap, over both publishers: {a} + {b}");
    let count = |status| async move {
        let filter = DeliveryFilter {
            status: Some(status),
            ..Default::default()
        };
        store
            .list_deliveries(&filter, &page(1000, None))
            .await
            .unwrap()
            .len()
    };
    assert_eq!(count(DeliveryStatus::Delivering).await, 3);
    assert_eq!(count(DeliveryStatus::Pending).await, 77, "the rest wait");
}

/// Publishes `n` events of one delivery to `webhook`, each claiming what it may; returns how
/// many the publishes took.
async fn publish_and_claim(store: &dyn Store, webhook: &WebhookId, n: i64) -> usize {
    let mut taken = 0;
    for i in 0..n {
        let c = claim(Lane::First, T0 + i, 4);
        let (_, claimed) = store
            .enqueue_events_and_claim(&[event(None, vec![pending(webhook, T0)])], T0 + i, &c)
            .await
            .expect("enqueue_events_and_claim");
        taken += claimed.map_or(0, |c| c.deliveries.len());
    }
    taken
}

/// Claims and finishes, over and over; at no claim may more than three deliveries be under a
/// live lease. Returns how many it sent.
async fn claim_and_finish(name: &str, store: &dyn Store) -> usize {
    let mut sent = 0;
    for round in 0..40 {
        let now = T0 + round;
        let c = claim(Lane::First, now, 10);
        let got = claimed(store, &c).await;
        let leased = DeliveryFilter {
            status: Some(DeliveryStatus::Delivering),
            ..Default::default()
        };
        let live = store
            .list_deliveries(&leased, &page(1000, None))
            .await
            .unwrap();
        assert!(live.len() <= 3, "{name}: {} in flight", live.len());
        let outcomes: Vec<Outcome> = got.iter().map(|d| answer(&c, d, now, ok())).collect();
        sent += outcomes.len();
        if !outcomes.is_empty() {
            record(store, &outcomes).await;
        }
    }
    sent
}

/// Returns the work the wake-up named, for backends that can tell kinds apart to check.
pub async fn wait_for_work_wakes_when_another_handle_enqueues(
    store: &dyn Store,
    other: &dyn Store,
) -> Work {
    migrate_both(store, other).await;
    // The first call subscribes (a listener, a change counter) and returns what was pending.
    store.wait_for_work(Duration::from_millis(1)).await;
    let (quiet, _) = timed(store.wait_for_work(Duration::from_millis(300))).await;
    assert!(
        quiet >= Duration::from_millis(250),
        "returned after {quiet:?} with nothing queued"
    );

    let wh = WebhookId::generate(seq());
    let waiting = timed(store.wait_for_work(Duration::from_secs(10)));
    let ((waited, work), ()) = join(waiting, async {
        queue(other, &wh, T0).await;
    })
    .await;
    assert!(waited < Duration::from_secs(5), "woke after {waited:?}");
    assert!(
        work.first,
        "new deliveries wake the first-attempt lane: {work:?}"
    );
    work
}

/// What a wake-up names for a worker that owns none of the webhooks new deliveries were queued
/// for: the first attempts are left out where the backend names them (PostgreSQL), so the
/// caller checks it; `other` then queues for one it owns, which must wake it.
pub async fn a_wake_up_for_another_workers_webhooks(store: &dyn Store, other: &dyn Store) -> Work {
    migrate_both(store, other).await;
    let (theirs, mine) = (WebhookId::generate(seq()), WebhookId::generate(seq()));
    let owned = mine.clone();
    let only_mine = move |id: &WebhookId| *id == owned;
    store
        .wait_for_work_of(Duration::from_millis(1), &only_mine)
        .await;
    let waiting = timed(store.wait_for_work_of(Duration::from_secs(10), &only_mine));
    let ((waited, work), ()) = join(waiting, async {
        queue(other, &theirs, T0).await;
    })
    .await;
    assert!(waited < Duration::from_secs(5), "woke after {waited:?}");
    let waiting = timed(store.wait_for_work_of(Duration::from_secs(10), &only_mine));
    let ((waited, own), ()) = join(waiting, async {
        queue(other, &mine, T0).await;
    })
    .await;
    assert!(waited < Duration::from_secs(5), "woke after {waited:?}");
    assert!(own.first, "its own webhook's deliveries wake it: {own:?}");
    work
}

/// What `store` is woken with when `other` publishes first attempts for more webhooks than a
/// wake-up can name, none of them `store`'s (a store that names webhooks then wakes every
/// worker).
pub async fn a_wake_up_for_too_many_webhooks_to_name(store: &dyn Store, other: &dyn Store) -> Work {
    migrate_both(store, other).await;
    let mine = WebhookId::generate(seq());
    let only_mine = move |id: &WebhookId| *id == mine;
    store
        .wait_for_work_of(Duration::from_millis(1), &only_mine)
        .await;
    let many: Vec<NewDelivery> = (0..300)
        .map(|_| pending(&WebhookId::generate(seq()), T0))
        .collect();
    let waiting = timed(store.wait_for_work_of(Duration::from_secs(10), &only_mine));
    let ((waited, work), ()) = join(waiting, async {
        enqueue(other, vec![event(None, many)], T0).await;
    })
    .await;
    assert!(waited < Duration::from_secs(5), "woke after {waited:?}");
    work
}

// ---------------------------------------------------------------------------------------------
// Workers
// ---------------------------------------------------------------------------------------------

pub async fn workers_say_they_are_alive_and_the_silent_are_forgotten(store: &dyn Store) {
    let beat = |id: &'static str, at: i64| async move {
        store
            .worker_heartbeat(id, at, at - 10_000)
            .await
            .expect("heartbeat")
    };
    assert_eq!(beat("wk_b", T0).await, ["wk_b"]);
    assert_eq!(
        beat("wk_a", T0 + 1_000).await,
        ["wk_a", "wk_b"],
        "in id order"
    );
    assert_eq!(
        beat("wk_a", T0 + 5_000).await,
        ["wk_a", "wk_b"],
        "a beat again keeps one row"
    );
    assert_eq!(
        beat("wk_a", T0 + 10_500).await,
        ["wk_a"],
        "wk_b said nothing for 10 s"
    );
    assert_eq!(
        beat("wk_b", T0 + 11_000).await,
        ["wk_a", "wk_b"],
        "and is back"
    );
    store.worker_leave("wk_b").await.expect("leave");
    assert_eq!(beat("wk_a", T0 + 12_000).await, ["wk_a"], "gone at once");
    store
        .worker_leave("wk_z")
        .await
        .expect("leaving twice is fine");
}

// ---------------------------------------------------------------------------------------------
// Schedules
// ---------------------------------------------------------------------------------------------

fn schedule(name: &str, webhook_id: &WebhookId, next_run_at: Option<i64>) -> Schedule {
    Schedule {
        id: ScheduleId::generate(seq()),
        active: next_run_at.is_some(),
        spec: ScheduleSpec {
            name: name.into(),
            description: Some("nightly".into()),
            webhook_id: webhook_id.clone(),
            message: Some(r#"{"text": "{{ data.name }}"}"#.into()),
            timing: Timing::Every { seconds: 60 },
        },
        next_run_at,
        last_run_at: None,
        last_error: None,
        version: 1,
        created_at: T0,
        updated_at: T0,
    }
}

fn firing(s: &Schedule, expected: Option<i64>, occurrence: i64, now: i64) -> Firing {
    Firing {
        schedule_id: s.id.clone(),
        expected_next_run_at: expected,
        next_run_at: expected.map(|at| at + 60_000),
        occurrence,
        event_id: EventId::generate(seq()),
        event: NewEvent {
            event_type: EventType::parse(crate::schedule::SCHEDULE_FIRED).unwrap(),
            model: None,
            data: json!({"schedule_id": s.id.as_str(), "occurrence": rfc3339(occurrence)}),
            occurred_at: now,
            idempotency_key: None,
        },
        delivery_id: DeliveryId::generate(seq()),
        webhook_id: s.spec.webhook_id.clone(),
        message: s.spec.message.clone(),
        last_error: None,
        now_ms: now,
    }
}

pub async fn schedule_crud_is_conditional_on_the_version(store: &dyn Store) {
    let wh = WebhookId::generate(seq());
    let a = schedule("a", &wh, Some(T0 + 60_000));
    let b = schedule("b", &wh, None);
    store.insert_schedule(&a).await.unwrap();
    store.insert_schedule(&b).await.unwrap();
    assert_eq!(store.get_schedule(&a.id).await.unwrap(), Some(a.clone()));
    let listed = store.list_schedules(&page(1, None)).await.unwrap();
    assert_eq!(listed, vec![b.clone()], "newest first");
    let next = store
        .list_schedules(&page(10, Some(b.id.as_str())))
        .await
        .unwrap();
    assert_eq!(next, vec![a.clone()]);

    let mut edited = a.clone();
    edited.spec.name = "a2".into();
    edited.updated_at = T0 + 1;
    assert_eq!(
        store.update_schedule(&edited, a.version).await.unwrap(),
        Written::Done
    );
    let stored = store.get_schedule(&a.id).await.unwrap().unwrap();
    assert_eq!(stored.spec.name, "a2");
    assert_eq!(stored.version, a.version + 1, "an update bumps the version");
    assert_eq!(
        store.update_schedule(&edited, a.version).await.unwrap(),
        Written::Changed,
        "a stale version writes nothing"
    );
    let missing = schedule("gone", &wh, None);
    assert_eq!(
        store.update_schedule(&missing, 1).await.unwrap(),
        Written::NotFound
    );

    // Only active schedules are due, earliest first.
    assert_eq!(store.next_schedule_at().await.unwrap(), Some(T0 + 60_000));
    assert!(store.due_schedules(T0, 10).await.unwrap().is_empty());
    let due = store.due_schedules(T0 + 60_000, 10).await.unwrap();
    assert_eq!(due.iter().map(|s| &s.id).collect::<Vec<_>>(), vec![&a.id]);

    assert!(store.delete_schedule(&a.id).await.unwrap());
    assert!(!store.delete_schedule(&a.id).await.unwrap());
    assert_eq!(store.get_schedule(&a.id).await.unwrap(), None);
    assert_eq!(store.next_schedule_at().await.unwrap(), None);
}

pub async fn firing_a_schedule_stores_its_event_and_delivery_once(store: &dyn Store) {
    let wh = WebhookId::generate(seq());
    let due = T0 + 60_000;
    let s = schedule("nightly", &wh, Some(due));
    store.insert_schedule(&s).await.unwrap();
    let f = firing(&s, Some(due), due, due + 5);
    assert!(store.fire_schedule(&f).await.unwrap());

    let stored = store.get_schedule(&s.id).await.unwrap().unwrap();
    assert_eq!(stored.next_run_at, Some(due + 60_000));
    assert_eq!(stored.last_run_at, Some(due + 5));
    assert_eq!(stored.last_error, None);
    let d = delivery(store, &f.delivery_id).await;
    assert_eq!(d.event_id, f.event_id);
    assert_eq!(d.webhook_id, wh);
    assert_eq!(d.status, DeliveryStatus::Pending);
    assert_eq!(d.next_attempt_at, Some(due + 5));
    assert_eq!(d.schedule_id.as_ref(), Some(&s.id));
    assert_eq!(d.occurrence, Some(due));
    assert_eq!(d.message, s.spec.message);
    let e = store.get_event(&f.event_id).await.unwrap().unwrap();
    assert_eq!(e.event_type, "schedule.fired");
    assert_eq!(e.data, f.event.data);
    let claimed = claim_ids(store, &claim(Lane::First, due + 5, 10)).await;
    assert_eq!(claimed, vec![f.delivery_id.clone()], "the worker sends it");

    // The same occurrence again (a worker that read the schedule before the firing): nothing.
    let again = firing(&s, Some(due), due, due + 6);
    assert!(!store.fire_schedule(&again).await.unwrap());
    assert_eq!(store.get_delivery(&again.delivery_id).await.unwrap(), None);
    assert_eq!(store.get_event(&again.event_id).await.unwrap(), None);

    // A run by hand leaves next_run_at alone; on a deleted schedule it stores nothing. Each
    // firing sets (or clears) the schedule's last error.
    let by_hand = Firing {
        last_error: Some("message: undefined value".into()),
        ..firing(&s, None, due + 100, due + 100)
    };
    assert!(store.fire_schedule(&by_hand).await.unwrap());
    let stored = store.get_schedule(&s.id).await.unwrap().unwrap();
    assert_eq!(stored.next_run_at, Some(due + 60_000));
    assert_eq!(stored.last_run_at, Some(due + 100));
    assert_eq!(
        stored.last_error.as_deref(),
        Some("message: undefined value")
    );
    // An update writes the error it is given (the API keeps or clears it).
    let kept = Schedule {
        version: stored.version + 1,
        ..stored.clone()
    };
    assert_eq!(
        store.update_schedule(&kept, stored.version).await.unwrap(),
        Written::Done
    );
    let stored = store.get_schedule(&s.id).await.unwrap().unwrap();
    assert_eq!(
        stored.last_error.as_deref(),
        Some("message: undefined value")
    );
    let next = stored.next_run_at.unwrap();
    assert!(store
        .fire_schedule(&firing(&stored, Some(next), next, next + 1))
        .await
        .unwrap());
    let stored = store.get_schedule(&s.id).await.unwrap().unwrap();
    assert_eq!(stored.last_error, None, "a firing that renders clears it");
    let filter = DeliveryFilter {
        webhook_id: Some(wh.clone()),
        ..DeliveryFilter::default()
    };
    assert_eq!(
        store
            .list_deliveries(&filter, &page(10, None))
            .await
            .unwrap()
            .len(),
        3
    );
    store.delete_schedule(&s.id).await.unwrap();
    let orphan = firing(&s, None, due + 200, due + 200);
    assert!(!store.fire_schedule(&orphan).await.unwrap());

    // An inactive schedule does not fire.
    let paused = Schedule {
        active: false,
        ..schedule("paused", &wh, Some(due))
    };
    store.insert_schedule(&paused).await.unwrap();
    assert!(!store
        .fire_schedule(&firing(&paused, Some(due), due, due))
        .await
        .unwrap());
}

pub async fn concurrent_firings_of_one_occurrence_store_one(store: &dyn Store, other: &dyn Store) {
    migrate_both(store, other).await;
    let wh = WebhookId::generate(seq());
    for i in 0..10 {
        let due = T0 + i * 60_000;
        let s = schedule(&format!("race-{i}"), &wh, Some(due));
        store.insert_schedule(&s).await.unwrap();
        let (a, b) = (
            firing(&s, Some(due), due, due),
            firing(&s, Some(due), due, due),
        );
        let (ra, rb) = join(store.fire_schedule(&a), other.fire_schedule(&b)).await;
        let (ra, rb) = (ra.expect("first firing"), rb.expect("second firing"));
        assert!(
            ra ^ rb,
            "exactly one firing of occurrence {i} is stored: {ra} {rb}"
        );
    }
    let filter = DeliveryFilter {
        webhook_id: Some(wh),
        ..DeliveryFilter::default()
    };
    let all = store
        .list_deliveries(&filter, &page(100, None))
        .await
        .unwrap();
    assert_eq!(all.len(), 10, "one delivery per occurrence");
}

// ---------------------------------------------------------------------------------------------
// Inbound hooks and executions
// ---------------------------------------------------------------------------------------------

fn inbound_hook(key: &str) -> InboundHook {
    InboundHook {
        id: InboundId::generate(seq()),
        key: key.into(),
        spec: InboundSpec::from_json(&json!({"name": key})).expect("a valid spec"),
        created_at: T0,
        updated_at: T0,
    }
}

fn execution_record() -> ExecutionRecord {
    let headers = BTreeMap::from([("content-type".into(), "application/json".into())]);
    let mut variables = serde_json::Map::new();
    variables.insert("amount".into(), json!(5));
    ExecutionRecord {
        request: ExecutionRequest {
            method: "POST".into(),
            path: "/hooks/****?source=shop".into(),
            headers,
            query: json!({"source": "shop"}),
            body: json!({"amount": 5}),
            body_truncated: false,
        },
        variables,
        trace: Vec::new(),
        response: None,
        error: None,
        duration_ms: None,
    }
}

/// An async execution waiting for a worker, due (and created) at `due`.
fn queued_execution(hook: &InboundId, due: i64) -> Execution {
    Execution {
        id: ExecutionId::generate(seq()),
        hook_id: hook.clone(),
        mode: Mode::Async,
        status: ExecutionStatus::Queued,
        record: execution_record(),
        attempts: 0,
        next_attempt_at: Some(due),
        created_at: due,
        updated_at: due,
    }
}

/// A sync execution, stored once, finished, at `at`.
fn finished_execution(hook: &InboundId, status: ExecutionStatus, at: i64) -> Execution {
    let mut record = execution_record();
    record.response = Some(Response {
        status: 200,
        headers: BTreeMap::new(),
        body: "ok".into(),
    });
    record.duration_ms = Some(12);
    Execution {
        id: ExecutionId::generate(seq()),
        hook_id: hook.clone(),
        mode: Mode::Sync,
        status,
        record,
        attempts: 1,
        next_attempt_at: None,
        created_at: at,
        updated_at: at,
    }
}

fn execution_claim(now_ms: i64, limit: u32) -> ExecutionClaim {
    ExecutionClaim {
        now_ms,
        limit,
        lease: LEASE,
        lease_token: format!("exe-lease-{}", seq()),
    }
}

async fn claim_executions(store: &dyn Store, claim: &ExecutionClaim) -> Vec<Execution> {
    let mut claimed = store
        .claim_executions(claim)
        .await
        .expect("claim_executions");
    claimed.sort_by(|a, b| a.id.cmp(&b.id));
    claimed
}

async fn execution(store: &dyn Store, id: &ExecutionId) -> Execution {
    store
        .get_execution(id)
        .await
        .expect("get_execution")
        .expect("execution exists")
}

fn ids_of(executions: &[Execution]) -> Vec<&ExecutionId> {
    executions.iter().map(|e| &e.id).collect()
}

pub async fn inbound_crud_is_conditional_on_updated_at(store: &dyn Store) {
    let a = inbound_hook("key-a");
    let b = inbound_hook("key-b");
    store.insert_inbound(&a).await.unwrap();
    store.insert_inbound(&b).await.unwrap();
    assert_eq!(store.get_inbound(&a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(
        store.get_inbound_by_key("key-b").await.unwrap(),
        Some(b.clone())
    );
    assert_eq!(store.get_inbound_by_key("key-c").await.unwrap(), None);
    let taken = store.insert_inbound(&inbound_hook("key-a")).await;
    assert!(matches!(taken, Err(StoreError::Conflict(_))), "{taken:?}");

    let listed = store.list_inbound(&page(1, None)).await.unwrap();
    assert_eq!(listed, vec![b.clone()], "newest first");
    let next = store
        .list_inbound(&page(10, Some(b.id.as_str())))
        .await
        .unwrap();
    assert_eq!(next, vec![a.clone()]);

    let mut edited = a.clone();
    edited.spec = InboundSpec::from_json(&json!({"name": "a2", "mode": "sync"})).unwrap();
    edited.updated_at = T0 + 1;
    assert_eq!(
        store.update_inbound(&edited, a.updated_at).await.unwrap(),
        Written::Done
    );
    assert_eq!(
        store.get_inbound(&a.id).await.unwrap(),
        Some(edited.clone())
    );
    assert_eq!(
        store.update_inbound(&edited, a.updated_at).await.unwrap(),
        Written::Changed,
        "a stale updated_at writes nothing"
    );
    assert_eq!(
        store
            .update_inbound(&inbound_hook("gone"), T0)
            .await
            .unwrap(),
        Written::NotFound
    );

    assert!(store.delete_inbound(&a.id).await.unwrap());
    assert!(!store.delete_inbound(&a.id).await.unwrap());
    assert_eq!(store.get_inbound(&a.id).await.unwrap(), None);
    assert_eq!(store.get_inbound_by_key("key-a").await.unwrap(), None);
}

pub async fn executions_are_listed_per_hook_newest_first(store: &dyn Store) {
    let (hook, other) = (InboundId::generate(seq()), InboundId::generate(seq()));
    let sync = finished_execution(&hook, ExecutionStatus::Succeeded, T0);
    let mut rejected = finished_execution(&hook, ExecutionStatus::Rejected, T0 + 1);
    rejected.record.error = Some("bad signature".into());
    let queued = queued_execution(&hook, T0 + 2);
    let elsewhere = queued_execution(&other, T0 + 3);
    for e in [&sync, &rejected, &queued, &elsewhere] {
        store
            .insert_executions(std::slice::from_ref(e))
            .await
            .unwrap();
    }
    assert_eq!(execution(store, &sync.id).await, sync);
    assert_eq!(execution(store, &rejected.id).await, rejected);
    assert_eq!(execution(store, &queued.id).await, queued);
    let missing = ExecutionId::generate(seq());
    assert_eq!(store.get_execution(&missing).await.unwrap(), None);

    let first = store.list_executions(&hook, &page(2, None)).await.unwrap();
    assert_eq!(
        first,
        vec![queued.clone(), rejected.clone()],
        "newest first"
    );
    let before = Some(rejected.id.as_str());
    let rest = store
        .list_executions(&hook, &page(10, before))
        .await
        .unwrap();
    assert_eq!(rest, vec![sync]);
    let theirs = store
        .list_executions(&other, &page(10, None))
        .await
        .unwrap();
    assert_eq!(theirs, vec![elsewhere]);
}

pub async fn execution_claims_lease_due_queued_ones(store: &dyn Store) {
    let hook = InboundId::generate(seq());
    let first = queued_execution(&hook, T0);
    let later = queued_execution(&hook, T0 + 1_000);
    let done = finished_execution(&hook, ExecutionStatus::Failed, T0 - 1);
    for e in [&first, &later, &done] {
        store
            .insert_executions(std::slice::from_ref(e))
            .await
            .unwrap();
    }
    assert_eq!(store.next_execution_at().await.unwrap(), Some(T0));
    // The intake's queue cap counts unfinished executions, no further than asked.
    let count = |up_to| store.count_unfinished_executions(&hook, up_to);
    assert_eq!(count(10).await.unwrap(), 2);
    assert_eq!(count(1).await.unwrap(), 1);
    let other = InboundId::generate(seq());
    assert_eq!(
        store.count_unfinished_executions(&other, 10).await.unwrap(),
        0
    );
    assert!(claim_executions(store, &execution_claim(T0 - 1, 10))
        .await
        .is_empty());

    // Only what is due, leased: running, attempts counted, due again when the lease ends.
    let c1 = execution_claim(T0, 10);
    let claimed = claim_executions(store, &c1).await;
    assert_eq!(ids_of(&claimed), vec![&first.id]);
    assert_eq!(count(10).await.unwrap(), 2, "running ones count");
    let leased = &claimed[0];
    assert_eq!(leased.status, ExecutionStatus::Running);
    assert_eq!(leased.attempts, 1);
    assert_eq!(leased.next_attempt_at, Some(T0 + LEASE_MS));
    assert_eq!(leased.record, first.record);
    assert_eq!(execution(store, &first.id).await, *leased);
    let c2 = execution_claim(T0 + 1_000, 10);
    assert_eq!(ids_of(&claim_executions(store, &c2).await), vec![&later.id]);
    assert_eq!(
        store.next_execution_at().await.unwrap(),
        Some(T0 + LEASE_MS)
    );
    let still_leased = execution_claim(T0 + LEASE_MS - 1, 10);
    assert!(claim_executions(store, &still_leased).await.is_empty());

    // A lease that ran out (a worker died): claimed again, a second run.
    let c3 = execution_claim(T0 + LEASE_MS, 10);
    let again = claim_executions(store, &c3).await;
    assert_eq!(ids_of(&again), vec![&first.id]);
    assert_eq!(again[0].attempts, 2);
    assert_eq!(again[0].next_attempt_at, Some(T0 + 2 * LEASE_MS));

    finish_only_under_the_current_lease(store, &again[0], &c1, &c3).await;
    assert_eq!(
        store.next_execution_at().await.unwrap(),
        Some(T0 + 1_000 + LEASE_MS)
    );
    let mut failed = execution(store, &later.id).await;
    failed.status = ExecutionStatus::Failed;
    assert!(finish_one(store, &failed, &c2.lease_token).await.unwrap());
    assert_eq!(store.next_execution_at().await.unwrap(), None);
    assert_eq!(count(10).await.unwrap(), 0, "finished ones do not count");
    let far = execution_claim(T0 + 100 * DAY_MS, 10);
    assert!(
        claim_executions(store, &far).await.is_empty(),
        "final ones stay"
    );
}

/// Finishes one execution through the batch method.
async fn finish_one(
    store: &dyn Store,
    e: &Execution,
    token: &str,
) -> crate::store::StoreResult<bool> {
    let done = store
        .finish_executions(&[(e.clone(), token.to_owned())])
        .await?;
    assert_eq!(done.len(), 1, "one answer per execution");
    Ok(done[0])
}

/// Finishing `e` under `stale` writes nothing; under `current` it writes once.
async fn finish_only_under_the_current_lease(
    store: &dyn Store,
    e: &Execution,
    stale: &ExecutionClaim,
    current: &ExecutionClaim,
) {
    let mut finished = e.clone();
    finished.status = ExecutionStatus::Succeeded;
    finished.record.duration_ms = Some(40);
    finished.updated_at = current.now_ms + 40;
    let stale_write = finish_one(store, &finished, &stale.lease_token).await;
    assert!(!stale_write.unwrap(), "a stale lease writes nothing");
    assert_eq!(execution(store, &e.id).await, *e);

    assert!(finish_one(store, &finished, &current.lease_token)
        .await
        .unwrap());
    let stored = execution(store, &e.id).await;
    let expected = Execution {
        next_attempt_at: None,
        ..finished.clone()
    };
    assert_eq!(stored, expected);
    let twice = finish_one(store, &finished, &current.lease_token).await;
    assert!(!twice.unwrap(), "finishing clears the lease");
}

pub async fn prune_removes_old_finished_executions_only(store: &dyn Store) {
    let hook = InboundId::generate(seq());
    let succeeded = finished_execution(&hook, ExecutionStatus::Succeeded, T0);
    let timed_out = finished_execution(&hook, ExecutionStatus::TimedOut, T0 + 1);
    let rejected = finished_execution(&hook, ExecutionStatus::Rejected, T0 + 2);
    // Old but unfinished: one queued (due later), one leased to a worker.
    let mut waiting = queued_execution(&hook, T0 + 3);
    waiting.next_attempt_at = Some(T0 + 100 * DAY_MS);
    let running = queued_execution(&hook, T0 + 4);
    let recent = finished_execution(&hook, ExecutionStatus::Failed, T0 + 10 * DAY_MS);
    for e in [
        &succeeded, &timed_out, &rejected, &waiting, &running, &recent,
    ] {
        store
            .insert_executions(std::slice::from_ref(e))
            .await
            .unwrap();
    }
    let claimed = claim_executions(store, &execution_claim(T0 + 4, 10)).await;
    assert_eq!(ids_of(&claimed), vec![&running.id]);

    assert_eq!(store.prune(T0 + DAY_MS).await.unwrap(), 3);
    let mut left = Vec::new();
    for e in [
        &succeeded, &timed_out, &rejected, &waiting, &running, &recent,
    ] {
        left.push(store.get_execution(&e.id).await.unwrap().map(|e| e.status));
    }
    use ExecutionStatus::{Failed, Queued, Running};
    assert_eq!(
        left,
        [None, None, None, Some(Queued), Some(Running), Some(Failed)]
    );
    assert_eq!(store.prune(T0 + DAY_MS).await.unwrap(), 0);
    assert_eq!(store.prune(T0 + 10 * DAY_MS + 1).await.unwrap(), 1);
}

pub async fn concurrent_claimers_never_share_an_execution(store: &dyn Store, other: &dyn Store) {
    migrate_both(store, other).await;
    let hook = InboundId::generate(seq());
    for _ in 0..100 {
        store
            .insert_executions(&[queued_execution(&hook, T0)])
            .await
            .unwrap();
    }
    let (a, b) = join(drain_executions(store), drain_executions(other)).await;
    let union: HashSet<&ExecutionId> = a.iter().chain(&b).collect();
    assert_eq!(
        a.len() + b.len(),
        100,
        "every execution claimed once ({} + {})",
        a.len(),
        b.len()
    );
    assert_eq!(union.len(), 100, "no execution claimed twice");
}

/// Claims batches of 10 until a claim comes back empty.
async fn drain_executions(store: &dyn Store) -> Vec<ExecutionId> {
    let mut claimed = Vec::new();
    loop {
        let batch = claim_executions(store, &execution_claim(T0, 10)).await;
        if batch.is_empty() {
            return claimed;
        }
        assert!(batch.len() <= 10, "a claim returns at most its limit");
        claimed.extend(batch.into_iter().map(|e| e.id));
    }
}

/// Returns the work the wake-up named, as the case above.
pub async fn wait_for_work_wakes_when_another_handle_queues_an_execution(
    store: &dyn Store,
    other: &dyn Store,
) -> Work {
    migrate_both(store, other).await;
    // The first call subscribes (a listener, a change counter) and returns what was pending.
    store.wait_for_work(Duration::from_millis(1)).await;
    let hook = InboundId::generate(seq());
    let waiting = timed(store.wait_for_work(Duration::from_secs(10)));
    let ((waited, work), ()) = join(waiting, async {
        let queued = queued_execution(&hook, T0);
        other
            .insert_executions(std::slice::from_ref(&queued))
            .await
            .unwrap();
    })
    .await;
    assert!(waited < Duration::from_secs(5), "woke after {waited:?}");
    assert!(
        work.executions,
        "a queued execution wakes the runner: {work:?}"
    );
    work
}

pub async fn seeded_history_is_finished_and_readable(store: &dyn Store) {
    let wh = webhook("history");
    store.insert_webhook(&wh).await.unwrap();
    store.seed_history(&wh.id, 3, T0 - DAY_MS).await.unwrap();
    store.seed_history(&wh.id, 2, T0 - DAY_MS).await.unwrap();
    let filter = DeliveryFilter {
        webhook_id: Some(wh.id.clone()),
        ..DeliveryFilter::default()
    };
    let seeded = store
        .list_deliveries(&filter, &page(100, None))
        .await
        .unwrap();
    assert_eq!(seeded.len(), 5, "two seedings do not collide");
    for d in &seeded {
        assert_eq!((d.status, d.attempts), (DeliveryStatus::Succeeded, 1));
        DeliveryId::parse(d.id.as_str()).expect("a valid id");
        let event = store
            .get_event(&d.event_id)
            .await
            .unwrap()
            .expect("its event");
        assert_eq!(event.created_at, T0 - DAY_MS);
        let attempts = store.list_attempts(&d.id).await.unwrap();
        assert_eq!(attempts.len(), 1);
        assert_eq!(attempts[0].delivery_id, d.id);
        assert_eq!(attempts[0].response.as_ref().map(|r| r.status), Some(200));
    }
    assert_eq!(store.queue_depth().await.unwrap(), 0, "nothing is queued");
    assert_eq!(
        store.prune(T0).await.unwrap(),
        15,
        "deliveries, attempts and events"
    );
}

// ---------------------------------------------------------------------------------------------
// Secrets at rest
// ---------------------------------------------------------------------------------------------

/// One handle rotates the data key that seals the secrets; the other, which learned only the
/// old one, reads every secret still and its writes seal with the new key.
pub async fn a_key_rotation_by_one_handle_is_read_by_the_other(
    store: &dyn Store,
    other: &dyn Store,
) {
    migrate_both(store, other).await;
    let mut w = webhook("sealed");
    w.spec.previous_secret = Some(PreviousSecret {
        secret: SigningSecret::generate_standard(),
        expires_at: T0 + 60_000,
    });
    w.spec
        .headers
        .insert("X-Api-Key".into(), Some("k3y".into()));
    store.insert_webhook(&w).await.unwrap();
    let hook = inbound_hook("sealed");
    let hook = InboundHook {
        spec: InboundSpec::from_json(&json!({
            "name": "sealed",
            "auth": {"type": "signature", "preset": "github", "secret": "gh-s3cret"},
        }))
        .unwrap(),
        ..hook
    };
    store.insert_inbound(&hook).await.unwrap();
    assert_eq!(other.get_webhook(&w.id).await.unwrap().as_ref(), Some(&w));

    let first = store.rotate_secrets_key(T0 + 1).await.unwrap();
    assert_eq!((first.resealed, first.retired), (2, 1), "{first:?}");
    assert_eq!(other.get_webhook(&w.id).await.unwrap().as_ref(), Some(&w));
    assert_eq!(
        other.get_inbound(&hook.id).await.unwrap().as_ref(),
        Some(&hook)
    );
    assert_eq!(other.active_webhooks().await.unwrap(), vec![w.clone()]);

    let mut edited = w.clone();
    edited.spec.auth = AuthConfig::Basic {
        username: "u".into(),
        password: "p4ss".into(),
    };
    edited.updated_at = T0 + 2;
    assert_eq!(
        other.update_webhook(&edited, &w).await.unwrap(),
        Written::Done
    );
    let again = store.rotate_secrets_key(T0 + 3).await.unwrap();
    assert_ne!(again.key_id, first.key_id);
    assert_eq!(again.master_key_id, first.master_key_id);
    assert_eq!((again.resealed, again.retired), (2, 1), "{again:?}");
    assert_eq!(
        store.get_webhook(&w.id).await.unwrap(),
        Some(edited.clone())
    );
    assert_eq!(
        other.webhooks_by_ids(&[w.id.clone()]).await.unwrap(),
        vec![edited]
    );
}
