//! Per-webhook flow control, so that one bad endpoint never delays the others (SPEC §7,
//! "Isolation"): how many requests a webhook may have in flight, how fast it may be called, and
//! its circuit breaker. Pure rules on plain data; the stores keep the state and serialise the
//! claims that apply them.
//!
//! - **In-flight cap.** A webhook's deliveries under a live lease, in both lanes and in every
//!   worker process, are its requests in flight; a claim takes at most `max_in_flight` minus
//!   those.
//! - **Rate limit.** A generic cell rate algorithm (GCRA) over one stored instant per webhook,
//!   the theoretical arrival time (`rate_tat_us`): requests are spaced `1/N` s apart, with a
//!   tolerance of [`RATE_TOLERANCE_US`] so that one claim may take a few at once. Over any
//!   one-second window at most `N + N/20 + 1` requests start.
//! - **Circuit breaker.** After `failures` consecutive failures that say the endpoint is down or
//!   overloaded (timeouts, connection errors, 5xx, 429) the circuit opens: the webhook's
//!   deliveries wait, unattempted, for a cool-down that doubles with each consecutive opening.
//!   Then it is half open: one request (the probe) may be in flight; a success closes the
//!   circuit, a failure opens it again for longer.

use std::time::Duration;

use crate::delivery::{AttemptResult, ErrorKind};
use crate::ids::WebhookId;

/// How far ahead of its turn a rate-limited request may start (GCRA's burst tolerance): a claim
/// may take up to 1/20 s of a webhook's rate at once instead of waking for every request.
pub const RATE_TOLERANCE_US: i64 = 50_000;

/// A webhook's circuit breaker, as stored beside the webhook.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Circuit {
    /// Failures since the last success (or reachable answer).
    pub consecutive_failures: u32,
    /// Set while the circuit is open or half open: until when deliveries wait. Past it, one
    /// probe may go.
    pub open_until: Option<i64>,
    /// How many times in a row it opened without a success in between; the cool-down doubles
    /// with each.
    pub opens: u32,
}

/// What the circuit lets through now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Every request may go.
    Closed,
    /// No request goes before `until` (epoch ms).
    Open { until: i64 },
    /// One request (the probe) may be in flight; its outcome closes or reopens the circuit.
    HalfOpen,
}

impl CircuitState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open { .. } => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

/// When a circuit opens and for how long (`delivery.circuit_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitPolicy {
    /// Consecutive failures that open the circuit; 0 turns circuit breaking off.
    pub failures: u32,
    /// The first cool-down; it doubles with each consecutive opening.
    pub cooldown: Duration,
    /// The longest cool-down.
    pub max_cooldown: Duration,
}

impl Default for CircuitPolicy {
    fn default() -> Self {
        Self {
            failures: 5,
            cooldown: Duration::from_secs(10),
            max_cooldown: Duration::from_secs(600),
        }
    }
}

/// What one attempt says about its endpoint's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// The endpoint answered and is not overloaded (any status but 5xx and 429).
    Reachable,
    /// A timeout, a connection, DNS, TLS or I/O error, a 5xx or a 429.
    Failure,
    /// Nothing was sent, or the failure was ours (a template, the SSRF guard).
    Neutral,
}

/// Classifies an attempt's result for the circuit breaker.
pub fn signal(result: &AttemptResult) -> Signal {
    match result {
        AttemptResult::Response { status, .. } if *status >= 500 || *status == 429 => {
            Signal::Failure
        }
        AttemptResult::Response { .. } => Signal::Reachable,
        AttemptResult::Error(
            ErrorKind::Dns
            | ErrorKind::Connect
            | ErrorKind::Tls
            | ErrorKind::Timeout
            | ErrorKind::Io,
        ) => Signal::Failure,
        AttemptResult::Error(_) => Signal::Neutral,
    }
}

impl Circuit {
    /// The state at `now_ms`.
    pub fn state(&self, now_ms: i64) -> CircuitState {
        match self.open_until {
            None => CircuitState::Closed,
            Some(until) if until > now_ms => CircuitState::Open { until },
            Some(_) => CircuitState::HalfOpen,
        }
    }

