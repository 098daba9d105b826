//! Retries of transient failures, with exponential backoff and full jitter, up to a deadline.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// Errors that may go away if the request is sent again.
pub trait Transient {
    /// Connection refused, timeouts, 429 and 5xx (a sealed or standby Vault) are transient.
    fn is_transient(&self) -> bool;
}

/// Delays between attempts: doubling from `first` up to `cap`, each drawn uniformly from
/// its upper half so that many shims started at once spread out.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    cap: Duration,
}

impl Backoff {
    /// 100 ms doubling to 2 s.
    pub fn new() -> Self {
        Backoff { next: Duration::from_millis(100), cap: Duration::from_secs(2) }
    }

    /// The next delay.
    pub fn next_delay(&mut self) -> Duration {
        let high = self.next;
        self.next = (self.next * 2).min(self.cap);
        let half = high / 2;
        half + half.mul_f64(fastrand::f64())
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

/// Runs `attempt` until it succeeds, fails for good, the next try would start after
/// `deadline`, or (when `max_retries` is set: `VAULT_MAX_RETRIES`, as Vault's client counts
/// them) it has been retried that many times; then returns the last error. Errors name their
/// operation themselves.
pub async fn retry<T, E, F, Fut>(deadline: Instant, max_retries: Option<u32>, mut attempt: F) -> Result<T, E>
where
    E: Transient + Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut backoff = Backoff::new();
    let mut tries = 1u32;
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(err) if err.is_transient() && max_retries.is_none_or(|max| tries <= max) => {
                let delay = backoff.next_delay();
                if Instant::now() + delay >= deadline {
                    return Err(err);
                }
                tracing::warn!(attempt = tries, "{err}; retrying in {} ms", delay.as_millis());
                tokio::time::sleep(delay).await;
                tries += 1;
            }
            Err(err) => return Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[derive(Debug)]
    struct Failure(bool);
    impl Transient for Failure {
        fn is_transient(&self) -> bool {
            self.0
        }
    }
    impl Display for Failure {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "failure")
        }
    }

    #[test]
    fn delays_double_up_to_the_cap_with_jitter() {
        let mut backoff = Backoff::new();
        let delays: Vec<Duration> = (0..8).map(|_| backoff.next_delay()).collect();
        let highs = [100, 200, 400, 800, 1600, 2000, 2000, 2000];
        for (delay, high) in delays.iter().zip(highs) {
            let high = Duration::from_millis(high);
            assert!(*delay >= high / 2 && *delay <= high, "{delay:?} outside [{:?}, {high:?}]", high / 2);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn transient_errors_are_retried_until_success() {
        let calls = Cell::new(0);
        let result: Result<u32, Failure> = retry(Instant::now() + Duration::from_secs(10), None, || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move { if n < 4 { Err(Failure(true)) } else { Ok(n) } }
        })
        .await;
        assert_eq!(result.unwrap(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_are_not_retried() {
        let calls = Cell::new(0);
        let result: Result<(), Failure> = retry(Instant::now() + Duration::from_secs(10), None, || {
            calls.set(calls.get() + 1);
            async { Err(Failure(false)) }
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls.get(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn max_retries_caps_the_attempts() {
        for (max, attempts) in [(0, 1), (2, 3)] {
            let calls = Cell::new(0);
            let result: Result<(), Failure> = retry(Instant::now() + Duration::from_secs(60), Some(max), || {
                calls.set(calls.get() + 1);
                async { Err(Failure(true)) }
            })
            .await;
            assert!(result.is_err());
            assert_eq!(calls.get(), attempts, "VAULT_MAX_RETRIES={max}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_ends_retries() {
        let start = Instant::now();
        let result: Result<(), Failure> =
            retry(start + Duration::from_secs(3), None, || async { Err(Failure(true)) }).await;
        assert!(result.is_err());
        assert!(start.elapsed() <= Duration::from_secs(3));
        assert!(start.elapsed() >= Duration::from_millis(500), "it did retry for a while");
    }
}
