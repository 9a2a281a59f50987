//! When a rendering's encoder makes an IDR on request.
//!
//! A viewer joining or moving into a rendering asks for a keyframe so it starts at once rather
//! than waiting out the GOP. In a crowd, requests arrive many times a second, and every IDR
//! costs each of the rendering's viewers several frames' worth of bits and the encoder an
//! intra frame's work. So requests are merged: at most one forced keyframe per interval, and a
//! request inside the interval waits (never lost) for its end. A joiner waits at most the
//! interval; the others see at most one extra IDR per interval.

use std::time::Duration;

/// Shortest time between two forced keyframes of one rendering.
pub const MIN_FORCED_KEYFRAME_INTERVAL: Duration = Duration::from_millis(250);

/// The forced-keyframe decision of one rendering, on the caller's clock.
#[derive(Clone, Debug, Default)]
pub struct KeyframePacer {
    requested: bool,
    last_forced: Option<Duration>,
}

impl KeyframePacer {
    /// A pacer whose first frame is forced: a new encoder's stream must open with an IDR.
    pub fn starting() -> Self {
        Self {
            requested: true,
            last_forced: None,
        }
    }

    pub fn request(&mut self) {
        self.requested = true;
    }

    /// Whether the frame about to be encoded at `now` must be an IDR. True at most once per
    /// [`MIN_FORCED_KEYFRAME_INTERVAL`]; a request made meanwhile stays pending.
    pub fn take_due(&mut self, now: Duration) -> bool {
        let due = self.requested
            && self
                .last_forced
                .is_none_or(|last| now.saturating_sub(last) >= MIN_FORCED_KEYFRAME_INTERVAL);
        if due {
            self.requested = false;
            self.last_forced = Some(now);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn the_first_frame_is_forced_and_nothing_after_unless_asked() {
        let mut pacer = KeyframePacer::starting();
        assert!(pacer.take_due(ms(0)));
        assert!(!pacer.take_due(ms(33)));
        assert!(!pacer.take_due(ms(1_000)));
        pacer.request();
        assert!(pacer.take_due(ms(1_033)));
    }

    #[test]
    fn a_crowd_of_requests_gets_one_keyframe_per_interval_and_none_is_lost() {
        let mut pacer = KeyframePacer::default();
        let mut forced = Vec::new();
        // A join on every frame for a second (30 fps), then silence.
        for frame in 0..60u64 {
            let now = ms(frame * 33);
            if frame < 30 {
                pacer.request();
            }
            if pacer.take_due(now) {
                forced.push(frame);
            }
        }
        // 0 ms, then the first frames at or past each 250 ms; the last request (frame 29)
        // is served by the frame that ends its wait.
        assert_eq!(forced, vec![0, 8, 16, 24, 32]);
        for pair in forced.windows(2) {
            assert!(ms((pair[1] - pair[0]) * 33) >= MIN_FORCED_KEYFRAME_INTERVAL);
        }
    }
}
