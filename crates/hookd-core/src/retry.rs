//! When to try a delivery again, and what an attempt's result means for the delivery and its
//! webhook. Pure functions: the caller passes the jitter draw and the clock.

use std::time::Duration;

use crate::delivery::{AttemptResult, ErrorKind};

/// Seconds after each failed attempt: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (SPEC §7).
pub const DEFAULT_SCHEDULE: [u32; 7] = [5, 300, 1800, 7200, 18000, 36000, 36000];
/// Attempts in all with the default schedule: the immediate one plus seven retries.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 8;
/// Share of a delay added or removed at random so retries of many deliveries spread out.
pub const JITTER: f64 = 0.2;

/// A webhook's retry policy once server defaults are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    /// Delay after attempt *n* is `schedule[n-1]`; the last entry repeats if attempts outnumber it.
    pub schedule: Vec<u32>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            schedule: DEFAULT_SCHEDULE.to_vec(),
        }
    }
}

impl RetryPolicy {
    /// The scheduled delay after failed attempt number `attempt` (1-based), before jitter.
    pub fn base_delay(&self, attempt: u32) -> Duration {
        let i = (attempt.max(1) - 1) as usize;
        let secs = self
            .schedule
            .get(i)
            .or(self.schedule.last())
            .copied()
            .unwrap_or(5);
        Duration::from_secs(secs.into())
    }
}

/// What happens to a delivery after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Succeeded,
    /// Try again after this delay.
    Retry(Duration),
    /// No more attempts: exhausted or a permanent error.
    Failed,
}

/// What an attempt means for its webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookEffect {
    /// A success: clears the failure clock.
    Healthy,
    /// A failure: starts the failure clock if it is not running.
    Failing,
    /// Turn the webhook off now, with this reason (`410 Gone`).
    Disable(String),
    /// Says nothing about the endpoint (nothing was sent).
    Unchanged,
}

/// Decides the next step after attempt number `attempt`. `jitter` is a draw in `[0, 1)`.
pub fn decide(
    policy: &RetryPolicy,
    attempt: u32,
    result: &AttemptResult,
    jitter: f64,
) -> (Decision, WebhookEffect) {
    let retry_after = match result {
        AttemptResult::Response { status, .. } if (200..300).contains(status) => {
            return (Decision::Succeeded, WebhookEffect::Healthy);
        }
        AttemptResult::Response { status: 410, .. } => {
            let reason = "the endpoint answered 410 Gone".to_string();
            return (Decision::Failed, WebhookEffect::Disable(reason));
        }
        AttemptResult::Response {
            status: 429 | 503,
            retry_after,
            ..
        } => *retry_after,
        AttemptResult::Response { .. } => None,
        AttemptResult::Error(kind) if !kind.is_retryable() => {
            return (Decision::Failed, WebhookEffect::Failing);
        }
        AttemptResult::Error(_) => None,
    };
    if attempt >= policy.max_attempts {
        return (Decision::Failed, WebhookEffect::Failing);
    }
    let base = policy.base_delay(attempt);
    let delay = match retry_after {
        // Honour the receiver's wish, but never beyond twice our own schedule.
        Some(wish) => wish.min(base * 2),
        None => base.mul_f64(1.0 - JITTER + 2.0 * JITTER * jitter.clamp(0.0, 1.0)),
    };
    (Decision::Retry(delay), WebhookEffect::Failing)
}

/// Parses a `Retry-After` value: delay-seconds, or an HTTP date relative to `now_ms`.
pub fn parse_retry_after(value: &str, now_ms: i64) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value)
        .ok()?
        .timestamp_millis();
    Some(Duration::from_millis(
        at.saturating_sub(now_ms).max(0) as u64
    ))
}

impl ErrorKind {
    /// Transport failures are retried; a payload that cannot be built or an address hookd refuses
    /// to call will not change by trying again.
    pub fn is_retryable(self) -> bool {
        !matches!(
            self,
            ErrorKind::BlockedAddress
                | ErrorKind::InvalidPayload
                | ErrorKind::WebhookDisabled
                | ErrorKind::Gone
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(s: u16) -> AttemptResult {
        AttemptResult::Response {
            status: s,
            retry_after: None,
        }
    }

    #[test]
    fn only_2xx_succeeds() {
        let p = RetryPolicy::default();
        assert_eq!(decide(&p, 1, &status(204), 0.5).0, Decision::Succeeded);
        for s in [301, 302, 400, 404, 500] {
            assert_eq!(
                decide(&p, 1, &status(s), 0.5).0,
                Decision::Retry(Duration::from_secs(5))
            );
        }
    }

    #[test]
    fn schedule_jitter_and_exhaustion() {
        let p = RetryPolicy::default();
        assert_eq!(
            decide(&p, 2, &status(500), 0.5).0,
            Decision::Retry(Duration::from_secs(300))
        );
        assert_eq!(
            decide(&p, 2, &status(500), 0.0).0,
            Decision::Retry(Duration::from_secs(240))
        );
        assert_eq!(
            decide(&p, 2, &status(500), 1.0).0,
            Decision::Retry(Duration::from_secs(360))
        );
        assert_eq!(
            decide(&p, 7, &status(500), 0.5).0,
            Decision::Retry(Duration::from_secs(36000))
        );
        assert_eq!(
            decide(&p, 8, &status(500), 0.5),
            (Decision::Failed, WebhookEffect::Failing)
        );
        let short = RetryPolicy {
            max_attempts: 4,
            schedule: vec![1],
        };
        assert_eq!(short.base_delay(3), Duration::from_secs(1));
    }

    #[test]
    fn gone_disables_and_retry_after_is_clamped() {
        let p = RetryPolicy::default();
        assert!(matches!(
            decide(&p, 1, &status(410), 0.5).1,
            WebhookEffect::Disable(_)
        ));
        let wish = |secs| AttemptResult::Response {
            status: 429,
            retry_after: Some(Duration::from_secs(secs)),
        };
        assert_eq!(
            decide(&p, 1, &wish(7), 0.5).0,
            Decision::Retry(Duration::from_secs(7))
        );
        assert_eq!(
            decide(&p, 1, &wish(3600), 0.5).0,
            Decision::Retry(Duration::from_secs(10))
        );
    }

    #[test]
    fn permanent_errors_are_not_retried() {
        let p = RetryPolicy::default();
        let r = AttemptResult::Error(ErrorKind::BlockedAddress);
        assert_eq!(decide(&p, 1, &r, 0.5).0, Decision::Failed);
        let r = AttemptResult::Error(ErrorKind::Timeout);
        assert!(matches!(decide(&p, 1, &r, 0.5).0, Decision::Retry(_)));
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("120", 0), Some(Duration::from_secs(120)));
        let now = crate::time::parse_rfc3339("2015-10-21T07:28:00Z").unwrap();
        let d = parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now);
        assert_eq!(d, Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("soon", 0), None);
    }
}
