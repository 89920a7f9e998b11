//! What the shared conformance suite does not reach in this store: slices larger than one
//! multi-row statement and the SQLite features the batched statements need. (Outcomes
//! repeated in a batch and effects across webhooks are conformance cases.)

use std::time::Duration;

use hookd_core::delivery::{Attempt, AttemptResult, RequestRecord, ResponseRecord};
use hookd_core::flow;
use hookd_core::retry::WebhookEffect;
use hookd_core::signature::SigningSecret;
use hookd_core::store::{Claim, Enqueued, EventToStore, Lane, NewDelivery, NextState, Outcome};
use hookd_core::{
    AttemptId, Delivery, DeliveryId, DeliveryStatus, EventId, EventType, NewEvent, Store, Webhook,
    WebhookId,
};
use hookd_store_sql::secrets::Keys;
use hookd_store_sqlite::SqliteStore;
use serde_json::json;

const T0: i64 = 1_700_000_000_000;

/// A fresh store on a file of its own, and the file's path (removed by [`remove`]).
async fn open() -> (SqliteStore, String) {
    let path =
        std::env::temp_dir().join(format!("hookd-batches-{:016x}.db", rand::random::<u64>()));
    let path = path.display().to_string();
    let store = SqliteStore::connect(&format!("sqlite://{path}"), Keys::ephemeral())
        .await
        .expect("open");
    store.migrate().await.expect("migrate");
    (store, path)
}

fn remove(path: &str) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{path}{suffix}"));
    }
}

fn event(key: Option<String>, webhook: &WebhookId) -> EventToStore {
    EventToStore {
        id: EventId::generate(T0),
        event: NewEvent {
            event_type: EventType::parse("entry.create").expect("valid event type"),
            model: None,
            data: json!({"n": 1}),
            occurred_at: T0,
            idempotency_key: key,
        },
        deliveries: vec![NewDelivery {
            id: DeliveryId::generate(T0),
            webhook_id: webhook.clone(),
            entry_index: None,
            status: DeliveryStatus::Pending,
            next_attempt_at: T0,
            lease: None,
        }],
    }
}

async fn webhook(store: &SqliteStore, failing_since: Option<i64>) -> WebhookId {
    let spec = json!({"name": "w", "url": "https://example.com/", "method": "POST",
        "secret": SigningSecret::generate_standard()});
    let w = Webhook {
        id: WebhookId::generate(T0),
        active: true,
        disabled_reason: None,
        failing_since,
        spec: serde_json::from_value(spec).expect("spec"),
        created_at: T0,
        updated_at: T0,
        circuit: Default::default(),
    };
    store.insert_webhook(&w).await.expect("insert webhook");
    w.id
}

async fn claim_all(store: &SqliteStore, token: &str) -> Vec<Delivery> {
    let claim = Claim {
        lane: Lane::First,
        now_ms: T0,
        limit: 10_000,
        lease: Duration::from_secs(30),
        lease_token: token.to_owned(),
        default_max_in_flight: 10_000,
        share: hookd_core::share::Share::everything(),
    };
    store
        .claim_due_deliveries(&claim)
        .await
        .expect("claim")
        .deliveries
}

fn outcome(d: &Delivery, token: &str, next: NextState, webhook: WebhookEffect) -> Outcome {
    let status = if next == NextState::Succeeded {
        200
    } else {
        500
    };
    Outcome {
        attempt: Attempt {
            id: AttemptId::generate(T0),
            delivery_id: d.id.clone(),
            webhook_id: d.webhook_id.clone(),
            attempt: 1,
            started_at: T0,
            duration_ms: 1,
            request: RequestRecord {
                method: "POST".into(),
                url: "https://example.com/".into(),
                headers: vec![],
            },
            response: Some(ResponseRecord {
                status,
                headers: vec![],
                body: String::new(),
                body_truncated: false,
            }),
            error_kind: None,
            error: (status != 200).then(|| format!("HTTP {status}")),
        },
        lease_token: token.to_owned(),
        next,
        webhook,
        disable_if_failing_since_before: T0 - 1_000,
        circuit: flow::signal(&AttemptResult::Response {
            status,
            retry_after: None,
        }),
        circuit_policy: flow::CircuitPolicy::default(),
        now_ms: T0 + 1,
    }
}

fn nth_next(i: usize) -> NextState {
    match i % 4 {
        0 => NextState::Succeeded,
        1 => NextState::Retry { at_ms: T0 + 5_000 },
        2 => NextState::Failed,
        _ => NextState::Cancelled,
    }
}

#[tokio::test]
async fn the_bundled_sqlite_supports_update_from() {
    let pool = sqlx::SqlitePool::connect("sqlite::memory:")
        .await
        .expect("memory");
    let version: String = sqlx::query_scalar("SELECT sqlite_version()")
        .fetch_one(&pool)
        .await
        .expect("version");
    let parts: Vec<u32> = version
        .split('.')
        .map(|p| p.parse().expect("number"))
        .collect();
    assert!(
        parts[..2] >= [3, 33][..],
        "UPDATE ... FROM needs SQLite 3.33, have {version}"
    );
}

