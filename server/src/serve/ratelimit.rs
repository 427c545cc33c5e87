//! Per-address token buckets for the link, password and login endpoints.
//!
//! Pure bookkeeping: every call takes the current time as a value (milliseconds on a
//! monotonic clock), so the policy is tested without sleeping.
//!
//! An IPv6 client is keyed by its /64 network, not its address: one subscriber usually holds a
//! whole /64 and could otherwise take a fresh bucket for every request.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;

/// Above this many tracked clients, full buckets are forgotten (they carry no state).
const PRUNE_ABOVE: usize = 10_000;

/// A token bucket per client: `per_minute` tokens, refilled continuously.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    per_minute: u32,
    buckets: Mutex<Buckets>,
}

#[derive(Debug)]
struct Buckets {
    map: HashMap<IpAddr, Bucket>,
    /// The size at which the next prune runs: after one, twice what it kept (at least
    /// [`PRUNE_ABOVE`]), so that many clients whose buckets are all in use cost one pass
    /// per doubling instead of one pass per request.
    prune_at: usize,
}

/// The bucket a client's address draws from: IPv4 as is (also when mapped into IPv6), IPv6 by
/// its /64 network.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !0u128 << 64)),
        },
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at_ms: u64,
}

impl RateLimiter {
    /// `per_minute == 0` disables the limit.
    pub(crate) fn new(per_minute: u32) -> Self {
        RateLimiter {
            per_minute,
            buckets: Mutex::new(Buckets {
                map: HashMap::new(),
                prune_at: PRUNE_ABOVE,
            }),
        }
    }

    fn refill(&self, b: &mut Bucket, now_ms: u64) {
        let cap = f64::from(self.per_minute);
        let elapsed = now_ms.saturating_sub(b.at_ms) as f64;
        b.tokens = (b.tokens + elapsed * cap / 60_000.0).min(cap);
        b.at_ms = now_ms;
    }

    fn with_bucket<T>(&self, ip: IpAddr, now_ms: u64, f: impl FnOnce(&mut Bucket) -> T) -> T {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let cap = f64::from(self.per_minute);
        if buckets.map.len() > buckets.prune_at {
            let per_ms = cap / 60_000.0;
            buckets
                .map
                .retain(|_, b| b.tokens + now_ms.saturating_sub(b.at_ms) as f64 * per_ms < cap);
            buckets.prune_at = (2 * buckets.map.len()).max(PRUNE_ABOVE);
        }
        let b = buckets.map.entry(client_key(ip)).or_insert(Bucket {
            tokens: cap,
            at_ms: now_ms,
        });
        self.refill(b, now_ms);
        f(b)
    }

    /// Seconds until one token is back.
    fn wait_secs(&self, b: &Bucket) -> u64 {
        let missing = 1.0 - b.tokens;
        ((missing * 60.0 / f64::from(self.per_minute)).ceil() as u64).max(1)
    }

    /// Takes one token. `Err(seconds to wait)` when the address has none left.
    pub(crate) fn take(&self, ip: IpAddr, now_ms: u64) -> Result<(), u64> {
        if self.per_minute == 0 {
            return Ok(());
        }
        self.with_bucket(ip, now_ms, |b| {
            if b.tokens >= 1.0 {
                b.tokens -= 1.0;
                Ok(())
            } else {
                Err(self.wait_secs(b))
            }
        })
    }

    /// Whether the address has a token left, without taking it (`Err(seconds to wait)`).
    pub(crate) fn check(&self, ip: IpAddr, now_ms: u64) -> Result<(), u64> {
        if self.per_minute == 0 {
            return Ok(());
        }
        self.with_bucket(ip, now_ms, |b| {
            if b.tokens >= 1.0 {
                Ok(())
            } else {
                Err(self.wait_secs(b))
            }
        })
    }

    /// Records a failure against the address (takes a token if there is one).
    pub(crate) fn penalize(&self, ip: IpAddr, now_ms: u64) {
        let _ = self.take(ip, now_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

    #[test]
    fn burst_then_refusal_then_refill() {
        let l = RateLimiter::new(6);
        for _ in 0..6 {
            assert!(l.take(A, 0).is_ok());
        }
        // One token comes back every 10 s.
        assert_eq!(l.take(A, 0), Err(10));
        assert_eq!(l.take(A, 5_000), Err(5));
        assert!(l.take(B, 5_000).is_ok(), "addresses are independent");
        assert!(l.take(A, 10_000).is_ok());
        assert!(l.take(A, 10_001).is_err());
        // Refill stops at the burst size.
        for _ in 0..6 {
            assert!(l.take(A, 10_000_000).is_ok());
        }
        assert!(l.take(A, 10_000_000).is_err());
    }

    #[test]
    fn an_ipv6_client_is_its_64_and_a_mapped_ipv4_its_address() {
        let l = RateLimiter::new(1);
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8:1:2:ffff:ffff:ffff:ffff".parse().unwrap();
        let next_64: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(l.take(a, 0).is_ok());
        assert!(l.take(same_64, 0).is_err(), "the same /64 shares a bucket");
        assert!(l.take(next_64, 0).is_ok());
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert!(l.take(A, 0).is_ok());
        assert!(l.take(mapped, 0).is_err(), "a mapped IPv4 is that address");
    }

    #[test]
    fn many_busy_clients_are_pruned_once_per_doubling() {
        let l = RateLimiter::new(5);
        let client = |i: u32| IpAddr::V4(std::net::Ipv4Addr::from(i));
        for i in 0..=PRUNE_ABOVE as u32 {
            l.take(client(i), 0).unwrap();
        }
        // Every bucket is in use, so the prune keeps them all and waits for twice as many.
        l.take(client(u32::MAX), 0).unwrap();
        let b = l.buckets.lock().unwrap();
        assert_eq!(b.map.len(), PRUNE_ABOVE + 2);
        assert_eq!(b.prune_at, 2 * (PRUNE_ABOVE + 1));
    }

    #[test]
    fn check_does_not_consume_and_zero_disables() {
        let l = RateLimiter::new(1);
        assert!(l.check(A, 0).is_ok());
        assert!(l.check(A, 0).is_ok());
        l.penalize(A, 0);
        assert_eq!(l.check(A, 0), Err(60));
        let off = RateLimiter::new(0);
        for _ in 0..1000 {
            assert!(off.take(A, 0).is_ok());
        }
    }
}
