//! How many log lines a source may write: a token bucket that counts what it turned away.
//!
//! Anything a remote peer can make the node log (a malformed message, a refused connection)
//! goes through a budget, so a flood of bad input costs a few lines and a count, not a log
//! line per packet. Time is passed in; callers hold one budget per peer and one for everyone.

use crate::token_bucket::TokenBucket;
use std::time::Duration;

/// A line may be written now; `suppressed` lines were turned away since the last one written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Allowed {
    pub suppressed: u64,
}

#[derive(Clone, Debug)]
pub struct LogBudget {
    bucket: TokenBucket,
    suppressed: u64,
}

impl LogBudget {
    /// Up to `burst` lines at once, refilled at `per_second`.
    pub fn new(burst: u32, per_second: f64) -> Self {
        Self {
            bucket: TokenBucket::new(burst, per_second),
            suppressed: 0,
        }
    }

    /// Whether a line may be written at `now` (time since any fixed start).
    pub fn allow(&mut self, now: Duration) -> Option<Allowed> {
        if self.bucket.take(now) {
            Some(Allowed {
                suppressed: std::mem::take(&mut self.suppressed),
            })
        } else {
            self.suppressed += 1;
            None
        }
    }

    /// Lines turned away and not yet reported with a written one.
    pub fn pending_suppressed(&self) -> u64 {
        self.suppressed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_burst_then_the_refill_rate() {
        let mut budget = LogBudget::new(3, 1.0);
        let written = (0..1000)
            .filter(|i| budget.allow(MS * *i).is_some())
            .count();
        // 3 at once, then one per second over the 999 ms that follow: none yet.
        assert_eq!(written, 3);
        assert_eq!(budget.pending_suppressed(), 997);
        let next = budget.allow(MS * 2000).expect("refilled");
        assert_eq!(
            next.suppressed, 997,
            "the next line says how many were turned away"
        );
        assert_eq!(budget.pending_suppressed(), 0);
    }

    #[test]
    fn a_flood_at_any_rate_writes_at_most_the_refill_rate() {
        let mut budget = LogBudget::new(5, 2.0);
        // 1,000 lines a second for 10 s.
        let written = (0..10_000)
            .filter(|i| budget.allow(MS * *i).is_some())
            .count();
        assert!((24..=26).contains(&written), "{written}");
    }

    #[test]
    fn time_going_backwards_grants_nothing() {
        let mut budget = LogBudget::new(1, 1.0);
        assert!(budget.allow(MS * 5000).is_some());
        assert!(budget.allow(MS * 1000).is_none());
        assert!(budget.allow(MS * 5500).is_none());
        assert!(budget.allow(MS * 6000).is_some());
    }
}
