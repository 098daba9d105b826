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

/// How long to wait before retrying a failed renewal, login or rotation.
pub const RETRY_AFTER: Duration = Duration::from_secs(2);

/// One credential with a lifetime: the token (no lease id) or a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracked {
    /// The lease's id; empty for the token.
    pub lease_id: String,
    /// What is known about it.
    pub lifetime: Lifetime,
    /// What to do next.
    pub next: Next,
}

impl Tracked {
    fn new(lease_id: String, now: Instant, ttl: Duration, renewable: bool, jitter: f64) -> Tracked {
        let lifetime = Lifetime { since: now, ttl, renewable, capped: false };
        Tracked { lease_id, next: next(&lifetime, jitter), lifetime }
    }

    fn expires(&self) -> Instant {
        self.lifetime.since + self.lifetime.ttl
    }
}

/// Which credential an outcome is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// The shim's token.
    Token,
    /// The lease at this index of [`Schedule::leases`].
    Lease(usize),
}

/// What is due at one instant.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Due {
    /// Renew the token.
    pub renew_token: bool,
    /// The token reached its max TTL: log in again.
    pub relogin: bool,
    /// Renew these leases (indexes into [`Schedule::leases`]).
    pub renew_leases: Vec<usize>,
    /// A lease reached its max TTL: fetch fresh secrets.
    pub rotate: bool,
    /// Check the watched KV secrets for new versions.
    pub kv_poll: bool,
}

/// Daemon mode's bookkeeping of the token, the leases and the KV poll: when each is due and
/// what an outcome changes. Pure: the caller passes the time and the jitter, and does the
/// Vault calls; tests drive it with tokio's paused clock.
#[derive(Debug, Clone)]
pub struct Schedule {
    token: Option<Tracked>,
    leases: Vec<Tracked>,
    kv_every: Option<Duration>,
    next_kv_poll: Option<Instant>,
}

impl Schedule {
    /// No credentials yet; KV secrets are polled every `kv_every` (`None`: never).
    pub fn new(kv_every: Option<Duration>, now: Instant) -> Schedule {
        Schedule { token: None, leases: Vec::new(), kv_every, next_kv_poll: kv_every.map(|every| now + every) }
    }

    /// Tracks a (new) token; a zero TTL (root or handed-in without expiry) is not tracked.
    pub fn set_token(&mut self, ttl: Duration, renewable: bool, now: Instant, jitter: f64) {
        self.token = (!ttl.is_zero()).then(|| Tracked::new(String::new(), now, ttl, renewable, jitter));
    }

    /// Stops tracking the token (a handed-in token at its max TTL cannot be replaced).
    pub fn forget_token(&mut self) {
        self.token = None;
    }

    /// Replaces the tracked leases with `(id, ttl, renewable)` of fresh secrets.
    pub fn set_leases(
        &mut self,
        leases: impl IntoIterator<Item = (String, Duration, bool)>,
        now: Instant,
        jitter: &mut dyn FnMut() -> f64,
    ) {
        self.leases =
            leases.into_iter().map(|(id, ttl, renewable)| Tracked::new(id, now, ttl, renewable, jitter())).collect();
    }

    /// The tracked token.
    pub fn token(&self) -> Option<&Tracked> {
        self.token.as_ref()
    }

    /// The tracked leases.
    pub fn leases(&self) -> &[Tracked] {
        &self.leases
    }

