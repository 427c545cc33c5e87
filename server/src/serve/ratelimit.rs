//! Per-address token buckets for the link, password and login endpoints.
//!
//! Pure bookkeeping: every call takes the current time as a value (milliseconds on a
//! monotonic clock), so the policy is tested without sleeping.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// Above this many tracked addresses, full buckets are forgotten (they carry no state).
const PRUNE_ABOVE: usize = 10_000;

/// A token bucket per client address: `per_minute` tokens, refilled continuously.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    per_minute: u32,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
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
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn refill(&self, b: &mut Bucket, now_ms: u64) {
        let cap = f64::from(self.per_minute);
        let elapsed = now_ms.saturating_sub(b.at_ms) as f64;
        b.tokens = (b.tokens + elapsed * cap / 60_000.0).min(cap);
        b.at_ms = now_ms;
    }

    fn with_bucket<T>(&self, ip: IpAddr, now_ms: u64, f: impl FnOnce(&mut Bucket) -> T) -> T {
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > PRUNE_ABOVE {
            let cap = f64::from(self.per_minute);
            let per_ms = cap / 60_000.0;
            map.retain(|_, b| b.tokens + now_ms.saturating_sub(b.at_ms) as f64 * per_ms < cap);
        }
        let cap = f64::from(self.per_minute);
        let b = map.entry(ip).or_insert(Bucket {
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
