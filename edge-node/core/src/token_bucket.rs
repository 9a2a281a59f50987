//! A token bucket: up to `burst` events at once, refilled at a steady rate. Time is passed in
//! (time since any fixed start); time that goes backwards grants nothing.

use std::time::Duration;

#[derive(Clone, Copy, Debug)]
pub struct TokenBucket {
    burst: f64,
    per_second: f64,
    tokens: f64,
    last: Option<Duration>,
}

impl TokenBucket {
    /// Full: `burst` (at least 1) events at once, then `per_second`.
    pub fn new(burst: u32, per_second: f64) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            burst,
            per_second: per_second.max(0.0),
            tokens: burst,
            last: None,
        }
    }

    /// Takes one token at `now` if there is one.
    pub fn take(&mut self, now: Duration) -> bool {
        self.tokens = self.tokens_at(now);
        self.last = Some(now.max(self.last.unwrap_or(now)));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether the bucket has refilled completely by `now` (a fresh one would be the same).
    pub fn full_at(&self, now: Duration) -> bool {
        self.tokens_at(now) >= self.burst
    }

    /// When a token was last asked for.
    pub fn last_used(&self) -> Option<Duration> {
        self.last
    }

    fn tokens_at(&self, now: Duration) -> f64 {
        let elapsed = self
            .last
            .map_or(Duration::ZERO, |last| now.saturating_sub(last));
        (self.tokens + elapsed.as_secs_f64() * self.per_second).min(self.burst)
    }
}
