//! One continuous media timeline for everything the node renders from its upstream.
//!
//! Every render group encodes the same source frames, and a viewer moved between groups must
//! continue on the same clock. The upstream's own timestamps restart when it reconnects (or jump
//! when a file loops), so they are mapped once, at ingest, onto a timeline that only moves
//! forward at the pace of the source.

/// Maps upstream presentation times (ns) onto the node's media timeline (ns).
#[derive(Clone, Debug)]
pub struct MediaClock {
    /// Largest step between two frames still taken as the stream's own pacing; a larger jump
    /// (either way) is a discontinuity.
    max_step_ns: u64,
    /// Added to an upstream time to give media time, while the upstream clock is continuous.
    offset_ns: i128,
    last: Option<(u64, u64)>,
    nominal_frame_ns: u64,
}

impl MediaClock {
    /// `fps` gives the step used across a discontinuity; `max_step` bounds "continuous".
    pub fn new(fps: f64, max_step_ns: u64) -> Self {
        let nominal_frame_ns = if fps.is_finite() && fps > 0.0 {
            (1e9 / fps).round().max(1.0) as u64
        } else {
            33_333_333
        };
        Self {
            max_step_ns,
            offset_ns: 0,
            last: None,
            nominal_frame_ns,
        }
    }

    /// Media time of a frame with upstream time `pts_ns`: the upstream's own spacing while it
    /// is continuous, one nominal frame after the previous frame across a discontinuity.
    pub fn media_time_ns(&mut self, pts_ns: u64) -> u64 {
        let media = match self.last {
            None => {
                self.offset_ns = 0;
                pts_ns
            }
            Some((last_pts, last_media)) => {
                let continuous = pts_ns > last_pts && pts_ns - last_pts <= self.max_step_ns;
                if !continuous {
                    let next = last_media + self.nominal_frame_ns;
                    self.offset_ns = i128::from(next) - i128::from(pts_ns);
                }
                let media = i128::from(pts_ns) + self.offset_ns;
                u64::try_from(media).unwrap_or(last_media + self.nominal_frame_ns)
            }
        };
        self.last = Some((pts_ns, media));
        media
    }

    /// Media time of a frame the node makes itself (the slate): one nominal frame after the
    /// previous one. The upstream's next frame is then taken as a discontinuity, so it follows
    /// the last made frame by one frame whatever its own time says.
    pub fn made_frame_ns(&mut self) -> u64 {
        let media = self
            .last
            .map_or(0, |(_, last_media)| last_media + self.nominal_frame_ns);
        self.last = Some((u64::MAX, media));
        media
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const FRAME: u64 = 33_333_333;

    #[test]
    fn follows_the_upstream_and_bridges_restarts() {
        let mut clock = MediaClock::new(30.0, 1_000_000_000);
        assert_eq!(clock.media_time_ns(10 * FRAME), 10 * FRAME);
        assert_eq!(clock.media_time_ns(11 * FRAME), 11 * FRAME);
        // The upstream reconnects and starts again at zero: continue one frame later.
        assert_eq!(clock.media_time_ns(0), 12 * FRAME);
        assert_eq!(clock.media_time_ns(FRAME), 13 * FRAME);
        // A jump far ahead is bridged the same way.
        assert_eq!(clock.media_time_ns(3_600 * 1_000_000_000), 14 * FRAME);
    }

    #[test]
    fn made_frames_continue_the_clock_and_the_upstream_follows_them() {
        let mut clock = MediaClock::new(30.0, 1_000_000_000);
        assert_eq!(clock.media_time_ns(5 * FRAME), 5 * FRAME);
        assert_eq!(clock.made_frame_ns(), 6 * FRAME);
        assert_eq!(clock.made_frame_ns(), 7 * FRAME);
        // The upstream returns with a time that would otherwise look continuous.
        assert_eq!(clock.media_time_ns(6 * FRAME), 8 * FRAME);
        assert_eq!(clock.media_time_ns(7 * FRAME), 9 * FRAME);
    }

    proptest! {
        #[test]
        fn media_time_always_increases(pts in proptest::collection::vec(0u64..u64::MAX / 4, 1..200)) {
            let mut clock = MediaClock::new(30.0, 1_000_000_000);
            let mut last = None;
            for p in pts {
                let t = clock.media_time_ns(p);
                if let Some(l) = last {
                    prop_assert!(t > l);
                }
                last = Some(t);
            }
        }
    }
}
