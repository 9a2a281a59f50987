//! Overlay placement that avoids faces or text, smoothly: among the candidate positions (anchors
//! plus margins, see [`crate::placement`]) pick the one covering the least of the detected
//! obstacles, switch to a new best only when it is clearly better and has stayed best for a
//! while, and glide towards it instead of jumping.
//!
//! Detections arrive late and irregularly (inference runs off the frame path), so obstacles
//! carry the timestamp of the frame they were seen in and expire when no longer confirmed.

use std::time::Duration;

use crate::geometry::Rect;
use crate::placement::{resolve, Anchor};

/// Tuning of [`PlacementSmoother`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SmoothingConfig {
    /// A new best must cover less of the obstacles than the current target by at least this
    /// fraction of the overlay's area (unless it is free and the target is not).
    pub switch_margin: f64,
    /// How long a new best must stay best before the target switches to it.
    pub min_dwell: Duration,
    /// Time constant of the exponential easing towards the target.
    pub ease: Duration,
    /// Speed limit of the overlay, in pixels per second.
    pub max_speed_px_per_s: f64,
    /// Longest frame interval the motion accounts for, so a stalled frame path does not make
    /// the overlay jump when it resumes.
    pub max_frame_interval: Duration,
    /// An obstacle not seen again for this long is forgotten.
    pub obstacle_ttl: Duration,
    /// A detection overlapping a known obstacle by at least this IoU refreshes it instead of
    /// adding a new one.
    pub match_iou: f64,
}

impl Default for SmoothingConfig {
    fn default() -> Self {
        Self {
            switch_margin: 0.10,
            min_dwell: Duration::from_millis(400),
            ease: Duration::from_millis(200),
            max_speed_px_per_s: 1_200.0,
            max_frame_interval: Duration::from_millis(100),
            obstacle_ttl: Duration::from_millis(1_000),
            match_iou: 0.3,
        }
    }
}

impl SmoothingConfig {
    /// Checks every setting is in its meaningful range (a negative speed would run away).
    pub fn validate(&self) -> Result<(), SmoothingError> {
        if !(self.switch_margin.is_finite() && self.switch_margin >= 0.0) {
            return Err(SmoothingError::BadConfig("switch_margin"));
        }
        if !(self.max_speed_px_per_s.is_finite() && self.max_speed_px_per_s > 0.0) {
            return Err(SmoothingError::BadConfig("max_speed_px_per_s"));
        }
        if !(self.match_iou > 0.0 && self.match_iou <= 1.0) {
            return Err(SmoothingError::BadConfig("match_iou"));
        }
        Ok(())
    }

    /// The largest distance, per axis, the drawn position can move in one [`PlacementSmoother::step`]:
    /// the speed limit over the longest accounted frame interval, plus 2 px of even rounding.
    pub fn max_step_px(&self) -> f64 {
        self.max_speed_px_per_s * self.max_frame_interval.as_secs_f64() + 2.0
    }
}

/// A candidate position: an anchor and its margins, resolved against the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Which corner, edge centre or centre of the frame.
    pub anchor: Anchor,
    /// Distance in pixels from the anchored edges.
    pub margin: (i32, i32),
}

#[derive(Clone, Copy, Debug)]
struct Obstacle {
    rect: Rect,
    seen_at: Duration,
}

/// The smoothed position of one overlay on one output.
#[derive(Clone, Debug)]
pub struct PlacementSmoother {
    config: SmoothingConfig,
    overlay: (u32, u32),
    /// Top-left corners of the candidates, in preference order.
    spots: Vec<(i32, i32)>,
    candidates: Vec<Candidate>,
    obstacles: Vec<Obstacle>,
    target: usize,
    /// A candidate that is clearly better than the target, and since when.
    challenger: Option<(usize, Duration)>,
    position: (f64, f64),
    last_step: Option<Duration>,
}

/// Bad smoother input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmoothingError {
    #[error("no candidate positions given")]
    NoCandidates,
    #[error("overlay or frame size is zero")]
    EmptySize,
    #[error("smoothing setting `{0}` is out of range")]
    BadConfig(&'static str),
}

