//! Region-of-interest maths for zoom: which source pixels a group renders into its output.
//!
//! A ROI always has the output's aspect ratio (so scaling it to the output never distorts),
//! lies inside the source, sits on even pixels (the I420 chroma grid), and is never smaller
//! than the full view divided by `max_zoom`. From a 4K source a 720p output zoomed 3x is a
//! native crop, not an upscale; past that point, zooming further would only magnify pixels.
//!
//! Two producers of ROIs live here: [`roi_for`] turns a viewer's zoom/pan command into one, and
//! [`FaceFollower`] keeps the main face framed, smoothly, for `zoom = "follow-face"`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::geometry::Rect;

/// A viewer's zoom/pan command, in source coordinates normalised to 0..1.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ZoomCommand {
    /// Show (at least) this region: top-left `x, y`, size `w, h`. The ROI is the smallest
    /// output-shaped rectangle containing it, within the zoom limits.
    Region { x: f64, y: f64, w: f64, h: f64 },
    /// Magnify `zoom` times (1 = full view) around the centre `cx, cy`.
    Factor { zoom: f64, cx: f64, cy: f64 },
    /// The full view.
    Full,
}

/// Bad zoom input: the command or sizes are rejected, never clamped into something surprising.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ZoomError {
    #[error("source and output sizes must be at least 2x2 pixels")]
    EmptySize,
    #[error("no ROI of the output's shape at least 2x2 pixels fits in the source")]
    NoRoiFits,
    #[error("max_zoom must be a finite number of at least 1, not {0}")]
    BadMaxZoom(f64),
    #[error("zoom command has a non-finite value")]
    NotFinite,
    #[error("zoom region must have a positive width and height")]
    EmptyRegion,
    #[error("zoom factor must be above zero, not {0}")]
    BadFactor(f64),
    #[error("face-follow setting `{0}` is out of range")]
    BadConfig(&'static str),
}

/// A ROI in fractional source pixels; its height is always `w * aspect`.
#[derive(Clone, Copy, Debug, PartialEq)]
struct RoiF {
    x: f64,
    y: f64,
    w: f64,
}

/// The fixed facts of one source/output pair: aspect ratio and the ROI size limits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RoiGeometry {
    /// Source size rounded down to even.
    source: (u32, u32),
    /// Output height over output width.
    aspect: f64,
    /// Width of the full view: the largest output-shaped ROI that fits the source.
    full_w: f64,
    /// Smallest ROI width allowed by `max_zoom`.
    min_w: f64,
}

impl RoiGeometry {
    /// The geometry of rendering `source`-sized frames to `output`-sized ones, magnifying at
    /// most `max_zoom` times.
    pub fn new(source: (u32, u32), output: (u32, u32), max_zoom: f64) -> Result<Self, ZoomError> {
        if source.0 < 2 || source.1 < 2 || output.0 < 2 || output.1 < 2 {
            return Err(ZoomError::EmptySize);
        }
        if !max_zoom.is_finite() || max_zoom < 1.0 {
            return Err(ZoomError::BadMaxZoom(max_zoom));
        }
        let source = (source.0 & !1, source.1 & !1);
        let aspect = f64::from(output.1) / f64::from(output.0);
        let full_w = f64::from(source.0).min(f64::from(source.1) / aspect);
        if full_w < 2.0 || full_w * aspect < 2.0 {
            return Err(ZoomError::NoRoiFits);
        }
        Ok(Self {
            source,
            aspect,
            full_w,
            min_w: (full_w / max_zoom).max(2.0),
        })
    }

    /// The full view: the largest output-shaped ROI, centred in the source.
    pub fn full(&self) -> Rect {
        self.quantize(self.full_f())
    }

    /// The largest per-axis change [`FaceFollower::step`] can make to a ROI, for a motion
    /// budget of `travel_px` source pixels: the travel scaled by the aspect ratio, plus the
    /// even rounding of both edges and the clamp that keeps the rounded ROI inside.
    pub fn max_step_px(&self, travel_px: f64) -> f64 {
        travel_px * self.aspect.max(1.0) + 6.0
    }

    fn full_f(&self) -> RoiF {
        self.fit(
            f64::from(self.source.0) / 2.0,
            f64::from(self.source.1) / 2.0,
            self.full_w,
        )
    }

