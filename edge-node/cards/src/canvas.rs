//! A small CPU canvas: anti-aliased shapes given as signed distance functions, and glyph
//! masks, blended in premultiplied alpha (so "over" is one multiply-add), handed out at the end
//! as the straight alpha the compositor takes.

use crate::image::RgbaImage;

/// A straight-alpha sRGB colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rgba8(pub [u8; 4]);

impl Rgba8 {
    fn premultiplied(self, coverage: f32) -> [f32; 4] {
        let alpha = f32::from(self.0[3]) / 255.0 * coverage;
        [
            f32::from(self.0[0]) / 255.0 * alpha,
            f32::from(self.0[1]) / 255.0 * alpha,
            f32::from(self.0[2]) / 255.0 * alpha,
            alpha,
        ]
    }
}

/// An axis-aligned rectangle in pixels, `x0 <= x1`, `y0 <= y1`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RectPx {
    pub x0: f32,
    pub y0: f32,
    pub x1: f32,
    pub y1: f32,
}

impl RectPx {
    pub fn from_origin_size(x: f32, y: f32, width: f32, height: f32) -> Self {
        Self {
            x0: x,
            y0: y,
            x1: x + width,
            y1: y + height,
        }
    }

    pub fn width(&self) -> f32 {
        self.x1 - self.x0
    }

    pub fn height(&self) -> f32 {
        self.y1 - self.y0
    }

    pub fn translated(&self, dx: f32, dy: f32) -> Self {
        Self::from_origin_size(self.x0 + dx, self.y0 + dy, self.width(), self.height())
    }

    /// Signed distance from (x, y) to this rectangle with corners rounded by `radius`:
    /// negative inside, positive outside.
    pub fn rounded_distance(&self, radius: f32, x: f32, y: f32) -> f32 {
        let radius = radius.min(self.width() / 2.0).min(self.height() / 2.0);
        let qx = (x - (self.x0 + self.x1) / 2.0).abs() - self.width() / 2.0 + radius;
        let qy = (y - (self.y0 + self.y1) / 2.0).abs() - self.height() / 2.0 + radius;
        let (ox, oy) = (qx.max(0.0), qy.max(0.0));
        // sqrt of the sum rather than hypot: no overflow is possible at pixel scales, and
        // libm's hypot is several times slower in this per-pixel loop.
        (ox * ox + oy * oy).sqrt() + qx.max(qy).min(0.0) - radius
    }
}

/// Signed distance from (x, y) to a disc.
pub fn circle_distance(cx: f32, cy: f32, radius: f32, x: f32, y: f32) -> f32 {
    let (dx, dy) = (x - cx, y - cy);
    (dx * dx + dy * dy).sqrt() - radius
}

pub struct Canvas {
    width: u32,
    height: u32,
    premultiplied: Vec<[f32; 4]>,
}

