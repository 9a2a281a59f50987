//! The card's panel: a rounded rectangle on a soft drop shadow, in a canvas sized to hold both
//! with even sides.

use crate::canvas::{Canvas, RectPx, Rgba8};
use crate::theme::{self, Scale};

/// Where a card's panel sits inside its canvas.
pub struct PanelFrame {
    pub canvas: Canvas,
    pub panel: RectPx,
    pub radius_px: f32,
}

/// Extra room around the panel for the shadow, in reference pixels.
const SHADOW_BLUR: f32 = 18.0;
const SHADOW_DROP: f32 = 6.0;

/// Room around the panel for its shadow, in output pixels.
fn shadow_margin(scale: Scale) -> f32 {
    (scale.px(SHADOW_BLUR) + scale.px(SHADOW_DROP)).ceil()
}

/// The canvas that holds a `width` x `height` panel and its shadow, sides rounded up to even
/// (I420 chroma is subsampled 2x2, so an odd overlay would straddle chroma samples).
pub fn canvas_size(width_px: f32, height_px: f32, scale: Scale) -> (u32, u32) {
    let margin = shadow_margin(scale);
    let even = |v: f32| {
        let v = v.ceil() as u32;
        v + v % 2
    };
    (
        even(width_px.ceil() + 2.0 * margin),
        even(height_px.ceil() + 2.0 * margin),
    )
}

/// A canvas of `canvas` pixels whose panel fills it inside the shadow's margin.
pub fn frame(canvas: (u32, u32), radius_px: f32, scale: Scale) -> PanelFrame {
    let margin = shadow_margin(scale);
    let side = |canvas_side: u32| (canvas_side as f32 - 2.0 * margin).max(1.0);
    PanelFrame {
        canvas: Canvas::new(canvas.0, canvas.1),
        panel: RectPx::from_origin_size(margin, margin, side(canvas.0), side(canvas.1)),
        radius_px,
    }
}

/// Draws the shadow and then the panel in `fill`, whose shape `distance` gives (a plain
/// rounded rectangle, or one with cut-outs).
pub fn draw(frame: &mut PanelFrame, scale: Scale, fill: Rgba8, distance: impl Fn(f32, f32) -> f32) {
    let drop = scale.px(SHADOW_DROP);
    let blur = scale.px(SHADOW_BLUR);
    let shadow_bounds = frame.panel.translated(0.0, drop);
    frame
        .canvas
        .fill_shape(shadow_bounds, blur, theme::SHADOW, |x, y| {
            distance(x, y - drop)
        });
    frame.canvas.fill_shape(frame.panel, 1.0, fill, &distance);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canvas_sides_are_even_and_hold_the_panel() {
        let scale = Scale::for_output_height(720).unwrap();
        for (w, h) in [(101.3, 57.0), (200.0, 99.9), (1.0, 1.0)] {
            let frame = frame(canvas_size(w, h, scale), 8.0, scale);
            assert!(frame.panel.width() >= w.ceil() && frame.panel.height() >= h.ceil());
            let image = frame.canvas.into_straight_rgba();
            assert_eq!(image.width % 2, 0);
            assert_eq!(image.height % 2, 0);
            assert!(frame.panel.x1 <= image.width as f32 && frame.panel.y1 <= image.height as f32);
        }
    }
}
