//! Which overlays a rendering drew where, frame by frame: what each viewer's forwarder reads to
//! put the [`crate::OVERLAYS_TRACK_NAME`] message beside the video frame it describes.
//!
//! The engine hands a rendering's publisher a new message only when the layout changes (an
//! overlay appears, moves, expands); the publisher logs it stamped with the track time of the
//! first frame drawn that way, before that frame goes into the track. A forwarder writing a frame
//! of time `t` into a viewer's feed takes the newest entry at or before `t`: a new one goes out
//! with that frame, and at every keyframe the feed opens (a join, a move, a new GOP) the entry in
//! force goes out again, so a viewer who joins or skips ahead has the layout at once.

use std::collections::VecDeque;

use bytes::Bytes;
use tokio::sync::watch;

/// Entries kept at most, whatever the GOP length: a layout gliding out of a face's way changes
/// every frame, and two GOPs of 2 s at 60 fps fit.
const MAX_ENTRIES: usize = 256;

/// One rendering's overlay layouts, oldest first, by track time (µs).
#[derive(Debug, Default)]
pub(crate) struct OverlayLog {
    entries: VecDeque<(u64, Bytes)>,
    /// The track time of the last keyframe: entries older than the layout in force there are
    /// only needed by forwarders still reading that GOP.
    last_keyframe_us: Option<u64>,
}

impl OverlayLog {
    /// The layout drawn from the frame of track time `at_us` on.
    fn push(&mut self, at_us: u64, message: Bytes) {
        self.entries.push_back((at_us, message));
        while self.entries.len() > MAX_ENTRIES {
            self.entries.pop_front();
        }
    }

    /// A keyframe at `at_us`: forgets what only readers two GOPs behind could ask for (they skip
    /// to the newest group anyway).
    fn keyframe(&mut self, at_us: u64) {
        if let Some(previous) = self.last_keyframe_us.replace(at_us) {
            while self.entries.len() > 1 && self.entries[1].0 <= previous {
                self.entries.pop_front();
            }
        }
    }

    /// The layout in force at track time `at_us`: the newest entry at or before it.
    pub(crate) fn at(&self, at_us: u64) -> Option<&(u64, Bytes)> {
        self.entries.iter().rev().find(|(t, _)| *t <= at_us)
    }

    /// Whether the log holds a layout for a frame later than `at_us` (a reader picks it up then).
    pub(crate) fn has_later(&self, at_us: u64) -> bool {
        self.entries.back().is_some_and(|(t, _)| *t > at_us)
    }
}

/// The publisher's side: layouts handed over by the frame path wait here for the first encoded
/// frame drawn with them, then enter the log with that frame's track time.
#[derive(Debug, Default)]
pub(crate) struct OverlayPending {
    /// (presentation time in ns of the first frame drawn this way, message), oldest first.
    waiting: VecDeque<(u64, Bytes)>,
}

/// Layouts waiting for their frame, at most: a frame the encoder drops takes its layout's turn
/// to the next frame, so only a stalled encoder could pile them up.
const MAX_WAITING: usize = 16;

impl OverlayPending {
    pub(crate) fn push(&mut self, pts_ns: u64, message: Bytes) {
        self.waiting.push_back((pts_ns, message));
        while self.waiting.len() > MAX_WAITING {
            self.waiting.pop_front();
        }
    }

    /// The frame of presentation time `pts_ns` goes into the track at `track_us`: the newest
    /// layout drawn at or before it enters `log` (older ones were never seen by anyone), and a
    /// keyframe lets the log forget. Returns the message to go out beside this frame on the
    /// rendering's own track (what a relay's viewers read): a new layout, or at a keyframe the
    /// one in force.
    pub(crate) fn frame_written(
        &mut self,
        pts_ns: u64,
        track_us: u64,
        keyframe: bool,
        log: &watch::Sender<OverlayLog>,
    ) -> Option<Bytes> {
        let mut newest = None;
        while self.waiting.front().is_some_and(|(at, _)| *at <= pts_ns) {
            newest = self.waiting.pop_front().map(|(_, message)| message);
        }
        if newest.is_none() && !keyframe {
            return None; // the frame path: no lock taken, nothing woken
        }
        let mut in_force = None;
        log.send_modify(|log| {
            if keyframe {
                log.keyframe(track_us);
            }
            if let Some(message) = newest {
                log.push(track_us, message);
            }
            in_force = log.at(track_us).map(|(_, message)| message.clone());
        });
        in_force
    }
}