    /// The circuit after an attempt that gave `signal`, observed at `now_ms`.
    ///
    /// A failure while open changes nothing: it comes from a request sent before the circuit
    /// opened. A failure while half open is the probe's (or a late one's): the circuit opens
    /// again for twice as long.
    pub fn after(self, signal: Signal, now_ms: i64, policy: &CircuitPolicy) -> Circuit {
        match signal {
            Signal::Neutral => self,
            Signal::Reachable => Circuit::default(),
            // Circuit breaking turned off: whatever was open closes.
            Signal::Failure if policy.failures == 0 => Circuit::default(),
            Signal::Failure => {
                let failures = self.consecutive_failures.saturating_add(1);
                let reopen = match self.state(now_ms) {
                    CircuitState::Open { .. } => return self.with_failures(failures),
                    CircuitState::HalfOpen => true,
                    CircuitState::Closed => failures >= policy.failures,
                };
                if !reopen {
                    return self.with_failures(failures);
                }
                let opens = self.opens.saturating_add(1);
                let cooldown = cooldown(policy, opens);
                Circuit {
                    consecutive_failures: failures,
                    open_until: Some(now_ms.saturating_add(cooldown.as_millis() as i64)),
                    opens,
                }
            }
        }
    }

    fn with_failures(self, consecutive_failures: u32) -> Circuit {
        Circuit {
            consecutive_failures,
            ..self
        }
    }
}

/// The cool-down of the `opens`-th consecutive opening: `cooldown × 2^(opens-1)`, capped.
pub fn cooldown(policy: &CircuitPolicy, opens: u32) -> Duration {
    let doublings = opens.saturating_sub(1).min(30);
    policy
        .cooldown
        .saturating_mul(1 << doublings)
        .min(policy.max_cooldown)
}

/// Microseconds between two requests at `per_second`, rounded up so the rate is never exceeded.
fn spacing_us(per_second: u32) -> i64 {
    let n = i64::from(per_second.max(1));
    (1_000_000 + n - 1) / n
}

/// How many requests a webhook limited to `per_second` may start at `now_us`, given its stored
/// theoretical arrival time `tat_us`.
pub fn rate_allowance(per_second: u32, tat_us: i64, now_us: i64) -> u32 {
    let start = tat_us.max(now_us);
    let room = now_us + RATE_TOLERANCE_US - start;
    if room < 0 {
        return 0;
    }
    u32::try_from(room / spacing_us(per_second) + 1).unwrap_or(u32::MAX)
}

/// The theoretical arrival time after `taken` requests started at `now_us`.
pub fn rate_after(per_second: u32, tat_us: i64, now_us: i64, taken: u32) -> i64 {
    tat_us.max(now_us) + spacing_us(per_second) * i64::from(taken)
}

/// When (epoch ms) the next request of a webhook with theoretical arrival time `tat_us` may
/// start.
pub fn rate_next_ms(tat_us: i64) -> i64 {
    (tat_us - RATE_TOLERANCE_US + 999).div_euclid(1000)
}

/// The stored limits and state of a webhook, as a claim reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// A disabled webhook's deliveries are failed unsent, so no limit applies to them.
    pub active: bool,
    /// `None`: the server's `delivery.max_in_flight_per_webhook`.
    pub max_in_flight: Option<u32>,
    /// Requests per second; `None`: unlimited.
    pub rate_limit: Option<u32>,
    /// The rate limiter's theoretical arrival time (epoch µs).
    pub rate_tat_us: i64,
    pub circuit: Circuit,
}

/// One webhook with unfinished deliveries in the lane being claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub webhook_id: WebhookId,
    /// The earliest `next_attempt_at` of its unfinished deliveries in the lane.
    pub due_at: i64,
    /// Its deliveries under a live lease, in both lanes.
    pub in_flight: u32,
    /// `None` when the webhook no longer exists (a publish raced its deletion): its deliveries
    /// are claimed without limits, for the worker to cancel. Those of a disabled webhook are
    /// too, for the worker to fail unsent.
    pub limits: Option<Limits>,
}

/// How many due deliveries of one webhook a claim may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub webhook_id: WebhookId,
    pub count: u32,
}

