//! Attempts over time: a window cut into equal buckets, and what each bucket shows (attempts,
//! succeeded and failed ones, latency percentiles). The stores group the window's attempts by
//! bucket and latency ([`AttemptGroup`]); [`buckets`] turns those groups into every bucket of
//! the window, empty ones included.

use crate::delivery::{Attempt, ErrorKind};
use crate::ids::WebhookId;

/// A time window of attempts, `buckets` buckets of `bucket_ms` each from `from_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptWindow {
    /// The start of the first bucket (epoch ms, a multiple of `bucket_ms`).
    pub from_ms: i64,
    pub bucket_ms: i64,
    pub buckets: u32,
    /// Only this webhook's attempts; `None`: every webhook's.
    pub webhook_id: Option<WebhookId>,
}

impl AttemptWindow {
    /// The `buckets` buckets aligned on multiples of `bucket_ms` whose last one holds `now_ms`.
    pub fn ending_at(
        now_ms: i64,
        bucket_ms: i64,
        buckets: u32,
        webhook_id: Option<WebhookId>,
    ) -> Self {
        let last = now_ms.div_euclid(bucket_ms) * bucket_ms;
        Self {
            from_ms: last - (i64::from(buckets) - 1) * bucket_ms,
            bucket_ms,
            buckets,
            webhook_id,
        }
    }

    /// The end of the last bucket (exclusive).
    pub fn to_ms(&self) -> i64 {
        self.from_ms + i64::from(self.buckets) * self.bucket_ms
    }
}

/// What the attempts started in one bucket show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptBucket {
    pub start_ms: i64,
    /// Attempts started in the bucket.
    pub attempts: u64,
    /// Those answered 2xx ([`Attempt::succeeded`]).
    pub succeeded: u64,
    /// The others: another status, no answer, or nothing sent.
    pub failed: u64,
    /// The median of their latencies ([`Attempt::latency_ms`], nearest rank); `None` when no
    /// attempt of the bucket has one.
    pub latency_p50_ms: Option<u64>,
    /// The 95th percentile (nearest rank).
    pub latency_p95_ms: Option<u64>,
}

/// What a store counts: the attempts of bucket `bucket` (its index from the window's start)
/// that took `latency_ms`, and how many of them succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptGroup {
    pub bucket: i64,
    pub latency_ms: Option<i64>,
    pub attempts: u64,
    pub succeeded: u64,
}

impl Attempt {
    /// The endpoint answered 2xx.
    pub fn succeeded(&self) -> bool {
        self.response
            .as_ref()
            .is_some_and(|r| (200..300).contains(&r.status))
    }

    /// How long the request took, for attempts that tried to send one; `None` when nothing
    /// was sent (the payload could not be built, the webhook was disabled or gone).
    pub fn latency_ms(&self) -> Option<u64> {
        match self.error_kind {
            Some(ErrorKind::InvalidPayload | ErrorKind::WebhookDisabled | ErrorKind::Gone) => None,
            _ => Some(self.duration_ms),
        }
    }
}

/// Every bucket of `window`, oldest first, from the store's groups (groups outside the window
/// are ignored; a bucket without groups is all zeros).
pub fn buckets(window: &AttemptWindow, groups: &[AttemptGroup]) -> Vec<AttemptBucket> {
    let n = window.buckets as usize;
    let mut latencies: Vec<Vec<(u64, u64)>> = vec![Vec::new(); n];
    let mut out: Vec<AttemptBucket> = (0..n)
        .map(|i| AttemptBucket {
            start_ms: window.from_ms + i as i64 * window.bucket_ms,
            attempts: 0,
            succeeded: 0,
            failed: 0,
            latency_p50_ms: None,
            latency_p95_ms: None,
        })
        .collect();
    for g in groups {
        let Some(b) = usize::try_from(g.bucket).ok().filter(|&b| b < n) else {
            continue;
        };
        out[b].attempts += g.attempts;
        out[b].succeeded += g.succeeded;
        out[b].failed += g.attempts.saturating_sub(g.succeeded);
        if let Some(ms) = g.latency_ms.and_then(|ms| u64::try_from(ms).ok()) {
            latencies[b].push((ms, g.attempts));
        }
    }
    for (bucket, mut l) in out.iter_mut().zip(latencies) {
        l.sort_unstable();
        bucket.latency_p50_ms = percentile(&l, 50);
        bucket.latency_p95_ms = percentile(&l, 95);
    }
    out
}

/// The nearest-rank `p`th percentile of `(value, count)` pairs sorted by value: the smallest
/// value with at least `p`% of all counts at or below it.
fn percentile(sorted: &[(u64, u64)], p: u64) -> Option<u64> {
    let total: u64 = sorted.iter().map(|(_, n)| n).sum();
    if total == 0 {
        return None;
    }
    let rank = (total * p).div_ceil(100).max(1);
    let mut seen = 0;
    sorted.iter().find_map(|&(v, n)| {
        seen += n;
        (seen >= rank).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn group(bucket: i64, latency_ms: Option<i64>, attempts: u64, succeeded: u64) -> AttemptGroup {
        AttemptGroup {
            bucket,
            latency_ms,
            attempts,
            succeeded,
        }
    }

    #[test]
    fn the_last_bucket_holds_now_and_buckets_are_aligned() {
        let now = 1_700_000_123_456;
        let w = AttemptWindow::ending_at(now, MIN, 60, None);
        assert_eq!(w.from_ms % MIN, 0);
        assert!(w.to_ms() - MIN <= now && now < w.to_ms());
        assert_eq!(w.to_ms() - w.from_ms, 60 * MIN);
    }

    #[test]
    fn every_bucket_is_present_with_counts_and_percentiles() {
        let w = AttemptWindow::ending_at(10 * MIN, MIN, 3, None);
        let got = buckets(
            &w,
            &[
                group(0, Some(10), 18, 18),
                group(0, Some(500), 2, 0),
                group(2, None, 1, 0),
                group(7, Some(1), 1, 1),
            ],
        );
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].start_ms, 8 * MIN);
        assert_eq!(
            (got[0].attempts, got[0].succeeded, got[0].failed),
            (20, 18, 2)
        );
        assert_eq!(
            (got[0].latency_p50_ms, got[0].latency_p95_ms),
            (Some(10), Some(500))
        );
        assert_eq!((got[1].attempts, got[1].latency_p50_ms), (0, None));
        assert_eq!((got[2].failed, got[2].latency_p95_ms), (1, None));
    }

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let l: Vec<(u64, u64)> = (1..=100).map(|v| (v, 1)).collect();
        assert_eq!(percentile(&l, 50), Some(50));
        assert_eq!(percentile(&l, 95), Some(95));
        assert_eq!(percentile(&[(7, 1)], 95), Some(7));
        assert_eq!(percentile(&[(1, 1), (9, 1)], 50), Some(1));
        assert_eq!(percentile(&[], 50), None);
    }
}
