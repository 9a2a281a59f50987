//! Taps: a viewer taps its video at (x, y) and the overlay under the finger answers in the next
//! rendered frame (a product card expands). This module hit-tests a tap against what was drawn
//! for that viewer and remembers, per viewer, which overlay is expanded and until when.
//!
//! An expanded overlay changes what the viewer sees, so the caller makes it part of the
//! viewer's render key; the move to that key's group is immediate when the group is new (its
//! first frame is an IDR).

use std::collections::HashMap;
use std::fmt::Debug;
use std::time::Duration;

use crate::geometry::Rect;
use crate::groups::ViewerId;

/// How long a tapped overlay stays expanded unless configured otherwise.
pub const DEFAULT_EXPAND_FOR: Duration = Duration::from_secs(5);

/// The topmost of `placed` (in drawing order, last on top) under the output pixel `(x, y)`.
pub fn hit_test<O>(placed: &[(O, Rect)], x: i32, y: i32) -> Option<&O> {
    placed
        .iter()
        .rev()
        .find(|(_, r)| r.contains(x, y))
        .map(|(o, _)| o)
}

/// What a tap did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TapOutcome<O> {
    /// `overlay` is expanded for this viewer until `expanded_until`.
    Expanded {
        overlay: O,
        expanded_until: Duration,
    },
    /// The tap hit no overlay; whatever was expanded for this viewer collapsed.
    Missed { collapsed: Option<O> },
}

#[derive(Clone, Debug)]
struct Expansion<O> {
    overlay: O,
    until: Duration,
}

/// Per-viewer tap state: which overlay is expanded, and until when. Generic over the overlay
/// identifier `O` (the campaign's overlay name or index).
#[derive(Clone, Debug)]
pub struct TapTracker<O> {
    expand_for: Duration,
    expanded: HashMap<ViewerId, Expansion<O>>,
}

impl<O: Clone + Eq + Debug> Default for TapTracker<O> {
    fn default() -> Self {
        Self::new(DEFAULT_EXPAND_FOR)
    }
}

impl<O: Clone + Eq + Debug> TapTracker<O> {
    /// A tracker whose taps expand an overlay for `expand_for`.
    pub fn new(expand_for: Duration) -> Self {
        Self {
            expand_for,
            expanded: HashMap::new(),
        }
    }

    /// A tap by `viewer` at output pixel `(x, y)` at `now`, against the overlays `placed` in
    /// that viewer's last rendered frame (drawing order, last on top). Tapping an overlay
    /// expands it (tapping it again extends the time); tapping elsewhere collapses it.
    pub fn tap(
        &mut self,
        viewer: ViewerId,
        x: i32,
        y: i32,
        placed: &[(O, Rect)],
        now: Duration,
    ) -> TapOutcome<O> {
        match hit_test(placed, x, y) {
            Some(overlay) => {
                let until = now.saturating_add(self.expand_for);
                self.expanded.insert(
                    viewer,
                    Expansion {
                        overlay: overlay.clone(),
                        until,
                    },
                );
                TapOutcome::Expanded {
                    overlay: overlay.clone(),
                    expanded_until: until,
                }
            }
            None => TapOutcome::Missed {
                collapsed: self
                    .expanded
                    .remove(&viewer)
                    .filter(|e| e.until > now)
                    .map(|e| e.overlay),
            },
        }
    }

    /// The overlay expanded for `viewer` at `now`, if any.
    pub fn expanded(&self, viewer: ViewerId, now: Duration) -> Option<&O> {
        self.expanded
            .get(&viewer)
            .filter(|e| e.until > now)
            .map(|e| &e.overlay)
    }

    /// Forgets expansions that ended by `now` and returns whose, so the caller can move those
    /// viewers back to their unexpanded render key.
    pub fn expire(&mut self, now: Duration) -> Vec<(ViewerId, O)> {
        let ended: Vec<ViewerId> = self
            .expanded
            .iter()
            .filter(|(_, e)| e.until <= now)
            .map(|(v, _)| *v)
            .collect();
        let mut out: Vec<(ViewerId, O)> = ended
            .into_iter()
            .filter_map(|v| self.expanded.remove(&v).map(|e| (v, e.overlay)))
            .collect();
        out.sort_by_key(|(v, _)| *v);
        out
    }