/// What a claim may take, and when the lane should look again if it takes nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub grants: Vec<Grant>,
    /// The earliest instant (epoch ms) a webhook not granted now may be: when its next delivery
    /// falls due, its rate allows another request or its circuit's cool-down ends. Webhooks at
    /// their in-flight cap have no such instant: a finished delivery wakes the lane.
    pub next_at: Option<i64>,
    /// A webhook has due deliveries but no room (its cap, or its probe, is in flight): only a
    /// finished delivery lets the claim take more.
    pub waits_for_a_slot: bool,
}

/// Decides what a claim at `now_ms` may take of each candidate, at most `batch` in all per
/// webhook (the claim itself stops at `batch` in all, round-robin across webhooks).
pub fn plan(candidates: &[Candidate], now_ms: i64, default_max_in_flight: u32, batch: u32) -> Plan {
    plan_for(candidates, now_ms, default_max_in_flight, batch, &|_| 0)
}

/// [`plan`] for a claimer to which a webhook's deliveries fall due `delay` ms later than their
/// due time (another worker owns the webhook, [`crate::share`]). A webhook at its cap waits for
/// a slot by its real due time: a slot this claimer's process frees wakes it either way.
pub fn plan_for(
    candidates: &[Candidate],
    now_ms: i64,
    default_max_in_flight: u32,
    batch: u32,
    delay: &dyn Fn(&WebhookId) -> i64,
) -> Plan {
    let mut plan = Plan::default();
    let mut later = |at: i64| plan_later(&mut plan.next_at, at);
    let mut grants = Vec::new();
    for c in candidates {
        let due_at = c.due_at.saturating_add(delay(&c.webhook_id));
        let Some(limits) = c.limits.as_ref().filter(|l| l.active) else {
            if due_at <= now_ms {
                grants.push(grant(c, batch));
            } else {
                later(due_at);
            }
            continue;
        };
        let cap = limits.max_in_flight.unwrap_or(default_max_in_flight);
        let mut room = cap.saturating_sub(c.in_flight).min(batch);
        match limits.circuit.state(now_ms) {
            CircuitState::Closed => {}
            CircuitState::Open { until } => {
                later(until.max(due_at));
                continue;
            }
            CircuitState::HalfOpen => room = room.min(u32::from(c.in_flight == 0)),
        }
        if room == 0 {
            plan.waits_for_a_slot |= c.due_at <= now_ms;
            continue;
        }
        if let Some(rate) = limits.rate_limit {
            let allowed = rate_allowance(rate, limits.rate_tat_us, now_ms * 1000);
            if allowed == 0 {
                later(rate_next_ms(limits.rate_tat_us).max(due_at));
                continue;
            }
            room = room.min(allowed);
        }
        if due_at > now_ms {
            later(due_at);
            continue;
        }
        grants.push(Grant {
            webhook_id: c.webhook_id.clone(),
            count: room,
        });
    }
    plan.grants = grants;
    plan
}

fn grant(c: &Candidate, count: u32) -> Grant {
    Grant {
        webhook_id: c.webhook_id.clone(),
        count,
    }
}

