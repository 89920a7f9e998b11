//! The SSRF guard's rules: which IP addresses deliveries may connect to.
//!
//! Only public unicast addresses are allowed, unless an address falls in one of the operator's
//! `allow_networks`. Refused: loopback, private (RFC 1918, fc00::/7), link-local (169.254/16 with
//! the cloud metadata address, fe80::/10), CGNAT (100.64/10), unspecified, multicast, broadcast,
//! reserved, documentation and benchmarking ranges, and IPv6 forms that embed an IPv4 address
//! (IPv4-mapped and -compatible, 6to4, Teredo, NAT64), which could smuggle a private one.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

/// A network in CIDR notation (`10.0.0.0/8`, `::1/128`), without host bits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Cidr(IpNet);

impl Cidr {
    /// Parses `addr/prefix`; refuses host bits set after the prefix.
    pub fn parse(text: &str) -> Result<Self, String> {
        let Some((addr, prefix)) = text.split_once('/') else {
            return Err(format!(
                "`{text}` is not a network like 10.0.0.0/8 or ::1/128"
            ));
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{addr}` is not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| format!("prefix length `{prefix}` must be between 0 and {max}"))?;
        let net = IpNet::new(addr, prefix).map_err(|e| format!("`{text}`: {e}"))?;
        if net.trunc() != net {
            return Err(format!(
                "`{text}` has host bits set; did you mean {}?",
                net.trunc()
            ));
        }
        Ok(Self(net))
    }

    /// Whether `ip` is inside this network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip.to_canonical())
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Non-public IPv4 ranges and why each is refused.
const V4_DENIED: [(&str, &str); 16] = [
    ("0.0.0.0/8", "unspecified"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "carrier-grade NAT"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local (cloud metadata)"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("192.0.2.0/24", "documentation"),
    ("192.88.99.0/24", "6to4 relay"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    ("255.255.255.255/32", "broadcast"),
    ("240.0.0.0/4", "reserved"),
];

/// Non-public IPv6 ranges and why each is refused.
const V6_DENIED: [(&str, &str); 15] = [
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("::ffff:0:0/96", "IPv4-mapped"),
    ("::/96", "IPv4-compatible"),
    ("64:ff9b::/96", "NAT64"),
    ("64:ff9b:1::/48", "NAT64"),
    ("100::/64", "discard"),
    ("2001::/32", "Teredo"),
    ("2001:2::/48", "benchmarking"),
    ("2001:db8::/32", "documentation"),
    ("2002::/16", "6to4"),
    ("fc00::/7", "unique local (private)"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local"),
    ("ff00::/8", "multicast"),
];

/// Why the SSRF guard refuses `ip`, or `None` when deliveries may connect to it.
pub fn refusal(ip: IpAddr, allow: &[Cidr]) -> Option<&'static str> {
    if allow.iter().any(|c| c.contains(ip)) {
        return None;
    }
    let table: &[(&str, &str)] = if ip.is_ipv4() { &V4_DENIED } else { &V6_DENIED };
    table.iter().find_map(|(net, why)| {
        let net = Cidr::parse(net).expect("the denied ranges are valid CIDRs");
        // Match on the address as written: an IPv4-mapped IPv6 address is refused as such.
        net.0.contains(&ip).then_some(*why)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn non_public_addresses_are_refused() {
        for (addr, why) in [
            ("127.0.0.1", "loopback"),
            ("10.1.2.3", "private"),
            ("172.31.255.255", "private"),
            ("192.168.0.1", "private"),
            ("169.254.169.254", "link-local (cloud metadata)"),
            ("100.64.0.1", "carrier-grade NAT"),
            ("0.0.0.0", "unspecified"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "broadcast"),
            ("198.18.0.1", "benchmarking"),
            ("192.0.2.7", "documentation"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("::ffff:127.0.0.1", "IPv4-mapped"),
            ("::ffff:8.8.8.8", "IPv4-mapped"),
            ("64:ff9b::a00:1", "NAT64"),
            ("2002:7f00:1::", "6to4"),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
            ("fd00::1", "unique local (private)"),
            ("fe80::1", "link-local"),
            ("ff02::1", "multicast"),
            ("2001:db8::1", "documentation"),
        ] {
            assert_eq!(refusal(ip(addr), &[]), Some(why), "{addr}");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for addr in [
            "8.8.8.8",
            "1.1.1.1",
            "93.184.216.34",
            "2606:4700:4700::1111",
        ] {
            assert_eq!(refusal(ip(addr), &[]), None, "{addr}");
        }
    }

    #[test]
    fn allowed_networks_open_a_range_and_nothing_else() {
        let allow = [
            Cidr::parse("127.0.0.0/8").unwrap(),
            Cidr::parse("fd00::/8").unwrap(),
        ];
        assert_eq!(refusal(ip("127.0.0.1"), &allow), None);
        assert_eq!(
            refusal(ip("::ffff:127.0.0.1"), &allow),
            None,
            "mapped form of an allowed v4"
        );
        assert_eq!(refusal(ip("fd12::1"), &allow), None);
        assert_eq!(refusal(ip("10.0.0.1"), &allow), Some("private"));
        assert_eq!(refusal(ip("::1"), &allow), Some("loopback"));
    }

    #[test]
    fn cidrs_parse_strictly() {
        for ok in ["10.0.0.0/8", "::1/128", "0.0.0.0/0", "fd00::/8"] {
            assert_eq!(Cidr::parse(ok).unwrap().to_string(), ok);
        }
        assert!(Cidr::parse("10.0.0.1/8")
            .unwrap_err()
            .contains("10.0.0.0/8"));
        assert!(Cidr::parse("10.0.0.0").is_err());
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("nope/8").is_err());
    }
}
