//! When a rendering's encoder makes an IDR.
//!
//! Two kinds of keyframe. **On request**: a viewer joining or moving into a rendering asks for
//! one so it starts at once rather than waiting out the GOP. In a crowd, requests arrive many
//! times a second, and every IDR costs each of the rendering's viewers several frames' worth of
//! bits and the encoder an intra frame's work, so requests are merged: at most one per
//! [`MIN_FORCED_KEYFRAME_INTERVAL`], a request inside it waiting (never lost) for its end.
//! **On the cadence**: one every GOP, placed by the node rather than by the encoder, at a phase
//! of its own per rendering. Renderings started together would otherwise encode their IDRs (two
//! to three times a P frame's work) on the same source frame, every GOP, and that frame's
//! latency is the node's p99; phased, each frame carries at most a share of them.

use std::time::Duration;

/// Shortest time between two keyframes made on request for one rendering.
pub const MIN_FORCED_KEYFRAME_INTERVAL: Duration = Duration::from_millis(250);

/// The keyframe decisions of one rendering, on the caller's clock and source frame numbers.
#[derive(Clone, Debug)]
pub struct KeyframePacer {
    gop_frames: u64,
    phase: u64,
    requested: bool,
    last_requested_at: Option<Duration>,
    last_keyframe_seq: Option<u64>,
}

impl KeyframePacer {
    /// The pacer of the `index`-th rendering the node starts: a keyframe every `gop_frames`
    /// source frames, at a phase spread from those of the renderings started before it (by the
    /// golden ratio, so any number of them stays evenly spread), and on its first frame.
    pub fn new(gop_frames: u32, index: u64) -> Self {
        let gop_frames = u64::from(gop_frames.max(1));
        // 0.618... of a GOP per rendering, in 1/1000ths of a frame to stay in integers.
        let phase = (index * 618_034 * gop_frames / 1_000_000) % gop_frames;
        Self {
            gop_frames,
            phase,
            requested: false,
            last_requested_at: None,
            last_keyframe_seq: None,
        }
    }

    /// A viewer needs a keyframe soon.
    pub fn request(&mut self) {
        self.requested = true;
    }

    /// Whether source frame `seq`, about to be encoded at `now`, must be an IDR.
    pub fn take_due(&mut self, seq: u64, now: Duration) -> bool {
        let on_cadence = match self.last_keyframe_seq {
            None => true,
            // The phase's frame, or a GOP since the last keyframe when that frame was never
            // rendered (nobody watched, or the source skipped it).
            Some(last) => {
                (seq + self.phase).is_multiple_of(self.gop_frames)
                    || seq.saturating_sub(last) >= self.gop_frames
            }
        };
        let on_request = self.requested
            && self
                .last_requested_at
                .is_none_or(|last| now.saturating_sub(last) >= MIN_FORCED_KEYFRAME_INTERVAL);
        if on_request {
            self.requested = false;
            self.last_requested_at = Some(now);
        }
        let due = on_cadence || on_request;
        if due {
            // Any keyframe serves every viewer waiting for one.
            self.requested = false;
            self.last_keyframe_seq = Some(seq);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOP: u32 = 30;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    /// Source frame `seq` at 30 fps.
    fn at(seq: u64) -> Duration {
        ms(seq * 1000 / 30)
    }

    fn keyframes(pacer: &mut KeyframePacer, frames: std::ops::Range<u64>) -> Vec<u64> {
        frames.filter(|&seq| pacer.take_due(seq, at(seq))).collect()
    }

    #[test]
    fn the_first_frame_then_one_per_gop_at_the_renderings_phase() {
        let mut first = KeyframePacer::new(GOP, 0);
        assert_eq!(keyframes(&mut first, 100..200), vec![100, 120, 150, 180]);
        let mut second = KeyframePacer::new(GOP, 1);
        // Phase 18: keyframes where (seq + 18) is a multiple of 30.
        assert_eq!(
            keyframes(&mut second, 100..200),
            vec![100, 102, 132, 162, 192]
        );
    }

    #[test]
    fn renderings_started_together_spread_their_keyframes() {
        for renderings in 2..=12u64 {
            let mut pacers: Vec<KeyframePacer> = (0..renderings)
                .map(|i| KeyframePacer::new(GOP, i))
                .collect();
            for p in &mut pacers {
                p.take_due(0, at(0)); // all start on the same frame
            }
            let mut most_on_one_frame = 0;
            for seq in 1..300 {
                let n = pacers
                    .iter_mut()
                    .map(|p| p.take_due(seq, at(seq)))
                    .filter(|&due| due)
                    .count();
                most_on_one_frame = most_on_one_frame.max(n);
            }
            let fair_share = (renderings as usize).div_ceil(GOP as usize);
            assert!(
                most_on_one_frame <= fair_share + 1,
                "{renderings} renderings: {most_on_one_frame} keyframes on one frame"
            );
        }
    }

    #[test]
    fn a_crowd_of_requests_gets_one_keyframe_per_interval_and_none_is_lost() {
        let mut pacer = KeyframePacer::new(GOP, 0);
        assert!(pacer.take_due(0, at(0)));
        let mut forced = Vec::new();
        // A join on every frame for a second, then silence; the cadence's keyframe is 30.
        for seq in 1..60u64 {
            if seq < 29 {
                pacer.request();
            }
            if pacer.take_due(seq, at(seq)) {
                forced.push(seq);
            }
        }
        // Every 250 ms (8 frames at 33 ms) while requests last; the cadence's keyframe at 30
        // serves the last requests.
        assert_eq!(forced, vec![1, 9, 17, 25, 30]);
    }

    #[test]
    fn a_gop_never_runs_long_when_the_phase_frame_is_skipped() {
        let mut pacer = KeyframePacer::new(GOP, 0);
        assert!(pacer.take_due(0, at(0)));
        // Frames 25-35 never rendered (nobody watched): the next frame rendered is a keyframe.
        assert!(!pacer.take_due(24, at(24)));
        assert!(pacer.take_due(36, at(36)));
    }
}
