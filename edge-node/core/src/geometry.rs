//! Axis-aligned pixel rectangles shared by placement smoothing, zoom and tap hit-testing.

use serde::{Deserialize, Serialize};

/// A rectangle in pixels: top-left corner `(x, y)` and size `w` x `h`. Covers the pixels
/// `x..x+w` and `y..y+h`, so an empty rectangle (`w` or `h` zero) covers nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Rect {
    /// Left column.
    pub x: i32,
    /// Top row.
    pub y: i32,
    /// Width in pixels.
    pub w: u32,
    /// Height in pixels.
    pub h: u32,
}

impl Rect {
    /// A rectangle from its top-left corner and size.
    pub const fn new(x: i32, y: i32, w: u32, h: u32) -> Self {
        Self { x, y, w, h }
    }

    /// A rectangle from corners `(x0, y0)` (inclusive) to `(x1, y1)` (exclusive); empty when
    /// the corners are swapped.
    pub fn from_corners(x0: i32, y0: i32, x1: i32, y1: i32) -> Self {
        Self {
            x: x0,
            y: y0,
            w: (i64::from(x1) - i64::from(x0)).clamp(0, i64::from(u32::MAX)) as u32,
            h: (i64::from(y1) - i64::from(y0)).clamp(0, i64::from(u32::MAX)) as u32,
        }
    }

    /// One past the right-most column, widened so huge rectangles cannot overflow.
    pub fn right(&self) -> i64 {
        i64::from(self.x) + i64::from(self.w)
    }

    /// One past the bottom row, widened so huge rectangles cannot overflow.
    pub fn bottom(&self) -> i64 {
        i64::from(self.y) + i64::from(self.h)
    }

    /// Pixel count.
    pub fn area(&self) -> u64 {
        u64::from(self.w) * u64::from(self.h)
    }

    /// Whether the pixel `(px, py)` lies inside.
    pub fn contains(&self, px: i32, py: i32) -> bool {
        i64::from(px) >= i64::from(self.x)
            && i64::from(px) < self.right()
            && i64::from(py) >= i64::from(self.y)
            && i64::from(py) < self.bottom()
    }

    /// Pixels covered by both rectangles.
    pub fn intersection_area(&self, other: &Rect) -> u64 {
        let w = self.right().min(other.right()) - i64::from(self.x.max(other.x));
        let h = self.bottom().min(other.bottom()) - i64::from(self.y.max(other.y));
        if w <= 0 || h <= 0 {
            0
        } else {
            w as u64 * h as u64
        }
    }

    /// Whether the rectangles share at least one pixel.
    pub fn intersects(&self, other: &Rect) -> bool {
        self.intersection_area(other) > 0
    }

    /// Intersection over union, 0 when both are empty.
    pub fn iou(&self, other: &Rect) -> f64 {
        let inter = self.intersection_area(other);
        let union = self.area() + other.area() - inter;
        if union == 0 {
            0.0
        } else {
            inter as f64 / union as f64
        }
    }

    /// Whether `self` lies entirely within a `width` x `height` frame anchored at the origin.
    pub fn is_inside(&self, width: u32, height: u32) -> bool {
        self.x >= 0
            && self.y >= 0
            && self.right() <= i64::from(width)
            && self.bottom() <= i64::from(height)
    }

    /// Centre in (fractional) pixels.
    pub fn centre(&self) -> (f64, f64) {
        (
            f64::from(self.x) + f64::from(self.w) / 2.0,
            f64::from(self.y) + f64::from(self.h) / 2.0,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intersection_and_containment() {
        let a = Rect::new(0, 0, 10, 10);
        let b = Rect::new(5, 5, 10, 10);
        assert_eq!(a.intersection_area(&b), 25);
        assert!(a.intersects(&b));
        assert!(
            !a.intersects(&Rect::new(10, 0, 5, 5)),
            "edges touch, no pixel shared"
        );
        assert!(a.contains(9, 9));
        assert!(!a.contains(10, 9));
        assert!((a.iou(&b) - 25.0 / 175.0).abs() < 1e-12);
        assert_eq!(Rect::from_corners(4, 4, 2, 8).area(), 0);
    }

    #[test]
    fn huge_rectangles_do_not_overflow() {
        let a = Rect::new(i32::MAX - 1, 0, u32::MAX, 1);
        let b = Rect::new(i32::MAX - 1, 0, 1, 1);
        assert_eq!(a.intersection_area(&b), 1);
        assert!(!a.is_inside(u32::MAX, 1));
    }
}
