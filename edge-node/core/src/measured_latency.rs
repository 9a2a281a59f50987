//! The node's measured latency tail, as admission needs it: "what would the p99 be under this
//! load?"
//!
//! Each node latency is recorded divided by the latency the cost model predicts for the load it
//! was measured under ([`crate::admission::Admission::predict`]). The p99 of these ratios is a
//! scale that turns the model's prediction for any load into an expected p99, so samples taken
//! under different loads pool, and everything the model misses (the decoder, the scheduler,
//! other tenants of the machine, how well x264 really scales over its threads) is in it.
//!
//! A render group's start is slow once (its encoder's first frames, the encoder pool warming
//! a spare): samples within [`MeasuredLatency::new`]'s `quiet` time of a start are neither the
//! old load's steady state nor the new one's, and are left out.
//!
//! Time is passed in, so this is tested on simulated time.

use std::collections::VecDeque;
use std::time::Duration;

/// What the estimate is made of, for decisions and their reasons.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TailEstimate {
    /// p99 of measured node latency per millisecond the model predicted (ms/ms).
    pub p99_per_modelled_ms: f64,
    /// Samples it was measured on.
    pub samples: usize,
}

impl TailEstimate {
    /// The expected p99 of a load the model predicts at `modelled_ms`.
    pub fn p99_of(&self, modelled_ms: f64) -> Duration {
        Duration::from_secs_f64((self.p99_per_modelled_ms * modelled_ms / 1e3).clamp(0.0, 1e6))
    }
}

/// Recent node latencies per modelled millisecond.
#[derive(Clone, Debug)]
pub struct MeasuredLatency {
    capacity: usize,
    min_samples: usize,
    quiet: Duration,
    /// Latency over the modelled latency, oldest first.
    samples: VecDeque<f64>,
    /// Samples before this are a group's start-up, and are dropped.
    quiet_until: Duration,
}

impl MeasuredLatency {
    /// Keeps the newest `capacity` samples and estimates from `min_samples` or more; drops
    /// samples for `quiet` after a group starts.
    pub fn new(capacity: usize, min_samples: usize, quiet: Duration) -> Self {
        let capacity = capacity.max(1);
        Self {
            capacity,
            min_samples: min_samples.clamp(1, capacity),
            quiet,
            samples: VecDeque::with_capacity(capacity),
            quiet_until: Duration::ZERO,
        }
    }

    /// A render group started rendering at `now`.
    pub fn group_started(&mut self, now: Duration) {
        self.quiet_until = self.quiet_until.max(now + self.quiet);
    }

    /// A node latency measured at `now` under a load the model predicts at `modelled_ms`.
    pub fn record(&mut self, now: Duration, latency: Duration, modelled_ms: f64) {
        let ratio = latency.as_secs_f64() * 1e3 / modelled_ms;
        if now < self.quiet_until || !ratio.is_finite() || modelled_ms <= 0.0 {
            return;
        }
        if self.samples.len() == self.capacity {
            self.samples.pop_front();
        }
        self.samples.push_back(ratio);
    }

    /// The scale, or `None` until `min_samples` have been measured.
    pub fn estimate(&self) -> Option<TailEstimate> {
        if self.samples.len() < self.min_samples {
            return None;
        }
        let mut sorted: Vec<f64> = self.samples.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        let p99 = sorted[(sorted.len() * 99).div_ceil(100) - 1];
        Some(TailEstimate {
            p99_per_modelled_ms: p99,
            samples: sorted.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn window() -> MeasuredLatency {
        MeasuredLatency::new(300, 100, ms(1000))
    }

    /// Records `n` samples of `latency_ms` under `modelled_ms`, one every 10 ms from `*t`.
    fn feed(w: &mut MeasuredLatency, t: &mut Duration, n: usize, latency_ms: u64, modelled: f64) {
        for _ in 0..n {
            w.record(*t, ms(latency_ms), modelled);
            *t += ms(10);
        }
    }

    #[test]
    fn nothing_is_estimated_before_enough_samples() {
        let mut w = window();
        let mut t = Duration::ZERO;
        feed(&mut w, &mut t, 99, 8, 4.0);
        assert_eq!(w.estimate(), None);
        feed(&mut w, &mut t, 1, 8, 4.0);
        let e = w.estimate().unwrap();
        assert_eq!((e.p99_per_modelled_ms, e.samples), (2.0, 100));
        assert_eq!(e.p99_of(6.0), ms(12));
    }

    #[test]
    fn samples_under_different_loads_pool_by_the_model() {
        let mut w = window();
        let mut t = Duration::ZERO;
        // One group: modelled 8 ms, measured 8; two groups: modelled 16, measured 16.
        feed(&mut w, &mut t, 100, 8, 8.0);
        feed(&mut w, &mut t, 100, 16, 16.0);
        let e = w.estimate().unwrap();
        assert_eq!(e.p99_per_modelled_ms, 1.0);
        // So a load modelled at 24 ms is expected at 24.
        assert_eq!(e.p99_of(24.0), ms(24));
    }

    #[test]
    fn a_new_groups_start_up_is_left_out() {
        let mut w = window();
        let mut t = Duration::ZERO;
        feed(&mut w, &mut t, 100, 8, 8.0);
        w.group_started(t);
        // Its encoder's first frames and the pool's spare encoder: slow once.
        feed(&mut w, &mut t, 100, 40, 16.0);
        assert_eq!(w.estimate().unwrap().p99_per_modelled_ms, 1.0);
        feed(&mut w, &mut t, 10, 24, 16.0);
        assert_eq!(w.estimate().unwrap().p99_per_modelled_ms, 1.5);
    }

    #[test]
    fn a_lighter_node_recovers_as_old_samples_age_out() {
        let mut w = MeasuredLatency::new(100, 60, ms(0));
        let mut t = Duration::ZERO;
        feed(&mut w, &mut t, 100, 30, 10.0);
        assert_eq!(w.estimate().unwrap().p99_per_modelled_ms, 3.0);
        feed(&mut w, &mut t, 100, 6, 10.0);
        assert_eq!(w.estimate().unwrap().p99_per_modelled_ms, 0.6);
    }

    #[test]
    fn a_broken_model_reading_is_ignored() {
        let mut w = MeasuredLatency::new(10, 1, ms(0));
        w.record(ms(1), ms(4), 0.0);
        w.record(ms(1), ms(4), f64::NAN);
        w.record(ms(1), ms(4), -1.0);
        assert_eq!(w.estimate(), None);
    }

    proptest! {
        /// Whatever the order of samples and group starts: the scale is one of the recorded
        /// ratios, and nothing grows past its bound.
        #[test]
        fn estimate_is_a_recorded_ratio(
            events in proptest::collection::vec((0..3u8, 1..40u64, 1..20u64), 1..400),
        ) {
            let mut w = MeasuredLatency::new(120, 30, ms(100));
            let mut t = Duration::ZERO;
            let mut ratios = Vec::new();
            for (kind, value, step) in events {
                t += ms(step);
                if kind == 0 {
                    w.group_started(t);
                } else {
                    let before = w.samples.len();
                    w.record(t, ms(value), 4.0);
                    if w.samples.len() > before || before == 120 {
                        ratios.push(value as f64 / 4.0);
                    }
                }
                prop_assert!(w.samples.len() <= 120);
                if let Some(e) = w.estimate() {
                    prop_assert!(ratios.contains(&e.p99_per_modelled_ms));
                    prop_assert!(e.samples >= 30);
                } else {
                    prop_assert!(w.samples.len() < 30);
                }
            }
        }
    }
}
