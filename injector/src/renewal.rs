//! When to renew a lease or token, and when to give up renewing and rotate. Pure.
//!
//! A lease is renewed at about two thirds of its TTL (±10% jitter, so that many pods do not
//! renew at once). Vault grants at most what is left before the max TTL: once a renewal
//! returns less than was asked for, or the lease is not renewable, the secret is rotated
//! at about two thirds of what is left, before it expires.

use std::time::Duration;
use tokio::time::Instant;

/// What is known about one lease (or the token) right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    /// When the current TTL started.
    pub since: Instant,
    /// The TTL granted then.
    pub ttl: Duration,
    /// Whether it can be renewed.
    pub renewable: bool,
    /// Whether the last renewal granted less than was asked (the max TTL is near).
    pub capped: bool,
}

/// The next thing to do for a lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Nothing: no TTL (KV secrets, root tokens).
    Nothing,
    /// Renew at this instant.
    Renew(Instant),
    /// Fetch a new secret at this instant: renewal cannot extend it any more.
    Rotate(Instant),
}

impl Next {
    /// When the action is due, if any.
    pub fn at(self) -> Option<Instant> {
        match self {
            Next::Nothing => None,
            Next::Renew(at) | Next::Rotate(at) => Some(at),
        }
    }
}

/// Decides the next action. `jitter` is uniform in `[0, 1)`.
pub fn next(lifetime: &Lifetime, jitter: f64) -> Next {
    if lifetime.ttl.is_zero() {
        return Next::Nothing;
    }
    let fraction = 2.0 / 3.0 + (jitter - 0.5) * 0.2 * (2.0 / 3.0);
    let at = lifetime.since + lifetime.ttl.mul_f64(fraction);
    if lifetime.renewable && !lifetime.capped { Next::Renew(at) } else { Next::Rotate(at) }
}

/// The lifetime after a renewal that asked for `asked` and got `granted`.
pub fn renewed(now: Instant, asked: Duration, granted: Duration, renewable: bool) -> Lifetime {
    Lifetime { since: now, ttl: granted, renewable, capped: granted < asked }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lifetime(ttl: u64, renewable: bool, capped: bool) -> (Instant, Lifetime) {
        let since = Instant::now();
        (since, Lifetime { since, ttl: Duration::from_secs(ttl), renewable, capped })
    }

    #[test]
    fn renews_at_two_thirds_within_the_jitter() {
        let (since, l) = lifetime(300, true, false);
        for (jitter, secs) in [(0.5, 200.0), (0.0, 180.0), (0.999, 220.0)] {
            let Next::Renew(at) = next(&l, jitter) else { panic!("should renew") };
            let got = (at - since).as_secs_f64();
            assert!((got - secs).abs() < 0.5, "jitter {jitter}: {got}s, expected about {secs}s");
        }
    }

    #[test]
    fn rotates_when_not_renewable_or_capped_and_never_past_expiry() {
        let (since, l) = lifetime(9, false, false);
        assert!(matches!(next(&l, 0.5), Next::Rotate(at) if at - since == Duration::from_secs(6)));
        let (since, l) = lifetime(3, true, true);
        for jitter in [0.0, 0.5, 0.999] {
            let at = next(&l, jitter).at().unwrap();
            assert!(at > since && at < since + Duration::from_secs(3));
        }
        assert_eq!(next(&lifetime(0, true, false).1, 0.5), Next::Nothing);
    }

    #[test]
    fn a_short_grant_marks_the_max_ttl() {
        let now = Instant::now();
        assert!(renewed(now, Duration::from_secs(4), Duration::from_secs(2), true).capped);
        assert!(!renewed(now, Duration::from_secs(4), Duration::from_secs(4), true).capped);
    }

    #[test]
    fn the_database_lease_of_the_integration_test_follows_renew_renew_rotate() {
        // default_ttl 4s, max_ttl 10s: Vault grants 4, 4, then the 2 left.
        let start = Instant::now();
        let mut l = Lifetime { since: start, ttl: Duration::from_secs(4), renewable: true, capped: false };
        let mut actions = Vec::new();
        loop {
            match next(&l, 0.5) {
                Next::Renew(at) => {
                    actions.push("renew");
                    let left = Duration::from_secs(10).saturating_sub(at - start);
                    l = renewed(at, Duration::from_secs(4), left.min(Duration::from_secs(4)), true);
                }
                Next::Rotate(at) => {
                    actions.push("rotate");
                    assert!(at - start < Duration::from_secs(10), "rotation before the max TTL");
                    break;
                }
                Next::Nothing => unreachable!(),
            }
        }
        assert_eq!(actions, ["renew", "renew", "renew", "rotate"]);
    }
}