    /// The ROI of width `w` (clamped to the zoom limits) centred as near `(cx, cy)` as the
    /// source allows.
    fn fit(&self, cx: f64, cy: f64, w: f64) -> RoiF {
        let w = w.clamp(self.min_w, self.full_w);
        let h = w * self.aspect;
        let (sw, sh) = (f64::from(self.source.0), f64::from(self.source.1));
        RoiF {
            // `max(0.0)`: at full size `sh - h` can come out a rounding error below zero.
            x: (cx - w / 2.0).clamp(0.0, (sw - w).max(0.0)),
            y: (cy - h / 2.0).clamp(0.0, (sh - h).max(0.0)),
            w,
        }
    }

    /// Whole even pixels, still inside the source and within 2 px of the aspect ratio.
    fn quantize(&self, r: RoiF) -> Rect {
        let full_w = even_floor(self.full_w).max(2);
        let min_w = even_ceil(self.min_w).min(full_w);
        let w = even_round(r.w).clamp(min_w, full_w);
        // `w * aspect` never exceeds the (even) source height, so rounding to even cannot
        // either; the clamp only guards degenerate aspect ratios.
        let h = even_round(w as f64 * self.aspect).clamp(2, self.source.1 as i64);
        let x = even_round(r.x).clamp(0, i64::from(self.source.0) - w);
        let y = even_round(r.y).clamp(0, i64::from(self.source.1) - h);
        Rect::new(x as i32, y as i32, w as u32, h as u32)
    }
}

/// The source ROI for a viewer's command. See the module docs for the guarantees.
pub fn roi_for(command: ZoomCommand, geometry: &RoiGeometry) -> Result<Rect, ZoomError> {
    let (sw, sh) = (f64::from(geometry.source.0), f64::from(geometry.source.1));
    let roi = match command {
        ZoomCommand::Full => geometry.full_f(),
        ZoomCommand::Region { x, y, w, h } => {
            if ![x, y, w, h].iter().all(|v| v.is_finite()) {
                return Err(ZoomError::NotFinite);
            }
            if w <= 0.0 || h <= 0.0 {
                return Err(ZoomError::EmptyRegion);
            }
            // The narrowest output-shaped ROI that still contains the whole region.
            let width = (w * sw).max(h * sh / geometry.aspect);
            geometry.fit((x + w / 2.0) * sw, (y + h / 2.0) * sh, width)
        }
        ZoomCommand::Factor { zoom, cx, cy } => {
            if ![zoom, cx, cy].iter().all(|v| v.is_finite()) {
                return Err(ZoomError::NotFinite);
            }
            if zoom <= 0.0 {
                return Err(ZoomError::BadFactor(zoom));
            }
            geometry.fit(cx * sw, cy * sh, geometry.full_w / zoom)
        }
    };
    Ok(geometry.quantize(roi))
}

/// Maps a rectangle in source pixels (a detection) into the output pixels of a frame rendered
/// from `roi` at `output` size, so overlay placement can avoid what the viewer actually sees.
/// Returns `None` when it falls entirely outside the ROI; otherwise the part inside, rounded
/// outwards so an obstacle never shrinks.
pub fn project_to_output(r: Rect, roi: Rect, output: (u32, u32)) -> Option<Rect> {
    if roi.area() == 0 {
        return None;
    }
    let x0 = i64::from(r.x).max(i64::from(roi.x));
    let y0 = i64::from(r.y).max(i64::from(roi.y));
    let x1 = r.right().min(roi.right());
    let y1 = r.bottom().min(roi.bottom());
    if x0 >= x1 || y0 >= y1 {
        return None;
    }
    let sx = f64::from(output.0) / f64::from(roi.w);
    let sy = f64::from(output.1) / f64::from(roi.h);
    let map = |v: i64, origin: i32, scale: f64| (v - i64::from(origin)) as f64 * scale;
    Some(Rect::from_corners(
        map(x0, roi.x, sx).floor() as i32,
        map(y0, roi.y, sy).floor() as i32,
        map(x1, roi.x, sx).ceil() as i32,
        map(y1, roi.y, sy).ceil() as i32,
    ))
}

