//! The client address behind trusted reverse proxies, and the address lists behind it.
//!
//! Behind a proxy every connection comes from the proxy, so the audit log and the per-address
//! rate limits would see one client: a single guesser would exhaust the link limit for every
//! partner. When the connecting peer is a configured trusted proxy, the client is read from
//! `X-Forwarded-For`, walking it from the right (the entry the nearest proxy appended) past
//! further trusted proxies; the first untrusted address is the client. Entries left of it were
//! written by the client itself and are never believed. Without trusted proxies (the default)
//! the header is ignored.

use std::net::IpAddr;

use axum::http::HeaderMap;

/// One trusted network: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Net {
    addr: IpAddr,
    bits: u8,
}

impl Net {
    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(&n.octets(), &a.octets(), self.bits),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(&n.octets(), &a.octets(), self.bits),
            _ => false,
        }
    }
}

/// An IPv4 address seen through an IPv4-mapped IPv6 socket is the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let full = usize::from(bits / 8);
    let rest = bits % 8;
    a[..full] == b[..full]
        && (rest == 0 || {
            let mask = 0xffu8 << (8 - rest);
            a[full] & mask == b[full] & mask
        })
}

/// A list of addresses and networks, from configuration.
#[derive(Debug, Clone, Default)]
pub(crate) struct Networks(Vec<Net>);

impl Networks {
    /// Parses entries such as `127.0.0.1`, `10.0.0.0/8` or `fd00::/8`; `what` names an entry
    /// in error messages ("trusted proxy").
    ///
    /// # Errors
    /// The first entry that is not an address or network, explained.
    pub(crate) fn parse<S: AsRef<str>>(entries: &[S], what: &str) -> Result<Self, String> {
        entries
            .iter()
            .map(|e| {
                let e = e.as_ref().trim();
                let (addr, bits) = match e.split_once('/') {
                    Some((a, b)) => (a, Some(b)),
                    None => (e, None),
                };
                let addr: IpAddr = addr.parse().map_err(|_| {
                    format!("{what} {e:?} is not an IP address or network (a.b.c.d/bits)")
                })?;
                let addr = canonical(addr);
                let max = if addr.is_ipv4() { 32 } else { 128 };
                let bits = match bits {
                    None => max,
                    Some(b) => b
                        .parse::<u8>()
                        .ok()
                        .filter(|b| *b <= max)
                        .ok_or_else(|| format!("{what} {e:?}: prefix must be 0-{max}"))?,
                };
                Ok(Net { addr, bits })
            })
            .collect::<Result<_, _>>()
            .map(Networks)
    }

    /// Whether the list is empty.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` is in one of the networks (an IPv4-mapped IPv6 address counts as IPv4).
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(ip))
    }
}

/// The configured trusted proxies (addresses or networks).
#[derive(Debug, Clone, Default)]
pub(crate) struct TrustedProxies(Networks);

impl TrustedProxies {
    /// Parses entries such as `127.0.0.1`, `10.0.0.0/8` or `fd00::/8`.
    ///
    /// # Errors
    /// The first entry that is not an address or network, explained.
    pub(crate) fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        Networks::parse(entries, "trusted proxy").map(TrustedProxies)
    }

    /// Whether no proxy is trusted.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.contains(ip)
    }

    /// The client of a request that arrived from `peer` with `headers`.
    pub(crate) fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = canonical(peer);
        if !self.trusts(client) {
            return client;
        }
        // Several X-Forwarded-For headers form one list, in order.
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect();
        for hop in hops.iter().rev() {
            // A malformed entry ends the walk: what the last trusted hop saw is the answer.
            let Ok(ip) = hop.trim().parse::<IpAddr>() else {
                break;
            };
            client = canonical(ip);
            if !self.trusts(client) {
                break;
            }
        }
        client
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn parses_addresses_and_networks_and_explains_mistakes() {
        let t = TrustedProxies::parse(&["127.0.0.1", "10.0.0.0/8", "fd00::/8", " ::1 "]).unwrap();
        assert!(t.trusts(ip("127.0.0.1")) && !t.trusts(ip("127.0.0.2")));
        assert!(t.trusts(ip("10.200.3.4")) && !t.trusts(ip("11.0.0.1")));
        assert!(t.trusts(ip("fd12::1")) && !t.trusts(ip("fe80::1")));
        assert!(t.trusts(ip("::1")));
        assert!(
            t.trusts(ip("::ffff:10.1.2.3")),
            "IPv4-mapped peers are IPv4"
        );
        let odd = TrustedProxies::parse(&["192.168.1.0/23"]).unwrap();
        assert!(odd.trusts(ip("192.168.0.9")) && !odd.trusts(ip("192.168.2.1")));
        for bad in ["proxy.local", "10.0.0.0/33", "10.0.0.0/x", "::/129", ""] {
            let e = TrustedProxies::parse(&[bad]).unwrap_err();
            assert!(e.contains("trusted proxy"), "{bad}: {e}");
        }
        assert!(TrustedProxies::parse::<&str>(&[]).unwrap().is_empty());
    }

    #[test]
    fn the_client_is_the_first_untrusted_hop_from_the_right() {
        let t = TrustedProxies::parse(&["127.0.0.1", "10.0.0.0/8"]).unwrap();
        let lo = ip("127.0.0.1");
        // No trusted peer: the header is ignored, whatever it says.
        assert_eq!(
            t.client(ip("198.51.100.1"), &xff(&["203.0.113.7"])),
            ip("198.51.100.1")
        );
        assert_eq!(t.client(lo, &xff(&["203.0.113.7"])), ip("203.0.113.7"));
        // A client-written spoof on the left is never believed.
        assert_eq!(
            t.client(lo, &xff(&["1.1.1.1, 203.0.113.7, 10.0.0.5"])),
            ip("203.0.113.7")
        );
        // Several headers are one list.
        assert_eq!(
            t.client(lo, &xff(&["1.1.1.1", "203.0.113.7", "10.0.0.5"])),
            ip("203.0.113.7")
        );
        // A malformed hop ends the walk at the last trusted one.
        assert_eq!(
            t.client(lo, &xff(&["203.0.113.7, junk, 10.0.0.5"])),
            ip("10.0.0.5")
        );
        // No header: the proxy itself.
        assert_eq!(t.client(lo, &HeaderMap::new()), lo);
        // Every hop trusted: the leftmost.
        assert_eq!(t.client(lo, &xff(&["10.1.1.1, 10.0.0.5"])), ip("10.1.1.1"));
        assert_eq!(
            t.client(lo, &xff(&["2001:db8::7"])),
            ip("2001:db8::7"),
            "IPv6 clients"
        );
    }
}
