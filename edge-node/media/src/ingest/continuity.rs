//! Keeps presentation times monotonic across reconnects and file loops.
//!
//! Every new pipeline (and every loop of a file) restarts its running time at zero, while the
//! rest of the node treats `FrameMeta::pts_ns` as one timeline. When the running time steps
//! back, the timeline continues one frame after the last frame handed out.

#[derive(Clone, Debug)]
pub(crate) struct PtsContinuity {
    offset_ns: i128,
    last_out_ns: Option<u64>,
}

impl PtsContinuity {
    pub(crate) fn new() -> Self {
        Self {
            offset_ns: 0,
            last_out_ns: None,
        }
    }

    /// Maps a running time to the node timeline; `frame_ns` is the gap used after a step back.
    pub(crate) fn map(&mut self, running_ns: u64, frame_ns: u64) -> u64 {
        let mut out = running_ns as i128 + self.offset_ns;
        if let Some(last) = self.last_out_ns {
            if out <= last as i128 {
                let target = last as i128 + frame_ns.max(1) as i128;
                self.offset_ns = target - running_ns as i128;
                out = target;
            }
        }
        let out = out.clamp(0, u64::MAX as i128) as u64;
        self.last_out_ns = Some(out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_through_a_monotonic_timeline() {
        let mut c = PtsContinuity::new();
        assert_eq!(c.map(0, 10), 0);
        assert_eq!(c.map(33, 10), 33);
        assert_eq!(c.map(66, 10), 66);
    }

    #[test]
    fn restart_continues_one_frame_later() {
        let mut c = PtsContinuity::new();
        c.map(1_000, 33);
        assert_eq!(c.map(0, 33), 1_033);
        assert_eq!(c.map(33, 33), 1_066);
        // A second restart stacks on the first.
        assert_eq!(c.map(0, 33), 1_099);
    }

    #[test]
    fn repeated_time_still_advances() {
        let mut c = PtsContinuity::new();
        c.map(500, 0);
        assert_eq!(c.map(500, 0), 501);
    }
}