/// A detected face in source pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Face {
    /// Where the face is, in source pixels.
    pub rect: Rect,
    /// The detector's confidence, 0 to 1.
    pub score: f32,
}

/// Tuning of [`FaceFollower`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FollowConfig {
    /// The face's height as a fraction of the ROI height (a head-and-shoulders shot at 0.25).
    pub face_height_fraction: f64,
    /// Space above the top of the face, as a fraction of the ROI height.
    pub headroom: f64,
    /// Changes of the wanted framing smaller than this fraction of the ROI's size are ignored,
    /// so a face nodding or a detector jittering does not move the camera.
    pub dead_zone: f64,
    /// Time constant of the exponential easing towards the wanted framing.
    pub ease: Duration,
    /// Speed limit, as a fraction of the full view's width per second.
    pub max_speed: f64,
    /// Longest frame interval the motion accounts for, so a stall does not cause a jump.
    pub max_frame_interval: Duration,
    /// After this long without a face, return to the full view.
    pub lost_after: Duration,
    /// Faces scoring lower are ignored.
    pub min_score: f32,
}

impl Default for FollowConfig {
    fn default() -> Self {
        Self {
            face_height_fraction: 0.25,
            headroom: 0.12,
            dead_zone: 0.08,
            ease: Duration::from_millis(400),
            max_speed: 0.6,
            max_frame_interval: Duration::from_millis(100),
            lost_after: Duration::from_millis(1_500),
            min_score: 0.5,
        }
    }
}

impl FollowConfig {
    /// Checks every setting is in its meaningful range.
    pub fn validate(&self) -> Result<(), ZoomError> {
        let fraction = |v: f64| v.is_finite() && (0.0..1.0).contains(&v);
        if !(self.face_height_fraction > 0.0 && self.face_height_fraction <= 1.0) {
            return Err(ZoomError::BadConfig("face_height_fraction"));
        }
        if !fraction(self.headroom) {
            return Err(ZoomError::BadConfig("headroom"));
        }
        if !fraction(self.dead_zone) {
            return Err(ZoomError::BadConfig("dead_zone"));
        }
        if !(self.max_speed.is_finite() && self.max_speed > 0.0) {
            return Err(ZoomError::BadConfig("max_speed"));
        }
        if !self.min_score.is_finite() {
            return Err(ZoomError::BadConfig("min_score"));
        }
        Ok(())
    }
}

/// Keeps the main face framed in an output-shaped ROI, with a dead zone and time-based
/// smoothing; goes back to the full view when the face has been lost for a while.
#[derive(Clone, Debug)]
pub struct FaceFollower {
    geometry: RoiGeometry,
    config: FollowConfig,
    current: RoiF,
    target: RoiF,
    last_seen: Option<Duration>,
    last_step: Option<Duration>,
}

impl FaceFollower {
    /// A follower that starts at the full view.
    pub fn new(geometry: RoiGeometry, config: FollowConfig) -> Result<Self, ZoomError> {
        config.validate()?;
        let full = geometry.full_f();
        Ok(Self {
            geometry,
            config,
            current: full,
            target: full,
            last_seen: None,
            last_step: None,
        })
    }

    /// Feeds the faces detected in the frame at `seen_at` (source pixels). The main face is
    /// the one with the largest area times score; results older than the last one used are
    /// ignored, since inference results may arrive out of order.
    pub fn observe(&mut self, faces: &[Face], seen_at: Duration) {
        if self.last_seen.is_some_and(|t| seen_at < t) {
            return;
        }
        let main = faces
            .iter()
            .filter(|f| {
                f.score.is_finite() && f.score >= self.config.min_score && f.rect.area() > 0
            })
            .max_by(|a, b| {
                let weight = |f: &Face| f.rect.area() as f64 * f64::from(f.score);
                weight(a).total_cmp(&weight(b))
            });
        let Some(face) = main else { return };
        self.last_seen = Some(seen_at);
        let wanted = self.framing(face.rect);
        if self.outside_dead_zone(wanted) {
            self.target = wanted;
        }
    }

