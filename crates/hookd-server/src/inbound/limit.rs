//! Rate limits of the public intake: a keyed generic cell rate algorithm (GCRA, the one the
//! webhooks' `rate_limit_per_second` uses, here in memory), and the client address a request
//! is counted against.
//!
//! No crate for this: `governor` would add about ten crates (a clock, a concurrent map, atomics
//! shims) for what is one instant per key behind a mutex here.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use axum::http::HeaderMap;
use hookd_core::net::Cidr;

/// Past this many keys, keys whose every allowance is back are dropped (they are equivalent to
/// a key never seen), so a flood of distinct client addresses cannot grow the map for long.
const PRUNE_AT: usize = 10_000;

/// At most `count` requests per `per` for each key, in bursts of up to `count`. Each key keeps
/// one instant, its theoretical arrival time: requests are spaced `per / count` apart, and a
/// request may start up to `per` ahead of its turn.
#[derive(Debug)]
pub struct KeyedLimiter<K> {
    /// `None`: no limit.
    spacing_us: Option<i64>,
    tolerance_us: i64,
    tats: Mutex<HashMap<K, i64>>,
}

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    /// `count` requests per `per`; `count == 0` allows everything.
    pub fn new(count: u32, per: Duration) -> Self {
        let per_us = i64::try_from(per.as_micros()).unwrap_or(i64::MAX).max(1);
        let spacing_us = (count > 0).then(|| (per_us / i64::from(count)).max(1));
        Self {
            spacing_us,
            tolerance_us: per_us - spacing_us.unwrap_or(0),
            tats: Mutex::default(),
        }
    }

    /// Takes one request for `key` at `now_us`; `Err` tells how long until one is allowed.
    pub fn check(&self, key: &K, now_us: i64) -> Result<(), Duration> {
        let Some(spacing) = self.spacing_us else {
            return Ok(());
        };
        let mut tats = self.tats.lock().expect("not poisoned");
        let tat = tats.get(key).copied().unwrap_or(now_us).max(now_us);
        let allowed_at = tat - self.tolerance_us;
        if allowed_at > now_us {
            let wait = u64::try_from(allowed_at - now_us).unwrap_or(0);
            return Err(Duration::from_micros(wait));
        }
        if tats.len() >= PRUNE_AT && !tats.contains_key(key) {
            tats.retain(|_, t| *t > now_us);
        }
        tats.insert(key.clone(), tat + spacing);
        Ok(())
    }
}

/// Whole seconds to put in `Retry-After` for a wait: at least 1.
pub fn retry_after_secs(wait: Duration) -> u32 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    u32::try_from(secs.max(1)).unwrap_or(u32::MAX)
}

/// The address a request is counted against: the peer, or, when the peer is one of the
/// `trusted` proxies, the last address in `X-Forwarded-For` that is not (addresses a client
/// wrote itself are to the left of those its proxies appended, so they are never taken while a
/// proxy's entry is there). `None` when the peer is unknown.
pub fn client_address(
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
    trusted: &[Cidr],
) -> Option<IpAddr> {
    let peer = peer?.ip().to_canonical();
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(peer) {
        return Some(peer);
    }
    let mut client = peer;
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect::<Vec<_>>();
    for hop in hops.iter().rev() {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = ip.to_canonical();
                if !is_trusted(client) {
                    break;
                }
            }
            // Garbage from the client side: the last good address stands.
            Err(_) => break,
        }
    }
    Some(client)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const SEC: i64 = 1_000_000;

    #[test]
    fn a_burst_of_one_periods_count_then_the_rate() {
        let limit = KeyedLimiter::new(10, Duration::from_secs(1));
        let t0 = 50 * SEC;
        for i in 0..10 {
            assert_eq!(limit.check(&"a", t0), Ok(()), "request {i} of the burst");
        }
        let wait = limit.check(&"a", t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(100));
        // Another key has its own allowance.
        assert_eq!(limit.check(&"b", t0), Ok(()));
        // One spacing later, one more; not two.
        assert_eq!(limit.check(&"a", t0 + SEC / 10), Ok(()));
        assert!(limit.check(&"a", t0 + SEC / 10).is_err());
    }

    #[test]
    fn no_window_of_one_period_holds_more_than_twice_the_count() {
        // GCRA's bound: a burst plus one period's rate.
        let limit = KeyedLimiter::new(20, Duration::from_secs(1));
        let mut taken = Vec::new();
        for step in 0..400 {
            let now = step * SEC / 100;
            while limit.check(&1u8, now).is_ok() {
                taken.push(now);
            }
        }
        for (i, start) in taken.iter().enumerate() {
            let within = taken[i..].iter().take_while(|t| **t < start + SEC).count();
            assert!(within <= 40, "{within} requests in the second from {start}");
        }
        // Over four seconds: the burst and about four seconds' rate.
        assert!((95..=101).contains(&taken.len()), "{}", taken.len());
    }

    #[test]
    fn zero_means_no_limit_and_per_minute_limits_space_requests() {
        let none = KeyedLimiter::new(0, Duration::from_secs(1));
        assert!((0..10_000).all(|_| none.check(&(), 0).is_ok()));
        let per_minute = KeyedLimiter::new(6, Duration::from_secs(60));
        assert!((0..6).all(|_| per_minute.check(&(), 0).is_ok()));
        assert_eq!(
            per_minute.check(&(), 0).unwrap_err(),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn keys_with_their_allowance_back_are_dropped_past_the_prune_size() {
        let limit = KeyedLimiter::new(1, Duration::from_secs(1));
        for key in 0..PRUNE_AT as u32 {
            limit.check(&key, 0).unwrap();
        }
        limit.check(&u32::MAX, 2 * SEC).unwrap();
        assert_eq!(limit.tats.lock().unwrap().len(), 1);
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1000)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        headers
    }

    #[test]
    fn the_client_is_the_peer_unless_the_peer_is_a_trusted_proxy() {
        let proxy: SocketAddr = "10.0.0.5:4000".parse().unwrap();
        let trusted = [Cidr::parse("10.0.0.0/8").unwrap()];
        let spoofed = forwarded(&["1.1.1.1"]);
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());

        // Not configured: the header is the client's own words.
        assert_eq!(client_address(Some(proxy), &spoofed, &[]), ip("10.0.0.5"));
        // Through the proxy: the address it appended, not what the client wrote before it.
        let chain = forwarded(&["6.6.6.6, 203.0.113.9", "10.0.0.7"]);
        assert_eq!(
            client_address(Some(proxy), &chain, &trusted),
            ip("203.0.113.9")
        );
        // A peer outside the trusted networks is the client whatever it sends.
        let direct: SocketAddr = "198.51.100.1:5000".parse().unwrap();
        assert_eq!(
            client_address(Some(direct), &chain, &trusted),
            ip("198.51.100.1")
        );
        // An entry that is no address where the proxy's should be: the last trusted hop.
        let junk = forwarded(&["203.0.113.9, not-an-ip"]);
        assert_eq!(client_address(Some(proxy), &junk, &trusted), ip("10.0.0.5"));
        // Only proxies in the chain: the first of them.
        let all_proxies = forwarded(&["10.1.1.1, 10.2.2.2"]);
        assert_eq!(
            client_address(Some(proxy), &all_proxies, &trusted),
            ip("10.1.1.1")
        );
        assert_eq!(client_address(None, &chain, &trusted), None);
    }
}