    /// Drops a viewer's state when it leaves.
    pub fn forget(&mut self, viewer: ViewerId) {
        self.expanded.remove(&viewer);
    }

    /// Viewers with tap state (expired or not, until the next `expire`).
    pub fn len(&self) -> usize {
        self.expanded.len()
    }

    /// Whether no viewer has tap state.
    pub fn is_empty(&self) -> bool {
        self.expanded.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn placed() -> Vec<(&'static str, Rect)> {
        vec![
            ("mall-ad", Rect::new(0, 0, 400, 200)),
            ("product-card", Rect::new(300, 100, 300, 150)),
        ]
    }

    #[test]
    fn the_topmost_overlay_wins() {
        let p = placed();
        assert_eq!(hit_test(&p, 350, 150), Some(&"product-card"));
        assert_eq!(hit_test(&p, 10, 10), Some(&"mall-ad"));
        assert_eq!(hit_test(&p, 700, 10), None);
        assert_eq!(hit_test(&p, -1, 10), None);
    }

    #[test]
    fn a_tap_expands_until_a_deadline_then_expires() {
        let mut t = TapTracker::new(ms(3_000));
        let viewer = ViewerId(7);
        let out = t.tap(viewer, 350, 150, &placed(), ms(1_000));
        assert_eq!(
            out,
            TapOutcome::Expanded {
                overlay: "product-card",
                expanded_until: ms(4_000)
            }
        );
        assert_eq!(t.expanded(viewer, ms(3_999)), Some(&"product-card"));
        assert_eq!(t.expanded(viewer, ms(4_000)), None);
        assert_eq!(t.expanded(ViewerId(8), ms(1_000)), None);
        assert!(t.expire(ms(3_999)).is_empty());
        assert_eq!(t.expire(ms(4_000)), vec![(viewer, "product-card")]);
        assert!(t.is_empty());
    }

    #[test]
    fn tapping_again_extends_and_tapping_elsewhere_collapses() {
        let mut t = TapTracker::new(ms(3_000));
        let v = ViewerId(1);
        t.tap(v, 350, 150, &placed(), ms(0));
        t.tap(v, 350, 150, &placed(), ms(2_000));
        assert_eq!(t.expanded(v, ms(4_500)), Some(&"product-card"));
        assert_eq!(
            t.tap(v, 900, 700, &placed(), ms(4_600)),
            TapOutcome::Missed {
                collapsed: Some("product-card")
            }
        );
        assert_eq!(t.expanded(v, ms(4_600)), None);
        t.tap(v, 10, 10, &placed(), ms(5_000));
        t.forget(v);
        assert_eq!(t.expanded(v, ms(5_000)), None);
    }

    proptest! {
        #[test]
        fn a_hit_is_the_last_drawn_rectangle_under_the_tap(
            rects in proptest::collection::vec((-50..700i32, -50..400i32, 0..300u32, 0..300u32), 0..8),
            x in -100..800i32,
            y in -100..500i32,
        ) {
            let placed: Vec<(usize, Rect)> =
                rects.iter().enumerate().map(|(i, &(rx, ry, w, h))| (i, Rect::new(rx, ry, w, h))).collect();
            match hit_test(&placed, x, y) {
                Some(&i) => {
                    prop_assert!(placed[i].1.contains(x, y));
                    prop_assert!(placed[i + 1..].iter().all(|(_, r)| !r.contains(x, y)));
                }
                None => prop_assert!(placed.iter().all(|(_, r)| !r.contains(x, y))),
            }
        }

        #[test]
        fn state_never_outlives_its_deadline(
            taps in proptest::collection::vec((0..4u64, 0..800i32, 0..400i32, 0..2_000u64), 1..40),
        ) {
            let mut t = TapTracker::new(ms(1_000));
            let mut now = Duration::ZERO;
            for (viewer, x, y, wait) in taps {
                now += ms(wait);
                t.expire(now);
                if let TapOutcome::Expanded { expanded_until, .. } = t.tap(ViewerId(viewer), x, y, &placed(), now) {
                    prop_assert_eq!(expanded_until, now + ms(1_000));
                }
                for v in 0..4 {
                    if t.expanded(ViewerId(v), now).is_some() {
                        prop_assert!(t.expanded(ViewerId(v), now + ms(1_000)).is_none());
                    }
                }
            }
            t.expire(now + ms(1_000));
            prop_assert!(t.is_empty());
        }
    }
}