    /// Advances to the frame rendered at `now` and returns its ROI.
    pub fn step(&mut self, now: Duration) -> Rect {
        let lost = self
            .last_seen
            .is_none_or(|t| now.saturating_sub(t) > self.config.lost_after);
        if lost {
            self.target = self.geometry.full_f();
        }
        let dt = match self.last_step {
            Some(prev) => now.saturating_sub(prev).min(self.config.max_frame_interval),
            None => Duration::ZERO,
        };
        self.last_step = Some(now);
        self.ease(dt);
        self.roi()
    }

    /// The ROI of the last step.
    pub fn roi(&self) -> Rect {
        self.geometry.quantize(self.current)
    }

    /// Whether a face is currently being followed (seen within `lost_after` of `now`).
    pub fn is_following(&self, now: Duration) -> bool {
        self.last_seen
            .is_some_and(|t| now.saturating_sub(t) <= self.config.lost_after)
    }

    /// The largest per-axis change of the ROI in one step, in source pixels.
    pub fn max_step_px(&self) -> f64 {
        self.geometry
            .max_step_px(self.travel_limit(self.config.max_frame_interval))
    }

    fn travel_limit(&self, dt: Duration) -> f64 {
        self.config.max_speed * self.geometry.full_w * dt.as_secs_f64()
    }

    /// The ROI that frames `face` as configured, within the source and zoom limits.
    fn framing(&self, face: Rect) -> RoiF {
        let roi_h = f64::from(face.h) / self.config.face_height_fraction;
        let w = roi_h / self.geometry.aspect;
        // Recompute the height after the zoom limits so headroom is measured on the real ROI.
        let h = w.clamp(self.geometry.min_w, self.geometry.full_w) * self.geometry.aspect;
        let (cx, _) = face.centre();
        let top = f64::from(face.y) - self.config.headroom * h;
        self.geometry.fit(cx, top + h / 2.0, w)
    }

    fn outside_dead_zone(&self, wanted: RoiF) -> bool {
        let t = self.target;
        let dead_w = self.config.dead_zone * t.w;
        let dead_h = dead_w * self.geometry.aspect;
        (wanted.x + wanted.w / 2.0 - (t.x + t.w / 2.0)).abs() > dead_w
            || ((wanted.y - t.y) + (wanted.w - t.w) * self.geometry.aspect / 2.0).abs() > dead_h
            || (wanted.w - t.w).abs() > dead_w
    }

    fn ease(&mut self, dt: Duration) {
        let (c, t) = (self.current, self.target);
        let (dx, dy, dw) = (t.x - c.x, t.y - c.y, t.w - c.w);
        if dx.abs() < 1.0 && dy.abs() < 1.0 && dw.abs() < 1.0 {
            self.current = t;
            return;
        }
        let tau = self.config.ease.as_secs_f64();
        let gain = if tau > 0.0 {
            1.0 - (-dt.as_secs_f64() / tau).exp()
        } else {
            1.0
        };
        let (mut mx, mut my, mut mw) = (dx * gain, dy * gain, dw * gain);
        // One scale for all components keeps the ROI on the straight line between two valid
        // ROIs, hence inside the source with the right aspect at every step.
        let largest = mx.abs().max(my.abs()).max(mw.abs());
        let limit = self.travel_limit(dt);
        if largest > limit && largest > 0.0 {
            let s = limit / largest;
            (mx, my, mw) = (mx * s, my * s, mw * s);
        }
        self.current = RoiF {
            x: c.x + mx,
            y: c.y + my,
            w: c.w + mw,
        };
    }
}

fn even_round(v: f64) -> i64 {
    ((v / 2.0).round() as i64) * 2
}

fn even_floor(v: f64) -> i64 {
    ((v / 2.0).floor() as i64) * 2
}

