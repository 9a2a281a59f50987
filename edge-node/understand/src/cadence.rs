//! When a model runs: every N frames or every N milliseconds, on the newest frame. A pure
//! decision with time passed in, so it is tested on simulated time.

use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cadence {
    /// At most once per N source frames (by sequence number: frames dropped upstream count).
    EveryFrames(u64),
    /// At most once per N milliseconds of the worker's clock.
    EveryMillis(u64),
}

/// Remembers when a model last ran and says whether a new frame is due.
#[derive(Clone, Debug)]
pub struct CadenceGate {
    cadence: Cadence,
    last: Option<(u64, Duration)>,
}

impl CadenceGate {
    pub fn new(cadence: Cadence) -> Self {
        Self {
            cadence,
            last: None,
        }
    }

    /// Whether the frame `seq`, seen at `now`, is due. A due frame counts as run: the next one
    /// is measured from it. A sequence number that goes backwards (an upstream restart) is due.
    pub fn due(&mut self, seq: u64, now: Duration) -> bool {
        let due = self.is_due(seq, now);
        if due {
            self.ran(seq, now);
        }
        due
    }

    /// Whether the frame `seq`, seen at `now`, is due, without counting it as run.
    pub fn is_due(&self, seq: u64, now: Duration) -> bool {
        match self.last {
            None => true,
            Some((last_seq, last_at)) => match self.cadence {
                Cadence::EveryFrames(n) => seq < last_seq || seq - last_seq >= n.max(1),
                Cadence::EveryMillis(ms) => {
                    now < last_at || now - last_at >= Duration::from_millis(ms)
                }
            },
        }
    }

    /// The model ran on frame `seq` at `now`: the next due frame is measured from here.
    pub fn ran(&mut self, seq: u64, now: Duration) {
        self.last = Some((seq, now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn every_frames_counts_sequence_numbers() {
        let mut g = CadenceGate::new(Cadence::EveryFrames(3));
        let due: Vec<u64> = (0..10).filter(|&s| g.due(s, ms(s * 33))).collect();
        assert_eq!(due, [0, 3, 6, 9]);
    }

    #[test]
    fn every_frames_with_gaps_runs_on_the_first_frame_past_the_interval() {
        let mut g = CadenceGate::new(Cadence::EveryFrames(3));
        assert!(g.due(10, ms(0)));
        assert!(!g.due(12, ms(1)));
        assert!(g.due(17, ms(2)));
        assert!(!g.due(19, ms(3)));
        assert!(g.due(20, ms(4)));
    }

    #[test]
    fn every_millis_at_30fps() {
        let mut g = CadenceGate::new(Cadence::EveryMillis(100));
        let due: Vec<u64> = (0..12).filter(|&s| g.due(s, ms(s * 33))).collect();
        // 0 ms, 132 ms (first >= 100 after 0), 264 ms.
        assert_eq!(due, [0, 4, 8]);
    }

    #[test]
    fn restarts_are_due() {
        let mut g = CadenceGate::new(Cadence::EveryFrames(5));
        assert!(g.due(100, ms(0)));
        assert!(g.due(0, ms(1)));
        let mut g = CadenceGate::new(Cadence::EveryMillis(100));
        assert!(g.due(0, ms(500)));
        assert!(g.due(1, ms(10)));
    }
}