/// 2500 events and outcomes: several statements' worth of rows, recorded as one batch.
#[tokio::test]
async fn slices_beyond_one_statement_store_and_move_every_row() {
    let (store, path) = open().await;
    let wh = webhook(&store, None).await;
    let events: Vec<EventToStore> = (0..2500).map(|_| event(None, &wh)).collect();
    let results = store.enqueue_events(&events, T0).await.expect("enqueue");
    let created = |e: &EventToStore| Enqueued::Created {
        id: e.id.clone(),
        deliveries: 1,
    };
    assert_eq!(results, events.iter().map(created).collect::<Vec<_>>());

    let mut claimed = claim_all(&store, "lease-1").await;
    assert_eq!(claimed.len(), 2500);
    claimed.sort_by(|a, b| a.id.cmp(&b.id));
    let outcomes: Vec<Outcome> = claimed
        .iter()
        .enumerate()
        .map(|(i, d)| outcome(d, "lease-1", nth_next(i), WebhookEffect::Healthy))
        .collect();
    store.record_outcomes(&outcomes).await.expect("record");
    for (i, d) in claimed.iter().enumerate() {
        let stored = store
            .get_delivery(&d.id)
            .await
            .expect("get")
            .expect("exists");
        let (status, due) = match nth_next(i) {
            NextState::Succeeded => (DeliveryStatus::Succeeded, None),
            NextState::Retry { at_ms } => (DeliveryStatus::Retrying, Some(at_ms)),
            NextState::Failed => (DeliveryStatus::Failed, None),
            NextState::Cancelled => (DeliveryStatus::Cancelled, None),
        };
        assert_eq!(
            (stored.status, stored.attempts, stored.next_attempt_at),
            (status, 1, due)
        );
        assert_eq!(store.list_attempts(&d.id).await.expect("attempts").len(), 1);
    }
    remove(&path);
}

/// Keys repeated across statement chunks, taken before the slice, and mixed with keyless events.
#[tokio::test]
async fn idempotency_keys_hold_across_chunks() {
    let (store, path) = open().await;
    let wh = webhook(&store, None).await;
    let earlier = event(Some("k5".into()), &wh);
    store
        .enqueue_events(std::slice::from_ref(&earlier), T0)
        .await
        .expect("enqueue");
    // Event i has key k(i % 1100) when i is even, none when odd: 1100 keyed events, then
    // repeats of the first keys, in the second chunk of keyed rows.
    let key = |i: usize| match i % 2 {
        0 => Some(format!("k{}", (i / 2) % 1100)),
        _ => None,
    };
    let events: Vec<EventToStore> = (0..2400).map(|i| event(key(i), &wh)).collect();
    let results = store.enqueue_events(&events, T0).await.expect("enqueue");
    for (i, (e, result)) in events.iter().zip(&results).enumerate() {
        let first = match key(i) {
            Some(k) if k == "k5" => Some(&earlier.id),
            Some(_) if i >= 2200 => Some(&events[i - 2200].id),
            _ => None,
        };
        match (first, result) {
            (None, Enqueued::Created { id, deliveries: 1 }) => assert_eq!(id, &e.id),
            (Some(first), Enqueued::Duplicate(stored)) => {
                assert_eq!(&stored.id, first);
                assert_eq!(stored.idempotency_key, key(i));
            }
            (first, result) => panic!("event {i}: expected {first:?}, got {result:?}"),
        }
    }
    let stored = claim_all(&store, "lease-1").await.len();
    assert_eq!(stored, 1 + 1200 + 1100 - 1, "one delivery per stored event");
    remove(&path);
}

/// The change counter is read on the writer, so what this store commits does not wake its own
/// waiter (its process wakes its worker directly); another handle's commit, as another process
/// makes, does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_other_handles_commits_wake_a_waiter() {
    let (store, path) = open().await;
    let other = SqliteStore::connect(&format!("sqlite://{path}"), Keys::ephemeral())
        .await
        .expect("open a second handle");
    let wh = webhook(&store, None).await;
    store.wait_for_work(Duration::from_millis(1)).await;

    let (mine, theirs) = ([event(None, &wh)], [event(None, &wh)]);
    let started = std::time::Instant::now();
    let (_, stored) = tokio::join!(
        store.wait_for_work(Duration::from_millis(400)),
        store.enqueue_events(&mine, T0),
    );
    stored.expect("enqueue");
    assert!(
        started.elapsed() >= Duration::from_millis(350),
        "woken by its own commit after {:?}",
        started.elapsed()
    );

    let started = std::time::Instant::now();
    let (_, stored) = tokio::join!(
        store.wait_for_work(Duration::from_secs(10)),
        other.enqueue_events(&theirs, T0),
    );
    stored.expect("enqueue");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "not woken by the other handle's commit: {:?}",
        started.elapsed()
    );
    remove(&path);
}
