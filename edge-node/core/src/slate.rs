//! The slate: what viewers see while the upstream is away.
//!
//! When source frames stop, the node keeps its frame clock going with the last picture dimmed
//! (a "back soon" card and the campaign overlays drawn over it, like any frame), so a viewer
//! sees that the show paused rather than a frozen or black player, and every rendering stays
//! a live stream its viewers' players keep playing. The upstream's first frame back ends it.

use crate::frame::{FrameMeta, I420Frame};
use std::time::Duration;

/// Decides when a slate frame is due: none until `after` has passed without a source frame,
/// then one per frame interval until a source frame arrives.
#[derive(Clone, Debug)]
pub struct SlateClock {
    interval: Duration,
    after: Duration,
    last_source: Option<Duration>,
    last_slate: Option<Duration>,
}

impl SlateClock {
    pub fn new(fps: f64, after: Duration) -> Self {
        let fps = if fps.is_finite() && fps > 0.0 {
            fps
        } else {
            30.0
        };
        Self {
            interval: Duration::from_secs_f64(1.0 / fps),
            after,
            last_source: None,
            last_slate: None,
        }
    }

    /// A source frame arrived at `now`: the slate (if any) ends.
    pub fn source_frame(&mut self, now: Duration) {
        self.last_source = Some(now);
        self.last_slate = None;
    }

    /// When the next slate frame is due; `None` before the first source frame (there is no
    /// picture to dim yet).
    pub fn next_due(&self) -> Option<Duration> {
        let source = self.last_source?;
        Some(match self.last_slate {
            None => source + self.after,
            Some(slate) => slate + self.interval,
        })
    }

    /// Whether a slate frame is due at `now`; if so it is counted as drawn.
    pub fn take_due(&mut self, now: Duration) -> bool {
        match self.next_due() {
            Some(due) if now >= due => {
                // Paced from the schedule, so a wake-up a little late does not slow the clock;
                // one late by a whole frame or more starts the schedule again from now
                // instead of drawing the missed frames in a burst.
                let late = now - due >= self.interval;
                self.last_slate = Some(if late { now } else { due });
                true
            }
            _ => false,
        }
    }

    /// Whether the slate is showing.
    pub fn showing(&self) -> bool {
        self.last_slate.is_some()
    }
}

/// `frame` dimmed and its colour faded toward grey, for the slate: still recognisable, plainly
/// not live. Limited-range I420 (black at 16, neutral chroma at 128).
pub fn dimmed(frame: &I420Frame, meta: FrameMeta) -> I420Frame {
    const KEEP: f32 = 0.35;
    let luma = frame.layout.luma_len();
    let data: Vec<u8> = frame
        .data
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let base = if i < luma { 16.0 } else { 128.0 };
            (base + (f32::from(v) - base) * KEEP)
                .round()
                .clamp(0.0, 255.0) as u8
        })
        .collect();
    I420Frame::new(frame.layout, data.into(), meta).expect("same layout, same length")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PlaneLayout;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn nothing_before_the_first_source_frame_or_while_frames_flow() {
        let mut slate = SlateClock::new(30.0, MS * 1000);
        assert!(!slate.take_due(MS * 5000), "no picture to dim yet");
        for t in 0..100 {
            slate.source_frame(MS * (t * 33));
            assert!(!slate.take_due(MS * (t * 33 + 20)));
        }
        assert!(!slate.showing());
    }

    #[test]
    fn after_the_wait_one_frame_per_interval_until_the_source_returns() {
        let mut slate = SlateClock::new(30.0, MS * 1000);
        slate.source_frame(Duration::ZERO);
        assert!(!slate.take_due(MS * 999));
        // Polled every millisecond for 3 s: 2 s of slate at 30 fps.
        let drawn = (1000..3000).filter(|t| slate.take_due(MS * *t)).count();
        assert!((59..=61).contains(&drawn), "{drawn}");
        assert!(slate.showing());
        slate.source_frame(MS * 3000);
        assert!(!slate.showing());
        assert!(!slate.take_due(MS * 3100));
    }

    #[test]
    fn a_late_wake_up_draws_one_frame_not_a_burst() {
        let mut slate = SlateClock::new(30.0, MS * 1000);
        slate.source_frame(Duration::ZERO);
        assert!(slate.take_due(MS * 1000));
        assert!(slate.take_due(MS * 1500), "late by 15 frames");
        assert!(!slate.take_due(MS * 1501), "no catching up");
        assert!(slate.take_due(MS * 1534));
    }

    #[test]
    fn dimming_keeps_black_black_and_grey_grey() {
        let layout = PlaneLayout::new(4, 2).unwrap();
        let mut data = vec![235u8; layout.luma_len()];
        data[0] = 16;
        data.extend(vec![240u8; layout.chroma_len()]);
        data.extend(vec![128u8; layout.chroma_len()]);
        let frame = I420Frame::new(layout, data.into(), FrameMeta::default()).unwrap();
        let dim = dimmed(&frame, FrameMeta::default());
        assert_eq!(dim.y()[0], 16, "black stays black");
        assert_eq!(dim.y()[1], 16 + ((235.0 - 16.0) * 0.35_f32).round() as u8);
        assert_eq!(dim.u()[0], 128 + ((240.0 - 128.0) * 0.35_f32).round() as u8);
        assert_eq!(dim.v()[0], 128, "neutral stays neutral");
    }
}
