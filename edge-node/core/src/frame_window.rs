//! When the frame path is busy and when it is idle, for work that must fit between frames.
//!
//! The frame path says how many encodes it started for each frame; every encoder says when it
//! has output that frame. A frame is settled once all of them have: until the next frame
//! arrives the cores are free. Background work (inference) waits for that instead of running
//! beside this frame's encodes, and can tell how long the idle window is from the source's
//! frame interval.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// Gaps between frames longer than this are an upstream stall, not the frame rate.
const LONGEST_INTERVAL: Duration = Duration::from_millis(200);

/// Weight of the newest inter-frame gap in the interval estimate.
const INTERVAL_WEIGHT: f64 = 0.1;

/// A settled frame: when it arrived and how often frames arrive.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Idle {
    /// The frame's arrival, in microseconds since the Unix epoch (`FrameMeta::received_unix_us`).
    pub arrived_unix_us: u64,
    /// The source's frame interval, estimated from arrivals; `None` before two frames.
    pub interval: Option<Duration>,
}

impl Idle {
    /// How long the cores stay free at `now_unix_us`: until the next frame is due.
    pub fn left(&self, now_unix_us: u64) -> Option<Duration> {
        let interval = self.interval?;
        let since = Duration::from_micros(now_unix_us.saturating_sub(self.arrived_unix_us));
        Some(interval.saturating_sub(since))
    }
}

/// What waiting for a frame to settle ended with.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Settled {
    /// Every encode of the frame is out: the frame path is idle.
    Idle(Idle),
    /// A newer frame is already being rendered.
    Superseded,
    /// The frame had not settled within the time given (an encoder that dropped it, a stall).
    TimedOut,
}

#[derive(Debug, Default)]
struct State {
    seq: u64,
    arrived_unix_us: u64,
    /// Encodes started for `seq`; `None` until the frame path has said.
    expected: Option<usize>,
    /// Encodes of `seq` already out (an encoder can finish before the frame path says).
    done: usize,
    interval_us: Option<f64>,
}

impl State {
    fn settled(&self, seq: u64) -> Option<Settled> {
        if self.seq > seq {
            return Some(Settled::Superseded);
        }
        let all_out = self.seq == seq && self.expected.is_some_and(|n| self.done >= n);
        all_out.then(|| {
            Settled::Idle(Idle {
                arrived_unix_us: self.arrived_unix_us,
                interval: self
                    .interval_us
                    .map(|us| Duration::from_micros(us.round() as u64)),
            })
        })
    }

    fn rendered(&mut self, seq: u64, arrived_unix_us: u64, encodes: usize) {
        // The frame path renders in order: a number going backwards is a new count (a
        // restarted source), and waiting for it to pass the old one would wait for ever.
        if seq != self.seq {
            self.done = 0;
        }
        if self.arrived_unix_us > 0 && arrived_unix_us > self.arrived_unix_us {
            let gap = (arrived_unix_us - self.arrived_unix_us) as f64;
            if gap <= LONGEST_INTERVAL.as_micros() as f64 {
                self.interval_us = Some(match self.interval_us {
                    Some(us) => us + INTERVAL_WEIGHT * (gap - us),
                    None => gap,
                });
            }
        }
        self.seq = seq;
        self.arrived_unix_us = arrived_unix_us;
        self.expected = Some(encodes);
    }

    fn encoded(&mut self, seq: u64) {
        if seq > self.seq {
            // Out before the frame path finished handing the frame to every encoder.
            self.seq = seq;
            self.expected = None;
            self.done = 0;
        }
        if seq == self.seq {
            self.done += 1;
        }
    }
}

/// Shared between the frame path, its encoders and whoever waits for the idle window.
#[derive(Debug, Default)]
pub struct FrameWindow {
    state: Mutex<State>,
    changed: Condvar,
}

impl FrameWindow {
    pub fn new() -> Self {
        Self::default()
    }

    /// The frame path has handed frame `seq` (arrived at `arrived_unix_us`) to `encodes`
    /// encoders.
    pub fn rendered(&self, seq: u64, arrived_unix_us: u64, encodes: usize) {
        self.lock().rendered(seq, arrived_unix_us, encodes);
        self.changed.notify_all();
    }

    /// An encoder has output frame `seq`.
    pub fn encoded(&self, seq: u64) {
        self.lock().encoded(seq);
        self.changed.notify_all();
    }