impl PlacementSmoother {
    /// A smoother for an `overlay`-sized overlay on a `frame`-sized output. Candidates are in
    /// preference order: with nothing to avoid, the overlay sits at the first; ties go to the
    /// earlier one.
    pub fn new(
        config: SmoothingConfig,
        overlay: (u32, u32),
        frame: (u32, u32),
        candidates: &[Candidate],
    ) -> Result<Self, SmoothingError> {
        if candidates.is_empty() {
            return Err(SmoothingError::NoCandidates);
        }
        if overlay.0 == 0 || overlay.1 == 0 || frame.0 == 0 || frame.1 == 0 {
            return Err(SmoothingError::EmptySize);
        }
        config.validate()?;
        let spots: Vec<_> = candidates
            .iter()
            .map(|c| resolve(c.anchor, c.margin, overlay, frame))
            .collect();
        let start = spots[0];
        Ok(Self {
            config,
            overlay,
            spots,
            candidates: candidates.to_vec(),
            obstacles: Vec::new(),
            target: 0,
            challenger: None,
            position: (f64::from(start.0), f64::from(start.1)),
            last_step: None,
        })
    }

    /// The nine anchors with the same margin, `first` first: the usual candidate set for an
    /// overlay configured at `first` with `avoid-faces`.
    pub fn all_anchors(first: Anchor, margin: (i32, i32)) -> Vec<Candidate> {
        use Anchor::*;
        let mut out = vec![Candidate {
            anchor: first,
            margin,
        }];
        for anchor in [
            TopLeft,
            Top,
            TopRight,
            Left,
            Center,
            Right,
            BottomLeft,
            Bottom,
            BottomRight,
        ] {
            if anchor != first {
                out.push(Candidate { anchor, margin });
            }
        }
        out
    }

    /// Feeds the boxes (faces or text, in output pixels) detected in the frame at `seen_at`. A
    /// box matching a known obstacle refreshes it; others are added. Obstacles are never
    /// removed here, only by expiry, so one missed detection does not make the overlay move.
    pub fn observe(&mut self, boxes: &[Rect], seen_at: Duration) {
        // Each known obstacle is refreshed by at most one box of a detection, so two nearby
        // faces stay two obstacles.
        let mut claimed = vec![false; self.obstacles.len()];
        let mut added = Vec::new();
        for b in boxes.iter().filter(|b| b.area() > 0) {
            let best = self
                .obstacles
                .iter()
                .enumerate()
                .filter(|(i, _)| !claimed[*i])
                .map(|(i, o)| (i, o.rect.iou(b)))
                .filter(|(_, iou)| *iou >= self.config.match_iou)
                .max_by(|a, b| a.1.total_cmp(&b.1));
            match best {
                Some((i, _)) => {
                    claimed[i] = true;
                    let o = &mut self.obstacles[i];
                    // A result older than what we know tells us nothing new.
                    if o.seen_at <= seen_at {
                        o.rect = *b;
                        o.seen_at = seen_at;
                    }
                }
                None => added.push(Obstacle { rect: *b, seen_at }),
            }
        }
        self.obstacles.extend(added);
    }

    /// Advances to the frame rendered at `now` and returns where to draw the overlay (even
    /// pixel coordinates).
    pub fn step(&mut self, now: Duration) -> (i32, i32) {
        let ttl = self.config.obstacle_ttl;
        self.obstacles
            .retain(|o| now.saturating_sub(o.seen_at) < ttl);
        self.choose_target(now);
        let dt = match self.last_step {
            Some(prev) => now.saturating_sub(prev).min(self.config.max_frame_interval),
            None => Duration::ZERO,
        };
        self.last_step = Some(now);
        self.ease_towards_target(dt);
        self.drawn()
    }

    /// The candidate the overlay is heading to.
    pub fn target(&self) -> Candidate {
        self.candidates[self.target]
    }

    /// Where the overlay is drawn now (even pixel coordinates).
    pub fn drawn(&self) -> (i32, i32) {
        (even(self.position.0), even(self.position.1))
    }

    /// The overlay's rectangle as drawn now.
    pub fn drawn_rect(&self) -> Rect {
        let (x, y) = self.drawn();
        Rect::new(x, y, self.overlay.0, self.overlay.1)
    }

    /// Obstacles currently remembered.
    pub fn obstacles(&self) -> Vec<Rect> {
        self.obstacles.iter().map(|o| o.rect).collect()
    }