    /// The earliest instant something is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.leases.iter().chain(self.token.iter()).filter_map(|t| t.next.at()).chain(self.next_kv_poll).min()
    }

    /// What is due at `now`; the KV poll, once reported, is scheduled again.
    pub fn due(&mut self, now: Instant) -> Due {
        let mut due = Due::default();
        if let Some(token) = self.token.as_ref().filter(|t| t.next.at().is_some_and(|at| at <= now)) {
            match token.next {
                Next::Renew(_) => due.renew_token = true,
                Next::Rotate(_) | Next::Nothing => due.relogin = true,
            }
        }
        for (i, lease) in self.leases.iter().enumerate().filter(|(_, l)| l.next.at().is_some_and(|at| at <= now)) {
            match lease.next {
                Next::Renew(_) => due.renew_leases.push(i),
                Next::Rotate(_) | Next::Nothing => due.rotate = true,
            }
        }
        if self.next_kv_poll.is_some_and(|at| at <= now) {
            due.kv_poll = true;
            self.next_kv_poll = self.kv_every.map(|every| now + every);
        }
        due
    }

    fn tracked(&mut self, which: Credential) -> Option<&mut Tracked> {
        match which {
            Credential::Token => self.token.as_mut(),
            Credential::Lease(i) => self.leases.get_mut(i),
        }
    }

    /// A renewal granted `granted`: the next renewal, or a rotation if the max TTL is near.
    pub fn renewed(&mut self, which: Credential, granted: Duration, renewable: bool, now: Instant, jitter: f64) {
        if let Some(t) = self.tracked(which) {
            t.lifetime = renewed(now, t.lifetime.ttl, granted, renewable);
            t.next = next(&t.lifetime, jitter);
        }
    }

    /// A renewal failed: retry after [`RETRY_AFTER`] while the credential is still valid
    /// then, else rotate now. Returns how long the current credential stays valid.
    pub fn renewal_failed(&mut self, which: Credential, now: Instant) -> Duration {
        let Some(t) = self.tracked(which) else { return Duration::ZERO };
        let expires = t.expires();
        t.next = if now + RETRY_AFTER < expires { Next::Renew(now + RETRY_AFTER) } else { Next::Rotate(now) };
        expires.saturating_duration_since(now)
    }

    /// Logging in again failed: try again after [`RETRY_AFTER`].
    pub fn relogin_failed(&mut self, now: Instant) {
        if let Some(token) = self.token.as_mut() {
            token.next = Next::Rotate(now + RETRY_AFTER);
        }
    }

    /// Fetching fresh secrets failed: every lease is rotated again after [`RETRY_AFTER`], or
    /// at the credentials' expiry if that comes first.
    pub fn rotation_failed(&mut self, now: Instant) {
        let retry_at = self.credentials_expire().map_or(now + RETRY_AFTER, |at| at.min(now + RETRY_AFTER));
        for lease in &mut self.leases {
            lease.next = Next::Rotate(retry_at);
        }
    }

    /// When the application's credentials stop working: the first lease to expire (a lease
    /// also ends with the token that made it). `None` without leases: KV secrets do not expire.
    pub fn credentials_expire(&self) -> Option<Instant> {
        let leases = self.leases.iter().map(Tracked::expires).min()?;
        Some(self.token.as_ref().map_or(leases, |t| t.expires().min(leases)))
    }

    /// How long one round of Vault requests may take: `cap`, never past the credentials'
    /// expiry, and at least 200 ms.
    pub fn batch_timeout(&self, cap: Duration, now: Instant) -> Duration {
        match self.credentials_expire() {
            Some(at) => cap.min(at.saturating_duration_since(now).max(Duration::from_millis(200))),
            None => cap,
        }
    }
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

    fn lease(id: &str, ttl: u64) -> (String, Duration, bool) {
        (id.to_owned(), Duration::from_secs(ttl), true)
    }

    /// A database lease (default TTL 4 s, max 10 s) and a token (TTL 60 s), driven on tokio's
    /// paused clock: renew, renew, then rotate before the max TTL; the token renews on its own
    /// schedule; nothing is due before its time.
    #[tokio::test(start_paused = true)]
    async fn a_lease_is_renewed_until_its_max_ttl_then_rotated_on_the_paused_clock() {
        let start = Instant::now();
        let mut schedule = Schedule::new(None, start);
        schedule.set_token(Duration::from_secs(60), true, start, 0.5);
        schedule.set_leases([lease("database/creds/app/1", 4)], start, &mut || 0.5);
        let mut log = Vec::new();
        while let Some(at) = schedule.next_due() {
            tokio::time::sleep_until(at).await;
            let now = Instant::now();
            assert!(now >= at && now - at < Duration::from_millis(2), "the paused clock jumps to the due instant");
            let due = schedule.due(now);
            assert_ne!(due, Due::default(), "woken at {:?} with nothing due", now - start);
            if due.renew_token {
                log.push(("token", (now - start).as_secs()));
                schedule.renewed(Credential::Token, Duration::from_secs(60), true, now, 0.5);
            }
            for i in due.renew_leases {
                log.push(("renew", (now - start).as_millis() as u64 / 1000));
                let left = Duration::from_secs(10).saturating_sub(now - start);
                schedule.renewed(Credential::Lease(i), left.min(Duration::from_secs(4)), true, now, 0.5);
            }
            if due.rotate {
                log.push(("rotate", (now - start).as_millis() as u64 / 1000));
                assert!(now < start + Duration::from_secs(10), "rotation before the max TTL");
                break;
            }
        }
        assert_eq!(log.iter().map(|(what, _)| *what).collect::<Vec<_>>(), ["renew", "renew", "renew", "rotate"]);
        assert!(schedule.token().is_some_and(|t| t.next.at() > Some(start + Duration::from_secs(39))));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_renewal_retries_while_valid_then_rotates() {
        let start = Instant::now();
        let mut schedule = Schedule::new(None, start);
        schedule.set_leases([lease("l", 9)], start, &mut || 0.5);
        tokio::time::advance(Duration::from_secs(6)).await;
        let now = Instant::now();
        assert_eq!(schedule.due(now).renew_leases, [0]);
        assert_eq!(schedule.renewal_failed(Credential::Lease(0), now), Duration::from_secs(3));
        assert_eq!(schedule.next_due(), Some(now + RETRY_AFTER));
        tokio::time::advance(RETRY_AFTER).await;
        let now = Instant::now();
        assert_eq!(schedule.due(now).renew_leases, [0]);
        // 1 s left: a retry in 2 s would be too late, so rotate now.
        assert_eq!(schedule.renewal_failed(Credential::Lease(0), now), Duration::from_secs(1));
        assert!(schedule.due(now).rotate);
    }

    #[tokio::test(start_paused = true)]
    async fn credentials_expire_with_the_first_lease_or_the_token_and_bound_the_batch() {
        let start = Instant::now();
        let mut schedule = Schedule::new(Some(Duration::from_secs(30)), start);
        assert_eq!(schedule.credentials_expire(), None, "KV secrets do not expire");
        assert_eq!(schedule.batch_timeout(Duration::from_secs(5), start), Duration::from_secs(5));
        // A token that cannot be renewed: due for a new login, not a renewal.
        schedule.set_token(Duration::from_secs(8), false, start, 0.5);
        schedule.set_leases([lease("a", 20), lease("b", 12)], start, &mut || 0.5);
        assert_eq!(schedule.credentials_expire(), Some(start + Duration::from_secs(8)));
        tokio::time::advance(Duration::from_secs(7)).await;
        assert_eq!(schedule.batch_timeout(Duration::from_secs(5), Instant::now()), Duration::from_secs(1));
        tokio::time::advance(Duration::from_secs(23)).await;
        let now = Instant::now();
        let due = schedule.due(now);
        assert!(due.kv_poll && due.relogin, "{due:?}");
        assert!(!schedule.due(now).kv_poll, "the poll is scheduled again, 30 s on");
        schedule.relogin_failed(now);
        schedule.rotation_failed(now);
        assert!(schedule.leases().iter().all(|l| l.next == Next::Rotate(start + Duration::from_secs(8))));
    }
}
