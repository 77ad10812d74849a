//! Rate-limited logging, for whatever an outsider can trigger at will.
//!
//! Every packet from the network can produce a log line (a parse error, a refused request), so
//! without a limit a flood of cheap packets becomes gigabytes of log. A [`LogLimiter`] lets the
//! first `burst` events of each kind per window through in full and only counts the rest; when
//! a window with suppressed events is over, [`LogLimiter::summaries`] returns one count per kind
//! for a single summary line. It holds no clock: the caller passes the time, so every edge is a
//! unit test.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Per-kind budget of log lines per window.
#[derive(Debug)]
pub struct LogLimiter<K> {
    burst: u32,
    window: Duration,
    kinds: HashMap<K, Budget>,
}

#[derive(Debug)]
struct Budget {
    started: Instant,
    logged: u32,
    suppressed: u64,
}

impl<K: Copy + Eq + Hash> LogLimiter<K> {
    /// `burst` lines per kind in each `window`.
    pub fn new(burst: u32, window: Duration) -> Self {
        Self {
            burst,
            window,
            kinds: HashMap::new(),
        }
    }

    /// Whether an event of `kind` at `now` may be logged in full; if not, it is counted.
    /// The number of kinds must be bounded by the caller (an enum, not an address).
    pub fn admit(&mut self, kind: K, now: Instant) -> bool {
        let window = self.window;
        let budget = self.kinds.entry(kind).or_insert(Budget {
            started: now,
            logged: 0,
            suppressed: 0,
        });
        if now.saturating_duration_since(budget.started) >= window && budget.suppressed == 0 {
            // A quiet new window; one with suppressed events restarts in `summaries`.
            budget.started = now;
            budget.logged = 0;
        }
        if budget.logged < self.burst {
            budget.logged += 1;
            true
        } else {
            budget.suppressed += 1;
            false
        }
    }

    /// Kinds whose window is over with events suppressed, and how many; each starts a new
    /// window. Call it now and then (and before [`admit`](Self::admit)).
    pub fn summaries(&mut self, now: Instant) -> Vec<(K, u64)> {
        let mut out = Vec::new();
        for (kind, budget) in &mut self.kinds {
            if budget.suppressed > 0 && now.saturating_duration_since(budget.started) >= self.window
            {
                out.push((*kind, budget.suppressed));
                budget.started = now;
                budget.logged = 0;
                budget.suppressed = 0;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Duration = Duration::from_secs(60);

    #[test]
    fn the_first_burst_is_logged_the_rest_counted_then_summarised_once() {
        let t0 = Instant::now();
        let mut l = LogLimiter::new(3, W);
        let admitted = (0..100_000).filter(|_| l.admit("parse", t0)).count();
        assert_eq!(admitted, 3);
        assert!(
            l.summaries(t0 + W / 2).is_empty(),
            "not before the window ends"
        );
        assert_eq!(l.summaries(t0 + W), vec![("parse", 99_997)]);
        assert!(
            l.summaries(t0 + 2 * W).is_empty(),
            "a summary is given once"
        );
        assert!(l.admit("parse", t0 + W + Duration::from_secs(1)));
    }

    #[test]
    fn kinds_have_their_own_budgets() {
        let t0 = Instant::now();
        let mut l = LogLimiter::new(1, W);
        assert!(l.admit(1, t0));
        assert!(!l.admit(1, t0));
        assert!(l.admit(2, t0));
        assert_eq!(l.summaries(t0 + W), vec![(1, 1)]);
    }

    #[test]
    fn a_quiet_window_refills_the_budget() {
        let t0 = Instant::now();
        let mut l = LogLimiter::new(2, W);
        assert!(l.admit('x', t0));
        assert!(l.admit('x', t0));
        assert!(l.admit('x', t0 + W), "new window, nothing was suppressed");
        assert!(l.summaries(t0 + 3 * W).is_empty());
    }
}
