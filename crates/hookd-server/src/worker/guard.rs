//! The SSRF guard at the socket: a DNS resolver that hands the HTTP client only addresses the
//! guard allows, and a check for URLs that name an IP address directly (which skip DNS).
//!
//! Because the client connects only to what this resolver returned, a name that resolves to a
//! public address when checked and a private one when connected (DNS rebinding) cannot pass.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use hookd_core::net::{refusal, Cidr};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Why a target was refused; found again in the error chain to classify the attempt.
#[derive(Debug)]
pub struct Blocked(pub String);

impl std::fmt::Display for Blocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "blocked by the SSRF guard: {} (an operator may allow a network with \
             delivery.allow_networks)",
            self.0
        )
    }
}

impl std::error::Error for Blocked {}

/// Resolves with the system resolver, then drops the addresses the guard refuses.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    pub allow: Arc<[Cidr]>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.allow.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            match keep_allowed(&host, found, &allow) {
                Ok(allowed) => Ok(Box::new(allowed.into_iter()) as Addrs),
                Err(blocked) => Err(Box::new(blocked) as Box<dyn std::error::Error + Send + Sync>),
            }
        })
    }
}

/// The addresses of `host` that the guard allows, in resolver order; [`Blocked`] when none is.
/// A name with both public and private addresses keeps only the public ones, so the client can
/// never be steered to the private one.
fn keep_allowed(
    host: &str,
    found: Vec<SocketAddr>,
    allow: &[Cidr],
) -> Result<Vec<SocketAddr>, Blocked> {
    let mut refused = None;
    let allowed: Vec<SocketAddr> = found
        .into_iter()
        .filter(|a| match refusal(a.ip(), allow) {
            None => true,
            Some(why) => {
                refused.get_or_insert_with(|| format!("{host} resolves to {} ({why})", a.ip()));
                false
            }
        })
        .collect();
    if allowed.is_empty() {
        return Err(Blocked(
            refused.unwrap_or_else(|| format!("{host} has no address")),
        ));
    }
    Ok(allowed)
}

/// Checks a URL whose host is an IP address (in any form the URL parser normalises, such as
/// `http://2130706433/` or `http://0x7f.1/`); host names are checked by [`GuardedResolver`].
pub fn check_literal(url: &str, allow: &[Cidr]) -> Result<(), Blocked> {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return Ok(());
    };
    let Some(host) = parsed.host_str() else {
        return Ok(());
    };
    let Ok(ip) = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    else {
        return Ok(());
    };
    match refusal(ip, allow) {
        None => Ok(()),
        Some(why) => Err(Blocked(format!("{ip} is {why}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_addresses_in_every_form_are_checked() {
        for url in [
            "http://127.0.0.1/",
            "http://2130706433/",
            "http://0x7f.0.0.1/",
            "http://127.1/",
            "http://0177.0.0.1/",
            "http://[::1]:8080/",
            "http://[::ffff:127.0.0.1]/",
            "http://169.254.169.254/latest/meta-data",
            "http://10.0.0.1/",
        ] {
            assert!(check_literal(url, &[]).is_err(), "{url}");
        }
        assert!(check_literal("http://8.8.8.8/", &[]).is_ok());
        assert!(
            check_literal("http://example.com/", &[]).is_ok(),
            "names go to the resolver"
        );
        let allow = [Cidr::parse("127.0.0.0/8").unwrap()];
        assert!(check_literal("http://127.0.0.1:9000/", &allow).is_ok());
    }

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter()
            .map(|a| SocketAddr::new(a.parse().unwrap(), 443))
            .collect()
    }

    #[test]
    fn resolved_addresses_are_filtered() {
        // What a hostile or rebinding DNS server could answer, as a test resolver would.
        let public = keep_allowed("mixed.test", addrs(&["10.0.0.5", "93.184.216.34"]), &[]);
        assert_eq!(
            public.unwrap(),
            addrs(&["93.184.216.34"]),
            "only the public address is kept"
        );
        for private in [
            vec!["169.254.169.254"],
            vec!["127.0.0.1", "::1"],
            vec!["::ffff:10.0.0.1"],
            vec!["fd00::1", "192.168.1.1"],
        ] {
            let err = keep_allowed("evil.test", addrs(&private), &[]).unwrap_err();
            assert!(err.0.contains("evil.test resolves to"), "{err}");
        }
        let err = keep_allowed("nothing.test", Vec::new(), &[]).unwrap_err();
        assert!(err.0.contains("no address"), "{err}");
        let allow = [Cidr::parse("10.0.0.0/8").unwrap()];
        let inside = keep_allowed("intranet.test", addrs(&["10.1.2.3"]), &allow);
        assert_eq!(inside.unwrap(), addrs(&["10.1.2.3"]));
    }

    #[tokio::test]
    async fn names_resolving_to_refused_addresses_are_blocked() {
        let guarded = GuardedResolver {
            allow: Arc::from(Vec::new()),
        };
        let err = guarded
            .resolve("localhost".parse().unwrap())
            .await
            .err()
            .expect("refused");
        assert!(err.to_string().contains("loopback"), "{err}");
        assert!(
            err.to_string().contains("delivery.allow_networks"),
            "names the key: {err}"
        );
        let open = GuardedResolver {
            allow: Arc::from(vec![Cidr::parse("127.0.0.0/8").unwrap()]),
        };
        let addrs: Vec<_> = open
            .resolve("localhost".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert!(
            addrs
                .iter()
                .all(|a| a.ip().is_loopback() && a.ip().is_ipv4()),
            "{addrs:?}"
        );
    }
}