    /// Obstacle pixels the overlay would cover at candidate `i`.
    fn covered(&self, i: usize) -> u64 {
        let (x, y) = self.spots[i];
        self.cover_at(x, y)
    }

    fn choose_target(&mut self, now: Duration) {
        let covered: Vec<u64> = (0..self.spots.len()).map(|i| self.covered(i)).collect();
        // Lowest cover wins; among equals, one reached without gliding over an obstacle (the
        // overlay moves in a straight line), then the first, i.e. the preferred one.
        let best = (0..covered.len())
            .min_by_key(|&i| (covered[i], self.crossed_on_the_way(i)))
            .expect("the constructor refuses an empty candidate list");
        let margin = self.config.switch_margin
            * (u64::from(self.overlay.0) * u64::from(self.overlay.1)) as f64;
        let (now_cover, best_cover) = (covered[self.target], covered[best]);
        let clearly_better = best != self.target
            && (best_cover == 0 && now_cover > 0
                || (now_cover as f64 - best_cover as f64) > margin);
        if !clearly_better {
            self.challenger = None;
            return;
        }

        match self.challenger {
            Some((c, since)) if c == best => {
                if now.saturating_sub(since) >= self.config.min_dwell {
                    self.target = best;
                    self.challenger = None;
                }
            }
            _ => self.challenger = Some((best, now)),
        }
    }

    fn ease_towards_target(&mut self, dt: Duration) {
        let (tx, ty) = self.spots[self.target];
        let (tx, ty) = (f64::from(tx), f64::from(ty));
        let (dx, dy) = (tx - self.position.0, ty - self.position.1);
        if dx.abs() < 1.0 && dy.abs() < 1.0 {
            // Exponential easing never arrives on its own; snap the last pixel.
            self.position = (tx, ty);
            return;
        }
        let tau = self.config.ease.as_secs_f64();
        let gain = if tau > 0.0 {
            1.0 - (-dt.as_secs_f64() / tau).exp()
        } else {
            1.0
        };
        let limit = self.config.max_speed_px_per_s * dt.as_secs_f64();
        let (mut mx, mut my) = (dx * gain, dy * gain);
        // Scale both axes together so the path stays straight under the speed limit.
        let largest = mx.abs().max(my.abs());
        if largest > limit && largest > 0.0 {
            mx *= limit / largest;
            my *= limit / largest;
        }
        self.position.0 += mx;
        self.position.1 += my;
    }

    /// Obstacle pixels the overlay would pass over on its straight way from where it is drawn
    /// to candidate `i`, beyond what it covers where it is (going deeper into an obstacle it
    /// already touches counts), sampled along the way.
    fn crossed_on_the_way(&self, i: usize) -> u64 {
        const SAMPLES: u32 = 16;
        let here = self.drawn_rect();
        let (tx, ty) = self.spots[i];
        let (x0, y0) = self.position;
        (1..SAMPLES)
            .map(|k| {
                let f = f64::from(k) / f64::from(SAMPLES);
                let x = even(x0 + (f64::from(tx) - x0) * f);
                let y = even(y0 + (f64::from(ty) - y0) * f);
                let r = Rect::new(x, y, self.overlay.0, self.overlay.1);
                self.obstacles
                    .iter()
                    .map(|o| {
                        r.intersection_area(&o.rect)
                            .saturating_sub(here.intersection_area(&o.rect))
                    })
                    .sum::<u64>()
            })
            .max()
            .unwrap_or(0)
    }

    /// Obstacle pixels the overlay would cover drawn at (`x`, `y`).
    fn cover_at(&self, x: i32, y: i32) -> u64 {
        let r = Rect::new(x, y, self.overlay.0, self.overlay.1);
        self.obstacles
            .iter()
            .map(|o| r.intersection_area(&o.rect))
            .sum()
    }
}

