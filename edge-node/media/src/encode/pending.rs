//! Matching encoder output to the frames pushed in, by running time.

use edge_core::FrameMeta;
use std::collections::VecDeque;
use std::time::Instant;

/// Frames remembered while inside the encoder. Far more than the encoder ever holds with
/// zerolatency (none) or the input queue (two); the bound only protects against an encoder that
/// swallows frames.
const MAX_PENDING: usize = 64;

#[derive(Clone, Copy, Debug)]
pub(crate) struct Pending {
    pub running_ns: u64,
    pub meta: FrameMeta,
    pub pushed_at: Instant,
}

#[derive(Default, Debug)]
pub(crate) struct PendingFrames {
    entries: VecDeque<Pending>,
    last: Option<Pending>,
}

impl PendingFrames {
    /// Remembers a pushed frame; returns how many old entries were evicted (counted as drops).
    pub(crate) fn push(&mut self, running_ns: u64, meta: FrameMeta, pushed_at: Instant) -> usize {
        let mut evicted = 0;
        while self.entries.len() >= MAX_PENDING {
            self.entries.pop_front();
            evicted += 1;
        }
        self.entries.push_back(Pending {
            running_ns,
            meta,
            pushed_at,
        });
        evicted
    }

    /// Finds the frame an output buffer belongs to. Older entries can never come out any more
    /// (output is in order without B-frames), so they are dropped and counted. An output
    /// without a running time or with an unknown one is attributed to the most recent match,
    /// so its access unit still reaches viewers (dropping it would break the reference chain).
    pub(crate) fn take(&mut self, running_ns: Option<u64>) -> (Option<Pending>, usize) {
        let Some(running_ns) = running_ns else {
            return (self.entries.pop_front().or(self.last), 0);
        };
        let mut dropped = 0;
        while let Some(front) = self.entries.front() {
            if front.running_ns < running_ns {
                self.entries.pop_front();
                dropped += 1;
                continue;
            }
            if front.running_ns == running_ns {
                self.last = self.entries.pop_front();
                return (self.last, dropped);
            }
            break;
        }
        (self.last, dropped)
    }
}

/// Running times for pushed frames: strictly increasing, following the source timeline's
/// spacing, starting at zero.
#[derive(Debug)]
pub(crate) struct RunningClock {
    frame_ns: u64,
    last: Option<(u64, u64)>,
}

impl RunningClock {
    pub(crate) fn new(frame_ns: u64) -> Self {
        Self {
            frame_ns: frame_ns.max(1),
            last: None,
        }
    }

    pub(crate) fn frame_ns(&self) -> u64 {
        self.frame_ns
    }

    /// The running time for a frame whose source time is `pts_ns`. A repeated or backwards
    /// source time (the same frame rendered twice, an upstream restart) advances by a frame.
    pub(crate) fn next(&mut self, pts_ns: u64) -> u64 {
        let running = match self.last {
            None => 0,
            Some((last_pts, last_running)) => {
                let step = pts_ns
                    .checked_sub(last_pts)
                    .filter(|d| *d > 0)
                    .unwrap_or(self.frame_ns);
                last_running + step
            }
        };
        self.last = Some((pts_ns, running));
        running
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(seq: u64) -> FrameMeta {
        FrameMeta {
            seq,
            pts_ns: seq,
            received_unix_us: seq,
        }
    }

    #[test]
    fn matches_in_order_and_counts_skipped_frames() {
        let mut p = PendingFrames::default();
        let now = Instant::now();
        for i in 0..4 {
            p.push(i * 10, meta(i), now);
        }
        let (m, d) = p.take(Some(0));
        assert_eq!((m.unwrap().meta.seq, d), (0, 0));
        // Frame 1 was dropped before the encoder.
        let (m, d) = p.take(Some(20));
        assert_eq!((m.unwrap().meta.seq, d), (2, 1));
        // Unknown time: attributed to the last match, nothing dropped.
        let (m, d) = p.take(Some(25));
        assert_eq!((m.unwrap().meta.seq, d), (2, 0));
        let (m, _) = p.take(Some(30));
        assert_eq!(m.unwrap().meta.seq, 3);
    }

    #[test]
    fn bounded() {
        let mut p = PendingFrames::default();
        let now = Instant::now();
        let evicted: usize = (0..MAX_PENDING as u64 + 5)
            .map(|i| p.push(i, meta(i), now))
            .sum();
        assert_eq!(evicted, 5);
    }

    #[test]
    fn running_clock_follows_source_spacing() {
        let mut c = RunningClock::new(33);
        assert_eq!(c.next(1_000), 0);
        assert_eq!(c.next(1_040), 40);
        assert_eq!(c.next(1_040), 73); // repeated frame: one frame later
        assert_eq!(c.next(0), 106); // source restarted
        assert_eq!(c.next(10), 116);
    }
}