    /// Waits up to `limit` for frame `seq` to settle.
    pub fn wait_settled(&self, seq: u64, limit: Duration) -> Settled {
        let state = self.lock();
        let (state, _) = self
            .changed
            .wait_timeout_while(state, limit, |s| s.settled(seq).is_none())
            .unwrap_or_else(|p| p.into_inner());
        state.settled(seq).unwrap_or(Settled::TimedOut)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every critical section is a few field updates: a panic cannot leave them half done.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const FRAME_US: u64 = 33_333;

    fn idle(window: &FrameWindow, seq: u64) -> Idle {
        match window.wait_settled(seq, Duration::ZERO) {
            Settled::Idle(idle) => idle,
            other => panic!("frame {seq}: {other:?}"),
        }
    }

    #[test]
    fn a_frame_settles_when_its_last_encode_is_out() {
        let w = FrameWindow::new();
        w.rendered(1, FRAME_US, 2);
        w.encoded(1);
        assert_eq!(w.wait_settled(1, Duration::ZERO), Settled::TimedOut);
        w.encoded(1);
        assert_eq!(idle(&w, 1).arrived_unix_us, FRAME_US);
    }

    #[test]
    fn encodes_out_before_the_frame_path_says_how_many_still_count() {
        let w = FrameWindow::new();
        w.encoded(5);
        w.encoded(5);
        assert_eq!(w.wait_settled(5, Duration::ZERO), Settled::TimedOut);
        w.rendered(5, FRAME_US, 2);
        idle(&w, 5);
    }

    #[test]
    fn a_newer_frame_supersedes_and_old_encodes_are_ignored() {
        let w = FrameWindow::new();
        w.rendered(1, FRAME_US, 1);
        w.rendered(2, 2 * FRAME_US, 1);
        assert_eq!(w.wait_settled(1, Duration::ZERO), Settled::Superseded);
        w.encoded(1);
        assert_eq!(w.wait_settled(2, Duration::ZERO), Settled::TimedOut);
        w.encoded(2);
        idle(&w, 2);
    }

    #[test]
    fn numbers_that_start_again_are_followed() {
        let w = FrameWindow::new();
        w.rendered(500, FRAME_US, 1);
        w.rendered(3, 2 * FRAME_US, 1);
        assert_eq!(w.wait_settled(3, Duration::ZERO), Settled::TimedOut);
        w.encoded(3);
        idle(&w, 3);
    }

    #[test]
    fn a_frame_with_no_encode_is_settled_at_once() {
        let w = FrameWindow::new();
        w.rendered(3, FRAME_US, 0);
        idle(&w, 3);
    }

    #[test]
    fn the_interval_follows_arrivals_and_ignores_stalls() {
        let w = FrameWindow::new();
        w.rendered(1, 1_000_000, 0);
        assert_eq!(idle(&w, 1).interval, None);
        for seq in 2..=30 {
            w.rendered(seq, 1_000_000 + (seq - 1) * FRAME_US, 0);
        }
        // A five-second stall, then frames again.
        w.rendered(31, 1_000_000 + 29 * FRAME_US + 5_000_000, 0);
        let interval = idle(&w, 31).interval.unwrap();
        assert!(
            interval.abs_diff(Duration::from_micros(FRAME_US)) < Duration::from_micros(50),
            "{interval:?}"
        );
    }

    #[test]
    fn the_idle_window_is_what_is_left_of_the_interval() {
        let idle = Idle {
            arrived_unix_us: 1_000_000,
            interval: Some(Duration::from_micros(FRAME_US)),
        };
        assert_eq!(
            idle.left(1_000_000 + 8_333),
            Some(Duration::from_micros(25_000))
        );
        assert_eq!(idle.left(1_000_000 + 50_000), Some(Duration::ZERO));
        let unknown = Idle {
            interval: None,
            ..idle
        };
        assert_eq!(unknown.left(1_000_000), None);
    }

    #[test]
    fn a_waiter_wakes_when_the_last_encoder_reports() {
        let w = Arc::new(FrameWindow::new());
        w.rendered(7, FRAME_US, 1);
        let encoder = {
            let w = w.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                w.encoded(7);
            })
        };
        let got = w.wait_settled(7, Duration::from_secs(10));
        encoder.join().unwrap();
        assert!(matches!(got, Settled::Idle(_)), "{got:?}");
    }
}