fn plan_later(next_at: &mut Option<i64>, at: i64) {
    *next_at = Some(next_at.map_or(at, |n| n.min(at)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> CircuitPolicy {
        CircuitPolicy {
            failures: 3,
            cooldown: Duration::from_secs(10),
            max_cooldown: Duration::from_secs(60),
        }
    }

    #[test]
    fn signals_classify_attempts() {
        let response = |status| AttemptResult::Response {
            status,
            retry_after: None,
        };
        assert_eq!(signal(&response(200)), Signal::Reachable);
        assert_eq!(signal(&response(404)), Signal::Reachable);
        assert_eq!(signal(&response(429)), Signal::Failure);
        assert_eq!(signal(&response(503)), Signal::Failure);
        assert_eq!(
            signal(&AttemptResult::Error(ErrorKind::Timeout)),
            Signal::Failure
        );
        assert_eq!(
            signal(&AttemptResult::Error(ErrorKind::Connect)),
            Signal::Failure
        );
        assert_eq!(
            signal(&AttemptResult::Error(ErrorKind::InvalidPayload)),
            Signal::Neutral
        );
        assert_eq!(
            signal(&AttemptResult::Error(ErrorKind::WebhookDisabled)),
            Signal::Neutral
        );
    }

    #[test]
    fn circuit_opens_after_consecutive_failures_and_a_success_resets_the_count() {
        let p = policy();
        let mut c = Circuit::default();
        c = c
            .after(Signal::Failure, 0, &p)
            .after(Signal::Failure, 1, &p);
        assert_eq!(c.state(1), CircuitState::Closed);
        c = c.after(Signal::Reachable, 2, &p);
        assert_eq!(c, Circuit::default());
        c = c
            .after(Signal::Failure, 3, &p)
            .after(Signal::Failure, 4, &p)
            .after(Signal::Neutral, 5, &p)
            .after(Signal::Failure, 6, &p);
        assert_eq!(c.state(6), CircuitState::Open { until: 10_006 });
        assert_eq!(c.opens, 1);
    }

    #[test]
    fn failures_while_open_change_nothing_and_a_failed_probe_doubles_the_cooldown() {
        let p = policy();
        let open = Circuit {
            consecutive_failures: 3,
            open_until: Some(10_000),
            opens: 1,
        };
        let late = open.after(Signal::Failure, 5_000, &p);
        assert_eq!(late.open_until, Some(10_000));
        assert_eq!(late.state(10_000), CircuitState::HalfOpen);
        let reopened = late.after(Signal::Failure, 12_000, &p);
        assert_eq!(reopened.state(12_000), CircuitState::Open { until: 32_000 });
        assert_eq!(reopened.opens, 2);
        let closed = reopened.after(Signal::Reachable, 40_000, &p);
        assert_eq!(closed.state(40_000), CircuitState::Closed);
    }

    #[test]
    fn cooldown_doubles_up_to_the_maximum() {
        let p = policy();
        let secs: Vec<u64> = (1..=5).map(|n| cooldown(&p, n).as_secs()).collect();
        assert_eq!(secs, [10, 20, 40, 60, 60]);
        assert_eq!(cooldown(&p, u32::MAX), Duration::from_secs(60));
    }

    #[test]
    fn zero_failures_turns_circuit_breaking_off() {
        let p = CircuitPolicy {
            failures: 0,
            ..policy()
        };
        let mut c = Circuit::default();
        for t in 0..100 {
            c = c.after(Signal::Failure, t, &p);
        }
        assert_eq!(c.state(100), CircuitState::Closed);
        let was_open = Circuit {
            consecutive_failures: 9,
            open_until: Some(50),
            opens: 2,
        };
        assert_eq!(
            was_open.after(Signal::Failure, 100, &p),
            Circuit::default(),
            "a circuit opened before breaking was turned off closes at its next failure"
        );
    }

    /// Simulates claims every `every_us` for `total_us` against a limit of `n`/s and returns the
    /// start times of the requests they allow.
    fn simulate(n: u32, every_us: i64, total_us: i64) -> Vec<i64> {
        let (mut tat, mut starts) = (0, Vec::new());
        let mut now = 1_000_000;
        while now < 1_000_000 + total_us {
            let k = rate_allowance(n, tat, now);
            tat = rate_after(n, tat, now, k);
            starts.extend(std::iter::repeat_n(now, k as usize));
            now += every_us;
        }
        starts
    }

    fn busiest_second(starts: &[i64]) -> usize {
        starts
            .iter()
            .map(|&t| {
                starts
                    .iter()
                    .filter(|&&s| s >= t && s < t + 1_000_000)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn the_rate_limit_holds_in_every_one_second_window() {
        for (n, every_us) in [
            (1, 1_000),
            (20, 1_000),
            (20, 37_000),
            (100, 5_000),
            (500, 20_000),
        ] {
            let starts = simulate(n, every_us, 5_000_000);
            let busiest = busiest_second(&starts);
            let bound = n as usize + n as usize / 20 + 1;
            assert!(
                busiest <= bound,
                "{n}/s every {every_us} µs: {busiest} > {bound}"
            );
            // And the limit is not wasted: close to n per second overall.
            let expect = 5 * n as usize;
            assert!(
                starts.len() + n as usize / 5 + 2 >= expect,
                "{n}/s: {}",
                starts.len()
            );
        }
    }

    #[test]
    fn the_next_rate_instant_is_when_a_request_conforms() {
        let tat = 2_000_000;
        let at = rate_next_ms(tat);
        assert_eq!(rate_allowance(10, tat, (at - 1) * 1000), 0);
        assert_eq!(rate_allowance(10, tat, at * 1000), 1);
    }

    fn candidate(id: &str, due_at: i64, in_flight: u32, limits: Option<Limits>) -> Candidate {
        Candidate {
            webhook_id: WebhookId::from_trusted(id.into()),
            due_at,
            in_flight,
            limits,
        }
    }

    fn limits(max_in_flight: Option<u32>) -> Limits {
        Limits {
            active: true,
            max_in_flight,
            rate_limit: None,
            rate_tat_us: 0,
            circuit: Circuit::default(),
        }
    }

    fn counts(p: &Plan) -> Vec<(String, u32)> {
        p.grants
            .iter()
            .map(|g| (g.webhook_id.to_string(), g.count))
            .collect()
    }

    #[test]
    fn a_webhook_at_its_cap_gets_nothing_and_the_others_their_room() {
        let p = plan(
            &[
                candidate("wh_full", 0, 16, Some(limits(None))),
                candidate("wh_some", 0, 10, Some(limits(Some(12)))),
                candidate("wh_idle", 0, 0, Some(limits(None))),
                candidate("wh_later", 500, 0, Some(limits(None))),
            ],
            100,
            16,
            256,
        );
        assert_eq!(counts(&p), [("wh_some".into(), 2), ("wh_idle".into(), 16)]);
        assert_eq!(p.next_at, Some(500));
        assert!(
            p.waits_for_a_slot,
            "the full webhook waits for a finished delivery"
        );
        let p = plan(
            &[candidate("wh_idle", 0, 0, Some(limits(None)))],
            100,
            16,
            256,
        );
        assert!(!p.waits_for_a_slot);
    }

    #[test]
    fn open_circuits_wait_and_half_open_ones_send_one_probe() {
        let open = Limits {
            circuit: Circuit {
                consecutive_failures: 5,
                open_until: Some(1_000),
                opens: 1,
            },
            ..limits(None)
        };
        let p = plan(
            &[candidate("wh_open", 0, 0, Some(open.clone()))],
            100,
            16,
            256,
        );
        assert!(p.grants.is_empty());
        assert_eq!(p.next_at, Some(1_000));
        let p = plan(
            &[candidate("wh_open", 0, 0, Some(open.clone()))],
            1_000,
            16,
            256,
        );
        assert_eq!(counts(&p), [("wh_open".into(), 1)]);
        let p = plan(&[candidate("wh_open", 0, 1, Some(open))], 1_000, 16, 256);
        assert!(p.grants.is_empty());
        assert_eq!(p.next_at, None);
    }

    #[test]
    fn rate_limited_webhooks_get_their_allowance_and_say_when_more_may_go() {
        let limited = Limits {
            rate_limit: Some(10),
            rate_tat_us: 5_000_000,
            ..limits(None)
        };
        let p = plan(
            &[candidate("wh_rate", 0, 0, Some(limited.clone()))],
            4_000,
            16,
            256,
        );
        assert!(p.grants.is_empty());
        assert_eq!(p.next_at, Some(4_950));
        let p = plan(&[candidate("wh_rate", 0, 0, Some(limited))], 9_000, 16, 256);
        assert_eq!(counts(&p), [("wh_rate".into(), 1)]);
    }

    #[test]
    fn deliveries_of_a_vanished_or_disabled_webhook_are_granted_for_failing_unsent() {
        let p = plan(&[candidate("wh_gone", 0, 3, None)], 100, 16, 50);
        assert_eq!(counts(&p), [("wh_gone".into(), 50)]);
        let off = Limits {
            active: false,
            circuit: Circuit {
                consecutive_failures: 9,
                open_until: Some(1_000),
                opens: 3,
            },
            ..limits(Some(1))
        };
        let p = plan(&[candidate("wh_off", 0, 1, Some(off))], 100, 16, 50);
        assert_eq!(counts(&p), [("wh_off".into(), 50)]);
    }
}
