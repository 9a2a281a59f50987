//! The node's measured latency tail, as admission needs it: "what would the p99 be with this
//! much more work?"
//!
//! Each node latency is recorded divided by the *work* of the load it was measured under (the
//! cost model's CPU milliseconds per frame). On the 2-core CI machine the p99 grows nearly in
//! proportion to the work (7.2, 13.7, 18.4, 24.4 ms for 1-4 720p groups), so the p99 of these
//! ratios is a scale that turns any load's work into its expected p99, and samples taken under
//! different loads can be pooled. The model then only has to say how much work an option adds;
//! what one millisecond of work costs in p99 is measured, with everything the model misses
//! (fan-out, QUIC, the scheduler, other tenants) in it.
//!
//! - A render group's start is slow once (its encoder's first frames, the encoder pool warming
//!   a spare): samples within [`MeasuredLatency::new`]'s `quiet` time of a start are neither the
//!   old load's steady state nor the new one's, and are left out.
//! - An admission shows in the reported load only once the viewer is seated (the next frame):
//!   until `seat` time has passed its work counts as *pending*.
//!
//! Time is passed in, so this is tested on simulated time.

use std::collections::VecDeque;
use std::time::Duration;

/// What the estimate is made of, for decisions and their reasons.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TailEstimate {
    /// p99 of node latency per millisecond of work (ms/ms).
    pub p99_per_work: f64,
    /// Samples it was measured on.
    pub samples: usize,
    /// Work admitted but not yet in the reported load, in milliseconds.
    pub pending_work_ms: f64,
}

impl TailEstimate {
    /// The expected p99 of `work_ms` of work.
    pub fn p99_of(&self, work_ms: f64) -> Duration {
        Duration::from_secs_f64((self.p99_per_work * work_ms / 1e3).clamp(0.0, 1e6))
    }
}

/// Recent node latencies per unit of work.
#[derive(Clone, Debug)]
pub struct MeasuredLatency {
    capacity: usize,
    min_samples: usize,
    quiet: Duration,
    seat: Duration,
    /// Latency over work, oldest first.
    samples: VecDeque<f64>,
    /// Samples before this are a group's start-up, and are dropped.
    quiet_until: Duration,
    /// (admitted at, work) not yet in the reported load.
    pending: VecDeque<(Duration, f64)>,
}

impl MeasuredLatency {
    /// Keeps the newest `capacity` samples and estimates from `min_samples` or more; drops
    /// samples for `quiet` after a group starts; counts an admission as pending for `seat`.
    pub fn new(capacity: usize, min_samples: usize, quiet: Duration, seat: Duration) -> Self {
        let capacity = capacity.max(1);
        Self {
            capacity,
            min_samples: min_samples.clamp(1, capacity),
            quiet,
            seat,
            samples: VecDeque::with_capacity(capacity),
            quiet_until: Duration::ZERO,
            pending: VecDeque::new(),
        }
    }

    /// A render group started rendering at `now`.
    pub fn group_started(&mut self, now: Duration) {
        self.quiet_until = self.quiet_until.max(now + self.quiet);
    }

    /// `work_ms` of work was admitted at `now`, not yet in the reported load.
    pub fn admitted(&mut self, now: Duration, work_ms: f64) {
        self.expire(now);
        if work_ms.is_finite() && work_ms > 0.0 {
            // Bounded: at most one entry per admission within `seat`, and never over capacity.
            if self.pending.len() == self.capacity {
                self.pending.pop_front();
            }
            self.pending.push_back((now, work_ms));
        }
    }

    /// A node latency measured at `now` under a load of `work_ms`.
    pub fn record(&mut self, now: Duration, latency: Duration, work_ms: f64) {
        let ratio = latency.as_secs_f64() * 1e3 / work_ms;
        if now < self.quiet_until || !ratio.is_finite() || work_ms <= 0.0 {
            return;
        }
        if self.samples.len() == self.capacity {
            self.samples.pop_front();
        }
        self.samples.push_back(ratio);
    }

    fn expire(&mut self, now: Duration) {
        while self
            .pending
            .front()
            .is_some_and(|(at, _)| now.saturating_sub(*at) >= self.seat)
        {
            self.pending.pop_front();
        }
    }