/// `v` rounded, then down to even, so the overlay stays on the I420 chroma grid.
fn even(v: f64) -> i32 {
    (v.round() as i32) & !1
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const FRAME: (u32, u32) = (1280, 720);
    const OVERLAY: (u32, u32) = (320, 120);
    const FRAME_INTERVAL: Duration = Duration::from_micros(33_333);

    fn smoother() -> PlacementSmoother {
        PlacementSmoother::new(
            SmoothingConfig::default(),
            OVERLAY,
            FRAME,
            &PlacementSmoother::all_anchors(Anchor::BottomRight, (24, 24)),
        )
        .unwrap()
    }

    /// Steps `frames` frames from `start`, feeding `boxes` each frame; returns the positions.
    fn run(
        s: &mut PlacementSmoother,
        start: Duration,
        frames: u32,
        boxes: &[Rect],
    ) -> Vec<(i32, i32)> {
        (0..frames)
            .map(|i| {
                let now = start + FRAME_INTERVAL * i;
                s.observe(boxes, now);
                s.step(now)
            })
            .collect()
    }

    #[test]
    fn a_free_spot_reached_without_passing_over_an_obstacle_is_preferred() {
        let mut s = smoother();
        // A face on the start; a badge mid-frame, in the way to the top-left corner (the
        // first alternative), not to the top edge.
        let face = Rect::new(900, 500, 200, 200);
        let badge = Rect::new(560, 330, 60, 60);
        let positions = run(&mut s, Duration::ZERO, 90, &[face, badge]);
        assert_ne!(s.target().anchor, Anchor::BottomRight, "it left the face");
        for (x, y) in positions {
            let drawn = Rect::new(x, y, OVERLAY.0, OVERLAY.1);
            assert!(
                !drawn.intersects(&badge),
                "passed over the badge at {x},{y}"
            );
        }
    }

    #[test]
    fn stays_at_the_preferred_anchor_with_nothing_to_avoid() {
        let mut s = smoother();
        let positions = run(&mut s, Duration::ZERO, 30, &[]);
        assert!(positions.iter().all(|p| *p == (936, 576)), "{positions:?}");
    }

    #[test]
    fn moves_off_a_face_smoothly_after_the_dwell() {
        let mut s = smoother();
        let face = Rect::new(900, 500, 200, 200);
        let positions = run(&mut s, Duration::ZERO, 60, &[face]);
        // Still at the start until the dwell has passed (400 ms = 12 frames).
        assert!(
            positions[..12].iter().all(|p| *p == (936, 576)),
            "{positions:?}"
        );
        assert_ne!(s.target().anchor, Anchor::BottomRight);
        let last = s.drawn_rect();
        assert!(!last.intersects(&face), "{last:?} still covers {face:?}");
        for w in positions.windows(2) {
            let (a, b) = (w[0], w[1]);
            assert!(((a.0 - b.0).abs() as f64) <= s.config.max_step_px());
            assert!(((a.1 - b.1).abs() as f64) <= s.config.max_step_px());
        }
    }

    #[test]
    fn obstacles_expire_and_the_overlay_stays_where_it_is_free() {
        let mut s = smoother();
        let face = Rect::new(900, 500, 200, 200);
        run(&mut s, Duration::ZERO, 60, &[face]);
        let moved_to = s.target();
        // The face vanishes; after the TTL it is forgotten, but the overlay does not move back:
        // its spot is not covering anything, so there is nothing clearly better.
        run(&mut s, Duration::from_secs(2), 60, &[]);
        assert!(s.obstacles().is_empty());
        assert_eq!(s.target(), moved_to);
    }

    #[test]
    fn two_overlapping_faces_stay_two_obstacles() {
        let mut s = smoother();
        let (a, b) = (Rect::new(100, 100, 100, 100), Rect::new(140, 100, 100, 100));
        s.observe(&[a, b], Duration::ZERO);
        s.observe(&[a, b], FRAME_INTERVAL);
        assert_eq!(s.obstacles(), vec![a, b]);
    }

    #[test]
    fn an_old_detection_does_not_override_a_newer_one() {
        let mut s = smoother();
        s.observe(&[Rect::new(0, 0, 100, 100)], Duration::from_millis(500));
        s.observe(&[Rect::new(10, 0, 100, 100)], Duration::from_millis(100));
        assert_eq!(s.obstacles(), vec![Rect::new(0, 0, 100, 100)]);
    }

    #[test]
    fn bad_input_is_an_error() {
        let c = SmoothingConfig::default();
        assert_eq!(
            PlacementSmoother::new(c, OVERLAY, FRAME, &[]).unwrap_err(),
            SmoothingError::NoCandidates
        );
        let one = [Candidate {
            anchor: Anchor::Top,
            margin: (0, 0),
        }];
        assert_eq!(
            PlacementSmoother::new(c, (0, 10), FRAME, &one).unwrap_err(),
            SmoothingError::EmptySize
        );
        let backwards = SmoothingConfig {
            max_speed_px_per_s: -5.0,
            ..c
        };
        assert_eq!(
            PlacementSmoother::new(backwards, OVERLAY, FRAME, &one).unwrap_err(),
            SmoothingError::BadConfig("max_speed_px_per_s")
        );
    }

    fn rect_in_frame() -> impl Strategy<Value = Rect> {
        (0..1200i32, 0..640i32, 20..500u32, 20..400u32)
            .prop_map(|(x, y, w, h)| Rect::new(x, y, w, h))
    }

    proptest! {
        #[test]
        fn the_position_moves_boundedly_per_frame(
            boxes in proptest::collection::vec(proptest::collection::vec(rect_in_frame(), 0..3), 1..120),
            gaps_ms in proptest::collection::vec(1..400u64, 1..120),
        ) {
            let mut s = smoother();
            let mut now = Duration::ZERO;
            let mut prev = s.step(now);
            for (i, frame_boxes) in boxes.iter().enumerate() {
                now += Duration::from_millis(gaps_ms[i % gaps_ms.len()]);
                s.observe(frame_boxes, now);
                let p = s.step(now);
                prop_assert!(((p.0 - prev.0).abs() as f64) <= s.config.max_step_px());
                prop_assert!(((p.1 - prev.1).abs() as f64) <= s.config.max_step_px());
                prop_assert_eq!((p.0 % 2, p.1 % 2), (0, 0));
                prev = p;
            }
        }

        #[test]
        fn a_static_obstacle_is_left_when_a_free_spot_exists(obstacle in rect_in_frame()) {
            let mut s = smoother();
            let free_exists = (0..s.spots.len()).any(|i| {
                let (x, y) = s.spots[i];
                !Rect::new(x, y, OVERLAY.0, OVERLAY.1).intersects(&obstacle)
            });
            run(&mut s, Duration::ZERO, 90, &[obstacle]);
            if free_exists {
                prop_assert!(!s.drawn_rect().intersects(&obstacle), "{:?} covers {:?}", s.drawn_rect(), obstacle);
            }
        }

        #[test]
        fn near_equal_alternatives_do_not_flap(extra in 0..30u32, period in 1..40u32) {
            // Two faces, one under each spot, taking turns being a few rows taller: the best
            // spot flips every `period` frames, by less than the switch margin.
            let mut s = two_spot_smoother();
            let switches = alternate(&mut s, period, (100, 100 + extra), (100 + extra, 100));
            prop_assert_eq!(switches, 0, "the overlay flapped between near-equal spots");
        }

        #[test]
        fn clearly_better_alternatives_shorter_than_the_dwell_do_not_flap(period in 1..12u32) {
            // Now the difference is large, but each spot is best for less than the dwell time.
            let mut s = two_spot_smoother();
            let switches = alternate(&mut s, period, (120, 60), (60, 120));
            prop_assert_eq!(switches, 0, "the overlay followed flickering detections");
        }
    }

    fn two_spot_smoother() -> PlacementSmoother {
        let spot = |anchor| Candidate {
            anchor,
            margin: (0, 0),
        };
        PlacementSmoother::new(
            SmoothingConfig::default(),
            OVERLAY,
            FRAME,
            &[spot(Anchor::TopLeft), spot(Anchor::TopRight)],
        )
        .unwrap()
    }

    /// Feeds a face under each top corner for 10 s; their heights swap every `period` frames
    /// between `(left, right)` heights `a` and `b`. Returns how often the target changed.
    fn alternate(s: &mut PlacementSmoother, period: u32, a: (u32, u32), b: (u32, u32)) -> u32 {
        let mut switches = 0;
        let mut target = s.target();
        for i in 0..300u32 {
            let now = FRAME_INTERVAL * i;
            let (hl, hr) = if (i / period).is_multiple_of(2) { a } else { b };
            s.observe(
                &[Rect::new(0, 0, 100, hl), Rect::new(1180, 0, 100, hr)],
                now,
            );
            s.step(now);
            if s.target() != target {
                switches += 1;
                target = s.target();
            }
        }
        switches
    }
}
