//! The in-process hand-off from the publisher to this process's worker.
//!
//! While a worker runs in the publishing process and its budget has a slot free, a group
//! commit also claims first attempts in its own transaction
//! ([`hookd_core::Store::enqueue_events_and_claim`]: the same fair claim within every
//! webhook's limits, so the rows are written once, already leased) and hands what it took to
//! the worker together with the events and webhooks it already holds. A delivery published so
//! costs no claim transaction, no wake-up of a lane and no reads of its event and webhook.
//! What the claim left (webhooks at their limits, no slot free) waits for the lanes as before.
//!
//! The worker's dispatcher only starts sends: it never waits for the budget (the slots come
//! with what is handed), so a full budget cannot hold handed deliveries up.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hookd_core::flow::Candidate;
use hookd_core::share::Share;
use hookd_core::store::{Claim, Claimed, Lane};
use hookd_core::{Event, EventId, Webhook, WebhookId};
use tokio::sync::mpsc;

use super::{Budget, Known, Leased, Slots};
use crate::settings::DeliverySettings;

/// The hand-off's shared half: the process's budget of requests in flight, whether the
/// worker takes hand-offs, and the channel to its dispatcher.
#[derive(Debug)]
pub struct Handoff {
    budget: Budget,
    /// Set by the recorder while it cannot write outcomes: nothing is claimed then.
    recorder_failing: Arc<AtomicBool>,
    /// Whether a worker runs in this process and takes hand-offs.
    open: AtomicBool,
    tx: mpsc::UnboundedSender<Handed>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<Handed>>>,
    lease: Duration,
    default_max_in_flight: u32,
    /// The webhooks this process's worker looks at first ([`hookd_core::share`]), kept by the
    /// worker: a publish claims only those, and leaves the others to their owners.
    share: std::sync::RwLock<Share>,
}

/// Slots of the budget and the claim a publish may make with them.
#[derive(Debug)]
pub struct Grant {
    slots: Slots,
    pub claim: Claim,
}

/// What a publish claimed, with what it knew of it: the events it just stored and its cached
/// webhooks, corrected by what the claim read under its lock. (A claim may also take older
/// deliveries; the dispatcher reads their events and webhooks.)
#[derive(Debug)]
pub(crate) struct Handed {
    pub leased: Leased,
    pub known: Known,
}

impl Handoff {
    pub fn new(delivery: &DeliverySettings) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            budget: Budget::new(delivery.concurrency),
            recorder_failing: Arc::default(),
            open: AtomicBool::new(false),
            tx,
            rx: Mutex::new(Some(rx)),
            lease: delivery.lease,
            default_max_in_flight: delivery.max_in_flight_per_webhook,
            share: std::sync::RwLock::default(),
        }
    }

    pub(crate) fn budget(&self) -> Budget {
        self.budget.clone()
    }

    /// The worker's share of the webhooks now, which its lanes and publishes claim by.
    pub(crate) fn share(&self) -> Share {
        self.share.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether the worker owns `webhook` now.
    pub(crate) fn owns(&self, webhook: &WebhookId) -> bool {
        self.share
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .owns(webhook)
    }

    /// Takes `next` as the worker's share (its heartbeat read the workers alive); `true` when
    /// that changed it.
    pub(crate) fn set_share(&self, next: Share) -> bool {
        let mut current = self.share.write().unwrap_or_else(|e| e.into_inner());
        let changed = *current != next;
        *current = next;
        changed
    }

    pub(crate) fn recorder_failing(&self) -> Arc<AtomicBool> {
        self.recorder_failing.clone()
    }

    /// Opens the hand-off for the worker that runs: the dispatcher's end of the channel, the
    /// first time only.
    pub(crate) fn open(&self) -> Option<mpsc::UnboundedReceiver<Handed>> {
        let rx = self.rx.lock().expect("hand-off lock").take()?;
        self.open.store(true, Ordering::Release);
        Some(rx)
    }

    /// Stops new hand-offs (the worker is stopping).
    pub(crate) fn close(&self) {
        self.open.store(false, Ordering::Release);
    }

    /// Slots for up to `max` first attempts and the claim to make with them, when a worker
    /// takes hand-offs, its recorder writes and a slot is free now: this never waits.
    pub fn grant(&self, max: usize, now_ms: i64) -> Option<Grant> {
        if max == 0
            || !self.open.load(Ordering::Acquire)
            || self.recorder_failing.load(Ordering::Acquire)
        {
            return None;
        }
        let slots = self.budget.try_reserve(Lane::First, max)?;
        let claim = Claim {
            lane: Lane::First,
            now_ms,
            limit: u32::try_from(slots.len()).unwrap_or(u32::MAX),
            lease: self.lease,
            lease_token: crate::auth::generate_token(),
            default_max_in_flight: self.default_max_in_flight,
            // Another worker's webhooks are due later here, so they are left to their owner
            // (notified of what was left).
            share: self.share(),
        };
        Some(Grant { slots, claim })
    }

    /// Hands what `grant`'s claim took to the worker; the slots it did not need go back.
    /// Should the worker have stopped meanwhile, the deliveries stay leased and are sent
    /// again once the lease runs out, as a stopped worker's are.
    pub fn hand(
        &self,
        grant: Grant,
        claimed: Claimed,
        events: HashMap<EventId, Arc<Event>>,
        mut hooks: HashMap<WebhookId, Arc<Webhook>>,
    ) {
        let Grant { mut slots, claim } = grant;
        slots.truncate(claimed.deliveries.len());
        if claimed.deliveries.is_empty() {
            return;
        }
        correct(&mut hooks, &claimed.candidates);
        let handed = Handed {
            leased: Leased {
                deliveries: claimed.deliveries,
                slots,
                token: claim.lease_token,
            },
            known: Known { events, hooks },
        };
        if self.tx.send(handed).is_err() {
            tracing::warn!("the worker stopped before it took deliveries handed to it; they go again when their lease ends");
        }
    }
}