    /// The scale and pending work at `now`, or `None` until `min_samples` have been measured.
    pub fn estimate(&mut self, now: Duration) -> Option<TailEstimate> {
        self.expire(now);
        if self.samples.len() < self.min_samples {
            return None;
        }
        let mut sorted: Vec<f64> = self.samples.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        let p99 = sorted[(sorted.len() * 99).div_ceil(100) - 1];
        Some(TailEstimate {
            p99_per_work: p99,
            samples: sorted.len(),
            pending_work_ms: self.pending.iter().map(|(_, w)| w).sum(),
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
        MeasuredLatency::new(300, 100, ms(1000), ms(200))
    }

    /// Records `n` samples of `latency_ms` under `work_ms`, one every 10 ms from `*t`.
    fn feed(w: &mut MeasuredLatency, t: &mut Duration, n: usize, latency_ms: u64, work_ms: f64) {
        for _ in 0..n {
            w.record(*t, ms(latency_ms), work_ms);
            *t += ms(10);
        }
    }

    #[test]
    fn nothing_is_estimated_before_enough_samples() {
        let mut w = window();
        let mut t = Duration::ZERO;
        feed(&mut w, &mut t, 99, 8, 4.0);
        assert_eq!(w.estimate(t), None);
        feed(&mut w, &mut t, 1, 8, 4.0);
        let e = w.estimate(t).unwrap();
        assert_eq!(
            (e.p99_per_work, e.samples, e.pending_work_ms),
            (2.0, 100, 0.0)
        );
        assert_eq!(e.p99_of(6.0), ms(12));
    }

    #[test]
    fn samples_under_different_loads_pool_by_work() {
        let mut w = window();
        let mut t = Duration::ZERO;
        // One group: 8 ms of work, 8 ms p99; two groups: 16 ms of work, 16 ms p99.
        feed(&mut w, &mut t, 100, 8, 8.0);
        feed(&mut w, &mut t, 100, 16, 16.0);
        let e = w.estimate(t).unwrap();
        assert_eq!(e.p99_per_work, 1.0);
        // So three groups are expected at 24 ms.
        assert_eq!(e.p99_of(24.0), ms(24));
    }

    #[test]
    fn an_admission_is_pending_until_seated() {
        let mut w = window();
        let mut t = Duration::ZERO;
        feed(&mut w, &mut t, 100, 8, 8.0);
        w.admitted(t, 0.5);
        w.admitted(t + ms(50), 0.25);
        assert_eq!(w.estimate(t + ms(60)).unwrap().pending_work_ms, 0.75);
        assert_eq!(w.estimate(t + ms(220)).unwrap().pending_work_ms, 0.25);
        assert_eq!(w.estimate(t + ms(260)).unwrap().pending_work_ms, 0.0);
    }

    #[test]
    fn a_new_groups_start_up_is_left_out() {
        let mut w = window();
        let mut t = Duration::ZERO;
        feed(&mut w, &mut t, 100, 8, 8.0);
        w.group_started(t);
        // Its encoder's first frames and the pool's spare encoder: slow once.
        feed(&mut w, &mut t, 100, 40, 16.0);
        assert_eq!(w.estimate(t).unwrap().p99_per_work, 1.0);
        feed(&mut w, &mut t, 10, 24, 16.0);
        assert_eq!(w.estimate(t).unwrap().p99_per_work, 1.5);
    }

    #[test]
    fn a_lighter_node_recovers_as_old_samples_age_out() {
        let mut w = MeasuredLatency::new(100, 60, ms(0), ms(0));
        let mut t = Duration::ZERO;
        feed(&mut w, &mut t, 100, 30, 10.0);
        assert_eq!(w.estimate(t).unwrap().p99_per_work, 3.0);
        feed(&mut w, &mut t, 100, 6, 10.0);
        assert_eq!(w.estimate(t).unwrap().p99_per_work, 0.6);
    }

    #[test]
    fn broken_work_is_ignored() {
        let mut w = MeasuredLatency::new(10, 1, ms(0), ms(0));
        w.record(ms(1), ms(4), 0.0);
        w.record(ms(1), ms(4), f64::NAN);
        w.record(ms(1), ms(4), -1.0);
        w.admitted(ms(1), f64::INFINITY);
        assert_eq!(w.estimate(ms(2)), None);
    }

    proptest! {
        /// Whatever the order of samples, starts and admissions: the scale is one of the
        /// recorded ratios, pending work is what was admitted within the seat time, and nothing
        /// grows past its bound.
        #[test]
        fn estimate_is_a_recorded_ratio_plus_recent_admissions(
            events in proptest::collection::vec((0..3u8, 1..40u64, 1..20u64), 1..400),
        ) {
            let mut w = MeasuredLatency::new(120, 30, ms(100), ms(50));
            let mut t = Duration::ZERO;
            let mut ratios = Vec::new();
            let mut admitted: Vec<(Duration, f64)> = Vec::new();
            for (kind, value, step) in events {
                t += ms(step);
                match kind {
                    0 => {
                        w.admitted(t, value as f64);
                        admitted.push((t, value as f64));
                    }
                    1 => w.group_started(t),
                    _ => {
                        let before = w.samples.len();
                        w.record(t, ms(value), 4.0);
                        if w.samples.len() > before || before == 120 {
                            ratios.push(value as f64 / 4.0);
                        }
                    }
                }
                prop_assert!(w.samples.len() <= 120 && w.pending.len() <= 120);
                if let Some(e) = w.estimate(t) {
                    prop_assert!(ratios.contains(&e.p99_per_work));
                    let recent: f64 = admitted.iter().filter(|(at, _)| t - *at < ms(50)).map(|(_, v)| v).sum();
                    prop_assert!((e.pending_work_ms - recent).abs() < 1e-9);
                    prop_assert!(e.samples >= 30);
                } else {
                    prop_assert!(w.samples.len() < 30);
                }
            }
        }
    }
}
