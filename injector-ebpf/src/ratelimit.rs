//! Pure: caps audit lines per time window; what it drops is counted and reported once the
//! window closes, so a flood (a reader retrying in a loop) cannot drown the log or the node.

/// Fixed-window limiter over caller-supplied monotonic nanoseconds.
#[derive(Clone, Debug)]
pub struct RateLimiter {
    per_window: u32,
    window_ns: u64,
    window_start: u64,
    emitted: u32,
    suppressed: u64,
}

/// What to do with one line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Write it; if `summary` is `Some(n)`, first write a summary of `n` suppressed lines.
    Emit { summary: Option<u64> },
    /// Drop it (counted).
    Suppress,
}

impl RateLimiter {
    pub fn new(per_window: u32, window_ns: u64) -> Self {
        RateLimiter { per_window, window_ns: window_ns.max(1), window_start: 0, emitted: 0, suppressed: 0 }
    }

    pub fn window_secs(&self) -> u64 {
        self.window_ns.div_ceil(1_000_000_000)
    }

    pub fn admit(&mut self, now_ns: u64) -> Verdict {
        let summary = self.roll(now_ns);
        if self.emitted < self.per_window {
            self.emitted += 1;
            Verdict::Emit { summary }
        } else {
            self.suppressed += 1;
            // A summary due from the closed window is carried until the next emitted line.
            if let Some(n) = summary {
                self.suppressed += n;
            }
            Verdict::Suppress
        }
    }

    /// Closes the window if it has passed; returns what it had suppressed (to report now).
    pub fn flush(&mut self, now_ns: u64) -> Option<u64> {
        self.roll(now_ns)
    }

    fn roll(&mut self, now_ns: u64) -> Option<u64> {
        if now_ns.saturating_sub(self.window_start) < self.window_ns {
            return None;
        }
        self.window_start = now_ns - (now_ns - self.window_start) % self.window_ns;
        self.emitted = 0;
        let n = std::mem::take(&mut self.suppressed);
        (n > 0).then_some(n)
    }
}

/// Ring-buffer losses per line stream, from the BPF drop counters. The counters live in the
/// pinned stats map and so are cumulative over every guard that used it; a guard reports only
/// what was lost while it ran, each loss once.
#[derive(Clone, Debug)]
pub struct Losses {
    reported: [u64; 2],
}

impl Losses {
    /// `total` and `lifecycle`: the counters at start (the baseline).
    pub fn new(total: u64, lifecycle: u64) -> Self {
        Losses { reported: split(total, lifecycle) }
    }

    /// Losses not reported yet: `[attempt, lifecycle]`, from the counters' current values.
    pub fn update(&mut self, total: u64, lifecycle: u64) -> [u64; 2] {
        let now = split(total, lifecycle);
        let new = [now[0].saturating_sub(self.reported[0]), now[1].saturating_sub(self.reported[1])];
        self.reported = [self.reported[0].max(now[0]), self.reported[1].max(now[1])];
        new
    }
}

fn split(total: u64, lifecycle: u64) -> [u64; 2] {
    [total.saturating_sub(lifecycle), lifecycle]
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn losses_are_reported_once_per_stream_from_the_baseline() {
        let mut l = Losses::new(100, 40);
        assert_eq!(l.update(100, 40), [0, 0], "what was lost before this guard is not its to report");
        assert_eq!(l.update(107, 42), [5, 2]);
        assert_eq!(l.update(107, 42), [0, 0], "reported once");
        assert_eq!(l.update(1107, 42), [1000, 0]);
    }

    #[test]
    fn under_the_limit_everything_is_emitted() {
        let mut r = RateLimiter::new(3, S);
        for t in [S, S + 1, S + 2] {
            assert_eq!(r.admit(t), Verdict::Emit { summary: None });
        }
    }

    #[test]
    fn flood_is_suppressed_and_summarised_once() {
        let mut r = RateLimiter::new(2, S);
        assert_eq!(r.admit(S), Verdict::Emit { summary: None });
        assert_eq!(r.admit(S + 1), Verdict::Emit { summary: None });
        for i in 0..10 {
            assert_eq!(r.admit(S + 2 + i), Verdict::Suppress);
        }
        assert_eq!(r.admit(2 * S + 5), Verdict::Emit { summary: Some(10) });
        assert_eq!(r.admit(2 * S + 6), Verdict::Emit { summary: None });
    }

    #[test]
    fn flush_reports_a_quiet_tail() {
        let mut r = RateLimiter::new(1, S);
        r.admit(S);
        r.admit(S + 1);
        r.admit(S + 2);
        assert_eq!(r.flush(S + 3), None, "window still open");
        assert_eq!(r.flush(2 * S), Some(2));
        assert_eq!(r.flush(3 * S), None, "reported once");
    }

    #[test]
    fn suppression_survives_a_window_whose_first_line_is_also_over() {
        let mut r = RateLimiter::new(0, S);
        assert_eq!(r.admit(S), Verdict::Suppress);
        assert_eq!(r.admit(2 * S), Verdict::Suppress);
        assert_eq!(r.flush(3 * S), Some(2));
    }

    #[test]
    fn windows_align_and_zero_window_is_sane() {
        let mut r = RateLimiter::new(1, 0);
        assert_eq!(r.admit(5), Verdict::Emit { summary: None });
        assert_eq!(r.admit(6), Verdict::Emit { summary: None });
        assert_eq!(RateLimiter::new(1, 1500 * 1_000_000).window_secs(), 2);
    }
}