impl Canvas {
    /// A transparent canvas.
    pub fn new(width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            premultiplied: vec![[0.0; 4]; width as usize * height as usize],
        }
    }

    /// Fills the shape whose signed distance `distance` gives, within `bounds`. The edge fades
    /// over `edge_px`: 1 px is anti-aliasing, a wide edge is a soft shadow. `distance` must
    /// change by at most 1 per pixel (true of exact distances and of their max/min, i.e. unions,
    /// intersections and cut-outs).
    pub fn fill_shape(
        &mut self,
        bounds: RectPx,
        edge_px: f32,
        color: Rgba8,
        distance: impl Fn(f32, f32) -> f32,
    ) {
        let edge_px = edge_px.max(1.0);
        let reach = edge_px / 2.0;
        let (x_range, y_range) = self.pixel_span(
            bounds.x0 - reach,
            bounds.y0 - reach,
            bounds.x1 + reach,
            bounds.y1 + reach,
        );
        let solid = color.premultiplied(1.0);
        for y in y_range {
            let mut x = x_range.start;
            while x < x_range.end {
                let d = distance(x as f32 + 0.5, y as f32 + 0.5);
                // A distance function changes by at most 1 per pixel, so from a pixel |d|
                // away from the edge band the next pixels are known without evaluating it:
                // solid inside, untouched outside. Only the edge band is evaluated per pixel.
                // `as u32` of a non-negative value is its floor.
                let run = ((d.abs() - reach).max(0.0) as u32 + 1).min(x_range.end - x);
                if d <= -reach {
                    for covered in x..x + run {
                        self.blend(covered, y, solid);
                    }
                } else if d < reach {
                    let coverage = (reach - d) / edge_px;
                    self.blend(x, y, color.premultiplied(coverage));
                }
                x += if d <= -reach || d >= reach { run } else { 1 };
            }
        }
    }

    /// Blends an 8-bit coverage mask (a rasterised glyph) of `color` with its top-left at (x, y).
    pub fn blend_mask(&mut self, x: i32, y: i32, mask_width: u32, mask: &[u8], color: Rgba8) {
        self.blend_rows(x, y, mask_width, 1, mask, |texel| {
            color.premultiplied(f32::from(texel[0]) / 255.0)
        });
    }

    /// Blends a straight-alpha RGBA8 bitmap (a colour glyph) with its top-left at (x, y).
    pub fn blend_rgba(&mut self, x: i32, y: i32, bitmap_width: u32, rgba: &[u8]) {
        self.blend_rows(x, y, bitmap_width, 4, rgba, |texel| {
            Rgba8([texel[0], texel[1], texel[2], texel[3]]).premultiplied(1.0)
        });
    }

    fn blend_rows(
        &mut self,
        x: i32,
        y: i32,
        source_width: u32,
        bytes_per_texel: usize,
        source: &[u8],
        premultiply: impl Fn(&[u8]) -> [f32; 4],
    ) {
        if source_width == 0 {
            return;
        }
        let row_bytes = source_width as usize * bytes_per_texel;
        for (row, texels) in source.chunks_exact(row_bytes).enumerate() {
            let py = y + row as i32;
            if py < 0 || py >= self.height as i32 {
                continue;
            }
            for (column, texel) in texels.chunks_exact(bytes_per_texel).enumerate() {
                let px = x + column as i32;
                if px < 0 || px >= self.width as i32 || texel.iter().all(|&b| b == 0) {
                    continue;
                }
                self.blend(px as u32, py as u32, premultiply(texel));
            }
        }
    }

    /// Porter-Duff "over" of a premultiplied source onto the pixel.
    fn blend(&mut self, x: u32, y: u32, source: [f32; 4]) {
        let pixel = &mut self.premultiplied[y as usize * self.width as usize + x as usize];
        let keep = 1.0 - source[3];
        for (channel, value) in pixel.iter_mut().zip(source) {
            *channel = value + *channel * keep;
        }
    }

    /// The pixel columns and rows a float rectangle touches, clipped to the canvas.
    fn pixel_span(
        &self,
        x0: f32,
        y0: f32,
        x1: f32,
        y1: f32,
    ) -> (std::ops::Range<u32>, std::ops::Range<u32>) {
        let clip = |v: f32, max: u32| (v.max(0.0) as u32).min(max);
        (
            clip(x0.floor(), self.width)..clip(x1.ceil(), self.width),
            clip(y0.floor(), self.height)..clip(y1.ceil(), self.height),
        )
    }

    /// Un-premultiplies into the straight-alpha RGBA8 the compositor takes.
    pub fn into_straight_rgba(self) -> RgbaImage {
        // Values are in 0..=1 by construction; `as u8` saturates, and +0.5 rounds.
        let to_u8 = |v: f32| (v * 255.0 + 0.5) as u8;
        let mut pixels = vec![0; self.premultiplied.len() * 4];
        for (out, &[r, g, b, a]) in pixels.chunks_exact_mut(4).zip(&self.premultiplied) {
            if a > 0.0 {
                let unpremultiply = 1.0 / a;
                out.copy_from_slice(&[
                    to_u8(r * unpremultiply),
                    to_u8(g * unpremultiply),
                    to_u8(b * unpremultiply),
                    to_u8(a),
                ]);
            }
        }
        RgbaImage {
            width: self.width,
            height: self.height,
            pixels,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RED: Rgba8 = Rgba8([255, 0, 0, 255]);

    #[test]
    fn rounded_rect_distance_is_negative_inside_positive_outside() {
        let rect = RectPx::from_origin_size(0.0, 0.0, 100.0, 50.0);
        assert!(rect.rounded_distance(10.0, 50.0, 25.0) < 0.0);
        assert!((rect.rounded_distance(10.0, 110.0, 25.0) - 10.0).abs() < 1e-4);
        // The corner is cut: (0.5, 0.5) lies outside a 10 px rounded corner.
        assert!(rect.rounded_distance(10.0, 0.5, 0.5) > 0.0);
        assert!(rect.rounded_distance(0.0, 0.5, 0.5) < 0.0);
    }

    #[test]
    fn filled_rect_is_opaque_inside_and_clear_outside() {
        let mut canvas = Canvas::new(20, 20);
        let rect = RectPx::from_origin_size(5.0, 5.0, 10.0, 10.0);
        canvas.fill_shape(rect, 1.0, RED, |x, y| rect.rounded_distance(0.0, x, y));
        let image = canvas.into_straight_rgba();
        assert_eq!(image.pixel(10, 10), Some([255, 0, 0, 255]));
        assert_eq!(image.pixel(2, 2), Some([0, 0, 0, 0]));
    }

    #[test]
    fn half_covered_edge_keeps_straight_colour() {
        let mut canvas = Canvas::new(4, 1);
        canvas.blend_mask(0, 0, 4, &[255, 128, 0, 64], RED);
        let image = canvas.into_straight_rgba();
        // Straight alpha: the colour stays red, only alpha carries the coverage.
        assert_eq!(image.pixel(1, 0), Some([255, 0, 0, 128]));
        assert_eq!(image.pixel(2, 0), Some([0, 0, 0, 0]));
        assert_eq!(image.pixel(3, 0), Some([255, 0, 0, 64]));
    }

    #[test]
    fn over_a_white_panel_mixes_colours() {
        let mut canvas = Canvas::new(1, 1);
        canvas.blend_mask(0, 0, 1, &[255], Rgba8([255, 255, 255, 255]));
        canvas.blend_mask(0, 0, 1, &[128], Rgba8([0, 0, 0, 255]));
        let image = canvas.into_straight_rgba();
        assert_eq!(image.pixel(0, 0), Some([127, 127, 127, 255]));
    }

    #[test]
    fn masks_are_clipped_at_the_edges() {
        let mut canvas = Canvas::new(2, 2);
        canvas.blend_mask(-1, -1, 3, &[255; 9], RED);
        canvas.blend_mask(1, 1, 3, &[255; 9], RED);
        let image = canvas.into_straight_rgba();
        assert!(image.pixels.chunks_exact(4).all(|p| p == [255, 0, 0, 255]));
    }
}
