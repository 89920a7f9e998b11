//! Sharing the webhooks out among the worker processes alive.
//!
//! PostgreSQL's `NOTIFY` reaches every listener. Were every worker woken by every publish and
//! to claim whatever it finds, two or three workers would split each publish's deliveries
//! into smaller claims, each with its own statements, outcome batches and waits for the claim
//! lock: measured on one PostgreSQL, three workers delivered a third less than one. So each
//! webhook has an owner among the workers alive, found by rendezvous hashing (the worker with
//! the highest score for the webhook): a worker joining or leaving moves only its own share.
//!
//! Ownership decides who looks first, never who may claim: a claim still takes its lock and
//! every limit holds across processes. A publish's own claim (the in-process hand-off) takes
//! only its worker's webhooks too, and notifications name the webhooks, so the owners are the
//! ones woken. Another worker's webhook is due here
//! [`STEAL_AFTER_MS`] later than for its owner ([`Share::candidates`]), so deliveries of a
//! webhook whose owner is busy, stuck or dead still go, a second late at worst.

use std::sync::Arc;

use crate::ids::WebhookId;

/// How much later a webhook another worker owns is due for this one.
pub const STEAL_AFTER_MS: i64 = 1_000;

/// Which webhooks this worker claims first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Share {
    /// This worker's id; `None`: no sharing, every webhook is this worker's.
    me: Option<Arc<str>>,
    /// The workers alive, this one among them.
    live: Arc<[Arc<str>]>,
}

impl Share {
    /// No sharing: every webhook is this worker's (one worker, or a claim made by a publish).
    pub fn everything() -> Self {
        Self::default()
    }

    /// Worker `me`'s share among the workers `live` (`me` counts as alive even when missing).
    pub fn new(me: &str, live: &[String]) -> Self {
        let mut all: Vec<Arc<str>> = live.iter().map(|id| Arc::from(id.as_str())).collect();
        if !live.iter().any(|id| id == me) {
            all.push(Arc::from(me));
        }
        Self {
            me: Some(Arc::from(me)),
            live: all.into(),
        }
    }

    /// How many workers share the webhooks (1 without sharing).
    pub fn workers(&self) -> usize {
        self.live.len().max(1)
    }

    /// Whether this worker owns `webhook`: it scores highest of the workers alive.
    pub fn owns(&self, webhook: &WebhookId) -> bool {
        let Some(me) = &self.me else {
            return true;
        };
        if self.live.len() <= 1 {
            return true;
        }
        let score = |worker: &Arc<str>| score(webhook.as_str(), worker);
        let owner = self
            .live
            .iter()
            .max_by(|a, b| score(a).cmp(&score(b)).then_with(|| a.cmp(b)));
        owner.is_some_and(|owner| owner == me)
    }

    /// How much later `webhook`'s deliveries fall due for this worker than for their owner:
    /// [`STEAL_AFTER_MS`] for another worker's webhook, else nothing.
    pub fn delay(&self, webhook: &WebhookId) -> i64 {
        if self.owns(webhook) {
            0
        } else {
            STEAL_AFTER_MS
        }
    }
}

/// The rendezvous score of `worker` for `webhook`: FNV-1a over both, then mixed
/// (splitmix64's finaliser), the same in every process and build.
fn score(webhook: &str, worker: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in webhook.bytes().chain([0xff]).chain(worker.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hooks(n: usize) -> Vec<WebhookId> {
        (0..n)
            .map(|i| WebhookId::from_trusted(format!("wh_{i:026}")))
            .collect()
    }

    fn live(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn each_webhook_has_exactly_one_owner_and_the_shares_are_even() {
        let workers = live(&["wk_a", "wk_b", "wk_c"]);
        let shares: Vec<Share> = workers.iter().map(|w| Share::new(w, &workers)).collect();
        let mut counts = [0usize; 3];
        for hook in hooks(3_000) {
            let owners: Vec<usize> = (0..3).filter(|&i| shares[i].owns(&hook)).collect();
            assert_eq!(owners.len(), 1, "{hook}");
            counts[owners[0]] += 1;
        }
        for n in counts {
            assert!((800..=1_200).contains(&n), "{counts:?}");
        }
    }

    #[test]
    fn a_worker_leaving_moves_only_its_own_webhooks() {
        let three = live(&["wk_a", "wk_b", "wk_c"]);
        let two = live(&["wk_a", "wk_b"]);
        for hook in hooks(500) {
            for me in ["wk_a", "wk_b"] {
                if Share::new(me, &three).owns(&hook) {
                    assert!(Share::new(me, &two).owns(&hook), "{hook} moved from {me}");
                }
            }
        }
    }

    #[test]
    fn alone_or_without_sharing_a_worker_owns_every_webhook() {
        let hook = &hooks(1)[0];
        assert!(Share::everything().owns(hook));
        assert!(Share::new("wk_a", &[]).owns(hook), "itself counts as alive");
        assert!(Share::new("wk_a", &live(&["wk_a"])).owns(hook));
        assert_eq!(Share::new("wk_a", &live(&["wk_b"])).workers(), 2);
    }

    #[test]
    fn a_webhook_of_another_worker_at_its_cap_still_waits_for_a_slot_here() {
        let workers = live(&["wk_a", "wk_b"]);
        let a = Share::new("wk_a", &workers);
        let theirs = hooks(40)
            .into_iter()
            .find(|h| !a.owns(h))
            .expect("one of 40");
        let full = crate::flow::Candidate {
            webhook_id: theirs,
            due_at: 100,
            in_flight: 4,
            limits: Some(crate::flow::Limits {
                active: true,
                max_in_flight: Some(4),
                rate_limit: None,
                rate_tat_us: 0,
                circuit: crate::flow::Circuit::default(),
            }),
        };
        let claim = crate::store::Claim {
            lane: crate::store::Lane::First,
            now_ms: 200,
            limit: 16,
            lease: std::time::Duration::from_secs(30),
            lease_token: "t".into(),
            default_max_in_flight: 64,
            share: a,
        };
        let plan = claim.plan(&[full]);
        assert!(plan.grants.is_empty());
        assert!(
            plan.waits_for_a_slot,
            "a slot this process frees must wake its lanes"
        );
    }

    #[test]
    fn another_workers_webhooks_are_due_later_here() {
        let workers = live(&["wk_a", "wk_b"]);
        let a = Share::new("wk_a", &workers);
        let all = hooks(40);
        let mine = all.iter().find(|h| a.owns(h)).expect("one of 40");
        let theirs = all.iter().find(|h| !a.owns(h)).expect("one of 40");
        assert_eq!(a.delay(mine), 0);
        assert_eq!(a.delay(theirs), STEAL_AFTER_MS);
        assert_eq!(Share::everything().delay(theirs), 0);
    }
}