/// One forwarder's reading of a rendering's log: which entry it last passed on.
pub(crate) struct OverlayReader {
    log: watch::Receiver<OverlayLog>,
    /// Track time of the entry last written into the feed.
    sent: Option<u64>,
    /// The log held an entry for a frame after the last one looked at.
    later: bool,
}

impl OverlayReader {
    pub(crate) fn new(log: watch::Receiver<OverlayLog>) -> Self {
        Self {
            log,
            sent: None,
            later: false,
        }
    }

    /// The log read, for a reader of the same rendering started afresh.
    pub(crate) fn into_log(self) -> watch::Receiver<OverlayLog> {
        self.log
    }

    /// The message to write beside the feed's frame of track time `at_us`: a layout not yet
    /// passed on, or at a keyframe the one in force. Looks into the log only when it changed
    /// or holds a later entry, so a steady layout costs each frame one atomic load.
    pub(crate) fn for_frame(&mut self, at_us: u64, keyframe: bool) -> Option<Bytes> {
        if !keyframe && !self.later && !self.log.has_changed().unwrap_or(false) {
            return None;
        }
        let log = self.log.borrow_and_update();
        self.later = log.has_later(at_us);
        let (entry_us, message) = log.at(at_us)?;
        if !keyframe && self.sent == Some(*entry_us) {
            return None;
        }
        self.sent = Some(*entry_us);
        Some(message.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(text: &'static str) -> Bytes {
        Bytes::from_static(text.as_bytes())
    }

    #[test]
    fn a_layout_goes_out_with_its_first_frame_and_again_at_each_keyframe() {
        let log = watch::Sender::new(OverlayLog::default());
        let mut pending = OverlayPending::default();
        let mut reader = OverlayReader::new(log.subscribe());

        // Frame 1 (pts 1 ms) is a keyframe drawn with layout A.
        pending.push(1_000_000, message("A"));
        pending.frame_written(1_000_000, 1_000, true, &log);
        assert_eq!(reader.for_frame(1_000, true), Some(message("A")));
        // Frame 2, same layout: nothing.
        pending.frame_written(2_000_000, 2_000, false, &log);
        assert_eq!(reader.for_frame(2_000, false), None);
        // The frame path drew frame 4 with B before frame 3 was encoded.
        pending.push(4_000_000, message("B"));
        pending.frame_written(3_000_000, 3_000, false, &log);
        assert_eq!(reader.for_frame(3_000, false), None, "B is not on frame 3");
        pending.frame_written(4_000_000, 4_000, false, &log);
        assert_eq!(reader.for_frame(4_000, false), Some(message("B")));
        assert_eq!(reader.for_frame(5_000, false), None);
        // A keyframe repeats the layout in force for anyone joining there.
        pending.frame_written(6_000_000, 6_000, true, &log);
        assert_eq!(reader.for_frame(6_000, true), Some(message("B")));
    }

    #[test]
    fn a_dropped_frame_hands_its_layout_to_the_next_and_a_late_reader_finds_its_own() {
        let log = watch::Sender::new(OverlayLog::default());
        let mut pending = OverlayPending::default();
        pending.push(1_000_000, message("A"));
        pending.frame_written(1_000_000, 1_000, true, &log);
        // Frames 2 and 3 carry C and D; the encoder dropped 2.
        pending.push(2_000_000, message("C"));
        pending.push(3_000_000, message("D"));
        pending.frame_written(3_000_000, 3_000, false, &log);
        // A viewer joining late reads frame 1 first: A, then D at 3.
        let mut late = OverlayReader::new(log.subscribe());
        assert_eq!(late.for_frame(1_000, true), Some(message("A")));
        assert_eq!(
            late.for_frame(2_000, false),
            None,
            "no layout at frame 2 but A"
        );
        assert_eq!(late.for_frame(3_000, false), Some(message("D")));
    }

    #[test]
    fn the_log_stays_bounded_and_keeps_the_layout_in_force() {
        let log = watch::Sender::new(OverlayLog::default());
        let mut pending = OverlayPending::default();
        for frame in 0..1_000u64 {
            let keyframe = frame % 60 == 0;
            if frame % 2 == 0 {
                pending.push(frame * 1_000_000, Bytes::from(frame.to_string()));
            }
            pending.frame_written(frame * 1_000_000, frame * 1_000, keyframe, &log);
        }
        let log = log.borrow();
        assert!(log.entries.len() <= 2 * 60, "{} entries", log.entries.len());
        // The last keyframe was frame 960; the one before, 900: still answerable.
        assert_eq!(log.at(900_000).map(|(t, _)| *t), Some(900_000));
        assert_eq!(log.at(999_000).map(|(t, _)| *t), Some(998_000));
    }
}