fn even_ceil(v: f64) -> i64 {
    ((v / 2.0).ceil() as i64) * 2
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const UHD: (u32, u32) = (3840, 2160);
    const HD: (u32, u32) = (1280, 720);
    const FRAME_INTERVAL: Duration = Duration::from_micros(33_333);

    /// The guarantees of every ROI: inside, even, output aspect within 2 px, zoom bounded.
    fn assert_valid(roi: Rect, source: (u32, u32), output: (u32, u32), max_zoom: f64) {
        let src = (source.0 & !1, source.1 & !1);
        assert!(roi.is_inside(src.0, src.1), "{roi:?} outside {source:?}");
        assert_eq!(
            (roi.x % 2, roi.y % 2, roi.w % 2, roi.h % 2),
            (0, 0, 0, 0),
            "{roi:?}"
        );
        let wanted_h = f64::from(roi.w) * f64::from(output.1) / f64::from(output.0);
        assert!(
            (f64::from(roi.h) - wanted_h).abs() <= 2.0,
            "{roi:?} is not {output:?}-shaped"
        );
        let full_w =
            f64::from(src.0).min(f64::from(src.1) * f64::from(output.0) / f64::from(output.1));
        assert!(
            f64::from(roi.w) + 2.0 >= full_w / max_zoom,
            "{roi:?} zooms past {max_zoom}"
        );
    }

    #[test]
    fn full_view_of_a_same_shaped_source_is_the_whole_source() {
        let g = RoiGeometry::new(UHD, HD, 4.0).unwrap();
        assert_eq!(g.full(), Rect::new(0, 0, 3840, 2160));
        assert_eq!(roi_for(ZoomCommand::Full, &g).unwrap(), g.full());
    }

    #[test]
    fn a_4x_zoom_of_4k_for_720p_is_a_native_crop() {
        let g = RoiGeometry::new(UHD, HD, 4.0).unwrap();
        let roi = roi_for(
            ZoomCommand::Factor {
                zoom: 4.0,
                cx: 0.5,
                cy: 0.5,
            },
            &g,
        )
        .unwrap();
        assert_eq!(roi, Rect::new(1440, 810, 960, 540));
        // Beyond max_zoom it stops.
        let more = roi_for(
            ZoomCommand::Factor {
                zoom: 16.0,
                cx: 0.5,
                cy: 0.5,
            },
            &g,
        )
        .unwrap();
        assert_eq!(more, roi);
    }

    #[test]
    fn a_region_is_widened_to_the_output_shape_and_pushed_inside() {
        let g = RoiGeometry::new(UHD, HD, 8.0).unwrap();
        // A tall region in the top-left corner: the ROI is widened around it, then shifted in.
        let roi = roi_for(
            ZoomCommand::Region {
                x: 0.0,
                y: 0.0,
                w: 0.05,
                h: 0.25,
            },
            &g,
        )
        .unwrap();
        assert_eq!(roi, Rect::new(0, 0, 960, 540));
    }

    #[test]
    fn a_portrait_output_crops_a_landscape_source() {
        let g = RoiGeometry::new(HD, (720, 1280), 4.0).unwrap();
        let full = g.full();
        // 720 * 720 / 1280 = 405 px wide, down to even 404, so 718 rows keep the shape.
        assert_eq!((full.w, full.h), (404, 718));
        assert_valid(full, HD, (720, 1280), 4.0);
    }

    #[test]
    fn bad_commands_are_errors() {
        let g = RoiGeometry::new(UHD, HD, 4.0).unwrap();
        let region = |w, h| ZoomCommand::Region {
            x: 0.1,
            y: 0.1,
            w,
            h,
        };
        assert_eq!(roi_for(region(0.0, 0.5), &g), Err(ZoomError::EmptyRegion));
        assert_eq!(
            roi_for(region(f64::NAN, 0.5), &g),
            Err(ZoomError::NotFinite)
        );
        let factor = ZoomCommand::Factor {
            zoom: -2.0,
            cx: 0.5,
            cy: 0.5,
        };
        assert_eq!(roi_for(factor, &g), Err(ZoomError::BadFactor(-2.0)));
        assert_eq!(
            RoiGeometry::new((0, 10), HD, 2.0),
            Err(ZoomError::EmptySize)
        );
        assert_eq!(
            RoiGeometry::new(UHD, HD, 0.5),
            Err(ZoomError::BadMaxZoom(0.5))
        );
        assert!(RoiGeometry::new(UHD, HD, f64::INFINITY).is_err());
    }

    #[test]
    fn detections_project_into_the_zoomed_output() {
        let roi = Rect::new(1440, 810, 960, 540);
        // A face at the centre of a 4x zoom on 4K shows 4/3 as large on a 720p output.
        let face = Rect::new(1800, 900, 150, 180);
        assert_eq!(
            project_to_output(face, roi, HD),
            Some(Rect::new(480, 120, 200, 240))
        );
        // Half outside: only the visible part, clipped at the edge.
        let edge = Rect::new(1400, 800, 100, 100);
        assert_eq!(
            project_to_output(edge, roi, HD),
            Some(Rect::new(0, 0, 80, 120))
        );
        assert_eq!(project_to_output(Rect::new(0, 0, 100, 100), roi, HD), None);
    }

    #[test]
    fn follower_settings_are_checked() {
        let g = RoiGeometry::new(UHD, HD, 4.0).unwrap();
        let bad = FollowConfig {
            headroom: 1.5,
            ..FollowConfig::default()
        };
        assert_eq!(
            FaceFollower::new(g, bad).unwrap_err(),
            ZoomError::BadConfig("headroom")
        );
        let bad = FollowConfig {
            max_speed: 0.0,
            ..FollowConfig::default()
        };
        assert_eq!(
            FaceFollower::new(g, bad).unwrap_err(),
            ZoomError::BadConfig("max_speed")
        );
    }

    #[test]
    fn commands_read_from_the_documented_json() {
        let c: ZoomCommand =
            serde_json::from_str(r#"{"kind":"factor","zoom":2,"cx":0.25,"cy":0.75}"#).unwrap();
        assert_eq!(
            c,
            ZoomCommand::Factor {
                zoom: 2.0,
                cx: 0.25,
                cy: 0.75
            }
        );
        let c: ZoomCommand =
            serde_json::from_str(r#"{"kind":"region","x":0.1,"y":0.2,"w":0.3,"h":0.4}"#).unwrap();
        assert_eq!(
            c,
            ZoomCommand::Region {
                x: 0.1,
                y: 0.2,
                w: 0.3,
                h: 0.4
            }
        );
        let c: ZoomCommand = serde_json::from_str(r#"{"kind":"full"}"#).unwrap();
        assert_eq!(c, ZoomCommand::Full);
        assert!(serde_json::from_str::<ZoomCommand>(r#"{"kind":"spin"}"#).is_err());
    }

    #[test]
    fn the_follower_frames_a_face_with_headroom_and_lets_go_when_it_is_lost() {
        let g = RoiGeometry::new(UHD, HD, 4.0).unwrap();
        let mut f = FaceFollower::new(g, FollowConfig::default()).unwrap();
        let face = Face {
            rect: Rect::new(2000, 600, 200, 240),
            score: 0.9,
        };
        let mut now = Duration::ZERO;
        for _ in 0..90 {
            f.observe(&[face], now);
            f.step(now);
            now += FRAME_INTERVAL;
        }
        let roi = f.roi();
        // Face height is a quarter of the ROI height, with 12 % of it above the face.
        // 240 / 0.25 = 960 rows; 960 * 16 / 9 = 1706.7 columns, rounded to even 1708.
        assert_eq!((roi.w, roi.h), (1708, 960));
        assert!(roi.y <= 600 - 100 && roi.y >= 600 - 130, "{roi:?}");
        let (cx, _) = roi.centre();
        assert!((cx - 2100.0).abs() <= 2.0, "{roi:?}");
        assert!(f.is_following(now));
        // Lost for longer than lost_after: back to the full view, smoothly.
        let lost_at = now;
        while now < lost_at + Duration::from_secs(6) {
            f.step(now);
            now += FRAME_INTERVAL;
        }
        assert!(!f.is_following(now));
        assert_eq!(f.roi(), g.full());
    }

    #[test]
    fn jitter_inside_the_dead_zone_does_not_move_the_roi() {
        let g = RoiGeometry::new(UHD, HD, 4.0).unwrap();
        let mut f = FaceFollower::new(g, FollowConfig::default()).unwrap();
        let mut now = Duration::ZERO;
        for i in 0..120 {
            let wobble = if i % 2 == 0 { 0 } else { 20 };
            f.observe(
                &[Face {
                    rect: Rect::new(1800 + wobble, 700, 200, 240),
                    score: 0.9,
                }],
                now,
            );
            f.step(now);
            now += FRAME_INTERVAL;
        }
        let settled = f.roi();
        for i in 0..30 {
            let wobble = if i % 2 == 0 { 20 } else { 0 };
            f.observe(
                &[Face {
                    rect: Rect::new(1800 + wobble, 700 + wobble, 200, 240),
                    score: 0.9,
                }],
                now,
            );
            assert_eq!(f.step(now), settled);
            now += FRAME_INTERVAL;
        }
    }

    #[test]
    fn the_main_face_is_the_largest_confident_one() {
        let g = RoiGeometry::new(UHD, HD, 4.0).unwrap();
        let mut f = FaceFollower::new(g, FollowConfig::default()).unwrap();
        let big_but_unsure = Face {
            rect: Rect::new(0, 0, 400, 400),
            score: 0.3,
        };
        let small = Face {
            rect: Rect::new(3000, 1000, 100, 120),
            score: 0.6,
        };
        let main = Face {
            rect: Rect::new(1500, 800, 200, 240),
            score: 0.8,
        };
        f.observe(&[big_but_unsure, small, main], Duration::ZERO);
        let (cx, _) = {
            let mut now = Duration::ZERO;
            for _ in 0..150 {
                f.step(now);
                now += FRAME_INTERVAL;
                f.observe(&[big_but_unsure, small, main], now);
            }
            f.roi().centre()
        };
        assert!((cx - 1600.0).abs() <= 2.0, "centred on x={cx}");
    }

    fn size() -> impl Strategy<Value = (u32, u32)> {
        (2..4000u32, 2..3000u32)
    }

    fn unit() -> impl Strategy<Value = f64> {
        -0.5..1.5f64
    }

    fn command() -> impl Strategy<Value = ZoomCommand> {
        prop_oneof![
            Just(ZoomCommand::Full),
            (unit(), unit(), 0.001..2.0f64, 0.001..2.0f64)
                .prop_map(|(x, y, w, h)| ZoomCommand::Region { x, y, w, h }),
            (0.01..50.0f64, unit(), unit()).prop_map(|(zoom, cx, cy)| ZoomCommand::Factor {
                zoom,
                cx,
                cy
            }),
        ]
    }

    proptest! {
        #[test]
        fn every_command_gives_a_valid_roi(
            source in size(), output in size(), max_zoom in 1.0..16.0f64, cmd in command(),
        ) {
            match RoiGeometry::new(source, output, max_zoom) {
                Ok(g) => assert_valid(roi_for(cmd, &g).unwrap(), source, output, max_zoom),
                Err(e) => {
                    // Only shapes so extreme that a 2x2 ROI cannot keep the aspect are refused.
                    prop_assert_eq!(e, ZoomError::NoRoiFits);
                    let aspect = f64::from(output.1) / f64::from(output.0);
                    let full_w = f64::from(source.0 & !1).min(f64::from(source.1 & !1) / aspect);
                    prop_assert!(full_w < 2.0 || full_w * aspect < 2.0);
                }
            }
        }

        #[test]
        fn the_follower_stays_valid_and_moves_boundedly(
            faces in proptest::collection::vec(
                proptest::option::of((0..3800i32, 0..2100i32, 10..1500u32, 10..1500u32, 0.0..1.0f32)),
                1..150,
            ),
            gaps_ms in proptest::collection::vec(1..300u64, 1..20),
            output in prop_oneof![Just(HD), Just((720, 1280)), Just((640, 640))],
        ) {
            let g = RoiGeometry::new(UHD, output, 4.0).unwrap();
            let mut f = FaceFollower::new(g, FollowConfig::default()).unwrap();
            let mut now = Duration::ZERO;
            let mut prev = f.step(now);
            for (i, face) in faces.iter().enumerate() {
                now += Duration::from_millis(gaps_ms[i % gaps_ms.len()]);
                if let Some((x, y, w, h, score)) = *face {
                    f.observe(&[Face { rect: Rect::new(x, y, w, h), score }], now);
                }
                let roi = f.step(now);
                assert_valid(roi, UHD, output, 4.0);
                let bound = f.max_step_px();
                for (a, b) in [(roi.x, prev.x), (roi.y, prev.y), (roi.w as i32, prev.w as i32), (roi.h as i32, prev.h as i32)] {
                    prop_assert!(f64::from((a - b).abs()) <= bound, "{prev:?} -> {roi:?} over {bound}");
                }
                prev = roi;
            }
        }
    }
}
