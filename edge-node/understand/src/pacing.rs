//! Inference in the frame path's idle window: a due model runs once the frame's encodes are
//! out and only if its recent run time fits before the next frame arrives. A model that keeps
//! not fitting (a loaded node) runs anyway after a longest deferral, so results come later but
//! never stop. A pure decision with time passed in, tested on simulated time.

use std::collections::VecDeque;
use std::time::Duration;

/// Runs remembered to predict the next one.
const RECENT_RUNS: usize = 8;

/// The longest a due model waits for a window it fits in.
pub const LONGEST_DEFERRAL: Duration = Duration::from_millis(500);

/// What the worker does with a due model and the current frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// It fits before the next frame (or nothing is known yet).
    Run,
    /// It does not fit, but has waited [`LONGEST_DEFERRAL`]: it runs beside the next frame.
    RunLate,
    /// It waits for a later frame's window.
    Defer,
}

/// One model's recent run times and how long it has been waiting for a window.
#[derive(Clone, Debug, Default)]
pub struct Pacer {
    recent: VecDeque<Duration>,
    deferred_since: Option<Duration>,
}

impl Pacer {
    pub fn new() -> Self {
        Self::default()
    }

    /// The run time to plan for: the median of recent runs, so one preempted run does not
    /// close the window for the next ones.
    pub fn predicted(&self) -> Option<Duration> {
        let mut sorted: Vec<Duration> = self.recent.iter().copied().collect();
        sorted.sort_unstable();
        sorted.get(sorted.len() / 2).copied()
    }

    /// A run took `took` (wall time on the worker).
    pub fn ran(&mut self, took: Duration) {
        if self.recent.len() == RECENT_RUNS {
            self.recent.pop_front();
        }
        self.recent.push_back(took);
        self.deferred_since = None;
    }

    /// Whether a due model runs now, with `left` of the idle window (`None`: unknown, as before
    /// the frame rate is known) at `now` on the worker's clock.
    pub fn decide(&mut self, left: Option<Duration>, now: Duration) -> Decision {
        let fits = match (self.predicted(), left) {
            (Some(predicted), Some(left)) => predicted <= left,
            _ => true,
        };
        if fits {
            return Decision::Run;
        }
        let since = *self.deferred_since.get_or_insert(now);
        if now.saturating_sub(since) >= LONGEST_DEFERRAL {
            Decision::RunLate
        } else {
            Decision::Defer
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn with_nothing_known_it_runs() {
        let mut p = Pacer::new();
        assert_eq!(p.decide(Some(ms(1)), ms(0)), Decision::Run);
        p.ran(ms(30));
        assert_eq!(p.decide(None, ms(10)), Decision::Run);
    }

    #[test]
    fn it_runs_when_the_median_fits_the_window() {
        let mut p = Pacer::new();
        for took in [16, 17, 29, 16, 18] {
            p.ran(ms(took));
        }
        assert_eq!(p.predicted(), Some(ms(17)));
        assert_eq!(p.decide(Some(ms(25)), ms(0)), Decision::Run);
        assert_eq!(p.decide(Some(ms(12)), ms(0)), Decision::Defer);
    }

    #[test]
    fn a_model_that_never_fits_runs_late_after_the_longest_deferral() {
        let mut p = Pacer::new();
        p.ran(ms(40));
        let frame = ms(33);
        let decisions: Vec<Decision> = (0..20).map(|i| p.decide(Some(ms(20)), frame * i)).collect();
        let first_late = decisions
            .iter()
            .position(|d| *d == Decision::RunLate)
            .unwrap();
        assert!(decisions[..first_late]
            .iter()
            .all(|d| *d == Decision::Defer));
        assert_eq!(
            frame * first_late as u32,
            ms(528),
            "the first frame past 500 ms"
        );
        p.ran(ms(40));
        assert_eq!(
            p.decide(Some(ms(20)), ms(700)),
            Decision::Defer,
            "waits afresh"
        );
    }

    #[test]
    fn only_recent_runs_predict() {
        let mut p = Pacer::new();
        for _ in 0..RECENT_RUNS {
            p.ran(ms(50));
        }
        for _ in 0..RECENT_RUNS {
            p.ran(ms(10));
        }
        assert_eq!(p.predicted(), Some(ms(10)));
    }
}