/// Brings cached webhooks up to what the claim read under its lock: whether each is active and
/// its circuit (a cached copy keeps them as of its load, and a circuit another process moved
/// must not pass for clean). A webhook the claim found gone is dropped, so it is read again.
fn correct(hooks: &mut HashMap<WebhookId, Arc<Webhook>>, candidates: &[Candidate]) {
    for c in candidates {
        let Some(cached) = hooks.get_mut(&c.webhook_id) else {
            continue;
        };
        match &c.limits {
            None => {
                hooks.remove(&c.webhook_id);
            }
            Some(l) if l.active != cached.active || l.circuit != cached.circuit => {
                let mut fresh = Webhook::clone(cached);
                fresh.active = l.active;
                fresh.circuit = l.circuit;
                *cached = Arc::new(fresh);
            }
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use hookd_core::flow::{Circuit, Limits};
    use hookd_core::webhook::WebhookSpec;

    use super::*;

    fn hook(n: u8) -> Arc<Webhook> {
        let spec: WebhookSpec = serde_json::from_value(serde_json::json!({
            "name": format!("w{n}"), "url": "http://127.0.0.1:9/", "method": "POST",
            "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "events": [{"type": "a.*"}]
        }))
        .unwrap();
        Arc::new(Webhook {
            id: WebhookId::generate(i64::from(n)),
            active: true,
            disabled_reason: None,
            failing_since: None,
            spec,
            created_at: 0,
            updated_at: 0,
            circuit: Circuit::default(),
        })
    }

    fn candidate(w: &Webhook, limits: Option<Limits>) -> Candidate {
        Candidate {
            webhook_id: w.id.clone(),
            due_at: 0,
            in_flight: 0,
            limits,
        }
    }

    fn limits(active: bool, circuit: Circuit) -> Option<Limits> {
        Some(Limits {
            active,
            max_in_flight: None,
            rate_limit: None,
            rate_tat_us: 0,
            circuit,
        })
    }

    #[test]
    fn cached_webhooks_take_the_claims_state_and_gone_ones_are_read_again() {
        let (same, probing, disabled, gone) = (hook(1), hook(2), hook(3), hook(4));
        let mut hooks: HashMap<WebhookId, Arc<Webhook>> = [&same, &probing, &disabled, &gone]
            .into_iter()
            .map(|w| (w.id.clone(), w.clone()))
            .collect();
        let half_open = Circuit {
            consecutive_failures: 3,
            open_until: Some(5),
            opens: 1,
        };
        correct(
            &mut hooks,
            &[
                candidate(&same, limits(true, Circuit::default())),
                candidate(&probing, limits(true, half_open)),
                candidate(&disabled, limits(false, Circuit::default())),
                candidate(&gone, None),
            ],
        );
        assert!(Arc::ptr_eq(&hooks[&same.id], &same), "unchanged: kept");
        assert_eq!(
            hooks[&probing.id].circuit, half_open,
            "another process's circuit"
        );
        assert_eq!(hooks[&probing.id].spec, probing.spec);
        assert!(!hooks[&disabled.id].active, "disabled since the cache load");
        assert!(!hooks.contains_key(&gone.id), "gone: read again");
    }
}
